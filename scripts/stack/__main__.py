"""Entry point for `python scripts/stack <command>`: run as a directory, so make `stack` importable as a package."""

import sys
from pathlib import Path

# Python put scripts/stack itself first on sys.path; replace it with scripts/, so the modules load as `stack.*`
# (and none of them can shadow a top-level module).
here = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != here]
sys.path.insert(0, str(here.parent))

from stack.commands import main  # noqa: E402

sys.exit(main())
