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


TRANSLATION_IMAGES = ("one_per_mask", "ratio")


def share_counts(total: dict[int, int], n_parts: int) -> list[dict[int, int]]:
    """Split per-class counts as evenly as possible over n_parts (the 'all GANs' experiments)."""
    return [{c: total[c] // n_parts + (1 if i < total[c] % n_parts else 0) for c in total} for i in range(n_parts)]


def allocate(wanted: dict[int, int], capacities: list[dict[int, float]]) -> list[dict[int, int]]:
    """Per class, split `wanted` over pools as evenly as possible without exceeding any pool's capacity
    (water-filling: a pool that cannot take its equal share gives all it has, and the rest is shared
    among the others). With unlimited capacities this is `share_counts`. The total may fall short of
    `wanted` only when all pools together hold fewer images."""
    out = [dict.fromkeys(wanted, 0) for _ in capacities]
    for c, n in wanted.items():
        open_parts = list(range(len(capacities)))
        left = int(n)
        while left > 0 and open_parts:
            shares = share_counts({c: left}, len(open_parts))
            full = [i for i, sh in zip(open_parts, shares) if capacities[i][c] - out[i][c] <= sh[c]]
            if not full:  # every pool takes its equal share
                for i, sh in zip(open_parts, shares):
                    out[i][c] += sh[c]
                break
            for i in full:  # these give all they have left; share the rest again among the others
                give = int(capacities[i][c] - out[i][c])
                out[i][c] += give
                left -= give
                open_parts.remove(i)
    return out


def one_per_mask(manifest: pd.DataFrame) -> pd.DataFrame:
    """A translation GAN's pool with each training label map once: the first pool row of every
    `source_image` (copy 0, the map as it is; pool.copies_per_mask adds flipped/rotated copies after it)."""
    return manifest[~manifest["source_image"].astype(str).duplicated(keep="first")]


def sample_experiment(
    experiment: Experiment,
    train_csv,
    manifests: list,
    out_csv,
    seed: int,
    diverse_threshold: int,
    translation_images: str = "one_per_mask",
    log: logging.Logger | None = None,
) -> pd.DataFrame:
    """Draw the experiment's synthetic images from its GAN pool(s), with its sampling method.

    translation_images (config ``sampling.translation_images``) rules the mask-to-image GANs' pools (those
    with a ``source_image`` column): ``one_per_mask`` (the study: "for pix2pixHD and SPADE, we use the
    whole training set's mask to generate our synthetic set") uses each training label map at most once,
    so a ratio asking for more images of a class than it has maps gets every map of that class once (the
    experiment keeps its label, e.g. ``1:1/2 p2p``; the samples CSV and the design table say how many
    images it got); ``ratio`` takes exactly the ratio's count from the whole pool (pool.copies_per_mask
    flipped/rotated copies per map), failing when the pool is too small. The ``all`` experiment shares
    its count equally among the GANs, a GAN short of its share giving what it has and the others the rest.
    """
    from ganaug.sampling import sample_pool

    if translation_images not in TRANSLATION_IMAGES:
        raise InputError(f"sampling.translation_images: {translation_images!r} is not one of "
                         f"{', '.join(TRANSLATION_IMAGES)}")
    log = log or log_default
    train = pd.read_csv(train_csv)
    wanted = counts(experiment.ratio, class_counts(train))["synthetic"]
    pools, capacities = [], []
    for manifest_path in manifests:
        manifest = pd.read_csv(manifest_path, dtype={"phash": str})
        capped = translation_images == "one_per_mask" and "source_image" in manifest.columns
        if capped:
            manifest = one_per_mask(manifest)
        pools.append(manifest)
        capacities.append({c: int((manifest["label"] == c).sum()) if capped else float("inf") for c in wanted})
    shares = allocate(wanted, capacities)
    got = {c: sum(sh[c] for sh in shares) for c in wanted}
    if got != wanted:
        log.warning("%s (%s): the mask-to-image pool(s) hold fewer label maps than the ratio asks for; every "
                    "map is used once (sampling.translation_images: one_per_mask, as the study did): %s "
                    "synthetic images per class instead of %s", experiment.id, experiment.label, got, wanted)
    parts = []
    for manifest_path, manifest, share in zip(manifests, pools, shares):
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


DESIGN_COLUMNS = ["application", "position", "experiment", "label", "group", "baseline", "ratio", "gan", "sampling",
                  "real_benign", "real_melanoma", "synthetic_benign", "synthetic_melanoma",
                  "asked_synthetic_benign", "asked_synthetic_melanoma"]


def design_table(experiments: list[Experiment], train_csv, trainset_csvs: dict) -> pd.DataFrame:
    """What each experiment's training set really holds, per class: real and synthetic images (from the
    train set of its first replicate; every replicate has the same counts) beside the synthetic counts its
    ratio asks for (they differ where a mask-to-image GAN has fewer maps than asked, see sample_experiment).

    trainset_csvs: experiment id -> path of its replicate-0 train set. One row per (application,
    experiment), in figure order."""
    from ganaug.design import experiment_table

    asked_base = class_counts(pd.read_csv(train_csv))
    by_id = {e.id: e for e in experiments}
    rows = []
    for _, r in experiment_table(experiments).iterrows():
        path = trainset_csvs.get(r["id"])
        if path is None:
            raise InputError(f"design table: no train set given for experiment {r['id']}")
        ts = pd.read_csv(path)
        missing = [c for c in ("label", "source") if c not in ts.columns]
        if missing:
            raise InputError(f"{path}: missing column(s) {missing}")
        n = ts.groupby(["source", "label"]).size()
        asked = counts(by_id[r["id"]].ratio, asked_base)["synthetic"]
        rows.append({
            "application": r["application"], "position": r["position"], "experiment": r["id"],
            "label": r["label"], "group": r["group"], "baseline": by_id[r["baseline_id"]].label
            if r["baseline_id"] in by_id else r["baseline_id"], "ratio": r["ratio"],
            "gan": by_id[r["id"]].gan or "", "sampling": by_id[r["id"]].sampling or "",
            "real_benign": int(n.get(("real", 0), 0)), "real_melanoma": int(n.get(("real", 1), 0)),
            "synthetic_benign": int(n.get(("synthetic", 0), 0)),
            "synthetic_melanoma": int(n.get(("synthetic", 1), 0)),
            "asked_synthetic_benign": asked[0], "asked_synthetic_melanoma": asked[1],
        })
    return pd.DataFrame(rows, columns=DESIGN_COLUMNS)
