"""xdist_group marks that hold under pytest 9.2, with no plugin to install.

``--dist loadgroup`` reads a test's xdist_group from a suffix of its node id
(``...::test@group``). pytest-xdist 3.8 writes it into ``item._nodeid``, which
pytest 9.2 no longer reads (pytest-xdist issue 1386, fix pending): every group
was silently spread over the workers, and each worker built the group's module
and session fixtures again (the two-rank runs, the solved CartPole). tests/
conftest.py calls ``name_the_groups``; ``python -m pytest -p xdist_groups``
loads it elsewhere (with this directory on ``sys.path``).
"""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    name_the_groups(config, items)


def name_the_groups(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Each grouped test's ``@group`` suffix, written where pytest 9.2 keeps node
    ids (xdist's own write is lost there); a no-op outside a loadgroup worker and
    wherever xdist's write took (a pytest before structured node ids)."""
    try:
        from _pytest.nodeid import NodeId
    except ImportError:  # a pytest before structured node ids: xdist's write works
        return
    if not getattr(config.option, "loadgroup", False):
        return
    for item in items:
        groups = {
            str(mark.args[0] if mark.args else mark.kwargs.get("name", "default"))
            for mark in item.iter_markers("xdist_group")
        }
        nodeid = item.nodeid
        if groups and nodeid.rfind("@") <= nodeid.rfind("]") and hasattr(item, "_id"):
            item._id = NodeId.parse(f"{nodeid}@{'_'.join(sorted(groups))}")
