"""Python client of the hwnas HTTP API (httpx), with typed results.

    from service.client import Client
    with Client("http://127.0.0.1:8000") as hw:
        hw.register_supernet("mbv3-digits", "mbv3-digits")
        hw.register_supernet("mbv3", "ofa-mbv3-w1.0", checkpoint_path="ofa_mbv3_w1.0.pth",
                             data={"image_folder": "imagenet-val", "calibration_images": 2000})
        job = hw.submit_job("mbv3-digits", ["accuracy:max", "macs:min"], budget=20)
        job.wait(progress=True)
        for point in job.pareto().points: ...

Every non-2xx answer raises `HwnasError` carrying the API's `error` code and `detail`; a server
that cannot be reached raises it too, with code `unreachable`. A server at capacity answers 503
with `Retry-After`: for a request that may be sent twice (GET, HEAD, OPTIONS, PUT, DELETE) the
client waits that long and asks again, up to `retries` times, before it raises. The response
types are the service's own views (`service.jobs.views`, `service.api.schemas`), so they stay in
step with it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import httpx

from service.api.schemas.catalog import DeviceOut, SupernetDetailOut, SupernetOut
from service.api.schemas.latency import LatencyTableOut
from service.jobs.views import CandidateOut, JobOut, ParetoOut

FINISHED = ("succeeded", "failed", "cancelled")
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
DEFAULT_SERVER = "http://127.0.0.1:8000"


class HwnasError(Exception):
    """An error answer of the API (`error` code, `detail`, HTTP `status_code`)."""

    def __init__(self, error: str, detail: str, status_code: int | None = None) -> None:
        super().__init__(f"{error}: {detail}")
        self.error = error
        self.detail = detail
        self.status_code = status_code


class Client:
    """One server; `token` is sent as `Authorization: Bearer <token>` when given."""

    def __init__(
        self,
        server: str = DEFAULT_SERVER,
        token: str | None = None,
        timeout_s: float = 120,
        retries: int = 3,
        max_retry_wait_s: float = 30.0,
    ) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.server = server.rstrip("/")
        self.retries, self.max_retry_wait_s = retries, max_retry_wait_s
        self._http = httpx.Client(base_url=self.server, headers=headers, timeout=timeout_s)

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """The response of a 2xx answer; `HwnasError` otherwise."""
        # Only requests that may be sent twice: a 503 from a busy database pool can come after
        # part of a POST's work, and a streamed upload cannot be read again.
        resendable = method.upper() in IDEMPOTENT_METHODS and "files" not in kwargs
        attempts = 1 + max(self.retries, 0) if resendable else 1
        for attempt in range(1, attempts + 1):
            try:
                response = self._http.request(method, path, **kwargs)
            except httpx.TransportError as exc:
                raise HwnasError("unreachable", f"{self.server}: {exc}") from exc
            wait_s = self._retry_after_s(response)
            if wait_s is None or attempt == attempts:
                break
            time.sleep(wait_s)
        if response.is_success:
            return response
        try:
            body = response.json()
            error, detail = str(body["error"]), str(body["detail"])
        except (ValueError, KeyError, TypeError):
            error, detail = "http_error", response.text[:500] or response.reason_phrase
        raise HwnasError(error, detail, response.status_code)

    def _retry_after_s(self, response: httpx.Response) -> float | None:
        """Seconds to wait before asking again (a 503 with Retry-After in seconds); else None."""
        if response.status_code != 503:
            return None
        try:
            seconds = float(response.headers["Retry-After"])
        except (KeyError, ValueError):
            return None
        return min(max(seconds, 0.0), self.max_retry_wait_s)

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        return self.request(method, path, **kwargs).json()

    def health(self) -> dict[str, Any]:
        return dict(self._json("GET", "/health"))

    # Supernets, devices, latency tables

    def register_supernet(
        self,
        name: str,
        family: str,
        checkpoint: str | None = None,
        checkpoint_path: str | Path | None = None,
        data: dict[str, Any] | None = None,
    ) -> SupernetDetailOut:
        """`checkpoint` names a file inside the server's checkpoint directory; `checkpoint_path`
        is a local file uploaded (streamed, multipart). `data`: image folder options (names
        inside the server's image directory), as the API's `data` object."""
        if checkpoint is not None and checkpoint_path is not None:
            raise ValueError("give checkpoint (a name on the server) or checkpoint_path, not both")
        if checkpoint_path is None:
            body = {"name": name, "family": family, "checkpoint": checkpoint, "data": data}
            body = {k: v for k, v in body.items() if v is not None}
            return SupernetDetailOut.model_validate(self._json("POST", "/v1/supernets", json=body))
        path = Path(checkpoint_path)
        fields = {"name": name, "family": family}
        if data is not None:
            fields["data"] = json.dumps(data)
        with path.open("rb") as handle:  # httpx reads it in chunks as it sends
            files = {"checkpoint": (path.name, handle, "application/octet-stream")}
            answer = self._json("POST", "/v1/supernets", data=fields, files=files)
        return SupernetDetailOut.model_validate(answer)

    def supernets(self) -> list[SupernetOut]:
        return [SupernetOut.model_validate(s) for s in self._json("GET", "/v1/supernets")]

    def supernet(self, supernet: int | str) -> SupernetDetailOut:
        """By id, or by name."""
        if isinstance(supernet, str):
            matches = [s for s in self.supernets() if s.name == supernet]
            if not matches:
                raise HwnasError("unknown_supernet", f"no supernet named {supernet!r}", 404)
            supernet = matches[0].id
        return SupernetDetailOut.model_validate(self._json("GET", f"/v1/supernets/{supernet}"))

    def register_device(
        self, name: str, kind: str, descriptor: dict[str, Any] | None = None
    ) -> DeviceOut:
        body = {"name": name, "kind": kind, "descriptor": descriptor or {}}
        return DeviceOut.model_validate(self._json("POST", "/v1/devices", json=body))

    def devices(self) -> list[DeviceOut]:
        return [DeviceOut.model_validate(d) for d in self._json("GET", "/v1/devices")]

    def device(self, name: str) -> DeviceOut:
        for device in self.devices():
            if device.name == name:
                return device
        raise HwnasError("unknown_device", f"no device named {name!r}", 404)

    def upload_latency_table(
        self,
        device: int | str,
        table: bytes | str | Path,
        format: str | None = None,
        family: str | None = None,
        name: str | None = None,
    ) -> LatencyTableOut:
        """A LUT file (path) or its content for a device (id or name); format json/csv/ofa-yaml."""
        device_id = device if isinstance(device, int) else self.device(device).id
        if isinstance(table, Path):
            name = name or table.name
            format = format or _format_of(table)
            content = table.read_bytes()
        else:
            content = table.encode() if isinstance(table, str) else table
        params = {k: v for k, v in {"format": format, "family": family, "name": name}.items() if v}
        path = f"/v1/devices/{device_id}/latency-tables"
        return LatencyTableOut.model_validate(
            self._json("POST", path, content=content, params=params)
        )

    def latency_tables(self, device: int | str) -> list[LatencyTableOut]:
        device_id = device if isinstance(device, int) else self.device(device).id
        path = f"/v1/devices/{device_id}/latency-tables"
        return [LatencyTableOut.model_validate(t) for t in self._json("GET", path)]

    # Jobs

    def submit_job(
        self,
        supernet: str,
        objectives: list[str],
        constraints: list[str] | None = None,
        budget: int = 60,
        **options: Any,
    ) -> Job:
        """Queue a search; `options` are the other job fields (tactic, seed, batch_size, ...)."""
        body = {
            "supernet": supernet,
            "objectives": objectives,
            "constraints": constraints or [],
            "budget": budget,
            **{k: v for k, v in options.items() if v is not None},
        }
        return Job(self, JobOut.model_validate(self._json("POST", "/v1/jobs", json=body)))

    def jobs(self, limit: int = 100) -> list[JobOut]:
        return [JobOut.model_validate(j) for j in self._json("GET", f"/v1/jobs?limit={limit}")]

    def job(self, job_id: int) -> Job:
        return Job(self, JobOut.model_validate(self._json("GET", f"/v1/jobs/{job_id}")))


class Job:
    """A handle on one job; `last` is the status most recently read."""

    def __init__(self, client: Client, out: JobOut) -> None:
        self.client = client
        self.id = out.id
        self.last = out
        self.path = f"/v1/jobs/{out.id}"

    def __repr__(self) -> str:
        return f"Job(id={self.id}, status={self.last.status!r})"

    def status(self) -> JobOut:
        self.last = JobOut.model_validate(self.client._json("GET", self.path))
        return self.last

    def wait(
        self, progress: bool = False, poll_s: float = 1.0, timeout_s: float | None = None
    ) -> JobOut:
        """Poll until the job ends; `progress` draws a tqdm bar of validations with the HV."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        bar: Any = None
        try:
            while True:
                job = self.status()
                if progress and bar is None:
                    bar = _progress_bar(self.id, job)
                if bar is not None:
                    _update_bar(bar, job)
                if job.status in FINISHED:
                    return job
                if deadline is not None and time.monotonic() > deadline:
                    raise TimeoutError(f"job {self.id} still {job.status} after {timeout_s} s")
                time.sleep(poll_s)
        finally:
            if bar is not None:
                bar.close()

    def pareto(self) -> ParetoOut:
        """The job's current front (`no-cache`: compared with the database on this request,
        not the up-to-0.5 s-old front a server process keeps for pollers)."""
        headers = {"Cache-Control": "no-cache"}
        return ParetoOut.model_validate(
            self.client._json("GET", f"{self.path}/pareto", headers=headers)
        )

    def candidates(self, page_size: int = 500) -> Iterator[CandidateOut]:
        after = 0
        while True:
            params = {"after": after, "limit": page_size}
            page = self.client._json("GET", f"{self.path}/candidates", params=params)
            yield from (CandidateOut.model_validate(c) for c in page["items"])
            if page["next_after"] is None:
                return
            after = page["next_after"]

    def export(self, format: Literal["csv", "json"] = "json") -> Any:
        """Every candidate: CSV text, or the JSON document (`job`, `candidates`) parsed."""
        response = self.client.request("GET", f"{self.path}/export", params={"format": format})
        return response.text if format == "csv" else response.json()

    def download_onnx(self, candidate: int | CandidateOut, path: str | Path | None = None) -> Path:
        """Write the candidate's ONNX model (default `candidate-<id>.onnx` here); its path."""
        candidate_id = candidate if isinstance(candidate, int) else candidate.id
        response = self.client.request("GET", f"{self.path}/candidates/{candidate_id}/model.onnx")
        target = Path(path) if path is not None else Path(f"candidate-{candidate_id}.onnx")
        target.write_bytes(response.content)
        return target

    def cancel(self) -> JobOut:
        self.last = JobOut.model_validate(self.client._json("POST", f"{self.path}/cancel"))
        return self.last


def _format_of(path: Path) -> str | None:
    suffix = path.suffix.lower()
    return {".json": "json", ".csv": "csv", ".yaml": "ofa-yaml", ".yml": "ofa-yaml"}.get(suffix)


def _progress_bar(job_id: int, job: JobOut) -> Any:
    from tqdm import tqdm

    return tqdm(
        total=job.budget,
        initial=job.validations_used,
        desc=f"job {job_id}",
        unit="validation",
        dynamic_ncols=True,
    )


def _update_bar(bar: Any, job: JobOut) -> None:
    """Advance the bar to the job's validations; the status, HV and front size after it."""
    last = job.iterations[-1] if job.iterations else None
    hv = last.hypervolume if last is not None else None
    if bar.n != job.validations_used:
        bar.update(job.validations_used - bar.n)
    bar.set_postfix_str(
        f"{job.status}, HV {hv:.4f}, front {last.front_size}"
        if last and hv is not None
        else job.status,
        refresh=True,
    )
