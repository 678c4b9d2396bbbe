import json

import numpy as np
import pytest
from PIL import Image

from ganaug import audit
from ganaug.io import InputError
from ganaug.phash import pairwise_hamming, phash_batch, to_hex


def _images(n, rng, size=64):
    """Smooth random colour images (bicubic upsampling of 8 x 8 noise): distinct pHashes."""
    low = rng.integers(0, 256, (n, 8, 8, 3), dtype=np.uint8)
    return np.stack([np.asarray(Image.fromarray(x).resize((size, size), Image.Resampling.BICUBIC))
                     for x in low])


def _features(images):
    """A stand-in embedding: 16 x 16 greyscale, centred per image."""
    small = images.reshape(len(images), 16, 4, 16, 4, 3).mean(axis=(2, 4, 5))
    f = small.reshape(len(images), -1)
    return f - f.mean(axis=1, keepdims=True)


@pytest.fixture(scope="module")
def pools():
    rng = np.random.default_rng(0)
    real = _images(80, rng)
    exact = real[[3, 10, 42]]
    near = np.clip(real[[5, 20, 60, 77]].astype(float) + rng.normal(0, 4, (4, 64, 64, 3)) + 10, 0, 255)
    synth = np.concatenate([exact, near.astype(np.uint8), _images(33, rng)])
    independent = _images(40, rng)
    return real, synth, independent


def _brute_hamming(q, r, exclude_self):
    d = pairwise_hamming(q, r).astype(np.int64)
    if exclude_self:
        np.fill_diagonal(d, 1000)
    return d.min(axis=1), d.argmin(axis=1)


def test_nearest_hamming_equals_brute_force():
    rng = np.random.default_rng(1)
    # few distinct bits -> many ties: ties must go to the smallest index across blocks
    q = rng.integers(0, 256, 57).astype(np.uint64)
    r = rng.integers(0, 256, 91).astype(np.uint64) << np.uint64(20)
    for bq, br in ((1024, 8192), (7, 5), (1, 13)):
        d, i = audit.nearest_hamming(q, r, block_q=bq, block_r=br)
        bd, bi = _brute_hamming(q, r, False)
        assert np.array_equal(d, bd) and np.array_equal(i, bi)
        d, i = audit.nearest_hamming(r, r, exclude_self=True, block_q=bq, block_r=br)
        bd, bi = _brute_hamming(r, r, True)
        assert np.array_equal(d, bd) and np.array_equal(i, bi)
    # hex strings are accepted; a lone hash has no neighbour
    d, i = audit.nearest_hamming(to_hex(q[:3]), r)
    assert np.array_equal(d, _brute_hamming(q[:3], r, False)[0])
    d, i = audit.nearest_hamming(q[:1], q[:1], exclude_self=True)
    assert d[0] == audit.NO_MATCH and i[0] == -1


def test_nearest_cosine_equals_brute_force():
    rng = np.random.default_rng(2)
    q = rng.integers(-2, 3, (40, 4)).astype(float)  # duplicates -> ties
    q[np.linalg.norm(q, axis=1) == 0] = 1.0
    r = np.concatenate([q[:10], rng.normal(size=(50, 4))])
    qn = q / np.linalg.norm(q, axis=1, keepdims=True)
    rn = r / np.linalg.norm(r, axis=1, keepdims=True)
    full = qn @ rn.T
    rr = rn @ rn.T
    np.fill_diagonal(rr, -np.inf)
    for bq, br in ((1024, 8192), (3, 7)):
        s, i = audit.nearest_cosine(q, r, block_q=bq, block_r=br)
        assert np.allclose(s, np.minimum(full.max(axis=1), 1))
        # ties (parallel integer vectors) may differ in the last bit: the chosen index attains the max,
        # and it is the smallest index among those within rounding of the max
        rows = np.arange(len(q))
        assert np.allclose(full[rows, i], full.max(axis=1), atol=1e-12)
        assert np.array_equal(i, np.argmax(full >= full.max(axis=1, keepdims=True) - 1e-12, axis=1))
        s, i = audit.nearest_cosine(r, r, exclude_self=True, block_q=bq, block_r=br)
        assert np.allclose(s, rr.max(axis=1)) and np.array_equal(i, rr.argmax(axis=1))
    with pytest.raises(InputError, match="all zero"):
        audit.nearest_cosine(np.zeros((2, 3)), r[:, :3])
    with pytest.raises(InputError, match="dimensions"):
        audit.nearest_cosine(q, r[:, :3])


def test_audit_finds_planted_copies(pools):
    real, synth, _ = pools
    sh, rh = phash_batch(synth), phash_batch(real)
    ids = [f"real_{i}.png" for i in range(len(real))]
    df, summary = audit.audit(sh, rh, _features(synth), _features(real),
                              thresholds={"hash": [0, 6], "cos": 0.95}, real_ids=ids)
    planted_real = [3, 10, 42, 5, 20, 60, 77]
    assert list(df.loc[:2, "hash_dist"]) == [0, 0, 0]
    assert list(df.loc[:6, "hash_real_index"]) == planted_real
    assert list(df.loc[:6, "cos_real_index"]) == planted_real
    assert df.loc[0, "hash_real_id"] == "real_3.png"
    assert set(np.flatnonzero(df["hash_le_6"])) == set(range(7))
    assert set(np.flatnonzero(df["hash_le_0"])) >= {0, 1, 2}
    assert set(np.flatnonzero(df["cos_ge_0.95"])) == set(range(7))
    near = summary["hash"]["near_copies"]
    assert near[1] == {"threshold": 6, "synth": 7, "synth_fraction": 7 / 40, "real": 0, "real_fraction": 0.0}
    assert summary["cos"]["near_copies"][0]["synth"] == 7
    q = summary["hash"]["synth_to_real"]["quantiles"]
    assert q["0"] == 0 and q["0.5"] > 10
    assert summary["hash"]["real_to_real"]["quantiles"]["0"] > 6
    json.dumps(summary)  # serialisable
    pairs = audit.closest_pairs(df, "hash", n=5)
    assert set(pairs[:3, 0]) == {0, 1, 2} and np.array_equal(pairs[:3, 1], [3, 10, 42])
    pairs = audit.closest_pairs(df, "cos", n=7)
    assert set(pairs[:, 0]) == set(range(7))


def test_audit_independent_pool_has_no_copies(pools):
    real, _, independent = pools
    df, summary = audit.audit(phash_batch(independent), phash_batch(real), _features(independent),
                              _features(real), thresholds={"hash": 6, "cos": 0.95})
    assert not df["hash_le_6"].any() and not df["cos_ge_0.95"].any()
    assert summary["hash"]["near_copies"][0]["synth"] == 0
    assert summary["cos"]["near_copies"][0]["synth"] == 0
    # without features: hash part only
    df, summary = audit.audit(phash_batch(independent), phash_batch(real))
    assert "cos_sim" not in df and "cos" not in summary
    assert [c["threshold"] for c in summary["hash"]["near_copies"]] == list(audit.DEFAULT_THRESHOLDS["hash"])


def test_pair_grid(pools):
    real, synth, _ = pools
    grid = audit.pair_grid(synth, real, [(0, 3), (4, 5), (9, 1)], n=2, sep=4)
    assert grid.dtype == np.uint8 and grid.shape == (2 * 64 + 4, 2 * 64 + 4, 3)
    assert np.array_equal(grid[:64, :64], synth[0]) and np.array_equal(grid[:64, 68:], real[3])
    assert np.array_equal(grid[68:, :64], synth[4]) and np.array_equal(grid[68:, 68:], real[5])
    assert (grid[64:68] == 255).all() and (grid[:, 64:68] == 255).all()
    assert audit.pair_grid(synth, real, np.zeros((0, 2))).shape[0] == 0
    with pytest.raises(InputError, match="out of range"):
        audit.pair_grid(synth, real, [(0, 999)])
    with pytest.raises(InputError, match="differ in size"):
        audit.pair_grid(synth, real[:, :32], [(0, 1)])


def test_audit_errors(pools):
    real = pools[0]
    rh = phash_batch(real[:5])
    with pytest.raises(InputError, match="no real"):
        audit.audit(rh, np.zeros(0, dtype=np.uint64))
    with pytest.raises(InputError, match="both"):
        audit.audit(rh, rh, synth_feats=np.ones((5, 3)))
    with pytest.raises(InputError, match="unknown key"):
        audit.audit(rh, rh, thresholds={"hamming": 3})
    with pytest.raises(InputError, match="real hashes"):
        audit.audit(rh, np.array([0.5, 1.5]))
    with pytest.raises(InputError, match="real_ids"):
        audit.audit(rh, rh, real_ids=["a"])
