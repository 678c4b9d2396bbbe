from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ganaug import toyderm
from ganaug.io import InputError


def _batch(label, n, size=32, seed=0, **kw):
    rng = np.random.default_rng(seed)
    out = [toyderm.generate_image(rng, label, size, **kw) for _ in range(n)]
    return np.stack([o[0] for o in out]), np.stack([o[1] for o in out])


def test_generate_image_shapes_types_and_labelmap_values():
    rng = np.random.default_rng(0)
    for size in (16, 32, 64):
        for label, diag in [
            (0, "nevus"),
            (0, "seborrheic_keratosis"),
            (0, "unknown"),
            (0, "dermatofibroma"),
            (0, "vascular"),
            (0, "actinic_keratosis"),
            (1, None),
        ]:
            for domain in toyderm.DOMAINS:
                rgb, lm = toyderm.generate_image(rng, label, size, domain=domain, diagnosis=diag)
                assert rgb.shape == (size, size, 3) and rgb.dtype == np.uint8
                assert lm.shape == (size, size) and lm.dtype == np.uint8
                assert set(np.unique(lm)) <= set(toyderm.LABELMAP)
                assert (lm >= 2).any(), "every image shows a lesion"


def test_generate_image_is_deterministic_and_varies():
    a = toyderm.generate_image(np.random.default_rng(5), 1, 32)
    b = toyderm.generate_image(np.random.default_rng(5), 1, 32)
    c = toyderm.generate_image(np.random.default_rng(6), 1, 32)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])


def test_bad_arguments_raise_input_error():
    rng = np.random.default_rng(0)
    with pytest.raises(InputError, match="label"):
        toyderm.generate_image(rng, 2, 32)
    with pytest.raises(InputError, match="domain"):
        toyderm.generate_image(rng, 0, 32, domain="xray")
    with pytest.raises(InputError, match="difficulty"):
        toyderm.generate_image(rng, 0, 32, difficulty=1.5)
    with pytest.raises(InputError, match="melanoma"):
        toyderm.generate_image(rng, 1, 32, diagnosis="nevus")
    with pytest.raises(InputError, match="benign diagnosis"):
        toyderm.generate_image(rng, 0, 32, diagnosis="melanoma")


def _blueness(rgb, lm):
    """Per image: 95th percentile of (blue - red) over lesion pixels (blue-grey areas push it up)."""
    f = rgb.astype(np.float32)
    d = f[..., 2] - f[..., 0]
    m = lm >= 2
    return np.array([np.percentile(d[i][m[i]], 95) for i in range(len(rgb))])


def _lesion_brightness(rgb, lm):
    m = lm >= 2
    return np.array([rgb[i][m[i]].mean() for i in range(len(rgb))])


def test_label_dependent_statistics():
    n = 120
    rgb0, lm0 = _batch(0, n, seed=1)
    rgb1, lm1 = _batch(1, n, seed=2)
    # blue-grey areas are more frequent in melanoma
    b0, b1 = _blueness(rgb0, lm0), _blueness(rgb1, lm1)
    assert b1.mean() > b0.mean() + 10
    assert (b1 > -10).mean() > 2 * (b0 > -10).mean()
    # darker lesions
    assert _lesion_brightness(rgb1, lm1).mean() < _lesion_brightness(rgb0, lm0).mean() - 10
    # streaks and negative network are melanoma-typical attributes
    has = lambda lm, v: (lm == v).reshape(len(lm), -1).any(1).mean()
    assert has(lm1, 5) + has(lm1, 4) > has(lm0, 5) + has(lm0, 4) + 0.15
    # ... but the classes overlap: some benign images show them too, and not every melanoma does
    assert 0 < has(lm0, 5) and has(lm1, 5) < 0.9


def test_difficulty_blends_classes():
    def gap(difficulty):
        d0 = _batch(0, 80, seed=3, difficulty=difficulty)
        d1 = _batch(1, 80, seed=4, difficulty=difficulty)
        return _lesion_brightness(*d0).mean() - _lesion_brightness(*d1).mean()

    g0, g1 = gap(0.0), gap(1.0)
    assert g0 > 20  # benign lesions clearly lighter when the classes are far apart
    assert abs(g1) < 8  # same distribution at difficulty 1 (only sampling noise left)


def test_milia_like_cysts_mark_seborrheic_keratosis():
    _, lm_sk = _batch(0, 40, size=64, seed=7, diagnosis="seborrheic_keratosis")
    _, lm_nv = _batch(0, 40, size=64, seed=8, diagnosis="nevus")
    frac = lambda lm: (lm == 6).reshape(len(lm), -1).any(1).mean()
    assert frac(lm_sk) > frac(lm_nv) + 0.3


def test_domains_differ():
    _, lm_d = _batch(0, 60, seed=9, domain="dermoscopic")
    _, lm_c = _batch(0, 60, seed=10, domain="clinical")
    # the dermatoscope's dark field-of-view circle (padding, label 0) only in dermoscopic images
    assert (lm_d == 0).reshape(60, -1).any(1).mean() > 0.3
    assert not (lm_c == 0).any()
    # clinical lesions are smaller
    assert (lm_c >= 2).mean() < 0.7 * (lm_d >= 2).mean()


def test_make_dataset_files_columns_counts_and_determinism(tmp_path):
    kw = {
        "name": "toy",
        "n": 30,
        "melanoma_fraction": 0.3,
        "size": 32,
        "seed": 3,
        "label_noise": 0.0,
        "diagnoses": {"nevus": 0.5, "seborrheic_keratosis": 0.5},
        "lesions_per_patient": 1.25,
    }
    df = toyderm.make_dataset(tmp_path / "a", **kw)
    df2 = toyderm.make_dataset(tmp_path / "b", **kw)
    assert list(df.columns[:6]) == ["image", "label", "diagnosis", "dataset", "lesion_id", "mask"]
    assert len(df) == 30 and df["label"].sum() == 9 and df["label"].dtype == np.int64
    assert set(df["dataset"]) == {"toy"}
    assert set(df.loc[df.label == 1, "diagnosis"]) == {"melanoma"}
    assert set(df.loc[df.label == 0, "diagnosis"]) <= {"nevus", "seborrheic_keratosis"}
    # second views: 30 images of 24 lesions (21 benign -> 17 lesions, 9 melanoma -> 8 lesions)
    sizes = df.groupby("lesion_id").size()
    assert len(sizes) == 17 + 8 and sizes.max() == 2
    assert (df.groupby("lesion_id")["label"].nunique() == 1).all()
    for i in range(len(df)):
        a, b = df.iloc[i], df2.iloc[i]
        assert (tmp_path / "a" / "images" / f"toy_{i:05d}.png").exists()
        assert Path(a["image"]).read_bytes() == Path(b["image"]).read_bytes()
        assert Path(a["mask"]).read_bytes() == Path(b["mask"]).read_bytes()
    m = np.asarray(Image.open(df["mask"].iloc[0]))
    assert m.ndim == 2 and m.dtype == np.uint8 and set(np.unique(m)) <= set(range(8))
    # a different name or seed gives other images
    df3 = toyderm.make_dataset(tmp_path / "c", **{**kw, "seed": 4})
    assert Path(df3["image"].iloc[0]).read_bytes() != Path(df["image"].iloc[0]).read_bytes()


def test_second_view_resembles_first(tmp_path):
    df = toyderm.make_dataset(tmp_path, "v", 40, 0.5, 32, seed=1, lesions_per_patient=2.0)
    imgs = {p: np.asarray(Image.open(p), dtype=np.float32) for p in df["image"]}
    same, other = [], []
    groups = [g["image"].tolist() for _, g in df.groupby("lesion_id")]
    for k, g in enumerate(groups):
        same.append(np.abs(imgs[g[0]] - imgs[g[1]]).mean())
        other.append(np.abs(imgs[g[0]] - imgs[groups[(k + 1) % len(groups)][0]]).mean())
    assert np.median(same) < 0.7 * np.median(other)


def test_make_dataset_label_noise(tmp_path):
    df = toyderm.make_dataset(tmp_path, "noisy", 40, 0.5, 16, seed=0, label_noise=0.25)
    flipped = df["label"] != df["rendered_label"]
    assert flipped.sum() == 10
    assert (df.loc[df.label == 1, "diagnosis"] == "melanoma").all()
    assert (df.loc[df.label == 0, "diagnosis"] != "melanoma").all()


def test_make_dataset_rejects_bad_arguments(tmp_path):
    with pytest.raises(InputError, match="diagnoses"):
        toyderm.make_dataset(tmp_path, "x", 4, 0.5, 16, seed=0, diagnoses={"melanoma": 1.0})
    with pytest.raises(InputError, match="melanoma_fraction"):
        toyderm.make_dataset(tmp_path, "x", 4, 1.5, 16, seed=0)
    with pytest.raises(InputError, match="lesions_per_patient"):
        toyderm.make_dataset(tmp_path, "x", 4, 0.5, 16, seed=0, lesions_per_patient=3)
