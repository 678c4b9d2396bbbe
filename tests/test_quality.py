import numpy as np
import pytest
from scipy.spatial.distance import cdist

from ganaug import quality
from ganaug.fid import fid_from_features, kid
from ganaug.io import InputError


def _brute(real, fake, k):
    rr = cdist(real, real)
    np.fill_diagonal(rr, np.inf)
    ff = cdist(fake, fake)
    np.fill_diagonal(ff, np.inf)
    r_rad = np.sort(rr, axis=1)[:, k - 1]
    f_rad = np.sort(ff, axis=1)[:, k - 1]
    fr = cdist(fake, real)
    precision = (fr <= r_rad[None, :]).any(axis=1).mean()
    recall = (fr.T <= f_rad[None, :]).any(axis=1).mean()
    return r_rad, precision, recall


def test_brute_force_small_sets():
    rng = np.random.default_rng(0)
    real = rng.normal(size=(37, 5))
    fake = rng.normal(0.5, 1.2, size=(29, 5))
    for k in (1, 3, 5):
        r_rad, p, r = _brute(real, fake, k)
        assert np.allclose(quality.knn_radii(real, k, block=4), r_rad)
        for block in (1024, 6):
            res = quality.precision_recall(real, fake, k=k, block=block)
            assert res["precision"] == pytest.approx(p) and res["recall"] == pytest.approx(r)
            assert (res["n_real"], res["n_fake"], res["k"]) == (37, 29, k)


def test_identical_distributions_near_one():
    rng = np.random.default_rng(1)
    res = quality.precision_recall(rng.normal(size=(500, 4)), rng.normal(size=(500, 4)))
    assert res["precision"] > 0.9 and res["recall"] > 0.9
    same = rng.normal(size=(100, 6))
    res = quality.precision_recall(same, same.copy())
    assert res["precision"] == 1.0 and res["recall"] == 1.0


def test_disjoint_distributions_zero():
    rng = np.random.default_rng(2)
    res = quality.precision_recall(rng.normal(size=(300, 8)), rng.normal(50.0, 1.0, size=(300, 8)))
    assert res["precision"] == 0.0 and res["recall"] == 0.0


def test_mode_collapse_high_precision_low_recall():
    rng = np.random.default_rng(3)
    centres = np.zeros((4, 8))
    centres[0, 0], centres[1, 0], centres[2, 1], centres[3, 1] = 10, -10, 10, -10
    real = centres[rng.integers(0, 4, 800)] + rng.normal(size=(800, 8))
    fake = centres[0] + rng.normal(size=(300, 8))  # one mode only
    res = quality.precision_recall(real, fake)
    assert res["precision"] > 0.75 and res["recall"] < 0.35


def test_quality_per_class():
    rng = np.random.default_rng(4)
    real_lab = np.repeat([0, 1], [120, 60])
    fake_lab = np.repeat([0, 1, 2], [100, 50, 3])
    real = rng.normal(size=(180, 6)) + real_lab[:, None] * 3
    fake = rng.normal(size=(153, 6)) + fake_lab[:, None] * 3
    rows = quality.quality_per_class(real, real_lab, fake, fake_lab, k=3, kid_subsets=5, kid_subset_size=50)
    assert [r["class"] for r in rows] == ["all", "0", "1", "2"]
    by = {r["class"]: r for r in rows}
    assert (by["all"]["n_real"], by["all"]["n_fake"]) == (180, 153)
    allpr = quality.precision_recall(real, fake)
    assert by["all"]["precision"] == allpr["precision"] and by["all"]["recall"] == allpr["recall"]
    r1, f1 = real[real_lab == 1], fake[fake_lab == 1]
    assert by["1"]["precision"] == quality.precision_recall(r1, f1)["precision"]
    assert by["1"]["kid"] == pytest.approx(kid(r1, f1, n_subsets=5, subset_size=50, seed=0)[0])
    assert by["1"]["fid"] == pytest.approx(fid_from_features(r1, f1))
    assert by["0"]["precision"] > 0.8 and by["0"]["recall"] > 0.8
    # class 2: no real images -> nothing computable
    assert by["2"]["n_real"] == 0 and by["2"]["precision"] is None and by["2"]["kid"] is None
    assert by["2"]["fid"] is None
    only_all = quality.quality_per_class(real, None, fake, None, kid_subsets=2, kid_subset_size=20,
                                         fid_min_n=1000)
    assert len(only_all) == 1 and only_all[0]["fid"] is None and only_all[0]["kid"] is not None


def test_errors():
    x = np.zeros((3, 2))
    with pytest.raises(InputError, match="more than k"):
        quality.precision_recall(x, np.ones((10, 2)), k=3)
    with pytest.raises(InputError, match="dimensions"):
        quality.precision_recall(np.ones((10, 2)), np.ones((10, 3)))
    with pytest.raises(InputError, match="NaN"):
        quality.knn_radii(np.full((5, 2), np.nan))
    with pytest.raises(InputError, match="real_labels"):
        quality.quality_per_class(np.ones((10, 2)), [0] * 9, np.ones((10, 2)), [0] * 10)
    with pytest.raises(InputError, match="both"):
        quality.quality_per_class(np.ones((10, 2)), [0] * 10, np.ones((10, 2)), None)
