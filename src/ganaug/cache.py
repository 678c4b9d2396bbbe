"""Decode + resize every image once into a uint8 .npy cache; assemble training sets from caches and shards.

A cache is one array N x size x size x 3 (uint8, NHWC, RGB) whose row i is row i of the CSV it was built
from. Synthetic images live in pool shards (uint8 NHWC .npy) and are referred to as ``"{shard}#{row}"``.
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

from .io import InputError, atomic_path, read_image
from .progress import Progress

log_default = logging.getLogger("ganaug")


def build_cache(
    csv_path, out_npy, size: int, log: logging.Logger | None = None, workers: int | None = None
) -> None:
    """Decode every image listed in `csv_path` (column `image`), resize to size x size (LANCZOS), store as
    one uint8 N x size x size x 3 array at `out_npy` (atomic; row order = CSV order).

    Decoding uses a thread pool (PIL releases the GIL while decoding/resizing). An unreadable image raises
    InputError naming the file (and nothing is written).
    """
    log = log or log_default
    csv_path = Path(csv_path)
    if not csv_path.exists():
        raise InputError(f"{csv_path}: CSV not found")
    df = pd.read_csv(csv_path, dtype={"image": str}, keep_default_na=False)
    if "image" not in df.columns:
        raise InputError(f"{csv_path}: no 'image' column (columns: {list(df.columns)[:12]})")
    paths = df["image"].tolist()
    n = len(paths)
    size = int(size)
    workers = workers or min(8, (os.cpu_count() or 1) + 2)
    progress = Progress(n, "images", log)
    with atomic_path(out_npy) as tmp:
        _decode_into(tmp, paths, size, workers, progress)
    log.info("cache %s: %d images at %d px from %s", out_npy, n, size, csv_path)


def _decode_into(tmp, paths, size, workers, progress) -> None:
    n = len(paths)
    arr = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(n, size, size, 3))
    chunk = max(256, -(-n // 20))  # at most ~20 progress lines

    def load(i):
        arr[i] = read_image(paths[i], size)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        for start in range(0, n, chunk):
            stop = min(start + chunk, n)
            list(pool.map(load, range(start, stop)))  # re-raises the first InputError
            progress.update(stop, images=stop - start)
    arr.flush()


def load_cache(npy_path, mmap: bool = True) -> np.ndarray:
    """Load a cache written by build_cache (memory-mapped read-only by default); checks shape and dtype."""
    npy_path = Path(npy_path)
    if not npy_path.exists():
        raise InputError(f"{npy_path}: image cache not found")
    try:
        arr = np.load(npy_path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except Exception as e:
        raise InputError(f"{npy_path}: cannot load image array ({type(e).__name__}: {e})") from e
    if arr.dtype != np.uint8 or arr.ndim != 4 or arr.shape[3] != 3:
        raise InputError(f"{npy_path}: expected uint8 N x H x W x 3, got {arr.dtype} {arr.shape}")
    return arr


def resize_batch(images: np.ndarray, size: int) -> np.ndarray:
    """Resize uint8 NHWC images to size x size with PIL LANCZOS, the same filter that read_image (and so
    every real-image cache) uses, so real and synthetic images go through the same resampling."""
    from PIL import Image

    images = np.asarray(images)
    if images.shape[1] == size and images.shape[2] == size:
        return np.ascontiguousarray(images)
    out = np.empty((len(images), size, size, 3), dtype=np.uint8)
    for i in range(len(images)):
        im = Image.fromarray(np.ascontiguousarray(images[i]))
        out[i] = np.asarray(im.resize((size, size), Image.Resampling.LANCZOS))
    return out


def _real_tables(real) -> list[tuple[dict[str, int], np.ndarray, str]]:
    """Normalise the real-cache argument to [(image -> row, array, name)]."""
    if isinstance(real, dict):
        items = list(real.items())
    else:
        items = [("real", real)]
    tables = []
    for name, pair in items:
        if not (isinstance(pair, (tuple, list)) and len(pair) == 2):
            raise InputError(f"real cache '{name}': expected (csv or DataFrame, npy path or array)")
        csv, arr = pair
        if isinstance(csv, pd.DataFrame):
            df, where = csv, f"real cache '{name}'"
        else:
            where = str(csv)
            if not Path(csv).exists():
                raise InputError(f"{csv}: CSV of the real image cache not found")
            df = pd.read_csv(csv, dtype={"image": str}, keep_default_na=False)
        if "image" not in df.columns:
            raise InputError(f"{where}: no 'image' column")
        if not isinstance(arr, np.ndarray):
            arr = load_cache(arr)
        if len(arr) != len(df):
            raise InputError(
                f"{where}: {len(df)} rows but the cache holds {len(arr)} images (rebuild the cache)"
            )
        lookup = {str(p): i for i, p in enumerate(df["image"].tolist())}
        tables.append((lookup, arr, where))
    return tables


def load_trainset_images(trainset: pd.DataFrame, real_cache, size: int) -> np.ndarray:
    """Images of a training set (N x size x size x 3 uint8, in trainset order).

    `trainset` has columns `image` and optionally `source` ('real' | 'synthetic'; when absent a ref with
    '#' is synthetic). Real rows are looked up by their `image` path in `real_cache`: (csv, npy) -- each a
    path, or a DataFrame / array -- or a dict {name: (csv, npy)}. Synthetic rows are "{shard.npy}#{row}"
    refs into uint8 NHWC pool shards (memory-mapped). Images of another size are resized (batched).
    A ref that cannot be resolved raises InputError naming it.
    """
    size = int(size)
    if "image" not in trainset.columns:
        raise InputError("trainset: no 'image' column")
    refs = trainset["image"].astype(str).tolist()
    if "source" in trainset.columns:
        synthetic = (trainset["source"].astype(str) == "synthetic").to_numpy()
        bad = sorted(set(trainset["source"].astype(str)) - {"real", "synthetic"})
        if bad:
            raise InputError(f"trainset: column 'source' must be 'real' or 'synthetic', got {bad[:5]}")
    else:
        synthetic = np.array(["#" in r for r in refs], dtype=bool)
    out = np.empty((len(refs), size, size, 3), dtype=np.uint8)

    # real rows: gather per cache, resizing in batches where the cache has another size
    real_idx = np.flatnonzero(~synthetic)
    if real_idx.size:
        tables = _real_tables(real_cache)
        which = np.full(real_idx.size, -1)
        rows = np.zeros(real_idx.size, dtype=np.int64)
        for k, i in enumerate(real_idx):
            for t, (lookup, _, _) in enumerate(tables):
                r = lookup.get(refs[i])
                if r is not None:
                    which[k], rows[k] = t, r
                    break
            else:
                raise InputError(
                    f"trainset: real image '{refs[i]}' is not in the real image cache "
                    f"({', '.join(w for _, _, w in tables)})"
                )
        for t, (_, arr, _) in enumerate(tables):
            sel = np.flatnonzero(which == t)
            if sel.size:
                order = np.argsort(rows[sel], kind="stable")  # sequential reads from a memmap
                imgs = arr[rows[sel][order]]
                dst = real_idx[sel][order]
                out[dst] = resize_batch(imgs, size)

    # synthetic rows: one memmap per shard
    syn_idx = np.flatnonzero(synthetic)
    by_shard: dict[str, list[tuple[int, int]]] = {}
    for i in syn_idx:
        ref = refs[i]
        shard, sep, row = ref.rpartition("#")
        if not sep or not shard or not row.strip().isdigit():
            raise InputError(f"trainset: synthetic image ref '{ref}' is not of the form '<shard.npy>#<row>'")
        by_shard.setdefault(shard, []).append((int(i), int(row)))
    for shard, pairs in by_shard.items():
        if not Path(shard).exists():
            raise InputError(f"trainset: pool shard '{shard}' not found (ref '{shard}#{pairs[0][1]}')")
        arr = load_cache(shard)
        dst = np.array([p[0] for p in pairs])
        src = np.array([p[1] for p in pairs])
        if src.max() >= len(arr):
            badrow = int(src[src >= len(arr)][0])
            raise InputError(
                f"trainset: ref '{shard}#{badrow}' is out of range (shard holds {len(arr)} images)"
            )
        order = np.argsort(src, kind="stable")
        out[dst[order]] = resize_batch(arr[src[order]], size)
    return out
