"""Checks of a study configuration beyond its JSON schema, run before any job starts.

Each problem is reported with the config key it concerns, e.g.
`experiments.augmentation[3].sampling: unknown sampling method 'best-ish' (known: random, diverse, best, worst)`.
"""

from __future__ import annotations

from pathlib import Path

from ganaug.io import InputError


class ConfigError(InputError):
    pass


def check_config(config: dict, workdir: Path | str = ".", deep: bool = True) -> dict:
    """Validate cross-references, names and paths; return the experiment table {id: Experiment}.

    deep=False skips the checks a cluster job need not repeat (model names, GAN settings, external pools'
    listings): it loads the workflow again only to run one job of a configuration already checked at
    submission. None of the checks imports torch or timm (about 2 s of CPU each, in every Snakemake
    invocation): tests/test_config_check_imports.py."""
    from ganaug.design import build_experiments

    workdir = Path(workdir)
    problems: list[str] = []
    datasets = config["datasets"]

    for name, ds in datasets.items():
        if ds["kind"] == "index":
            if "path" not in ds:
                problems.append(f"datasets.{name}.path: required for kind 'index' (a CSV with image,label,...)")
            elif not (workdir / ds["path"]).is_file():
                problems.append(f"datasets.{name}.path: file not found: {ds['path']}")
        if ds["kind"] == "toyderm":
            for key in ("n", "melanoma_fraction"):
                if key not in ds:
                    problems.append(f"datasets.{name}.{key}: required for kind 'toyderm'")
    problems += _check_real_datasets(config, workdir)

    split = config["split"]
    if split["dataset"] not in datasets:
        problems.append(f"split.dataset: unknown dataset '{split['dataset']}' (declared: {', '.join(datasets)})")
    fr = split["fractions"]
    if abs(fr["train"] + fr["val"] + fr["test"] - 1) > 1e-6:
        problems.append(f"split.fractions: train + val + test must be 1, got {fr['train'] + fr['val'] + fr['test']:g}")
    problems += _check_lists(config, workdir)

    for name, ts in config["testsets"].items():
        if "dataset" in ts and ts["dataset"] not in datasets:
            problems.append(f"testsets.{name}.dataset: unknown dataset '{ts['dataset']}' (declared: {', '.join(datasets)})")
        if "dataset" in ts and ts["dataset"] == split["dataset"]:
            problems.append(
                f"testsets.{name}.dataset: '{ts['dataset']}' is the split dataset; use {{split: test}} for its "
                "held-out part (its other images are training data)"
            )

    for key in ("classifier", "ancillary") if deep else ():
        model = config.get(key, {}).get("model")
        if model is not None:
            from ganaug.classifier.names import validate_model_name

            try:
                validate_model_name(model, key=f"{key}.model")
            except InputError as e:
                problems.append(str(e))

    problems += _check_fid(config.get("fid"), workdir)
    problems += _check_generators(config, workdir, deep)

    experiments = {}
    try:
        experiments = {e.id: e for e in build_experiments(config["experiments"], config.get("gans"))}
    except InputError as e:
        problems.append(str(e))
    if not experiments and not problems:
        problems.append("experiments: no experiment declared")
    if deep:
        problems += _check_gans(config, experiments, workdir)

    if problems:
        raise ConfigError("\n  ".join([""] + problems))
    return experiments


def _check_fid(fid_cfg, workdir: Path) -> list[str]:
    """The FID settings (features, Inception weights, tolerance): named keys, a local weights file present."""
    from ganaug.fid import fid_settings

    try:
        fid = fid_settings(fid_cfg)
    except InputError as e:
        return [str(e)]
    local = (fid["inception_weights"] or {}).get("local")
    if local and not (workdir / local).is_file():
        return [f"fid.inception_weights.local: file not found: {local}"]
    return []


def _check_gans(config: dict, experiments: dict, workdir: Path) -> list[str]:
    """Every GAN the design uses is implemented and its settings resolve (unknown keys, bad values)."""
    from ganaug.gans import conditioning, expand_gan, gan_settings, is_external

    gans = config.get("gans") or {}
    used = {g for e in experiments.values() for g in expand_gan(e.gan)}
    problems = []
    for gan in sorted(used):
        if is_external(gan, gans):  # checked by _check_generators
            continue
        try:
            gan_settings(gan).resolve_config(dict(config.get("gans", {}).get(gan) or {}))
        except InputError as e:
            problems.append(str(e) if str(e).startswith("gans.") else f"gans.{gan}: {e}")
    translators = sorted(g for g in used if conditioning(g, gans) == "mask")
    train = config["datasets"].get(config["split"]["dataset"], {})
    if translators and train.get("kind") == "index" and (workdir / train.get("path", "")).is_file():
        import pandas as pd

        columns = pd.read_csv(workdir / train["path"], nrows=0).columns
        if "mask" not in columns:
            problems.append(f"gans.{translators[0]}: translates label maps into images, but the training dataset "
                            f"{config['split']['dataset']} ({train['path']}) has no 'mask' column")
    return problems


def _check_generators(config: dict, workdir: Path, deep: bool) -> list[str]:
    """The `gans` entries: names, kinds and abbreviations; every external pool's keys; with `deep`, the
    listing of each external pool an experiment uses (path present, class folders or index columns, labels,
    files present: ganaug.external.read_pool_listing). Decoding, sizes and counts are import_pool's checks."""
    from ganaug.external import read_pool_listing, resolve_external
    from ganaug.gans import check_generator_names, is_external

    gans = config.get("gans") or {}
    problems = check_generator_names(gans)
    if problems:
        return problems
    used = {e.get("gan") for app in (config.get("experiments") or {}).values() for e in (app or [])
            if isinstance(e, dict)}
    for name in gans:
        if not is_external(name, gans):
            continue
        try:
            entry = resolve_external(name, gans)
            if deep and name in used:
                read_pool_listing(entry["path"], workdir, key=f"gans.{name}.path")
        except InputError as e:
            problems.append(str(e))
    return problems


# keys of a dataset that only some kinds use
_REAL_KEYS = {
    "data_dir": ("isic2019", "isic2020"),
    "files": ("isic2019", "isic2020"),
    "masks": ("isic2019",),
    "list": ("isic2020", "derm7pt", "derm7pt_clinic", "dermofit"),
    "subset": ("isic2020",),
    "near_duplicate_bits": ("derm7pt", "derm7pt_clinic"),
    "check_counts": ("derm7pt", "derm7pt_clinic", "dermofit"),
    "on_bad_image": ("index", "isic2019", "isic2020", "derm7pt", "derm7pt_clinic", "dermofit"),
}


def _check_real_datasets(config: dict, workdir: Path) -> list[str]:
    """Keys of the real datasets: used by their kind, local copies and lists present, label maps for the
    translation GANs, the authors' reduced lists. Hand-placed releases are checked by a job, not here, so
    that a dry run works before they are in place."""
    from fractions import Fraction

    from ganaug.data import sources
    from ganaug.data.splits import fraction_id

    problems = []
    for name, ds in config["datasets"].items():
        kind = ds["kind"]
        for key, kinds in _REAL_KEYS.items():
            if key in ds and kind not in kinds:
                only = ", ".join(kinds)
                problems.append(f"datasets.{name}.{key}: not used by kind '{kind}' (only {only})")
        if kind in sources.MANUAL_KINDS and not ds.get("path"):
            problems.append(f"datasets.{name}.path: required for kind '{kind}': the folder where you place "
                            "the release (it must be obtained by hand)")
        if kind in sources.PUBLIC_FILES:
            try:
                specs = sources.sources(name, ds)
            except InputError as e:
                problems.append(str(e))
                specs = {}
            for role, spec in specs.items():
                if spec["local"] and not (workdir / spec["local"]).exists():
                    problems.append(f"datasets.{name}.files.{role}.local: not found: {spec['local']}")
    split = config["split"]
    train = config["datasets"].get(split["dataset"], {})
    gans = {e.get("gan") for app in config.get("experiments", {}).values() for e in (app or [])}
    translators = sorted(gans & {"pix2pixhd", "spade", "all"})
    if translators and train.get("kind") == "isic2019" and not train.get("masks"):
        problems.append(f"datasets.{split['dataset']}.masks: the design uses {translators[0]} (label map -> "
                        "image); set masks: true to build label maps from the ISIC 2018 Task 1/2 masks")
    for frac, paths in (split.get("reduced_lists") or {}).items():
        try:
            fraction_id(frac)
            if not 0 < Fraction(str(frac)) <= 1:
                raise ValueError
        except (InputError, ValueError, ZeroDivisionError):
            problems.append(f"split.reduced_lists.{frac}: not a fraction in (0, 1] like 1/4")
        if len(paths) < int(config.get("replicates", 1)):
            problems.append(f"split.reduced_lists.{frac}: {len(paths)} list(s) for {config.get('replicates')} "
                            "replicates; give one per replicate (replicate r uses list r)")
    return problems


def _check_lists(config: dict, workdir: Path) -> list[str]:
    """The split lists (paths present; files to download well formed: file or url, sha256, a base URL) and
    the expected counts (split.expected: train, val, test or a fraction of split.reduced_lists)."""
    from ganaug.data.split_lists import list_sources

    problems = []
    try:
        specs = list_sources(config)
    except InputError as e:
        return [str(e)]
    for key, spec in specs.items():
        if spec["url"] is None and not (workdir / spec["path"]).is_file():
            problems.append(f"{key}: file not found: {spec['path']}")
        elif spec["local"] and not (workdir / spec["local"]).exists():
            problems.append(f"{key}: local copy not found: {spec['local']}")
    split = config["split"]
    reduced = {str(f) for f in (split.get("reduced_lists") or {})}
    for part in split.get("expected") or {}:
        if part not in ("train", "val", "test") and str(part) not in reduced:
            problems.append(f"split.expected.{part}: not a part (train, val, test) or a fraction of "
                            f"split.reduced_lists ({', '.join(sorted(reduced)) or 'none given'})")
    return problems
