"""How far measured accuracy lets any predictor rank sub-networks of the built-in supernet.

Evaluates random sub-networks on several independent held-out draws (the built-in held-out split is
draw 7; the others are equally valid draws from the same generator and held-out bases) and prints:
the spread of their accuracy, Kendall τ between two draws (the ceiling of a predictor scored on one
draw) and between the means of two halves, and the 10-fold cross-validated τ of a ridge regression
on a one-hot encoding (inactive genes zeroed) against one draw and the mean of all.
See docs/predictors.md.

    .venv/bin/python -m benchmarks.accuracy_ceiling [--checkpoint PATH] [--networks 100] [--sets 4]
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np
import torch
from scipy.stats import kendalltau
from sklearn.linear_model import RidgeCV
from sklearn.model_selection import cross_val_predict
from sklearn.preprocessing import OneHotEncoder

from service.supernets.accuracy import top1_accuracy
from service.supernets.builtin import load_mbv3_digits
from service.supernets.digits_data import HELD_OUT_SEED, held_out_set


def held_out_sets(n_sets: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The built-in held-out draw first, then `n_sets - 1` others."""
    seeds = [HELD_OUT_SEED] + [100 + k for k in range(n_sets - 1)]
    return [
        (images.contiguous(memory_format=torch.channels_last), labels)
        for images, labels in map(held_out_set, seeds)
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=None, help="default: the shipped checkpoint")
    parser.add_argument("--networks", type=int, default=100)
    parser.add_argument("--sets", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    supernet = load_mbv3_digits(args.checkpoint)
    sets = held_out_sets(args.sets)
    configs = supernet.space.sample(np.random.default_rng(0), args.networks)
    started = time.perf_counter()
    accuracy = np.zeros((len(configs), len(sets)))
    for i, config in enumerate(configs):
        subnet = supernet.build_subnet(config).to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        for k, (images, labels) in enumerate(sets):
            accuracy[i, k] = top1_accuracy(subnet, images, labels)
    half = len(sets) // 2
    space = supernet.space
    encoded = np.array(
        [[c[g.name] if space.is_active(c, g.name) else 0 for g in space.genes] for c in configs]
    )
    one_hot = OneHotEncoder(handle_unknown="ignore").fit_transform(encoded).toarray()
    ridge_tau = {}
    for name, target in (
        ("one_set", accuracy[:, 0]),
        (f"mean_of_{len(sets)}", accuracy.mean(1)),
    ):
        predicted = cross_val_predict(
            RidgeCV(alphas=np.logspace(-2, 3, 20)), one_hot, target, cv=10
        )
        ridge_tau[name] = float(kendalltau(predicted, target).statistic)
    result = {
        "checkpoint_sha256": supernet.checkpoint_sha256,
        "networks": len(configs),
        "sets": len(sets),
        "held_out_images_per_set": len(sets[0][1]),
        "accuracy_mean": float(accuracy.mean()),
        "accuracy_std_across_networks": float(accuracy.std(0).mean()),
        "tau_set_vs_set": float(kendalltau(accuracy[:, 0], accuracy[:, 1]).statistic),
        "tau_half_mean_vs_half_mean": float(
            kendalltau(accuracy[:, :half].mean(1), accuracy[:, half:].mean(1)).statistic
        ),
        "ridge_one_hot_cv_tau": ridge_tau,
        "seconds": round(time.perf_counter() - started, 1),
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
