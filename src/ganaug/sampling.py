"""Choosing synthetic images from a generated pool: random, diverse (pHash), best or worst (ancillary score).

The pool manifest has one row per synthetic image with columns ``image`` (shard ref), ``label``
(0 benign, 1 melanoma), ``phash`` (16-hex-digit string, see ganaug.phash) and ``score`` (the ancillary
classifier's per-image cross-entropy for the intended class: lower = the image looks more like its class).

Every method works per class and is nested in its count: with the same seed, asking for fewer images gives
a subset of what a larger request gives (random/diverse take a prefix of one seeded order; best/worst a
prefix of one sorted order). The chosen rows come back in manifest order (class by class is not
imposed), with the original columns and index.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from .io import InputError, seed_from
from .phash import hex_to_uint64

SAMPLING_METHODS = ("random", "diverse", "best", "worst")
ABBREVIATIONS = {"random": "rnd", "diverse": "div", "best": "bst", "worst": "wst"}
DEFAULT_DIVERSE_THRESHOLD = 10

log = logging.getLogger("ganaug")


def _require_columns(manifest: pd.DataFrame, cols, method: str) -> None:
    missing = [c for c in cols if c not in manifest.columns]
    if missing:
        raise InputError(
            f"pool manifest: sampling method '{method}' needs column(s) {missing}; "
            f"columns present: {list(manifest.columns)}"
        )


def class_order(n: int, seed: int, method: str, label: int) -> np.ndarray:
    """The seeded random order of a class's pool positions (used by random and diverse)."""
    rng = np.random.default_rng(seed_from(seed, "sampling", method, int(label)))
    return rng.permutation(n)


def greedy_diverse(hashes: np.ndarray, n: int, threshold: int, block: int = 256, kept_block: int = 16384):
    """Greedy selection in the given order: keep a hash if its Hamming distance to every kept hash is
    greater than `threshold`; stop when `n` are kept. Returns the kept positions (in visiting order).

    Vectorised in blocks: a block of candidates is checked against the kept set with XOR + popcount,
    then the survivors of the block are resolved among themselves (a small sequential step over a
    B x B distance matrix). Cost O(pool x kept) popcounts, ~1e9 pairs/s-scale on a few cores.
    """
    hashes = np.asarray(hashes, dtype=np.uint64).ravel()
    kept = np.empty(min(n, len(hashes)), dtype=np.uint64)
    kept_pos: list[int] = []
    nk = 0
    thr = np.uint8(threshold)
    for s in range(0, len(hashes), block):
        if nk >= n:
            break
        cand = hashes[s : s + block]
        ok = np.ones(len(cand), dtype=bool)
        for t in range(0, nk, kept_block):
            ref = kept[t : min(nk, t + kept_block)]
            close = (np.bitwise_count(cand[ok, None] ^ ref[None, :]) <= thr).any(axis=1)
            idx = np.flatnonzero(ok)
            ok[idx[close]] = False
            if not ok.any():
                break
        idx = np.flatnonzero(ok)
        if len(idx) == 0:
            continue
        sub = cand[idx]
        near = np.bitwise_count(sub[:, None] ^ sub[None, :]) <= thr  # includes the diagonal
        taken = np.zeros(len(idx), dtype=bool)
        for j in range(len(idx)):
            if nk >= n:
                break
            # compare with the candidates of this block already kept (earlier in the order)
            if not (near[j, :j] & taken[:j]).any():
                taken[j] = True
                kept[nk] = sub[j]
                nk += 1
                kept_pos.append(s + int(idx[j]))
    return np.asarray(kept_pos, dtype=np.int64)


def sample_pool(
    manifest: pd.DataFrame,
    counts: dict,
    method: str,
    seed: int,
    diverse_threshold: int = DEFAULT_DIVERSE_THRESHOLD,
) -> pd.DataFrame:
    """Choose counts[label] rows of each class from the pool manifest with `method`.

    random:  seeded, without replacement.
    best:    lowest ``score`` first (ties: manifest order); worst: highest ``score`` first.
    diverse: seeded random order, greedy keep when the Hamming distance of its pHash to every kept one is
             > diverse_threshold, until counts[label] are kept.
    A count larger than the class's pool, or (diverse) fewer qualifying images than asked -> InputError.
    Returns the chosen rows (original columns and index) in manifest order.
    """
    if method not in SAMPLING_METHODS:
        raise InputError(f"sampling method '{method}' is unknown (known: {', '.join(SAMPLING_METHODS)})")
    _require_columns(manifest, ["image", "label"], method)
    if method == "diverse":
        _require_columns(manifest, ["phash"], method)
        if int(diverse_threshold) != diverse_threshold or not 0 <= diverse_threshold < 64:
            raise InputError(
                f"sampling.diverse_threshold: {diverse_threshold!r} must be an integer in 0..63 (bits of 64)"
            )
    if method in ("best", "worst"):
        _require_columns(manifest, ["score"], method)

    labels = manifest["label"].to_numpy()
    chosen_pos: list[np.ndarray] = []
    for label, n in sorted(counts.items()):
        n = int(n)
        if n < 0:
            raise InputError(f"sampling: negative count {n} for class {label}")
        pos = np.flatnonzero(labels == label)
        if n > len(pos):
            raise InputError(
                f"sampling: {n} synthetic images of class {label} requested but the pool has only "
                f"{len(pos)}; generate a larger pool (pool.n_per_class; for pix2pixhd and spade pool.copies_per_mask) or ask for fewer"
            )
        if n == 0:
            continue
        if method == "random":
            pick = pos[class_order(len(pos), seed, method, label)[:n]]
        elif method in ("best", "worst"):
            score = pd.to_numeric(manifest["score"].iloc[pos], errors="coerce").to_numpy(dtype=np.float64)
            if np.isnan(score).any():
                bad = manifest["image"].iloc[pos[np.isnan(score)][:3]].tolist()
                raise InputError(f"pool manifest: column 'score' is missing or not numeric for e.g. {bad}")
            key = score if method == "best" else -score
            order = np.argsort(key, kind="stable")
            pick = pos[order[:n]]
        else:  # diverse
            hashes = hex_to_uint64(manifest["phash"].iloc[pos].tolist())
            order = class_order(len(pos), seed, method, label)
            kept = greedy_diverse(hashes[order], n, int(diverse_threshold))
            if len(kept) < n:
                raise InputError(
                    f"sampling: diverse selection of class {label} found only {len(kept)} images whose "
                    f"pHash differs by more than {diverse_threshold} bits from every other kept one, "
                    f"{n} requested (pool of {len(pos)} images of that class); lower "
                    f"sampling.diverse_threshold or generate a larger pool"
                )
            pick = pos[order[kept]]
            log.info(
                "diverse sampling class %s: kept %d of %d visited (pool %d, threshold %d bits)",
                label, n, int(kept[-1]) + 1, len(pos),
                diverse_threshold,
            )
        chosen_pos.append(pick)
    allpos = np.sort(np.concatenate(chosen_pos)) if chosen_pos else np.zeros(0, dtype=np.int64)
    return manifest.iloc[allpos]
