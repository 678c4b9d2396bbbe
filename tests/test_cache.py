import numpy as np
import pandas as pd
import pytest
from PIL import Image

from ganaug import cache
from ganaug.io import InputError, read_image


def _write_images(folder, n, seed=0):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        h, w = [(20, 20), (24, 30), (16, 16)][i % 3]
        arr = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        p = folder / f"im{i:03d}.png"
        Image.fromarray(arr).save(p)
        paths.append(str(p))
    return paths


def _csv(tmp_path, paths, name="index.csv"):
    p = tmp_path / name
    pd.DataFrame(
        {"image": paths, "label": [i % 2 for i in range(len(paths))], "diagnosis": "x", "dataset": "t"}
    ).to_csv(p, index=False)
    return p


def test_build_and_load_cache_round_trip(tmp_path):
    paths = _write_images(tmp_path / "img", 11)
    csv = _csv(tmp_path, paths)
    out = tmp_path / "cache" / "c16.npy"
    cache.build_cache(csv, out, 16)
    arr = cache.load_cache(out)
    assert isinstance(arr, np.memmap) and not arr.flags.writeable
    assert arr.shape == (11, 16, 16, 3) and arr.dtype == np.uint8
    for i, p in enumerate(paths):  # row order = CSV order, LANCZOS resize as read_image
        assert np.array_equal(arr[i], read_image(p, 16))
    full = cache.load_cache(out, mmap=False)
    assert not isinstance(full, np.memmap) and np.array_equal(full, arr)
    assert [f.name for f in out.parent.iterdir()] == ["c16.npy"]  # no temp files left


def test_corrupt_image_names_file_and_writes_nothing(tmp_path):
    paths = _write_images(tmp_path / "img", 4)
    with open(paths[2], "r+b") as f:  # truncate the PNG body
        f.truncate(30)
    csv = _csv(tmp_path, paths)
    out = tmp_path / "c.npy"
    with pytest.raises(InputError, match="im002.png"):
        cache.build_cache(csv, out, 8)
    assert not out.exists() and list(tmp_path.glob(".c.npy*")) == []


def test_missing_image_and_bad_cache_files(tmp_path):
    csv = _csv(tmp_path, [str(tmp_path / "nope.png")])
    with pytest.raises(InputError, match="nope.png"):
        cache.build_cache(csv, tmp_path / "c.npy", 8)
    with pytest.raises(InputError, match="not found"):
        cache.load_cache(tmp_path / "absent.npy")
    np.save(tmp_path / "f.npy", np.zeros((2, 4, 4, 3), np.float32))
    with pytest.raises(InputError, match="uint8"):
        cache.load_cache(tmp_path / "f.npy")


def test_load_trainset_images_real_and_synthetic(tmp_path):
    paths = _write_images(tmp_path / "img", 6)
    csv = _csv(tmp_path, paths)
    npy = tmp_path / "real16.npy"
    cache.build_cache(csv, npy, 16)
    real = cache.load_cache(npy)
    rng = np.random.default_rng(1)
    shard16 = rng.integers(0, 256, (5, 16, 16, 3), dtype=np.uint8)
    shard32 = rng.integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    np.save(tmp_path / "s16.npy", shard16)
    np.save(tmp_path / "s32.npy", shard32)
    s16, s32 = str(tmp_path / "s16.npy"), str(tmp_path / "s32.npy")
    ts = pd.DataFrame(
        {
            "image": [paths[4], f"{s16}#3", paths[0], f"{s32}#2", f"{s16}#0", paths[4]],
            "label": [0, 1, 1, 0, 0, 0],
            "source": ["real", "synthetic", "real", "synthetic", "synthetic", "real"],
        }
    )
    got = cache.load_trainset_images(ts, (csv, npy), 16)
    assert got.shape == (6, 16, 16, 3) and got.dtype == np.uint8
    assert np.array_equal(got[0], real[4]) and np.array_equal(got[5], real[4])
    assert np.array_equal(got[2], real[0])
    assert np.array_equal(got[1], shard16[3]) and np.array_equal(got[4], shard16[0])
    assert np.array_equal(got[3], cache.resize_batch(shard32[2:3], 16)[0])
    # the same with a dict of caches (DataFrame + array) and without a 'source' column
    got2 = cache.load_trainset_images(
        ts.drop(columns=["source"]), {"isic": (pd.read_csv(csv), np.asarray(real))}, 16
    )
    assert np.array_equal(got, got2)
    # a different target size resizes real images too
    assert cache.load_trainset_images(ts, (csv, npy), 8).shape == (6, 8, 8, 3)


def test_resize_batch_matches_read_image(tmp_path):
    rng = np.random.default_rng(2)
    imgs = rng.integers(0, 256, (3, 24, 24, 3), dtype=np.uint8)
    out = cache.resize_batch(imgs, 10)
    assert out.shape == (3, 10, 10, 3) and out.dtype == np.uint8
    for i in range(3):
        Image.fromarray(imgs[i]).save(tmp_path / f"{i}.png")
        assert np.array_equal(out[i], read_image(tmp_path / f"{i}.png", 10))
    assert cache.resize_batch(imgs, 24) is not None and np.array_equal(cache.resize_batch(imgs, 24), imgs)


def test_load_trainset_images_bad_refs(tmp_path):
    paths = _write_images(tmp_path / "img", 2)
    csv = _csv(tmp_path, paths)
    npy = tmp_path / "r.npy"
    cache.build_cache(csv, npy, 8)
    np.save(tmp_path / "s.npy", np.zeros((2, 8, 8, 3), np.uint8))
    cases = [
        ("real", "img/unknown.png", "unknown.png"),
        ("synthetic", f"{tmp_path / 's.npy'}#5", r"s\.npy#5.*out of range"),
        ("synthetic", f"{tmp_path / 'gone.npy'}#0", "gone.npy"),
        ("synthetic", f"{tmp_path / 's.npy'}", "<shard.npy>#<row>"),
    ]
    for source, ref, msg in cases:
        ts = pd.DataFrame({"image": [ref], "label": [0], "source": [source]})
        with pytest.raises(InputError, match=msg):
            cache.load_trainset_images(ts, (csv, npy), 8)
