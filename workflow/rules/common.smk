"""Config validation, the experiment table and input functions shared by every stage."""

import ast
import hashlib
import os
from fractions import Fraction
from pathlib import Path

from snakemake.utils import validate

# The library (src/ganaug) must be installed: `pip install -e .` (or the envs/ with --use-conda).
import ganaug
from ganaug.config_check import check_config, ConfigError
from ganaug.design import BASELINE_ID, application_order
from ganaug.external import listing_fingerprint, resolve_external
from ganaug.gans import abbreviation, conditioning, configured_generators, expand_gan, is_external


validate(config, "../schemas/config.schema.yaml")
try:
    # a cluster job re-loads the workflow to run one job: the deep checks ran at submission
    EXPERIMENTS = check_config(config, workdir=Path.cwd(), deep=workflow.is_main_process)
except ConfigError as e:
    raise ValueError(f"invalid configuration: {e}") from None
if workflow.is_main_process:  # the study as it will run, before anything runs (a dry run shows it too)
    from ganaug.summary import study_summary

    logger.info(f"ganaug study\n{study_summary(config, list(EXPERIMENTS.values()))}")

EXPERIMENT_IDS = list(EXPERIMENTS)
REPLICATES = list(range(config["replicates"]))
# one classifier-training job per replicate (1) or per experiment ("all"): per_replicate
REPLICATES_PER_JOB = config["replicates_per_job"]
TESTSETS = list(config["testsets"])
APPLICATIONS = [app for app in ("augmentation", "anonymization") if config["experiments"].get(app)]
# every generator the config can name: the built-in trainable ones and its external pools (kind: external)
GENERATORS = configured_generators(config["gans"])
EXTERNAL = {g: resolve_external(g, config["gans"]) for g in GENERATORS if is_external(g, config["gans"])}
TRAINED = [g for g in GENERATORS if g not in EXTERNAL]
GAN_SIZE = {gan: cfg.get("resolution", 256) for gan, cfg in config["gans"].items()}
GAN_SIZE.update({g: e["resolution"] for g, e in EXTERNAL.items()})
CLS_SIZE = config["classifier"]["cache_size"]
# used by evaluation, image loading or seeding (a param of its own), not by the training settings
EVAL_KEYS = ("tta", "cache_size", "common_random_numbers")
CLASSIFIER_TRAINING = {k: v for k, v in config["classifier"].items() if k not in EVAL_KEYS}
ANCILLARY_TRAINING = {
    k: v for k, v in {**config["classifier"], **config["ancillary"]}.items() if k not in EVAL_KEYS
}


wildcard_constraints:
    dataset=r"[A-Za-z0-9_\-]+",
    gan="|".join(GENERATORS),
    experiment=r"[A-Za-z0-9_\-]+",
    rep=r"\d+",
    size=r"\d+",
    part=r"(splits|testsets)/[A-Za-z0-9_\-]+",
    test_set=r"[A-Za-z0-9_\-]+",


_CODE_DIGESTS = {}


def _code_digest(path):
    """Digest of what a module does: its syntax tree without docstrings. Comments, docstrings and layout
    change no result, so an edit of only those re-runs nothing (on the paper's config, days of GANs)."""
    stat = path.stat()
    key = (str(path), stat.st_mtime_ns, stat.st_size)
    if key not in _CODE_DIGESTS:
        tree = ast.parse(path.read_bytes(), filename=str(path))
        for node in ast.walk(tree):
            body = getattr(node, "body", None)
            if isinstance(body, list) and body and isinstance(body[0], ast.Expr) \
                    and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
                node.body = body[1:] or [ast.Pass()]
        _CODE_DIGESTS[key] = hashlib.sha256(ast.dump(tree).encode()).digest()
    return _CODE_DIGESTS[key]


def code_version(*modules):
    """Hash of the library code a job depends on. Snakemake does not see changes inside a package,
    so this goes into the rule's params and a change to the code re-runs the rule. `io` (seeds, image and
    checkpoint reading) counts for every job; ganaug.progress and ganaug.gpu_slots (logging, threads, the
    choice of device) are left out on purpose: they change no result, and an edit there must not re-run
    the study (tests/test_reruns.py)."""
    h = hashlib.sha256()
    root = Path(ganaug.__file__).parent
    for mod in ("io",) + modules:
        path = root / mod
        files = sorted(path.rglob("*.py")) if path.is_dir() else [path.with_suffix(".py")]
        for f in files:
            h.update(f.relative_to(root).as_posix().encode() + _code_digest(f))
    return h.hexdigest()[:16]


def cache_file(part, size):
    return f"results/data/cache/{part}_{size}px.npy"


def mask_cache_files(part, size):
    return {
        "masks": f"results/data/cache/{part}_{size}px_masks.npy",
        "mask_rows": f"results/data/cache/{part}_{size}px_masks.csv",
    }


def gan_data(wildcards):
    """The real training data of a GAN: images at its resolution (+ label maps for a translation GAN)."""
    size = GAN_SIZE.get(wildcards.gan, 256)
    inputs = {"csv": "results/data/splits/train.csv", "images": cache_file("splits/train", size)}
    if conditioning(wildcards.gan, config["gans"]) == "mask":
        inputs.update(mask_cache_files("splits/train", size))
    return inputs


def gan_masks(wildcards):
    """The training label maps a translation GAN's pool is generated from (none for the others)."""
    if conditioning(wildcards.gan, config["gans"]) != "mask":
        return {}
    return mask_cache_files("splits/train", GAN_SIZE.get(wildcards.gan, 256))


# library code of each GAN beyond the shared loop, for code_version
GAN_CODE = {
    "stylegan2": ("gans/stylegan2", "gans/settings/stylegan2", "gans/layers", "gans/augment"),
    "pgan": ("gans/pgan", "gans/settings/pgan", "gans/layers"),
    "pix2pixhd": ("gans/pix2pixhd", "gans/settings/pix2pixhd", "gans/translation", "gans/settings/translation",
                  "masks", "weights"),
    "spade": ("gans/spade", "gans/settings/spade", "gans/translation", "gans/settings/translation", "masks",
              "weights"),
    "diffusion": ("gans/diffusion", "gans/settings/diffusion", "gans/diffusion_unet"),
}


def gan_code(*modules):
    """code_version of a GAN's own modules + the shared GAN code + `modules`, as a params function."""
    shared = ("gans/__init__", "gans/training", "gans/snapshots", "gans/data", "gans/distributed", "gans/launch",
              "gans/accel", "gans/settings/__init__")
    return lambda w: code_version(*shared, *GAN_CODE[w.gan], *modules)


def gans_used(experiment_id):
    return expand_gan(EXPERIMENTS[experiment_id].gan)


def all_gans():
    return sorted({g for e in EXPERIMENTS for g in gans_used(e)})


def trained_pattern():
    """Wildcard constraint of the rules that train a generator or use its snapshots (not external pools)."""
    return "|".join(TRAINED)


def external_pattern():
    """Wildcard constraint of the rules of external pools (matches nothing when the config declares none)."""
    return "|".join(EXTERNAL) or "^$"


def external_experiments(wildcards):
    """What import_pool needs of the design: the experiments drawing from this pool (their ratios)."""
    return [EXPERIMENTS[e].data_dict() for e in EXPERIMENT_IDS if EXPERIMENTS[e].gan == wildcards.gan]


def gan_labels():
    """Each used generator's abbreviation (the label in gan_fid.csv)."""
    return {g: abbreviation(g, config["gans"]) for g in all_gans()}


def gan_table_file():
    return ["results/gan_fid.csv"] if all_gans() else []


def fid_inception_weights(wildcards=None):
    """The record of the FID Inception weights (made by fid_weights, gan.smk) when the config sets them: the
    selection metric or the second one uses them."""
    return ["results/cache/fid_inception_weights.json"] if (config.get("fid") or {}).get("inception_weights") else []


def samples_using_gan(wildcards):
    return [f"results/samples/{e}.csv" for e in EXPERIMENT_IDS if wildcards.gan in gans_used(e)]


def analysis_files():
    """Everything the study reports: AUCs, paired statistics and tables, figures, GAN table, audit."""
    files = ["results/auc.csv", "results/stats.csv", "results/tables/design.csv", *table_files(), *figure_files()]
    if all_gans():
        files += ["results/gan_fid.csv", "results/audit/summary.csv"]
    return files


def testset_source(wildcards):
    spec = config["testsets"][wildcards.test_set]
    if "split" in spec:
        return "results/data/splits/test.csv"
    return f"results/data/index/{spec['dataset']}.csv"


def split_inputs(wildcards):
    inputs = {"index": f"results/data/index/{config['split']['dataset']}.csv"}
    if config["split"].get("lists"):
        # the list files: paths as given, or downloaded from split.list_source (LIST_SOURCES, data.smk)
        inputs.update({f"list_{k}": LIST_SOURCES[f"split.lists.{k}"]["path"] for k in config["split"]["lists"]})
    return inputs


def checked_lists(prefix):
    """{key: spec} of the split lists downloaded or given as `local` copies (CHECKED_LISTS, data.smk) whose
    config key starts with prefix: the job reading them checks their sha256 first."""
    return {k: s for k, s in CHECKED_LISTS.items() if k.startswith(prefix)}


def checked_list_param(prefix):
    """Params {lists: ...} for a rule reading checked list files; none otherwise (no new param, no re-run)."""
    found = checked_lists(prefix)
    return {"lists": found} if found else {}


def pool_manifests(wildcards):
    return [f"results/pools/{g}/manifest.csv" for g in gans_used(wildcards.experiment)]


def trainset_inputs(wildcards):
    inputs = {"train": "results/data/splits/train.csv"}
    # the authors' published real subset of this fraction and replicate, when configured: real_list_<rep>
    lists = {Fraction(f.replace("-", "/")): files for f, files in REDUCED_FILES.items()}
    files = lists.get(EXPERIMENTS[wildcards.experiment].ratio.real, [])
    for rep in job_replicates(wildcards):
        if rep < len(files):
            inputs[f"real_list_{rep}"] = files[rep]
    if EXPERIMENTS[wildcards.experiment].gan is not None:
        inputs["synthetic"] = f"results/samples/{wildcards.experiment}.csv"
    return inputs


def experiment_params(wildcards):
    # what decides the experiment's data only: a change of figure layout re-runs no sampling or training
    return EXPERIMENTS[wildcards.experiment].data_dict()


def per_replicate(pattern):
    """A path pattern with {experiment} and {rep} as a list for a rule whose job runs one replicate
    (`replicates_per_job: 1`: [pattern]) or every replicate of an experiment (`all`: the files of every
    replicate, {experiment} the job's only wildcard). The files are the same either way."""
    if REPLICATES_PER_JOB == "all":
        return expand(pattern.replace("{experiment}", "{{experiment}}"), rep=REPLICATES)
    return [pattern]


def job_replicates(wildcards):
    """The replicates a job of a per_replicate rule runs."""
    return [int(wildcards.rep)] if "rep" in wildcards.keys() else REPLICATES


def per_replicate_benchmark(stem):
    """The benchmark file of a per_replicate rule's job: one per replicate, or one per experiment."""
    return f"{stem}/{{experiment}}/rep{{rep}}.tsv" if REPLICATES_PER_JOB == 1 else f"{stem}/{{experiment}}.tsv"


def gan_priority(wildcards):
    """Jobs of a GAN's chain (training, checkpoint selection, pool) go first the more experiments wait for the
    GAN: on few cores the most used GAN (StyleGAN2, 19 of the 27) is the critical path."""
    return 10 + sum(wildcards.gan in gans_used(e) for e in EXPERIMENT_IDS)


def run_outputs(files):
    return [f"results/runs/{e}/rep{r}/{f}" for e in EXPERIMENT_IDS for r in REPLICATES for f in files]


def prediction_files():
    return [
        f"results/runs/{e}/rep{r}/predictions/{t}.csv" for e in EXPERIMENT_IDS for r in REPLICATES for t in TESTSETS
    ]


def table_files():
    return [
        f"results/tables/{app}_{t}.{ext}" for app in APPLICATIONS for t in TESTSETS for ext in ("csv", "md", "tex")
    ]


def figure_files():
    return [
        f"results/figures/{app}_{t}.{ext}" for app in APPLICATIONS for t in TESTSETS for ext in ("png", "pdf")
    ]


def check_resource_overrides():
    """A profile's `set-resources` / `set-threads` (or --set-resources / --set-threads) naming no rule of this
    workflow: Snakemake ignores such an entry silently, so a typo (train_gans) would quietly run the job with
    the wrong partition, memory or GPU. Runs once every rule (also the per-file download rules) is defined."""
    import difflib

    from snakemake.exceptions import WorkflowError

    rs = workflow.resource_settings
    named = set(rs.overwrite_resources or {}) | set(rs.overwrite_threads or {})
    rules = {r.name for r in workflow.rules}
    unknown = sorted(named - rules)
    if unknown:
        hints = [f"{u!r}" + "".join(f" (did you mean {c!r}?)" for c in difflib.get_close_matches(u, rules, 1))
                 for u in unknown]
        raise WorkflowError(f"set-resources / set-threads (profile or command line) name no rule of this "
                            f"workflow: {', '.join(hints)}. The rules are: {', '.join(sorted(rules))}.")


# Snakemake calls workflow.check() once the Snakefile and every include are parsed (before any DAG, also in a
# dry run): the check goes there, since rules defined after this file are unknown here.
_snakemake_check = workflow.check
workflow.check = lambda: (_snakemake_check(), check_resource_overrides())
