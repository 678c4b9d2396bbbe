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
        code=code_version("sampling", "design", "phash", "trainsets"),
    log:
        "logs/sampling/sample_synthetic/{experiment}.log",
    benchmark:
        "benchmarks/sampling/sample_synthetic/{experiment}.tsv"
    conda:
        "../../envs/data.yaml"
    threads: 1
    # light, and classifier jobs wait for it
    priority: 1
    resources:
        mem_mb=4000,
        runtime=60,
    script:
        "../scripts/sample_synthetic.py"


rule build_trainset:
    """Replicate r: the real subset of its fraction (shared by every experiment, paired) + the samples. Like
    train_classifier, one job per replicate or per experiment (`replicates_per_job`)."""
    input:
        unpack(trainset_inputs),
    output:
        csvs=per_replicate("results/trainsets/{experiment}/rep{rep}.csv"),
    params:
        experiment=experiment_params,
        seed=config["seed"],
        replicates=job_replicates,
        code=code_version("design", "trainsets"),
    log:
        per_replicate("logs/sampling/build_trainset/{experiment}/rep{rep}.log"),
    benchmark:
        per_replicate_benchmark("benchmarks/sampling/build_trainset")
    conda:
        "../../envs/data.yaml"
    threads: 1
    # light, and classifier jobs wait for it
    priority: 1
    resources:
        mem_mb=1000,
        runtime=10,
    script:
        "../scripts/build_trainset.py"


rule design_table:
    """What each experiment's train set holds per class: real and synthetic images, and the synthetic count
    its ratio asks for (fewer where a mask-to-image GAN has fewer label maps than asked)."""
    input:
        train="results/data/splits/train.csv",
        trainsets=expand("results/trainsets/{experiment}/rep0.csv", experiment=EXPERIMENT_IDS),
    output:
        csv=report("results/tables/design.csv", caption="../report/design.rst", category="Tables"),
        md="results/tables/design.md",
    params:
        experiments=[EXPERIMENTS[e].to_dict() for e in EXPERIMENT_IDS],
        ids=EXPERIMENT_IDS,
        code=code_version("design", "trainsets", "stats"),
    log:
        "logs/sampling/design_table.log",
    benchmark:
        "benchmarks/sampling/design_table.tsv"
    conda:
        "../../envs/data.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    script:
        "../scripts/design_table.py"
