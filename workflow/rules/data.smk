"""Data: datasets -> index CSV -> train / val / test split + test sets -> decoded, resized image caches.

Real datasets: public files are downloaded (checksummed, resumable) into datasets.<name>.data_dir
(default results/data/raw/<name>) and archives extracted there; hand-placed ones (derm7pt, Dermofit) are
checked first. Each is preprocessed as the study did into results/data/prepared/<name>.csv, then every
image is decoded once (check_images) before results/data/index/<name>.csv exists. The split is checked
(counts, no training / test overlap) before any test set is written.
"""

import re
from types import SimpleNamespace

from ganaug.data import manual as data_manual, sources as data_sources, split_lists as data_lists, splits as data_splits


DATA_SOURCES = {d: data_sources.sources(d, c) for d, c in config["datasets"].items()}
# the split lists (split.lists, split.reduced_lists, datasets.<name>.list): paths, or files downloaded from
# split.list_source (the authors' repository at a pinned commit in config/paper.yaml), by config key
LIST_SOURCES = data_lists.list_sources(config)
DOWNLOADS = {
    s["download"]: s
    for s in [*(s for srcs in DATA_SOURCES.values() for s in srcs.values()), *LIST_SOURCES.values()]
    if s["download"]
}
# a list downloaded or given as a `local` copy (used in place): the job reading it checks its sha256 first
CHECKED_LISTS = {k: s for k, s in LIST_SOURCES.items() if s["record"]}
EXTRACTS = {
    s["path"]: s for srcs in DATA_SOURCES.values() for s in srcs.values() if s["archive"] and s["path"] != s["local"]
}
# what a real dataset's preprocessing reads: its files (public), its check (manual), its list, its label maps
REAL_INPUTS = {
    d: {
        **{role: s["path"] for role, s in DATA_SOURCES[d].items() if not role.startswith("masks_")},
        **({"label_maps": f"results/data/masks/{d}/label_maps.csv"} if c.get("masks") else {}),
        **({"check": f"results/data/manual/{d}.json"} if c["kind"] in data_sources.MANUAL_KINDS else {}),
        **({"list": LIST_SOURCES[f"datasets.{d}.list"]["path"]} if c.get("list") else {}),
    }
    for d, c in config["datasets"].items()
}
REDUCED = {
    data_splits.fraction_id(f): [LIST_SOURCES[f"split.reduced_lists.{f}[{r}]"]["path"] for r in range(len(v))]
    for f, v in (config["split"].get("reduced_lists") or {}).items()
}
REDUCED_FILES = {f: [f"results/data/splits/reduced/{f}/rep{r}.csv" for r in range(len(v))] for f, v in REDUCED.items()}
TESTSET_SOURCES = {t: testset_source(SimpleNamespace(test_set=t)) for t in TESTSETS}
EXPECTED = data_splits.expected_counts(config)
# the ganaug.data modules each kind of job runs (code_version: an edit there re-runs those jobs only)
_SOURCES = ("data/sources", "data/release")
DATA_CODE = {
    "manual": ("data/manual", "data/derm7pt", "data/dermofit", *_SOURCES),
    "label_maps": ("data/label_maps", "data/isic2019", "data/release"),
    "isic": ("data/prepare", "data/isic2019", "data/isic2020", *_SOURCES),
    "manual_index": ("data/prepare", "data/derm7pt", "data/near_duplicates", "data/dermofit", *_SOURCES),
    "splits": ("data/splits", "data/isic2019", "data/sources"),
}


rule make_toyderm:
    output:
        index="results/data/index/{dataset}.csv",
    params:
        cfg=lambda w: config["datasets"][w.dataset],
        seed=config["seed"],
        outdir=lambda w: f"results/data/raw/{w.dataset}",
        code=code_version("toyderm", "datasets"),
    log:
        "logs/data/make_toyderm/{dataset}.log",
    benchmark:
        "benchmarks/data/make_toyderm/{dataset}.tsv"
    conda:
        "../../envs/data.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=60,
    wildcard_constraints:
        dataset=data_sources.dataset_pattern(config["datasets"], "toyderm"),
    script:
        "../scripts/make_toyderm.py"


# One download job per public file and one extraction job per archive, at the configured data_dir. Their
# params hold the file's source only (no code version): a change to the library re-downloads nothing.
for _spec in DOWNLOADS.values():

    rule:
        name:
            f"download_{_spec['dataset']}_{_spec['role']}"
        output:
            _spec["download"],
        params:
            spec=_spec,
        log:
            f"logs/data/download/{_spec['dataset']}/{_spec['role']}.log",
        benchmark:
            f"benchmarks/data/download/{_spec['dataset']}/{_spec['role']}.tsv"
        conda:
            "../../envs/data.yaml"
        threads: 1
        resources:
            mem_mb=1000,
            runtime=600,
        script:
            "../scripts/download_file.py"


for _spec in EXTRACTS.values():

    rule:
        name:
            f"extract_{_spec['dataset']}_{_spec['role']}"
        input:
            archive=_spec["source"],
        output:
            directory(_spec["path"]),
        params:
            spec=_spec,
        log:
            f"logs/data/extract/{_spec['dataset']}/{_spec['role']}.log",
        benchmark:
            f"benchmarks/data/extract/{_spec['dataset']}/{_spec['role']}.tsv"
        conda:
            "../../envs/data.yaml"
        threads: 1
        resources:
            mem_mb=2000,
            runtime=240,
        script:
            "../scripts/extract_archive.py"


rule check_manual_dataset:
    """derm7pt / Dermofit must be placed by hand: fails saying what to obtain, from where, and where to put it."""
    output:
        "results/data/manual/{dataset}.json",
    params:
        cfg=lambda w: config["datasets"][w.dataset],
        stamp=lambda w: data_manual.manual_stamp(config["datasets"][w.dataset]),
        code=code_version(*DATA_CODE["manual"]),
    log:
        "logs/data/check_manual_dataset/{dataset}.log",
    benchmark:
        "benchmarks/data/check_manual_dataset/{dataset}.tsv"
    conda:
        "../../envs/data.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    wildcard_constraints:
        dataset=data_sources.dataset_pattern(config["datasets"], *data_sources.MANUAL_KINDS),
    script:
        "../scripts/check_manual_dataset.py"


rule label_maps:
    """ISIC 2018 Task 1/2 masks -> label maps (PNG) of the ISIC 2019 images that have them, by ISIC id."""
    input:
        task1=lambda w: DATA_SOURCES[w.dataset]["masks_task1"]["path"],
        task2=lambda w: DATA_SOURCES[w.dataset]["masks_task2"]["path"],
        images=lambda w: DATA_SOURCES[w.dataset]["images"]["path"],
    output:
        table="results/data/masks/{dataset}/label_maps.csv",
    params:
        outdir=lambda w: f"results/data/masks/{w.dataset}/png",
        code=code_version(*DATA_CODE["label_maps"], "masks"),
    log:
        "logs/data/label_maps/{dataset}.log",
    benchmark:
        "benchmarks/data/label_maps/{dataset}.tsv"
    conda:
        "../../envs/data.yaml"
    threads: min(4, max(1, workflow.cores // 2))
    resources:
        mem_mb=4000,
        runtime=60,
    wildcard_constraints:
        dataset=data_sources.dataset_pattern(config["datasets"], "isic2019"),
    script:
        "../scripts/label_maps.py"


rule index_isic:
    """ISIC 2019 (carcinomas dropped; lesion_id; label maps) and ISIC 2020 (the isic20 subset)."""
    input:
        unpack(lambda w: REAL_INPUTS[w.dataset]),
    output:
        index="results/data/prepared/{dataset}.csv",
        report="results/data/prepared/{dataset}.json",
    params:
        cfg=lambda w: config["datasets"][w.dataset],
        specs=lambda w: {**DATA_SOURCES[w.dataset], **checked_lists(f"datasets.{w.dataset}.list")},
        seed=config["seed"],
        code=code_version("datasets", *DATA_CODE["isic"]),
    log:
        "logs/data/index_isic/{dataset}.log",
    benchmark:
        "benchmarks/data/index_isic/{dataset}.tsv"
    conda:
        "../../envs/data.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    wildcard_constraints:
        dataset=data_sources.dataset_pattern(config["datasets"], "isic2019", "isic2020"),
    script:
        "../scripts/prepare_dataset.py"


rule index_manual:
    """derm7pt (dermoscopic or clinical; near duplicates removed) and Dermofit (BCC, SCC dropped)."""
    input:
        unpack(lambda w: REAL_INPUTS[w.dataset]),
    output:
        index="results/data/prepared/{dataset}.csv",
        report="results/data/prepared/{dataset}.json",
    params:
        cfg=lambda w: config["datasets"][w.dataset],
        specs=lambda w: checked_lists(f"datasets.{w.dataset}.list"),
        seed=config["seed"],
        code=code_version("datasets", *DATA_CODE["manual_index"], "phash"),
    log:
        "logs/data/index_manual/{dataset}.log",
    benchmark:
        "benchmarks/data/index_manual/{dataset}.tsv"
    conda:
        "../../envs/data.yaml"
    threads: 2
    resources:
        mem_mb=2000,
        runtime=30,
    wildcard_constraints:
        dataset=data_sources.dataset_pattern(config["datasets"], *data_sources.MANUAL_KINDS),
    script:
        "../scripts/prepare_dataset.py"


rule import_index:
    """A user's own data: an index CSV (image, label, diagnosis, ...) checked and copied in."""
    input:
        index=lambda w: config["datasets"][w.dataset]["path"],
    output:
        index="results/data/prepared/{dataset}.csv",
    params:
        code=code_version("datasets"),
    log:
        "logs/data/import_index/{dataset}.log",
    benchmark:
        "benchmarks/data/import_index/{dataset}.tsv"
    conda:
        "../../envs/data.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    wildcard_constraints:
        dataset=data_sources.dataset_pattern(config["datasets"], "index"),
    script:
        "../scripts/import_index.py"


rule check_images:
    """Decode every image (and label map) once, before any long job reads them; a bad file fails the job
    naming it, or with on_bad_image: drop is left out and listed in results/data/integrity/<name>.csv."""
    input:
        index="results/data/prepared/{dataset}.csv",
    output:
        index="results/data/index/{dataset}.csv",
        report="results/data/integrity/{dataset}.csv",
    params:
        on_bad=lambda w: config["datasets"][w.dataset].get("on_bad_image", "fail"),
        code=code_version("datasets", "data/integrity"),
    log:
        "logs/data/check_images/{dataset}.log",
    benchmark:
        "benchmarks/data/check_images/{dataset}.tsv"
    conda:
        "../../envs/data.yaml"
    threads: min(4, max(1, workflow.cores // 2))
    resources:
        mem_mb=2000,
        runtime=120,
    wildcard_constraints:
        dataset=data_sources.dataset_pattern(config["datasets"], "index", *data_sources.REAL_KINDS),
    script:
        "../scripts/check_images.py"


rule split:
    input:
        unpack(split_inputs),
    output:
        train="results/data/splits/train.csv",
        val="results/data/splits/val.csv",
        test="results/data/splits/test.csv",
    params:
        fractions=config["split"]["fractions"],
        group_by=config["split"]["group_by"],
        seed=config["seed"],
        code=code_version("datasets"),
        **checked_list_param("split.lists."),
    log:
        "logs/data/split.log",
    benchmark:
        "benchmarks/data/split.tsv"
    conda:
        "../../envs/data.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    script:
        "../scripts/split.py"


rule reduced_split:
    """The authors' reduced real training set of one replicate (split.reduced_lists), within the training part."""
    input:
        train="results/data/splits/train.csv",
        list=lambda w: REDUCED[w.fraction][int(w.rep)],
    output:
        csv="results/data/splits/reduced/{fraction}/rep{rep}.csv",
    params:
        code=code_version("datasets", *DATA_CODE["splits"]),
        **checked_list_param("split.reduced_lists."),
    log:
        "logs/data/reduced_split/{fraction}/rep{rep}.log",
    benchmark:
        "benchmarks/data/reduced_split/{fraction}/rep{rep}.tsv"
    conda:
        "../../envs/data.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    wildcard_constraints:
        fraction="|".join(re.escape(f) for f in REDUCED) or "^$",
    script:
        "../scripts/reduced_split.py"


rule check_splits:
    """Counts per part and class; fails on any training / test overlap (image id or lesion id), and on a part
    whose number of images differs from the study's (split.expected, testsets.<name>.expected)."""
    input:
        train="results/data/splits/train.csv",
        val="results/data/splits/val.csv",
        test="results/data/splits/test.csv",
        testsets=list(TESTSET_SOURCES.values()),
        reduced=[f for files in REDUCED_FILES.values() for f in files],
    output:
        json="results/data/splits/check.json",
        csv="results/data/splits/check.csv",
    params:
        testsets=TESTSET_SOURCES,
        reduced=REDUCED_FILES,
        expected=EXPECTED,
        code=code_version("datasets", *DATA_CODE["splits"]),
    log:
        "logs/data/check_splits.log",
    benchmark:
        "benchmarks/data/check_splits.tsv"
    conda:
        "../../envs/data.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    script:
        "../scripts/check_splits.py"


rule testset:
    input:
        source=testset_source,
        # ancient: the check gates every test set (it must pass first), but a new test set re-runs the check
        # and must not re-run the test sets that were already there (tests/test_reruns.py)
        check=ancient("results/data/splits/check.json"),
    output:
        csv="results/data/testsets/{test_set}.csv",
    params:
        code=code_version("datasets"),
    log:
        "logs/data/testset/{test_set}.log",
    benchmark:
        "benchmarks/data/testset/{test_set}.tsv"
    conda:
        "../../envs/data.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    script:
        "../scripts/testset.py"


rule cache_images:
    """Decode and resize every image of a split or test set once; training reads the array."""
    input:
        csv="results/data/{part}.csv",
    output:
        npy="results/data/cache/{part}_{size}px.npy",
    params:
        code=code_version("cache"),
    log:
        "logs/data/cache_images/{part}_{size}px.log",
    benchmark:
        "benchmarks/data/cache_images/{part}_{size}px.tsv"
    conda:
        "../../envs/data.yaml"
    # at most half the cores, so it fits beside the GAN's training
    threads: min(4, max(1, workflow.cores // 2))
    # first: every classifier and the ancillary (which each GAN's checkpoint selection needs) read these
    priority: 20
    resources:
        mem_mb=4000,
        runtime=120,
    script:
        "../scripts/cache_images.py"


rule cache_masks:
    """Label maps of the images that have one (the translation GANs' input), resized once."""
    input:
        csv="results/data/{part}.csv",
    output:
        npy="results/data/cache/{part}_{size}px_masks.npy",
        rows="results/data/cache/{part}_{size}px_masks.csv",
    params:
        code=code_version("masks"),
    log:
        "logs/data/cache_masks/{part}_{size}px.log",
    benchmark:
        "benchmarks/data/cache_masks/{part}_{size}px.tsv"
    conda:
        "../../envs/data.yaml"
    threads: 1
    # as cache_images: the translation GANs' training waits for it
    priority: 20
    resources:
        mem_mb=4000,
        runtime=60,
    script:
        "../scripts/cache_masks.py"
