"""Image integrity: every image (and label map) of an index decoded once, before any long job reads it; a
bad file fails naming it, or is left out and listed."""

from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor

import pandas as pd

from ..datasets import validate_index, write_index
from ..io import InputError, write_csv

log_default = logging.getLogger("ganaug")


def decode_problem(path, mask: bool = False) -> str | None:
    """None if the file decodes completely, else what is wrong (absent, empty, truncated, not an image).
    JPEGs are decoded at reduced scale (DCT scaling), which still reads every byte of the stream."""
    from PIL import Image, ImageFile

    if not os.path.isfile(path):
        return "file not found"
    if os.path.getsize(path) == 0:
        return "empty file"
    def decode(draft: bool) -> str | None:
        with Image.open(path) as im:
            if mask and im.mode not in ("L", "P", "1", "I", "I;16"):
                return f"label map must be a one-channel image, got mode {im.mode}"
            if draft and im.format == "JPEG":
                im.draft(im.mode, (max(1, im.size[0] // 8), max(1, im.size[1] // 8)))
            im.load()
        return None

    old = ImageFile.LOAD_TRUNCATED_IMAGES
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        try:
            return decode(draft=True)
        except Exception:  # decode fully: the full decoder's message (or a file only the draft fails on)
            return decode(draft=False)
    except Exception as e:
        return f"{type(e).__name__}: {e}"
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = old


def check_images(
    index: pd.DataFrame, on_bad: str = "fail", workers: int = 2, source: str = "index", log=None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Decode every image (and label map) of an index once. Returns (good rows, report of bad files:
    image, column, file, problem). on_bad 'fail': InputError listing each bad file by path; 'drop': the
    rows with a bad file are left out (and listed in the report)."""
    from ..progress import Progress

    if on_bad not in ("fail", "drop"):
        raise InputError(f"{source}: on_bad_image must be 'fail' or 'drop', got {on_bad!r}")
    log = log or log_default
    index = validate_index(index, source)
    jobs = [(i, "image", p) for i, p in enumerate(index["image"])]
    jobs += [(i, "mask", p) for i, p in enumerate(index["mask"]) if p]
    progress = Progress(len(jobs), "files", log)
    done = [0]

    def one(job):
        i, col, p = job
        res = decode_problem(p, mask=(col == "mask"))
        done[0] += 1
        if done[0] % 2000 == 0:
            progress.update(done[0], images=2000)
        return res

    with ThreadPoolExecutor(max_workers=max(1, int(workers))) as pool:
        problems = list(pool.map(one, jobs))
    bad = [(i, col, p, prob) for (i, col, p), prob in zip(jobs, problems) if prob is not None]
    report = pd.DataFrame(
        [(index["image"].iloc[i], col, p, prob) for i, col, p, prob in bad],
        columns=["image", "column", "file", "problem"],
    )
    log.info("%s: %d file(s) decoded, %d bad", source, len(jobs), len(bad))
    if bad and on_bad == "fail":
        lines = "\n  ".join(f"{p} ({prob})" for _, _, p, prob in bad[:50])
        more = f"\n  ... and {len(bad) - 50} more" if len(bad) > 50 else ""
        raise InputError(
            f"{source}: {len(bad)} of {len(jobs)} file(s) cannot be decoded:\n  {lines}{more}\n"
            "Replace them, or set datasets.<name>.on_bad_image: drop to leave them out (listed in "
            "results/data/integrity/<name>.csv)."
        )
    rows = sorted({i for i, _, _, _ in bad})
    good = index.drop(index=rows).reset_index(drop=True)
    return good, report


def check_index_images(
    in_csv, out_csv, report_csv, on_bad: str = "fail", workers: int = 2, log=None
) -> pd.DataFrame:
    """check_images on an index CSV; writes the good rows and the report (atomic; nothing on failure)."""
    index = pd.read_csv(in_csv, dtype=str, keep_default_na=False)
    index = validate_index(index, str(in_csv))
    good, report = check_images(index, on_bad=on_bad, workers=workers, source=str(in_csv), log=log)
    if len(good) == 0:
        raise InputError(f"{in_csv}: no image left after the integrity check")
    write_csv(report_csv, report)
    write_index(out_csv, good)
    return good
