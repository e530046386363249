"""``python -m fastagi_router``: the same as the ``fastagi-router`` command."""

from fastagi_router.cli import main

raise SystemExit(main())
