"""Checks of a study configuration beyond its JSON schema, run before any job starts.

Each problem is reported with the config key it concerns, e.g.
`experiments.augmentation[3].sampling: unknown sampling method 'best-ish' (known: random, diverse, best, worst)`.
"""

from __future__ import annotations

from pathlib import Path

from ganaug.io import InputError


class ConfigError(InputError):
    pass


def check_config(config: dict, workdir: Path | str = ".") -> dict:
    """Validate cross-references, names and paths; return the experiment table {id: Experiment}."""
    from ganaug.classifier.models import validate_model_name
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

    split = config["split"]
    if split["dataset"] not in datasets:
        problems.append(f"split.dataset: unknown dataset '{split['dataset']}' (declared: {', '.join(datasets)})")
    fr = split["fractions"]
    if abs(fr["train"] + fr["val"] + fr["test"] - 1) > 1e-6:
        problems.append(f"split.fractions: train + val + test must be 1, got {fr['train'] + fr['val'] + fr['test']:g}")
    for part, path in (split.get("lists") or {}).items():
        if not (workdir / path).is_file():
            problems.append(f"split.lists.{part}: file not found: {path}")

    for name, ts in config["testsets"].items():
        if "dataset" in ts and ts["dataset"] not in datasets:
            problems.append(f"testsets.{name}.dataset: unknown dataset '{ts['dataset']}' (declared: {', '.join(datasets)})")
        if "dataset" in ts and ts["dataset"] == split["dataset"]:
            problems.append(
                f"testsets.{name}.dataset: '{ts['dataset']}' is the split dataset; use {{split: test}} for its "
                "held-out part (its other images are training data)"
            )

    for key in ("classifier", "ancillary"):
        model = config.get(key, {}).get("model")
        if model is not None:
            try:
                validate_model_name(model, key=f"{key}.model")
            except InputError as e:
                problems.append(str(e))

    experiments = {}
    try:
        experiments = {e.id: e for e in build_experiments(config["experiments"])}
    except InputError as e:
        problems.append(str(e))
    if not experiments and not problems:
        problems.append("experiments: no experiment declared")
    problems += _check_gans(config, experiments)

    if problems:
        raise ConfigError("\n  ".join([""] + problems))
    return experiments


def _check_gans(config: dict, experiments: dict) -> list[str]:
    """Every GAN the design uses is implemented and its settings resolve (unknown keys, bad values)."""
    from ganaug.gans import GAN_NAMES, gan_module

    used = set()
    for e in experiments.values():
        if e.gan is not None:
            used |= set(GAN_NAMES) if e.gan == "all" else {e.gan}
    problems = []
    for gan in sorted(used):
        try:
            gan_module(gan).resolve_config(dict(config.get("gans", {}).get(gan) or {}))
        except InputError as e:
            problems.append(str(e) if str(e).startswith("gans.") else f"gans.{gan}: {e}")
    return problems
