"""The executor a worker validates with, from its settings (`HWNAS_EXECUTOR`)."""

from __future__ import annotations

from service.config import Settings
from service.evaluation.executor import Executor, LocalExecutor
from service.supernets.protocol import Supernet
from service.worker.plan import JobPlan


def executor_key(plan: JobPlan) -> str:
    """Jobs with the same supernet and host devices share one executor (one actor pool)."""
    devices = sorted(repr(d) for d in plan.devices)
    return f"{plan.family}|{plan.checkpoint}|{plan.data_options!r}|{devices}"


def make_executor(settings: Settings, plan: JobPlan, supernet: Supernet) -> Executor:
    if settings.executor == "local":
        return LocalExecutor(supernet, plan.devices)
    from service.evaluation import ray_executor  # the hwnas[ray] extra

    ray_executor.connect(settings.ray_address)
    pool = ray_executor.RayPool(
        accuracy_actors=settings.ray_accuracy_actors,
        accuracy_cpus=settings.ray_accuracy_cpus,
        gpus_per_actor=settings.ray_gpus_per_actor,
        latency_actors=settings.ray_latency_actors,
    )
    return ray_executor.RayExecutor(
        plan.family, plan.checkpoint, plan.data_options, plan.devices, pool
    )
