"""Batched perceptual hash (pHash), bit-identical to ``imagehash.phash``, and Hamming distances.

``imagehash.phash(img)`` (hash_size 8, highfreq_factor 4) does, per image:
greyscale (PIL ``convert("L")``), LANCZOS resize to 32 x 32 (PIL), 2-D DCT-II (``scipy.fftpack.dct``,
axis 0 then axis 1, float64), top-left 8 x 8 block (DC included), bits = block > median(block).

Here the same steps run on a whole batch with the same library calls, so the result is bit-identical:
- greyscale: one PIL ``convert("L")`` on the batch stacked into one tall image (a per-pixel operation);
- resize: PIL resamples separably, one axis after the other with uint8 rounding in between (the order
  depends on the shape in recent Pillow; it is detected once per shape with probe images). A horizontal
  pass treats every row independently, so one PIL call on the images stacked vertically does it for the
  batch; a vertical pass works per column, so one PIL call on the images placed side by side does it.
  Each pass is exactly the one PIL runs inside ``resize``; shapes where the order cannot be established
  fall back to resizing image by image with PIL;
- DCT: ``scipy.fftpack.dct`` over the batch axis-wise (same per-line transform);
- median: ``np.median`` along the block axes.

Hashes are packed into ``uint64`` row-major, the first bit the most significant, so
``format(h, "016x") == str(imagehash.phash(PIL.Image.fromarray(img)))``.
"""

from __future__ import annotations

import functools

import numpy as np

from .io import InputError

HASH_SIZE = 8
HIGHFREQ_FACTOR = 4
IMG_SIZE = HASH_SIZE * HIGHFREQ_FACTOR  # 32

_BIT_WEIGHTS = (np.uint64(1) << np.arange(63, -1, -1, dtype=np.uint64)).astype(np.uint64)


def _grey(images: np.ndarray) -> np.ndarray:
    """PIL convert('L') of each image; images N x H x W x 3 uint8 -> N x H x W uint8."""
    from PIL import Image

    n, h, w, _ = images.shape
    tall = np.ascontiguousarray(images.reshape(n * h, w, 3))
    return np.asarray(Image.fromarray(tall).convert("L")).reshape(n, h, w)


def _pass_h(x: np.ndarray, size: int) -> np.ndarray:
    """Horizontal LANCZOS pass of N x H x W uint8 to width `size`: rows are independent, so the images
    are stacked vertically into one tall PIL image."""
    from PIL import Image

    n, h, w = x.shape
    tall = Image.fromarray(np.ascontiguousarray(x.reshape(n * h, w)))
    return np.asarray(tall.resize((size, n * h), Image.Resampling.LANCZOS)).reshape(n, h, size)


def _pass_v(x: np.ndarray, size: int) -> np.ndarray:
    """Vertical LANCZOS pass of N x H x W uint8 to height `size`: columns are independent, so the images
    are placed side by side into one wide PIL image."""
    from PIL import Image

    n, h, w = x.shape
    wide = Image.fromarray(np.ascontiguousarray(x.transpose(1, 0, 2).reshape(h, n * w)))
    out = np.asarray(wide.resize((n * w, size), Image.Resampling.LANCZOS))
    return np.ascontiguousarray(out.reshape(size, n, w).transpose(1, 0, 2))


def _pil_resize(x: np.ndarray, size: int) -> np.ndarray:
    from PIL import Image

    return np.stack([np.asarray(Image.fromarray(im).resize((size, size), Image.Resampling.LANCZOS))
                     for im in x])


@functools.cache
def _pass_order(h: int, w: int, size: int = IMG_SIZE) -> str:
    """Which order of the two separable passes PIL uses for an h x w -> size x size resize.

    PIL rounds to uint8 between its passes, so the order matters, and recent Pillow versions choose it
    from the image shape (cost model). Decided once per shape by comparing PIL's own resize of random
    probe images with both orders: 'hv', 'vh', or 'pil' (ambiguous/neither: resize image by image).
    """
    if h == size or w == size:
        return "hv"  # a single pass (or none): no order to choose
    rng = np.random.default_rng(h * 100003 + w)
    probes = rng.integers(0, 256, (4, h, w), dtype=np.uint8)
    ref = _pil_resize(probes, size)
    hv = np.array_equal(_pass_v(_pass_h(probes, size), size), ref)
    vh = np.array_equal(_pass_h(_pass_v(probes, size), size), ref)
    if hv != vh:
        return "hv" if hv else "vh"
    return "pil"


def _resize_grey(grey: np.ndarray, size: int = IMG_SIZE) -> np.ndarray:
    """PIL LANCZOS resize of each N x H x W uint8 image to size x size, done in two batched passes
    (in the order PIL itself uses for that shape)."""
    _, h, w = grey.shape
    order = _pass_order(h, w, size)
    if order == "pil":
        return _pil_resize(grey, size)
    x = grey
    for axis in order:
        if axis == "h" and x.shape[2] != size:
            x = _pass_h(x, size)
        elif axis == "v" and x.shape[1] != size:
            x = _pass_v(x, size)
    return np.ascontiguousarray(x)


def _hash_small(small: np.ndarray) -> np.ndarray:
    """N x 32 x 32 uint8 greyscale -> N uint64 hashes."""
    import scipy.fftpack

    dct = scipy.fftpack.dct(scipy.fftpack.dct(small, axis=1), axis=2)
    low = dct[:, :HASH_SIZE, :HASH_SIZE]
    med = np.median(low, axis=(1, 2), keepdims=True)
    bits = (low > med).reshape(len(small), HASH_SIZE * HASH_SIZE)
    return (bits.astype(np.uint64) * _BIT_WEIGHTS).sum(axis=1, dtype=np.uint64)


def _phash_chunk(batch) -> np.ndarray:
    return _hash_small(_resize_grey(_grey(np.asarray(batch))))


def phash_batch(images: np.ndarray, chunk: int = 256, workers: int | None = None) -> np.ndarray:
    """pHash of every image of an N x H x W x 3 uint8 batch -> uint64 array (N,).

    Bit-identical to ``imagehash.phash(PIL.Image.fromarray(img))``. Works in chunks of `chunk` images
    (memory stays small for large pools; a memory-mapped array is read chunk by chunk) spread over
    `workers` threads (PIL and scipy release the GIL; default: min(4, CPU count)).
    """
    import os
    from concurrent.futures import ThreadPoolExecutor

    if not (hasattr(images, "shape") and hasattr(images, "dtype")):
        images = np.asarray(images)
    if len(images.shape) != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise InputError(
            f"phash_batch: expected uint8 images N x H x W x 3, got {images.dtype} {tuple(images.shape)}"
        )
    n = len(images)
    out = np.empty(n, dtype=np.uint64)
    if n == 0:
        return out
    chunk = max(1, int(chunk))
    starts = range(0, n, chunk)
    workers = workers or min(4, os.cpu_count() or 1)
    if workers <= 1 or len(starts) == 1:
        for s in starts:
            out[s : s + chunk] = _phash_chunk(images[s : s + chunk])
        return out
    with ThreadPoolExecutor(max_workers=workers) as ex:
        for s, h in zip(starts, ex.map(lambda s: _phash_chunk(images[s : s + chunk]), starts)):
            out[s : s + len(h)] = h
    return out


def to_hex(hashes) -> list[str]:
    """uint64 hashes -> 16-digit lower-case hex strings (the ``str(imagehash)`` form)."""
    return [format(int(h), "016x") for h in np.asarray(hashes, dtype=np.uint64).ravel()]


def hex_to_uint64(values) -> np.ndarray | np.uint64:
    """16-hex-digit hash string(s) -> uint64 (scalar for one string, array for a sequence).

    Integers are accepted as hex digits that lost their leading zeros (what pandas does when it reads an
    all-digit hex string from a CSV); floats and malformed strings raise InputError.
    """
    scalar = isinstance(values, (str, int, np.integer))
    seq = [values] if scalar else list(values)
    out = np.empty(len(seq), dtype=np.uint64)
    for i, v in enumerate(seq):
        if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
            v = str(int(v)).zfill(16)
        if not isinstance(v, str):
            raise InputError(f"pHash value {v!r} is not a 16-digit hex string")
        s = v.strip().lower()
        if len(s) != 16:
            raise InputError(f"pHash value {v!r} is not a 16-digit hex string")
        try:
            out[i] = np.uint64(int(s, 16))
        except ValueError as e:
            raise InputError(f"pHash value {v!r} is not a 16-digit hex string") from e
    return out[0] if scalar else out


def hamming(a, b) -> np.ndarray:
    """Elementwise (broadcast) Hamming distance between uint64 hashes: popcount(a XOR b)."""
    a = np.asarray(a, dtype=np.uint64)
    b = np.asarray(b, dtype=np.uint64)
    return np.bitwise_count(np.bitwise_xor(a, b)).astype(np.int64)


def pairwise_hamming(a, b, block: int = 4096) -> np.ndarray:
    """Full len(a) x len(b) distance matrix as uint8 (fine for moderate sizes)."""
    a = np.asarray(a, dtype=np.uint64).ravel()
    b = np.asarray(b, dtype=np.uint64).ravel()
    out = np.empty((len(a), len(b)), dtype=np.uint8)
    for s in range(0, len(a), block):
        out[s : s + block] = np.bitwise_count(a[s : s + block, None] ^ b[None, :])
    return out


def min_distance_to_set(queries, reference, block_q: int = 512, block_r: int = 16384) -> np.ndarray:
    """For each query hash, the smallest Hamming distance to any reference hash (65 if reference empty).

    Blocked XOR + popcount: memory stays at block_q x block_r bytes.
    """
    q = np.asarray(queries, dtype=np.uint64).ravel()
    r = np.asarray(reference, dtype=np.uint64).ravel()
    out = np.full(len(q), 65, dtype=np.int64)
    for s in range(0, len(q), block_q):
        qb = q[s : s + block_q, None]
        best = np.full(len(qb), 65, dtype=np.uint8)
        for t in range(0, len(r), block_r):
            d = np.bitwise_count(qb ^ r[None, t : t + block_r]).min(axis=1)
            np.minimum(best, d, out=best)
        out[s : s + len(qb)] = best
    return out


def pairwise_min_distance(hashes) -> np.ndarray:
    """For each hash, the smallest Hamming distance to any *other* hash of the same array (65 if alone)."""
    h = np.asarray(hashes, dtype=np.uint64).ravel()
    d = pairwise_hamming(h, h).astype(np.int64)
    np.fill_diagonal(d, 65)
    return d.min(axis=1) if len(h) else np.zeros(0, dtype=np.int64)
