"""The dashboard in real headless Chromium (Debian's /usr/bin/chromium, driven by Playwright)
against a real `hwnas serve` (uvicorn, embedded worker, SQLite) running a real job, with
authentication on: the pages hold the admin token in localStorage, as a user's browser would.

Screenshots go to $HWNAS_SCREENSHOT_DIR (docs/img for docs/dashboard.md) or the test's tmp dir.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import onnxruntime as ort
import playwright.sync_api as playwright_sync
import pytest
from service_processes import FAST_HOST, Server, service_env, wait_for

from service.catalog.supernets import loaded_supernet

CHROMIUM = "/usr/bin/chromium"
TOKEN = "dashboard-admin-token-0123456789"
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data_dir = tmp_path_factory.mktemp("dashboard")
    env = service_env(data_dir, heartbeat_interval_s="0.5", admin_token=TOKEN)
    server = Server(env, data_dir / "server.log")
    client = server.client
    client.headers["Authorization"] = f"Bearer {TOKEN}"
    supernet = client.post("/v1/supernets", json={"name": "mbv3-digits", "family": "mbv3-digits"})
    assert supernet.status_code == 201, supernet.text
    host = {"name": "host", "kind": "host", "descriptor": FAST_HOST}
    assert client.post("/v1/devices", json=host).status_code == 201
    yield server
    server.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium (as scripts/test.sh does)")
    with playwright_sync.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Any, server: Server) -> Iterator[Any]:
    """A fresh page on the server, holding the token, that records console errors; none may
    occur."""
    context = browser.new_context(
        base_url=f"http://127.0.0.1:{server.port}",
        viewport={"width": 1400, "height": 1000},
        accept_downloads=True,
    )
    context.add_init_script(f"localStorage.setItem('hwnas.token', {json.dumps(TOKEN)})")
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    yield page
    context.close()
    assert errors == [], errors


def screenshot(page: Any, name: str, tmp_path: Path) -> Path:
    folder = Path(os.environ.get("HWNAS_SCREENSHOT_DIR") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 10_000
    return path


def submit(server: Server, **fields: Any) -> int:
    supernet = server.client.get("/v1/supernets/1").json()
    low, high = supernet["exact_ranges"]["macs"]
    body = {
        "supernet": "mbv3-digits",
        "objectives": ["macs:min", "params:max"],
        "constraints": [f"macs<={low + 0.5 * (high - low):.0f}"],
        "tactic": "random",
        "budget": 10000,  # runs for minutes: the tests cancel it or give a smaller budget
        "batch_size": 10,
        **fields,
    }
    response = server.client.post("/v1/jobs", json=body)
    assert response.status_code == 202, response.text
    return int(response.json()["id"])


def chart_total(page: Any) -> int:
    return int(page.get_attribute("#front-chart", "data-total") or 0)


def front_point_position(
    page: Any, index: int = 0, trace_name: str = "Pareto front"
) -> tuple[float, float]:
    """Page pixel of point `index` of a trace of the scatter, from Plotly's own axis mapping."""
    return page.evaluate(
        """([index, name]) => {
            const gd = document.getElementById('front-chart');
            const trace = gd.data.findIndex((t) => t.name === name);
            const layout = gd._fullLayout, box = gd.getBoundingClientRect();
            const x = layout.xaxis.l2p(gd.data[trace].x[index]) + layout._size.l + box.left;
            const y = layout.yaxis.l2p(gd.data[trace].y[index]) + layout._size.t + box.top;
            return [x + window.scrollX, y + window.scrollY];
        }""",
        [index, trace_name],
    )


def test_live_job_page_hover_select_and_downloads(page: Any, server: Server, tmp_path: Path):
    job_id = submit(server)
    wait_for(
        lambda: server.client.get(f"/v1/jobs/{job_id}").json()["validations_used"] >= 20,
        120,
        "the job's first batches",
    )
    page.goto(f"/#/jobs/{job_id}")
    page.wait_for_selector("#front-chart[data-total] .scatterlayer")
    first = chart_total(page)
    assert page.inner_text("#job-status") == "running"
    # The page polls: without a reload, the chart shows more validated points.
    page.wait_for_function(
        f"Number(document.getElementById('front-chart').dataset.total) > {first}", timeout=60_000
    )
    assert "validated" in page.inner_text("#plot-summary")
    screenshot(page, "dashboard-job-running.png", tmp_path)
    page.click("#cancel-job")
    page.wait_for_function(
        "document.getElementById('job-status').innerText === 'cancelled'", timeout=60_000
    )
    assert chart_total(page) > first

    pareto = server.client.get(f"/v1/jobs/{job_id}/pareto").json()
    front_ids = [p["id"] for p in pareto["points"]]
    assert front_ids and int(page.get_attribute("#front-chart", "data-front")) == len(front_ids)

    x, y = front_point_position(page)
    page.mouse.move(x, y)
    page.wait_for_selector("#hover-info h2")
    hover = page.inner_text("#hover-info")
    assert "macs" in hover and "params" in hover and "s0.depth" in hover
    hovered_id = int(hover.split("Candidate ")[1].split()[0])
    assert hovered_id in front_ids

    page.mouse.click(x, y)
    page.wait_for_selector("#download-onnx")
    selected = page.inner_text("#selected")
    assert f"Selected {hovered_id}" in selected and "measured" in selected
    assert "Genes" in selected and "s0.depth" in selected
    screenshot(page, "dashboard-job-selected.png", tmp_path)

    with page.expect_download() as download:
        page.click("#download-onnx")
    onnx_path = tmp_path / "model.onnx"
    download.value.save_as(onnx_path)
    assert download.value.suggested_filename == f"candidate-{hovered_id}.onnx"
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].shape[0] == 1

    with page.expect_download() as download:
        page.click("#download-front-csv")
    rows = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text())))
    assert [int(r["candidate_id"]) for r in rows] == [p["id"] for p in page_front(page)]
    assert sorted(int(r["candidate_id"]) for r in rows) == sorted(front_ids)
    assert {"macs", "params", "macs_source", "config"} <= set(rows[0])

    with page.expect_download() as download:
        page.click("#download-all-csv")
    all_rows = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text())))
    assert len(all_rows) == server.client.get(f"/v1/jobs/{job_id}").json()["validations_used"]

    with page.expect_download() as download:
        page.click("#download-front-json")
    as_json = json.loads(Path(download.value.path()).read_text())
    assert [p["id"] for p in as_json["points"]] == front_ids


def page_front(page: Any) -> list[dict[str, Any]]:
    """The front the page holds, in the order it writes it."""
    job = page.evaluate("location.hash.split('/')[2]")
    return page.evaluate(f"hwnas.api('/v1/dashboard/jobs/{job}/plot')")["front"]  # with the token


def test_jobs_list_shows_and_filters(page: Any, server: Server, tmp_path: Path):
    job_id = submit(server, budget=40)
    page.goto("/")
    row = page.wait_for_selector(f"#jobs-table a[href='#/jobs/{job_id}']")
    assert row is not None
    wait_for(
        lambda: server.client.get(f"/v1/jobs/{job_id}").json()["status"] == "succeeded",
        120,
        "the job to finish",
    )
    page.wait_for_function(
        f"document.querySelector(\"#jobs-table a[href='#/jobs/{job_id}']\")"
        ".closest('tr').innerText.includes('succeeded')",
        timeout=30_000,
    )
    text = page.inner_text("#jobs-table")
    assert "40/40" in text and "macs" in text and "params" in text
    screenshot(page, "dashboard-jobs.png", tmp_path)
    page.select_option("#status-filter", "failed")
    page.wait_for_selector("#jobs-table >> text=No jobs.")
    page.select_option("#status-filter", "succeeded")
    page.wait_for_selector(f"#jobs-table a[href='#/jobs/{job_id}']")
    page.click(f"#jobs-table a[href='#/jobs/{job_id}']")
    page.wait_for_selector("#front-chart .scatterlayer")
    assert page.inner_text("#job-status") == "succeeded"
    # A point off the front: its config comes from the dashboard's candidate route.
    x, y = front_point_position(page, 0, "validated")
    page.mouse.move(x, y)
    page.wait_for_selector("#hover-info h2")
    hover = page.inner_text("#hover-info")
    assert "front" not in hover.splitlines()[0] and "s0.depth" in hover


def test_three_objectives_choose_axes(page: Any, server: Server, tmp_path: Path):
    objectives = ["macs:min", "params:max", "latency@host:min"]
    job_id = submit(server, objectives=objectives, budget=6, batch_size=3)
    wait_for(
        lambda: server.client.get(f"/v1/jobs/{job_id}").json()["status"] in ("succeeded", "failed"),
        300,
        "the latency job to finish",
    )
    page.goto(f"/#/jobs/{job_id}")
    page.wait_for_selector("#front-chart .scatterlayer")
    options = page.eval_on_selector_all("#axis-y option", "(os) => os.map((o) => o.value)")
    assert options[:3] == ["macs", "params", "latency@host"]
    page.select_option("#axis-x", "latency@host")
    page.select_option("#axis-y", "params")
    page.wait_for_function(
        "document.getElementById('front-chart')._fullLayout.xaxis.title.text === 'latency@host'"
    )
    x, y = front_point_position(page)
    page.mouse.move(x, y)
    page.wait_for_selector("#hover-info h2")
    assert "host" in page.inner_text("#hover-info")
    screenshot(page, "dashboard-three-objectives.png", tmp_path)


def test_supernets_and_devices_pages(page: Any, server: Server, tmp_path: Path):
    page.goto("/#/supernets")
    page.wait_for_selector("#supernet-detail h2")
    detail = page.inner_text("#supernet-detail")
    assert "genes" in detail and "s0.depth" in detail and "macs" in detail
    screenshot(page, "dashboard-supernets.png", tmp_path)
    page.goto("/#/devices")
    page.wait_for_selector("main h1:text('Devices') ~ table")
    text = page.inner_text("main table")
    assert "host" in text and "yes" in text and "none" in text  # no latency table yet

    keys = loaded_supernet("mbv3-digits", None).all_layer_keys()  # type: ignore[attr-defined]
    half = {key: {"count": 1, "mean": 0.1, "std": 0.0} for key in keys[::2]}
    npu = server.client.post("/v1/devices", json={"name": "npu", "kind": "lut-only"})
    assert npu.status_code == 201, npu.text
    uploaded = server.client.post(
        f"/v1/devices/{npu.json()['id']}/latency-tables?family=mbv3-digits",
        content=json.dumps(half),
        headers={"Content-Type": "application/yaml"},
    )
    assert uploaded.status_code == 201, uploaded.text
    page.reload()
    page.wait_for_selector("main table:has-text('npu')")
    share = 100 * len(half) / len(keys)
    expected = f"covers {share:.1f} % of the family's {len(keys)} ops"
    assert expected in page.inner_text("main table")


def test_the_token_comes_from_the_field_or_the_url_once(browser: Any, server: Server) -> None:
    context = browser.new_context(base_url=f"http://127.0.0.1:{server.port}")
    page = context.new_page()
    page.goto("/#/devices")
    page.wait_for_selector("p.error")
    assert "unauthorized" in page.inner_text("p.error")
    assert "enter an API token" in page.inner_text("p.error")
    page.fill("#token", TOKEN)
    page.click("#token-save")
    page.wait_for_selector("table")
    assert "host" in page.inner_text("#main")
    page.evaluate("localStorage.clear()")
    page.goto(f"/?token={TOKEN}#/supernets")
    page.wait_for_selector("#supernet-detail .panel")
    assert TOKEN not in page.url and page.url.endswith("/#/supernets")
    assert page.evaluate("localStorage.getItem('hwnas.token')") == TOKEN
    context.close()
