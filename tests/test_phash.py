import imagehash
import numpy as np
import pytest
from PIL import Image

from ganaug.io import InputError
from ganaug.phash import (
    hamming,
    hex_to_uint64,
    min_distance_to_set,
    pairwise_hamming,
    pairwise_min_distance,
    phash_batch,
    to_hex,
)


def _reference(images):
    return [str(imagehash.phash(Image.fromarray(im))) for im in images]


def _structured(rng, n, h, w):
    """Constant, gradient, stripe, checkerboard, blob and noisy images: many median ties and edge cases."""
    yy, xx = np.mgrid[:h, :w].astype(np.float64)
    out = []
    for i in range(n):
        kind = i % 7
        if kind == 0:  # constant (incl. black and white)
            im = np.broadcast_to(rng.integers(0, 256, 3) if i % 14 else np.full(3, 255 * (i % 2)), (h, w, 3))
        elif kind == 1:  # gradient
            g = (xx * rng.uniform(0, 3) + yy * rng.uniform(0, 3)) % 256
            im = np.stack([g, 255 - g, g / 2], -1)
        elif kind == 2:  # stripes
            im = np.repeat((np.sin(xx / rng.uniform(0.5, 8)) * 127 + 128)[..., None], 3, -1)
        elif kind == 3:  # checkerboard
            k = rng.integers(1, 9)
            im = np.repeat(((((yy // k) + (xx // k)) % 2) * 255)[..., None], 3, -1)
        elif kind == 4:  # lesion-like blob on skin
            r = np.hypot(yy - h / 2, xx - w / 2) < rng.uniform(0.1, 0.5) * min(h, w)
            im = np.where(r[..., None], [90, 50, 30], [220, 170, 150])
        elif kind == 5:  # only two grey levels at a few pixels (ties in the DCT block)
            im = np.zeros((h, w, 3)) + 128
            im[: max(1, h // 4), : max(1, w // 4)] = 129
        else:  # smooth noise
            im = rng.normal(128, 40, (h, w, 3)).clip(0, 255)
        out.append(np.asarray(im))
    return np.stack(out).round().clip(0, 255).astype(np.uint8)


@pytest.mark.parametrize("size", [(32, 32), (64, 64), (256, 256), (45, 17), (8, 8), (1, 1), (33, 100)])
def test_bit_identical_to_imagehash(size):
    rng = np.random.default_rng(sum(size))
    noise = rng.integers(0, 256, (40, *size, 3), dtype=np.uint8)
    images = np.concatenate([noise, _structured(rng, 42, *size)])
    got = phash_batch(images, chunk=13, workers=2)  # several chunks, threaded
    assert got.dtype == np.uint64
    assert to_hex(got) == _reference(images)
    # chunking and threading do not change the result
    np.testing.assert_array_equal(phash_batch(images, chunk=1000, workers=1), got)


def test_bit_order_and_hex_round_trip():
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (5, 32, 32, 3), dtype=np.uint8)
    h = phash_batch(images)
    for v, im in zip(h, images):
        ref = imagehash.phash(Image.fromarray(im))
        bits = ref.hash.flatten()
        assert bool(int(v) >> 63) == bool(bits[0])  # first bit = most significant
        assert bool(int(v) & 1) == bool(bits[-1])
        assert hex_to_uint64(str(ref)) == v
    np.testing.assert_array_equal(hex_to_uint64(to_hex(h)), h)


def test_hex_to_uint64_inputs():
    assert hex_to_uint64("ffffffffffffffff") == np.uint64(2**64 - 1)
    # an all-digit hash read back by pandas as an integer lost its leading zero
    assert hex_to_uint64(123456789012345) == hex_to_uint64("0123456789012345")
    for bad in ["xyz", "123", "0123456789abcdeg", 1.5, None]:
        with pytest.raises(InputError):
            hex_to_uint64([bad])


def test_hamming_and_helpers():
    rng = np.random.default_rng(2)
    a = rng.integers(0, 2**63, 50, dtype=np.uint64) * np.uint64(2) + rng.integers(0, 2, 50, dtype=np.uint64)
    b = rng.integers(0, 2**63, 70, dtype=np.uint64)
    ref = np.array([[(int(x) ^ int(y)).bit_count() for y in b] for x in a])
    np.testing.assert_array_equal(pairwise_hamming(a, b, block=7), ref)
    np.testing.assert_array_equal(hamming(a[:, None], b[None, :]), ref)
    np.testing.assert_array_equal(min_distance_to_set(a, b, block_q=8, block_r=9), ref.min(axis=1))
    assert (min_distance_to_set(a, []) == 65).all()
    d = ref = np.array([[(int(x) ^ int(y)).bit_count() for y in a] for x in a])
    np.fill_diagonal(d, 65)
    np.testing.assert_array_equal(pairwise_min_distance(a), d.min(axis=1))
    assert hamming(np.uint64(0), np.uint64(2**64 - 1)) == 64


def test_rejects_bad_input():
    with pytest.raises(InputError):
        phash_batch(np.zeros((2, 8, 8), dtype=np.uint8))
    with pytest.raises(InputError):
        phash_batch(np.zeros((2, 8, 8, 3), dtype=np.float32))
    assert phash_batch(np.zeros((0, 8, 8, 3), dtype=np.uint8)).shape == (0,)


def test_memmap_input(tmp_path):
    rng = np.random.default_rng(3)
    images = rng.integers(0, 256, (20, 40, 40, 3), dtype=np.uint8)
    np.save(tmp_path / "pool.npy", images)
    mm = np.load(tmp_path / "pool.npy", mmap_mode="r")
    np.testing.assert_array_equal(phash_batch(mm, chunk=6), phash_batch(images))


def test_many_shapes_both_pass_orders():
    """PIL picks the order of its two resize passes from the shape; cover both orders and the fallback."""
    from ganaug.phash import _pass_order

    rng = np.random.default_rng(4)
    shapes = [(h, w) for h in (2, 5, 31, 33, 50, 97, 128, 200) for w in (1, 3, 30, 34, 64, 99, 160)]
    orders = {_pass_order(h, w) for h, w in shapes}
    assert {"hv", "vh", "pil"} <= orders
    for h, w in shapes:
        images = np.concatenate([rng.integers(0, 256, (3, h, w, 3), dtype=np.uint8), _structured(rng, 4, h, w)])
        assert to_hex(phash_batch(images, chunk=4)) == _reference(images), (h, w)
