"""Conda environments (envs/*.yaml, for `snakemake --use-conda`): each parses, pins every package, and
provides every module that the scripts of its rules import, directly or through the ganaug modules they
import (followed transitively in src/). Creating the environments needs conda or mamba."""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src"
RULES = sorted((REPO / "workflow/rules").glob("*.smk"))
ENVS = sorted((REPO / "envs").glob("*.yaml"))

# import name -> package name (conda-forge and PyPI agree for these); an import missing here fails the
# test, so a new dependency cannot slip through unmapped
PACKAGES = {
    "numpy": "numpy",
    "scipy": "scipy",
    "pandas": "pandas",
    "matplotlib": "matplotlib",
    "seaborn": "seaborn",
    "sklearn": "scikit-learn",
    "PIL": "pillow",
    "imagehash": "imagehash",
    "yaml": "pyyaml",
    "torch": "torch",
    "torchvision": "torchvision",
    "timm": "timm",
    "pretrainedmodels": "pretrainedmodels",
    "six": "six",
    "torch_fidelity": "torch-fidelity",
    "snakemake": "snakemake",
    "requests": "requests",
    "urllib3": "urllib3",
}
# a package another name provides as well (conda-forge's snakemake-minimal is the PyPI snakemake)
ALIASES = {"snakemake": {"snakemake", "snakemake-minimal"}}
# programs a shell rule runs -> what provides them
PROGRAMS = {"snakemake": "snakemake"}
VERSION = re.compile(r"^\d+(\.\d+)+$")  # 3.11, 2.4.6 -- no ranges, no wildcards


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


# ---------------------------------------------------------------- rules -> env, script


def _rules() -> list[dict]:
    """Every rule in workflow/rules/*.smk: name, file, conda env path, script path or shell command."""
    out = []
    for smk in RULES:
        text = smk.read_text()
        blocks = re.split(r"^rule (\w+):\s*$", text, flags=re.M)
        for name, body in zip(blocks[1::2], blocks[2::2]):
            body = re.split(r"^\S", body, maxsplit=1, flags=re.M)[0]  # up to the next top-level statement
            conda = re.search(r"^\s+conda:\s*\n\s+\"([^\"]+)\"", body, flags=re.M)
            script = re.search(r"^\s+script:\s*\n\s+\"([^\"]+)\"", body, flags=re.M)
            shell = re.search(r"^\s+shell:\s*\n((?:\s+(?:#.*|\"[^\n]*\")\n?)+)", body, flags=re.M)
            out.append({
                "rule": name,
                "file": smk,
                "conda": (smk.parent / conda.group(1)).resolve() if conda else None,
                "script": (smk.parent / script.group(1)).resolve() if script else None,
                "shell": "".join(re.findall(r"\"([^\"]*)\"", shell.group(1))) if shell else None,
            })
    return out


RULE_TABLE = _rules()


def test_rule_table_is_complete():
    """The parser found the rules: each has a conda env that exists and a script or a shell command."""
    names = [r["rule"] for r in RULE_TABLE]
    assert len(names) >= 20 and {"train_gan", "train_classifier", "evaluate", "report"} <= set(names)
    for r in RULE_TABLE:
        assert r["conda"] is not None, f"rule {r['rule']} ({r['file'].name}) has no conda: env"
        assert r["conda"].is_file() and r["conda"].parent == REPO / "envs", f"rule {r['rule']}: {r['conda']}"
        assert (r["script"] and r["script"].is_file()) or r["shell"], f"rule {r['rule']}: no script or shell"


# ---------------------------------------------------------------- envs


@cache
def _env(path: Path) -> dict:
    """{'conda': {name: spec}, 'pip': {name: spec}, 'local': [...]} of an env file."""
    data = yaml.safe_load(path.read_text())
    conda, pip, local = {}, {}, []
    for dep in data.get("dependencies") or []:
        if isinstance(dep, dict):
            for entry in dep.get("pip", []):
                if entry.startswith("-e ") or entry.startswith("."):
                    local.append(entry)
                    continue
                m = re.match(r"^([A-Za-z0-9_.\-]+)\s*(.*)$", entry)
                pip[_norm(m.group(1))] = m.group(2)
        else:
            m = re.match(r"^([A-Za-z0-9_.\-]+)\s*(.*)$", str(dep))
            conda[_norm(m.group(1))] = m.group(2)
    return {"data": data, "conda": conda, "pip": pip, "local": local}


@pytest.mark.parametrize("path", ENVS, ids=[p.name for p in ENVS])
def test_env_parses_and_pins_everything(path):
    env = _env(path)
    assert env["data"]["channels"][0] == "conda-forge" and "defaults" not in env["data"]["channels"]
    for name, spec in env["conda"].items():
        m = re.match(r"^==?(.+)$", spec)
        assert m and VERSION.match(m.group(1)), f"{path.name}: conda package '{name}' not pinned ({spec!r})"
    for name, spec in env["pip"].items():
        m = re.match(r"^==(.+)$", spec)
        assert m and VERSION.match(m.group(1)), f"{path.name}: pip package '{name}' is not pinned ({spec!r})"
    assert "python" in env["conda"], f"{path.name}: no python"
    assert env["local"] == ["-e .."], f"{path.name}: the package itself should come from the checkout"


def test_envs_agree_on_shared_versions():
    """A package pinned in two environments has the same version in both (results do not depend on which
    env a step ran in)."""
    seen = {}
    for path in ENVS:
        env = _env(path)
        for name, spec in {**env["conda"], **env["pip"]}.items():
            version = spec.lstrip("=")
            if name in seen:
                assert seen[name][1] == version, \
                    f"{name}: {seen[name][0]} pins {seen[name][1]}, {path.name} {version}"
            seen[name] = (path.name, version)


def test_installing_the_package_pulls_nothing_unpinned():
    """Each env installs the checkout (`pip install -e ..`), and pip then installs every dependency in
    pyproject.toml that the env lacks, at whatever version is newest: each env must pin them all, at versions
    inside pyproject's ranges."""
    import tomllib

    from packaging.requirements import Requirement

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    deps = [Requirement(d) for d in project["dependencies"]]
    for path in ENVS:
        env = _env(path)
        pinned = {**env["conda"], **env["pip"]}
        for req in deps:
            name = _norm(req.name)
            assert name in pinned, (f"{path.name}: `-e ..` would install {req.name} unpinned (pyproject.toml "
                                    f"requires {req}); pin it")
            version = pinned[name].lstrip("=")
            assert req.specifier.contains(version, prereleases=True), \
                f"{path.name}: {req.name} {version} is outside pyproject.toml's {req}"


# ---------------------------------------------------------------- imports
#
# What a script needs is what runs when it runs: its own imports, and in the ganaug modules it uses, the
# module-level imports of every module imported plus the imports inside the functions it can reach (a
# call graph by name: a function reaches the functions and classes it names, in its module or imported
# from another ganaug module; a class counts whole; `importlib.import_module(f"ganaug.gans.{...}")`
# reaches every module of that package). Imports under `try: ... except ImportError` and
# `if TYPE_CHECKING:` are optional and not counted.


def _optional(node: ast.AST, parents: dict) -> bool:
    child, p = node, parents.get(node)
    while p is not None:
        if isinstance(p, ast.Try) and child in p.body:
            for h in p.handlers:
                names = [h.type] if not isinstance(h.type, ast.Tuple) else list(h.type.elts)
                if any(isinstance(n, ast.Name) and n.id in ("ImportError", "ModuleNotFoundError")
                       for n in names):
                    return True
        if isinstance(p, ast.If) and "TYPE_CHECKING" in ast.unparse(p.test):
            return True
        child, p = p, parents.get(p)
    return False


def _module_path(name: str) -> Path | None:
    base = SRC.joinpath(*name.split("."))
    for p in (base.with_suffix(".py"), base / "__init__.py"):
        if p.is_file():
            return p
    return None


class _Module:
    """A parsed source file: its top-level definitions, its module-level import aliases, and for any
    piece of it, what that piece imports and which ganaug names it reaches."""

    def __init__(self, path: Path, name: str | None):
        self.path, self.name = path, name
        self.tree = ast.parse(path.read_text(), filename=str(path))
        self.parents = {c: p for p in ast.walk(self.tree) for c in ast.iter_child_nodes(p)}
        self.package = (name if path.name == "__init__.py" else name.rpartition(".")[0]) if name else ""
        self.defs = {n.name: n for n in self.tree.body
                     if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}
        self.aliases = {}  # local name -> ("module", name) | ("attr", module, name)
        for node in self.tree.body:
            for sub in ast.walk(node):
                if isinstance(sub, (ast.Import, ast.ImportFrom)) and not self._in_def(sub):
                    self._bind(sub, self.aliases)

    def _in_def(self, node) -> bool:
        p = self.parents.get(node)
        while p is not None:
            if isinstance(p, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                return True
            p = self.parents.get(p)
        return False

    def _absolute(self, node: ast.ImportFrom) -> str:
        if not node.level:
            return node.module
        base = self.package.split(".")
        base = base[: len(base) - node.level + 1]
        return ".".join(base + ([node.module] if node.module else []))

    def _bind(self, node, table: dict) -> None:
        if isinstance(node, ast.Import):
            for a in node.names:
                top = a.name.split(".")[0]
                table[a.asname or top] = ("module", a.name if a.asname else top)
        else:
            mod = self._absolute(node)
            for a in node.names:
                table[a.asname or a.name] = ("attr", mod, a.name)

    def top_level(self) -> list[ast.AST]:
        """What runs on import: every statement but function bodies and methods."""
        nodes = []
        for node in self.tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                nodes += node.decorator_list + node.args.defaults + node.args.kw_defaults
            elif isinstance(node, ast.ClassDef):
                nodes += node.decorator_list + node.bases + [n for n in node.body if not isinstance(
                    n, (ast.FunctionDef, ast.AsyncFunctionDef))]
            else:
                nodes.append(node)
        return [n for n in nodes if n is not None]

    def scan(self, nodes) -> tuple[set[str], set[tuple[str, str]]]:
        """(imported module names, reached (ganaug module, name) pairs) of these nodes, walked whole."""
        imported, reached = set(), set()
        for root in nodes:
            for node in ast.walk(root):
                if isinstance(node, (ast.Import, ast.ImportFrom)):
                    if _optional(node, self.parents) or (isinstance(node, ast.ImportFrom)
                                                         and node.module == "__future__"):
                        continue
                    if isinstance(node, ast.Import):
                        for a in node.names:
                            imported.add(a.name)
                            reached.add((a.name, "*") if a.name.startswith("ganaug") else ("", ""))
                    else:
                        mod = self._absolute(node)
                        imported.add(mod)
                        reached.update((mod, a.name) for a in node.names)
                elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
                    if node.id in self.defs and self.name:
                        reached.add((self.name, node.id))
                    alias = self.aliases.get(node.id)
                    if alias and alias[0] == "attr":
                        reached.add((alias[1], alias[2]))
                elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
                    alias = self.aliases.get(node.value.id)
                    if alias and alias[0] == "module":
                        reached.add((alias[1], node.attr))
                elif (isinstance(node, ast.Call) and node.args
                      and ast.unparse(node.func).endswith("import_module")):
                    arg = node.args[0]
                    prefix = arg.value if isinstance(arg, ast.Constant) else (
                        arg.values[0].value if isinstance(arg, ast.JoinedStr) and arg.values
                        and isinstance(arg.values[0], ast.Constant) else "")
                    if str(prefix).startswith("ganaug."):
                        reached.add((str(prefix).rstrip("."), "**"))
        reached.discard(("", ""))
        return imported, {r for r in reached if r[0].split(".")[0] == "ganaug"}


@cache
def _load(name: str) -> _Module | None:
    path = _module_path(name)
    return _Module(path, name) if path else None


# functions that import heavy packages only for some arguments: (module, function) -> (argument, position,
# value that avoids them, default). start_job imports torch (and takes a GPU) only when device != "none".
LIGHT_CALLS = {("ganaug.progress", "start_job"): ("device", 2, "none", "none")}


def _light_calls(tree: ast.AST) -> set[tuple[str, str]]:
    """The LIGHT_CALLS functions that every call in `tree` calls with the light value."""
    light = set()
    for (mod, func), (arg, pos, value, default) in LIGHT_CALLS.items():
        calls = [n for n in ast.walk(tree)
                 if isinstance(n, ast.Call) and ast.unparse(n.func).split(".")[-1] == func]
        values = []
        for c in calls:
            kw = [k.value for k in c.keywords if k.arg == arg]
            node = kw[0] if kw else (c.args[pos] if len(c.args) > pos else None)
            if node is None:
                values.append(default)
            else:
                values.append(node.value if isinstance(node, ast.Constant) else object())
        if all(v == value for v in values):
            light.add((mod, func))
    return light


def _reach(imported: set[str], todo: list, light: set) -> tuple[set[str], set[str]]:
    """Third-party top-level names and ganaug modules needed, from seeds (imported names, reached pairs)."""
    third, modules, done = set(), set(), set(light)

    def note(names):
        for name in names:
            head = name.split(".")[0]
            if head != "ganaug" and head not in sys.stdlib_module_names:
                third.add(head)

    note(imported)
    todo = list(todo)
    while todo:
        mod, attr = todo.pop()
        if (mod, attr) in done:
            continue
        done.add((mod, attr))
        m = _load(mod)
        if m is None:  # not one of ours
            continue
        if mod not in modules:  # importing a module runs its parents' __init__ and its own top level
            modules.add(mod)
            parts = mod.split(".")
            todo += [(".".join(parts[:i]), "") for i in range(1, len(parts))]
            imported, reached = m.scan(m.top_level())
            note(imported)
            todo += reached
        if attr == "":  # the module itself
            continue
        if attr == "**":  # a package's modules, imported by name at run time
            todo += [(f"{mod}.{p.stem}", "*") for p in sorted(m.path.parent.glob("*.py"))
                     if p.stem != "__init__"]
            continue
        if attr == "*":
            targets = [d for name, d in m.defs.items() if (mod, name) not in light]
        elif attr in m.defs:
            targets = [m.defs[attr]]
        elif _module_path(f"{mod}.{attr}"):  # `from package import module`
            todo.append((f"{mod}.{attr}", ""))
            continue
        elif attr in m.aliases and m.aliases[attr][0] == "attr":  # re-exported from another module
            todo.append(m.aliases[attr][1:])
            continue
        else:
            continue
        imported, reached = m.scan(targets)
        note(imported)
        todo += reached
    return third, modules


def requirements(script: Path) -> tuple[set[str], set[str]]:
    """(third-party top-level import names, ganaug modules) needed to run a script."""
    top = _Module(script, None)
    imported, reached = top.scan(top.tree.body)
    return _reach(imported, reached, _light_calls(top.tree))


def _snakefile_requirements() -> set[str]:
    """What loading the workflow needs (a shell rule that runs snakemake loads it in its env): the top-level
    imports of the Snakefile and workflow/rules/*.smk, and what they reach."""
    imported, reached = set(), set()
    for f in [REPO / "Snakefile", *RULES]:
        for line in re.findall(r"^(?:import [\w.]+.*|from [\w.]+ import .+)$", f.read_text(), flags=re.M):
            node = ast.parse(line).body[0]
            if isinstance(node, ast.Import):
                imported.update(a.name for a in node.names)
                reached.update((a.name, "") for a in node.names)
            else:
                imported.add(node.module)
                reached.update((node.module, a.name) for a in node.names)
    third, _ = _reach(imported, [r for r in reached if r[0].startswith("ganaug")], set())
    return third


def _rule_needs(rule: dict) -> tuple[set[str], str]:
    if rule["script"] is not None:
        third, _ = requirements(rule["script"])
        return third, rule["script"].name
    needs = set()
    for word, package in PROGRAMS.items():
        if re.search(rf"(^|[\s;&|(]){word}\s", rule["shell"]):
            needs.add(package)
            if word == "snakemake":
                needs |= _snakefile_requirements()
    return needs, "its shell command"


def test_import_analysis_finds_known_imports():
    """The analysis itself: train_gan.py reaches torch through ganaug.gans.training; evaluate.py reaches
    timm through the classifier's models; relative imports are followed."""
    third, mods = requirements(REPO / "workflow/scripts/train_gan.py")
    assert "torch" in third and "ganaug.gans.training" in mods and "numpy" in third
    third, mods = requirements(REPO / "workflow/scripts/evaluate.py")
    assert "timm" in third and "ganaug.classifier.models" in mods
    third, mods = requirements(REPO / "workflow/scripts/sample_synthetic.py")
    assert "ganaug.phash" in mods  # via `from .phash import ...` in ganaug.sampling


@pytest.mark.parametrize("rule", RULE_TABLE, ids=[r["rule"] for r in RULE_TABLE])
def test_env_provides_what_the_rule_imports(rule):
    needs, what = _rule_needs(rule)
    env = _env(rule["conda"])
    provided = set(env["conda"]) | set(env["pip"])
    unmapped = sorted(n for n in needs if n not in PACKAGES and n not in PACKAGES.values())
    assert not unmapped, f"rule {rule['rule']}: imports {unmapped}: map them in PACKAGES of this file"
    missing = sorted(PACKAGES.get(n, n) for n in needs
                     if not ALIASES.get(PACKAGES.get(n, n), {PACKAGES.get(n, n)}) & provided)
    assert not missing, (f"rule {rule['rule']}: {what} needs {missing}, which {rule['conda'].name} does not "
                         "list")


# ---------------------------------------------------------------- creating them


@pytest.mark.parametrize("path", ENVS, ids=[p.name for p in ENVS])
def test_env_solves(path, tmp_path):
    """The pinned environment solves on conda-forge (a dry run: nothing is installed)."""
    tool = shutil.which("mamba") or shutil.which("conda") or shutil.which("micromamba")
    if tool is None:
        pytest.skip("neither conda, mamba nor micromamba is installed: the environments cannot be solved")
    env = _env(path)
    spec = tmp_path / "env.yaml"
    data = dict(env["data"])  # without the pip part: the checkout and PyPI are not conda's to solve
    data["dependencies"] = [d for d in data["dependencies"] if not isinstance(d, dict)]
    spec.write_text(yaml.safe_dump(data))
    cmd = [tool, "env", "create", "--dry-run", "-n", f"ganaug-test-{path.stem}", "-f", str(spec)]
    if Path(tool).name == "micromamba":
        cmd = [tool, "create", "--dry-run", "-n", f"ganaug-test-{path.stem}", "-f", str(spec), "-y"]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, f"{path.name} does not solve:\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}"
