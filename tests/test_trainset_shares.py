"""Shares of the `all` experiments (ganaug.trainsets.share_counts / allocate): each GAN's count per class,
written out by hand, and water-filling checked against a one-image-at-a-time reference."""

import itertools

import numpy as np
import pandas as pd

from ganaug.design import build_experiments
from ganaug.trainsets import allocate, sample_experiment, share_counts

INF = float("inf")


def test_share_counts_by_hand():
    # 10 benign over 4: 3, 3, 2, 2 (the remainder to the first GANs); 3 melanoma: 1, 1, 1, 0
    assert share_counts({0: 10, 1: 3}, 4) == [{0: 3, 1: 1}, {0: 3, 1: 1}, {0: 2, 1: 1}, {0: 2, 1: 0}]
    assert share_counts({0: 8, 1: 0}, 4) == [{0: 2, 1: 0}] * 4
    assert share_counts({0: 7, 1: 5}, 1) == [{0: 7, 1: 5}]
    for total, parts in itertools.product(range(0, 14), range(1, 6)):
        shares = [s[0] for s in share_counts({0: total}, parts)]
        assert sum(shares) == total and max(shares) - min(shares) <= 1
        assert shares == sorted(shares, reverse=True)


def _one_at_a_time(wanted, capacities):
    """Reference water-filling: hand out images one by one, each to the pool that has the fewest so far
    among those with room left (ties: the first pool)."""
    out = [dict.fromkeys(wanted, 0) for _ in capacities]
    for c, n in wanted.items():
        for _ in range(n):
            room = [i for i, cap in enumerate(capacities) if out[i][c] < cap[c]]
            if not room:
                break
            out[min(room, key=lambda i: (out[i][c], i))][c] += 1
    return out


def test_allocate_by_hand():
    assert allocate({0: 10, 1: 3}, [{0: INF, 1: INF}] * 4) == [{0: 3, 1: 1}, {0: 3, 1: 1}, {0: 2, 1: 1},
                                                               {0: 2, 1: 0}]
    # the second GAN holds 2 of its equal share of 4: the other three share the 10 left (4, 3, 3)
    assert allocate({0: 12}, [{0: INF}, {0: 2}, {0: INF}, {0: INF}]) == [{0: 4}, {0: 2}, {0: 3}, {0: 3}]
    # the second pool takes its first share of 7 but not its second of 9: short after the first redistribution
    assert allocate({0: 28}, [{0: 1}, {0: 8}, {0: INF}, {0: INF}]) == [{0: 1}, {0: 8}, {0: 10}, {0: 9}]
    assert allocate({0: 20, 1: 5}, [{0: 1, 1: INF}, {0: 6, 1: 0}, {0: INF, 1: 1}]) == [
        {0: 1, 1: 4}, {0: 6, 1: 0}, {0: 13, 1: 1}]


def test_allocate_equals_one_at_a_time_on_random_cases():
    rng = np.random.default_rng(0)
    for _ in range(300):
        k = int(rng.integers(1, 6))
        wanted = {0: int(rng.integers(0, 40)), 1: int(rng.integers(0, 15))}
        caps = [{c: (INF if rng.random() < 0.4 else int(rng.integers(0, 15))) for c in (0, 1)}
                for _ in range(k)]
        got = allocate(wanted, caps)
        assert got == _one_at_a_time(wanted, caps), (wanted, caps)
        for c in (0, 1):
            assert sum(g[c] for g in got) == min(wanted[c], sum(cap[c] for cap in caps))


def _pool(tmp_path, name, n_benign, n_mel, translation=False):
    n = n_benign + n_mel
    table = pd.DataFrame({"image": [f"{name}/shard.npy#{i}" for i in range(n)],
                          "label": [0] * n_benign + [1] * n_mel, "phash": [f"{i:016x}" for i in range(n)],
                          "score": np.linspace(0, 1, n), "gan": name})
    if translation:
        table["source_image"] = [f"real{i}.png" for i in range(n)]  # one copy of every map
    table.to_csv(tmp_path / f"{name}.csv", index=False)
    return tmp_path / f"{name}.csv"


def _all_experiment(ratio):
    return build_experiments({"augmentation": [{"ratio": "1:0"}, {"ratio": ratio, "gan": "all"}]})[1]


def _per_pool(table):
    return table.assign(pool=table["image"].str.split("/").str[0]).groupby(["pool", "label"]).size().to_dict()


def test_all_experiment_shares_by_hand(tmp_path):
    """1:1/2 of 82 benign + 26 melanoma asks 41 + 13 synthetic images: 11/10/10/10 and 4/3/3/3, in the order
    the pools are given; with a pix2pixHD pool of 5 benign maps, the other three take 12/12/12."""
    pd.DataFrame({"image": [f"real{i}.png" for i in range(108)], "label": [0] * 82 + [1] * 26}).to_csv(
        tmp_path / "train.csv", index=False)
    names = ["stylegan2", "pgan", "pix2pixhd", "spade"]
    pools = [_pool(tmp_path, n, 50, 50) for n in names]
    got = _per_pool(sample_experiment(_all_experiment("1:1/2"), tmp_path / "train.csv", pools,
                                      tmp_path / "s.csv", seed=1, diverse_threshold=2))
    assert [got[(n, 0)] for n in names] == [11, 10, 10, 10]
    assert [got[(n, 1)] for n in names] == [4, 3, 3, 3]
    pools[2] = _pool(tmp_path, "pix2pixhd", 5, 50, translation=True)
    got = _per_pool(sample_experiment(_all_experiment("1:1/2"), tmp_path / "train.csv", pools,
                                      tmp_path / "s2.csv", seed=1, diverse_threshold=2))
    assert [got[(n, 0)] for n in names] == [12, 12, 5, 12]
    assert [got[(n, 1)] for n in names] == [4, 3, 3, 3]
