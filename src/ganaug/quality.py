"""Generative quality beyond FID: improved precision and recall (Kynkaanniemi et al., NeurIPS 2019).

Each set of feature vectors (real R, fake F; Euclidean distances) defines a manifold: the union of balls
B(x, r_k(x)) around its points, r_k(x) = distance from x to its k-th nearest neighbour in the same set
(x itself excluded; a duplicate of x counts as a neighbour at distance 0). Default k = 3.
    precision = |{f in F : exists r in R with ||f - r|| <= r_k(r)}| / |F|   (fakes inside the real manifold)
    recall    = |{r in R : exists f in F with ||r - f|| <= r_k(f)}| / |R|   (reals inside the fake manifold)
Distances are computed blockwise from squared norms (||a||^2 + ||b||^2 - 2 a.b, clipped at 0, float64),
so memory stays at block x block entries. ``quality_per_class`` adds KID (ganaug.fid.kid) and FID
(ganaug.fid.fid_from_features) for all images and per class.
"""

from __future__ import annotations

import logging

import numpy as np

from .io import InputError

log = logging.getLogger("ganaug")


def _feats(x, name: str) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 2:
        raise InputError(f"{name}: expected an N x D feature array, got shape {a.shape}")
    if not np.isfinite(a).all():
        raise InputError(f"{name}: {int((~np.isfinite(a)).any(axis=1).sum())} feature row(s) hold NaN/inf")
    return a


def _sqdist(a: np.ndarray, b: np.ndarray, a2: np.ndarray, b2: np.ndarray) -> np.ndarray:
    return np.maximum(a2[:, None] + b2[None, :] - 2.0 * (a @ b.T), 0.0)


def knn_radii(feats, k: int = 3, block: int = 1024) -> np.ndarray:
    """Distance of every row to its k-th nearest other row of the same array (Euclidean)."""
    x = _feats(feats, "features")
    if not 1 <= k < len(x):
        raise InputError(f"knn_radii: k = {k} needs at least k + 1 = {k + 1} samples, got {len(x)}")
    x2 = (x * x).sum(axis=1)
    out = np.empty(len(x))
    for s in range(0, len(x), block):
        d = _sqdist(x[s : s + block], x, x2[s : s + block], x2)
        rows = np.arange(len(d))
        d[rows, rows + s] = np.inf  # exclude self
        out[s : s + len(d)] = np.partition(d, k - 1, axis=1)[:, k - 1]
    return np.sqrt(out)


def in_manifold(query, ref, ref_radii, block: int = 1024) -> np.ndarray:
    """Boolean per query row: inside at least one ball B(ref_j, ref_radii_j) (boundary included)."""
    q = _feats(query, "query features")
    r = _feats(ref, "reference features")
    rad2 = np.asarray(ref_radii, dtype=np.float64) ** 2
    if q.shape[1] != r.shape[1] or len(rad2) != len(r):
        raise InputError(f"in_manifold: shapes {q.shape}, {r.shape} and {len(rad2)} radii do not match")
    q2, r2 = (q * q).sum(axis=1), (r * r).sum(axis=1)
    out = np.zeros(len(q), dtype=bool)
    for s in range(0, len(q), block):
        hit = np.zeros(min(block, len(q) - s), dtype=bool)
        for t in range(0, len(r), block):
            d = _sqdist(q[s : s + block], r[t : t + block], q2[s : s + block], r2[t : t + block])
            hit |= (d <= rad2[None, t : t + block]).any(axis=1)
        out[s : s + len(hit)] = hit
    return out


def precision_recall(real_feats, fake_feats, k: int = 3, block: int = 1024) -> dict:
    """Improved precision and recall of fake vs real features: {precision, recall, n_real, n_fake, k}."""
    real = _feats(real_feats, "real features")
    fake = _feats(fake_feats, "fake features")
    if real.shape[1] != fake.shape[1]:
        raise InputError(f"precision_recall: feature dimensions differ ({real.shape[1]} vs {fake.shape[1]})")
    for n, name in ((len(real), "real"), (len(fake), "fake")):
        if n <= k:
            raise InputError(f"precision_recall: {n} {name} samples, need more than k = {k}")
    precision = in_manifold(fake, real, knn_radii(real, k, block), block).mean()
    recall = in_manifold(real, fake, knn_radii(fake, k, block), block).mean()
    return {"precision": float(precision), "recall": float(recall), "n_real": len(real), "n_fake": len(fake),
            "k": int(k)}


def quality_per_class(real_feats, real_labels, fake_feats, fake_labels, k: int = 3, kid_subsets: int = 100,
                      kid_subset_size: int = 1000, seed: int = 0, fid_min_n: int = 2,
                      block: int = 1024, device=None) -> list[dict]:
    """Precision, recall, KID and FID for all images ('all') and per class.

    Labels are one per row (``fake_labels`` None: only 'all'). Returns a list of dicts, class 'all' first,
    then the classes of either set in sorted order, each with: class (str), n_real, n_fake, precision,
    recall (None unless both sets have more than k samples), kid, kid_std (``fid.kid`` with kid_subsets
    subsets of min(kid_subset_size, n_real, n_fake) rows on `device`; None unless both sets have >= 2;
    kid_std None where the subsets are the whole of both sets), fid
    (``fid.fid_from_features``; None unless both sets have >= max(2, fid_min_n) rows; with fewer rows than
    feature dimensions the covariances are singular and FID is strongly biased, so set fid_min_n
    accordingly).
    """
    from .fid import fid_from_features, kid

    real = _feats(real_feats, "real features")
    fake = _feats(fake_feats, "fake features")
    if real.shape[1] != fake.shape[1]:
        raise InputError(f"quality_per_class: feature dimensions differ ({real.shape[1]} vs {fake.shape[1]})")
    groups = [("all", np.ones(len(real), bool), np.ones(len(fake), bool))]
    if fake_labels is not None or real_labels is not None:
        if fake_labels is None or real_labels is None:
            raise InputError("quality_per_class: give labels for both real and fake features, or for neither")
        rl, fl = np.asarray(real_labels).ravel(), np.asarray(fake_labels).ravel()
        for lab, n, name in ((rl, len(real), "real_labels"), (fl, len(fake), "fake_labels")):
            if len(lab) != n:
                raise InputError(f"quality_per_class: {name} has {len(lab)} entries for {n} feature rows")
        for c in sorted(set(rl.tolist()) | set(fl.tolist())):
            groups.append((str(c), rl == c, fl == c))
    out = []
    for name, rm, fm in groups:
        r, f = real[rm], fake[fm]
        row = {"class": name, "n_real": len(r), "n_fake": len(f), "precision": None, "recall": None,
               "kid": None, "kid_std": None, "fid": None}
        if len(r) > k and len(f) > k:
            pr = precision_recall(r, f, k, block)
            row.update(precision=pr["precision"], recall=pr["recall"])
        if min(len(r), len(f)) >= 2:
            row["kid"], row["kid_std"] = kid(r, f, n_subsets=kid_subsets, subset_size=kid_subset_size,
                                               seed=seed, device=device)
        if min(len(r), len(f)) >= max(2, fid_min_n):
            try:
                row["fid"] = fid_from_features(r, f)
            except InputError:
                raise
            except ValueError as e:  # numerically failed matrix square root
                log.warning("quality_per_class: FID of class %s not computed (%s)", name, e)
        out.append(row)
    return out


__all__ = ["in_manifold", "knn_radii", "precision_recall", "quality_per_class"]
