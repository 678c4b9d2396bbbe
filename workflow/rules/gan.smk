"""GANs: train (resumable, snapshots + metrics.jsonl) -> select the checkpoint by the study's FID rule."""


rule train_gan:
    input:
        csv="results/data/splits/train.csv",
        images=lambda w: cache_file("splits/train", GAN_SIZE.get(w.gan, 256)),
    output:
        summary="results/gans/{gan}/training.json",
    params:
        cfg=lambda w: config["gans"].get(w.gan, {}),
        seed=config["seed"],
        outdir=lambda w, output: os.path.dirname(output.summary),
        code=code_version("gans"),
    log:
        "logs/gans/train_gan/{gan}.log",
    benchmark:
        "benchmarks/gans/train_gan/{gan}.tsv"
    conda:
        "../../envs/gan.yaml"
    # half the cores: jobs that need no GAN (data, baselines) go on beside it
    threads: max(1, workflow.cores // 2)
    priority: 10
    resources:
        mem_mb=16000,
        runtime=4320,
        gpu=1,
    script:
        "../scripts/train_gan.py"


rule select_checkpoint:
    """FID of every snapshot against the real training images; the study's rule picks one."""
    input:
        summary="results/gans/{gan}/training.json",
        csv="results/data/splits/train.csv",
        images=lambda w: cache_file("splits/train", GAN_SIZE.get(w.gan, 256)),
        ancillary="results/ancillary/model.pt",
    output:
        selected="results/gans/{gan}/selected.json",
        fid="results/gans/{gan}/fid.csv",
        grid=report("results/gans/{gan}/selected_grid.png", caption="../report/gan_grid.rst", category="GANs"),
    params:
        fid=config["fid"],
        seed=config["seed"],
        code=code_version("gans", "fid", "selection", "weights", "classifier"),
    log:
        "logs/gans/select_checkpoint/{gan}.log",
    benchmark:
        "benchmarks/gans/select_checkpoint/{gan}.tsv"
    conda:
        "../../envs/gan.yaml"
    threads: 4
    resources:
        mem_mb=16000,
        runtime=240,
        gpu=1,
    script:
        "../scripts/select_checkpoint.py"
