"""ConfigEncoder: inactive genes never change the encoding; columns mean what their names say."""

import numpy as np
import pytest

from predictors.encoding import ConfigEncoder
from service.supernets.elastic_mbv3 import ArchSpec
from service.supernets.space import InvalidConfigError

SPACE = ArchSpec().search_space()


def _shallow_config() -> dict:
    config = SPACE.smallest()
    config["s1.depth"] = 2  # blocks 2 and 3 of stage 1 stay inactive
    config["s1.b1.kernel"] = 7
    return config


def _with_inactive_genes_changed(config: dict) -> dict:
    other = dict(config)
    for name in SPACE.names:
        if not SPACE.is_active(config, name):
            gene = SPACE.gene(name)
            other[name] = gene.choices[-1]
    assert other != config
    return other


@pytest.mark.parametrize("encoding", ["onehot", "ordinal", "thermometer"])
@pytest.mark.parametrize("derived", [True, False])
def test_configs_differing_only_in_inactive_genes_encode_equal(encoding, derived):
    config = _shallow_config()
    encoder = ConfigEncoder(SPACE, encoding=encoding, derived=derived)
    X = encoder.transform([config, _with_inactive_genes_changed(config)])
    np.testing.assert_array_equal(X[0], X[1])


@pytest.mark.parametrize("encoding", ["onehot", "ordinal", "thermometer"])
def test_active_genes_change_the_encoding(encoding):
    config = _shallow_config()
    changed = dict(config, **{"s1.b1.kernel": 5})
    X = ConfigEncoder(SPACE, encoding=encoding).transform([config, changed])
    assert not np.array_equal(X[0], X[1])


def test_onehot_columns_zero_for_inactive_genes_and_one_hot_for_active():
    config = _shallow_config()
    encoder = ConfigEncoder(SPACE, derived=False)
    row = encoder.transform([config])[0]
    names = encoder.feature_names()
    assert len(row) == len(names) == int(SPACE.n_choices.sum())
    for gene in SPACE.genes:
        columns = [i for i, n in enumerate(names) if n.startswith(f"{gene.name}=")]
        expected = 1.0 if SPACE.is_active(config, gene.name) else 0.0
        assert row[columns].sum() == expected
    assert row[names.index("s1.b1.kernel=7")] == 1.0


def test_thermometer_steps_up_with_the_choice_and_is_zero_when_inactive():
    config = _shallow_config()
    encoder = ConfigEncoder(SPACE, encoding="thermometer", derived=False)
    names = encoder.feature_names()
    kernels = [dict(config, **{"s1.b1.kernel": k}) for k in (3, 5, 7)]
    X = encoder.transform(kernels)
    columns = [
        names.index(n) for n in ("s1.b1.kernel:active", "s1.b1.kernel>=5", "s1.b1.kernel>=7")
    ]
    np.testing.assert_array_equal(X[:, columns], [[1, 0, 0], [1, 1, 0], [1, 1, 1]])
    inactive = next(g.name for g in SPACE.genes if not SPACE.is_active(config, g.name))
    gene_columns = [i for i, n in enumerate(names) if n.split(":")[0].split(">=")[0] == inactive]
    assert not X[:, gene_columns].any()
    assert len(names) == int(SPACE.n_choices.sum())


def test_derived_totals_sum_active_genes_per_stage():
    config = SPACE.largest()
    config["s2.depth"] = 3
    config["s2.b0.kernel"], config["s2.b1.kernel"], config["s2.b2.kernel"] = 3, 5, 7
    encoder = ConfigEncoder(SPACE)
    row = dict(zip(encoder.feature_names(), encoder.transform([config])[0], strict=True))
    assert row["total:s2.kernel"] == 3 + 5 + 7
    assert row["total:s2.expand"] == 6 * 3
    assert row["total:s0.kernel"] == 7 * 4
    assert row["active_genes"] == int(SPACE.active_mask(config).sum())


def test_caller_features_are_appended_on_the_canonical_config():
    seen = []

    def depth_and_kernel(config):
        seen.append(config)
        return [config["s0.depth"], config["s0.b3.kernel"]]

    encoder = ConfigEncoder(SPACE, features=depth_and_kernel)
    config = _shallow_config()
    X = encoder.transform([config, _with_inactive_genes_changed(config)])
    shallow_depth = config["s0.depth"]
    np.testing.assert_array_equal(X[:, -2:], [[shallow_depth, 3], [shallow_depth, 3]])
    assert encoder.feature_names()[-2:] == ["feature[0]", "feature[1]"]
    assert seen[1] == SPACE.canonical(seen[1])


def test_bad_input_is_a_clear_error():
    encoder = ConfigEncoder(SPACE)
    with pytest.raises(InvalidConfigError, match="allowed values"):
        encoder.transform([dict(SPACE.smallest(), **{"s0.depth": 9})])
    with pytest.raises(ValueError, match="sequence of configs"):
        encoder.transform(SPACE.smallest())
    with pytest.raises(ValueError, match="unknown encoding"):
        ConfigEncoder(SPACE, encoding="binary")  # type: ignore[arg-type]
    ragged = ConfigEncoder(SPACE, features=lambda c: [1.0] * c["s0.depth"])
    with pytest.raises(ValueError, match="same number"):
        ragged.transform([SPACE.smallest(), SPACE.largest()])
    with pytest.raises(ValueError, match="non-finite"):
        ConfigEncoder(SPACE, features=lambda c: [float("nan")]).transform([SPACE.smallest()])
