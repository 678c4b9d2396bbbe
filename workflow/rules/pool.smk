"""Synthetic pool: generate N per class from the selected snapshot (sharded), or import an external pool ->
pHash -> ancillary scores."""


rule generate_pool:
    input:
        unpack(gan_masks),
        selected="results/gans/{gan}/selected.json",
    output:
        shards="results/pools/{gan}/shards.csv",
    params:
        pool=config["pool"],
        seed=config["seed"],
        outdir=lambda w, output: os.path.dirname(output.shards),
        code=gan_code("pool"),
    log:
        "logs/pools/generate_pool/{gan}.log",
    benchmark:
        "benchmarks/pools/generate_pool/{gan}.tsv"
    conda:
        "../../envs/gan.yaml"
    # as select_checkpoint: fits beside another job on two cores
    threads: min(4, max(1, workflow.cores // 2))
    priority: gan_priority
    resources:
        mem_mb=16000,
        runtime=720,
        gpu=1,
    wildcard_constraints:
        gan=trained_pattern(),
    script:
        "../scripts/generate_pool.py"


rule import_pool:
    """An external pool (gans.<name>: kind external) checked and written as pool shards, as a generated pool:
    labels of the study's classes, enough images of each class for the largest ratio an experiment asks of it,
    source images (if any) in the training split, every image readable and of the study's size (resized with a
    warning, or an error: gans.<name>.resize). First in line (priority): a bad pool fails before classifiers."""
    input:
        train="results/data/splits/train.csv",
    output:
        shards="results/pools/{gan}/shards.csv",
    params:
        entry=lambda w: EXTERNAL[w.gan],
        # the user's files as they are now (names, sizes, times): a changed pool is imported again
        files=lambda w: listing_fingerprint(EXTERNAL[w.gan]["path"]),
        experiments=external_experiments,
        one_per_mask=config["sampling"].get("translation_images", "one_per_mask") == "one_per_mask",
        shard_size=config["pool"]["shard_size"],
        outdir=lambda w, output: os.path.dirname(output.shards),
        code=code_version("external", "cache", "design"),
    log:
        "logs/pools/import_pool/{gan}.log",
    benchmark:
        "benchmarks/pools/import_pool/{gan}.tsv"
    conda:
        "../../envs/data.yaml"
    threads: min(4, max(1, workflow.cores // 2))
    priority: 30
    resources:
        mem_mb=8000,
        runtime=120,
    wildcard_constraints:
        gan=external_pattern(),
    script:
        "../scripts/import_pool.py"


rule hash_pool:
    input:
        shards="results/pools/{gan}/shards.csv",
    output:
        phash="results/pools/{gan}/phash.csv",
    params:
        code=code_version("phash", "pool"),
    log:
        "logs/pools/hash_pool/{gan}.log",
    benchmark:
        "benchmarks/pools/hash_pool/{gan}.tsv"
    conda:
        "../../envs/gan.yaml"
    threads: min(2, max(1, workflow.cores // 2))
    priority: gan_priority
    resources:
        mem_mb=4000,
        runtime=120,
    script:
        "../scripts/hash_pool.py"


rule score_pool:
    """Per-image error of the ancillary classifier for the class the image was generated for."""
    input:
        shards="results/pools/{gan}/shards.csv",
        phash="results/pools/{gan}/phash.csv",
        ancillary="results/ancillary/model.pt",
    output:
        manifest="results/pools/{gan}/manifest.csv",
    params:
        code=code_version("classifier", "pool"),
    log:
        "logs/pools/score_pool/{gan}.log",
    benchmark:
        "benchmarks/pools/score_pool/{gan}.tsv"
    conda:
        "../../envs/classifier.yaml"
    threads: min(2, max(1, workflow.cores // 2))
    priority: gan_priority
    resources:
        mem_mb=8000,
        runtime=240,
        gpu=1,
    script:
        "../scripts/score_pool.py"
