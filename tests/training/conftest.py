"""Make ``batch_stats`` (helpers the training tests share) importable.

The suite runs with ``--import-mode=importlib``, which puts no test directory
on ``sys.path``; this directory is added here, once.
"""

import sys
from pathlib import Path

HERE = str(Path(__file__).resolve().parent)
if HERE not in sys.path:
    sys.path.insert(0, HERE)
