"""ISIC 2018 Task 1 lesion masks (+ Task 2 attribute masks) -> one-channel label maps (ganaug.masks values)
of the ISIC 2019 images that have them, matched by ISIC id and sized as those images."""

from __future__ import annotations

import logging
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

from ..io import InputError, atomic_path, write_csv
from .isic2019 import isic_id
from .release import find_images

log_default = logging.getLogger("ganaug")


def build_isic2018_label_maps(
    task1_dir, out_dir, task2_dir=None, reference: dict | None = None, workers: int = 2, log=None
) -> pd.DataFrame:
    """ISIC 2018 Task 1 lesion masks (+ Task 2 attribute masks) -> label-map PNGs (ganaug.masks values).

    Files: ``ISIC_xxxxxxx_segmentation.png`` under task1_dir, ``ISIC_xxxxxxx_attribute_{name}.png`` under
    task2_dir. With `reference` ({ISIC id: image path}), only ids in it are built, and a map whose size
    differs from its image's (a downsampled copy) is resized to it (nearest) when the aspect ratios agree
    within 2%, else left out. Writes out_dir/ISIC_xxxxxxx.png (one channel); returns a table of
    image_id, mask (path), attributes (how many attribute masks had pixels), resized."""
    from PIL import Image

    from ..masks import ISIC_ATTRIBUTES, build_label_map

    log = log or log_default
    seg = {}
    for stem, p in find_images(task1_dir).items():
        m = re.fullmatch(r"(ISIC_\d+)_segmentation", stem, flags=re.I)
        if m:
            seg["ISIC_" + m.group(1)[5:]] = p
    if not seg:
        raise InputError(f"{task1_dir}: no ISIC 2018 Task 1 mask (ISIC_xxxxxxx_segmentation.png) found")
    attrs: dict[str, dict[str, str]] = {}
    if task2_dir is not None:
        for stem, p in find_images(task2_dir).items():
            m = re.fullmatch(r"(ISIC_\d+)_attribute_(\w+)", stem, flags=re.I)
            if m and m.group(2) in ISIC_ATTRIBUTES:
                attrs.setdefault("ISIC_" + m.group(1)[5:], {})[m.group(2)] = p
    ids = sorted(seg)
    if reference is not None:
        ids = [i for i in ids if i in reference]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    def one(i):
        def read(p):
            try:
                with Image.open(p) as im:
                    return np.asarray(im.convert("L"))
            except Exception as e:
                raise InputError(f"{p}: cannot read mask ({type(e).__name__}: {e})") from e

        lesion = read(seg[i])
        att = {name: read(p) for name, p in attrs.get(i, {}).items()}
        for name, a in att.items():
            if a.shape != lesion.shape:
                raise InputError(
                    f"{attrs[i][name]}: attribute mask is {a.shape[1]} x {a.shape[0]}, the lesion "
                    f"mask {seg[i]} {lesion.shape[1]} x {lesion.shape[0]}"
                )
        lm = build_label_map(lesion, att)
        resized = False
        if reference is not None:
            with Image.open(reference[i]) as ref:
                w, h = ref.size
            if (h, w) != lm.shape:
                if abs((w / h) / (lm.shape[1] / lm.shape[0]) - 1) > 0.02:
                    return (
                        None,
                        f"{seg[i]}: {lm.shape[1]} x {lm.shape[0]}, its image {reference[i]} {w} x {h}",
                    )
                lm = np.asarray(Image.fromarray(lm).resize((w, h), Image.Resampling.NEAREST))
                resized = True
        dest = out_dir / f"{i}.png"
        with atomic_path(dest) as tmp:
            Image.fromarray(lm.astype(np.uint8), mode="L").save(tmp, format="PNG")
        return {
            "image_id": i,
            "mask": str(dest),
            "attributes": sum(int(a.any()) for a in att.values()),
            "resized": resized,
        }, None

    with ThreadPoolExecutor(max_workers=max(1, int(workers))) as pool:
        results = list(pool.map(one, ids))
    rows = [r for r, _ in results if r is not None]
    skipped = [s for _, s in results if s is not None]
    for s in skipped[:20]:
        log.warning("label map left out (aspect ratio differs): %s", s)
    log.info(
        "label maps: %d written to %s (%d Task 1 masks, %d outside the reference, %d left out)",
        len(rows),
        out_dir,
        len(seg),
        len(seg) - len(ids),
        len(skipped),
    )
    return pd.DataFrame(rows, columns=["image_id", "mask", "attributes", "resized"])


def write_label_maps(
    task1_dir, images_dir, out_dir, out_csv, task2_dir=None, workers: int = 2, log=None
) -> pd.DataFrame:
    """Label maps of the ISIC 2018 Task 1/2 masks for the images of images_dir (by ISIC id, sized as those
    images) -> PNGs in out_dir and their table (image_id, mask, attributes, resized) in out_csv."""
    reference = {isic_id(stem): p for stem, p in find_images(images_dir).items()}
    table = build_isic2018_label_maps(
        task1_dir, out_dir, task2_dir=task2_dir, reference=reference, workers=workers, log=log
    )
    if table.empty:
        raise InputError(f"{task1_dir}: none of its masks belongs to an image of {images_dir}")
    write_csv(out_csv, table)
    return table
