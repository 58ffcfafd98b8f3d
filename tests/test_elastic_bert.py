"""The elastic BERT: Hugging Face key layout, weight slicing, exact costs, ONNX export."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from latency_tables.builder import op_models
from service.evaluation.latency import inference_session
from service.evaluation.onnx_export import export_onnx
from service.evaluation.profile import DeviceProfile
from service.supernets.bert_digits import (
    ElasticBertSupernet,
    bert_spec_from_state_dict,
    read_bert_checkpoint,
)
from service.supernets.bert_training import initialise
from service.supernets.checksum import CheckpointError
from service.supernets.elastic_bert import Bert, BertSpec, normalise_bert_state_dict

TOKEN_SPEC = BertSpec(vocab_size=50, seq_len=6, max_positions=16, type_vocab_size=2, num_classes=3)


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def random_supernet(spec: BertSpec | None = None, seed: int = 0) -> ElasticBertSupernet:
    spec = spec or BertSpec()
    model = Bert(spec)
    initialise(model, seed)
    with torch.no_grad():  # non-trivial LayerNorm and bias values, so slicing errors show
        for name, param in model.named_parameters():
            if name.endswith("bias") or "LayerNorm" in name:
                param.add_(0.1 * torch.randn_like(param))
    held_out = (torch.randn(4, spec.seq_len, spec.patch_size), torch.zeros(4, dtype=torch.int64))
    return ElasticBertSupernet(model, held_out=held_out)


def hf_state_dict(spec: BertSpec, prefix: str = "") -> dict[str, torch.Tensor]:
    """A state dict written from Hugging Face's BertForSequenceClassification names and shapes
    (not from our module), random values."""
    h, w, f = max(spec.hidden_sizes), max(spec.head_counts) * spec.head_dim, max(spec.ffn_sizes)
    shapes: dict[str, tuple[int, ...]] = {
        "embeddings.word_embeddings.weight": (spec.vocab_size, h),
        "embeddings.position_embeddings.weight": (spec.max_positions, h),
        "embeddings.token_type_embeddings.weight": (spec.type_vocab_size, h),
        "embeddings.LayerNorm.weight": (h,),
        "embeddings.LayerNorm.bias": (h,),
    }
    for i in range(max(spec.depths)):
        layer = f"encoder.layer.{i}."
        for name in ("query", "key", "value"):
            shapes[f"{layer}attention.self.{name}.weight"] = (w, h)
            shapes[f"{layer}attention.self.{name}.bias"] = (w,)
        shapes[f"{layer}attention.output.dense.weight"] = (h, w)
        shapes[f"{layer}attention.output.dense.bias"] = (h,)
        shapes[f"{layer}intermediate.dense.weight"] = (f, h)
        shapes[f"{layer}intermediate.dense.bias"] = (f,)
        shapes[f"{layer}output.dense.weight"] = (h, f)
        shapes[f"{layer}output.dense.bias"] = (h,)
        for block in ("attention.output", "output"):
            shapes[f"{layer}{block}.LayerNorm.weight"] = (h,)
            shapes[f"{layer}{block}.LayerNorm.bias"] = (h,)
    shapes.update({"pooler.dense.weight": (h, h), "pooler.dense.bias": (h,)})
    generator = torch.Generator().manual_seed(1)
    state = {prefix + k: torch.randn(s, generator=generator) for k, s in shapes.items()}
    state["classifier.weight"] = torch.randn(spec.num_classes, h, generator=generator)
    state["classifier.bias"] = torch.randn(spec.num_classes, generator=generator)
    return state


def test_a_bert_format_state_dict_loads_strictly(tmp_path: Path) -> None:
    state = hf_state_dict(TOKEN_SPEC)
    model = Bert(TOKEN_SPEC)
    model.load_state_dict(state, strict=True)
    assert sorted(model.state_dict()) == sorted(state)
    # BertForSequenceClassification's own file: `bert.` prefix, the position_ids buffer
    prefixed = hf_state_dict(TOKEN_SPEC, prefix="bert.")
    prefixed["bert.embeddings.position_ids"] = torch.arange(TOKEN_SPEC.max_positions)[None]
    torch.save(prefixed, tmp_path / "pytorch_model.bin")
    loaded = read_bert_checkpoint(tmp_path / "pytorch_model.bin", TOKEN_SPEC)
    torch.testing.assert_close(loaded.pooler.dense.weight, prefixed["bert.pooler.dense.weight"])


def test_the_sizes_of_a_bert_checkpoint_are_read_from_its_shapes(tmp_path: Path) -> None:
    state = hf_state_dict(TOKEN_SPEC, prefix="bert.")
    spec = bert_spec_from_state_dict(state, head_dim=32, seq_len=6)
    assert (spec.vocab_size, spec.max_positions, spec.type_vocab_size) == (50, 16, 2)
    assert (max(spec.hidden_sizes), max(spec.head_counts), max(spec.ffn_sizes)) == (128, 4, 192)
    assert (spec.depths, spec.num_classes) == ((1, 2, 3, 4), 3)
    supernet = ElasticBertSupernet(Bert(spec), family="bert-user", dataset="none")
    supernet.model.load_state_dict(normalise_bert_state_dict(state), strict=True)
    config = supernet.space.sample(np.random.default_rng(2), 1)[0]
    with torch.no_grad():
        assert supernet.build_subnet(config)(supernet.example_input(2)).shape == (2, 3)
    with pytest.raises(CheckpointError, match="no held-out data"):
        supernet.evaluate_accuracy([config])


def test_a_state_dict_of_another_shape_is_refused_naming_the_key(tmp_path: Path) -> None:
    state = hf_state_dict(TOKEN_SPEC)
    state["pooler.dense.weight"] = torch.zeros(3, 3)
    del state["classifier.bias"]
    torch.save(state, tmp_path / "bad.bin")
    with pytest.raises(CheckpointError, match=r"classifier\.bias|pooler\.dense\.weight"):
        read_bert_checkpoint(tmp_path / "bad.bin", TOKEN_SPEC)


def by_hand(model: Bert, x: torch.Tensor, h: int, heads: int, ffn: int) -> torch.Tensor:
    """One encoder layer composed by hand from the supernet's weights, first-k slices."""
    e, d = model.embeddings, model.spec.head_dim
    w = heads * d
    tokens = x @ e.patch_embeddings.weight[:h].T + e.patch_embeddings.bias[:h]
    tokens = torch.cat([e.cls_token[:, :, :h].expand(len(x), 1, h), tokens], 1)
    tokens = tokens + e.position_embeddings.weight[:9, :h] + e.token_type_embeddings.weight[0, :h]
    ln = e.LayerNorm
    hs = F.layer_norm(tokens, (h,), ln.weight[:h], ln.bias[:h], ln.eps)
    layer = model.encoder.layer[0]
    att = layer.attention.self
    q, k, v = (
        (hs @ lin.weight[:w, :h].T + lin.bias[:w]).view(len(x), 9, heads, d).transpose(1, 2)
        for lin in (att.query, att.key, att.value)
    )
    probs = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d), -1)
    ctx = (probs @ v).transpose(1, 2).reshape(len(x), 9, w)
    out = layer.attention.output
    a = ctx @ out.dense.weight[:h, :w].T + out.dense.bias[:h] + hs
    a = F.layer_norm(a, (h,), out.LayerNorm.weight[:h], out.LayerNorm.bias[:h], out.LayerNorm.eps)
    inner = F.gelu(
        a @ layer.intermediate.dense.weight[:ffn, :h].T + layer.intermediate.dense.bias[:ffn]
    )
    o = layer.output
    b = inner @ o.dense.weight[:h, :ffn].T + o.dense.bias[:h] + a
    b = F.layer_norm(b, (h,), o.LayerNorm.weight[:h], o.LayerNorm.bias[:h], o.LayerNorm.eps)
    pooled = torch.tanh(b[:, 0] @ model.pooler.dense.weight[:h, :h].T + model.pooler.dense.bias[:h])
    return pooled @ model.classifier.weight[:, :h].T + model.classifier.bias


def test_a_sub_network_computes_the_sliced_layer_composed_by_hand() -> None:
    supernet = random_supernet()
    config = {**supernet.space.smallest(), "hidden": 96, "l0.heads": 2, "l0.ffn": 128}
    x = supernet.example_input(3)
    expected = by_hand(supernet.model, x, 96, 2, 128)
    subnet = supernet.build_subnet(config)
    with torch.no_grad():
        torch.testing.assert_close(subnet(x), expected, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(supernet.model(x, supernet.dims(config)), expected)
    assert subnet.encoder.layer[0].attention.self.query.weight.shape == (64, 96)
    assert subnet.encoder.layer[0].intermediate.dense.weight.shape == (128, 96)


def sample_configs(supernet: ElasticBertSupernet) -> list[dict]:
    space = supernet.space
    return [space.smallest(), space.largest(), *space.sample(np.random.default_rng(0), 3)]


@pytest.mark.parametrize("spec", [BertSpec(), TOKEN_SPEC], ids=["patches", "tokens"])
def test_macs_and_params_are_exact(spec: BertSpec) -> None:
    supernet = random_supernet(spec)
    for config in sample_configs(supernet):
        subnet = supernet.build_subnet(config)
        counter = FlopCounterMode(display=False)
        with counter, torch.no_grad():
            subnet(supernet.example_input(1))
        assert supernet.macs(config) * 2 == counter.get_total_flops()
        assert supernet.params(config) == sum(p.numel() for p in subnet.parameters())


@pytest.mark.parametrize("spec", [BertSpec(), TOKEN_SPEC], ids=["patches", "tokens"])
def test_onnx_export_runs_in_onnxruntime_as_in_torch(spec: BertSpec) -> None:
    supernet = random_supernet(spec)
    space = supernet.space
    for config in (space.largest(), space.sample(np.random.default_rng(1), 1)[0]):
        subnet, x = supernet.build_subnet(config), supernet.example_input(2)
        session = inference_session(export_onnx(subnet, x), threads=1)
        (out,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
        with torch.no_grad():
            np.testing.assert_allclose(out, subnet(x).numpy(), rtol=1e-4, atol=1e-5)


def test_layer_keys_are_covered_and_each_op_exports_for_a_latency_table() -> None:
    supernet = random_supernet()
    known = set(supernet.all_layer_keys())
    keys = [k for c in sample_configs(supernet) for k in supernet.layer_keys(c)]
    assert set(keys) <= known
    assert len(supernet.layer_keys(supernet.space.largest())) == 4 + 3
    one_per_kind = list({k.split("-")[0]: k for k in keys}.values())
    for model in op_models(supernet, DeviceProfile(batch_size=2), one_per_kind).values():
        session = inference_session(model.onnx_bytes, threads=1)
        x = np.random.default_rng(0).standard_normal((2, *model.input_shape), np.float32)
        (out,) = session.run(None, {session.get_inputs()[0].name: x})
        assert out.shape[0] == 2 and np.isfinite(out).all()  # op modules carry random weights
