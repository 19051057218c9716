"""Make ``gym_reference`` (the shared differential-test checks) importable.

The suite runs with ``--import-mode=importlib``, which puts no test directory
on ``sys.path``; the env tests share one helper module, so this directory is
added here, once.
"""

import sys
from pathlib import Path

HERE = str(Path(__file__).resolve().parent)
if HERE not in sys.path:
    sys.path.insert(0, HERE)
