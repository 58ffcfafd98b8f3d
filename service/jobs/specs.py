"""Turn a job request into a checked `JobSpec`: known metrics, devices able to measure."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, get_args

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.catalog.supernets import find_supernet
from service.db.models import Device, Supernet
from service.errors import InvalidInputError
from service.latency.sources import (
    LatencySource,
    can_measure_latency,
    latency_devices,
    resolve_latency_sources,
    why_cannot_measure,
)
from service.search.metrics import MetricName
from service.search.spec import (
    Objective,
    SearchSpec,
    Tactic,
    parse_constraint,
    parse_objective,
    spec_error_text,
)

DEVICE_FREE_METRICS = ("accuracy", "macs", "params")
DEVICE_METRICS = ("latency",)
MAX_BUDGET = 10_000


class JobRequest(Protocol):
    """What a job request gives (the API's `JobIn` is one); the domain never sees the schema."""

    @property
    def supernet(self) -> str: ...

    @property
    def objectives(self) -> Sequence[str]: ...

    @property
    def constraints(self) -> Sequence[str]: ...

    @property
    def budget(self) -> int: ...

    @property
    def tactic(self) -> Tactic: ...

    @property
    def seed(self) -> int: ...

    @property
    def algorithm(self) -> str | None: ...

    @property
    def population_size(self) -> int | None: ...

    @property
    def initial_size(self) -> int | None: ...

    @property
    def batch_size(self) -> int | None: ...

    @property
    def predictors(self) -> Sequence[str]: ...

    @property
    def exact_features(self) -> bool: ...

    @property
    def latency_sources(self) -> Mapping[str, str]: ...

    @property
    def hv_bounds(self) -> Mapping[str, tuple[float, float]]: ...


class UnknownSupernetInputError(InvalidInputError):
    """A job body names an unregistered supernet: 422 (the catalog's 404 is a path id)."""

    code = "unknown_supernet"


class UnknownMetricError(InvalidInputError):
    code = "unknown_metric"


class UnknownDeviceInputError(InvalidInputError):
    """A job body names an unregistered device: 422 (the catalog's 404 is a path id)."""

    code = "unknown_device"


class DeviceCannotMeasureError(InvalidInputError):
    code = "device_cannot_measure"


class InvalidObjectiveError(InvalidInputError):
    code = "invalid_objective"


class InvalidConstraintError(InvalidInputError):
    code = "invalid_constraint"


class BudgetOutOfRangeError(InvalidInputError):
    code = "budget_out_of_range"


class InvalidSpecError(InvalidInputError):
    code = "invalid_spec"


@dataclass(frozen=True)
class JobSpec:
    """A job as `jobs.spec` stores it: the search question, and where each latency device's
    figures come from (a device not named takes its kind's default)."""

    search: SearchSpec
    latency_sources: dict[str, LatencySource] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The search spec's fields with `latency_sources` beside them (the stored shape)."""
        return {**self.search.to_json(), "latency_sources": dict(self.latency_sources)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> JobSpec:
        """Read a stored spec; one stored without `latency_sources` takes the defaults."""
        fields = dict(data)
        sources = dict(fields.pop("latency_sources", None) or {})
        bad = {device: s for device, s in sources.items() if s not in get_args(LatencySource)}
        if bad:
            raise ValueError(
                f"latency_sources {bad} must each be one of {list(get_args(LatencySource))}"
            )
        return cls(SearchSpec.from_json(fields), sources)


@dataclass(frozen=True)
class CheckedJob:
    supernet: Supernet
    job_spec: JobSpec

    @property
    def spec(self) -> SearchSpec:
        return self.job_spec.search

    def spec_json(self) -> dict[str, Any]:
        """The job spec as stored with the job."""
        return self.job_spec.to_json()


def check_job_request(session: Session, request: JobRequest) -> CheckedJob:
    """Resolve the supernet and parse the spec; raise a 422 that says what to fix otherwise."""
    supernet = find_supernet(session, request.supernet)
    if supernet is None:
        raise UnknownSupernetInputError(
            f"no supernet named {request.supernet!r} is registered; register it with "
            "POST /v1/supernets or list them with GET /v1/supernets"
        )
    if not 1 <= request.budget <= MAX_BUDGET:
        raise BudgetOutOfRangeError(
            f"budget {request.budget} is out of range; give 1..{MAX_BUDGET} validations"
        )
    try:
        objectives = [parse_objective(text) for text in request.objectives]
    except ValueError as exc:
        raise InvalidObjectiveError(str(exc)) from exc
    try:
        constraints = [parse_constraint(text) for text in request.constraints]
    except ValueError as exc:
        raise InvalidConstraintError(str(exc)) from exc
    try:
        spec = SearchSpec(
            objectives=objectives,
            constraints=constraints,
            budget=request.budget,
            tactic=request.tactic,
            seed=request.seed,
            algorithm=request.algorithm,
            population_size=request.population_size,
            initial_size=request.initial_size,
            batch_size=request.batch_size,
            predictors=tuple(request.predictors),
            exact_features=request.exact_features,
            hv_bounds=hypervolume_bounds(supernet, objectives, request.hv_bounds),
        )
    except ValueError as exc:
        raise InvalidSpecError(spec_error_text(exc)) from exc
    for metric in spec.metrics:
        check_metric(session, metric)
    sources = resolve_latency_sources(
        session, supernet, latency_devices(session, spec), request.latency_sources
    )
    return CheckedJob(supernet, JobSpec(spec, dict(sources)))


def hypervolume_bounds(
    supernet: Supernet,
    objectives: Sequence[Objective],
    requested: Mapping[str, tuple[float, float]],
) -> dict[str, tuple[float, float]]:
    """The client's bounds, else the supernet's exact range for MACs and params objectives, so
    that jobs on one supernet report comparable hypervolumes."""
    metrics = [o.metric for o in objectives]
    unknown = sorted(set(requested) - set(metrics))
    if unknown:
        raise InvalidSpecError(
            f"hv_bounds names {unknown}, which are not objectives; give bounds for {metrics}"
        )
    bounds = {m: (float(low), float(high)) for m, (low, high) in requested.items()}
    for metric in metrics:
        exact = (supernet.exact_ranges or {}).get(metric)
        if metric not in bounds and exact and exact[0] < exact[1]:
            bounds[metric] = (float(exact[0]), float(exact[1]))
    return bounds


def check_metric(session: Session, metric: str) -> None:
    parsed = MetricName.parse(metric)
    name, device_name = parsed.name, parsed.device
    if name in DEVICE_FREE_METRICS:
        if device_name:
            raise UnknownMetricError(
                f"metric {metric!r}: {name!r} does not depend on a device; write {name!r}"
            )
        return
    if name not in DEVICE_METRICS:
        raise UnknownMetricError(
            f"unknown metric {metric!r}; known metrics are {list(DEVICE_FREE_METRICS)} and "
            "'latency@<device>' (ms)"
        )
    if not device_name:
        raise UnknownMetricError(f"metric {metric!r} needs a device, e.g. 'latency@host'")
    device = session.scalar(select(Device).where(Device.name == device_name))
    if device is None:
        raise UnknownDeviceInputError(
            f"metric {metric!r} names device {device_name!r}, which is not registered; "
            "register it with POST /v1/devices or list them with GET /v1/devices"
        )
    if not can_measure_latency(session, device):
        raise DeviceCannotMeasureError(why_cannot_measure(device))
