"""An elastic BERT encoder: elastic depth, attention heads, FFN width and hidden size.

The module tree, and so the `state_dict`, follows Hugging Face's `BertModel` (`embeddings.*`,
`encoder.layer.{i}.attention.self.query|key|value`, `attention.output.dense|LayerNorm`,
`intermediate.dense`, `output.dense|LayerNorm`, `pooler.dense`) plus the `classifier` of
`BertForSequenceClassification`, so a BERT-format checkpoint loads with `strict=True`.

Sub-networks take weight slices as DynaBERT and HAT do: the first `depth` layers; in a layer the
first `heads` heads (query/key/value output rows, attention-output input columns, a head keeps its
width `head_dim`) and the first `ffn` intermediate neurons (rows of `intermediate.dense`, columns
of `output.dense`); the first `hidden` dimensions of every embedding, projection and LayerNorm
(LayerNorm normalises over the kept dimensions, with the first `hidden` of its weight and bias).
DynaBERT sorts heads and neurons by importance before training so that "first" means "most
important"; a supernet trained with these slices from the start needs no sorting.

With `vocab_size == 0` the input is a sequence of float patches (a tiny ViT's row tokens):
`embeddings.patch_embeddings` (a linear map of one patch) and `embeddings.cls_token` replace
`embeddings.word_embeddings`; every other key is BERT's.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from service.supernets.space import ActiveWhen, Gene, SearchSpace


@dataclass(frozen=True)
class BertSpec:
    """The supernet's largest sizes and the choices of each elastic dimension."""

    hidden_sizes: tuple[int, ...] = (64, 96, 128)
    head_counts: tuple[int, ...] = (1, 2, 3, 4)
    head_dim: int = 32
    ffn_sizes: tuple[int, ...] = (64, 128, 192)
    depths: tuple[int, ...] = (1, 2, 3, 4)
    vocab_size: int = 0  # 0: float patches, else token ids
    patch_size: int = 8
    seq_len: int = 8  # input tokens (patches or ids), without the [CLS] a patch input gets
    max_positions: int = 9
    type_vocab_size: int = 1
    num_classes: int = 10
    layer_norm_eps: float = 1e-12

    @property
    def tokens(self) -> int:
        """Sequence length inside the encoder: a patch input gets a [CLS] token in front."""
        return self.seq_len + (0 if self.vocab_size else 1)

    def search_space(self) -> SearchSpace:
        genes = [Gene("hidden", self.hidden_sizes), Gene("depth", self.depths)]
        for i in range(max(self.depths)):
            cond = ActiveWhen("depth", i + 1) if i + 1 > min(self.depths) else None
            genes.append(Gene(f"l{i}.heads", self.head_counts, cond))
            genes.append(Gene(f"l{i}.ffn", self.ffn_sizes, cond))
        return SearchSpace(tuple(genes))


@dataclass(frozen=True)
class Dims:
    """One sub-network's sizes: hidden size and (heads, ffn) per layer run."""

    hidden: int
    layers: tuple[tuple[int, int], ...]

    @classmethod
    def of(cls, config: Mapping[str, Any]) -> Dims:
        depth = int(config["depth"])
        layers = tuple((int(config[f"l{i}.heads"]), int(config[f"l{i}.ffn"])) for i in range(depth))
        return cls(int(config["hidden"]), layers)


def _linear(x: torch.Tensor, layer: nn.Linear, out: int, inp: int) -> torch.Tensor:
    """HAT's LinearSuper: the first `out` rows and `inp` columns of the weight."""
    bias = layer.bias[:out] if layer.bias is not None else None
    return F.linear(x, layer.weight[:out, :inp], bias)


def _layer_norm(x: torch.Tensor, norm: nn.LayerNorm, dim: int) -> torch.Tensor:
    return F.layer_norm(x, (dim,), norm.weight[:dim], norm.bias[:dim], norm.eps)


class _QKV(nn.Module):
    def __init__(self, hidden: int, width: int) -> None:
        super().__init__()
        self.query = nn.Linear(hidden, width)
        self.key = nn.Linear(hidden, width)
        self.value = nn.Linear(hidden, width)


class _DenseNorm(nn.Module):
    def __init__(self, inp: int, hidden: int, eps: float) -> None:
        super().__init__()
        self.dense = nn.Linear(inp, hidden)
        self.LayerNorm = nn.LayerNorm(hidden, eps=eps)


class _Attention(nn.Module):
    def __init__(self, hidden: int, width: int, eps: float) -> None:
        super().__init__()
        self.self = _QKV(hidden, width)
        self.output = _DenseNorm(width, hidden, eps)


class _Intermediate(nn.Module):
    def __init__(self, hidden: int, ffn: int) -> None:
        super().__init__()
        self.dense = nn.Linear(hidden, ffn)


class BertLayer(nn.Module):
    def __init__(self, hidden: int, heads: int, head_dim: int, ffn: int, eps: float) -> None:
        super().__init__()
        self.head_dim = head_dim
        self.attention = _Attention(hidden, heads * head_dim, eps)
        self.intermediate = _Intermediate(hidden, ffn)
        self.output = _DenseNorm(ffn, hidden, eps)

    def forward(self, x: torch.Tensor, hidden: int, heads: int, ffn: int) -> torch.Tensor:
        batch, tokens, _ = x.shape
        width, qkv = heads * self.head_dim, self.attention.self

        def split(layer: nn.Linear) -> torch.Tensor:
            out = _linear(x, layer, width, hidden)
            return out.reshape(batch, tokens, heads, self.head_dim).transpose(1, 2)

        q, k, v = split(qkv.query), split(qkv.key), split(qkv.value)
        scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(self.head_dim)
        context = torch.matmul(torch.softmax(scores, dim=-1), v)
        context = context.transpose(1, 2).reshape(batch, tokens, width)
        attn = self.attention.output
        x = _layer_norm(_linear(context, attn.dense, hidden, width) + x, attn.LayerNorm, hidden)
        inner = F.gelu(_linear(x, self.intermediate.dense, ffn, hidden))
        out = self.output
        return _layer_norm(_linear(inner, out.dense, hidden, ffn) + x, out.LayerNorm, hidden)


class _Embeddings(nn.Module):
    def __init__(self, spec: BertSpec, hidden: int) -> None:
        super().__init__()
        self.vocab_size, self.seq_len = spec.vocab_size, spec.seq_len
        if spec.vocab_size:
            self.word_embeddings = nn.Embedding(spec.vocab_size, hidden)
        else:
            self.patch_embeddings = nn.Linear(spec.patch_size, hidden)
            self.cls_token = nn.Parameter(torch.zeros(1, 1, hidden))
        self.position_embeddings = nn.Embedding(spec.max_positions, hidden)
        self.token_type_embeddings = nn.Embedding(spec.type_vocab_size, hidden)
        self.LayerNorm = nn.LayerNorm(hidden, eps=spec.layer_norm_eps)

    def forward(self, x: torch.Tensor, hidden: int) -> torch.Tensor:
        if self.vocab_size:
            x = F.embedding(x, self.word_embeddings.weight[:, :hidden])
        else:
            x = _linear(x, self.patch_embeddings, hidden, x.shape[-1])
            x = torch.cat([self.cls_token[:, :, :hidden].expand(x.shape[0], 1, hidden), x], 1)
        tokens = x.shape[1]
        x = x + self.position_embeddings.weight[:tokens, :hidden]
        x = x + self.token_type_embeddings.weight[0, :hidden]  # every token of segment 0
        return _layer_norm(x, self.LayerNorm, hidden)


class _Encoder(nn.Module):
    def __init__(self, layers: Sequence[BertLayer]) -> None:
        super().__init__()
        self.layer = nn.ModuleList(layers)


class _Pooler(nn.Module):
    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.dense = nn.Linear(hidden, hidden)


class Bert(nn.Module):
    """A BERT encoder with a sequence classifier; `forward(x, dims)` runs any sub-network of it,
    a plain `forward(x)` the whole (what a sub-network built by `build_static` runs)."""

    def __init__(self, spec: BertSpec, dims: Dims | None = None) -> None:
        super().__init__()
        self.spec = spec
        self.dims = dims or Dims(
            max(spec.hidden_sizes),
            ((max(spec.head_counts), max(spec.ffn_sizes)),) * max(spec.depths),
        )
        hidden, eps = self.dims.hidden, spec.layer_norm_eps
        self.embeddings = _Embeddings(spec, hidden)
        self.encoder = _Encoder(
            [BertLayer(hidden, h, spec.head_dim, f, eps) for h, f in self.dims.layers]
        )
        self.pooler = _Pooler(hidden)
        self.classifier = nn.Linear(hidden, spec.num_classes)

    def forward(self, x: torch.Tensor, dims: Dims | None = None) -> torch.Tensor:
        dims = dims or self.dims
        hidden = dims.hidden
        x = self.embeddings(x, hidden)
        for layer, (heads, ffn) in zip(self.encoder.layer, dims.layers, strict=False):
            x = layer(x, hidden, heads, ffn)
        pooled = torch.tanh(_linear(x[:, 0], self.pooler.dense, hidden, hidden))
        return _linear(pooled, self.classifier, self.spec.num_classes, hidden)

    def build_static(self, dims: Dims) -> Bert:
        """A standalone sub-network: the sliced weights copied into a BERT of its own sizes."""
        subnet = Bert(self.spec, dims)
        state = self.state_dict()
        with torch.no_grad():
            for key, target in subnet.state_dict().items():
                source = state[key]
                target.copy_(source[tuple(slice(0, n) for n in target.shape)])
        return subnet.eval()


def normalise_bert_state_dict(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """`BertForSequenceClassification` prefixes the encoder's keys with `bert.`; older
    checkpoints keep the `embeddings.position_ids` buffer. Both are mapped away."""
    out = {}
    for key, value in state.items():
        name = key.removeprefix("module.").removeprefix("bert.")
        if name != "embeddings.position_ids":
            out[name] = value
    return out
