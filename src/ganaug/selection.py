"""Checkpoint selection rule of the study: lowest FID, but prefer a later snapshot within a tolerance."""

from __future__ import annotations

import math

from .fid import FEATURES, FID_DEFAULTS  # noqa: F401  (FID_DEFAULTS kept importable from here)
from .io import InputError

METRICS = tuple(FEATURES.values())  # fid_inception, fid_ancillary: the FID on either features, where computed


def select_snapshot(fids, tolerance: float = 0.3) -> tuple[int, float]:
    """Choose a snapshot from (kimg, fid) pairs.

    The snapshot with the lowest FID is the reference; among all snapshots whose FID is less than
    `tolerance` above that minimum (fid - min < tolerance, strictly: the study prefers later checkpoints
    "for similar FID (< 0.3 difference)") the latest (largest kimg) is chosen, since a longer-trained
    generator with an equivalent FID is preferred. Non-finite FIDs (a diverged or failed evaluation) are
    never chosen. Returns (kimg, fid).
    """
    if tolerance < 0 or not math.isfinite(tolerance):
        raise InputError(f"selection tolerance {tolerance!r} must be a finite number >= 0")
    pairs = [(k, float(f)) for k, f in fids]
    if not pairs:
        raise InputError("checkpoint selection: no snapshots with an FID to choose from")
    kimgs = [k for k, _ in pairs]
    if len(set(kimgs)) != len(kimgs):
        raise InputError(f"checkpoint selection: duplicate snapshot kimg values in {sorted(kimgs)}")
    finite = [(k, f) for k, f in pairs if math.isfinite(f)]
    if not finite:
        raise InputError(f"checkpoint selection: every FID is non-finite ({pairs})")
    best = min(f for _, f in finite)
    # strictly less; a difference within 1e-9 of the tolerance counts as equal to it (0.7 - 0.4 is
    # 0.29999999999999993 in floating point), so FIDs exactly `tolerance` apart never prefer the later one
    candidates = [(k, f) for k, f in finite if f == best or f - best < tolerance - 1e-9]
    return max(candidates, key=lambda kf: kf[0])


def select_checkpoint(snapshot_dir, real_images, real_labels, ancillary_path, fid_cfg: dict, seed: int, device,
                      out_selected, out_fid, out_grid, log=None, batch_size: int = 64, real_masks=None) -> dict:
    """FID (and KID) of every snapshot of a GAN run against the real training images; pick one with
    select_snapshot; measure the FID's seed-to-seed noise at the chosen snapshot; save a sample grid.

    Features (ganaug.fid.make_extractors, config ``fid.features``): the standard FID Inception network
    (``inception``, weights from fid.inception_weights) or the ancillary classifier at `ancillary_path`
    (``ancillary``); the metric name says which, and selection uses that FID. With fid.second_metric the other
    features' FID is computed on the same images and reported beside it (columns fid_inception,
    fid_ancillary).
    `fid_cfg["n_images"]` real images (a seeded subset) are compared with as many generated images of the
    same classes. A translation GAN (pix2pixHD, SPADE) needs `real_masks`, the label maps of the real images:
    its generated images are translated from the label maps of the compared real images. Writes `out_fid`
    (CSV: snapshot, kimg, fid, kid, kid_std, metric, extractor, n_images, then fid_<features> for every
    features computed, e.g. fid_inception, fid_ancillary), `out_selected` (JSON) and `out_grid` (PNG).
    Returns the selected.json content.
    """
    import logging

    import numpy as np
    import pandas as pd

    from .fid import feature_stats, fid_settings, frechet_distance, kid, make_extractors
    from .gans import training as gt
    from .io import seed_from, write_csv, write_json
    from .progress import Progress
    from .quality import quality_per_class

    log = log or logging.getLogger("ganaug")
    cfg = fid_settings(fid_cfg)
    snaps = gt.list_snapshots(snapshot_dir)
    if not snaps:
        raise InputError(f"{snapshot_dir}: no snapshot files (snapshot-KKKKKK.pt) to select from")
    real_labels = np.asarray(real_labels, dtype=np.int64)
    if len(real_labels) != len(real_images):
        raise InputError(f"select_checkpoint: {len(real_images)} real images but {len(real_labels)} labels")

    def _load_ancillary():
        from .classifier.training import load_classifier

        return load_classifier(ancillary_path, device)

    extractors = make_extractors(cfg, _load_ancillary)
    extractor = extractors[0]  # the selection metric
    idx, feats_r = _real_reference(real_images, extractors, cfg, seed, device, batch_size, "select_checkpoint")
    n = len(idx)
    labels = real_labels[idx]
    if real_masks is not None and len(real_masks) != len(real_images):
        raise InputError(f"select_checkpoint: {len(real_images)} real images but {len(real_masks)} label maps")
    masks = None if real_masks is None else np.asarray(real_masks[idx])
    stats_r = {m: feature_stats(f) for m, f in feats_r.items()}
    feat_r = feats_r[extractor.metric]
    log.info("FID on %s features (%s), %d real and %d generated images per snapshot, %d snapshots%s",
             extractor.name, extractor.metric, n, n, len(snaps),
             "".join(f"; also {e.metric} on {e.name} features" for e in extractors[1:]))
    for m, f in feats_r.items():
        if n < f.shape[1]:
            log.warning("%s with %d images < feature dimension %d: covariances are singular and FID is biased "
                        "upward; compare snapshots only with each other (KID is reported too)", m, n, f.shape[1])

    def _features(G, fake_seed, which=None):
        fake = gt.generate(G, labels, seed=fake_seed, device=device, masks=masks)
        return {e.metric: e.features(fake, batch_size=batch_size, device=device)
                for e in (which or extractors)}

    def _fids(feats_g):
        return {m: frechet_distance(*stats_r[m], *feature_stats(f)) for m, f in feats_g.items()}

    def _score(G, fake_seed):
        feats_g = _features(G, fake_seed)
        k_mean, k_std = kid(feat_r, feats_g[extractor.metric], n_subsets=cfg["kid_subsets"],
                            subset_size=cfg["kid_subset_size"], seed=seed_from(seed, "kid"), device=device)
        return _fids(feats_g), k_mean, k_std

    rows = []
    progress = Progress(len(snaps), "snapshot", log)
    fake_seed0 = seed_from(seed, "fake", 0)
    for i, (kimg, path) in enumerate(snaps):
        G = gt.load_generator(path, device)
        fids, k_mean, k_std = _score(G, fake_seed0)
        fid = fids[extractor.metric]
        rows.append({"snapshot": path.name, "kimg": kimg, "fid": fid, "kid": k_mean, "kid_std": k_std,
                     "metric": extractor.metric, "extractor": extractor.name, "n_images": n,
                     **{m: fids.get(m) for m in METRICS}})
        progress.update(i + 1, images=n, kimg=kimg, fid=fid)
    table = pd.DataFrame(rows)
    write_csv(out_fid, table)

    kimg, fid = select_snapshot(list(zip(table["kimg"], table["fid"])), tolerance=float(cfg["tolerance"]))
    chosen = table[table["kimg"] == kimg].iloc[0]
    best = table.loc[table["fid"].idxmin()]
    path = dict(snaps)[kimg]
    G = gt.load_generator(path, device)
    noise = [fid]
    # a generator without a latent (pix2pixHD, SPADE by default) gives the same images for every seed
    for j in range(1, int(cfg["noise_seeds"]) if G.z_dim else 1):
        noise.append(_fids(_features(G, seed_from(seed, "fake", j), [extractor]))[extractor.metric])
    noise_std = float(np.std(noise, ddof=1)) if len(noise) > 1 else None
    # beyond FID: k-NN precision / recall, KID and FID, overall and per class, at the chosen snapshot
    feat_g = _features(G, fake_seed0, [extractor])[extractor.metric]
    quality = quality_per_class(feat_r, labels, feat_g, labels, k=3, kid_subsets=cfg["kid_subsets"],
                                kid_subset_size=cfg["kid_subset_size"], seed=seed_from(seed, "kid"),
                                device=device,
                                fid_min_n=feat_r.shape[1])
    gt.save_png(out_grid, gt.sample_grid(G, int(cfg["grid_per_class"]), seed_from(seed, "grid"), device,
                                         masks=masks, mask_labels=labels))
    selected = {
        "snapshot": chosen["snapshot"], "path": str(path), "kimg": float(kimg), "fid": float(fid),
        "kid": float(chosen["kid"]), "metric": extractor.metric, "extractor": extractor.name,
        "tolerance": float(cfg["tolerance"]), "n_images": n,
        "best_snapshot": best["snapshot"], "best_kimg": float(best["kimg"]), "best_fid": float(best["fid"]),
        "fid_seed_values": [float(v) for v in noise], "fid_seed_std": noise_std, "quality": quality,
        # the FID on each features at the chosen snapshot (null: not computed; the selection metric's is "fid")
        **{m: (float(chosen[m]) if m in feats_r else None) for m in METRICS},
        "extractors": {e.metric: e.name for e in extractors},
    }
    write_json(out_selected, selected)
    log.info("selected %s (kimg %g, %s %.3f; lowest %.3f at kimg %g; tolerance %g; seed-to-seed FID std %s)",
             selected["snapshot"], kimg, extractor.metric, fid, selected["best_fid"], selected["best_kimg"],
             selected["tolerance"], "n/a" if noise_std is None else f"{noise_std:.3f}")
    if noise_std is not None and noise_std > selected["tolerance"]:
        log.warning("the FID's seed-to-seed noise (std %.3f) exceeds the selection tolerance %g: the choice "
                    "between close snapshots is within noise; consider more images (fid.n_images)",
                    noise_std, selected["tolerance"])
    return selected


def _real_reference(real_images, extractors, cfg: dict, seed: int, device, batch_size: int, what: str):
    """The real images a generator is compared with: fid.n_images of them (a subset seeded from `seed`, the
    same for every generator of a study) and their features on every extractor. Returns (rows, {metric:
    features})."""
    import numpy as np

    from .io import seed_from

    n = min(int(cfg["n_images"]), len(real_images))
    if n < 2:
        raise InputError(f"{what}: need at least 2 real images, got {len(real_images)}")
    rng = np.random.default_rng(seed_from(seed, "real-subset"))
    idx = np.arange(len(real_images)) if n == len(real_images) else np.sort(
        rng.choice(len(real_images), n, replace=False))
    reals = np.asarray(real_images[idx])
    return idx, {e.metric: e.features(reals, batch_size=batch_size, device=device) for e in extractors}


def _pool_subset(pool_labels, wanted_labels, seed: int):
    """Pool rows with the class mix of `wanted_labels`: per class, as many (seeded, without replacement) as
    wanted, or all the pool has of it when fewer."""
    import numpy as np

    rng = np.random.default_rng(seed)
    rows = []
    for c in np.unique(wanted_labels):
        have = np.flatnonzero(pool_labels == c)
        rows.append(rng.permutation(have)[:int((wanted_labels == c).sum())])
    return np.sort(np.concatenate(rows)) if rows else np.zeros(0, dtype=np.int64)


def evaluate_pool(pool_images, pool_labels, real_images, real_labels, ancillary_path, fid_cfg: dict, seed: int,
                  device, out_selected, out_fid, out_grid, log=None, batch_size: int = 64) -> dict:
    """An external pool (fixed images: no snapshot to choose) measured as select_checkpoint measures the
    chosen snapshot of a GAN: FID and KID on the study's features against the same real subset, with per
    class FID / KID / k-NN precision / recall, so that its row of gan_fid.csv compares with the GANs'.

    The pool side: per class as many pool images as the real subset has (seeded; all of a smaller class).
    The FID's spread (fid_seed_values / fid_seed_std) comes from fid.noise_seeds different pool subsets.
    Writes `out_fid` (one row, snapshot 'external'), `out_selected` (the JSON gan_table reads) and `out_grid`
    (fid.grid_per_class pool images per class). Returns the selected.json content.
    """
    import logging

    import numpy as np
    import pandas as pd

    from .external import SNAPSHOT
    from .fid import feature_stats, fid_settings, frechet_distance, kid, make_extractors
    from .gans.training import save_png
    from .io import seed_from, write_csv, write_json
    from .quality import quality_per_class

    log = log or logging.getLogger("ganaug")
    cfg = fid_settings(fid_cfg)
    pool_labels = np.asarray(pool_labels, dtype=np.int64)
    real_labels = np.asarray(real_labels, dtype=np.int64)
    if len(pool_labels) != len(pool_images) or len(real_labels) != len(real_images):
        raise InputError(f"evaluate_pool: {len(pool_images)} pool images with {len(pool_labels)} labels, "
                         f"{len(real_images)} real images with {len(real_labels)} labels")

    def _load_ancillary():
        from .classifier.training import load_classifier

        return load_classifier(ancillary_path, device)

    extractors = make_extractors(cfg, _load_ancillary)
    extractor = extractors[0]
    idx, feats_r = _real_reference(real_images, extractors, cfg, seed, device, batch_size, "evaluate_pool")
    labels = real_labels[idx]
    stats_r = {m: feature_stats(f) for m, f in feats_r.items()}

    def _fake(j, which):
        rows = _pool_subset(pool_labels, labels, seed_from(seed, "fake", j))
        imgs = np.asarray(pool_images[rows])
        return rows, {e.metric: e.features(imgs, batch_size=batch_size, device=device) for e in which}

    rows, feats_g = _fake(0, extractors)
    fids = {m: frechet_distance(*stats_r[m], *feature_stats(f)) for m, f in feats_g.items()}
    fid = fids[extractor.metric]
    n = min(len(idx), len(rows))
    k_mean, k_std = kid(feats_r[extractor.metric], feats_g[extractor.metric], n_subsets=10,
                        subset_size=min(1000, n), seed=seed_from(seed, "kid"))
    noise = [fid]
    for j in range(1, int(cfg["noise_seeds"])):
        feat = _fake(j, [extractor])[1][extractor.metric]
        noise.append(frechet_distance(*stats_r[extractor.metric], *feature_stats(feat)))
    noise_std = float(np.std(noise, ddof=1)) if len(noise) > 1 else None
    quality = quality_per_class(feats_r[extractor.metric], labels, feats_g[extractor.metric], pool_labels[rows],
                                k=3, kid_subsets=10, kid_subset_size=min(1000, n), seed=seed_from(seed, "kid"),
                                fid_min_n=feats_r[extractor.metric].shape[1])
    table = pd.DataFrame([{"snapshot": SNAPSHOT, "kimg": None, "fid": fid, "kid": k_mean, "kid_std": k_std,
                           "metric": extractor.metric, "extractor": extractor.name, "n_images": len(rows),
                           **{m: fids.get(m) for m in METRICS}}])
    write_csv(out_fid, table)
    save_png(out_grid, pool_grid(pool_images, pool_labels, int(cfg["grid_per_class"]), seed_from(seed, "grid")))
    selected = {
        "snapshot": SNAPSHOT, "path": None, "kimg": None, "fid": float(fid), "kid": float(k_mean),
        "metric": extractor.metric, "extractor": extractor.name, "tolerance": None, "n_images": len(rows),
        "n_real": len(idx), "pool_images": len(pool_labels), "best_snapshot": None, "best_kimg": None,
        "best_fid": None, "fid_seed_values": [float(v) for v in noise], "fid_seed_std": noise_std,
        "quality": quality, **{m: (float(fids[m]) if m in fids else None) for m in METRICS},
        "extractors": {e.metric: e.name for e in extractors},
    }
    write_json(out_selected, selected)
    log.info("external pool: %s %.3f on %d pool / %d real images (spread over %d pool subsets: %s)",
             extractor.metric, fid, len(rows), len(idx), len(noise),
             "n/a" if noise_std is None else f"{noise_std:.3f}")
    return selected


def pool_grid(images, labels, n_per_class: int, seed: int):
    """One uint8 image: row k holds n_per_class pool images of class k (seeded; fewer when the class has
    fewer; an empty class leaves its row black)."""
    import numpy as np

    images, labels = np.asarray(images), np.asarray(labels)
    r = images.shape[1]
    classes = range(max(2, int(labels.max()) + 1 if len(labels) else 2))
    grid = np.zeros((len(classes) * r, n_per_class * r, 3), dtype=np.uint8)
    rng = np.random.default_rng(seed)
    for k in classes:
        rows = rng.permutation(np.flatnonzero(labels == k))[:n_per_class]
        for j, i in enumerate(rows):
            grid[k * r:(k + 1) * r, j * r:(j + 1) * r] = images[i]
    return grid


GAN_TABLE_COLUMNS = ["gan", "label", "train_images", "trained_kimg", "trained_epochs", "training_hours", "snapshot",
                     "kimg", "epoch", "fid", "fid_seed_std", "kid", "precision", "recall", "metric", "extractor",
                     "n_images", "best_kimg", "best_fid", *METRICS]
CLASS_NAMES = {"0": "benign", "1": "melanoma"}


def gan_table(entries, labels: dict | None = None):
    """The shape of the study's Table 4: one row per GAN with its training length, the selected snapshot,
    its FID (with the seed-to-seed spread) and KID, and which features the metric used (``metric``: the
    selection's; ``fid_inception`` / ``fid_ancillary``: the FID on either features, empty where not
    computed, e.g. the standard Inception FID beside the ancillary classifier's); beyond the study,
    k-NN precision and recall (Kynkaanniemi et al. 2019, k = 3) overall, and FID, KID, precision and
    recall per class (columns fid_benign, recall_melanoma, ...).

    Lengths in epochs, as the study's Table 4 states them: trained_epochs (the whole run) and epoch (the
    selected snapshot) = kimg * 1000 / train_images, the number of images the GAN trained on (training.json
    "images": the whole training set for PGAN / StyleGAN2, the masked images for pix2pixHD / SPADE); NaN
    for a training.json without it.

    An external pool (training.json None; selected.json of evaluate_pool) has no training length and no
    snapshot choice: its snapshot is 'external', its lengths and kimg empty.

    entries: (gan, selected.json dict, training.json dict or None) triples; labels: gan -> its abbreviation
    (ganaug.gans.abbreviation), default the built-in ones.
    """
    import pandas as pd

    from .gans import ABBREVIATIONS

    labels = {**ABBREVIATIONS, **(labels or {})}
    rows = []
    for gan, sel, train in entries:
        if train is None:  # an external pool: nothing trained, nothing selected
            train = {"kimg": float("nan")}
            sel = {**sel, "kimg": float("nan"), "best_kimg": float("nan"), "best_fid": float("nan")}
        n = train.get("images")
        if n is not None and (isinstance(n, bool) or not float(n) > 0):
            raise InputError(f"{gan}: training.json 'images' must be a positive number, got {n!r}")
        per_epoch = float(n) / 1000 if n is not None else float("nan")  # kimg per epoch
        rows.append({
            "gan": gan, "label": labels.get(gan, gan),
            "train_images": int(n) if n is not None else None, "trained_kimg": float(train["kimg"]),
            "trained_epochs": float(train["kimg"]) / per_epoch,
            "training_hours": float(train.get("seconds", float("nan"))) / 3600,
            "snapshot": sel["snapshot"], "kimg": sel["kimg"], "epoch": float(sel["kimg"]) / per_epoch,
            "fid": sel["fid"],
            "fid_seed_std": sel.get("fid_seed_std"), "kid": sel.get("kid"), "metric": sel["metric"],
            "extractor": sel["extractor"], "n_images": sel["n_images"], "best_kimg": sel["best_kimg"],
            "best_fid": sel["best_fid"],
            # selected.json from before the second metric: only the selection metric's FID is known
            **{m: sel.get(m, sel["fid"] if m == sel["metric"] else None) for m in METRICS},
        })
        for q in sel.get("quality", []):
            if q["class"] == "all":
                rows[-1].update(precision=q["precision"], recall=q["recall"])
                continue
            name = CLASS_NAMES.get(q["class"], f"class{q['class']}")
            for key in ("fid", "kid", "precision", "recall"):
                rows[-1][f"{key}_{name}"] = q[key]
    table = pd.DataFrame(rows)
    extra = [c for c in table.columns if c not in GAN_TABLE_COLUMNS]
    return table.reindex(columns=GAN_TABLE_COLUMNS + extra)
