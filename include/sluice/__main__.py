"""`python -m sluice ...`: see sluice.cli."""

from sluice.cli import main

raise SystemExit(main())
