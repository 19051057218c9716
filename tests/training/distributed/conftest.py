"""Make this folder's helpers importable by name (``from test_distributed import
launched``, the workers torchrun starts): ``--import-mode=importlib`` puts no
test directory on ``sys.path``."""

import sys
from pathlib import Path

HERE = str(Path(__file__).resolve().parent)
if HERE not in sys.path:
    sys.path.insert(0, HERE)
