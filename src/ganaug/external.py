"""External pools: synthetic images a user already has, from any generator, put through the study's protocol.

A config entry ``gans.<name>: {kind: external, path: ..., abbreviation: ...}`` names either

- a folder per class: ``<path>/benign/*.png|jpg`` and ``<path>/melanoma/*.png|jpg`` (folders ``0`` / ``1`` too),
- or an index CSV with columns ``image``, ``label`` (0 / 1 or benign / melanoma) and optionally
  ``source_image`` (for a mask-to-image model: the real training image whose label map made the image);
  image paths are relative to the CSV's folder.

`import_pool` checks and decodes every image once into the same uint8 shards a trained GAN's pool is
written to (ganaug.pool), so pHash, ancillary scores, every sampling method and the memorization audit run
on it unchanged. Bad input is an InputError naming the file or key, raised before any classifier uses it.
"""

from __future__ import annotations

import logging
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

from .io import InputError, read_image, save_npy, write_csv

log_default = logging.getLogger("ganaug")

CLASS_NAMES = {0: "benign", 1: "melanoma"}
_LABELS = {**{name: c for c, name in CLASS_NAMES.items()}, **{str(c): c for c in CLASS_NAMES}}
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
KEYS = ("kind", "path", "abbreviation", "resize", "resolution")
RESIZE = ("warn", "error")
DEFAULT_RESOLUTION = 256  # that of a built-in GAN entry without `resolution` (workflow GAN_SIZE)
SNAPSHOT = "external"  # the `snapshot` of an external pool's rows: no checkpoint was chosen


def study_resolution(gans_cfg: dict | None) -> int:
    """The size of the study's synthetic images: the `resolution` its built-in GAN entries agree on
    (256 when none is configured). Entries that disagree leave it to each external pool's `resolution`."""
    from .gans import BUILTIN

    sizes = {int((cfg or {}).get("resolution", DEFAULT_RESOLUTION))
             for name, cfg in (gans_cfg or {}).items() if name in BUILTIN}
    if len(sizes) > 1:
        raise InputError(f"the built-in GANs have different resolutions ({sorted(sizes)}): set gans.<pool>."
                         f"resolution of an external pool to the size its images should have")
    return sizes.pop() if sizes else DEFAULT_RESOLUTION


def resolve_external(name: str, gans_cfg: dict) -> dict:
    """An external pool's entry checked and completed: path (required), abbreviation, resize (warn |
    error, default warn), resolution (default: study_resolution)."""
    from .gans import check_abbreviation

    entry = dict(gans_cfg.get(name) or {})
    unknown = sorted(set(entry) - set(KEYS))
    if unknown:
        raise InputError(f"gans.{name}.{unknown[0]}: unknown key for an external pool (known: {', '.join(KEYS)})")
    path = entry.get("path")
    if not isinstance(path, str) or not path.strip():
        raise InputError(f"gans.{name}.path: required for an external pool (a folder per class, or an index CSV)")
    check_abbreviation(name, entry.get("abbreviation"))
    resize = entry.get("resize", "warn")
    if resize not in RESIZE:
        raise InputError(f"gans.{name}.resize: {resize!r} is not one of {', '.join(RESIZE)}")
    size = entry.get("resolution")
    if size is None:
        try:
            size = study_resolution(gans_cfg)
        except InputError as e:
            raise InputError(f"gans.{name}.resolution: {e}") from None
    if isinstance(size, bool) or not isinstance(size, int) or size < 8:
        raise InputError(f"gans.{name}.resolution: {size!r} must be an integer >= 8 (pixels)")
    return {**entry, "path": path, "resize": resize, "resolution": size}


def _label(value, where: str) -> int:
    text = str(value).strip().lower()
    if re.fullmatch(r"[01]\.0", text):  # pandas reads 0 / 1 as floats when a cell is empty
        text = text[0]
    if text not in _LABELS:
        raise InputError(f"{where}: label {value!r} is not one of the study's classes "
                         f"(0 / benign, 1 / melanoma)")
    return _LABELS[text]


def read_folder(root: Path) -> pd.DataFrame:
    """image, label of a folder per class (benign|0, melanoma|1), files in name order per class."""
    rows = []
    loose = sorted(p.name for p in root.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if loose:
        raise InputError(f"{root}: image {loose[0]} lies outside a class folder (expected "
                         f"{root}/benign/... and {root}/melanoma/...)")
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not folders:
        raise InputError(f"{root}: no class folder (expected {root}/benign/ and {root}/melanoma/ with the images)")
    seen: dict[int, Path] = {}
    for folder in folders:
        label = _label(folder.name, f"{folder} (class folder)")
        if label in seen:
            raise InputError(f"{folder}: a second folder for class {CLASS_NAMES[label]} (besides {seen[label]})")
        seen[label] = folder
        files = sorted(p for p in folder.iterdir()
                       if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise InputError(f"{folder}: empty class folder (no {'/'.join(IMAGE_SUFFIXES)} image)")
        rows += [(str(p), label) for p in files]
    return pd.DataFrame(rows, columns=["image", "label"])


def read_index(csv: Path) -> pd.DataFrame:
    """image, label[, source_image] of an index CSV; image paths relative to the CSV's folder."""
    try:
        df = pd.read_csv(csv, dtype=str, keep_default_na=False)
    except Exception as e:
        raise InputError(f"{csv}: cannot read the pool's index CSV ({type(e).__name__}: {e})") from e
    missing = [c for c in ("image", "label") if c not in df.columns]
    if missing:
        raise InputError(f"{csv}: missing column(s) {missing} (an external pool's index needs image, label and "
                         f"optionally source_image)")
    if df.empty:
        raise InputError(f"{csv}: no rows (an empty pool)")
    labels = [_label(v, f"{csv}, row {i + 2} ({df['image'].iloc[i]})") for i, v in enumerate(df["label"])]
    images = [str(p if Path(p).is_absolute() else csv.parent / p) for p in df["image"].str.strip()]
    table = pd.DataFrame({"image": images, "label": labels})
    blank = df["image"].str.strip() == ""
    if blank.any():
        raise InputError(f"{csv}, row {int(np.argmax(blank)) + 2}: empty image path")
    if "source_image" in df.columns:
        source = df["source_image"].str.strip()
        if (source == "").any():
            raise InputError(f"{csv}, row {int(np.argmax(source == '')) + 2}: empty source_image (give one for "
                             f"every image, or leave the column out)")
        table["source_image"] = source.to_numpy()
    return table


def read_pool_listing(path, workdir=".", key: str = "path") -> pd.DataFrame:
    """The images of an external pool (`path`: a folder per class or an index CSV, relative to `workdir`):
    image (a path), label (0 / 1), and source_image when the index gives it. Checks what is cheap to check
    (structure, labels, files present); import_pool decodes the images. Errors name the file or `key`."""
    root = Path(path) if Path(path).is_absolute() else Path(workdir) / path
    if not root.exists():
        raise InputError(f"{key}: not found: {path} (a folder per class, or an index CSV)")
    table = read_folder(root) if root.is_dir() else read_index(root)
    dup = table["image"].duplicated()
    if dup.any():
        raise InputError(f"{root}: image {table['image'][dup].iloc[0]} is listed twice")
    absent = [p for p in table["image"] if not Path(p).is_file()]
    if absent:
        raise InputError(f"{absent[0]}: image file not found ({len(absent)} listed in {root} are missing)")
    return table


def listing_fingerprint(path, workdir=".") -> str:
    """A digest of an external pool's files as they are now (names, sizes, modification times; for an index
    CSV also its content): the import's params, so that changed images are imported again. '' when the path
    is missing (the config check reports it)."""
    import hashlib

    root = Path(path) if Path(path).is_absolute() else Path(workdir) / path
    if not root.exists():
        return ""
    h = hashlib.sha256()
    if root.is_dir():
        files = sorted(p for p in root.rglob("*") if p.is_file())
    else:
        h.update(root.read_bytes())
        files = [Path(p) for p in read_index(root)["image"]]
    for f in files:
        st = f.stat() if f.exists() else None
        h.update(f"{f}\x1f{st.st_size if st else -1}\x1f{st.st_mtime_ns if st else -1}\n".encode())
    return h.hexdigest()[:16]


def synthetic_demand(experiments, gan: str, class_counts: dict) -> dict[int, int]:
    """Per class, the most synthetic images any experiment asks of generator `gan` (ganaug.design.counts on
    the real training set's class counts); 0 when none asks."""
    from .design import counts

    demand = dict.fromkeys(CLASS_NAMES, 0)
    for e in experiments:
        if e.gan == gan:
            asked = counts(e.ratio, class_counts)["synthetic"]
            demand = {c: max(demand[c], asked[c]) for c in demand}
    return demand


def check_supply(table: pd.DataFrame, demand: dict, name: str, where, one_per_mask: bool = True,
                 log: logging.Logger | None = None) -> None:
    """Too few images of a class for the largest count an experiment asks: InputError naming the pool.
    A mask-to-image pool (source_image) under sampling.translation_images: one_per_mask uses each label map
    once, as the study did for pix2pixHD / SPADE: fewer maps than asked is a warning there, as for those."""
    log = log or log_default
    for c, wanted in demand.items():
        have = int((table["label"] == c).sum())
        if have < wanted:
            raise InputError(f"{where}: {have} {CLASS_NAMES[c]} image(s), but an experiment asks for {wanted} "
                             f"synthetic {CLASS_NAMES[c]} images of gans.{name} (its largest ratio); add images "
                             f"or lower the ratio")
        if one_per_mask and "source_image" in table.columns:
            maps = int(table.loc[table["label"] == c, "source_image"].nunique())
            if maps < wanted:
                log.warning("gans.%s: %d %s label maps for %d asked; every map is used once "
                            "(sampling.translation_images: one_per_mask)", name, maps, CLASS_NAMES[c], wanted)


def match_sources(table: pd.DataFrame, train: pd.DataFrame, where) -> pd.Series:
    """The training image (train.csv `image`) of every source_image: the same path, or the same file name
    without extension (an image id such as ISIC_0000000). A source outside the training split is an error:
    a generator driven by a validation or test image's label map would leak it into training."""
    paths = train["image"].astype(str)
    by_path = dict(zip(paths, paths))
    stems = paths.map(lambda p: Path(p).stem)
    by_stem = dict(zip(stems[~stems.duplicated(keep=False)], paths[~stems.duplicated(keep=False)]))
    out = []
    for value in table["source_image"].astype(str):
        found = by_path.get(value) or by_stem.get(Path(value).stem)
        if found is None:
            raise InputError(f"{where}: source_image '{value}' is not an image of the training split (a "
                             f"mask-to-image model must be driven by training label maps only)")
        out.append(found)
    return pd.Series(out, index=table.index)


def decode_pool(table: pd.DataFrame, size: int, resize: str, name: str, workers: int = 4,
                log: logging.Logger | None = None) -> np.ndarray:
    """Every image decoded to uint8 size x size x 3 (table order). An unreadable file raises InputError
    naming it; an image of another size raises one (resize: error) or is resized with one logged warning
    (resize: warn; LANCZOS, the filter of every real-image cache)."""
    from .cache import resize_batch

    log = log or log_default
    out = np.empty((len(table), size, size, 3), dtype=np.uint8)
    other: list[tuple[str, tuple]] = []

    def load(i):
        path = table["image"].iloc[i]
        img = read_image(path)
        if img.shape[:2] != (size, size):
            if resize == "error":
                raise InputError(f"{path}: {img.shape[1]}x{img.shape[0]} px, the study's images are {size}x{size} "
                                 f"(gans.{name}.resize: error; set it to warn to resize)")
            other.append((path, img.shape[:2]))
            img = resize_batch(img[None], size)[0]
        out[i] = img

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        list(pool.map(load, range(len(table))))  # re-raises the first InputError
    if other:
        shapes = sorted({f"{w}x{h}" for _, (h, w) in other})
        log.warning("gans.%s: %d image(s) of another size than the study's %dx%d px (%s, e.g. %s) resized "
                    "(gans.%s.resize: warn)", name, len(other), size, size, ", ".join(shapes[:5]), other[0][0],
                    name)
    return out


def import_pool(name: str, entry: dict, train_csv, demand: dict, out_dir, out_csv, shard_size: int = 1000,
                workdir=".", one_per_mask: bool = True, workers: int = 4,
                log: logging.Logger | None = None) -> pd.DataFrame:
    """Check an external pool (`entry`: resolve_external's) and write it as a pool of shards.

    Checks, each an InputError naming the file or key: the listing (read_pool_listing), enough images per
    class for `demand` (synthetic_demand), source images in the training split, every image readable and of
    the study's size (or resized, resize: warn). Writes out_dir/shards/shard-KKKKK.npy (uint8 NHWC) and
    `out_csv` with the columns of a generated pool (image = '<shard>#<row>', label, shard, row, gan, snapshot
    = 'external') plus file (the user's image) and source_image when given.
    """
    log = log or log_default
    table = read_pool_listing(entry["path"], workdir, key=f"gans.{name}.path")
    where = f"gans.{name} ({entry['path']})"
    if "source_image" in table.columns:
        table["source_image"] = match_sources(table, pd.read_csv(train_csv, dtype={"image": str}), where)
    check_supply(table, demand, name, where, one_per_mask, log)
    table = table.sort_values("label", kind="stable").reset_index(drop=True)  # class by class, as generated
    images = decode_pool(table, int(entry["resolution"]), entry["resize"], name, workers, log)
    shard_dir = Path(out_dir) / "shards"
    shard_dir.mkdir(parents=True, exist_ok=True)
    for stale in shard_dir.glob("shard-*.npy"):  # a previous import of another listing
        stale.unlink()
    parts = []
    for k, lo in enumerate(range(0, len(table), shard_size)):
        hi = min(lo + shard_size, len(table))
        path = shard_dir / f"shard-{k:05d}.npy"
        save_npy(path, images[lo:hi])
        parts.append(pd.DataFrame({"image": [f"{path}#{i}" for i in range(hi - lo)], "shard": k,
                                   "row": np.arange(hi - lo)}))
    refs = pd.concat(parts, ignore_index=True)
    shards = pd.DataFrame({"image": refs["image"], "label": table["label"].astype(np.int64), "shard": refs["shard"],
                           "row": refs["row"], "file": table["image"]})
    if "source_image" in table.columns:
        shards["source_image"] = table["source_image"]
    shards["gan"] = name
    shards["snapshot"] = SNAPSHOT
    write_csv(out_csv, shards)
    log.info("gans.%s: %d images imported (%s) at %d px into %d shard(s)", name, len(shards),
             ", ".join(f"{int((shards['label'] == c).sum())} {n}" for c, n in CLASS_NAMES.items()),
             entry["resolution"], len(parts))
    return shards
