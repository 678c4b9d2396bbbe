"""Shared test setup, and how pytest-xdist (`-n`, on in pyproject.toml) shares the tests out: a file's tests
stay together (its module fixtures are built once), and the files that use the session's tiny study (built
in about 2 minutes) go to one worker, so that only one worker builds it."""

from pathlib import Path

import pytest
import torch

# the test modules that use the `tiny_study` fixture (tests/test_conftest.py keeps this list complete)
TINY_STUDY_MODULES = ("test_interrupt.py", "test_reruns.py", "test_workflow.py")


def pytest_xdist_make_scheduler(config, log):
    """pytest-xdist's scheduler by file, with the tiny study's modules as one unit."""
    from xdist.scheduler import LoadScopeScheduling

    class ByFileTinyStudyTogether(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            file = nodeid.split("::", 1)[0]
            return "tiny_study" if Path(file).name in TINY_STUDY_MODULES else file

    return ByFileTinyStudyTogether(config, log)


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tests run tiny tensors: one thread is fastest and avoids oversubscribing a 2-core machine."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)



class FrozenWorkflow:
    """The workflow (Snakefile, workflow/, profiles/, envs/) and the library (src/ganaug) copied as they were when
    the session's first workflow test started: tests that compare one Snakemake run with another must not
    see edits made to the checkout meanwhile (Snakemake would rightly re-run the jobs whose code changed).
    `cmd` runs Snakemake on the copy, `env` imports the copied library (PYTHONPATH), `src` is its folder."""

    def __init__(self, root):
        import shutil
        import sys
        from pathlib import Path

        repo = Path(__file__).resolve().parents[1]
        ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
        shutil.copy2(repo / "Snakefile", root / "Snakefile")
        for name in ("workflow", "profiles", "envs", "src/ganaug"):
            shutil.copytree(repo / name, root / name, ignore=ignore)
        self.root, self.src = Path(root), Path(root) / "src"
        self.cmd = [sys.executable, "-m", "snakemake", "-s", str(self.root / "Snakefile")]
        self.env = self.with_src(self.src)

    @staticmethod
    def with_src(src) -> dict:
        import os

        paths = [str(src)] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else [])
        return {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}


@pytest.fixture(scope="session")
def frozen_workflow(tmp_path_factory):
    return FrozenWorkflow(tmp_path_factory.mktemp("frozen_workflow"))


@pytest.fixture(scope="session")
def tiny_study(tmp_path_factory, frozen_workflow):
    """test_workflow's TINY study, built once per session by Snakemake with the frozen workflow (about
    2 minutes on 2 idle cores). The re-run tests dry-run variants of it (`--configfile`), which change
    nothing in it; the interruption test works on a copy."""
    import subprocess

    from test_workflow import TINY, write_config

    workdir = tmp_path_factory.mktemp("tiny_study")
    write_config(workdir, TINY)
    run = subprocess.run(frozen_workflow.cmd + ["-d", str(workdir), "--cores", "2"], env=frozen_workflow.env,
                         capture_output=True, text=True, timeout=1800)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-6000:]
    return workdir
