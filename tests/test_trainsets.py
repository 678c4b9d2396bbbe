"""Synthetic subsets of the experiments: one image per label map for the mask-to-image GANs (the study's
pix2pixHD / SPADE sets), shares of the `all` experiment, and the design table of what each train set holds."""

import numpy as np
import pandas as pd
import pytest

from ganaug.design import build_experiments
from ganaug.io import InputError
from ganaug.trainsets import allocate, build_trainset, design_table, sample_experiment, share_counts


def _train(tmp_path, n_benign=40, n_mel=12):
    train = pd.DataFrame({"image": [f"real{i}.png" for i in range(n_benign + n_mel)],
                          "label": [0] * n_benign + [1] * n_mel})
    train.to_csv(tmp_path / "train.csv", index=False)
    return tmp_path / "train.csv"


def _translation_pool(tmp_path, name, n_benign_maps, n_mel_maps, copies):
    """A pix2pixHD-like manifest: every map translated `copies` times, copy k after copy k-1 (as pool.py)."""
    maps = pd.DataFrame({"image": [f"real{i}.png" for i in range(n_benign_maps + n_mel_maps)],
                         "label": [0] * n_benign_maps + [1] * n_mel_maps})
    rows = pd.concat([maps] * copies, ignore_index=True)
    manifest = pd.DataFrame({"image": [f"{name}/shard.npy#{i}" for i in range(len(rows))],
                             "label": rows["label"], "source_image": rows["image"],
                             "phash": "0" * 16, "score": np.linspace(0, 1, len(rows)), "gan": name})
    path = tmp_path / f"{name}.csv"
    manifest.to_csv(path, index=False)
    return path


def _noise_pool(tmp_path, name, n_per_class):
    manifest = pd.DataFrame({"image": [f"{name}/shard.npy#{i}" for i in range(2 * n_per_class)],
                             "label": [0] * n_per_class + [1] * n_per_class, "phash": "0" * 16,
                             "score": np.linspace(0, 1, 2 * n_per_class), "gan": name})
    path = tmp_path / f"{name}.csv"
    manifest.to_csv(path, index=False)
    return path


def _experiment(ratio, gan):
    return build_experiments({"augmentation": [{"ratio": "1:0"}, {"ratio": ratio, "gan": gan}]})[1]


def test_allocate_water_filling():
    inf = float("inf")
    assert allocate({0: 10, 1: 3}, [{0: inf, 1: inf}] * 4) == share_counts({0: 10, 1: 3}, 4)
    # a pool short of its equal share gives what it has; the rest is shared among the others
    assert allocate({0: 12}, [{0: 1}, {0: inf}, {0: inf}]) == [{0: 1}, {0: 6}, {0: 5}]
    assert allocate({0: 12}, [{0: 1}, {0: 2}, {0: inf}]) == [{0: 1}, {0: 2}, {0: 9}]
    # everything short: each gives all it has, the total falls short
    assert allocate({0: 12, 1: 4}, [{0: 3, 1: 1}, {0: 2, 1: 9}]) == [{0: 3, 1: 1}, {0: 2, 1: 3}]
    # exactly at capacity
    assert allocate({0: 4}, [{0: 2}, {0: 2}]) == [{0: 2}, {0: 2}]


def test_one_per_mask_uses_every_map_once_when_the_ratio_asks_more(tmp_path):
    """1:1/2 of 40 benign + 12 melanoma asks 20 + 6; the pool has 8 + 3 maps, 4 copies each: the study's
    set is each map once (copy 0), not 20 + 6 flipped copies."""
    train = _train(tmp_path)
    pool = _translation_pool(tmp_path, "p2p", 8, 3, copies=4)
    exp = _experiment("1:1/2", "pix2pixhd")
    got = sample_experiment(exp, train, [pool], tmp_path / "s.csv", seed=1, diverse_threshold=10)
    assert got.groupby("label").size().to_dict() == {0: 8, 1: 3}
    assert got["source_image"].is_unique
    assert set(got["image"].str.split("#").str[1].astype(int)) == set(range(11))  # copy 0 of every map
    # `ratio` takes the full count from the copies, each map then used more than once
    full = sample_experiment(exp, train, [pool], tmp_path / "r.csv", seed=1, diverse_threshold=10,
                             translation_images="ratio")
    assert full.groupby("label").size().to_dict() == {0: 20, 1: 6}
    assert not full["source_image"].is_unique


def test_one_per_mask_below_the_number_of_maps_and_errors(tmp_path):
    train = _train(tmp_path)
    pool = _translation_pool(tmp_path, "spd", 30, 10, copies=1)
    exp = _experiment("1:1/4", "spade")  # asks 10 + 3, fewer than the maps: exactly that many
    got = sample_experiment(exp, train, [pool], tmp_path / "s.csv", seed=1, diverse_threshold=10)
    assert got.groupby("label").size().to_dict() == {0: 10, 1: 3}
    with pytest.raises(InputError, match="pool has only"):  # `ratio` from a pool without copies: too small
        sample_experiment(_experiment("1:1", "spade"), train, [pool], tmp_path / "t.csv", seed=1,
                          diverse_threshold=10, translation_images="ratio")
    with pytest.raises(InputError, match="sampling.translation_images"):
        sample_experiment(exp, train, [pool], tmp_path / "u.csv", seed=1, diverse_threshold=10,
                          translation_images="twice")


def test_all_gans_short_translation_pools_leave_the_rest_to_the_others(tmp_path):
    train = _train(tmp_path, n_benign=80, n_mel=24)  # 1:1/2 asks 40 + 12, 10 + 3 per GAN
    pools = [_translation_pool(tmp_path, "p2p", 4, 3, copies=2), _translation_pool(tmp_path, "spd", 30, 1, 1),
             _noise_pool(tmp_path, "pgn", 100), _noise_pool(tmp_path, "sgn", 100)]
    got = sample_experiment(_experiment("1:1/2", "all"), train, pools, tmp_path / "s.csv", seed=1,
                            diverse_threshold=10)
    per = got.assign(pool=got["image"].str.split("/").str[0]).groupby(["pool", "label"]).size().to_dict()
    # p2p has 4 benign maps (of its share of 10): the other three share the remaining 36 equally
    assert (per[("p2p", 0)], per[("spd", 0)], per[("pgn", 0)], per[("sgn", 0)]) == (4, 12, 12, 12)
    # melanoma: p2p gives its 3 maps, spd its 1; pgn and sgn share the remaining 8
    assert (per[("p2p", 1)], per[("spd", 1)], per[("pgn", 1)], per[("sgn", 1)]) == (3, 1, 4, 4)
    assert got.groupby("label").size().to_dict() == {0: 40, 1: 12}


def test_design_table_counts_what_the_train_sets_hold(tmp_path):
    train = _train(tmp_path)
    pool = _translation_pool(tmp_path, "p2p", 8, 3, copies=1)
    exps = build_experiments({"augmentation": [{"ratio": "1:0"}, {"ratio": "1:1/2", "gan": "pix2pixhd"}],
                              "anonymization": [{"ratio": "1/2:0"}, {"ratio": "1:0"}]})
    paths = {}
    for e in exps:
        synth = None
        if e.gan:
            synth = tmp_path / f"{e.id}.samples.csv"
            sample_experiment(e, train, [pool], synth, seed=1, diverse_threshold=10)
        paths[e.id] = tmp_path / f"{e.id}.csv"
        build_trainset(e, 0, train, synth, paths[e.id], seed=1)
    table = design_table(exps, train, paths)
    assert list(zip(table["application"], table["label"])) == [
        ("anonymization", "1/2:0"), ("anonymization", "1:0"), ("augmentation", "1:0"),
        ("augmentation", "1:1/2 p2p")]
    p2p = table[table["label"] == "1:1/2 p2p"].iloc[0]
    assert (p2p["real_benign"], p2p["real_melanoma"], p2p["synthetic_benign"], p2p["synthetic_melanoma"],
            p2p["asked_synthetic_benign"], p2p["asked_synthetic_melanoma"]) == (40, 12, 8, 3, 20, 6)
    assert (p2p["gan"], p2p["sampling"]) == ("pix2pixhd", "random")
    half = table[table["label"] == "1/2:0"].iloc[0]
    assert (half["gan"], half["sampling"]) == ("", "")
    assert (half["real_benign"], half["real_melanoma"], half["synthetic_benign"]) == (20, 6, 0)
    assert set(table["baseline"]) == {"1:0"}
    with pytest.raises(InputError, match="no train set"):
        design_table(exps, train, {})
