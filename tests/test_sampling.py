import numpy as np
import pandas as pd
import pytest

from ganaug.io import InputError
from ganaug.phash import hex_to_uint64, pairwise_hamming, to_hex
from ganaug.sampling import ABBREVIATIONS, SAMPLING_METHODS, greedy_diverse, sample_pool


def _clustered_hashes(rng, n, n_centres=40, flip_p=0.06):
    """Hashes near a few centres (like near-duplicate GAN images): many pairs within the threshold."""
    centres = rng.integers(0, 2**63, n_centres, dtype=np.uint64) * np.uint64(2)
    bits = rng.random((n, 64)) < flip_p
    flips = (bits.astype(np.uint64) << np.arange(64, dtype=np.uint64)).sum(axis=1, dtype=np.uint64)
    return centres[rng.integers(0, n_centres, n)] ^ flips


def _manifest(n_benign=300, n_mel=200, seed=0):
    rng = np.random.default_rng(seed)
    n = n_benign + n_mel
    labels = np.r_[np.zeros(n_benign, int), np.ones(n_mel, int)]
    rng.shuffle(labels)
    return pd.DataFrame({
        "image": [f"shard_{i // 100}.npy#{i % 100}" for i in range(n)],
        "label": labels,
        "phash": to_hex(_clustered_hashes(rng, n)),
        "score": rng.exponential(1.0, n).round(2),  # rounding makes ties
        "extra": np.arange(n) * 10,
    }, index=pd.RangeIndex(1000, 1000 + n))


def test_registry():
    assert SAMPLING_METHODS == ("random", "diverse", "best", "worst")
    assert ABBREVIATIONS == {"random": "rnd", "diverse": "div", "best": "bst", "worst": "wst"}


@pytest.mark.parametrize("method", SAMPLING_METHODS)
def test_counts_columns_order(method):
    m = _manifest()
    out = sample_pool(m, {0: 40, 1: 25}, method, seed=3, diverse_threshold=8)
    assert list(out.columns) == list(m.columns)
    assert (out["label"] == 0).sum() == 40 and (out["label"] == 1).sum() == 25
    assert out.index.is_unique and out.index.isin(m.index).all()
    assert list(out.index) == sorted(out.index)  # manifest order
    pd.testing.assert_frame_equal(out, m.loc[out.index])  # original rows, untouched
    # deterministic
    pd.testing.assert_frame_equal(out, sample_pool(m, {0: 40, 1: 25}, method, seed=3, diverse_threshold=8))


def test_random_seeded_and_nested():
    m = _manifest()
    a = sample_pool(m, {0: 50, 1: 30}, "random", seed=1)
    b = sample_pool(m, {0: 50, 1: 30}, "random", seed=2)
    assert set(a.index) != set(b.index)
    small = sample_pool(m, {0: 20, 1: 10}, "random", seed=1)
    assert set(small.index) <= set(a.index)  # nested across counts
    # the classes are drawn independently: changing one count does not change the other class's choice
    c = sample_pool(m, {0: 50, 1: 5}, "random", seed=1)
    assert set(c[c.label == 0].index) == set(a[a.label == 0].index)
    # roughly uniform: over seeds every row gets picked sometimes
    hits = pd.concat([sample_pool(m, {0: 150, 1: 100}, "random", seed=s) for s in range(20)]).index
    assert set(hits) == set(m.index)


def test_best_and_worst_order():
    m = _manifest()
    for label, n in ((0, 30), (1, 20)):
        cls = m[m.label == label]
        best = sample_pool(m, {label: n}, "best", seed=0)
        worst = sample_pool(m, {label: n}, "worst", seed=0)
        assert best.score.max() <= cls.drop(best.index).score.min()
        assert worst.score.min() >= cls.drop(worst.index).score.max()
        # ties broken by manifest order: exactly the first n of a stable sort
        exp_best = cls.sort_values("score", kind="stable").index[:n]
        exp_worst = cls.iloc[np.argsort(-cls.score.to_numpy(), kind="stable")].index[:n]
        assert set(best.index) == set(exp_best) and set(worst.index) == set(exp_worst)
    # best does not depend on the seed
    pd.testing.assert_frame_equal(sample_pool(m, {0: 9, 1: 9}, "best", 1), sample_pool(m, {0: 9, 1: 9}, "best", 2))


@pytest.mark.parametrize("threshold", [0, 6, 12])
def test_diverse_pairs_exceed_threshold(threshold):
    m = _manifest(600, 400, seed=threshold)
    counts = {0: 25, 1: 20}
    out = sample_pool(m, counts, "diverse", seed=5, diverse_threshold=threshold)
    for label in (0, 1):
        h = hex_to_uint64(out[out.label == label].phash.tolist())
        d = pairwise_hamming(h, h).astype(int)
        np.fill_diagonal(d, 99)
        assert d.min() > threshold
        assert len(h) == counts[label]


def test_diverse_matches_plain_greedy_loop():
    """The blocked vectorised greedy equals the obvious one-at-a-time loop."""
    rng = np.random.default_rng(7)
    h = _clustered_hashes(rng, 3000, n_centres=200, flip_p=0.08)
    for thr, n, block in ((10, 150, 64), (4, 2000, 37), (14, 10_000, 256)):
        kept = []
        for i, x in enumerate(h):
            if len(kept) >= n:
                break
            if not kept or np.bitwise_count(h[kept] ^ x).min() > thr:
                kept.append(i)
        got = greedy_diverse(h, n, thr, block=block, kept_block=50)
        assert got.tolist() == kept


def test_diverse_insufficient_pool_names_threshold():
    m = _manifest(200, 100)
    with pytest.raises(InputError) as e:
        sample_pool(m, {0: 150, 1: 10}, "diverse", seed=0, diverse_threshold=20)
    msg = str(e.value)
    assert "sampling.diverse_threshold" in msg and "found only" in msg and "200" in msg


def test_count_larger_than_pool_and_bad_input():
    m = _manifest(30, 20)
    for method in SAMPLING_METHODS:
        with pytest.raises(InputError, match="pool has only 20"):
            sample_pool(m, {0: 5, 1: 21}, method, seed=0)
    with pytest.raises(InputError, match="unknown"):
        sample_pool(m, {0: 1}, "stratified", seed=0)
    with pytest.raises(InputError, match="score"):
        sample_pool(m.drop(columns="score"), {0: 1}, "best", seed=0)
    with pytest.raises(InputError, match="phash"):
        sample_pool(m.drop(columns="phash"), {0: 1}, "diverse", seed=0)
    bad = m.copy()
    bad.loc[bad.index[0], "score"] = np.nan
    with pytest.raises(InputError, match="score"):
        sample_pool(bad, {0: 30, 1: 1}, "worst", seed=0)
    with pytest.raises(InputError, match="diverse_threshold"):
        sample_pool(m, {0: 1}, "diverse", seed=0, diverse_threshold=64)
    assert len(sample_pool(m, {0: 0, 1: 0}, "random", seed=0)) == 0


def test_manifest_from_csv_with_all_digit_hashes(tmp_path):
    """pandas reads an all-digit hash as an integer; sampling still decodes it correctly."""
    m = _manifest(20, 10)
    m.loc[m.index[:5], "phash"] = ["0123456789012345", "1111111111111111", "0000000000000001",
                                   "9999999999999999", "0000000000000000"]
    m.loc[m.index[5:], "phash"] = "2222222222222222"  # numeric-looking column throughout
    m.to_csv(tmp_path / "manifest.csv", index=False)
    back = pd.read_csv(tmp_path / "manifest.csv")
    assert back.phash.dtype.kind == "i"
    a = sample_pool(back, {0: 3, 1: 1}, "diverse", seed=0, diverse_threshold=0)
    b = sample_pool(m.reset_index(drop=True), {0: 3, 1: 1}, "diverse", seed=0, diverse_threshold=0)
    assert a.image.tolist() == b.image.tolist()
