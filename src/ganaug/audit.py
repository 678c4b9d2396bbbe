"""Memorization audit of a GAN: how close is each synthetic training image to a real training image?

Two neighbourhoods, both computed blockwise (memory stays at block_q x block_r entries):
- pHash (64-bit ``uint64`` from ganaug.phash): Hamming distance = popcount(a XOR b) (``np.bitwise_count``),
  0..64; the nearest neighbour has the smallest distance.
- Features (float N x D, e.g. FID/classifier embeddings): cosine similarity a.b / (|a| |b|), -1..1; the
  nearest neighbour has the largest similarity. A zero feature vector is an error (no direction).
Ties go to the smallest reference index (as ``argmin``/``argmax`` on the full matrix).

The real-to-real baseline is the same search of every real image against the *other* real images
(leave-one-out): it shows how close independent images of the data set come to each other (the data set
itself holds near-duplicates), so the synthetic-to-real distances are read against it. Images of the same
lesion are not independent (ISIC holds several images of many lesions, often nearly identical), so when
the real images carry lesion ids (``real_groups``: the training index's ``lesion_id``) a real image's
neighbours exclude every image of its own lesion; an empty lesion id counts as a lesion of its own. The
summary says which rule was used (``real_to_real_excludes``: 'self' or 'same lesion_id').

Translation GANs (pix2pixHD, SPADE) draw every image from a real image's label map (``source_image`` in
the pool manifest and samples; pool copy k from the k-th flip/rotation of the map), so their images are
also compared with their own source image, as it is and under each of the 8 flips/rotations
(``ganaug.masks.dihedral``; transform k = rot90 k % 4 times, then a left-right flip when k >= 4): the
smallest pHash distance and the largest cosine similarity over the 8, and the transform that attains it
(ties: the smallest k).
Near copies: pHash distance <= t_hash, cosine similarity >= t_cos, for each configured threshold.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from .io import InputError

NO_MATCH = 65  # Hamming "distance" when there is no reference image
QUANTILES = (0.0, 0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0)
DEFAULT_THRESHOLDS = {"hash": (0, 4, 8), "cos": (0.9, 0.95)}


def _as_hashes(h, name: str) -> np.ndarray:
    a = np.asarray(h)
    if a.dtype == np.uint64:
        return a.ravel()
    if a.dtype.kind in "OUS":
        from .phash import hex_to_uint64

        try:
            return np.asarray(hex_to_uint64(list(a.ravel())), dtype=np.uint64)
        except InputError as e:
            raise InputError(f"{name}: {e}") from e
    if a.dtype.kind in "iu" and (a.size == 0 or a.min() >= 0):
        return a.astype(np.uint64).ravel()
    raise InputError(f"{name}: expected uint64 pHash values (or hex strings), got dtype {a.dtype}")


def _as_unit_features(f, name: str) -> np.ndarray:
    a = np.asarray(f, dtype=np.float64)
    if a.ndim != 2:
        raise InputError(f"{name}: expected an N x D feature array, got shape {a.shape}")
    if not np.isfinite(a).all():
        raise InputError(f"{name}: {int((~np.isfinite(a)).any(axis=1).sum())} feature row(s) hold NaN/inf")
    norms = np.linalg.norm(a, axis=1, keepdims=True)
    zero = np.flatnonzero(norms[:, 0] == 0)
    if len(zero):
        raise InputError(f"{name}: feature row(s) {zero[:5].tolist()} are all zero (cosine undefined)")
    return a / norms


def group_codes(groups) -> np.ndarray:
    """Integer codes of group labels (e.g. lesion ids): equal labels get equal codes >= 0; an empty label
    (``''``, None, NaN) gets a negative code of its own (a group of one)."""
    g = pd.Series(list(groups), dtype=object)
    empty = g.isna() | (g.astype(str).str.strip() == "")
    codes = np.empty(len(g), dtype=np.int64)
    codes[~empty.to_numpy()] = pd.factorize(g[~empty].astype(str).str.strip())[0]
    codes[empty.to_numpy()] = -1 - np.flatnonzero(empty.to_numpy())
    return codes


def _groups(query_groups, ref_groups, nq: int, nr: int, fn: str):
    if (query_groups is None) != (ref_groups is None):
        raise InputError(f"{fn}: pass groups for both query and reference, or for neither")
    if query_groups is None:
        return None, None
    qg, rg = np.asarray(query_groups).ravel(), np.asarray(ref_groups).ravel()
    if len(qg) != nq or len(rg) != nr:
        raise InputError(f"{fn}: {len(qg)} / {len(rg)} group labels for {nq} query / {nr} reference rows")
    return qg, rg


def nearest_hamming(query_hashes, ref_hashes, exclude_self: bool = False, block_q: int = 1024,
                    block_r: int = 8192, query_groups=None,
                    ref_groups=None) -> tuple[np.ndarray, np.ndarray]:
    """For each query hash, the smallest Hamming distance to a reference hash and that reference's index.

    exclude_self: query and reference are the same set; row i is not compared with reference i.
    query_groups / ref_groups (e.g. ``group_codes`` of lesion ids): a query row is not compared with a
    reference row of the same group (masked per block, no Python loop over rows).
    No reference left: distance 65 (``NO_MATCH``), index -1. Returns (int64 distances, int64 indices).
    """
    q = _as_hashes(query_hashes, "query hashes")
    r = _as_hashes(ref_hashes, "reference hashes")
    if exclude_self and len(q) != len(r):
        raise InputError(f"nearest_hamming: exclude_self needs the same set twice, got {len(q)} and {len(r)}")
    qg, rg = _groups(query_groups, ref_groups, len(q), len(r), "nearest_hamming")
    best_d = np.full(len(q), 255, dtype=np.uint8)
    best_i = np.full(len(q), -1, dtype=np.int64)
    for s in range(0, len(q), block_q):
        qb = q[s : s + block_q, None]
        rows = np.arange(len(qb))
        bd, bi = best_d[s : s + len(qb)], best_i[s : s + len(qb)]  # views
        for t in range(0, len(r), block_r):
            d = np.bitwise_count(qb ^ r[None, t : t + block_r])
            if exclude_self:
                i = np.arange(max(s, t), min(s + len(qb), t + d.shape[1]))
                d[i - s, i - t] = 255
            if qg is not None:
                d[qg[s : s + len(qb), None] == rg[None, t : t + d.shape[1]]] = 255
            j = d.argmin(axis=1)
            dj = d[rows, j]
            better = dj < bd  # strict: earlier blocks win ties
            bd[better] = dj[better]
            bi[better] = j[better] + t
    dist = best_d.astype(np.int64)
    dist[best_i < 0] = NO_MATCH
    return dist, best_i


def nearest_cosine(query_feats, ref_feats, exclude_self: bool = False, block_q: int = 1024,
                   block_r: int = 8192, query_groups=None,
                   ref_groups=None) -> tuple[np.ndarray, np.ndarray]:
    """For each query row, the largest cosine similarity to a reference row and that row's index.

    exclude_self and query_groups / ref_groups as in ``nearest_hamming``; no reference left: similarity
    -inf, index -1.
    """
    q = _as_unit_features(query_feats, "query features")
    r = _as_unit_features(ref_feats, "reference features")
    if q.shape[1] != r.shape[1]:
        raise InputError(f"nearest_cosine: feature dimensions differ ({q.shape[1]} vs {r.shape[1]})")
    if exclude_self and len(q) != len(r):
        raise InputError(f"nearest_cosine: exclude_self needs the same set twice, got {len(q)} and {len(r)}")
    qg, rg = _groups(query_groups, ref_groups, len(q), len(r), "nearest_cosine")
    best_s = np.full(len(q), -np.inf)
    best_i = np.full(len(q), -1, dtype=np.int64)
    for s in range(0, len(q), block_q):
        qb = q[s : s + block_q]
        rows = np.arange(len(qb))
        bs, bi = best_s[s : s + len(qb)], best_i[s : s + len(qb)]
        for t in range(0, len(r), block_r):
            sim = qb @ r[t : t + block_r].T
            if exclude_self:
                i = np.arange(max(s, t), min(s + len(qb), t + sim.shape[1]))
                sim[i - s, i - t] = -np.inf
            if qg is not None:
                sim[qg[s : s + len(qb), None] == rg[None, t : t + sim.shape[1]]] = -np.inf
            j = sim.argmax(axis=1)
            sj = sim[rows, j]
            better = sj > bs
            bs[better] = sj[better]
            bi[better] = j[better] + t
    return np.minimum(best_s, 1.0), best_i


def source_distances(synth_hashes, source_hashes, synth_feats=None, source_feats=None) -> dict:
    """Each synthetic image against its own source image under T transforms (vectorised over both).

    source_hashes: T x N pHashes, [t, i] = source of synthetic image i under transform t; source_feats:
    T x N x D features likewise (optional, with synth_feats N x D). Returns {hash_dist (int64, min over t),
    hash_transform (argmin, smallest t on ties), and with features cos_sim (max over t), cos_transform}."""
    sh = _as_hashes(synth_hashes, "synthetic hashes")
    src = np.asarray(source_hashes)
    if src.ndim != 2 or src.shape[1] != len(sh):
        raise InputError(f"source_distances: expected T x {len(sh)} source hashes, got shape {src.shape}")
    src = _as_hashes(src, "source hashes").reshape(src.shape)
    d = np.bitwise_count(src ^ sh[None, :]).astype(np.int64)  # T x N
    out = {"hash_dist": d.min(axis=0), "hash_transform": d.argmin(axis=0)}
    if (synth_feats is None) != (source_feats is None):
        raise InputError("source_distances: pass features for both synthetic and source images, or neither")
    if synth_feats is not None:
        sf = _as_unit_features(synth_feats, "synthetic features")
        tf = np.asarray(source_feats, dtype=np.float64)
        if tf.ndim != 3 or tf.shape[1:] != sf.shape:
            raise InputError(f"source_distances: expected T x {sf.shape[0]} x {sf.shape[1]} source features, "
                             f"got shape {tf.shape}")
        uf = _as_unit_features(tf.reshape(-1, tf.shape[2]), "source features").reshape(tf.shape)
        sim = np.minimum(np.einsum("tnd,nd->tn", uf, sf), 1.0)
        out.update(cos_sim=sim.max(axis=0), cos_transform=sim.argmax(axis=0))
    return out


def _thresholds(thresholds) -> tuple[list[int], list[float]]:
    th = dict(DEFAULT_THRESHOLDS)
    if thresholds is not None:
        unknown = set(thresholds) - {"hash", "cos"}
        if unknown:
            raise InputError(f"audit thresholds: unknown key(s) {sorted(unknown)} (allowed: hash, cos)")
        th.update(thresholds)
    as_list = lambda v: list(v) if isinstance(v, (list, tuple, np.ndarray)) else [v]
    t_hash = [int(t) for t in as_list(th["hash"])]
    t_cos = [float(t) for t in as_list(th["cos"])]
    if any(not 0 <= t <= 64 for t in t_hash):
        raise InputError(f"audit thresholds: hash thresholds must be within 0..64, got {t_hash}")
    if any(not -1 <= t <= 1 for t in t_cos):
        raise InputError(f"audit thresholds: cos thresholds must be within -1..1, got {t_cos}")
    return t_hash, t_cos


def _describe(values: np.ndarray, quantiles) -> dict:
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if len(v) == 0:
        return {"n": 0, "mean": None, "quantiles": {f"{q:g}": None for q in quantiles}}
    qs = np.quantile(v, quantiles)
    return {"n": len(v), "mean": float(v.mean()),
            "quantiles": {f"{q:g}": float(x) for q, x in zip(quantiles, qs)}}


def _counts(synth: np.ndarray, real: np.ndarray, thresholds, op) -> list[dict]:
    out = []
    for t in thresholds:
        cs, cr = int(op(synth, t).sum()), int(op(real, t).sum())
        out.append({"threshold": t, "synth": cs, "synth_fraction": cs / len(synth) if len(synth) else None,
                    "real": cr, "real_fraction": cr / len(real) if len(real) else None})
    return out


def audit(synth_hashes, real_hashes, synth_feats=None, real_feats=None, thresholds=None,
          synth_ids: Sequence | None = None, real_ids: Sequence | None = None,
          quantiles=QUANTILES, real_groups: Sequence | None = None, source: dict | None = None,
          source_ids: Sequence | None = None) -> tuple[pd.DataFrame, dict]:
    """Nearest real training image of every synthetic image, and the real-to-real baseline.

    thresholds: {"hash": int or list (near copy: distance <= t), "cos": float or list (similarity >= t)};
    missing keys take ``DEFAULT_THRESHOLDS``. Features are optional (pass both or neither).
    synth_ids / real_ids: optional names (e.g. file names) copied into the per-image table.
    real_groups: optional lesion id of every real image; the real-to-real baseline then skips images of
    the same lesion (an empty id is a lesion of its own). Without it only the image itself is skipped.
    source: optional ``source_distances`` result of a translation GAN (each synthetic image against its own
    source image, min over flips/rotations); source_ids: the source image names.

    Returns (per_image, summary):
    per_image, one row per synthetic image: synth_index, [synth_id], hash_dist, hash_real_index,
    [hash_real_id], and with features cos_sim, cos_real_index, [cos_real_id]; then one boolean column
    per threshold, ``hash_le_{t}`` / ``cos_ge_{t}``; with `source`: [source_image], source_hash_dist,
    source_hash_transform, [source_cos_sim, source_cos_transform].
    summary (JSON-serialisable): n_synth, n_real, real_to_real_excludes ('self' | 'same lesion_id'),
    thresholds, and per measure ("hash", "cos"): synth_to_real and real_to_real ({n, mean, quantiles}), and
    near_copies: one entry per threshold with the synthetic images under it and, for comparison, the real
    images whose nearest *other* real image (of another lesion) is. With `source`, per measure also
    synth_to_source ({n, mean, quantiles}) and, per near_copies entry, ``source`` / ``source_fraction``:
    the synthetic images within the threshold of their own source image.
    """
    t_hash, t_cos = _thresholds(thresholds)
    sh = _as_hashes(synth_hashes, "synthetic hashes")
    rh = _as_hashes(real_hashes, "real hashes")
    if len(rh) == 0:
        raise InputError("audit: no real training images (real hashes empty)")
    if (synth_feats is None) != (real_feats is None):
        raise InputError("audit: pass features for both synthetic and real images, or for neither")
    for ids, n, name in ((synth_ids, len(sh), "synth_ids"), (real_ids, len(rh), "real_ids"),
                         (real_groups, len(rh), "real_groups"), (source_ids, len(sh), "source_ids")):
        if ids is not None and len(ids) != n:
            raise InputError(f"audit: {name} has {len(ids)} entries for {n} images")
    df = pd.DataFrame({"synth_index": np.arange(len(sh))})
    if synth_ids is not None:
        df["synth_id"] = list(synth_ids)
    codes = None if real_groups is None else group_codes(real_groups)
    d, idx = nearest_hamming(sh, rh)
    rr_d, _ = nearest_hamming(rh, rh, exclude_self=True, query_groups=codes, ref_groups=codes)
    df["hash_dist"], df["hash_real_index"] = d, idx
    if real_ids is not None:
        df["hash_real_id"] = [real_ids[i] for i in idx]
    summary = {
        "n_synth": len(sh), "n_real": len(rh),
        "real_to_real_excludes": "self" if codes is None else "same lesion_id",
        "thresholds": {"hash": t_hash, "cos": t_cos if synth_feats is not None else []},
        "hash": {"synth_to_real": _describe(d, quantiles),
                 "real_to_real": _describe(np.where(rr_d == NO_MATCH, np.nan, rr_d), quantiles),
                 "near_copies": _counts(d, rr_d, t_hash, np.less_equal)},
    }
    if synth_feats is not None:
        sf, rf = np.asarray(synth_feats), np.asarray(real_feats)
        if len(sf) != len(sh) or len(rf) != len(rh):
            raise InputError(f"audit: {len(sf)} synthetic / {len(rf)} real feature rows for {len(sh)} / "
                             f"{len(rh)} hashes")
        s, sidx = nearest_cosine(sf, rf)
        rr_s, _ = nearest_cosine(rf, rf, exclude_self=True, query_groups=codes, ref_groups=codes)
        df["cos_sim"], df["cos_real_index"] = s, sidx
        if real_ids is not None:
            df["cos_real_id"] = [real_ids[i] for i in sidx]
        summary["cos"] = {"synth_to_real": _describe(s, quantiles), "real_to_real": _describe(rr_s, quantiles),
                          "near_copies": _counts(s, rr_s, t_cos, np.greater_equal)}
    for t in t_hash:
        df[f"hash_le_{t}"] = df["hash_dist"] <= t
    if synth_feats is not None:
        for t in t_cos:
            df[f"cos_ge_{t:g}"] = df["cos_sim"] >= t
    if source is not None:
        _add_source(df, summary, source, source_ids, t_hash, t_cos, quantiles)
    return df, summary


def _add_source(df, summary, source, source_ids, t_hash, t_cos, quantiles) -> None:
    n = len(df)
    if len(source.get("hash_dist", ())) != n:
        raise InputError(f"audit: source distances for {len(source.get('hash_dist', ()))} images, not {n}")
    if source_ids is not None:
        df["source_image"] = list(source_ids)
    measures = [("hash", "hash_dist", "hash_transform", t_hash, np.less_equal)]
    if "cos" in summary:
        if "cos_sim" not in source:
            raise InputError("audit: features were given but the source distances have no cos_sim")
        measures.append(("cos", "cos_sim", "cos_transform", t_cos, np.greater_equal))
    for measure, value, transform, thresholds, op in measures:
        v = np.asarray(source[value])
        df[f"source_{value}"] = v
        df[f"source_{transform}"] = np.asarray(source[transform], dtype=np.int64)
        summary[measure]["synth_to_source"] = _describe(v, quantiles)
        for entry, t in zip(summary[measure]["near_copies"], thresholds):
            c = int(op(v, t).sum())
            entry.update(source=c, source_fraction=c / n if n else None)


def closest_pairs(per_image: pd.DataFrame, by: str = "hash", n: int = 16) -> np.ndarray:
    """(synth index, real index) of the n closest pairs of an ``audit`` table, closest first.

    by 'hash': smallest pHash distance (ties: larger cosine similarity if present, then synth index);
    by 'cos': largest cosine similarity (ties: smaller pHash distance, then synth index)."""
    if by == "hash":
        keys, asc, real = ["hash_dist", "cos_sim", "synth_index"], [True, False, True], "hash_real_index"
    elif by == "cos":
        keys, asc, real = ["cos_sim", "hash_dist", "synth_index"], [False, True, True], "cos_real_index"
    else:
        raise InputError(f"closest_pairs: by must be 'hash' or 'cos', got {by!r}")
    if keys[0] not in per_image.columns:
        raise InputError(f"closest_pairs: audit table has no column '{keys[0]}'")
    use = [(k, a) for k, a in zip(keys, asc) if k in per_image.columns]
    top = per_image.sort_values([k for k, _ in use], ascending=[a for _, a in use], kind="stable").head(n)
    return np.stack([top["synth_index"].to_numpy(np.int64), top[real].to_numpy(np.int64)], axis=1) \
        if len(top) else np.zeros((0, 2), dtype=np.int64)


def pair_grid(synth_images, real_images, pairs, n: int | None = 16, sep: int = 4,
              sep_value: int = 255) -> np.ndarray:
    """Image grid of synthetic/real pairs: one row per pair, synthetic | separator | nearest real,
    rows separated by `sep` pixels of `sep_value`. Images are N x H x W x C uint8 (memory-mapped arrays
    are fine: only the images shown are read), all of one size. Returns a uint8 array of shape
    (k H + (k - 1) sep, 2 W + sep, C) for the first k = min(n, len(pairs)) pairs."""
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    if n is not None:
        pairs = pairs[: int(n)]
    for arr, name in ((synth_images, "synthetic images"), (real_images, "real images")):
        if len(getattr(arr, "shape", ())) != 4 or arr.dtype != np.uint8:
            raise InputError(f"pair_grid: {name} must be uint8 N x H x W x C, got "
                             f"{getattr(arr, 'dtype', type(arr))} {tuple(getattr(arr, 'shape', ()))}")
    if tuple(synth_images.shape[1:]) != tuple(real_images.shape[1:]):
        raise InputError(f"pair_grid: synthetic images {tuple(synth_images.shape[1:])} and real images "
                         f"{tuple(real_images.shape[1:])} differ in size")
    for col, arr, name in ((0, synth_images, "synthetic"), (1, real_images, "real")):
        bad = (pairs[:, col] < 0) | (pairs[:, col] >= len(arr))
        if bad.any():
            raise InputError(f"pair_grid: {name} index {int(pairs[bad, col][0])} out of range (0..{len(arr) - 1})")
    h, w, c = synth_images.shape[1:]
    k = len(pairs)
    grid = np.full((max(0, k * h + (k - 1) * sep), 2 * w + sep, c), sep_value, dtype=np.uint8)
    for row, (si, ri) in enumerate(pairs):
        y = row * (h + sep)
        grid[y : y + h, :w] = synth_images[int(si)]
        grid[y : y + h, w + sep :] = real_images[int(ri)]
    return grid


def memorization_audit(gan: str, samples_csvs, train_csv, train_images_gan, train_images_cls, cls_size: int,
                       ancillary_path, out_dir, thresholds=None, n_pairs: int = 16, device="cpu",
                       log=None) -> dict:
    """Audit of one GAN: every synthetic image of that GAN used by some experiment's training set
    (the union of the experiments' samples, `samples_csvs`) against the real training images.

    pHash on the images at the GAN's resolution (train_images_gan: the real training cache at that size);
    cosine similarity of the ancillary classifier's penultimate features (train_images_cls: the cache at
    the classifier's size `cls_size`). The real-to-real baseline skips images of the same lesion when
    train_csv has a ``lesion_id`` column. When the samples carry ``source_image`` (translation GANs), each
    synthetic image is also compared with its own source image under the 8 flips/rotations
    (``source_image_distances``). Writes out_dir/nearest.csv (one row per synthetic image), summary.json,
    closest_phash.png and closest_features.png (synthetic | nearest real, closest first).
    Returns the summary.
    """
    import logging

    from .cache import load_trainset_images
    from .classifier.predict import features
    from .classifier.training import load_classifier
    from .gans.training import save_png
    from .io import write_csv, write_json
    from .phash import phash_batch

    log = log or logging.getLogger("ganaug")
    out_dir = Path(out_dir)
    parts = []
    for path in samples_csvs:
        df = pd.read_csv(path, dtype={"image": str, "gan": str}, keep_default_na=False)
        if "gan" not in df.columns or "image" not in df.columns:
            raise InputError(f"{path}: a samples CSV needs columns image and gan")
        parts.append(df[df["gan"] == gan])
    used = pd.concat(parts, ignore_index=True).drop_duplicates("image") if parts else pd.DataFrame()
    if used.empty:
        raise InputError(f"audit of '{gan}': no synthetic image of this GAN is used by any experiment")
    used = used.reset_index(drop=True)
    train = pd.read_csv(train_csv, dtype={"image": str}, keep_default_na=False)
    if len(train) != len(train_images_gan) or len(train) != len(train_images_cls):
        raise InputError(f"{train_csv}: {len(train)} rows but the image caches hold {len(train_images_gan)} / "
                         f"{len(train_images_cls)} images; rebuild the caches")
    synth_refs = used.assign(source="synthetic")
    synth_gan = load_trainset_images(synth_refs, (train, train_images_gan), train_images_gan.shape[1])
    synth_cls = load_trainset_images(synth_refs, (train, train_images_cls), cls_size)
    model, info = load_classifier(ancillary_path, device)
    real_feats = features(model, info, np.asarray(train_images_cls), device)
    synth_feats = features(model, info, synth_cls, device)
    synth_hashes = phash_batch(synth_gan)
    source = None
    source_ids = used["source_image"].fillna("").astype(str).str.strip() if "source_image" in used.columns \
        else pd.Series("", index=used.index)
    if (source_ids == "").all():  # a class-conditional GAN (the column comes from other GANs' rows, if any)
        source_ids = None
    else:
        missing = source_ids == ""
        if missing.any():
            first = used.loc[missing.idxmax(), "image"]
            raise InputError(f"audit of '{gan}': {int(missing.sum())} synthetic image(s) have an empty "
                             f"'source_image' in the samples CSVs, e.g. {first}")
        row_of = pd.Series(np.arange(len(train)), index=train["image"].astype(str))
        unknown = ~source_ids.isin(row_of.index)
        if unknown.any():
            raise InputError(f"audit of '{gan}': source_image '{source_ids[unknown].iloc[0]}' (samples "
                             f"column 'source_image') is not in {train_csv} ({int(unknown.sum())} such)")
        source = source_image_distances(
            synth_hashes, synth_feats, row_of[source_ids].to_numpy(np.int64), train_images_gan,
            train_images_cls, lambda imgs: features(model, info, imgs, device), phash_batch)
        source_ids = source_ids.tolist()
        log.info("%s: compared with their own source image (8 flips/rotations)", gan)
    groups = train["lesion_id"].tolist() if "lesion_id" in train.columns else None
    per_image, summary = audit(synth_hashes, phash_batch(np.asarray(train_images_gan)), synth_feats,
                               real_feats, thresholds, synth_ids=used["image"].tolist(),
                               real_ids=train["image"].tolist(), real_groups=groups, source=source,
                               source_ids=source_ids)
    summary = {"gan": gan, "features": f"ancillary:{info.name}", **summary}
    write_csv(out_dir / "nearest.csv", per_image)
    write_json(out_dir / "summary.json", summary)
    for by, name in (("hash", "closest_phash.png"), ("cos", "closest_features.png")):
        save_png(out_dir / name, pair_grid(synth_gan, np.asarray(train_images_gan),
                                           closest_pairs(per_image, by, n_pairs), n_pairs))
    for t in summary["hash"]["near_copies"]:
        log.info("%s: pHash near copies %s", gan, t)
    return summary


def source_image_distances(synth_hashes, synth_feats, source_rows, real_images_gan, real_images_cls,
                           feature_fn, hash_fn, block: int = 256) -> dict:
    """``source_distances`` of every synthetic image against its source, real image number
    source_rows[i] of the caches, under the 8 flips/rotations (``ganaug.masks.dihedral``). Sources are
    processed in blocks of `block` distinct images (each transformed, hashed and embedded once), so memory
    stays at 8 x block images. feature_fn(images at the classifier size) -> N x D; hash_fn(images at the
    GAN size) -> N pHashes."""
    from .masks import dihedral

    rows = np.asarray(source_rows, dtype=np.int64)
    sh = _as_hashes(synth_hashes, "synthetic hashes")
    sf = np.asarray(synth_feats)
    if len(sh) != len(rows) or len(sf) != len(rows):
        raise InputError(f"source_image_distances: {len(rows)} sources for {len(sh)} hashes / {len(sf)} "
                         f"feature rows")
    uniq, inverse = np.unique(rows, return_inverse=True)
    out = {"hash_dist": np.zeros(len(rows), np.int64), "hash_transform": np.zeros(len(rows), np.int64),
           "cos_sim": np.zeros(len(rows)), "cos_transform": np.zeros(len(rows), np.int64)}
    for b in range(0, len(uniq), block):
        ub = uniq[b : b + block]
        sel = np.flatnonzero((inverse >= b) & (inverse < b + len(ub)))
        at = inverse[sel] - b  # row of each selected synthetic image's source within the block
        gan_imgs, cls_imgs = np.asarray(real_images_gan[ub]), np.asarray(real_images_cls[ub])
        src_h = np.stack([np.asarray(hash_fn(dihedral(gan_imgs, k)))[at] for k in range(8)])
        src_f = np.stack([np.asarray(feature_fn(dihedral(cls_imgs, k)))[at] for k in range(8)])
        part = source_distances(sh[sel], src_h, sf[sel], src_f)
        for key, value in part.items():
            out[key][sel] = value
    return out


def audit_table(summaries) -> pd.DataFrame:
    """One row per GAN, measure and threshold: near copies among the synthetic images and, for
    comparison, among the real images (nearest other real image; of another lesion when lesion ids are
    known, see real_to_real_excludes), plus the median nearest distance. Translation GANs also get
    ``source`` / ``source_fraction`` (synthetic images within the threshold of their own source image,
    under the best flip/rotation) and median_synth_to_source; empty for other GANs."""
    rows = []
    for s in summaries:
        for measure in ("hash", "cos"):
            if measure not in s:
                continue
            block = s[measure]
            for entry in block["near_copies"]:
                rows.append({"gan": s["gan"], "measure": "phash_distance" if measure == "hash" else "cosine",
                             "n_synth": s["n_synth"], "n_real": s["n_real"],
                             "median_synth_to_real": block["synth_to_real"]["quantiles"].get("0.5"),
                             "median_real_to_real": block["real_to_real"]["quantiles"].get("0.5"),
                             "source": None, "source_fraction": None,
                             "median_synth_to_source": (block.get("synth_to_source") or {}).get(
                                 "quantiles", {}).get("0.5"),
                             "real_to_real_excludes": s.get("real_to_real_excludes", "self"),
                             **entry})
    return pd.DataFrame(rows)


__all__ = ["DEFAULT_THRESHOLDS", "NO_MATCH", "QUANTILES", "audit", "closest_pairs", "group_codes",
           "nearest_cosine", "nearest_hamming", "pair_grid", "memorization_audit", "audit_table",
           "source_distances", "source_image_distances"]
