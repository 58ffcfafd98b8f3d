"""`POST /v1/supernets` as a multipart upload: the checkpoint streamed to the artifact directory,
its sha256 stored, every bad file a 422 (413 past the size limit) that stores nothing, neither a
row nor a file; image folders named inside HWNAS_IMAGE_DIR only."""

from __future__ import annotations

import hashlib
import io
import json
import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from ofa_checkpoints import ofa_checkpoint
from PIL import Image
from service_processes import Server, service_env

from service.supernets import bert_digits
from service.supernets.elastic_mbv3 import ArchSpec, ElasticMobileNetV3

MAX_CHECKPOINT_BYTES = 40 * 1024 * 1024  # an OFA w1.0 checkpoint is 31 MB
BERT_CHECKPOINT = Path(bert_digits.__file__).parent / "checkpoints" / "bert_digits.pt"


@pytest.fixture(scope="module")
def api_settings() -> dict[str, Any]:
    return {"max_checkpoint_bytes": MAX_CHECKPOINT_BYTES}


@pytest.fixture(scope="module")
def digits_state() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return ElasticMobileNetV3(ArchSpec()).state_dict()


def saved(obj: object) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def upload(
    client: TestClient, content: bytes, name: str = "up", family: str = "mbv3-digits", **fields: str
) -> Any:
    return client.post(
        "/v1/supernets",
        data={"name": name, "family": family, **fields},
        files={"checkpoint": ("weights.pt", content, "application/octet-stream")},
    )


def stored_files(client: TestClient) -> list[Path]:
    directory = client.app.state.settings.uploaded_checkpoint_dir  # type: ignore[attr-defined]
    return sorted(directory.iterdir()) if directory.exists() else []


def names(client: TestClient) -> list[str]:
    return [row["name"] for row in client.get("/v1/supernets").json()]


def test_an_uploaded_checkpoint_is_kept_by_its_sha256(
    api_client: TestClient, digits_state: dict[str, torch.Tensor]
) -> None:
    content = saved(digits_state)
    answer = upload(api_client, content, name="uploaded")
    assert answer.status_code == 201, answer.text
    body = answer.json()
    digest = hashlib.sha256(content).hexdigest()
    assert body["checkpoint_sha256"] == digest
    assert Path(body["checkpoint_uri"]).name == f"{digest}.pt"
    assert Path(body["checkpoint_uri"]).read_bytes() == content
    assert [p.name for p in stored_files(api_client)] == [f"{digest}.pt"]
    # The same bytes for a second supernet: one file, and a refused third leaves it in place.
    assert upload(api_client, content, name="again").status_code == 201
    assert upload(api_client, content, name="again").status_code == 409
    assert [p.name for p in stored_files(api_client)] == [f"{digest}.pt"]


class Evil:
    def __reduce__(self) -> tuple[Any, ...]:
        return (print, ("unpickled!",))


def bad_uploads(state: dict[str, torch.Tensor]) -> list[tuple[str, bytes, str]]:
    some = dict(state)
    missing_key = next(iter(some))
    del some[missing_key]
    extra = {**state, "head.extra.weight": torch.zeros(3)}
    key = next(k for k, v in state.items() if v.dim() == 4)
    wrong_shape = {**state, key: torch.zeros(1, 1, 1, 1)}
    return [
        ("text file", b"these are not weights\n" * 10, "starts with b'thes'"),
        ("raw pickle", pickle.dumps(Evil()), "not a torch checkpoint"),
        ("torch zip with a non-tensor", saved({**state, "epoch": [1, 2]}), "not tensors"),
        ("torch zip with an object", saved(Evil()), "weights_only"),
        ("missing key", saved(some), missing_key),
        ("unexpected key", saved(extra), "head.extra.weight"),
        ("wrong shape", saved(wrong_shape), "size mismatch"),
        ("empty file", b"", "is empty"),
    ]


@pytest.mark.parametrize("case", range(8), ids=lambda i: f"case{i}")
def test_a_bad_upload_is_a_422_that_stores_nothing(
    api_client: TestClient, digits_state: dict[str, torch.Tensor], case: int
) -> None:
    what, content, said = bad_uploads(digits_state)[case]
    before_rows, before_files = names(api_client), stored_files(api_client)
    answer = upload(api_client, content, name=f"bad{case}")
    assert answer.status_code == 422, (what, answer.text)
    body = answer.json()
    assert body["error"] == "invalid_checkpoint", (what, body)
    assert said in body["detail"], (what, body["detail"])
    assert names(api_client) == before_rows
    assert stored_files(api_client) == before_files


def test_an_upload_past_the_limit_is_a_413_that_stores_nothing(api_client: TestClient) -> None:
    before = stored_files(api_client)
    answer = upload(api_client, b"\0" * (MAX_CHECKPOINT_BYTES + 1), name="huge")
    assert answer.status_code == 413, answer.text
    assert answer.json()["error"] == "checkpoint_too_large"
    assert "HWNAS_MAX_CHECKPOINT_BYTES" in answer.json()["detail"]
    assert stored_files(api_client) == before
    assert "huge" not in names(api_client)


def test_a_large_upload_is_limited_by_the_checkpoint_limit_not_the_json_limit(
    api_client: TestClient,
) -> None:
    settings = api_client.app.state.settings  # type: ignore[attr-defined]
    content = BERT_CHECKPOINT.read_bytes()
    assert settings.max_request_bytes < len(content) < settings.max_checkpoint_bytes
    answer = upload(api_client, content, name="bert", family="bert-digits")
    assert answer.status_code == 201, answer.text


@pytest.mark.parametrize(
    ("fields", "files", "said"),
    [
        ({"name": "x", "family": "mbv3-digits"}, None, "as the field 'checkpoint'"),
        ({"name": "x"}, "checkpoint", "family"),
        ({"name": "x", "family": "mbv3-digits", "color": "red"}, "checkpoint", "color"),
        ({"name": "x", "family": "mbv3-digits"}, "weights", "'checkpoint'"),
        ({"name": "x", "family": "mbv3-digits", "data": "{not json"}, "checkpoint", "not JSON"),
    ],
)
def test_a_malformed_form_is_a_422_that_stores_nothing(
    api_client: TestClient, fields: dict[str, str], files: str | None, said: str
) -> None:
    before = stored_files(api_client)
    sent = {files: ("w.pt", b"x" * 100, "application/octet-stream")} if files else None
    if sent is None:  # a multipart body without any file
        sent = {"unused": (None, b"1")}  # type: ignore[dict-item]
    answer = api_client.post("/v1/supernets", data=fields, files=sent)
    assert answer.status_code == 422, answer.text
    assert said in answer.json()["detail"]
    assert stored_files(api_client) == before


def test_the_json_form_still_registers(api_client: TestClient) -> None:
    answer = api_client.post("/v1/supernets", json={"name": "plain", "family": "mbv3-digits"})
    assert answer.status_code == 201, answer.text
    broken = api_client.post(
        "/v1/supernets", content=b"{", headers={"content-type": "application/json"}
    )
    assert broken.status_code == 422
    assert broken.json()["error"] == "invalid_request"


def test_openapi_documents_both_request_forms(api_client: TestClient) -> None:
    schema = api_client.get("/openapi.json").json()
    content = schema["paths"]["/v1/supernets"]["post"]["requestBody"]["content"]
    assert content["multipart/form-data"]["schema"]["properties"]["checkpoint"]["format"] == (
        "binary"
    )
    assert "data" in content["application/json"]["schema"]["properties"]
    assert "$defs" not in json.dumps(content)


def image_folder(root: Path) -> Path:
    rng = np.random.default_rng(0)
    for name in ("cat", "dog"):
        (root / name).mkdir(parents=True)
        for i in range(3):
            pixels = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i}.png")
    return root


def test_data_options_name_a_folder_inside_the_image_directory(api_client: TestClient) -> None:
    image_dir = api_client.app.state.settings.resolved_image_dir  # type: ignore[attr-defined]
    image_folder(image_dir / "pets")
    data = {"image_folder": "pets", "calibration_images": 2, "resolutions": [224]}
    body = {"name": "pets", "family": "ofa-mbv3-w1.0", "data": data}
    answer = api_client.post("/v1/supernets", json=body)
    assert answer.status_code == 201, answer.text
    stored = answer.json()["data_options"]
    assert stored["image_folder"] == str(image_dir / "pets")
    assert stored["resolutions"] == [224]
    assert answer.json()["dataset"] == "pets"
    [resolution] = [g for g in answer.json()["search_space"] if g["name"] == "resolution"]
    assert resolution["choices"] == [224]


@pytest.mark.parametrize(
    ("family", "data", "code", "said"),
    [
        ("ofa-mbv3-w1.0", {"image_folder": "../"}, "invalid_image_data", "HWNAS_IMAGE_DIR"),
        ("ofa-mbv3-w1.0", {"image_folder": "/etc"}, "invalid_image_data", "outside"),
        ("ofa-mbv3-w1.0", {"image_folder": "nowhere"}, "invalid_image_data", "not a folder"),
        ("ofa-mbv3-w1.0", {"resolutions": [100]}, "invalid_data_options", "128"),
        ("mbv3-digits", {"resolutions": [224]}, "invalid_data_options", "own dataset"),
        ("ofa-resnet50", {"image_folder": "empty"}, "invalid_data_options", "no images"),
    ],
)
def test_bad_data_options_are_a_422_that_stores_nothing(
    api_client: TestClient, family: str, data: dict[str, Any], code: str, said: str
) -> None:
    image_dir = api_client.app.state.settings.resolved_image_dir  # type: ignore[attr-defined]
    (image_dir / "empty" / "cat").mkdir(parents=True, exist_ok=True)
    before = names(api_client)
    answer = api_client.post("/v1/supernets", json={"name": "d", "family": family, "data": data})
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"] == code, answer.json()
    assert said in answer.json()["detail"]
    assert names(api_client) == before


@pytest.fixture(scope="module")
def ofa_state(tmp_path_factory: pytest.TempPathFactory) -> dict[str, torch.Tensor]:
    path = ofa_checkpoint(tmp_path_factory.mktemp("ofa") / "w1.0.pth", "ofa-mbv3-w1.0")
    return dict(torch.load(path, weights_only=True)["state_dict"])


def test_an_ofa_upload_with_wrong_keys_names_each_of_them(
    api_client: TestClient, ofa_state: dict[str, torch.Tensor]
) -> None:
    state = dict(ofa_state)
    del state["first_conv.conv.weight"]
    state["blocks.1.mobile_inverted_conv.extra"] = torch.zeros(2)
    state["classifier.linear.weight"] = torch.zeros(10, 3)
    before = stored_files(api_client)
    answer = upload(api_client, saved({"state_dict": state}), "wrong", "ofa-mbv3-w1.0")
    assert answer.status_code == 422, answer.text
    detail = answer.json()["detail"]
    assert "'weights.pt'" in detail and "ofa-mbv3-w1.0" in detail
    for said in (
        "first_conv.conv.weight",
        "blocks.1.mobile_inverted_conv.extra",
        "classifier.linear.weight: (10, 3) (expected (1000, 1280))",
    ):
        assert said in detail, detail
    assert stored_files(api_client) == before


def test_an_ofa_upload_takes_its_image_data_as_form_fields(
    api_client: TestClient, ofa_state: dict[str, torch.Tensor]
) -> None:
    image_dir = api_client.app.state.settings.resolved_image_dir  # type: ignore[attr-defined]
    image_folder(image_dir / "form-pets")
    fields = {"image_folder": "form-pets", "calibration_images": "3", "resolutions": "160,224"}
    answer = upload(api_client, saved({"state_dict": ofa_state}), "ofa", "ofa-mbv3-w1.0", **fields)
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert body["data_options"]["calibration_images"] == 3
    assert body["data_options"]["resolutions"] == [160, 224]
    assert body["dataset"] == "form-pets"
    both = upload(api_client, b"PK", "ofa2", "ofa-mbv3-w1.0", data="{}", image_folder="form-pets")
    assert both.status_code == 422 and "not both" in both.json()["detail"]


def test_a_chunked_upload_over_uvicorn_is_cut_off_at_the_limit(tmp_path: Path) -> None:
    """No Content-Length to refuse early: the bytes are counted as they stream in."""
    limit = 1024 * 1024
    server = Server(service_env(tmp_path, max_checkpoint_bytes=str(limit)), tmp_path / "log", False)
    try:

        def body() -> Iterator[bytes]:
            part = '--B\r\nContent-Disposition: form-data; name="{}"{}\r\n\r\n'
            for field, value in (("name", "big"), ("family", "mbv3-digits")):
                yield (part.format(field, "") + value + "\r\n").encode()
            yield part.format("checkpoint", '; filename="w.pt"').encode()
            for _ in range(4 * limit // 65536):
                yield b"\0" * 65536
            yield b"\r\n--B--\r\n"

        headers = {"content-type": "multipart/form-data; boundary=B"}
        answer = server.client.post("/v1/supernets", content=body(), headers=headers)
        assert answer.status_code == 413, answer.text
        assert answer.json()["error"] == "checkpoint_too_large"
        assert list((tmp_path / "artifacts" / "checkpoints").iterdir()) == []
        assert server.client.get("/v1/supernets").json() == []
    finally:
        server.stop()
