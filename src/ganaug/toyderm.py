"""Procedural toy dermoscopy images: a stand-in for ISIC-like data that runs in minutes on a CPU.

Every image is drawn from a small generative story:

* a latent *atypia* score ``a`` per lesion: benign lesions draw it around ``0.5 - sep/2``, melanomas around
  ``0.5 + sep/2`` with ``sep = 0.7 * (1 - difficulty)`` and a common spread, so the two classes overlap and
  ``difficulty`` moves them together (1 = the same distribution, no signal left);
* every label-dependent feature (border asymmetry and irregularity, size, darkness, the number of colours
  incl. blue-grey / black / red / white regions, atypical pigment network, negative network, streaks,
  irregular globules) is a *noisy* read-out of ``a``, so no single cue decides the class;
* artefacts (hair, ruler marks, the dark circular vignette of the dermatoscope, lighting) are drawn from a
  separate generator and are independent of the label;
* domain ``"clinical"`` changes the acquisition: no vignette, another white balance, a lighting gradient,
  blur and sensor noise, a wider range of skin tones, smaller lesions and fainter / fewer fine structures.

Scenes are rendered at twice the output size and box-downsampled (anti-aliasing). Everything is vectorised
numpy over the pixel grid; smooth noise fields are small random grids upsampled with a cached interpolation
matrix (two small matrix products per octave).

The label map follows ISIC 2018 task 1/2: ``LABELMAP`` (attribute pixels override lesion pixels; 0 marks
the black padding outside the dermatoscope's field of view).
"""

from __future__ import annotations

import functools
import math
from pathlib import Path

import numpy as np

from .io import InputError, atomic_path, seed_from
from .masks import LABELMAP as _LABELMAP

LABELMAP = _LABELMAP  # the label values of ganaug.masks
DOMAINS = ("dermoscopic", "clinical")
BENIGN_DIAGNOSES = (
    "nevus",
    "seborrheic_keratosis",
    "unknown",
    "dermatofibroma",
    "vascular",
    "actinic_keratosis",
)
MELANOMA_DIAGNOSIS = "melanoma"
DEFAULT_DIAGNOSES = {"nevus": 0.85, "seborrheic_keratosis": 0.15}

# --- colours (linear-ish RGB in [0, 1]) --------------------------------------------------------------
_SKIN = np.array(
    [
        (0.97, 0.83, 0.76),
        (0.93, 0.74, 0.63),
        (0.84, 0.62, 0.49),
        (0.66, 0.46, 0.33),
        (0.46, 0.31, 0.22),
        (0.30, 0.20, 0.15),
    ],
    dtype=np.float32,
)
_C = {
    "tan": (0.78, 0.58, 0.42),
    "light_brown": (0.66, 0.44, 0.30),
    "brown": (0.50, 0.31, 0.20),
    "dark_brown": (0.33, 0.19, 0.12),
    "black": (0.13, 0.09, 0.08),
    "blue_grey": (0.40, 0.45, 0.56),
    "red": (0.76, 0.33, 0.33),
    "pink": (0.88, 0.60, 0.58),
    "white": (0.93, 0.89, 0.88),
    "purple": (0.45, 0.20, 0.32),
    "milia": (0.95, 0.92, 0.76),
}
_C = {k: np.array(v, dtype=np.float32) for k, v in _C.items()}


# --- cached grids ------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=8)
def _grid(res: int) -> tuple[np.ndarray, np.ndarray]:
    c = ((np.arange(res, dtype=np.float32) + 0.5) / res) * 2.0 - 1.0
    y, x = np.meshgrid(c, c, indexing="ij")
    x.setflags(write=False)
    y.setflags(write=False)
    return x, y


@functools.lru_cache(maxsize=64)
def _interp(res: int, cells: int) -> np.ndarray:
    """(res, cells+1) matrix: smoothstep interpolation of a 1-D grid of cells+1 knots onto res pixels."""
    p = (np.arange(res, dtype=np.float64) + 0.5) / res * cells
    i0 = np.minimum(np.floor(p).astype(int), cells - 1)
    t = p - i0
    s = t * t * (3.0 - 2.0 * t)
    m = np.zeros((res, cells + 1), dtype=np.float32)
    m[np.arange(res), i0] = 1.0 - s
    m[np.arange(res), i0 + 1] = s
    m.setflags(write=False)
    return m


@functools.lru_cache(maxsize=64)
def _fbm_scale(res: int, base: int, octaves: int, gain: float) -> float:
    """1 / expected standard deviation of _fbm's raw sum (estimated once per configuration)."""
    rng = np.random.default_rng(12345)
    vals = [_fbm_raw(rng, res, base, octaves, gain).std() for _ in range(16)]
    return float(1.0 / np.mean(vals))


def _fbm_raw(rng, res, base, octaves, gain):
    out = None
    amp = 1.0
    for o in range(octaves):
        g = base * (2**o)
        m = _interp(res, g)
        knots = rng.standard_normal((g + 1, g + 1), dtype=np.float32)
        if amp != 1.0:
            knots *= np.float32(amp)
        layer = m @ knots @ m.T
        out = layer if out is None else out + layer
        amp *= gain
    return out


def _fbm(
    rng: np.random.Generator, res: int, base: int = 4, octaves: int = 3, gain: float = 0.5
) -> np.ndarray:
    """Smooth fractal noise (res x res), zero mean and unit standard deviation in expectation."""
    out = _fbm_raw(rng, res, base, octaves, gain)
    out *= np.float32(_fbm_scale(res, base, octaves, gain))
    return out


def _sstep(v: np.ndarray) -> np.ndarray:
    v = np.clip(v, 0.0, 1.0)
    return v * v * (3.0 - 2.0 * v)


def _mix(img: np.ndarray, colour, weight: np.ndarray) -> None:
    """In place: img = img * (1 - w) + colour * w (colour: (3,) or HxWx3), only inside w's bounding box."""
    rows = np.flatnonzero(weight.any(axis=1))
    if rows.size == 0:
        return
    cols = np.flatnonzero(weight.any(axis=0))
    sl = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
    sub = img[sl]
    if isinstance(colour, np.ndarray) and colour.ndim == 3:
        colour = colour[sl]
    diff = colour - sub
    diff *= weight[sl][..., None]
    sub += diff


# --- the lesion "story" --------------------------------------------------------------------------------
def _latent(rng: np.random.Generator, label: int, difficulty: float) -> float:
    sep = 0.7 * (1.0 - difficulty)
    centre = 0.5 + (sep / 2 if label == 1 else -sep / 2)
    return float(rng.normal(centre, 0.2))


def _noisy(rng, a, scale=0.2):
    return a + scale * rng.standard_normal()


def _scene(rng: np.random.Generator, label: int, res: int, domain: str, difficulty: float, diagnosis: str):
    """Skin + lesion + structures at render resolution. Returns (img float HxWx3, labelmap uint8 HxW)."""
    x, y = _grid(res)
    clinical = domain == "clinical"
    a = _latent(rng, label, difficulty)
    if diagnosis == "unknown":
        a += 0.15  # benign lesions that look atypical (the ISIC 2020 'unknown' benign class)
    structure_gain = 0.45 if clinical else 1.0  # fewer / fainter fine structures in clinical photos
    # blue-grey veil, regression etc. are hard to see without dermoscopy
    colour_gain = 0.6 if clinical else 1.0

    # skin: tone, texture, erythema, fine skin lines
    tone = rng.beta(1.3, 2.2) if clinical else rng.beta(1.2, 4.0) * 0.75
    k = tone * (len(_SKIN) - 1)
    i = min(int(k), len(_SKIN) - 2)
    skin = _SKIN[i] * (1 - (k - i)) + _SKIN[i + 1] * (k - i)
    skin = skin * rng.normal(1.0, 0.03, 3).astype(np.float32)
    tex = _fbm(rng, res, 3, 3)
    img = np.empty((res, res, 3), dtype=np.float32)
    img[...] = skin
    img *= (1.0 + 0.04 * tex)[..., None]
    ery = _fbm(rng, res, 2, 2)
    img += (rng.uniform(0.0, 0.05) * np.clip(ery, 0, None))[..., None] * np.array(
        [0.5, -0.4, -0.3], np.float32
    )
    lines_f = rng.uniform(20, 35)
    ang = rng.uniform(0, np.pi)
    skin_lines = np.cos(lines_f * (x * math.cos(ang) + y * math.sin(ang)) + 1.5 * tex)
    skin_lines = np.maximum(skin_lines, 0.0, out=skin_lines)
    skin_lines *= skin_lines
    skin_lines *= skin_lines
    img *= (1.0 - 0.025 * skin_lines)[..., None]

    # lesion geometry: polar radius r(theta) around a centre, elongated and rotated
    if clinical:
        r0 = float(np.clip(rng.normal(0.22 + 0.05 * a, 0.05), 0.1, 0.38))
        cx, cy = rng.normal(0.0, 0.15, 2)
    else:
        r0 = float(np.clip(rng.normal(0.38 + 0.12 * a, 0.08), 0.18, 0.7))
        cx, cy = rng.normal(0.0, 0.08, 2)
    elong = 1.0 + abs(rng.normal(0, 0.12 if diagnosis != "seborrheic_keratosis" else 0.25))
    phi = rng.uniform(0, np.pi)
    dx = x - np.float32(cx)
    dy = y - np.float32(cy)
    cp, sp = np.float32(math.cos(phi)), np.float32(math.sin(phi))
    u = (dx * cp + dy * sp) / np.float32(r0)
    v = (dy * cp - dx * sp) * np.float32(elong / r0)
    rho = np.sqrt(u * u + v * v)
    theta = np.arctan2(v, u)

    asym = float(np.clip(0.03 + 0.2 * _noisy(rng, a, 0.2), 0.0, 0.32))
    irreg = float(np.clip(0.01 + 0.06 * _noisy(rng, a, 0.25), 0.0, 0.1))
    if diagnosis in ("vascular", "dermatofibroma"):
        asym, irreg = asym * 0.5, irreg * 0.5
    nb = 512
    angles = np.linspace(-np.pi, np.pi, nb, endpoint=False)
    ks = np.arange(1, 24)
    amps = np.where(
        ks <= 3,
        asym * rng.uniform(0.4, 1.0, ks.size) / ks**0.3,
        irreg * rng.uniform(0.2, 1.0, ks.size) * 4.0 / ks,
    )
    phases = rng.uniform(0, 2 * np.pi, ks.size)
    rtab = 1.0 + amps @ np.cos(ks[:, None] * angles[None, :] + phases[:, None])
    rtab = np.maximum(rtab, 0.35).astype(np.float32)
    idx = ((theta + np.pi) * (nb / (2 * np.pi))).astype(np.int32) % nb
    rb = rtab[idx]
    bnoise = _fbm(rng, res, 6, 2)
    rb = rb * (1.0 + (0.01 + 0.04 * max(irreg, 0.0) / 0.1) * bnoise)
    rel = rho / rb  # < 1 inside the lesion; 0 at the centre
    inside = rel < 1.0

    # edge softness: benign lesions fade out, atypical ones stop abruptly (in parts)
    soft = float(np.clip(0.28 - 0.18 * _noisy(rng, a, 0.2), 0.05, 0.35))
    if diagnosis == "seborrheic_keratosis" or diagnosis == "vascular":
        soft = 0.06
    alpha = _sstep((1.0 - rel) / soft)
    opacity = 1.0
    if diagnosis == "unknown":
        opacity = rng.uniform(0.55, 1.0)
    elif clinical:
        opacity = rng.uniform(0.7, 0.95)
    alpha *= np.float32(opacity)

    # lesion colours: a radial blend of one or two base colours, mottled
    dark = float(np.clip(_noisy(rng, a, 0.25), 0.0, 1.0))  # darker with atypia
    if diagnosis == "seborrheic_keratosis":
        c_in, c_out = _C["brown"], _C["tan"]
        if rng.random() < 0.4:
            c_in = _C["dark_brown"]
    elif diagnosis == "unknown":  # pinkish browns
        browns = [_C["tan"], _C["light_brown"], _C["brown"], _C["dark_brown"]]
        j = int(np.clip(round(dark * 2.2 + rng.normal(0, 0.6)), 0, 3))
        pink = rng.uniform(0.3, 0.7)
        c_in = browns[j] * (1 - pink) + _C["pink"] * pink
        c_out = browns[max(j - 1, 0)] * (1 - pink) + _C["pink"] * pink
    elif diagnosis == "dermatofibroma":
        c_in, c_out = _C["white"] * 0.95, _C["light_brown"]
    elif diagnosis == "vascular":
        c_in, c_out = _C["purple"], _C["red"]
    elif diagnosis == "actinic_keratosis":
        c_in, c_out = _C["red"], _C["pink"]
    else:
        browns = [_C["tan"], _C["light_brown"], _C["brown"], _C["dark_brown"]]
        j = int(np.clip(round(dark * 2.2 + rng.normal(0, 0.6)), 0, 3))
        c_in = browns[j]
        c_out = browns[max(j - int(rng.integers(0, 2)), 0)] if rng.random() < 0.7 else c_in
        if rng.random() < 0.3:
            c_in, c_out = c_out, c_in
    gamma = rng.uniform(0.7, 2.0)
    t = np.clip(rel, 0.0, 1.0) ** np.float32(gamma)
    les = c_in + (c_out - c_in) * t[..., None]
    mott = _fbm(rng, res, 5, 3)
    les *= (1.0 + 0.07 * mott)[..., None]
    les *= np.float32(rng.uniform(0.9, 1.08))
    # darker skin -> darker lesion (multiplicative with a neutral skin reference)
    les *= np.clip(skin / _SKIN[1], 0.45, 1.1)

    # extra colour regions: probability and number grow with atypia, placed asymmetrically
    lm = np.ones((res, res), dtype=np.uint8)
    lm[inside] = 2
    if diagnosis in ("nevus", "melanoma", "unknown", "seborrheic_keratosis"):
        extra = [
            ("dark_brown", 0.35, 0.75),
            ("black", 0.62, 0.8),
            ("blue_grey", 0.55, 0.75),
            ("red", 0.75, 0.5),
            ("white", 0.8, 0.7),
        ]
        if diagnosis == "unknown":
            # atypical-looking benign lesions (ISIC 2020 'unknown'): pink/red and whitish areas that a model
            # trained on nevus vs melanoma links with melanoma
            extra = [
                ("dark_brown", 0.45, 0.6),
                ("red", 0.2, 0.6),
                ("white", 0.35, 0.6),
                ("blue_grey", 0.7, 0.5),
            ]
        psi = rng.uniform(0, 2 * np.pi)
        side = (u * math.cos(psi) + v * math.sin(psi)) * 0.9
        for name, thr, strength in extra:
            if _noisy(rng, a, 0.22) <= thr:
                continue
            f = _fbm(rng, res, 3, 2) + side * rng.uniform(0.3, 1.2)
            q = rng.uniform(0.0, 0.9)
            region = (
                _sstep((f - q) / 1.0) * alpha * np.float32(strength * rng.uniform(0.6, 1.0) * colour_gain)
            )
            if name == "white":
                region *= np.float32(0.8)
            _mix(les, _C[name], region)
    if diagnosis == "dermatofibroma":
        patch = _sstep((0.45 - rel) / 0.3 + 0.2 * bnoise)
        _mix(les, _C["white"], patch * 0.8)

    _mix(img, les, alpha)

    # --- structures (label map attributes 3..7) ---------------------------------------------------------
    def net_pattern(freq, warp, thick):
        w1 = _fbm(rng, res, 4, 2)
        w2 = _fbm(rng, res, 4, 2)
        ang2 = rng.uniform(0, np.pi)
        c2, s2 = math.cos(ang2), math.sin(ang2)
        p = (u * c2 + v * s2) * freq + warp * w1
        q = (v * c2 - u * s2) * freq + warp * w2
        g = np.minimum(np.abs(np.sin(np.pi * p)), np.abs(np.sin(np.pi * q)))
        return np.clip((thick - g) / (0.5 * thick), 0.0, 1.0)

    def region_field(cover):
        f = _fbm(rng, res, 2, 2)
        return _sstep((f + 1.6 * (cover - 0.5) + 0.5) / 0.5)

    atyp = float(np.clip(_noisy(rng, a, 0.25), 0.0, 1.0))
    p_net = {
        "nevus": 0.7,
        "melanoma": 0.55 + 0.15 * difficulty,
        "dermatofibroma": 0.8,
        "seborrheic_keratosis": 0.15,
    }.get(diagnosis, 0.1)
    if rng.random() < p_net * structure_gain:
        freq = rng.uniform(4.0, 7.0)
        thick = 0.2 + 0.25 * atyp * rng.random()  # atypical: thicker, uneven lines
        net = net_pattern(freq, 0.15 + 0.5 * atyp, thick)
        cover = rng.uniform(0.5, 1.0) if atyp < 0.5 else rng.uniform(0.2, 0.7)
        reg = region_field(cover) * _sstep((1.02 - rel) / 0.25)
        if diagnosis == "dermatofibroma":
            reg = reg * _sstep((rel - 0.4) / 0.2)
        wnet = net * reg * alpha
        _mix(
            img, _C["dark_brown"] * (0.8 + 0.4 * (1 - atyp)), wnet * np.float32(0.55 * structure_gain + 0.15)
        )
        lm[(wnet > 0.35) & inside] = 3

    p_neg = 0.03 + 0.4 * float(np.clip((atyp - 0.55) / 0.3, 0.0, 1.0))
    if diagnosis in ("melanoma", "nevus") and rng.random() < p_neg * structure_gain:
        net = net_pattern(rng.uniform(3.0, 5.0), 0.4, 0.25)
        reg = region_field(rng.uniform(0.3, 0.7)) * _sstep((0.95 - rel) / 0.2)
        wneg = net * reg * alpha
        _mix(img, _C["tan"] * 1.1, wneg * np.float32(0.6 * structure_gain + 0.1))
        lm[(wneg > 0.35) & inside] = 4

    p_str = 0.03 + 0.5 * float(np.clip((atyp - 0.45) / 0.4, 0.0, 1.0))
    if diagnosis in ("melanoma", "nevus") and rng.random() < p_str * structure_gain:
        n_s = int(rng.integers(14, 34))
        wt = _fbm(rng, res, 3, 2)
        s = np.cos(n_s * theta + 1.2 * wt)
        length = rng.uniform(0.1, 0.25)
        band = _sstep((rel - 0.75) / 0.1) * _sstep((1.0 + length - rel) / 0.08)
        th0 = rng.uniform(-np.pi, np.pi)
        half = rng.uniform(0.5, 1.6) if atyp > 0.4 else np.pi  # atypical: a sector only; benign: all round
        sector = _sstep((np.cos(theta - th0) - math.cos(half)) / 0.15) if half < np.pi else 1.0
        wstr = (
            np.clip((s - 0.55 - 0.3 * np.clip(rel - 1.0, 0.0, None) / length) / 0.25, 0.0, 1.0)
            * band
            * sector
        )
        _mix(img, _C["dark_brown"], wstr * np.float32(0.7 * structure_gain + 0.1))
        lm[wstr > 0.35] = 5

    p_mil = {
        "seborrheic_keratosis": 0.85,
        "nevus": 0.08,
        "melanoma": 0.05 + 0.03 * difficulty,
        "actinic_keratosis": 0.3,
    }.get(diagnosis, 0.05)
    if rng.random() < p_mil * (0.6 if clinical else 1.0):
        dots = _dots(rng, x, y, cell=rng.uniform(0.07, 0.12), p=rng.uniform(0.25, 0.6), rmin=0.12, rmax=0.3)
        wm = dots * _sstep((0.95 - rel) / 0.1)
        _mix(img, _C["milia"], wm * np.float32(0.75 * structure_gain + 0.2))
        lm[(wm > 0.4) & inside] = 6

    p_glob = {
        "nevus": 0.45,
        "melanoma": 0.5 - 0.05 * difficulty,
        "vascular": 0.9,
        "seborrheic_keratosis": 0.05,
    }.get(diagnosis, 0.1)
    if rng.random() < p_glob * structure_gain:
        irr = atyp > 0.5
        dots = _dots(
            rng,
            x,
            y,
            cell=rng.uniform(0.06, 0.1),
            p=rng.uniform(0.3, 0.7),
            rmin=0.15 if not irr else 0.08,
            rmax=0.3 if not irr else 0.45,
        )
        if irr:  # irregular: clustered on one side, various sizes
            psi = rng.uniform(0, 2 * np.pi)
            where = _sstep((u * math.cos(psi) + v * math.sin(psi) + 0.2) / 0.5)
        elif rng.random() < 0.5:  # peripheral rim of globules
            where = _sstep((rel - 0.65) / 0.1)
        else:
            where = 1.0
        wg = dots * where * _sstep((0.97 - rel) / 0.08)
        col = (
            _C["purple"] if diagnosis == "vascular" else (_C["dark_brown"] if not irr else _C["black"] * 1.5)
        )
        _mix(img, col, wg * np.float32(0.75 * structure_gain + 0.15))
        lm[(wg > 0.4) & inside] = 7

    return img, lm


def _dots(rng, x, y, cell, p, rmin, rmax):
    """Soft round dots on a jittered grid (at most one dot per cell): res x res weights in [0, 1]."""
    n = math.ceil(2.0 / cell) + 1
    ix = ((x + 1.0) * (1.0 / cell)).astype(np.int32)
    iy = ((y + 1.0) * (1.0 / cell)).astype(np.int32)
    present = (rng.random((n, n)) < p).astype(np.float32)
    rad = rng.uniform(rmin, rmax, (n, n)).astype(np.float32) * cell
    ox = rng.uniform(0, 1, (n, n)).astype(np.float32) * (cell - 2 * rad) + rad
    oy = rng.uniform(0, 1, (n, n)).astype(np.float32) * (cell - 2 * rad) + rad
    np.minimum(ix, n - 1, out=ix)
    np.minimum(iy, n - 1, out=iy)
    k = iy * n + ix
    px = ix * np.float32(cell) - 1.0 + ox.ravel().take(k)
    py = iy * np.float32(cell) - 1.0 + oy.ravel().take(k)
    px -= x
    py -= y
    d = np.sqrt(px * px + py * py)
    r = rad.ravel().take(k)
    out = (r - d) / (0.35 * r)
    np.clip(out, 0.0, 1.0, out=out)
    out *= present.ravel().take(k)
    return out


def _view_transform(img, lm, angle, shift):
    """Rotate (radians) and shift (in [-1,1] units) a rendered scene: the 'second view' of a lesion."""
    from scipy import ndimage

    res = img.shape[0]
    c, s = math.cos(angle), math.sin(angle)
    mat = np.array([[c, -s], [s, c]])
    centre = np.array([res / 2 - 0.5, res / 2 - 0.5])
    offset = centre - mat @ centre - np.asarray(shift) * res / 2
    out = np.empty_like(img)
    for ch in range(3):
        ndimage.affine_transform(
            img[..., ch], mat, offset=offset, order=1, mode="reflect", output=out[..., ch]
        )
    lm2 = ndimage.affine_transform(lm, mat, offset=offset, order=0, mode="nearest")
    return out, lm2


def _artefacts(
    rng: np.random.Generator, img: np.ndarray, lm: np.ndarray, domain: str, light_jitter: float = 0.0
):
    """Hair, ruler marks, vignette, lighting, blur/noise: independent of the label."""
    res = img.shape[0]
    x, y = _grid(res)
    clinical = domain == "clinical"

    # hair: thin dark curves (a parabola in a rotated frame)
    n_hair = 0
    if rng.random() < (0.4 if not clinical else 0.25):
        n_hair = int(rng.integers(1, 9))
    hair_col = np.array([0.12, 0.09, 0.07], np.float32) * rng.uniform(0.6, 1.6)
    for _ in range(n_hair):
        px, py = rng.uniform(-1, 1, 2)
        b = rng.uniform(0, np.pi)
        kappa = rng.normal(0, 0.6)
        width = rng.uniform(0.008, 0.02) * (128.0 / res) ** 0.5
        half_len = rng.uniform(0.4, 1.6)
        cb, sb = np.float32(math.cos(b)), np.float32(math.sin(b))
        ddx, ddy = x - np.float32(px), y - np.float32(py)
        t = ddx * cb + ddy * sb
        nrm = ddy * cb - ddx * sb
        f = np.abs(nrm - np.float32(kappa) * t * t) / np.sqrt(1.0 + (2.0 * kappa * t) ** 2)
        w = np.clip(1.0 - f / np.float32(width), 0.0, 1.0) * (np.abs(t) < half_len)
        _mix(img, hair_col, w * np.float32(0.85))

    # ruler: tick marks along one image side
    if rng.random() < (0.15 if not clinical else 0.08):
        side = int(rng.integers(0, 4))
        along, depth = [(x, 1 - y), (x, 1 + y), (y, 1 - x), (y, 1 + x)][side]
        spacing = rng.uniform(0.06, 0.1)
        start = rng.uniform(-1, 0)
        length = rng.uniform(0.6, 1.6)
        pos = (along - start) / np.float32(spacing)
        idx = np.floor(pos)
        frac = pos - idx
        long_tick = (idx % 5) == 0
        tick_len = np.where(long_tick, 0.14, 0.08)
        inrange = (along > start) & (along < start + length)
        d0 = rng.uniform(0.02, 0.08)
        ticks = (frac < 0.18) & (depth > d0) & (depth < d0 + tick_len) & inrange
        base = (np.abs(depth - d0 - 0.005) < 0.008) & inrange
        w = (ticks | base).astype(np.float32) * 0.8
        _mix(img, np.array([0.08, 0.08, 0.1], np.float32), w)

    # lighting: dermoscopes light evenly with a slight falloff; clinical photos have gradients and casts
    r2 = x * x + y * y
    if clinical:
        gains = rng.normal(1.0, 0.04, 3) * np.array([1.0, 0.97, 0.93]) ** rng.normal(0, 1.0)
        gx, gy = rng.normal(0, 0.15, 2)
        light = 1.0 + gx * x + gy * y - 0.08 * r2
        exposure = rng.uniform(0.85, 1.1)
    else:
        gains = rng.normal(1.0, 0.03, 3)
        light = 1.0 - rng.uniform(0.0, 0.12) * r2
        exposure = rng.uniform(0.95, 1.08)
    gains = gains * exposure * (1.0 + light_jitter)
    img *= light[..., None].astype(np.float32)
    img *= gains.astype(np.float32)

    if clinical:
        from scipy import ndimage

        k = int(rng.integers(2, 5)) * max(res // 128, 1)
        img[...] = ndimage.uniform_filter(img, size=(k, k, 1), mode="nearest")
        img += rng.normal(0, 0.012, img.shape).astype(np.float32)
    else:
        # dark circular field of view of the dermatoscope
        if rng.random() < 0.6:
            rv = rng.uniform(0.95, 1.35)
            vx, vy = rng.normal(0, 0.05, 2)
            rr = np.sqrt((x - np.float32(vx)) ** 2 + (y - np.float32(vy)) ** 2)
            vig = _sstep((rr - np.float32(rv)) / 0.06)
            _mix(img, np.array([0.03, 0.03, 0.03], np.float32) * rng.uniform(0.5, 2.0), vig)
            lm[vig > 0.5] = 0
    return img, lm


def _render(scene_rng, art_rng, label, size, domain, difficulty, diagnosis, view=None):
    res = size * 2 if size <= 128 else size
    img, lm = _scene(scene_rng, label, res, domain, difficulty, diagnosis)
    light_jitter = 0.0
    if view is not None:
        img, lm = _view_transform(img, lm, view["angle"], view["shift"])
        light_jitter = view["light"]
    img, lm = _artefacts(art_rng, img, lm, domain, light_jitter)
    if res != size:
        f = res // size
        img = img.reshape(size, f, size, f, 3).mean(axis=(1, 3))
        lm = lm[f // 2 :: f, f // 2 :: f]
    rgb = np.clip(img * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return rgb, np.ascontiguousarray(lm, dtype=np.uint8)


def _check_args(label, size, domain, difficulty, diagnosis):
    if label not in (0, 1):
        raise InputError(f"toyderm: label must be 0 or 1, got {label!r}")
    if not isinstance(size, (int, np.integer)) or size < 8:
        raise InputError(f"toyderm: size must be an integer >= 8, got {size!r}")
    if domain not in DOMAINS:
        raise InputError(f"toyderm: domain must be one of {DOMAINS}, got {domain!r}")
    if not 0.0 <= float(difficulty) <= 1.0:
        raise InputError(f"toyderm: difficulty must be in [0, 1], got {difficulty!r}")
    if diagnosis is None:
        return "melanoma" if label == 1 else "nevus"
    if label == 1 and diagnosis != MELANOMA_DIAGNOSIS:
        raise InputError(f"toyderm: label 1 needs diagnosis 'melanoma', got {diagnosis!r}")
    if label == 0 and diagnosis not in BENIGN_DIAGNOSES:
        raise InputError(f"toyderm: benign diagnosis must be one of {BENIGN_DIAGNOSES}, got {diagnosis!r}")
    return diagnosis


def generate_image(
    rng: np.random.Generator,
    label: int,
    size: int,
    domain: str = "dermoscopic",
    difficulty: float = 0.5,
    diagnosis: str | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """One toy image: (rgb uint8 size x size x 3, label map uint8 size x size with values in LABELMAP).

    `diagnosis` defaults to 'melanoma' for label 1 and 'nevus' for label 0. Deterministic given the state of
    `rng` (which is advanced).
    """
    diagnosis = _check_args(label, size, domain, difficulty, diagnosis)
    scene_seed, art_seed = rng.integers(0, 2**63, size=2)
    return _render(
        np.random.default_rng(int(scene_seed)),
        np.random.default_rng(int(art_seed)),
        int(label),
        int(size),
        domain,
        float(difficulty),
        diagnosis,
    )


def _save_png(path: Path, array: np.ndarray) -> None:
    from PIL import Image

    with atomic_path(path) as tmp:
        Image.fromarray(array).save(tmp, format="PNG")


def make_dataset(
    out_dir: Path,
    name: str,
    n: int,
    melanoma_fraction: float,
    size: int,
    seed: int,
    domain: str = "dermoscopic",
    difficulty: float = 0.5,
    label_noise: float = 0.0,
    diagnoses: dict | None = None,
    lesions_per_patient: float = 1.0,
):
    """Render a toy dataset to `out_dir/images/` and `out_dir/masks/`; return its index DataFrame.

    Exactly round(n * melanoma_fraction) images are rendered as melanoma. `lesions_per_patient` is the mean
    number of *images per lesion* in [1, 2]: a fraction (value - 1) of the images is a second view (small
    rotation / shift / lighting change, new artefacts) of another image's lesion, sharing its `lesion_id`.
    `label_noise`: fraction of lesions (all their images) whose stored label is flipped relative to the
    rendered look; `diagnosis` follows the stored label (flipped to 1 -> 'melanoma', to 0 -> 'nevus').
    The column `rendered_label` keeps the label the image was rendered with.
    Image i is seeded from (seed, name, lesion) and (seed, name, i) only, so runs are reproducible.
    """
    import pandas as pd

    out_dir = Path(out_dir)
    n = int(n)
    if n < 0:
        raise InputError(f"toyderm dataset '{name}': n must be >= 0, got {n}")
    if not 0.0 <= melanoma_fraction <= 1.0:
        raise InputError(
            f"toyderm dataset '{name}': melanoma_fraction must be in [0, 1], got {melanoma_fraction}"
        )
    if not 0.0 <= label_noise <= 1.0:
        raise InputError(f"toyderm dataset '{name}': label_noise must be in [0, 1], got {label_noise}")
    if not 1.0 <= lesions_per_patient <= 2.0:
        raise InputError(
            f"toyderm dataset '{name}': lesions_per_patient (mean images per lesion) must be in [1, 2], "
            f"got {lesions_per_patient}"
        )
    _check_args(0, size, domain, difficulty, None)
    diagnoses = dict(DEFAULT_DIAGNOSES if diagnoses is None else diagnoses)
    bad = [d for d in diagnoses if d not in BENIGN_DIAGNOSES]
    if bad or not diagnoses or any(w < 0 for w in diagnoses.values()) or sum(diagnoses.values()) <= 0:
        raise InputError(
            f"toyderm dataset '{name}': diagnoses must map benign diagnoses {BENIGN_DIAGNOSES} to weights "
            f">= 0 (sum > 0), got {diagnoses}"
        )

    name_key = seed_from("toyderm", name)
    plan = np.random.default_rng([int(seed), name_key, 0])
    n_mel = round(n * melanoma_fraction)
    lesion_labels, lesion_views = [], []
    for lab, n_c in ((0, n - n_mel), (1, n_mel)):
        n_les = math.ceil(n_c / lesions_per_patient - 1e-9)
        n_double = n_c - n_les
        views = np.ones(n_les, dtype=int)
        views[plan.permutation(n_les)[:n_double]] = 2
        lesion_labels += [lab] * n_les
        lesion_views += views.tolist()
    n_lesions = len(lesion_labels)
    lesion_labels = np.array(lesion_labels, dtype=np.int64)
    names = list(diagnoses)
    probs = np.array([diagnoses[k] for k in names], dtype=float)
    probs /= probs.sum()
    benign_diag = np.array(names)[plan.choice(len(names), n_lesions, p=probs)]
    lesion_diag = np.where(lesion_labels == 1, MELANOMA_DIAGNOSIS, benign_diag)
    flipped = np.zeros(n_lesions, dtype=bool)
    flipped[plan.permutation(n_lesions)[: round(label_noise * n_lesions)]] = True
    rows = [(j, v) for j in range(n_lesions) for v in range(lesion_views[j])]
    order = plan.permutation(len(rows))
    rows = [rows[k] for k in order]

    records = []
    for i, (j, v) in enumerate(rows):
        label = int(lesion_labels[j])
        diag = str(lesion_diag[j])
        scene_rng = np.random.default_rng([int(seed), name_key, 1, j])
        art_rng = np.random.default_rng([int(seed), name_key, 2, i])
        view = None
        if v > 0:
            view = {
                "angle": float(art_rng.uniform(-0.35, 0.35)),
                "shift": art_rng.uniform(-0.06, 0.06, 2),
                "light": float(art_rng.normal(0, 0.05)),
            }
        rgb, lm = _render(scene_rng, art_rng, label, int(size), domain, float(difficulty), diag, view)
        stem = f"{name}_{i:05d}"
        img_path = out_dir / "images" / f"{stem}.png"
        mask_path = out_dir / "masks" / f"{stem}.png"
        _save_png(img_path, rgb)
        _save_png(mask_path, lm)
        stored = 1 - label if flipped[j] else label
        stored_diag = diag if stored == label else (MELANOMA_DIAGNOSIS if stored == 1 else "nevus")
        records.append(
            {
                "image": str(img_path),
                "label": stored,
                "diagnosis": stored_diag,
                "dataset": name,
                "lesion_id": f"{name}_L{j:05d}",
                "mask": str(mask_path),
                "rendered_label": label,
            }
        )
    df = pd.DataFrame.from_records(
        records, columns=["image", "label", "diagnosis", "dataset", "lesion_id", "mask", "rendered_label"]
    )
    df["label"] = df["label"].astype(np.int64)
    df["rendered_label"] = df["rendered_label"].astype(np.int64)
    return df


def make_external_pool(out_dir, n_per_class: int, seed: int, size: int = 64, domain: str = "dermoscopic",
                       difficulty: float = 0.35) -> dict:
    """A toy stand-in for a user's generator: fresh toyderm images (their own seed, so none is a training
    image) written as an external pool, a folder per class (`out_dir/benign/*.png`, `out_dir/melanoma/*.png`).
    Benign images are nevi. Image k of class c is seeded from (seed, c, k) only. Returns {class: count}."""
    out_dir = Path(out_dir)
    n_per_class = int(n_per_class)
    if n_per_class < 1:
        raise InputError(f"toy external pool: n_per_class must be >= 1, got {n_per_class}")
    written = {}
    for label, folder in ((0, "benign"), (1, "melanoma")):
        for k in range(n_per_class):
            rgb, _ = generate_image(np.random.default_rng([int(seed), label, k]), label, int(size), domain,
                                    difficulty)
            _save_png(out_dir / folder / f"{folder}_{k:05d}.png", rgb)
        written[folder] = n_per_class
    return written
