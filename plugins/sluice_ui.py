"""The "Sluice" page in the Airflow UI: an external view (a nav entry whose page the UI shows in an iframe at
/plugin/sluice) on a FastAPI app that the api-server mounts at /sluice. The code lives in `sluice.health`."""

from airflow.plugins_manager import AirflowPlugin
from sluice.health.app import MOUNT, LazyApp


class SluiceUiPlugin(AirflowPlugin):
    name = "sluice_ui"
    fastapi_apps = [{"app": LazyApp(), "url_prefix": MOUNT, "name": "Sluice pipeline health"}]
    external_views = [
        {
            "name": "Sluice",
            "href": MOUNT + "/",
            "url_route": "sluice",
            "destination": "nav",
            "category": "browse",
        }
    ]
