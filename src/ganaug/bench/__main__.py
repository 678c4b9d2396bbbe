"""python -m ganaug.bench: measure the study's GPU work and predict its cost (see ganaug.bench).

    python -m ganaug.bench                            # config/paper.yaml on the default device
    python -m ganaug.bench --quick                    # small sizes: checks the harness on a CPU in < 1 min
    python -m ganaug.bench --compare-commit 2654405   # the same measurements with an old commit's code
    python -m ganaug.bench --only cost --from results/bench/bench.json --gpus 8
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import yaml

from ganaug.io import InputError, write_json

from . import measure
from .cost import DEFAULT_BEST_EPOCH, study_cost, study_facts
from .report import cost_table, throughput_tables

GROUPS = ("gans", "classifier", "fid", "cost")
PRECISIONS = ("fp32", "bf16")
SRC = Path(__file__).resolve().parents[2]  # the src folder this package is in

# --quick: networks and images small enough for a CPU; widths only where the GAN has the key
QUICK_GAN = {"resolution": 32, "channel_base": 256, "channel_max": 32, "z_dim": 32, "w_dim": 32,
             "mapping_layers": 2, "ngf": 8, "ndf": 8, "n_blocks": 1, "n_downsample": None, "spade_hidden": 16}
QUICK_CLASSIFIER = {"model": "ganaug:resnet", "model_kwargs": {"channels": [8, 16, 16, 24], "stem_width": 8},
                    "pretrained": False, "cache_size": 32, "input_size": 32, "batch_size": 8,
                    "eval_batch_size": 16}


def merge_config(base: dict, overlay: dict) -> dict:
    """`overlay` over `base` as Snakemake merges --configfile files: mappings key by key, anything else
    (lists included) replaced."""
    out = dict(base)
    for k, v in overlay.items():
        out[k] = merge_config(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def gans_to_measure(config: dict, only_gans) -> list[str]:
    from ganaug.design import build_experiments
    from ganaug.gans import BUILTIN, expand_gan

    if only_gans:
        unknown = sorted(set(only_gans) - set(BUILTIN))
        if unknown:
            raise InputError(f"--gans: unknown generator(s) {unknown} (known: {', '.join(BUILTIN)})")
        return list(only_gans)
    exps = build_experiments(config["experiments"], config.get("gans"))
    used = {g for e in exps for g in expand_gan(e.gan)}
    return [g for g in BUILTIN if g in used]  # trained generators: an external pool has nothing to time


def build_tasks(config: dict, args, device: str) -> list[dict]:
    """One task per (what, precision), in measurement order."""
    # tiny work on a CPU: more threads only contend
    threads = args.threads or (1 if args.quick and device == "cpu" else None)
    common = {"device": device, "threads": threads, "repeat": args.repeat}
    q = args.quick
    warmup = args.warmup if args.warmup is not None else (1 if q else 5)
    tasks = []
    if "gans" in args.only:
        for gan in gans_to_measure(config, args.gans):
            cfg = dict((config.get("gans") or {}).get(gan) or {})
            over = {}
            if q:  # and no rounding of the timed steps up to the lazy regularisation intervals
                over = dict(QUICK_GAN, batch=min(int(cfg.get("batch", 4)), 4))
            for p in PRECISIONS:
                tasks.append({**common, "kind": "gan", "gan": gan, "cfg": cfg, "overrides": over,
                              "precision": p, "warmup": warmup, "steps": args.steps or (2 if q else 16),
                              "whole_intervals": not q,
                              "gen_batch": 4 if q else 256, "gen_images": 8 if q else 1024,
                              "key": ["gans", gan, p]})
    if "classifier" in args.only:
        cfg = dict(config.get("classifier") or {})
        for k in ("tta", "cache_size", "common_random_numbers"):  # the workflow's, not train_classifier's
            cfg.pop(k, None)
        over = dict(QUICK_CLASSIFIER) if q else {}
        ccfg = config.get("classifier") or {}
        cache = int(over.get("cache_size") or ccfg.get("cache_size") or ccfg.get("input_size") or 299)
        tta = int(ccfg.get("tta") or 0)
        eval_batch = int(over.get("eval_batch_size") or cfg.get("eval_batch_size") or 256)
        for p in PRECISIONS:
            tasks.append({**common, "kind": "classifier", "cfg": cfg, "overrides": over, "precision": p,
                          "cache_size": cache,
                          "warmup": warmup, "steps": args.steps or (3 if q else 20),
                          "tta": 4 if q else max(tta, 1), "tta_batch": 16 if q else 256,
                          "tta_images": 8 if q else 128, "eval_batch": eval_batch,
                          "key": ["classifier", p]})
    if "fid" in args.only:
        tasks.append({**common, "kind": "fid", "resolution": 32 if q else 256, "batch": 2 if q else 64,
                      "images": 2 if q else 512, "key": ["fid"]})
    return tasks


def _place(measurements: dict, key: list, result: dict) -> None:
    node = measurements
    for k in key[:-1]:
        node = node.setdefault(k, {})
    node[key[-1]] = result


def run_subprocess(task: dict, src: Path) -> tuple[dict, dict]:
    """One task in a fresh Python whose `ganaug` is the one in `src` (the same harness file)."""
    with tempfile.TemporaryDirectory(prefix="ganaug-bench-") as d:
        tasks_json, result_json = Path(d) / "tasks.json", Path(d) / "result.json"
        tasks_json.write_text(json.dumps([task]))
        env = dict(os.environ, PYTHONPATH=str(src))
        proc = subprocess.run([sys.executable, measure.__file__, str(tasks_json), str(result_json)], env=env,
                              capture_output=True, text=True)
        if proc.returncode != 0 or not result_json.exists():
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
            return {"status": "error", "error": f"measurement process failed ({proc.returncode}): "
                    + " / ".join(tail)}, {}
        out = json.loads(result_json.read_text())
        return out["results"][0], out["environment"]


def export_commit(rev: str, dest: Path) -> Path:
    """The src folder of commit `rev` of this repository, exported (git archive) into dest."""
    top = subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=SRC, capture_output=True, text=True)
    if top.returncode != 0:
        raise InputError(f"--compare-commit: {SRC} is not in a git repository ({top.stderr.strip()})")
    arch = subprocess.run(["git", "archive", "--format=tar", rev, "src"], cwd=top.stdout.strip(),
                          capture_output=True)
    if arch.returncode != 0:
        raise InputError(f"--compare-commit {rev}: {arch.stderr.decode().strip()}")
    with tarfile.open(fileobj=io.BytesIO(arch.stdout)) as tar:
        tar.extractall(dest, filter="data")
    return dest / "src"


def measure_all(tasks: list[dict], ref_src: Path | None, log=print) -> tuple[dict, dict]:
    """Measurements {"new": ..., "ref": ...?} and environments. Without a reference, in this process;
    with one, each task in a fresh process for either code, alternately (load drifts hit both alike)."""
    meas, envs = {"new": {}}, {}
    if ref_src is not None:
        meas["ref"] = {}
    with tempfile.TemporaryDirectory(prefix="ganaug-bench-") as workdir:
        for t in tasks:
            label = " ".join(map(str, t["key"]))
            why = measure.bf16_unavailable(t["device"], t.get("precision"))
            if why:  # known without starting anything
                for which in meas:
                    _place(meas[which], t["key"], {"status": "n/a", "reason": why})
                continue
            if ref_src is None:
                log(f"measuring {label} ...", file=sys.stderr)
                _place(meas["new"], t["key"], measure.run_task(t, workdir))
                envs.setdefault("new", measure.environment(t["device"]))
                continue
            for which, src in (("new", SRC), ("ref", ref_src)):
                log(f"measuring {label} ({which} code) ...", file=sys.stderr)
                res, env = run_subprocess(t, src)
                _place(meas[which], t["key"], res)
                if env:
                    envs.setdefault(which, env)
    return meas, envs


def rates_for_cost(measured: dict, config: dict) -> dict:
    """The throughputs the study would run at: bf16 where measured and the config does not ask for fp32."""
    def pick(by_prec, wanted):
        by_prec = by_prec or {}
        order = ("fp32",) if wanted == "fp32" else ("bf16", "fp32")
        for p in order:
            r = by_prec.get(p)
            if r and r.get("status") == "ok":
                return dict(r, precision=p)
        return {}

    gans = {g: pick(by_prec, ((config.get("gans") or {}).get(g) or {}).get("precision", "auto"))
            for g, by_prec in (measured.get("gans") or {}).items()}
    cls = pick(measured.get("classifier"), (config.get("classifier") or {}).get("precision", "auto"))
    fid = measured.get("fid") or {}
    return {"gans": gans, "classifier": cls,
            "fid_features_img_s": fid.get("features_img_s") if fid.get("status") == "ok" else None}


def _git_commit() -> str | None:
    r = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=SRC, capture_output=True, text=True)
    return r.stdout.strip() or None


def parse_args(argv):
    ap = argparse.ArgumentParser(prog="python -m ganaug.bench", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", nargs="+", default=["config/paper.yaml"],
                    help="the study's config, or a config and its overlays merged as Snakemake's --configfile "
                         "merges them, e.g. config/paper.yaml config/beyond.yaml (default: %(default)s)")
    ap.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:1, ...")
    ap.add_argument("--quick", action="store_true", help="small networks and images: checks the harness fast")
    ap.add_argument("--only", nargs="+", choices=GROUPS, default=list(GROUPS),
                    help="what to run (default: all)")
    ap.add_argument("--gans", nargs="+", default=None,
                    help="the GANs to measure (default: those the study uses)")
    ap.add_argument("--steps", type=int, default=None, help="timed steps (GANs: rounded up to the lazy "
                    "regularisation intervals; default 16, classifier 20; --quick 2 and 3)")
    ap.add_argument("--warmup", type=int, default=None, help="untimed steps first (default 5; --quick 1)")
    ap.add_argument("--repeat", type=int, default=1, help="repeat each measurement, keep the fastest")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (CPU comparisons: 1)")
    ap.add_argument("--gpus", type=int, default=1, help="GPUs for the predicted wall time")
    ap.add_argument("--gan-gpus", type=int, default=1,
                    help="GPUs per GAN training job (linear scaling assumed)")
    ap.add_argument("--best-epoch", type=int, default=DEFAULT_BEST_EPOCH,
                    help="assumed best epoch of a classifier run; it stops early_stopping_patience later "
                         "(default %(default)s; the paper reports none)")
    ap.add_argument("--masked", type=int, default=None, help="training images with label maps (default: the "
                    "study's 2,594 for the paper's split)")
    ap.add_argument("--results", default="results", help="where prepared data may give the split's sizes")
    ap.add_argument("--from", dest="from_json", default=None, help="take the measurements from an earlier "
                    "output JSON instead of measuring")
    ref = ap.add_mutually_exclusive_group()
    ref.add_argument("--compare-ref", default=None,
                     help="an old checkout's src folder: measured beside this code")
    ref.add_argument("--compare-commit", default=None, help="a commit of this repository (e.g. 2654405): its "
                     "src exported and measured beside this code")
    ap.add_argument("--out", default="results/bench/bench.json", help="JSON output (default: %(default)s)")
    return ap.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    import torch

    device = args.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    config = {}
    for path in map(Path, args.config):
        if not path.is_file():
            raise InputError(f"--config: {path} not found")
        config = merge_config(config, yaml.safe_load(path.read_text()) or {})
    config_path = " + ".join(args.config)
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    with tempfile.TemporaryDirectory(prefix="ganaug-bench-ref-") as tmp:
        ref_src, ref_label = None, None
        if args.compare_ref:
            ref_src, ref_label = Path(args.compare_ref).resolve(), str(Path(args.compare_ref).resolve())
            if not (ref_src / "ganaug").is_dir():
                raise InputError(f"--compare-ref: {ref_src} has no ganaug package "
                                 "(give the checkout's src folder)")
        elif args.compare_commit:
            ref_src = export_commit(args.compare_commit, Path(tmp))
            ref_label = f"commit {args.compare_commit}"
        if args.from_json:
            prior = json.loads(Path(args.from_json).read_text())
            meas, envs = prior["measurements"], prior.get("environment", {})
        else:
            tasks = build_tasks(config, args, device)
            meas, envs = measure_all(tasks, ref_src)
    notes = []
    if args.from_json:
        pm = prior.get("meta", {})
        notes.append(f"measurements read from {args.from_json} (run of {pm.get('date', '?')})"
                     + (f": {pm['note']}" if pm.get("note") else ""))
    env = envs.get("new") or {}
    on_gpu = str(env.get("device", device)).startswith("cuda")
    if not on_gpu:
        notes.append(f"measured on a CPU ({env.get('device_name', '?')}, {env.get('threads', '?')} threads): "
                     "these are not GPU figures")
    if args.quick or (args.from_json and prior.get("meta", {}).get("quick")):
        notes.append("--quick sizes (toy networks and images): the cost below uses their throughputs, so "
                     "it is NOT a prediction of the study's cost; it checks the harness")
    costs = {}
    if "cost" in args.only:
        facts = study_facts(config, args.results, args.masked)
        for which, m in meas.items():
            costs[which] = study_cost(config, rates_for_cost(m, config), facts, gpus=args.gpus,
                                      best_epoch=args.best_epoch, gan_gpus=args.gan_gpus)
        notes += facts.sources
    result = {
        "meta": {"date": started, "host": platform.node(), "commit": _git_commit(),
                 "config": str(config_path), "quick": bool(args.quick),
                 "command": "python -m ganaug.bench " + " ".join(argv or sys.argv[1:]),
                 "reference": ref_label, "device": device},
        "environment": envs, "measurements": meas, "cost": costs, "notes": notes,
    }
    if args.out:
        write_json(args.out, result)
    text = [f"# ganaug benchmark, {started}, {env.get('device_name', device)} "
            f"(torch {env.get('torch', '?')})"]
    if ref_label:
        text.append(f"reference code: {ref_label}")
    text += [f"- {n}" for n in notes] + [""]
    text.append(throughput_tables(meas))
    if costs:
        text += [f"## Predicted cost of the study ({config_path})", "", cost_table(costs)]
    if args.out:
        text += ["", f"JSON: {args.out}"]
    print("\n".join(text))
    return result


if __name__ == "__main__":
    try:
        main()
    except InputError as e:
        sys.exit(f"error: {e}")
