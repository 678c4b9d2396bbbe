"""The synthetic pool of one GAN: generation in resumable shards, pHash and ancillary scores.

A pool image is referred to as "<shard .npy path>#<row>"; shards are uint8 N x H x W x 3 arrays.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from ganaug.io import InputError, save_npy, seed_from, sha256_file, write_csv, write_json
from ganaug.progress import Progress

log_default = logging.getLogger("ganaug")


def pool_labels(n_per_class: int, num_classes: int = 2) -> np.ndarray:
    """Class of every pool image, in pool order: all of class 0, then class 1, ..."""
    return np.repeat(np.arange(num_classes, dtype=np.int64), n_per_class)


def split_ref(ref: str) -> tuple[str, int]:
    path, sep, row = ref.rpartition("#")
    if not sep or not row.isdigit():
        raise InputError(f"'{ref}': not a pool image reference ('<shard.npy>#<row>')")
    return path, int(row)


def generate_pool(
    selected_json,
    gan: str,
    out_dir,
    out_csv,
    n_per_class: int,
    shard_size: int,
    seed: int,
    device,
    truncation_psi: float = 1.0,
    batch_size: int = 256,
    copies_per_mask: int = 1,
    masks: np.ndarray | None = None,
    mask_table: pd.DataFrame | None = None,
    log: logging.Logger | None = None,
) -> pd.DataFrame:
    """Generate the pool of one GAN from its selected snapshot.

    A class-conditional GAN (StyleGAN2, PGAN) draws n_per_class images of every class. A translation GAN
    (pix2pixHD, SPADE) translates every training label map (`masks`, with their rows `mask_table`: image,
    label) `copies_per_mask` times -- copy k from the k-th flip/rotation of the map -- and each synthetic
    image takes the class of the real image whose map produced it (column `source_image`); n_per_class is not used.

    Shard k holds pool images [k*shard_size, (k+1)*shard_size) and is generated from its own seed, so a
    killed job resumes by skipping the shards already on disk (each written atomically).
    """
    from ganaug.gans.training import generate, load_generator
    from ganaug.masks import dihedral

    log = log or log_default
    selected = json.loads(Path(selected_json).read_text())
    G = load_generator(selected["path"], device)
    source = None
    if G.conditioning == "mask":
        if masks is None or mask_table is None:
            raise InputError(f"pool of '{gan}': a translation GAN needs the training label maps")
        if len(masks) != len(mask_table):
            raise InputError(f"pool of '{gan}': {len(masks)} label maps but {len(mask_table)} rows")
        copies = int(copies_per_mask)
        if copies < 1 or copies > 8:
            raise InputError(f"pool.copies_per_mask: {copies_per_mask!r} must be in 1..8 (flips and rotations)")
        labels = np.tile(mask_table["label"].to_numpy(np.int64), copies)
        source = np.tile(mask_table["image"].astype(str).to_numpy(), copies)
        log.info("%s: %d label maps x %d copies = %d pool images", gan, len(masks), copies, len(labels))
    else:
        labels = pool_labels(n_per_class, G.num_classes)
    shard_dir = Path(out_dir) / "shards"
    shard_dir.mkdir(parents=True, exist_ok=True)
    _invalidate_stale_shards(shard_dir, {
        "snapshot": selected["snapshot"], "snapshot_sha256": sha256_file(selected["path"]), "gan": gan,
        "seed": int(seed), "shard_size": int(shard_size), "truncation_psi": float(truncation_psi),
        "labels_sha256": hashlib.sha256(labels.tobytes()).hexdigest(),
        "masks_sha256": None if masks is None else hashlib.sha256(np.ascontiguousarray(masks).tobytes()).hexdigest(),
    }, log)
    n_shards = -(-len(labels) // shard_size)
    progress = Progress(n_shards, "shard", log)
    rows = []
    for k in range(n_shards):
        lo, hi = k * shard_size, min((k + 1) * shard_size, len(labels))
        path = shard_dir / f"shard-{k:05d}.npy"
        existing = _shard_ok(path, hi - lo)
        if not existing:
            maps = None
            if source is not None:
                copy, row = np.divmod(np.arange(lo, hi), len(masks))
                maps = np.empty((hi - lo, *masks.shape[1:]), dtype=np.uint8)
                for c in np.unique(copy):
                    maps[copy == c] = dihedral(masks[row[copy == c]], int(c))
            images = generate(G, labels[lo:hi], seed_from(seed, "shard", k), device, batch_size=batch_size,
                              truncation_psi=truncation_psi, masks=maps)
            save_npy(path, images)
        part = {"image": [f"{path}#{i}" for i in range(hi - lo)], "label": labels[lo:hi], "shard": k,
                "row": np.arange(hi - lo)}
        if source is not None:
            part["source_image"] = source[lo:hi]
        rows.append(pd.DataFrame(part))
        progress.update(k + 1, images=0 if existing else hi - lo, resumed=int(existing))
    table = pd.concat(rows, ignore_index=True)
    table["gan"] = gan
    table["snapshot"] = selected["snapshot"]
    write_csv(out_csv, table)
    return table


def _invalidate_stale_shards(shard_dir: Path, fingerprint: dict, log) -> None:
    """Shards are reused on resume only if they come from the same snapshot, settings and label maps;
    otherwise (a new snapshot was selected, a pool setting changed) they are deleted and regenerated."""
    record = shard_dir / "pool.json"
    old = json.loads(record.read_text()) if record.exists() else None
    stale = sorted(shard_dir.glob("shard-*.npy"))
    if old != fingerprint and stale:
        log.info("pool settings or snapshot changed since %s was written: regenerating %d shard(s)", record,
                 len(stale))
        for f in stale:
            f.unlink()
    if old != fingerprint:
        write_json(record, fingerprint)


def _shard_ok(path: Path, n: int) -> bool:
    if not path.exists():
        return False
    try:
        return np.load(path, mmap_mode="r").shape[0] == n
    except Exception:
        return False


def iter_shards(shards: pd.DataFrame):
    """Yield (row indices into `shards`, uint8 images) per shard file, in table order."""
    paths = shards["image"].map(lambda r: split_ref(r)[0])
    for path, idx in shards.groupby(paths, sort=False).groups.items():
        rows = shards.loc[idx, "image"].map(lambda r: split_ref(r)[1]).to_numpy()
        try:
            array = np.load(path, mmap_mode="r")
        except Exception as e:
            raise InputError(f"{path}: cannot read pool shard ({e})") from e
        yield np.asarray(idx), np.asarray(array[rows])


def load_pool_images(shards: pd.DataFrame) -> np.ndarray:
    """Every image of a pool's shard table, uint8 N x H x W x 3 in table order."""
    out = None
    for idx, images in iter_shards(shards):
        out = np.empty((len(shards), *images.shape[1:]), dtype=np.uint8) if out is None else out
        out[idx] = images
    if out is None:
        raise InputError("pool: no image in the shard table")
    return out


def hash_pool(shards_csv, out_csv, threads: int = 1, log: logging.Logger | None = None) -> pd.DataFrame:
    """pHash (imagehash-identical, 16 hex digits) of every pool image."""
    from ganaug.phash import phash_batch

    log = log or log_default
    shards = pd.read_csv(shards_csv)
    hashes = np.zeros(len(shards), dtype=np.uint64)
    progress = Progress(len(shards), "image", log)
    done = 0
    for idx, images in iter_shards(shards):
        hashes[idx] = phash_batch(images)
        done += len(idx)
        progress.update(done, images=len(idx))
    table = pd.DataFrame({"image": shards["image"], "phash": [format(int(h), "016x") for h in hashes]})
    write_csv(out_csv, table)
    return table


def score_pool(shards_csv, phash_csv, ancillary_model, out_csv, device, batch_size: int = 512,
               log: logging.Logger | None = None) -> pd.DataFrame:
    """Manifest of the pool: image, label, phash, score (ancillary cross-entropy for the intended class,
    lower = the image looks more like its class), prob (ancillary probability of melanoma)."""
    from ganaug.classifier.predict import cross_entropy, logits, probabilities
    from ganaug.classifier.training import load_classifier

    log = log or log_default
    shards = pd.read_csv(shards_csv)
    phash = pd.read_csv(phash_csv, dtype={"phash": str})
    if not shards["image"].equals(phash["image"]):
        raise InputError(f"{phash_csv}: rows do not match {shards_csv}; re-run hash_pool")
    model, info = load_classifier(ancillary_model, device)
    score = np.zeros(len(shards))
    prob = np.zeros(len(shards))
    labels = shards["label"].to_numpy(np.int64)
    progress = Progress(len(shards), "image", log)
    done = 0
    for idx, images in iter_shards(shards):
        logit = logits(model, info, images, device, batch_size=batch_size)  # one forward pass for both
        score[idx] = cross_entropy(logit, labels[idx])
        prob[idx] = probabilities(logit)
        done += len(idx)
        progress.update(done, images=len(idx))
    manifest = shards.assign(phash=phash["phash"], score=score, prob=prob)
    write_csv(out_csv, manifest)
    return manifest
