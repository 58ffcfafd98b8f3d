"""Where validations run: the executor interface and the local executor (the default).

A worker submits networks one by one and collects them as they finish (`wait_any`), so it can
store each result at once and propose more while others are still running (no global barrier).
`local` validates on this host, everything submitted since the last wait in one call (the
batch's host latencies interleaved, as `validate_subnets_detailed` does); `ray`
(`service.evaluation.ray_executor`, extra `hwnas[ray]`) runs them on a pool of Ray actors.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from service.evaluation.profile import DeviceProfile
from service.evaluation.validation import SubnetValidation, validate_subnets_detailed
from service.supernets.protocol import Supernet
from service.supernets.space import Config


@dataclass(frozen=True)
class Submitted:
    """A network handed to an executor; `key` (its config hash) names it until it finishes."""

    key: str
    config: Config


@dataclass(frozen=True)
class Finished:
    """A submitted network's outcome: its validation, or why it has none (`error`)."""

    submitted: Submitted
    validation: SubnetValidation | None
    error: str | None = None


class Executor(Protocol):
    """Runs validations of one supernet (with one set of host devices) somewhere."""

    def submit(self, key: str, config: Config) -> Submitted:
        """Queue a validation of `config`; returns at once."""
        ...

    def wait_any(self, timeout_s: float) -> list[Finished]:
        """Block until at least one submitted network finishes or `timeout_s` passes; every
        network finished by then (each reported once)."""
        ...

    def cancel(self, key: str) -> None:
        """Drop a submitted network; it is never reported."""
        ...

    @property
    def pending(self) -> int:
        """Submitted and not reported yet."""
        ...

    def close(self) -> None: ...


class LocalExecutor:
    """Validates on this host, in the worker's own process (today's behaviour)."""

    def __init__(self, supernet: Supernet, devices: Sequence[DeviceProfile] = ()) -> None:
        self.supernet, self.devices = supernet, tuple(devices)
        self._queued: dict[str, Submitted] = {}

    def submit(self, key: str, config: Config) -> Submitted:
        submitted = Submitted(key, config)
        self._queued[key] = submitted
        return submitted

    def wait_any(self, timeout_s: float) -> list[Finished]:
        """Everything queued, validated now in one call (timeout_s does not apply)."""
        queued, self._queued = list(self._queued.values()), {}
        if not queued:
            return []
        validations = validate_subnets_detailed(
            self.supernet, [s.config for s in queued], self.devices
        )
        return [Finished(s, v) for s, v in zip(queued, validations, strict=True)]

    def cancel(self, key: str) -> None:
        self._queued.pop(key, None)

    @property
    def pending(self) -> int:
        return len(self._queued)

    def close(self) -> None:
        self._queued.clear()
