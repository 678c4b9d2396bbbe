import numpy as np
import pytest
import torch
import torchvision.transforms.functional as TF

from ganaug.classifier.augment import NO_AUGMENT, BatchAugment, augment_config, normalise, normalise_only
from ganaug.io import InputError

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def _images(n=6, size=32, seed=0):
    return torch.from_numpy(np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8))


def _cfg(**kw):
    c = dict(NO_AUGMENT)
    c.update(kw)
    return c


def test_shapes_and_determinism():
    aug = BatchAugment(None, MEAN, STD, out_size=24)
    x = _images(size=40)
    a = aug(x, torch.Generator().manual_seed(3))
    b = aug(x, torch.Generator().manual_seed(3))
    c = aug(x, torch.Generator().manual_seed(4))
    assert a.shape == (6, 3, 24, 24) and a.dtype == torch.float32
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)
    # per-sample randomness: two copies of one image get different augmentations
    y = aug(x[:1].repeat(2, 1, 1, 1), torch.Generator().manual_seed(0))
    assert not torch.allclose(y[0], y[1])
    lo = (0 - torch.tensor(MEAN)) / torch.tensor(STD)
    hi = (1 - torch.tensor(MEAN)) / torch.tensor(STD)
    assert (a.amin(dim=(0, 2, 3)) >= lo - 1e-5).all() and (a.amax(dim=(0, 2, 3)) <= hi + 1e-5).all()


def test_all_disabled_is_exactly_normalise_only():
    x = _images()
    aug = BatchAugment(False, MEAN, STD, out_size=32)
    assert torch.equal(aug(x, torch.Generator().manual_seed(0)), normalise_only(x, MEAN, STD, 32))
    expected = normalise(x.permute(0, 3, 1, 2).float() / 255, MEAN, STD)
    assert torch.equal(normalise_only(x, MEAN, STD, 32), expected)
    assert normalise_only(x, MEAN, STD, 16).shape == (6, 3, 16, 16)


def test_flip_only_gives_identity_or_flips():
    x = _images(n=32)
    aug = BatchAugment(_cfg(hflip=True, vflip=True), (0, 0, 0), (1, 1, 1), out_size=32)
    y = aug(x, torch.Generator().manual_seed(1))
    base = x.permute(0, 3, 1, 2).float() / 255
    seen = set()
    for i in range(32):
        for k, cand in enumerate([base[i], base[i].flip(2), base[i].flip(1), base[i].flip(1, 2)]):
            if torch.allclose(y[i], cand, atol=1e-5):
                seen.add(k)
                break
        else:
            raise AssertionError(f"sample {i} is not a flip of its input")
    assert seen == {0, 1, 2, 3}


# Rotation convention (torchvision's RandomRotation / TF.rotate, which the study used): a positive angle
# turns the picture counter-clockwise as displayed (x to the right, y = row index downwards), so a point at
# (dx, dy) from the centre moves to (dx cos a + dy sin a, -dx sin a + dy cos a), e.g. 3 o'clock to 12 o'clock.
def _ccw(dx, dy, angle):
    return dx * np.cos(angle) + dy * np.sin(angle), -dx * np.sin(angle) + dy * np.cos(angle)


def test_rotation_by_plus_and_minus_90_degrees_is_rot90():
    """Angles forced through the uniforms sample_params draws (params_from_uniforms): +90 is one
    counter-clockwise quarter turn, torch.rot90(k=1) on (H, W); -90 the clockwise one."""
    from ganaug.classifier.augment import _C_ROT, N_DRAWS

    x = _images(n=2)
    aug = BatchAugment(_cfg(rotation=90.0), (0, 0, 0), (1, 1, 1), out_size=32)
    u = torch.full((2, N_DRAWS), 0.5, dtype=torch.float64)
    u[:, _C_ROT] = torch.tensor([1.0, 0.0])  # angle = rotation * (2u - 1): +90 and -90 degrees
    y = aug.apply(x, aug.params_from_uniforms(u))
    base = x.permute(0, 3, 1, 2).float() / 255
    assert torch.allclose(y[0], torch.rot90(base[0], 1, dims=(1, 2)), atol=1e-5)
    assert torch.allclose(y[1], torch.rot90(base[1], -1, dims=(1, 2)), atol=1e-5)
    assert torch.allclose(TF.rotate(base[0], 90.0), torch.rot90(base[0], 1, dims=(1, 2)))  # the convention


def test_sampled_rotation_turns_a_marker_counter_clockwise():
    """The real path, sample_params -> apply: the angle of each sample is recomputed from the same generator's
    uniforms, and a bright marker must land where a counter-clockwise turn by that angle puts it."""
    from ganaug.classifier.augment import _C_ROT, N_DRAWS

    n, size, rotation = 16, 32, 60.0
    img = torch.zeros(n, size, size, 3, dtype=torch.uint8)
    row, col = 8, 22  # a 3 x 3 marker centred on this pixel
    img[:, row - 1:row + 2, col - 1:col + 2] = 255
    aug = BatchAugment(_cfg(rotation=rotation), (0, 0, 0), (1, 1, 1), out_size=size)
    params = aug.sample_params(n, torch.Generator().manual_seed(11))
    y = aug.apply(img, params).sum(dim=1)  # n x H x W
    u = torch.rand(n, N_DRAWS, generator=torch.Generator().manual_seed(11), dtype=torch.float64)
    angles = np.radians(rotation) * (2 * u[:, _C_ROT].numpy() - 1)
    centre = size / 2
    dx, dy = col + 0.5 - centre, row + 0.5 - centre  # pixel centres, y downwards
    ys, xs = torch.meshgrid(torch.arange(size) + 0.5, torch.arange(size) + 0.5, indexing="ij")
    far_from_mirror = 0
    for i, a in enumerate(angles):
        w = y[i].double()
        got = np.array([(w * xs).sum() / w.sum(), (w * ys).sum() / w.sum()]) - centre
        expect = np.array(_ccw(dx, dy, a))
        mirror = np.array(_ccw(dx, dy, -a))  # where a clockwise turn would put it
        assert np.hypot(*(got - expect)) < 1.0, (i, np.degrees(a), got, expect)
        far_from_mirror += np.hypot(*(got - mirror)) > 4.0
    assert far_from_mirror >= n // 2  # enough large angles that the wrong direction could not pass


def test_sampled_geometry_respects_ranges():
    aug = BatchAugment(_cfg(scale=[0.75, 1.0], ratio=[3 / 4, 4 / 3], rotation=45.0), MEAN, STD, 32)
    p = aug.sample_params(2000, torch.Generator().manual_seed(0))
    th = p["theta"].double()
    m = th[:, :, :2]
    fw = m[:, :, 0].norm(dim=1)  # column norms = crop side fractions (rotation preserves them)
    fh = m[:, :, 1].norm(dim=1)
    area = fw * fh
    assert (area >= 0.75 - 1e-5).all() and (area <= 1 + 1e-5).all()
    assert (fw <= 1 + 1e-6).all() and (fh <= 1 + 1e-6).all()
    ratio = fw / fh
    assert (ratio >= 3 / 4 - 1e-5).all() and (ratio <= 4 / 3 + 1e-5).all()
    angle = torch.atan2(m[:, 1, 0], m[:, 0, 0]).rad2deg()
    assert angle.abs().max() <= 45 + 1e-4 and angle.abs().max() > 40
    assert ratio.std() > 0.05 and area.std() > 0.03


def test_colour_jitter_matches_torchvision_semantics():
    x = _images(n=4, size=16)
    aug = BatchAugment(_cfg(brightness=0.4, contrast=0.4, saturation=0.4, hue=0.1), (0, 0, 0), (1, 1, 1), 16)
    p = aug.sample_params(4, torch.Generator().manual_seed(5))
    y = aug.apply(x, p)
    base = x.permute(0, 3, 1, 2).float() / 255
    for i in range(4):
        e = TF.adjust_brightness(base[i], float(p["brightness"][i]))
        e = TF.adjust_contrast(e, float(p["contrast"][i]))
        e = TF.adjust_saturation(e, float(p["saturation"][i]))
        e = TF.adjust_hue(e, float(p["hue"][i]))
        assert torch.allclose(y[i], e, atol=1e-5), i
    assert (p["hue"].abs() <= 0.1).all() and ((p["brightness"] - 1).abs() <= 0.4 + 1e-6).all()


def test_config_validation():
    assert augment_config(None)["rotation"] == 45.0
    assert augment_config({"rotation": 10})["hue"] == 0.1
    with pytest.raises(InputError, match=r"classifier.augment: unknown key"):
        augment_config({"rotate": 10})
    with pytest.raises(InputError, match=r"classifier.augment.scale"):
        augment_config({"scale": [0.5, 1.5]})
    with pytest.raises(InputError, match=r"classifier.augment.padding"):
        augment_config({"padding": "wrap"})
