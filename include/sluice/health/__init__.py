"""The operator's view of pipeline health: what the Sluice page in the Airflow UI and the Prometheus exporter show.

Data comes from the warehouse only (sluice.run_summary, load_ledger, schema_changes, quarantine; statements in
`sluice.loading.sql.dashboard`), and the pipeline files for what is configured (source kind, schedule, deadline).
`report` joins the two, `html` renders the pages, `metrics` turns the same report into Prometheus metrics.
Nothing here touches Airflow's metadata database.
"""

from sluice.health.report import Overview, PipelineDetail, PipelineHealth, read_detail, read_overview

__all__ = ["Overview", "PipelineDetail", "PipelineHealth", "read_detail", "read_overview"]
