"""``python -m esper.cli``: the same command as ``esper`` (and ``python -m esper``)."""

from esper.cli import main

main()
