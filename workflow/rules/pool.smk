"""Synthetic pool: generate N per class from the selected snapshot (sharded) -> pHash -> ancillary scores."""


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
    script:
        "../scripts/generate_pool.py"


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
