"""Over real HTTP (`hwnas serve`, embedded worker, SQLite): OFA supernets registered with their
checkpoint UPLOADED as a multipart form (random weights in OFA's released layout) and a generated
image folder inside HWNAS_IMAGE_DIR, searched to a front with latency from a device's lookup
table and a MACs constraint. ofa-mbv3-w1.2 uses OFA's own Note10 table (`latency@note10`); the
table's keys are w1.2's ops at 224 (tests/data/README.md), so resolution is fixed at 224 there.
ofa-resnet50 runs at 128 against a CSV table written here for its ops."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ofa_checkpoints import DATA, image_folder, ofa_checkpoint
from service_processes import Server, service_env

from service.cli import main
from service.client import Client
from service.supernets.config_forms import gene_form
from service.supernets.ofa_resnet import OFAResNet50Supernet
from service.supernets.space import SearchSpace


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data_dir = tmp_path_factory.mktemp("ofa_http")
    image_folder(data_dir / "images" / "tiny")
    server = Server(service_env(data_dir, heartbeat_interval_s="0.5"), data_dir / "server.log")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def client(server: Server) -> Iterator[Client]:
    with Client(f"http://127.0.0.1:{server.port}", timeout_s=300) as hw:
        yield hw


def run_to_front(
    client: Client, supernet: str, device: str, macs_max: float
) -> tuple[int, list[Any]]:
    job = client.submit_job(
        supernet,
        ["accuracy:max", f"latency@{device}:min"],
        [f"macs<={macs_max}"],
        budget=4,
        tactic="random",
        batch_size=2,
    )
    finished = job.wait(poll_s=0.5, timeout_s=300)
    assert finished.status == "succeeded", finished.error
    front = job.pareto()
    assert front.feasible and front.points
    for point in front.points:
        assert point.metrics["macs"].value <= macs_max
        assert point.metrics[f"latency@{device}"].value > 0
        assert 0 <= point.metrics["accuracy"].value <= 100
    return job.id, list(front.points)


def test_ofa_mbv3_uploaded_with_an_image_folder_searches_on_the_note10_table(
    server: Server, client: Client, tmp_path: Path
) -> None:
    checkpoint = ofa_checkpoint(tmp_path / "ofa_mbv3_d234_e346_k357_w1.2.pth", "ofa-mbv3-w1.2")
    data = {"image_folder": "tiny", "calibration_images": 2, "resolutions": [224]}
    supernet = client.register_supernet(
        "mbv3", "ofa-mbv3-w1.2", checkpoint_path=checkpoint, data=data
    )
    assert supernet.dataset == "tiny"
    assert Path(supernet.checkpoint_uri or "").parent == server.data_dir / "artifacts/checkpoints"
    note10 = client.register_device("note10", "lut-only")
    table = DATA / "ofa_note10_224_lookup_table.yaml"
    imported = client.upload_latency_table(note10.id, table, family="ofa-mbv3-w1.2")
    assert imported.entries_count > 0 and not imported.unmapped_keys
    low, high = supernet.exact_ranges["macs"]
    job_id, points = run_to_front(client, "mbv3", "note10", low + 0.6 * (high - low))
    assert all(p.config["resolution"] == 224 for p in points)
    assert all(p.metrics["latency@note10"].source == "predicted" for p in points)
    assert_exports_carry_the_ofa_form(client, job_id, "mbv3", "ofa-mbv3-w1.2")


def assert_exports_carry_the_ofa_form(
    client: Client, job_id: int, supernet: str, family: str
) -> None:
    space = SearchSpace.from_json(client.supernet(supernet).search_space)
    exported = client.job(job_id).export("json")["candidates"]
    assert exported and all(set(c["ofa_config"]) == {"ks", "e", "d", "r"} for c in exported)
    assert len(exported) == 4
    for candidate in exported:
        assert gene_form(family, candidate["ofa_config"], space) == candidate["config"]
    rows = list(csv.DictReader(io.StringIO(client.job(job_id).export("csv"))))
    assert [json.loads(r["ofa_config"]) for r in rows] == [c["ofa_config"] for c in exported]


def test_ofa_resnet50_registered_with_the_cli_searches_on_a_device_table(
    server: Server, client: Client, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    checkpoint = ofa_checkpoint(tmp_path / "ofa_resnet50.pth", "ofa-resnet50")
    capsys.readouterr()
    status = main(
        [
            "supernet",
            "register",
            "resnet",
            "ofa-resnet50",
            "--checkpoint-file",
            str(checkpoint),
            "--image-folder",
            "tiny",
            "--calibration-images",
            "2",
            "--resolutions",
            "128",
            "--server",
            f"http://127.0.0.1:{server.port}",
            "-f",
            "json",
        ]
    )
    out = capsys.readouterr().out
    assert status == 0, out
    registered = json.loads(out)
    assert registered["family"] == "ofa-resnet50" and registered["data_options"]["resolutions"] == [
        128
    ]
    keys = OFAResNet50Supernet(resolutions=(128,)).all_layer_keys()
    rows = "".join(f"{key},{0.05 + 0.001 * i}\n" for i, key in enumerate(keys))
    phone = client.register_device("phone", "lut-only")
    client.upload_latency_table(
        phone.id, "key,mean_ms\n" + rows, format="csv", family="ofa-resnet50"
    )
    low, high = registered["exact_ranges"]["macs"]
    job_id, points = run_to_front(client, "resnet", "phone", low + 0.6 * (high - low))
    assert all(p.config["resolution"] == 128 for p in points)
    exported = client.job(job_id).export("json")["candidates"]
    assert all(c["ofa_config"]["r"] == [128] and len(c["ofa_config"]["w"]) == 6 for c in exported)
