"""Data: datasets -> index CSV -> train / val / test split + test sets -> decoded, resized image caches."""


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
        dataset="|".join(d for d, c in config["datasets"].items() if c["kind"] == "toyderm") or "^$",
    script:
        "../scripts/make_toyderm.py"


rule import_index:
    """A user's own data: an index CSV (image, label, diagnosis, ...) checked and copied in."""
    input:
        index=lambda w: config["datasets"][w.dataset]["path"],
    output:
        index="results/data/index/{dataset}.csv",
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
        dataset="|".join(d for d, c in config["datasets"].items() if c["kind"] == "index") or "^$",
    script:
        "../scripts/import_index.py"


rule fetch_dataset:
    """Public or hand-placed real datasets (ISIC, derm7pt, Dermofit)."""
    output:
        index="results/data/index/{dataset}.csv",
    params:
        cfg=lambda w: config["datasets"][w.dataset],
    log:
        "logs/data/fetch_dataset/{dataset}.log",
    benchmark:
        "benchmarks/data/fetch_dataset/{dataset}.tsv"
    conda:
        "../../envs/data.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=240,
    wildcard_constraints:
        dataset="|".join(d for d, c in config["datasets"].items() if c["kind"] not in ("toyderm", "index")) or "^$",
    script:
        "../scripts/fetch_dataset.py"


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


rule testset:
    input:
        source=testset_source,
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
    resources:
        mem_mb=4000,
        runtime=60,
    script:
        "../scripts/cache_masks.py"
