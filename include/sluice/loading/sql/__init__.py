"""Every SQL statement Sluice sends to the warehouse, one small function each, so a unit test can read it as a string.

Identifiers (schemas, tables, columns, types) are validated in `identifiers` and quoted with psycopg's
`sql.Identifier`; values never enter the text: they travel as named placeholders (`%(name)s`) or as COPY data.
This package is a leaf: it imports only psycopg, so every stage (validate, loading, alerts) may use it.

`from sluice.loading import sql as q` gives every statement; the submodules group them:
`identifiers`, `ddl`, `dml` (the load), `catalog`, `bookkeeping` (ledger, run summary, schema changes),
`quarantine` (sluice.quarantine: DDL and migration, status changes, the `quarantine` command's queries),
`freshness` (last loaded interval, run progress, the watchdog's breaches), `history` (per-interval statistics
of successful loads, for the quality gate's history checks), `retention` (committed generations and running runs,
for staging retention); `results` reads the one row of a statement that always
returns one (`q.scalar(conn.execute(...))`).
"""

from sluice.loading.sql.bookkeeping import *  # noqa: F403
from sluice.loading.sql.catalog import *  # noqa: F403
from sluice.loading.sql.ddl import *  # noqa: F403
from sluice.loading.sql.dml import *  # noqa: F403
from sluice.loading.sql.freshness import *  # noqa: F403
from sluice.loading.sql.history import *  # noqa: F403
from sluice.loading.sql.identifiers import *  # noqa: F403
from sluice.loading.sql.identifiers import _coldef, _cols  # noqa: F401
from sluice.loading.sql.quarantine import *  # noqa: F403
from sluice.loading.sql.results import one_row, scalar  # noqa: F401
from sluice.loading.sql.retention import *  # noqa: F403
