"""Train sets of the experiments: the synthetic subset of each experiment (drawn once, fixed across
replicates) and, per replicate, its paired real subset plus those synthetic images."""

from __future__ import annotations

import logging

import pandas as pd

from ganaug.design import Experiment, counts, real_subset, synthetic_seed
from ganaug.io import InputError, write_csv

log_default = logging.getLogger("ganaug")
TRAINSET_COLUMNS = ["image", "label", "source", "gan"]


def class_counts(train: pd.DataFrame) -> dict[int, int]:
    return {c: int((train["label"] == c).sum()) for c in (0, 1)}


def share_counts(total: dict[int, int], n_parts: int) -> list[dict[int, int]]:
    """Split per-class counts as evenly as possible over n_parts (the 'all GANs' experiments)."""
    return [{c: total[c] // n_parts + (1 if i < total[c] % n_parts else 0) for c in total} for i in range(n_parts)]


def sample_experiment(
    experiment: Experiment,
    train_csv,
    manifests: list,
    out_csv,
    seed: int,
    diverse_threshold: int,
    log: logging.Logger | None = None,
) -> pd.DataFrame:
    """Draw the experiment's synthetic images from its GAN pool(s), with its sampling method."""
    from ganaug.sampling import sample_pool

    log = log or log_default
    train = pd.read_csv(train_csv)
    wanted = counts(experiment.ratio, class_counts(train))["synthetic"]
    parts = []
    shares = share_counts(wanted, len(manifests))
    for manifest_path, share in zip(manifests, shares):
        manifest = pd.read_csv(manifest_path, dtype={"phash": str})
        try:
            chosen = sample_pool(manifest, share, experiment.sampling, synthetic_seed(experiment, seed),
                                 diverse_threshold=diverse_threshold)
        except InputError as e:
            raise InputError(f"{manifest_path}: {e}") from e
        parts.append(chosen.assign(source="synthetic"))
        log.info("%s: %s sampling, %s per class", manifest_path, experiment.sampling, share)
    table = pd.concat(parts, ignore_index=True)
    write_csv(out_csv, table)
    return table


def build_trainset(
    experiment: Experiment,
    replicate: int,
    train_csv,
    synthetic_csv,
    out_csv,
    seed: int,
    log: logging.Logger | None = None,
    real_csv=None,
) -> pd.DataFrame:
    """Replicate `replicate` of the experiment: the real subset of its fraction (the same one in every
    experiment with that fraction: a paired design) and the experiment's synthetic images.

    real_csv: the replicate's real subset as published by the study's authors (split.reduced_lists), used
    instead of the seeded one; its images must all be in the training part."""
    log = log or log_default
    train = pd.read_csv(train_csv)
    if real_csv is not None:
        listed = pd.read_csv(real_csv)
        unknown = sorted(set(listed["image"]) - set(train["image"]))
        if unknown:
            raise InputError(f"{real_csv}: {len(unknown)} image(s) not in the training part {train_csv}, "
                             f"e.g. {unknown[0]}")
        real = train[train["image"].isin(set(listed["image"]))]
        log.info("%s rep%d: the real subset of %s (%d images)", experiment.id, replicate, real_csv, len(real))
    else:
        real = real_subset(train, experiment.ratio.real, replicate, seed)
    real = real.assign(source="real", gan="")
    parts = [real[TRAINSET_COLUMNS]]
    if synthetic_csv is not None:
        synthetic = pd.read_csv(synthetic_csv)
        parts.append(synthetic[TRAINSET_COLUMNS])
    table = pd.concat(parts, ignore_index=True)
    if table.empty:
        raise InputError(f"experiment {experiment.id}: empty train set (ratio {experiment.ratio_text})")
    write_csv(out_csv, table)
    by = table.groupby(["source", "label"]).size().to_dict()
    log.info("%s rep%d: %d images %s", experiment.id, replicate, len(table), by)
    return table
