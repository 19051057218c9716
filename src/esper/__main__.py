"""``python -m esper`` runs the CLI."""

from esper.cli import main

main()
