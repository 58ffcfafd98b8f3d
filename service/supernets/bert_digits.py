"""Elastic BERT supernets in hwnas, and the built-in `bert-digits` family trained on them.

Genes: `hidden` (64 / 96 / 128), `depth` (1–4 layers), per layer `l{i}.heads` (1–4 heads of 32)
and `l{i}.ffn` (64–256 intermediate neurons), active while `depth > i`.

Costs are exact: MACs of every linear layer (patch embedding, query/key/value, attention output,
both FFN layers, pooler, classifier) plus the two attention matmuls (Q·Kᵀ and softmax·V, each
tokens² × heads × head_dim); embedding look-ups, LayerNorm, softmax and GELU count none, as in
`torch.utils.flop_counter` (whose FLOPs are twice these MACs). Params are those of the built
sub-network. Layer keys: one per embedding, encoder layer, pooler and classifier.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import torch
from torch import nn

from service.supernets.accuracy import top1_accuracy
from service.supernets.bert_digits_data import DATASET_NAME, RowDigitsSplits, load_splits
from service.supernets.checksum import CheckpointError, verified_sha256
from service.supernets.elastic_bert import (
    Bert,
    BertLayer,
    BertSpec,
    Dims,
    normalise_bert_state_dict,
)
from service.supernets.space import Config

FAMILY = "bert-digits"
CHECKPOINT_DIR = Path(__file__).parent / "checkpoints"
DEFAULT_CHECKPOINT = CHECKPOINT_DIR / "bert_digits.pt"


@dataclass(frozen=True)
class BertOp:
    """One op of a sub-network and its exact costs; `key` names it in a latency table."""

    key: str
    macs: int
    params: int


def _fields(key: str) -> tuple[str, dict[str, int]]:
    kind, *fields = key.split("-")
    return kind, {name: int(value) for name, value in (f.split(":", 1) for f in fields)}


def spec_ops(spec: BertSpec, dims: Dims) -> list[BertOp]:
    """The ops of sub-network `dims` in execution order."""
    h, t, c = dims.hidden, spec.tokens, spec.num_classes
    shared = spec.max_positions * h + spec.type_vocab_size * h + 2 * h
    if spec.vocab_size:
        embed = BertOp(
            f"Embeddings-tokens:{t}-vocab:{spec.vocab_size}-hidden:{h}", 0,
            spec.vocab_size * h + shared,
        )  # fmt: skip
    else:
        p = spec.patch_size
        embed = BertOp(
            f"Embeddings-tokens:{t}-patch:{p}-hidden:{h}", spec.seq_len * p * h,
            p * h + h + h + shared,
        )  # fmt: skip
    ops = [embed]
    for heads, ffn in dims.layers:
        w = heads * spec.head_dim
        macs = t * (3 * h * w + w * h + 2 * h * ffn) + 2 * t * t * w
        params = 3 * (h * w + w) + (w * h + h) + (h * ffn + ffn) + (ffn * h + h) + 4 * h
        key = f"BertLayer-tokens:{t}-hidden:{h}-heads:{heads}-head_dim:{spec.head_dim}-ffn:{ffn}"
        ops.append(BertOp(key, macs, params))
    ops.append(BertOp(f"Pooler-hidden:{h}", h * h, h * h + h))
    ops.append(BertOp(f"Logits-input:{h}-output:{c}", h * c, h * c + c))
    return ops


class _LayerOp(nn.Module):
    def __init__(self, layer: BertLayer, hidden: int, heads: int, ffn: int) -> None:
        super().__init__()
        self.layer, self.sizes = layer, (hidden, heads, ffn)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(x, *self.sizes)


class _PoolerOp(nn.Module):
    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.dense = nn.Linear(hidden, hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.dense(x[:, 0]))


class _EmbeddingsOp(nn.Module):
    def __init__(self, spec: BertSpec, hidden: int) -> None:
        super().__init__()
        self.embeddings, self.hidden = Bert(spec, Dims(hidden, ())).embeddings, hidden

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.embeddings(x, self.hidden)


class ElasticBertSupernet:
    """The `Supernet` protocol over an elastic `Bert` and a labelled held-out split."""

    def __init__(
        self,
        model: Bert,
        family: str = FAMILY,
        dataset: str = DATASET_NAME,
        held_out: tuple[torch.Tensor, torch.Tensor] | None = None,
        checkpoint_sha256: str | None = None,
    ) -> None:
        self.model = model.eval()
        self.spec = model.spec
        self.space = model.spec.search_space()
        self.family, self.dataset = family, dataset
        self._held_out = held_out
        self.checkpoint_sha256 = checkpoint_sha256

    @cached_property
    def held_out(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self._held_out is not None:
            return self._held_out
        if self.spec != BertSpec():
            raise CheckpointError(
                f"family {self.family!r} has no held-out data: pass held_out=(inputs, labels)"
            )
        splits: RowDigitsSplits = load_splits()
        return splits.held_out_images, splits.held_out_labels

    def canonical(self, config: Mapping[str, Any]) -> Config:
        return self.space.canonical(config)

    def dims(self, config: Mapping[str, Any]) -> Dims:
        return Dims.of(self.canonical(config))

    def ops(self, config: Mapping[str, Any]) -> list[BertOp]:
        return spec_ops(self.spec, self.dims(config))

    def layer_keys(self, config: Mapping[str, Any]) -> list[str]:
        return [op.key for op in self.ops(config)]

    def all_layer_keys(self) -> list[str]:
        """Every distinct op key any sub-network runs (what a latency table must cover)."""
        keys: dict[str, None] = {}
        spec = self.spec
        for hidden in spec.hidden_sizes:
            layers = tuple((k, f) for k in spec.head_counts for f in spec.ffn_sizes)
            keys.update(dict.fromkeys(op.key for op in spec_ops(spec, Dims(hidden, layers))))
        return list(keys)

    def macs(self, config: Mapping[str, Any]) -> int:
        return sum(op.macs for op in self.ops(config))

    def params(self, config: Mapping[str, Any]) -> int:
        return sum(op.params for op in self.ops(config))

    def example_input(self, batch: int, config: Mapping[str, Any] | None = None) -> torch.Tensor:
        generator = torch.Generator().manual_seed(0)
        spec = self.spec
        if spec.vocab_size:
            return torch.randint(spec.vocab_size, (batch, spec.seq_len), generator=generator)
        return torch.randn(batch, spec.seq_len, spec.patch_size, generator=generator)

    def build_subnet(self, config: Mapping[str, Any]) -> nn.Module:
        """A standalone sub-network (LayerNorm keeps no statistics: nothing to recalibrate)."""
        return self.model.build_static(self.dims(config))

    def evaluate_accuracy(self, configs: Sequence[Mapping[str, Any]]) -> list[float]:
        images, labels = self.held_out
        return [top1_accuracy(self.build_subnet(c), images, labels) for c in configs]

    def op_module(self, key: str) -> tuple[nn.Module, tuple[int, ...]]:
        """A module running just the op a layer key names, and its input shape (no batch)."""
        kind, f = _fields(key)
        spec = self.spec
        if kind == "Embeddings":
            shape = (spec.seq_len,) if spec.vocab_size else (spec.seq_len, spec.patch_size)
            return _EmbeddingsOp(spec, f["hidden"]).eval(), shape
        if kind == "BertLayer":
            h, k, ffn = f["hidden"], f["heads"], f["ffn"]
            layer = BertLayer(h, k, f["head_dim"], ffn, spec.layer_norm_eps)
            return _LayerOp(layer, h, k, ffn).eval(), (f["tokens"], h)
        if kind == "Pooler":
            return _PoolerOp(f["hidden"]).eval(), (spec.tokens, f["hidden"])
        if kind == "Logits":
            return nn.Linear(f["input"], f["output"]).eval(), (f["input"],)
        raise ValueError(f"unknown op kind {kind!r} in key {key!r}")


def read_bert_checkpoint(path: Path, spec: BertSpec | None = None) -> Bert:
    """A `Bert` of `spec` with the weights of a BERT-format state dict (`bert.`-prefixed keys of
    `BertForSequenceClassification` or a `BertModel`'s own), loaded with `strict=True`; without
    `spec`, the sizes are read from the state dict (`bert_spec_from_state_dict`)."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    model = Bert(spec or bert_spec_from_state_dict(state))
    try:
        model.load_state_dict(normalise_bert_state_dict(state), strict=True)
    except RuntimeError as error:
        raise CheckpointError(f"checkpoint {path} does not fit this BERT: {error}") from error
    return model


def bert_spec_from_state_dict(
    state: Mapping[str, torch.Tensor], head_dim: int = 64, seq_len: int = 128
) -> BertSpec:
    """The largest sizes of a BERT-format state dict (`BertModel` or `BertForSequenceClassification`
    keys) read from its shapes; heads are `head_dim` wide (BERT's 64). Elastic choices: hidden
    ½, ¾ and all of it, 1 head up to all, FFN ¼ to all in quarters, 1 layer up to all."""
    state = normalise_bert_state_dict(state)
    hidden = state["embeddings.LayerNorm.weight"].shape[0]
    width, _ = state["encoder.layer.0.attention.self.query.weight"].shape
    ffn, _ = state["encoder.layer.0.intermediate.dense.weight"].shape
    layers = len({k.split(".")[2] for k in state if k.startswith("encoder.layer.")})
    if width % head_dim:
        raise CheckpointError(f"attention width {width} is not a multiple of head_dim {head_dim}")
    return BertSpec(
        hidden_sizes=tuple(sorted({hidden // 2, 3 * hidden // 4, hidden})),
        head_counts=tuple(range(1, width // head_dim + 1)),
        head_dim=head_dim,
        ffn_sizes=tuple(sorted({ffn // 4, ffn // 2, 3 * ffn // 4, ffn})),
        depths=tuple(range(1, layers + 1)),
        vocab_size=state["embeddings.word_embeddings.weight"].shape[0],
        seq_len=seq_len,
        max_positions=state["embeddings.position_embeddings.weight"].shape[0],
        type_vocab_size=state["embeddings.token_type_embeddings.weight"].shape[0],
        num_classes=state["classifier.weight"].shape[0],
    )


def load_bert_digits(checkpoint: str | Path | None = None) -> ElasticBertSupernet:
    """Load weights, verifying the sha256 recorded in the manifest beside the checkpoint."""
    path = Path(checkpoint) if checkpoint else DEFAULT_CHECKPOINT
    digest = verified_sha256(path, "hwnas supernet train bert-digits")
    return ElasticBertSupernet(read_bert_checkpoint(path, BertSpec()), checkpoint_sha256=digest)
