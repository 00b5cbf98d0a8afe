"""``python -m flows.cli``: the ``evoformer`` command line."""

from flows.cli import main

raise SystemExit(main())
