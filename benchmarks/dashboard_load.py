"""Dashboard job-page load time in headless Chromium on a job with 100,000 stored candidates.

    .venv/bin/python benchmarks/dashboard_load.py [--candidates 100000] [--runs 5]

Fills a fresh SQLite database the way `benchmarks/api_load.py` does (one finished job, 4 metrics
per candidate, 25 on the front) plus one iteration row per 100 candidates, starts a real
`hwnas serve --no-worker`, and opens `/#/jobs/1` in Debian's /usr/bin/chromium (Playwright):
"cold" in a new browser context each run (nothing cached, plotly.js fetched and compiled), "warm"
by reloading the same page. The figure is the page's own clock (performance.now(), from the
start of navigation) when the front scatter and the three iteration charts are drawn. It also
prints the size and server time of the `/v1/dashboard/jobs/1/plot` answer the page reads.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from api_load import populate
from playwright.sync_api import sync_playwright
from sqlalchemy import insert

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from service_processes import Server, service_env

from service.db.engine import make_engine, upgrade_database
from service.db.models import JobIteration

CHROMIUM = "/usr/bin/chromium"
# When the page has drawn (job.js marks it), with its marks: plotly.js compiled, plot data in.
READY = """() => {
    const at = (name) => performance.getEntriesByName(name)[0]?.startTime;
    const marks = ['hwnas:drawn', 'hwnas:front', 'hwnas:plotly', 'hwnas:data'].map(at);
    return marks[0] ? marks : null;
}"""


def add_iterations(url: str, n_candidates: int) -> None:
    rows = [
        {
            "job_id": 1,
            "iteration": i,
            "hypervolume": 0.5 + 0.4 * i / max(1, n_candidates // 100),
            "front_size": 25,
            "validations_used": min(n_candidates, (i + 1) * 100),
            "seconds": 1.0,
        }
        for i in range(n_candidates // 100)
    ]
    engine = make_engine(url)
    with engine.begin() as connection:
        connection.execute(insert(JobIteration), rows)
    engine.dispose()


def load_once(page: Any, url: str, reload: bool) -> list[float]:
    """[all drawn, front drawn, plotly.js ready, plot data in], ms since navigation start."""
    if reload:
        page.reload()
    else:
        page.goto(url)
    return [float(v) for v in page.wait_for_function(READY, timeout=60_000).json_value()]


def measure(base: str, runs: int) -> tuple[list[list[float]], list[list[float]]]:
    cold, warm = [], []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        load_once(browser.new_page(), f"{base}/#/jobs/1", reload=False)  # server warm-up
        for _ in range(runs):
            context = browser.new_context(viewport={"width": 1400, "height": 1000})
            page = context.new_page()
            cold.append(load_once(page, f"{base}/#/jobs/1", reload=False))
            warm.append(load_once(page, f"{base}/#/jobs/1", reload=True))
            context.close()
        browser.close()
    return cold, warm


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidates", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="hwnas-dash-bench-") as tmp:
        data_dir = Path(tmp)
        url = f"sqlite:///{data_dir}/hwnas.db"
        upgrade_database(url)
        started = time.perf_counter()
        populate(url, args.candidates)
        add_iterations(url, args.candidates)
        print(f"inserted {args.candidates:,} candidates in {time.perf_counter() - started:.1f} s")
        server = Server(service_env(data_dir), data_dir / "server.log", worker=False)
        try:
            base = f"http://127.0.0.1:{server.port}"
            with httpx.Client(base_url=base, timeout=120) as client:
                client.get("/v1/dashboard/jobs/1/plot")
                started = time.perf_counter()
                plot = client.get("/v1/dashboard/jobs/1/plot")
                plot_ms = (time.perf_counter() - started) * 1000
            body = plot.json()
            print(
                f"GET /v1/dashboard/jobs/1/plot: {plot_ms:.0f} ms, {len(plot.content) / 1024:.0f} "
                f"KiB, front {len(body['front'])}, sample {len(body['sample']['ids'])} "
                f"of {body['total']:,}"
            )
            cold, warm = measure(base, args.runs)
        finally:
            server.stop()
    for name, loads in (("cold", cold), ("warm", warm)):
        drawn = [load[0] for load in loads]
        front, plotly, data = (statistics.median(load[i] for load in loads) for i in (1, 2, 3))
        print(
            f"job page {name}, {len(drawn)} loads: all charts drawn at median "
            f"{statistics.median(drawn):.0f} ms (min {min(drawn):.0f}, max {max(drawn):.0f}); "
            f"front scatter at {front:.0f} ms, plotly.js ready at {plotly:.0f} ms, "
            f"plot data at {data:.0f} ms"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
