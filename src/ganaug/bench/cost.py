"""The predicted GPU cost of a whole study, from its config and measured throughputs.

Stages and their work (every count from the config, the split's sizes from `StudyFacts`):

- GAN training: total_kimg * 1000 images at the GAN's training img/s (PGAN at its final resolution's
  speed for the whole run: an upper bound, its early low-resolution phases are cheaper);
- checkpoint selection: per snapshot of snapshot_schedule, fid.n_images generated images and their
  features (the FID Inception network; with fid.second_metric also the ancillary classifier's plain
  forward pass), plus the real images' features once, and for a GAN with a latent fid.noise_seeds - 1
  more FIDs at the chosen snapshot and one for the quality metrics;
- pool: pool.n_per_class x 2 images (StyleGAN2, PGAN) or every masked training image x
  pool.copies_per_mask (pix2pixHD, SPADE), generated, then scored by the ancillary classifier;
- the ancillary classifier and experiments x replicates classifier trainings: per epoch the training
  set (its size from ganaug.design's counts, a translation GAN's share capped at its label maps when
  sampling.translation_images is one_per_mask, as trainsets.sample_experiment does) at training img/s,
  and the validation set at plain-forward img/s. Epochs: early stopping ends a run
  early_stopping_patience epochs after its best one; the best epoch is an assumption (`best_epoch`,
  the paper reports none), so the expected length is min(epochs, best_epoch + patience); the upper
  bound (every run all `epochs`) is reported beside it;
- evaluation: every model on every test set, tta forward passes per image.

Wall time on N GPUs: the independent jobs packed perfectly, but no job split (a GAN's training runs on
`gan_gpus` GPUs, linear scaling assumed): max(total GPU-hours / N, the critical path), the critical path
being the longest GAN chain (training, selection, pool, scores) followed by the longest classifier
training and the longest evaluation job. CPU-only stages (image decoding, pHash, statistics) are not
counted.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path

import pandas as pd

from ganaug.design import build_experiments, counts
from ganaug.gans import BUILTIN, CONDITIONING, conditioning, expand_gan, gan_settings
from ganaug.io import InputError

# The study's split (config/paper.yaml: split.expected; ganaug.design: 11,684 benign / 3,121 melanoma;
# 2,594 training images with ISIC 2018 masks), used when the data has not been prepared yet.
PAPER_TRAIN = {0: 11684, 1: 3121}
PAPER_VAL = 1931
PAPER_MASKED = 2594
DEFAULT_BEST_EPOCH = 10


@dataclass
class StudyFacts:
    """Sizes the cost depends on that the config alone may not state."""

    train: dict  # class -> training images
    val: int
    masked: int  # training images with a label map (the translation GANs' training set)
    tests: dict  # test set -> images
    sources: list = field(default_factory=list)


def study_facts(config: dict, results_dir="results", masked: int | None = None) -> StudyFacts:
    """The split's sizes: from the prepared data (results/data/splits, results/data/testsets) when there,
    else the study's published counts when the config is the paper's split, else an InputError."""
    results = Path(results_dir)
    sources = []
    train_csv, val_csv = results / "data/splits/train.csv", results / "data/splits/val.csv"
    expected = (config.get("split") or {}).get("expected") or {}
    if train_csv.exists() and val_csv.exists():
        labels = pd.read_csv(train_csv)["label"]
        train = {c: int((labels == c).sum()) for c in (0, 1)}
        val = len(pd.read_csv(val_csv))
        sources.append(f"split sizes from {train_csv} and {val_csv}")
    elif expected.get("train") == sum(PAPER_TRAIN.values()):
        train, val = dict(PAPER_TRAIN), int(expected.get("val", PAPER_VAL))
        sources.append("split sizes: the study's published split (11,684 benign + 3,121 melanoma, "
                       f"validation {val:,})")
    else:
        raise InputError(f"cost: the training split's class counts are unknown: prepare the data first "
                         f"({train_csv}) or use the paper's split (split.expected.train: 14805)")
    if masked is None:
        if expected.get("train") == sum(PAPER_TRAIN.values()):
            masked = PAPER_MASKED
            sources.append(f"{masked:,} masked training images (the ISIC 2018 Task 1/2 masks of the study)")
        else:
            masked = sum(train.values())
            sources.append("masked training images unknown: every training image assumed masked")
    tests = {}
    for name, ts in (config.get("testsets") or {}).items():
        csv = results / f"data/testsets/{name}.csv"
        if (ts or {}).get("expected"):
            tests[name] = int(ts["expected"])
        elif csv.exists():
            tests[name] = len(pd.read_csv(csv))
        else:
            raise InputError(f"cost: testsets.{name}: no `expected` count and no {csv}")
    sources.append("test sets: " + ", ".join(f"{k} {v:,}" for k, v in tests.items()))
    return StudyFacts(train, int(val), int(masked), tests, sources)


def _gans_used(experiments) -> list[str]:
    """The trained generators the experiments use (an external pool costs no GPU time)."""
    used = {g for e in experiments for g in expand_gan(e.gan)}
    return [g for g in BUILTIN if g in used]


def trainset_sizes(config: dict, facts: StudyFacts) -> dict:
    """Experiment id -> images in its training set (every replicate has the same counts)."""
    from ganaug.trainsets import allocate

    experiments = build_experiments(config["experiments"], config.get("gans"))
    capped = (config.get("sampling") or {}).get("translation_images", "one_per_mask") == "one_per_mask"
    n_train = sum(facts.train.values())
    # a translation GAN's maps per class: the masked images, split as the training set's classes are
    mask_capacity = {c: round(Fraction(facts.masked * facts.train[c], n_train)) for c in (0, 1)}
    out = {}
    for e in experiments:
        c = counts(e.ratio, facts.train)
        real = sum(c["real"].values())
        wanted = c["synthetic"]
        if not e.gan:
            out[e.id] = real
            continue
        gans = expand_gan(e.gan)
        caps = [mask_capacity if capped and conditioning(g, config.get("gans")) == "mask"
                else {0: float("inf"), 1: float("inf")}
                for g in gans]
        out[e.id] = real + sum(sum(share.values()) for share in allocate(wanted, caps))
    return out


def _hours(images, rate):
    if rate is None or rate <= 0:
        return None
    return images / rate / 3600.0


def _stage(stage, detail, jobs, hours, longest=None, precision=None):
    return {"stage": stage, "detail": detail, "jobs": jobs, "gpu_hours": hours,
            "longest_job_hours": hours / jobs if longest is None and hours is not None and jobs else longest,
            "precision": precision}


def study_cost(config: dict, rates: dict, facts: StudyFacts, gpus: int = 1,
               best_epoch: int = DEFAULT_BEST_EPOCH, gan_gpus: int = 1) -> dict:
    """GPU-hours per stage and the wall time on `gpus` GPUs (module doc).

    rates: {"gans": {gan: {"train_img_s", "gen_img_s", "precision"}}, "classifier": {"train_img_s",
    "tta_passes_s", "eval_img_s", "precision"}, "fid_features_img_s": x}; a missing rate leaves its
    stages without hours (and the totals marked incomplete)."""
    from ganaug.fid import fid_settings
    from ganaug.gans.snapshots import snapshot_schedule

    if gpus < 1 or gan_gpus < 1:
        raise InputError(f"cost: --gpus and --gan-gpus must be >= 1, got {gpus}, {gan_gpus}")
    experiments = build_experiments(config["experiments"], config.get("gans"))
    reps = int(config.get("replicates", 1))
    ccfg = config.get("classifier") or {}
    epochs, patience = int(ccfg.get("epochs", 100)), int(ccfg.get("early_stopping_patience", 22))
    expected_epochs = min(epochs, int(best_epoch) + patience)
    tta = int(ccfg.get("tta", 0))
    fid = fid_settings(config.get("fid"))
    pool = config.get("pool") or {}
    n_train = sum(facts.train.values())
    cls = rates.get("classifier") or {}
    c_train, c_eval, c_tta = cls.get("train_img_s"), cls.get("eval_img_s"), cls.get("tta_passes_s")
    c_prec = cls.get("precision")
    f_rate = rates.get("fid_features_img_s")
    stages, chains = [], []
    for g in _gans_used(experiments):
        gcfg = gan_settings(g).resolve_config(dict((config.get("gans") or {}).get(g) or {}))
        r = (rates.get("gans") or {}).get(g) or {}
        prec = r.get("precision")
        train_h = _hours(float(gcfg["total_kimg"]) * 1000, r.get("train_img_s"))
        stages.append(_stage(f"{g} training", f"{float(gcfg['total_kimg']):,g} kimg", 1, train_h,
                             precision=prec))
        images = facts.masked if CONDITIONING[g] == "mask" else n_train
        n = min(int(fid["n_images"]), images)
        snaps = len(snapshot_schedule(gcfg))
        extra = 1 + (int(fid["noise_seeds"]) - 1 if int(gcfg.get("z_dim", 1) or 0) > 0 else 0)
        per_image = []  # seconds per image of features, per feature network
        per_image.append(None if not f_rate else 1.0 / f_rate)
        if fid["second_metric"]:
            per_image.append(None if not c_eval else 1.0 / c_eval)
        feat_s = None if None in per_image else sum(per_image)
        gen_s = None if not r.get("gen_img_s") else 1.0 / r["gen_img_s"]
        fid_h = None if feat_s is None or gen_s is None else (
            n * feat_s + (snaps + extra) * n * (gen_s + feat_s)) / 3600.0
        stages.append(_stage(f"{g} checkpoint selection", f"{snaps} snapshots x {n:,} images (FID)", 1,
                             fid_h))
        pool_n = (images * int(pool.get("copies_per_mask", 1)) if CONDITIONING[g] == "mask"
                  else int(pool.get("n_per_class", 0)) * 2)
        pool_h = _hours(pool_n, r.get("gen_img_s"))
        stages.append(_stage(f"{g} pool", f"{pool_n:,} images", 1, pool_h, precision=prec))
        score_h = _hours(pool_n, c_eval)
        stages.append(_stage(f"{g} pool scores", f"{pool_n:,} images (ancillary classifier)", 1, score_h,
                             precision=c_prec))
        chain = [train_h if train_h is None else train_h / gan_gpus, fid_h, pool_h, score_h]
        chains.append(None if None in chain else sum(chain))

    def training_hours(images, n_epochs, runs=1):
        """n_epochs of `runs` trainings on `images` training images in all, each validating every epoch."""
        t, v = _hours(images, c_train), _hours(runs * facts.val, c_eval)
        return None if t is None or v is None else n_epochs * (t + v)

    anc_h = training_hours(n_train, expected_epochs)
    stages.append(_stage("ancillary classifier", f"{n_train:,} images x {expected_epochs} epochs", 1, anc_h,
                         precision=c_prec))
    sizes = trainset_sizes(config, facts)
    total_images = sum(sizes.values()) * reps
    runs = len(sizes) * reps
    cls_h = training_hours(total_images, expected_epochs, runs)
    longest_cls = training_hours(max(sizes.values()), expected_epochs)
    stages.append(_stage("classifier trainings",
                         f"{len(sizes)} experiments x {reps} replicates, {expected_epochs} epochs "
                         f"(best epoch {best_epoch} + patience {patience})", runs, cls_h, longest_cls,
                         precision=c_prec))
    passes_per_model = sum(facts.tests.values()) * max(tta, 1)
    eval_h = _hours(passes_per_model * runs, c_tta)
    stages.append(_stage("evaluation (TTA)", f"{runs} models x {sum(facts.tests.values()):,} test images x "
                         f"{tta} replicas", len(sizes), eval_h, precision=c_prec))
    known = [s["gpu_hours"] for s in stages]
    complete = None not in known
    total = sum(h for h in known if h is not None)
    upper_cls = training_hours(total_images, epochs, runs)
    critical = None
    if complete:
        critical = max([0.0] + chains) + longest_cls + eval_h / len(sizes)
        critical = max(critical, anc_h)
    wall = None if critical is None else max(total / gpus, critical)
    return {
        "stages": stages, "complete": complete, "total_gpu_hours": total if complete else None,
        "known_gpu_hours": total,
        "total_gpu_hours_all_epochs": None if not complete or upper_cls is None else
        total - cls_h - anc_h + upper_cls + training_hours(n_train, epochs),
        "gpus": gpus, "gan_gpus": gan_gpus, "critical_path_hours": critical, "wall_hours": wall,
        "assumptions": {
            "best_epoch": best_epoch, "expected_epochs": expected_epochs, "max_epochs": epochs,
            "classifier_runs": runs, "trainset_images": sizes, "facts": asdict(facts),
            "epochs_rule": "a run stops early_stopping_patience epochs after its best epoch; the best epoch "
                           "is assumed (the paper reports none)",
            "pgan": "timed at its final resolution for the whole run (an upper bound)",
            "wall": "max(total GPU-hours / gpus, critical path); independent jobs packed perfectly",
        },
    }
