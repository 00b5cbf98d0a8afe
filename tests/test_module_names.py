"""No module in a folder that Prefect loads flows from may share its name with a standard-library module.

Prefect adds a flow file's folder to ``sys.path`` when it loads the flow from its path (deployment
registration does), so a module such as ``flows/secrets.py`` shadowed the standard library's
``secrets`` in the processes started after it (a Dask worker, a process pool): numpy and pydantic
failed to import there.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_no_module_shadows_the_standard_library() -> None:
    # Flow entry points live in flows/ (and deployments/ loads them): those folders reach sys.path.
    modules = [p for folder in ("flows", "deployments") for p in (ROOT / folder).glob("*.py")]
    assert len(modules) > 10  # the walk found the project
    clashes = sorted(str(p.relative_to(ROOT)) for p in modules if p.stem in sys.stdlib_module_names)
    assert clashes == []
