"""The Ray executor: validations on a pool of Ray actors (extra `hwnas[ray]`).

Each accuracy actor loads the supernet and its data once, in its constructor, and validates one
network at a time with the CPU threads (and, when the cluster has GPUs, the GPU fraction) it asked
Ray for. Host latency is measured on dedicated actors, so a timing never shares cores with
accuracy work. The executor hands a network to an actor only when that actor is idle, so a slow
validation holds one actor and never the others, and one worker's pool is all one job can take.
An actor that dies takes its network with it: the actor is replaced and the network re-queued
once; a second loss is reported as an error.
"""

from __future__ import annotations

import logging
from collections import Counter, deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import ray
from ray.exceptions import RayActorError

from service.evaluation.executor import Finished, Submitted
from service.evaluation.latency import OnnxModel, measure_interleaved
from service.evaluation.profile import DeviceProfile, LatencyStats
from service.evaluation.validation import SubnetValidation, exact_metrics, input_shape, subnet_onnx
from service.supernets.data_options import DataOptions

log = logging.getLogger("hwnas.ray")
Kind = Literal["accuracy", "latency"]
MAX_TRIES = 2  # a network whose actor died is re-queued once


@ray.remote(max_restarts=0)
class AccuracyActor:
    """Holds one supernet and its evaluation data; validates accuracy and exact metrics."""

    def __init__(
        self, family: str, checkpoint: str | None, options: DataOptions | None, threads: int
    ) -> None:
        import torch

        from service.supernets.registry import load_supernet

        torch.set_num_threads(threads)
        self.supernet = load_supernet(family, checkpoint, options)

    def validate(self, config: Mapping[str, Any]) -> dict[str, float]:
        canonical = self.supernet.canonical(config)
        accuracy = self.supernet.evaluate_accuracy([canonical])[0]
        return {"accuracy": accuracy, **exact_metrics(self.supernet, canonical)}


@ray.remote(max_restarts=0)
class LatencyActor:
    """Holds one supernet; measures host latency of one network on every host profile."""

    def __init__(
        self,
        family: str,
        checkpoint: str | None,
        options: DataOptions | None,
        devices: Sequence[DeviceProfile],
    ) -> None:
        from service.supernets.registry import load_supernet

        self.supernet = load_supernet(family, checkpoint, options)
        self.devices = list(devices)

    def measure(self, config: Mapping[str, Any]) -> dict[str, LatencyStats]:
        canonical = self.supernet.canonical(config)
        latency: dict[str, LatencyStats] = {}
        for device in self.devices:
            model = OnnxModel(
                subnet_onnx(self.supernet, canonical, device.batch_size),
                input_shape(self.supernet, canonical),
            )
            latency[device.name] = measure_interleaved({0: model}, device)[0]["wall"]
        return latency


@dataclass(frozen=True)
class RayPool:
    """How many actors of each kind, and what each asks Ray for."""

    accuracy_actors: int = 2
    accuracy_cpus: float = 1.0
    gpus_per_actor: float = 0.25  # asked only when the cluster has GPUs
    latency_actors: int = 1


@dataclass
class _Network:
    submitted: Submitted
    parts: dict[str, Any] = field(default_factory=dict)


def connect(address: str) -> None:
    """Join the Ray cluster at `address` (`auto`, `ray://host:10001` or `local` for an
    in-process one), unless this process already has."""
    if not ray.is_initialized():
        ray.init(address=None if address == "local" else address, log_to_driver=False)


class RayExecutor:
    """Validations of one supernet on Ray actors; see the module docstring."""

    def __init__(
        self,
        family: str,
        checkpoint: str | None,
        options: DataOptions | None = None,
        devices: Sequence[DeviceProfile] = (),
        pool: RayPool = RayPool(),
    ) -> None:
        self.family, self.checkpoint, self.options = family, checkpoint, options
        self.devices, self.pool = devices, pool
        self.kinds: tuple[Kind, ...] = ("accuracy", "latency") if devices else ("accuracy",)
        has_gpu = ray.cluster_resources().get("GPU", 0) > 0
        self._gpus = pool.gpus_per_actor if has_gpu else 0.0
        self._idle: dict[Kind, list[Any]] = {"accuracy": [], "latency": []}
        for kind in self.kinds:
            count = pool.accuracy_actors if kind == "accuracy" else pool.latency_actors
            self._idle[kind] = [self._new_actor(kind) for _ in range(count)]
        self._queues: dict[Kind, deque[str]] = {"accuracy": deque(), "latency": deque()}
        self._running: dict[Any, tuple[str, Kind, Any]] = {}  # ref → (key, kind, actor)
        self._networks: dict[str, _Network] = {}
        # validations started per kind and network (a re-queued one counts twice)
        self.tries: dict[Kind, Counter[str]] = {"accuracy": Counter(), "latency": Counter()}

    def submit(self, key: str, config: Mapping[str, Any]) -> Submitted:
        submitted = Submitted(key, dict(config))
        self._networks[key] = _Network(submitted)
        for kind in self.kinds:
            self._queues[kind].append(key)
        self._dispatch()
        return submitted

    def wait_any(self, timeout_s: float) -> list[Finished]:
        self._dispatch()
        if not self._running:
            return []
        ready, _ = ray.wait(list(self._running), num_returns=1, timeout=timeout_s)
        if ready:  # and whatever else is done by now
            ready, _ = ray.wait(list(self._running), num_returns=len(self._running), timeout=0)
        finished = [f for ref in ready if (f := self._collect(ref)) is not None]
        self._dispatch()
        return finished

    def cancel(self, key: str) -> None:
        self._networks.pop(key, None)
        for queue in self._queues.values():
            if key in queue:
                queue.remove(key)

    @property
    def pending(self) -> int:
        return len(self._networks)

    def running(self) -> dict[str, Any]:
        """The accuracy actor each running network is on, by key."""
        return {key: actor for key, kind, actor in self._running.values() if kind == "accuracy"}

    def close(self) -> None:
        actors = [a for idle in self._idle.values() for a in idle]
        actors += [actor for _, _, actor in self._running.values()]
        for actor in actors:
            ray.kill(actor)
        self._running.clear()
        self._networks.clear()

    def _new_actor(self, kind: Kind) -> Any:
        if kind == "accuracy":
            threads = max(1, int(self.pool.accuracy_cpus))
            options = {"num_cpus": self.pool.accuracy_cpus, "num_gpus": self._gpus}
            actor_class: Any = AccuracyActor  # ray.remote wraps the class; mypy sees the class
            return actor_class.options(**options).remote(
                self.family, self.checkpoint, self.options, threads
            )
        cpus = max(d.threads for d in self.devices)
        latency_class: Any = LatencyActor
        return latency_class.options(num_cpus=cpus).remote(
            self.family, self.checkpoint, self.options, list(self.devices)
        )

    def _dispatch(self) -> None:
        for kind in self.kinds:
            queue, idle = self._queues[kind], self._idle[kind]
            while queue and idle:
                key = queue.popleft()
                if key not in self._networks:
                    continue  # cancelled
                actor = idle.pop()
                config = self._networks[key].submitted.config
                self.tries[kind][key] += 1
                if kind == "accuracy":
                    ref = actor.validate.remote(config)
                else:
                    ref = actor.measure.remote(config)
                self._running[ref] = (key, kind, actor)

    def _collect(self, ref: Any) -> Finished | None:
        key, kind, actor = self._running.pop(ref)
        try:
            value = ray.get(ref)
        except RayActorError as lost:
            log.warning("a %s actor died validating %s; replacing it", kind, key)
            self._idle[kind].append(self._new_actor(kind))
            return self._retry(key, kind, lost)
        self._idle[kind].append(actor)
        network = self._networks.get(key)
        if network is None:
            return None  # cancelled while it ran
        network.parts[kind] = value
        if set(network.parts) != set(self.kinds):
            return None
        del self._networks[key]
        return Finished(network.submitted, self._validation(network))

    def _retry(self, key: str, kind: Kind, lost: Exception) -> Finished | None:
        network = self._networks.get(key)
        if network is None:
            return None
        if self.tries[kind][key] >= MAX_TRIES:
            del self._networks[key]
            self.cancel(key)
            return Finished(network.submitted, None, f"lost {MAX_TRIES} actors: {lost}")
        self._queues[kind].appendleft(key)
        return None

    def _validation(self, network: _Network) -> SubnetValidation:
        metrics = dict(network.parts["accuracy"])
        latency: dict[str, LatencyStats] = network.parts.get("latency", {})
        metrics.update({f"latency@{name}": s.median_ms for name, s in latency.items()})
        return SubnetValidation(network.submitted.config, metrics, latency)
