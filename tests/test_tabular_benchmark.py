"""benchmarks/tabular_search.py on the shipped NAS-Bench-201 table: hypervolume, the cell space, and
one tiny run of every tactic end to end."""

import json

import numpy as np
import pytest

from benchmarks import tabular_search as tab


@pytest.fixture(scope="module")
def table():
    return tab.Table()


def test_table_is_the_whole_cell_space(table):
    assert table.genes.shape == (15625, 6) and len(table.index) == 15625
    assert len(table.devices) == 6 and table.latency.shape == (15625, 6)


def test_hypervolume_2d_exact():
    assert tab.hypervolume_2d(np.array([[0.0, 0.0]])) == pytest.approx(1.0)
    points = np.array([[0.2, 0.6], [0.5, 0.3], [0.6, 0.7], [1.2, 0.1]])
    # two non-dominated points inside the box: 0.8*0.4 + 0.5*0.7 - overlap 0.5*0.4
    assert tab.hypervolume_2d(points) == pytest.approx(0.8 * 0.4 + 0.5 * 0.7 - 0.5 * 0.4)
    assert tab.hypervolume_2d(np.zeros((0, 2))) == 0.0


def test_hv_star_bounds_every_search(table):
    for d in range(len(table.devices)):
        star = table.hv_star(d)
        assert 0 < star < 1
        some = np.random.default_rng(d).choice(15625, 300, replace=False)
        assert tab.hypervolume_2d(table.normalised(d, some)) <= star + 1e-12


def test_cell_features_ignore_edges_off_every_path():
    # node3<-0 is the only live edge when edge node1<-0 and node2<-0 are `none`:
    # the ops on node2<-1, node3<-1, node3<-2 then do not change the network.
    a = (0, 0, 3, 2, 1, 4)
    b = (0, 0, 1, 2, 4, 3)
    assert tab.live_edges(a) == [False, False, False, True, False, False]
    assert tab.cell_features(a) == tab.cell_features(b)
    assert tab.cell_features(a) != tab.cell_features((0, 0, 3, 3, 1, 4))
    assert len(tab.cell_features(a)) == 100 + 4 + 4


def test_space_gives_the_cell_features(table):
    space = tab.make_space(table.ops)
    config = space.from_indices([1, 2, 3, 4, 3, 2])
    assert tuple(space.features(config)) == tab.cell_features((1, 2, 3, 4, 3, 2))
    assert len(space.genes) == 6 and all(len(g.choices) == 5 for g in space.genes)


def test_dynast_linas_loops_validate_whole_populations(table):
    rows, _ = tab.dynast_linas(table, 0, seed=0, budget=100, population=50, inner_evals=500)
    assert len(rows) == 100  # two loops of 50, repeats counted


def test_end_to_end_one_seed_tiny_budget(tmp_path):
    out = tmp_path / "tabular.json"
    argv = ["--seeds", "0", "--budget", "40", "--devices", "eyeriss", "--jobs", "1"]
    argv += ["--tactics", "linas,evolutionary,random", "--out", str(out)]
    assert tab.main(argv) == 0
    data = json.loads(out.read_text())
    assert {r["tactic"] for r in data["runs"]} == {"linas", "evolutionary", "random"}
    assert all(r["validations"] == 40 for r in data["runs"])
    summary = data["summary"]["eyeriss"]
    assert set(summary["median_hv_fraction"]) == {"linas", "evolutionary", "random"}
    assert all(0 <= v <= 1 for r in data["runs"] for v in r["hv_fraction"])


def test_summary_gives_the_spread_over_seeds_behind_each_median():
    def run(seed, curve):
        return {"device": "d", "tactic": "linas", "seed": seed, "hv_fraction": curve}

    flat = [0.5] * 100
    runs = [run(0, [0.1] * 49 + [0.9] * 51), run(1, flat), run(2, [0.2] * 99 + [0.95])]
    summary = tab.summarise(runs, 100)["d"]
    assert summary["median_hv_fraction"]["linas"]["50"] == 0.5
    assert summary["hv_fraction_range"]["linas"] == {"50": [0.2, 0.9], "100": [0.5, 0.95]}


def test_swapped_cells_are_the_same_network_on_the_table(table):
    from benchmarks.tabular_ceiling import ceiling, swapped_pairs

    pairs = swapped_pairs(table)
    assert len(pairs) == (5**5 - 5**3) // 2  # edge 1<-2 none, less the cells equal to their swap
    assert len(set(pairs.ravel())) == 2 * len(pairs)
    fpga = table.devices.index("fpga")  # a latency model, not a timing: same network, same value
    assert np.array_equal(table.latency[pairs[:, 0], fpga], table.latency[pairs[:, 1], fpga])
    assert ceiling(1.0) == pytest.approx(1.0) and ceiling(0.0) == pytest.approx(0.0)
    assert 0.88 < ceiling(0.843) < ceiling(0.881) < 0.92
