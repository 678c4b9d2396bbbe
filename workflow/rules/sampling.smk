"""Sampling: one synthetic subset per experiment (fixed across replicates) -> train set per replicate."""


rule sample_synthetic:
    input:
        train="results/data/splits/train.csv",
        manifests=pool_manifests,
    output:
        csv="results/samples/{experiment}.csv",
    params:
        experiment=experiment_params,
        sampling=config["sampling"],
        seed=config["seed"],
        code=code_version("sampling", "design", "phash"),
    log:
        "logs/sampling/sample_synthetic/{experiment}.log",
    benchmark:
        "benchmarks/sampling/sample_synthetic/{experiment}.tsv"
    conda:
        "../../envs/data.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    script:
        "../scripts/sample_synthetic.py"


rule build_trainset:
    """Replicate r: the real subset of its fraction (shared by every experiment, paired) + the samples."""
    input:
        unpack(trainset_inputs),
    output:
        csv="results/trainsets/{experiment}/rep{rep}.csv",
    params:
        experiment=experiment_params,
        seed=config["seed"],
        code=code_version("design"),
    log:
        "logs/sampling/build_trainset/{experiment}/rep{rep}.log",
    benchmark:
        "benchmarks/sampling/build_trainset/{experiment}/rep{rep}.tsv"
    conda:
        "../../envs/data.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    script:
        "../scripts/build_trainset.py"
