"""Classifiers: the ancillary one (once) and one per experiment x replicate -> TTA predictions per test set.

Test-set images enter only `evaluate`: no training, early stopping or checkpoint choice can see them.
"""


rule train_ancillary:
    input:
        train="results/data/splits/train.csv",
        train_images=cache_file("splits/train", CLS_SIZE),
        val="results/data/splits/val.csv",
        val_images=cache_file("splits/val", CLS_SIZE),
    output:
        model="results/ancillary/model.pt",
        history="results/ancillary/history.csv",
    params:
        cfg=ANCILLARY_TRAINING,
        cache_size=CLS_SIZE,
        seed=config["seed"],
        outdir=lambda w, output: os.path.dirname(output.model),
        code=code_version("classifier", "metrics"),
    log:
        "logs/classifier/train_ancillary.log",
    benchmark:
        "benchmarks/classifier/train_ancillary.tsv"
    conda:
        "../../envs/classifier.yaml"
    threads: 1
    # every GAN's checkpoint selection waits for it: before the GANs that are not running yet
    priority: 15
    resources:
        mem_mb=8000,
        runtime=720,
        gpu=1,
    script:
        "../scripts/train_classifier.py"


rule train_classifier:
    """One replicate of an experiment, or all of them one after the other (`replicates_per_job: all`: one
    interpreter start-up and one load of the real images for the experiment); each replicate resumes per
    epoch and is seeded as in a job of its own."""
    input:
        trainsets=per_replicate("results/trainsets/{experiment}/rep{rep}.csv"),
        train="results/data/splits/train.csv",
        train_images=cache_file("splits/train", CLS_SIZE),
        val="results/data/splits/val.csv",
        val_images=cache_file("splits/val", CLS_SIZE),
        manifests=pool_manifests,
    output:
        models=per_replicate("results/runs/{experiment}/rep{rep}/model.pt"),
        histories=per_replicate("results/runs/{experiment}/rep{rep}/history.csv"),
    params:
        cfg=CLASSIFIER_TRAINING,
        cache_size=CLS_SIZE,
        seed=config["seed"],
        # replicate r of every experiment shares its seed and random streams (false: seed per experiment)
        common_random_numbers=config["classifier"]["common_random_numbers"],
        replicates=job_replicates,
        code=code_version("classifier", "metrics", "cache"),
    log:
        per_replicate("logs/classifier/train_classifier/{experiment}/rep{rep}.log"),
    benchmark:
        per_replicate_benchmark("benchmarks/classifier/train_classifier")
    conda:
        "../../envs/classifier.yaml"
    threads: 1
    resources:
        mem_mb=8000,
        runtime=1440 * (1 if REPLICATES_PER_JOB == 1 else len(REPLICATES)),
        gpu=1,
    script:
        "../scripts/train_classifier.py"


rule evaluate:
    """Every replicate of an experiment on every test set: the mean of `tta` augmented replicas per image,
    in batches on the device (one job per experiment, so models and test images are loaded once)."""
    input:
        models=expand("results/runs/{{experiment}}/rep{rep}/model.pt", rep=REPLICATES),
        csvs=expand("results/data/testsets/{test_set}.csv", test_set=TESTSETS),
        images=expand(cache_file("testsets/{test_set}", CLS_SIZE), test_set=TESTSETS),
    output:
        predictions=expand(
            "results/runs/{{experiment}}/rep{rep}/predictions/{test_set}.csv", rep=REPLICATES, test_set=TESTSETS
        ),
    params:
        test_sets=TESTSETS,
        tta=config["classifier"]["tta"],
        augment=config["classifier"]["augment"],
        seed=config["seed"],
        code=code_version("classifier"),
    log:
        "logs/classifier/evaluate/{experiment}.log",
    benchmark:
        "benchmarks/classifier/evaluate/{experiment}.tsv"
    conda:
        "../../envs/classifier.yaml"
    threads: 1
    resources:
        mem_mb=8000,
        runtime=240,
        gpu=1,
    script:
        "../scripts/evaluate.py"
