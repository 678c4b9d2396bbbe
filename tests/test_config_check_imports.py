"""Every Snakemake invocation checks the config in its main process (ganaug.config_check): a dry run, a
real run's DAG build, each workflow test. Those checks import no torch, timm, torchvision or
pretrainedmodels (about 2 s of CPU each, before any job runs)."""

import re
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "timm", "torchvision", "pretrainedmodels")
# snakemake's own entry point, reporting at exit which heavy modules its process imported
PROBE = ("import atexit, runpy, sys\n"
         "report = sys.argv.pop(1)\n"
         f"atexit.register(lambda: open(report, 'w').write(' '.join(m for m in {HEAVY!r} if m in sys.modules)))\n"
         "sys.argv[0] = 'snakemake'\n"
         "runpy.run_module('snakemake', run_name='__main__', alter_sys=True)\n")


def dry_run_imports(workdir: Path, configfile: Path) -> tuple[subprocess.CompletedProcess, list[str]]:
    report = workdir / "imports.txt"
    run = subprocess.run([sys.executable, "-c", PROBE, str(report), "-s", str(REPO / "Snakefile"), "-d",
                          str(workdir), "-n", "--cores", "1", "--configfile", str(configfile)],
                         capture_output=True, text=True, timeout=300)
    return run, report.read_text().split() if report.exists() else ["(no report)"]


def test_dry_run_main_process_imports_no_torch(tmp_path):
    """The default study with all five built-in generators and a timm classifier: the deep checks of every
    generator's settings and of a timm name (read from timm's source) run without torch."""
    cfg = yaml.safe_load((REPO / "config/config.yaml").read_text())
    cfg["classifier"]["model"] = "timm:resnet10t"
    cfg["experiments"]["augmentation"].append({"ratio": "1:1/2", "gan": "diffusion", "group": "gan"})
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    run, heavy = dry_run_imports(tmp_path, tmp_path / "study.yaml")
    assert run.returncode == 0, run.stderr[-3000:]
    assert re.search(r"^train_gan\s+5$", run.stdout, flags=re.M)  # the five generators are in the DAG
    assert heavy == []


def test_paper_config_checks_import_no_torch():
    """The paper's config (pretrainedmodels:inceptionv4, the four GANs at their published settings) and the
    errors the checks report: no heavy import either way (but an unknown timm name, which timm itself
    confirms: classifier.names.timm_is_model)."""
    code = (
        "import sys, yaml\n"
        "from ganaug.config_check import ConfigError, check_config\n"
        f"cfg = yaml.safe_load(open({str(REPO / 'config/paper.yaml')!r}))\n"
        "check_config(cfg)\n"
        "cfg['classifier']['model'] = 'pretrainedmodels:no_such_model_xyz'\n"
        "cfg['gans']['stylegan2']['no_such_key'] = 1\n"
        "try:\n"
        "    check_config(cfg)\n"
        "except ConfigError as e:\n"
        "    print(e)\n"
        f"print('heavy:', *[m for m in {HEAVY!r} if m in sys.modules])\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "classifier.model: unknown pretrainedmodels model 'no_such_model_xyz'" in run.stdout
    assert "gans.stylegan2.no_such_key: unknown key" in run.stdout
    assert run.stdout.strip().endswith("heavy:")
