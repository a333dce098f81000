"""Take docs/sluice-page.png: log in to the running stack's UI with Debian's Chromium and photograph the Sluice page
(inside the Airflow UI, at /plugin/sluice). Usage: set -a; source .sluice/env; set +a; .venv/bin/python
scripts/screenshot_sluice.py [OUT.png]"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "include"))


def main() -> int:
    from playwright.sync_api import sync_playwright
    from sluice.airflow_api import AirflowApi

    out = Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / "docs" / "sluice-page.png"
    api = AirflowApi.from_env()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1700, "height": 900})
        page.goto(api.base_url + "/")
        page.wait_for_url("**/auth/login**", timeout=120_000)
        page.get_by_label("Username").fill(api.username)
        page.get_by_label("Password").fill(api.password)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(lambda url: "/auth/login" not in url, timeout=120_000)
        page.goto(api.base_url + "/plugin/sluice")
        page.frame_locator("iframe").locator("#pipelines").wait_for(timeout=120_000)
        page.wait_for_timeout(1000)  # let the nav render its icons
        page.screenshot(path=str(out))
        browser.close()
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
