"""MkDocs hook: the CLI page is generated from the Typer app at build time."""

from esper.cli.reference import cli_reference_markdown

MARKER = "<!-- the esper CLI reference is generated here at build time -->"


def on_page_markdown(markdown, page, **kwargs):
    if MARKER in markdown:
        return markdown.replace(MARKER, cli_reference_markdown())
    return markdown
