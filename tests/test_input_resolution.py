"""A family with a resolution gene: every latency path measures a sub-network at its own input
size (ONNX export, host measurement, the agents' task rows), not at the largest network's."""

from __future__ import annotations

from collections.abc import Iterator

import factories
import onnx
import pytest
import torch
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from service.db.engine import transaction
from service.db.models import MeasurementTask
from service.evaluation.latency import OnnxModel, measure_interleaved
from service.evaluation.profile import DeviceProfile
from service.evaluation.validation import input_shape, subnet_onnx
from service.supernets.ofa_mbv3 import OFAMobileNetV3Supernet
from service.worker.latency import (
    AgentDevice,
    AgentMeasurementError,
    JobLatencyPlan,
    measure_on_agents,
)

QUICK = DeviceProfile(
    batch_size=1, warmup_runs=1, warmup_seconds=0.0, timed_runs=3, passes=1, speed_probe=False
)


@pytest.fixture(scope="module")
def supernet() -> Iterator[OFAMobileNetV3Supernet]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield OFAMobileNetV3Supernet.random("ofa-mbv3-w1.0", seed=0)
    torch.set_num_threads(threads)


def _at(supernet: OFAMobileNetV3Supernet, resolution: int) -> dict:
    return supernet.canonical({**supernet.space.smallest(), "resolution": resolution})


def test_onnx_and_input_shape_follow_the_resolution_gene(supernet) -> None:
    small, large = _at(supernet, 128), _at(supernet, 224)
    assert input_shape(supernet, small) == (3, 128, 128)
    assert input_shape(supernet, large) == (3, 224, 224)
    graph = onnx.load_from_string(subnet_onnx(supernet, small, 2)).graph
    dims = [d.dim_value for d in graph.input[0].type.tensor_type.shape.dim]
    assert dims == [2, 3, 128, 128]


def test_host_latency_is_measured_on_each_networks_own_input(supernet) -> None:
    # what validate_subnets_detailed times: onnxruntime refuses a feed of another shape
    configs = [_at(supernet, 128), _at(supernet, 224)]
    models = {
        i: OnnxModel(subnet_onnx(supernet, c, QUICK.batch_size), input_shape(supernet, c))
        for i, c in enumerate(configs)
    }
    measured = measure_interleaved(models, QUICK)
    assert all(measured[i]["wall"].median_ms > 0 for i in range(len(configs)))


def test_agent_tasks_carry_each_networks_input_shape(
    supernet, session_factory: sessionmaker[Session]
) -> None:
    with transaction(session_factory) as session:
        device = factories.device(session, kind="agent")
        net = factories.supernet(session)
        device_id, supernet_id = device.id, net.id
    configs = {"small": _at(supernet, 128), "large": _at(supernet, 224)}
    shapes = {h: input_shape(supernet, c) for h, c in configs.items()}
    plan = JobLatencyPlan(agents=[AgentDevice(device_id, "edge", 1)])
    with pytest.raises(AgentMeasurementError):  # no agent runs: the wait gives up at once
        measure_on_agents(
            session_factory, plan, None, supernet_id, shapes, configs, lambda: "held", 0.01, 0.0
        )
    with transaction(session_factory) as session:
        tasks = session.scalars(select(MeasurementTask)).all()
        stored = {t.config_hash: t.input_shape for t in tasks}
    assert stored == {"small": [3, 128, 128], "large": [3, 224, 224]}
