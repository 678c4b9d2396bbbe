"""KID (ganaug.fid.kid): the unbiased MMD^2 with the cubic polynomial kernel over random subsets, as
Binkowski et al. (2018) and torch-fidelity compute it."""

import logging

import numpy as np
import pytest
import torch

from ganaug.fid import fid_settings, kid, kid_per_subset, kid_subset_indices
from ganaug.io import InputError


def _reference_mmd2(x, y):
    """The unbiased MMD^2 of one pair of subsets, term by term as in the paper (no code shared with it)."""
    d = x.shape[1]
    m = len(x)
    kxx = (x @ x.T / d + 1) ** 3
    kyy = (y @ y.T / d + 1) ** 3
    kxy = (x @ y.T / d + 1) ** 3
    off = ~np.eye(m, dtype=bool)
    return kxx[off].sum() / (m * (m - 1)) + kyy[off].sum() / (m * (m - 1)) - 2 * kxy.sum() / (m * m)


def _samples(seed, n_x=300, n_y=250, d=16, shift=0.0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n_x, d)), rng.normal(shift, 1.0, size=(n_y, d))


def test_kid_equals_a_loop_over_the_same_subsets():
    x, y = _samples(1, shift=0.3)
    idx_x, idx_y = kid_subset_indices(len(x), len(y), 7, 40, seed=5)
    assert idx_x.shape == idx_y.shape == (7, 40)
    assert all(len(set(row)) == 40 for row in idx_x) and idx_x.max() < 300 and idx_y.max() < 250
    ref = np.array([_reference_mmd2(x[i], y[j]) for i, j in zip(idx_x, idx_y)])
    np.testing.assert_allclose(kid_per_subset(x, y, idx_x, idx_y, device="cpu"), ref, rtol=1e-10)
    # a memory budget of one subset at a time gives the same values
    np.testing.assert_allclose(kid_per_subset(x, y, idx_x, idx_y, device="cpu", max_bytes=1), ref, rtol=1e-10)
    mean, std = kid(x, y, n_subsets=7, subset_size=40, seed=5, device="cpu")
    assert mean == pytest.approx(ref.mean(), rel=1e-10) and std == pytest.approx(ref.std(), rel=1e-10)


def test_kid_matches_torch_fidelity_on_its_subsets():
    """torch-fidelity's own KID on feature arrays, with the subsets it draws (RandomState(rng_seed).choice,
    the first set's then the second's, per subset) given to kid_per_subset."""
    tf_kid = pytest.importorskip("torch_fidelity.metric_kid")
    x, y = _samples(2, n_x=200, n_y=180, d=12, shift=0.2)
    n_subsets, m, seed = 9, 50, 7
    rs = np.random.RandomState(seed)
    draws = [(rs.choice(len(x), m, replace=False), rs.choice(len(y), m, replace=False))
             for _ in range(n_subsets)]
    vals = kid_per_subset(x, y, [a for a, _ in draws], [b for _, b in draws], device="cpu")
    theirs = tf_kid.kid_features_to_metric(torch.from_numpy(x), torch.from_numpy(y), kid_subsets=n_subsets,
                                           kid_subset_size=m, rng_seed=seed, verbose=False)
    assert vals.mean() == pytest.approx(theirs[tf_kid.KEY_METRIC_KID_MEAN], rel=1e-9)
    assert vals.std() == pytest.approx(theirs[tf_kid.KEY_METRIC_KID_STD], rel=1e-9)


def test_kid_defaults_are_torch_fidelitys():
    defaults = pytest.importorskip("torch_fidelity.defaults").DEFAULTS
    cfg = fid_settings(None)
    for key in ("kid_subsets", "kid_subset_size"):
        assert cfg[key] == defaults[key]


def test_kid_spread_over_subsets_is_real():
    """The default study's bug: subsets of the whole sample made every subset the same set (std ~1e-16)."""
    x, y = _samples(3, n_x=500, n_y=500, shift=0.2)
    mean, std = kid(x, y, n_subsets=50, subset_size=100, seed=0, device="cpu")
    vals = kid_per_subset(x, y, *kid_subset_indices(500, 500, 50, 100, seed=0), device="cpu")
    assert std == pytest.approx(vals.std()) and std > 0.05 * abs(mean) and std > 1e-6
    assert len({tuple(sorted(r)) for r in kid_subset_indices(500, 500, 50, 100, seed=0)[0]}) == 50


def test_kid_of_whole_samples_has_no_spread(caplog):
    """Subsets as large as both sets are the sets themselves: one full-sample estimate, no std, a warning."""
    x, y = _samples(4, n_x=30, n_y=30, d=5, shift=0.4)
    with caplog.at_level(logging.WARNING, logger="ganaug"):
        mean, std = kid(x, y, n_subsets=100, subset_size=1000, seed=0, device="cpu")
    assert mean == pytest.approx(_reference_mmd2(x, y), rel=1e-9) and std is None
    assert "fid.kid_subset_size" in caplog.text
    # one set larger: its subsets still vary, so the spread is defined
    assert kid(x, np.vstack([y, y + 0.1]), n_subsets=5, subset_size=1000, seed=0, device="cpu")[1] > 0


def test_kid_unbiased_and_separates_distributions():
    x, y = _samples(5, n_x=2000, n_y=2000, d=8)
    same = [kid(x, y, n_subsets=20, subset_size=50, seed=s, device="cpu")[0] for s in range(10)]
    # unbiased: centred on 0 for equal distributions (a biased estimator would be clearly positive)
    assert abs(np.mean(same)) < 3 * np.std(same) / np.sqrt(len(same)) + 1e-4
    assert min(same) < 0 or abs(np.mean(same)) < 1e-3
    shifted = kid(x, y + 0.5, n_subsets=20, subset_size=50, seed=0, device="cpu")[0]
    assert shifted > 10 * abs(np.mean(same))
    shifted, spread = kid(x, y + 0.5, n_subsets=20, subset_size=500, seed=0, device="cpu")
    assert shifted > 5 * spread  # clearly above 0 for the spread over subsets


def test_kid_seeded():
    x, y = _samples(6)
    assert kid(x, y, 5, 100, seed=4, device="cpu") == kid(x, y, 5, 100, seed=4, device="cpu")
    assert kid(x, y, 5, 100, seed=4, device="cpu") != kid(x, y, 5, 100, seed=5, device="cpu")


def test_kid_errors():
    x, y = _samples(7)
    with pytest.raises(InputError, match="at least 2 samples"):
        kid(x[:1], y)
    with pytest.raises(InputError, match="subset size 1"):
        kid(x, y, subset_size=1)
    with pytest.raises(InputError, match="same D"):
        kid(x, y[:, :3])
    with pytest.raises(InputError, match="n_subsets"):
        kid(x, y, n_subsets=0)
