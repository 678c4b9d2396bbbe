"""Label maps for the translation GANs (pix2pixHD, SPADE): built from a lesion mask and attribute masks,
read, checked and cached at a GAN's resolution.

Label values (ISIC 2018 Task 1 lesion + Task 2 attributes): 0 padding (outside the field of view),
1 skin, 2 lesion, 3 pigment network, 4 negative network, 5 streaks, 6 milia-like cysts, 7 globules.
Attribute pixels override lesion pixels; where attributes overlap, the later one in that order wins.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

from .io import InputError, save_npy, write_csv
from .progress import Progress

LABELMAP = {
    0: "padding",
    1: "skin",
    2: "lesion",
    3: "pigment_network",
    4: "negative_network",
    5: "streaks",
    6: "milia_like_cysts",
    7: "globules",
}
NUM_LABELS = len(LABELMAP)
# ISIC 2018 Task 2 file suffixes (ISIC_xxxxxxx_attribute_{name}.png), in label order 3..7
ISIC_ATTRIBUTES = ("pigment_network", "negative_network", "streaks", "milia_like_cyst", "globules")

log_default = logging.getLogger("ganaug")


def build_label_map(lesion: np.ndarray, attributes: dict | list | None = None,
                    field_of_view: np.ndarray | None = None) -> np.ndarray:
    """uint8 label map from a binary lesion mask, up to five binary attribute masks (a dict keyed by
    ISIC_ATTRIBUTES names, or a list in that order; None entries are absent) and an optional binary
    field-of-view mask (False = padding, label 0). Masks are arrays where nonzero means 'in'."""
    lesion = np.asarray(lesion) > 0
    out = np.where(lesion, 2, 1).astype(np.uint8)
    if isinstance(attributes, dict):
        unknown = sorted(set(attributes) - set(ISIC_ATTRIBUTES))
        if unknown:
            raise InputError(f"label map: unknown attribute '{unknown[0]}' (known: {', '.join(ISIC_ATTRIBUTES)})")
        attributes = [attributes.get(name) for name in ISIC_ATTRIBUTES]
    for k, mask in enumerate(attributes or []):
        if mask is None:
            continue
        mask = np.asarray(mask)
        if mask.shape != lesion.shape:
            raise InputError(f"label map: attribute '{ISIC_ATTRIBUTES[k]}' is {mask.shape[:2]}, "
                             f"the lesion mask {lesion.shape[:2]}")
        out[mask > 0] = 3 + k
    if field_of_view is not None:
        fov = np.asarray(field_of_view)
        if fov.shape != lesion.shape:
            raise InputError(f"label map: field of view is {fov.shape[:2]}, the lesion mask {lesion.shape[:2]}")
        out[fov == 0] = 0
    return out


def check_label_maps(masks, shape: tuple, what: str = "label maps") -> None:
    """InputError unless masks is a uint8 array of `shape` with values < NUM_LABELS."""
    if not isinstance(masks, np.ndarray) or masks.dtype != np.uint8 or masks.shape != tuple(shape):
        raise InputError(f"{what}: expected uint8 {' x '.join(map(str, shape))}, "
                         f"got {getattr(masks, 'dtype', type(masks))} {getattr(masks, 'shape', None)}")
    if masks.size and int(masks.max()) >= NUM_LABELS:
        raise InputError(f"{what}: label value {int(masks.max())} outside the label map 0..{NUM_LABELS - 1}")


def read_label_map(path, size: int | None = None, image_path=None) -> np.ndarray:
    """Decode a label-map PNG (one channel, values 0..7), optionally resized (nearest) to size x size.
    With `image_path`, the map must have the image's width and height."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            if im.mode not in ("L", "P", "I", "I;16", "1"):
                raise InputError(f"{path}: label map must be a one-channel image, got mode {im.mode}")
            if image_path is not None:
                with Image.open(image_path) as ref:
                    if ref.size != im.size:
                        raise InputError(f"{path}: label map is {im.size[0]} x {im.size[1]} but its image "
                                         f"{image_path} is {ref.size[0]} x {ref.size[1]}")
            arr = np.asarray(im)
            if arr.size and int(arr.max()) >= NUM_LABELS:
                raise InputError(f"{path}: label value {int(arr.max())} outside the label map 0..{NUM_LABELS - 1} "
                                 f"({', '.join(f'{k} {v}' for k, v in LABELMAP.items())})")
            lm = Image.fromarray(arr.astype(np.uint8))
            if size is not None and lm.size != (size, size):
                lm = lm.resize((size, size), Image.Resampling.NEAREST)
            return np.asarray(lm, dtype=np.uint8).copy()
    except InputError:
        raise
    except FileNotFoundError as e:
        raise InputError(f"{path}: label map file not found") from e
    except Exception as e:
        raise InputError(f"{path}: cannot read label map ({type(e).__name__}: {e})") from e


def build_mask_cache(csv_path, out_npy, out_csv, size: int, log: logging.Logger | None = None,
                     workers: int = 2) -> pd.DataFrame:
    """Label maps of the rows of `csv_path` that have one (column `mask`), resized to size x size.

    Writes `out_npy` (uint8 M x size x size) and `out_csv` (the M rows with their `row` in the CSV, so the
    image cache row of each map is known). No `mask` column, or no row with a mask, is an InputError:
    only the translation GANs ask for this cache.
    """
    log = log or log_default
    df = pd.read_csv(csv_path, dtype={"image": str, "mask": str}, keep_default_na=False)
    if "mask" not in df.columns:
        raise InputError(f"{csv_path}: no 'mask' column; the translation GANs (pix2pixhd, spade) need label maps "
                         "for their training images")
    rows = np.flatnonzero(df["mask"].astype(str).str.len() > 0)
    if len(rows) == 0:
        raise InputError(f"{csv_path}: no row has a label map ('mask' is empty everywhere); the translation GANs "
                         "(pix2pixhd, spade) need label maps for their training images")
    masked = df.iloc[rows].reset_index(drop=True).assign(row=rows)
    size = int(size)
    out = np.empty((len(masked), size, size), dtype=np.uint8)
    progress = Progress(len(masked), "label maps", log)

    def load(i):
        out[i] = read_label_map(masked["mask"][i], size, image_path=masked["image"][i])

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        list(pool.map(load, range(len(masked))))
    progress.update(len(masked), images=len(masked))
    save_npy(out_npy, out)
    write_csv(out_csv, masked)
    log.info("label maps %s: %d of %d rows at %d px from %s", out_npy, len(masked), len(df), size, csv_path)
    return masked


def load_mask_cache(npy_path, csv_path) -> tuple[np.ndarray, pd.DataFrame]:
    """(label maps, their rows) as written by build_mask_cache; checked against each other."""
    npy_path, csv_path = Path(npy_path), Path(csv_path)
    for p in (npy_path, csv_path):
        if not p.exists():
            raise InputError(f"{p}: label-map cache not found")
    masks = np.load(npy_path, allow_pickle=False)
    table = pd.read_csv(csv_path, dtype={"image": str, "mask": str}, keep_default_na=False)
    if masks.ndim != 3 or len(masks) != len(table):
        raise InputError(f"{npy_path}: {getattr(masks, 'shape', None)} does not match the {len(table)} rows of "
                         f"{csv_path}; rebuild the cache")
    check_label_maps(masks, masks.shape, what=str(npy_path))
    return masks, table


def masked_training_data(images: np.ndarray, masks_npy, masks_csv):
    """(images, labels, label maps, rows) of the training images that have a label map: the data a
    translation GAN trains on. `images` is the image cache of the full CSV the mask cache was built from."""
    masks, table = load_mask_cache(masks_npy, masks_csv)
    rows = table["row"].to_numpy(np.int64)
    if len(rows) and (rows.max() >= len(images) or rows.min() < 0):
        raise InputError(f"{masks_csv}: rows do not match the image cache ({len(images)} images); rebuild the caches")
    if masks.shape[1:] != images.shape[1:3]:
        raise InputError(f"{masks_npy}: label maps are {masks.shape[1]} px but the images {images.shape[1]} px")
    return np.asarray(images[rows]), table["label"].to_numpy(np.int64), masks, table


def dihedral(maps: np.ndarray, k: int) -> np.ndarray:
    """The k-th (0..7) of the eight flips/rotations of N x H x W maps; k = 0 is the identity. A pool draws
    more than one image per training mask from the transformed maps."""
    k = int(k) % 8
    out = np.rot90(maps, k % 4, axes=(1, 2))
    if k >= 4:
        out = out[:, :, ::-1]
    return np.ascontiguousarray(out)


__all__ = ["ISIC_ATTRIBUTES", "LABELMAP", "NUM_LABELS", "build_label_map", "build_mask_cache",
           "check_label_maps", "dihedral", "load_mask_cache", "masked_training_data", "read_label_map"]
