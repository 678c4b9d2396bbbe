"""Duplicate images within a dataset: the same file listed twice, or images whose pHashes differ by at most
a few bits (derm7pt holds both)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd


def _image_hash(path, size: int = 256):
    """pHash of an image decoded at reduced size (None if it cannot be decoded)."""
    from PIL import Image

    from ..phash import phash_batch

    try:
        with Image.open(path) as im:
            if im.format == "JPEG":
                im.draft("RGB", (size, size))
            im = im.convert("RGB")
            im.thumbnail((size, size))
            return int(phash_batch(np.asarray(im, dtype=np.uint8)[None], workers=1)[0])
    except Exception:
        return None


def drop_near_duplicates(
    df: pd.DataFrame, max_bits: int = 4, workers: int = 2
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Remove duplicate images, keeping the first in table order.

    1. exact duplicates: rows naming the same file;
    2. near duplicates: pHash Hamming distance <= max_bits (max_bits < 0: step 2 off) to an image kept
       before it. Images that cannot be decoded are never called duplicates (the integrity check reports
       them). Returns (kept rows, dropped rows with `duplicate_of` and `distance`)."""
    df = df.reset_index(drop=True)
    dropped = []
    same = df["image"].duplicated(keep="first").to_numpy()
    first = {}
    for i, p in enumerate(df["image"]):
        first.setdefault(p, i)
        if same[i]:
            dropped.append((i, df["image"].iloc[first[p]], 0))
    todo = np.flatnonzero(~same)
    if max_bits >= 0 and len(todo):
        with ThreadPoolExecutor(max_workers=max(1, int(workers))) as pool:
            hashes = list(pool.map(_image_hash, df["image"].iloc[todo]))
        kept_h: list[int] = []
        kept_i: list[int] = []
        for i, h in zip(todo, hashes):
            if h is not None and kept_h:
                d = np.bitwise_count(np.asarray(kept_h, dtype=np.uint64) ^ np.uint64(h))
                j = int(np.argmin(d))
                if int(d[j]) <= max_bits:
                    dropped.append((int(i), df["image"].iloc[kept_i[j]], int(d[j])))
                    continue
            if h is not None:
                kept_h.append(h)
                kept_i.append(int(i))
    drop_rows = sorted(r for r, _, _ in dropped)
    info = {r: (twin, dist) for r, twin, dist in dropped}
    gone = df.iloc[drop_rows].copy()
    gone["duplicate_of"] = [info[r][0] for r in drop_rows]
    gone["distance"] = [info[r][1] for r in drop_rows]
    kept = df.drop(index=drop_rows).reset_index(drop=True)
    return kept, gone.reset_index(drop=True)
