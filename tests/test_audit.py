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


# ------------------------------------------------------------------------------------------ lesions, sources
def _naive_nearest(q, r, qg, rg, dist):
    """One query at a time in Python: the smallest distance over references of another group (ties:
    smallest index); (NO_MATCH or -inf, -1) when none is left."""
    out_d, out_i = [], []
    for i in range(len(q)):
        best, bi = None, -1
        for j in range(len(r)):
            if qg[i] == rg[j]:
                continue
            v = dist(q[i], r[j])
            if best is None or v < best:
                best, bi = v, j
        out_d.append(best if best is not None else np.inf)
        out_i.append(bi)
    return np.array(out_d, dtype=float), np.array(out_i)


def test_group_exclusion_equals_naive_loop():
    rng = np.random.default_rng(11)
    h = rng.integers(0, 64, 70).astype(np.uint64) << np.uint64(7)  # few distinct bits: ties
    lesions = rng.choice(["L1", "L2", "L3", "L4", "", ""], size=70).tolist()
    lesions[:5] = ["L9"] * 5  # and one lesion with identical hashes
    h[:5] = h[0]
    codes = audit.group_codes(lesions)
    assert codes[0] == codes[4] >= 0 and len(set(codes[[i for i, g in enumerate(lesions) if g == ""]])) == \
        lesions.count("")  # each empty id a group of its own
    ref_d, ref_i = _naive_nearest(h, h, codes, codes, lambda a, b: bin(int(a) ^ int(b)).count("1"))
    for bq, br in ((1024, 8192), (4, 9)):
        d, i = audit.nearest_hamming(h, h, exclude_self=True, block_q=bq, block_r=br, query_groups=codes,
                                     ref_groups=codes)
        assert np.array_equal(i, ref_i)
        assert np.array_equal(np.where(i < 0, np.inf, d), ref_d)
    f = rng.normal(size=(70, 5))
    neg_cos = lambda a, b: -a @ b / np.linalg.norm(a) / np.linalg.norm(b)  # noqa: E731
    ref_s, ref_j = _naive_nearest(f, f, codes, codes, neg_cos)
    s, j = audit.nearest_cosine(f, f, exclude_self=True, block_q=6, block_r=11, query_groups=codes,
                                ref_groups=codes)
    assert np.array_equal(j, ref_j) and np.allclose(s, -ref_s)
    with pytest.raises(InputError, match="both"):
        audit.nearest_hamming(h, h, query_groups=codes)


def test_real_to_real_skips_same_lesion(pools):
    real, synth, _ = pools
    real = real[:30].copy()
    real[1] = real[0]  # two images of one lesion, identical
    lesions = [f"L{i}" for i in range(30)]
    lesions[1] = "L0"
    sh, rh = phash_batch(synth[:5]), phash_batch(real)
    th = {"hash": 0, "cos": 0.999}
    _, plain = audit.audit(sh, rh, _features(synth[:5]), _features(real), thresholds=th)
    assert plain["real_to_real_excludes"] == "self"
    assert plain["hash"]["real_to_real"]["quantiles"]["0"] == 0
    assert plain["hash"]["near_copies"][0]["real"] == 2 and plain["cos"]["near_copies"][0]["real"] == 2
    _, fair = audit.audit(sh, rh, _features(synth[:5]), _features(real), thresholds=th, real_groups=lesions)
    assert fair["real_to_real_excludes"] == "same lesion_id"
    assert fair["hash"]["real_to_real"]["quantiles"]["0"] > 6
    assert fair["hash"]["near_copies"][0]["real"] == 0 and fair["cos"]["near_copies"][0]["real"] == 0
    # the synthetic side is unchanged; an empty lesion id is a lesion of its own (the copy is found again)
    assert fair["hash"]["synth_to_real"] == plain["hash"]["synth_to_real"]
    _, empty = audit.audit(sh, rh, thresholds={"hash": 0}, real_groups=[""] * 30)
    assert empty["hash"]["near_copies"][0]["real"] == 2
    with pytest.raises(InputError, match="real_groups"):
        audit.audit(sh, rh, real_groups=lesions[:3])


def test_source_comparison_finds_flipped_copy(pools):
    from ganaug.masks import dihedral

    real, _, independent = pools
    # synthetic 0..3: copies of real 2, 2, 7, 9 under transforms 5, 0, 3, 6; synthetic 4: unrelated
    src_rows = np.array([2, 2, 7, 9, 11])
    ks = [5, 0, 3, 6]
    synth = np.concatenate([np.stack([dihedral(real[[r]], k)[0] for r, k in zip(src_rows, ks)]),
                            independent[:1]])
    sh = phash_batch(synth)
    # the untransformed source is far for the rotated/flipped copies
    assert (np.bitwise_count(sh[[0, 2, 3]] ^ phash_batch(real[[2, 7, 9]])) > 4).all()
    res = audit.source_image_distances(sh, _features(synth), src_rows, real, real, _features, phash_batch,
                                       block=2)
    assert list(res["hash_dist"][:4]) == [0, 0, 0, 0] and list(res["hash_transform"][:4]) == ks
    assert np.allclose(res["cos_sim"][:4], 1) and list(res["cos_transform"][:4]) == ks
    assert res["hash_dist"][4] > 8 and res["cos_sim"][4] < 0.95
    # same as the direct (T x N) computation without blocks
    src_h = np.stack([phash_batch(dihedral(real[src_rows], k)) for k in range(8)])
    src_f = np.stack([_features(dihedral(real[src_rows], k)) for k in range(8)])
    direct = audit.source_distances(sh, src_h, _features(synth), src_f)
    for key in ("hash_dist", "hash_transform", "cos_transform"):
        assert np.array_equal(direct[key], res[key])
    # into the audit: per-image columns, summary and the table
    ids = [f"real_{r}.png" for r in src_rows]
    df, summary = audit.audit(sh, phash_batch(real), _features(synth), _features(real),
                              thresholds={"hash": [0, 4], "cos": 0.99}, source=res, source_ids=ids)
    assert list(df["source_image"]) == ids and list(df["source_hash_transform"][:4]) == ks
    assert list(df["source_hash_dist"][:4]) == [0, 0, 0, 0] and df["source_cos_sim"][:4].min() > 0.999
    assert summary["hash"]["near_copies"][0]["source"] == 4
    assert summary["hash"]["near_copies"][0]["source_fraction"] == pytest.approx(0.8)
    assert summary["cos"]["near_copies"][0]["source"] == 4 and summary["hash"]["synth_to_source"]["n"] == 5
    json.dumps(summary)
    _, plain = audit.audit(sh, phash_batch(real))
    table = audit.audit_table([{"gan": "spade", **summary}, {"gan": "stylegan2", **plain}])
    assert {"source", "source_fraction", "median_synth_to_source", "real_to_real_excludes"} <= \
        set(table.columns)
    assert table.loc[table.gan == "spade", "source"].notna().all()
    assert table.loc[table.gan == "stylegan2", "source"].isna().all()
    with pytest.raises(InputError, match="source hashes"):
        audit.source_distances(sh, src_h[:, :3])


def test_memorization_audit_reads_sources_and_lesions(tmp_path, pools, monkeypatch):
    """The job function end to end with a stand-in classifier: samples CSVs that mix a translation GAN
    (source_image) and a class-conditional one, lesion ids from the training CSV."""
    import pandas as pd

    from ganaug.classifier import predict, training
    from ganaug.io import save_npy
    from ganaug.masks import dihedral

    real, _, independent = pools
    real = real[:20].copy()
    real[1] = real[0]
    train = pd.DataFrame({"image": [f"r{i}.png" for i in range(20)], "label": [0, 1] * 10,
                          "lesion_id": ["L0", "L0"] + [f"L{i}" for i in range(2, 19)] + [""]})
    train.to_csv(tmp_path / "train.csv", index=False)
    shard = tmp_path / "shard-00000.npy"
    save_npy(shard, np.concatenate([dihedral(real[[4]], 2), dihedral(real[[6]], 7), independent[:2]]))
    pd.DataFrame({"image": [f"{shard}#0", f"{shard}#1", f"{shard}#2"], "label": [0, 0, 1],
                  "gan": ["spade", "spade", "stylegan2"], "source_image": ["r4.png", "r6.png", ""]}
                 ).to_csv(tmp_path / "a.csv", index=False)
    pd.DataFrame({"image": [f"{shard}#3"], "label": [1], "gan": ["stylegan2"]}).to_csv(tmp_path / "b.csv",
                                                                                      index=False)

    class Info:
        name = "stand-in"

    monkeypatch.setattr(training, "load_classifier", lambda path, device: (None, Info()))
    monkeypatch.setattr(predict, "features",
                        lambda model, info, images, device: _features(np.asarray(images)))
    common = dict(train_csv=tmp_path / "train.csv", train_images_gan=real, train_images_cls=real, cls_size=64,
                  ancillary_path="unused", thresholds={"hash": [0], "cos": [0.99]}, n_pairs=2)
    summary = audit.memorization_audit("spade", [tmp_path / "a.csv", tmp_path / "b.csv"],
                                       out_dir=tmp_path / "sp", **common)
    nearest = pd.read_csv(tmp_path / "sp/nearest.csv")
    assert list(nearest["source_image"]) == ["r4.png", "r6.png"]
    assert list(nearest["source_hash_dist"]) == [0, 0] and list(nearest["source_hash_transform"]) == [2, 7]
    assert summary["hash"]["near_copies"][0]["source"] == 2
    assert summary["real_to_real_excludes"] == "same lesion_id"
    assert summary["hash"]["near_copies"][0]["real"] == 0  # r0 / r1 share lesion L0
    summary = audit.memorization_audit("stylegan2", [tmp_path / "a.csv", tmp_path / "b.csv"],
                                       out_dir=tmp_path / "sg", **common)
    assert "source_hash_dist" not in pd.read_csv(tmp_path / "sg/nearest.csv").columns
    assert "synth_to_source" not in summary["hash"]
    pd.DataFrame({"image": [f"{shard}#0"], "label": [0], "gan": ["spade"], "source_image": ["r99.png"]}
                 ).to_csv(tmp_path / "c.csv", index=False)
    with pytest.raises(InputError, match="r99.png.*source_image"):
        audit.memorization_audit("spade", [tmp_path / "c.csv"], out_dir=tmp_path / "x", **common)
