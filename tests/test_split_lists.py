"""The authors' published split lists as config/paper.yaml uses them by default: downloaded from their
repository at a pinned commit (here: the shared unchanged copies served by the loopback FileServer) through
the real download code, checked by sha256, imported, and checked against the counts the study reports."""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from ganaug import datasets
from ganaug.data import sources, split_lists, splits
from ganaug.config_check import ConfigError, check_config
from ganaug.design import counts
from ganaug.downloads import ChecksumError
from ganaug.io import InputError
from authors_splits import SPLITS, needs_splits
from http_server import FileServer

REPO = Path(__file__).resolve().parents[1]
PAPER = REPO / "config" / "paper.yaml"
COMMIT = "0ee27b93d7d14716a1cf1a9b229cfe07a3f21f88"


# the authors' folder of each real fraction (splits/percentages/); the shared folder holds only 1/4's
FRACTION_FOLDERS = {"1/16": "0_0625", "1/8": "0_125", "1/4": "0_25", "1/2": "0_5"}
# the real subsets' sizes: round(fraction x class count), half to even, of 11,684 benign + 3,121 melanoma
REDUCED_SIZES = {"1/16": 730 + 195, "1/8": 1460 + 390, "1/4": 2921 + 780, "1/2": 5842 + 1560}


def shared_copy(rel: str) -> Path | None:
    """The shared copy of a file of the authors' splits/ folder (its 1/4 subsets are kept as reduced-1_4/);
    None for the other fractions' subsets, which the shared folder does not hold."""
    if rel.startswith("percentages/") and not rel.startswith("percentages/0_25/"):
        return None
    return SPLITS / re.sub(r"^percentages/0_25/", "reduced-1_4/", rel)


def paper_config() -> dict:
    return yaml.safe_load(PAPER.read_text())


def shared_paper_config() -> dict:
    """config/paper.yaml with only the lists the shared folder holds (the 1/4 subsets of the real fractions;
    the others' sha256s: test_paper_reduced_lists_of_every_fraction)."""
    cfg = paper_config()
    cfg["split"]["reduced_lists"] = {"1/4": cfg["split"]["reduced_lists"]["1/4"]}
    cfg["split"]["expected"] = {k: v for k, v in cfg["split"]["expected"].items() if "/" not in k or k == "1/4"}
    return cfg


def paper_files(cfg: dict) -> dict[str, dict]:
    """{config key: list entry} of the paper's lists ({file, sha256})."""
    return split_lists.list_entries(cfg)


@pytest.fixture
def served(tmp_path):
    """The shared copies served at /splits/<path in the authors' repository>; a paper config pointing at them
    with its downloads under tmp_path."""
    cfg = shared_paper_config()
    files = {f"/splits/{e['file']}": shared_copy(e["file"]).read_bytes() for e in paper_files(cfg).values()}
    server = FileServer(files)
    cfg["split"]["list_source"] = {"base_url": f"{server.url}/splits", "data_dir": str(tmp_path / "lists")}
    try:
        yield server, cfg
    finally:
        server.close()


# --- config/paper.yaml: the authors' lists by default, pinned --------------------------------------------
def test_paper_config_uses_the_authors_lists_by_default():
    cfg = paper_config()
    assert cfg["split"]["list_source"]["base_url"] == (
        f"https://raw.githubusercontent.com/alceubissoto/gan-aug-analysis/{COMMIT}/splits"
    )
    entries = paper_files(cfg)
    assert {k: e["file"] for k, e in entries.items()} == {
        "split.lists.train": "isic2019-full-train-pool.csv",
        "split.lists.val": "isic2019-val.csv",
        "split.lists.test": "testsets/isic2019-test.csv",
        **{f"split.reduced_lists.{f}[{r}]": f"percentages/{d}/train_{r}.csv"
           for f, d in FRACTION_FOLDERS.items() for r in range(10)},
        "datasets.isic2020.list": "testsets/isic2020-subset-test.csv",
        "datasets.derm7pt_derm.list": "testsets/derm7pt_dermato.csv",
        "datasets.derm7pt_clinic.list": "testsets/derm7pt_clinical.csv",
        "datasets.dermofit.list": "testsets/dermofit.csv",
    }
    assert all(re.fullmatch(r"[0-9a-f]{64}", e["sha256"]) for e in entries.values())
    specs = split_lists.list_sources(cfg)
    assert specs["split.reduced_lists.1/4[3]"]["url"] == (
        f"https://raw.githubusercontent.com/alceubissoto/gan-aug-analysis/{COMMIT}/splits/percentages/0_25/train_3.csv"
    )
    assert specs["split.reduced_lists.1/4[3]"]["download"] == (
        "results/data/raw/authors-splits/percentages/0_25/train_3.csv"
    )
    assert splits.expected_counts(cfg) == {
        "train": {"images": 14805, "key": "split.expected.train"},
        "val": {"images": 1931, "key": "split.expected.val"},
        "test": {"images": 3863, "key": "split.expected.test"},
        **{f"reduced:{f.replace('/', '-')}": {"images": n, "key": f"split.expected.{f}"}
           for f, n in REDUCED_SIZES.items()},
        "testset:isic19": {"images": 3863, "key": "testsets.isic19.expected"},
        "testset:isic20": {"images": 1743, "key": "testsets.isic20.expected"},
        "testset:derm7pt_derm": {"images": 872, "key": "testsets.derm7pt_derm.expected"},
        "testset:derm7pt_clinic": {"images": 839, "key": "testsets.derm7pt_clinic.expected"},
        "testset:dermofit": {"images": 973, "key": "testsets.dermofit.expected"},
    }
    check_config(cfg, deep=False)  # no file is needed before the run: the lists are downloaded by jobs


def test_split_description_from_the_config_alone(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # nothing downloaded, nothing read
    d = splits.split_description(paper_config())
    assert d["source"] == "lists" and d["dataset"] == "isic2019"
    assert d["origins"] == [f"github.com/alceubissoto/gan-aug-analysis at commit {COMMIT}"]
    assert d["expected"]["train"] == 14805 and d["expected"]["reduced:1-4"] == 3701
    for words in ("published lists", COMMIT, "pinned by sha256", "train 14,805", "val 1,931", "test 3,863",
                  "1/4 x10", "3,701", "isic20 1,743", "dermofit 973"):
        assert words in d["text"], d["text"]
    toy = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    t = splits.split_description(toy)
    assert t["source"] == "seeded" and t["lists"] == {} and "seeded" in t["text"]


@needs_splits
def test_paper_sha256s_match_the_shared_copies():
    """The sha256 recorded in config/paper.yaml of each list = that of the unchanged copy in the shared folder."""
    checked = 0
    for key, e in paper_files(paper_config()).items():
        if shared_copy(e["file"]) is None:
            continue
        got = hashlib.sha256(shared_copy(e["file"]).read_bytes()).hexdigest()
        assert got == e["sha256"], f"{key}: {e['file']} has sha256 {got}, config/paper.yaml says {e['sha256']}"
        checked += 1
    assert checked == 17  # 3 parts, 10 quarters, 4 test sets


def test_paper_reduced_lists_of_every_fraction():
    """The real subsets of 1/16, 1/8, 1/4 and 1/2 (the anonymization groups): ten distinct files per fraction,
    replicate r at train_r.csv of the authors' folder, and the expected size the design's counts give."""
    split = paper_config()["split"]
    assert set(split["reduced_lists"]) == set(FRACTION_FOLDERS)
    for f, entries in split["reduced_lists"].items():
        assert [e["file"] for e in entries] == [f"percentages/{FRACTION_FOLDERS[f]}/train_{r}.csv" for r in range(10)]
        assert len({e["sha256"] for e in entries}) == 10
        assert split["expected"][f] == REDUCED_SIZES[f] == sum(counts(f"{f}:0", {0: 11684, 1: 3121})["real"].values())


# --- download (FileServer) -> import -> the study's counts ---------------------------------------------
def _isic2019_index(lists: dict[str, Path]) -> pd.DataFrame:
    """An ISIC 2019 index holding the listed images (labels as listed; one lesion each) and 781 melanomas
    that are in no part, as the release does."""
    rows = []
    for part, path in lists.items():
        df = datasets.read_split_list(path)
        rows += [(datasets.image_id(i), int(lab)) for i, lab in zip(df["image"], df["label"])]
    rows += [(f"ISIC_99{k:05d}", 1) for k in range(781)]
    return pd.DataFrame(
        {
            "image": [f"images/{i}.jpg" for i, _ in rows],
            "label": [lab for _, lab in rows],
            "diagnosis": ["melanoma" if lab else "nevus" for _, lab in rows],
            "dataset": "isic2019",
            "lesion_id": [f"L{k}" for k in range(len(rows))],
            "mask": "",
            "image_id": [i for i, _ in rows],
        }
    )


def _listed_index(path: Path, name: str) -> pd.DataFrame:
    """A test set's index holding exactly the listed images (and a few others), labels as listed."""
    df = datasets.read_split_list(path)
    ids = [datasets.image_id(i) for i in df["image"]] + [f"{name}_other{k}" for k in range(3)]
    labels = [int(x) for x in df["label"]] + [0, 1, 0]
    return pd.DataFrame(
        {
            "image": [f"{name}/{i}.jpg" for i in ids],
            "label": labels,
            "diagnosis": ["melanoma" if lab else "nevus" for lab in labels],
            "dataset": name,
            "lesion_id": [f"{name}:{i}" for i in ids],
            "mask": "",
            "image_id": ids,
        }
    )


@needs_splits
def test_download_import_and_the_study_counts(served):
    server, cfg = served
    specs = split_lists.list_sources(cfg)
    got = {k: sources.fetch_source(s) for k, s in specs.items()}  # the real download code
    assert len(server.requests) == 17 and all(p.is_file() for p in got.values())
    assert got["split.reduced_lists.1/4[7]"] == Path(cfg["split"]["list_source"]["data_dir"]) / (
        "percentages/0_25/train_7.csv"
    )
    for k, p in got.items():  # byte for byte, checksum recorded beside it
        assert p.read_bytes() == shared_copy(paper_files(cfg)[k]["file"]).read_bytes()
        assert Path(f"{p}.sha256").read_text().split()[0] == specs[k]["sha256"]

    parts = {p: got[f"split.lists.{p}"] for p in ("train", "val", "test")}
    split = datasets.import_split_lists(_isic2019_index(parts), parts)
    assert {p: (len(df), int(df["label"].sum())) for p, df in split.items()} == {
        "train": (14805, 3121),
        "val": (1931, 224),
        "test": (3863, 396),
    }
    reduced = splits.import_reduced_lists(
        split["train"], {"1/4": [got[f"split.reduced_lists.1/4[{r}]"] for r in range(10)]}
    )["1/4"]
    assert [(len(r), int((r["label"] == 0).sum()), int(r["label"].sum())) for r in reduced] == [(3701, 2921, 780)] * 10
    assert len({tuple(sorted(r["image"])) for r in reduced}) == 10  # a different quarter per replicate

    testsets = {"isic19": split["test"]}
    for name, key in (("isic20", "isic2020"), ("derm7pt_derm", "derm7pt_derm"),
                      ("derm7pt_clinic", "derm7pt_clinic"), ("dermofit", "dermofit")):
        path = got[f"datasets.{key}.list"]
        testsets[name] = datasets.import_split_lists(_listed_index(path, name), {name: path})[name]
    assert {k: len(v) for k, v in testsets.items()} == {
        "isic19": 3863, "isic20": 1743, "derm7pt_derm": 872, "derm7pt_clinic": 839, "dermofit": 973,
    }
    assert [int(testsets[k]["label"].sum()) for k in ("isic20", "derm7pt_derm", "derm7pt_clinic", "dermofit")] == [
        581, 252, 248, 76,
    ]

    # the split check with the paper's expected counts passes; another count fails naming the part and key
    expected = splits.expected_counts(cfg)
    counts, report = splits.check_splits(split, testsets, {"1-4": reduced}, expected=expected)
    assert report["ok"] and report["expected"]["train"] == 14805
    with pytest.raises(InputError, match=r"train: 14,805 images, expected 14,806 \(split\.expected\.train\)"):
        splits.check_splits(split, testsets, {"1-4": reduced},
                              expected={**expected, "train": {"images": 14806, "key": "split.expected.train"}})
    short = {"1-4": reduced[:3] + [reduced[3].iloc[1:]] + reduced[4:]}
    with pytest.raises(InputError, match=r"reduced:1-4:rep3: 3,700 images, expected 3,701 \(split\.expected\.1/4\)"):
        splits.check_splits(split, testsets, short, expected=expected)
    with pytest.raises(InputError, match=r"testset:dermofit: 972 images, expected 973 \(testsets\.dermofit\.expected\)"):
        splits.check_splits(split, {**testsets, "dermofit": testsets["dermofit"].iloc[1:]}, {"1-4": reduced},
                              expected=expected)

    # a second fetch re-checks the downloads without downloading again
    n = len(server.requests)
    sources.fetch_source(specs["split.lists.val"])
    assert len(server.requests) == n


@needs_splits
def test_a_corrupted_list_fails_naming_it(served):
    server, cfg = served
    path = "/splits/testsets/derm7pt_dermato.csv"
    server.files[path] = server.files[path].replace(b";1\n", b";0\n", 1)  # one label changed
    spec = split_lists.list_sources(cfg)["datasets.derm7pt_derm.list"]
    with pytest.raises(ChecksumError, match=r"derm7pt_dermato\.csv: checksum mismatch for .*testsets/derm7pt_dermato\.csv"):
        sources.fetch_source(spec)
    assert not Path(spec["download"]).exists()  # nothing left to be read as the list

    # a download changed on disk afterwards: the next use fails naming it, and leaves it as it is
    server.files[path] = shared_copy("testsets/derm7pt_dermato.csv").read_bytes()
    good = sources.fetch_source(spec)
    good.write_bytes(good.read_bytes() + b"x;0;0\n")
    with pytest.raises(ChecksumError, match=r"derm7pt_dermato\.csv: checksum mismatch"):
        sources.fetch_source(spec)


@needs_splits
def test_mirror_and_local_copies_of_the_lists(tmp_path):
    """split.list_source.mirror / local: a folder holding the files at their paths in the repository (here a
    copy of the shared folder laid out as the repository), checked by the same sha256s."""
    clone = tmp_path / "clone" / "splits"
    cfg = shared_paper_config()
    for e in paper_files(cfg).values():
        (clone / e["file"]).parent.mkdir(parents=True, exist_ok=True)
        (clone / e["file"]).write_bytes(shared_copy(e["file"]).read_bytes())
    cfg["split"]["list_source"] = {"base_url": "http://127.0.0.1:9/none", "mirror": str(clone),
                                   "data_dir": str(tmp_path / "m")}
    spec = split_lists.list_sources(cfg)["split.reduced_lists.1/4[2]"]
    assert spec["mirror"] == str(clone / "percentages" / "0_25")
    assert sources.fetch_source(spec).read_bytes() == (clone / "percentages/0_25/train_2.csv").read_bytes()

    cfg["split"]["list_source"] = {"base_url": "http://127.0.0.1:9/none", "local": str(clone),
                                   "data_dir": str(tmp_path / "l")}
    specs = split_lists.list_sources(cfg)
    spec = specs["split.lists.val"]
    assert spec["download"] is None and spec["path"] == str(clone / "isic2019-val.csv")
    sources.verify_sources({"val": spec})  # used in place, checked
    (clone / "isic2019-val.csv").write_bytes(b"image,label\nISIC_0000000,0\n")
    with pytest.raises(ChecksumError, match=r"isic2019-val\.csv: checksum mismatch"):
        sources.verify_sources({"val": spec})


# --- config forms and their errors ---------------------------------------------------------------------
def test_list_entries_forms_and_errors(tmp_path):
    src = {"base_url": "https://example.org/r/splits/"}
    s = split_lists.list_spec("split.lists.train", "data/train.csv", src)
    assert s["path"] == "data/train.csv" and s["download"] is None and s["url"] is None
    s = split_lists.list_spec("datasets.d-7.list", {"url": "https://example.org/a/b/l.csv"}, {})
    assert s["download"] == "results/data/raw/split-lists/example.org/a/b/l.csv"
    assert s["role"] == "d_7" and s["sha256"] is None
    s = split_lists.list_spec("split.reduced_lists.1/8[4]", {"file": "p/0_125/train_4.csv", "sha256": "AB" * 32}, src)
    assert s["url"] == "https://example.org/r/splits/p/0_125/train_4.csv" and s["sha256"] == "ab" * 32
    assert s["role"] == "reduced_1_8_rep4" and s["download"] == "results/data/raw/split-lists/p/0_125/train_4.csv"
    for entry, source, msg in [
        ({"file": "a.csv"}, {}, r"split\.lists\.val\.file: a relative file needs split\.list_source\.base_url"),
        ({"file": "a.csv", "url": "https://x.org/a.csv"}, src, r"split\.lists\.val: give exactly one of file"),
        ({"file": "../a.csv"}, src, r"split\.lists\.val\.file: '\.\./a\.csv' is not a relative path"),
        ({"file": "a.csv", "sha256": "abc"}, src, r"split\.lists\.val\.sha256: 'abc' is not 64 hex digits"),
        ({"file": "a.csv", "md5": "x"}, src, r"split\.lists\.val\.md5: unknown key"),
        ({"url": "ftp://x.org/a.csv"}, src, r"split\.lists\.val\.url: 'ftp://x\.org/a\.csv' is not an http"),
        (3, src, r"split\.lists\.val: a path or a mapping"),
    ]:
        with pytest.raises(InputError, match=msg):
            split_lists.list_spec("split.lists.val", entry, source)


def test_config_check_names_the_list_and_expected_keys(tmp_path):
    cfg = paper_config()
    cfg["split"]["lists"]["val"] = {"file": "isic2019-val.csv", "sha256": "12"}
    with pytest.raises(ConfigError, match=r"split\.lists\.val\.sha256: '12' is not 64 hex digits"):
        check_config(cfg, workdir=tmp_path, deep=False)
    cfg = paper_config()
    del cfg["split"]["reduced_lists"]["1/8"]
    cfg["split"]["expected"]["1/8"] = 1850
    cfg["datasets"]["dermofit"]["list"] = "nowhere/dermofit.csv"
    with pytest.raises(ConfigError) as e:
        check_config(cfg, workdir=tmp_path, deep=False)
    assert "split.expected.1/8: not a part (train, val, test) or a fraction of split.reduced_lists" in str(e.value)
    assert "datasets.dermofit.list: file not found: nowhere/dermofit.csv" in str(e.value)


# --- the workflow: the paper's dry run shows the downloads and where each list goes ---------------------
def _jobs(out: str, rule: str) -> list[dict]:
    blocks = re.findall(rf"^rule {rule}:\n((?:    .*\n)+)", out, flags=re.M)
    return [dict(re.findall(r"^    (\w+): (.*)$", b, flags=re.M)) for b in blocks]


def test_paper_dry_run_downloads_the_lists_and_uses_them_per_replicate(tmp_path):
    run = subprocess.run(
        [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(tmp_path), "-n",
         "--configfile", str(PAPER)],
        capture_output=True, text=True, timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    out = run.stdout
    raw = "results/data/raw/authors-splits"
    downloads = {j["output"] for r in ("download_lists_\\w+",) for j in _jobs(out, r)}
    assert downloads == {f"{raw}/{e['file']}" for e in paper_files(paper_config()).values()}
    split = _jobs(out, "split")[0]["input"].split(", ")
    assert split[1:] == [f"{raw}/isic2019-full-train-pool.csv", f"{raw}/isic2019-val.csv",
                         f"{raw}/testsets/isic2019-test.csv"]
    reduced = {j["output"]: j["input"].split(", ") for j in _jobs(out, "reduced_split")}
    fid = {f: f.replace("/", "-") for f in FRACTION_FOLDERS}
    assert reduced == {
        f"results/data/splits/reduced/{fid[f]}/rep{r}.csv": ["results/data/splits/train.csv",
                                                            f"{raw}/percentages/{d}/train_{r}.csv"]
        for f, d in FRACTION_FOLDERS.items() for r in range(10)
    }
    # every 1/x:* experiment's replicate r reads the authors' subset r of its fraction; 1:* experiments none
    trainsets = {j["output"]: j["input"].split(", ") for j in _jobs(out, "build_trainset")}
    for f in FRACTION_FOLDERS:
        assert len([k for k in trainsets if f"/{fid[f]}x" in k]) == (2 if f == "1/2" else 3) * 10
    for out_csv, inputs in trainsets.items():
        rep = int(re.search(r"rep(\d+)\.csv$", out_csv).group(1))
        frac = next((f for f in FRACTION_FOLDERS if f"/{fid[f]}x" in out_csv), None)
        lists = [i for i in inputs if i.startswith("results/data/splits/reduced/")]
        assert lists == ([] if frac is None else [f"results/data/splits/reduced/{fid[frac]}/rep{rep}.csv"]), \
            (out_csv, inputs)
    index = {j["output"].split(", ")[0]: j["input"] for j in _jobs(out, "index_\\w+")}
    assert f"{raw}/testsets/isic2020-subset-test.csv" in index["results/data/prepared/isic2020.csv"]
    assert f"{raw}/testsets/dermofit.csv" in index["results/data/prepared/dermofit.csv"]


def test_workflow_downloads_lists_imports_them_and_checks_the_counts(tmp_path):
    """Through Snakemake, on fixture releases: the lists ({file, sha256} under split.list_source, served by
    the FileServer) are downloaded by their own jobs, used for the split, the reduced set and a test set,
    and the split check passes with the expected counts; another expected count fails the check naming the
    part and the key, and a list served corrupted fails its download naming the file."""
    from PIL import Image

    from test_realdata import _workflow_config

    cfg = _workflow_config(tmp_path)
    for p in (tmp_path / "dermofit").rglob("*.png"):
        if "mask" not in p.name:
            Image.new("RGB", (8, 8), (len(p.name) * 9 % 256, 80, 120)).save(p)
    isic = "ISIC_2019_Training_Input/ISIC_00000{:02d}"
    lists = {  # the authors' formats: ISIC ids with the folder prefix (or bare), a label; Dermofit ';'
        "isic2019-full-train-pool.csv": "image,label\n" + "".join(f"{isic.format(i)},{lab}\n" for i, lab in
                                                                  ((1, 1), (2, 1), (3, 0), (4, 0), (7, 0))),
        "isic2019-val.csv": "image,label\n" + "".join(f"{isic.format(i)},0\n" for i in (8, 9)),
        "testsets/isic2019-test.csv": "image,label\n" + f"{isic.format(10)},0\n{isic.format(11)},0\n"
                                      f"{isic.format(13)},1\n",
        "percentages/0_5/train_0.csv": "image,label\nISIC_0000001,1\nISIC_0000003,0\n",
        "testsets/dermofit.csv": "dataset;image;diagnosis;label\nd;M0mel;2.4.;1\nd;M1ml;1.1.;0\nd;S0sk;1.3.;0\n",
    }
    data = {f"/splits/{k}": v.encode() for k, v in lists.items()}
    sha = {k: hashlib.sha256(v.encode()).hexdigest() for k, v in lists.items()}
    server = FileServer(data)
    local = tmp_path / "copies" / "train_0.csv"
    local.parent.mkdir()
    local.write_text(lists["percentages/0_5/train_0.csv"])
    try:
        cfg["split"].update({
            "list_source": {"base_url": f"{server.url}/splits"},
            "lists": {p: {"file": f, "sha256": sha[f]} for p, f in (
                ("train", "isic2019-full-train-pool.csv"), ("val", "isic2019-val.csv"),
                ("test", "testsets/isic2019-test.csv"))},
            # the reduced list as a `local` copy: used in place, its sha256 checked by the job reading it
            "reduced_lists": {"1/2": [{"file": "percentages/0_5/train_0.csv", "local": str(local),
                                       "sha256": sha["percentages/0_5/train_0.csv"]}]},
            "expected": {"train": 5, "val": 2, "test": 3, "1/2": 2},
        })
        cfg["datasets"]["dfit"]["list"] = {"file": "testsets/dermofit.csv", "sha256": sha["testsets/dermofit.csv"]}
        cfg["testsets"]["dermofit"]["expected"] = 3
        cfg["experiments"]["anonymization"] = [{"ratio": "1/2:0", "group": "1/2"}]
        work = tmp_path / "work"
        (work / "config").mkdir(parents=True)

        def run(*targets):
            (work / "config" / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
            cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(work), "--cores", "2"]
            return subprocess.run(cmd + list(targets), capture_output=True, text=True, timeout=300)

        r = run("prepare_data", "results/trainsets/1-2x0/rep0.csv")
        assert r.returncode == 0, r.stderr[-3000:]
        raw = work / "results" / "data" / "raw" / "split-lists"
        assert all((raw / k).read_text() == v for k, v in lists.items() if k != "percentages/0_5/train_0.csv")
        assert {p for p, _ in server.requests} == set(data) - {"/splits/percentages/0_5/train_0.csv"}
        assert (raw / "percentages/0_5/train_0.csv.sha256").exists()  # the local copy's check, recorded
        check = pd.read_csv(work / "results/data/splits/check.csv").set_index("part")["n"].to_dict()
        assert check == {"train": 5, "val": 2, "test": 3, "testset:indist": 3, "testset:dermofit": 3,
                         "reduced:1-2:rep0": 2}
        ts = pd.read_csv(work / "results/trainsets/1-2x0/rep0.csv")
        assert sorted(ts["image"].map(datasets.image_id)) == ["ISIC_0000001", "ISIC_0000003"]

        cfg["split"]["expected"]["train"] = 6
        r = run("results/data/splits/check.json")
        assert r.returncode != 0
        log = (work / "logs/data/check_splits.log").read_text()
        assert "train: 5 images, expected 6 (split.expected.train)" in log, log[-2000:]

        cfg["split"]["expected"]["train"] = 5
        server.files["/splits/isic2019-val.csv"] += b"ISIC_0000010,0\n"
        (raw / "isic2019-val.csv").unlink()
        r = run(str(raw.relative_to(work) / "isic2019-val.csv"))
        assert r.returncode != 0
        log = (work / "logs/data/download/lists/val.log").read_text()
        assert re.search(r"isic2019-val\.csv: checksum mismatch for .*split-lists/isic2019-val\.csv", log), log[-2000:]
        assert not (raw / "isic2019-val.csv").exists()

        local.write_text(lists["percentages/0_5/train_0.csv"] + "ISIC_0000004,0\n")
        r = run("results/data/splits/reduced/1-2/rep0.csv", "--forcerun", "reduced_split")
        assert r.returncode != 0
        log = (work / "logs/data/reduced_split/1-2/rep0.log").read_text()
        assert f"{local}: checksum mismatch" in log, log[-2000:]
    finally:
        server.close()
