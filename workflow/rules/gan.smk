"""GANs: train (resumable, snapshots + metrics.jsonl) -> select the checkpoint by the study's FID rule ->
one table of the GANs (the study's Table 4)."""


rule train_gan:
    input:
        unpack(gan_data),
    output:
        summary="results/gans/{gan}/training.json",
    params:
        cfg=lambda w: config["gans"].get(w.gan, {}),
        seed=config["seed"],
        outdir=lambda w, output: os.path.dirname(output.summary),
        code=gan_code(),
    log:
        "logs/gans/train_gan/{gan}.log",
    benchmark:
        "benchmarks/gans/train_gan/{gan}.tsv"
    conda:
        "../../envs/gan.yaml"
    # half the cores: jobs that need no GAN (data, baselines) go on beside it
    threads: max(1, workflow.cores // 2)
    priority: gan_priority
    resources:
        mem_mb=16000,
        runtime=4320,
        # gpu=N > 1 (a profile's set-resources, e.g. train_gan: {gpu: 4}): N data-parallel processes on N GPUs
        # of one machine (torchrun, ganaug.gans.launch), sharing the threads; gans.<gan>.batch stays the
        # global batch, so the result is that of one GPU (up to float rounding) and a run resumes on any N
        gpu=1,
    wildcard_constraints:
        gan=trained_pattern(),
    script:
        "../scripts/train_gan.py"


rule fid_weights:
    """The standard FID Inception network's weights (fid.inception_weights): downloaded once and checked
    before the GANs' FID jobs, which run in parallel, use them."""
    output:
        record="results/cache/fid_inception_weights.json",
    # the file's source only (no code version), as for the data downloads: a library change re-downloads
    # nothing and so re-runs no FID job
    params:
        weights=config["fid"].get("inception_weights"),
    log:
        "logs/gans/fid_weights.log",
    benchmark:
        "benchmarks/gans/fid_weights.tsv"
    conda:
        "../../envs/gan.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=60,
    script:
        "../scripts/fid_weights.py"


rule select_checkpoint:
    """FID of every snapshot against the real training images; the study's rule picks one."""
    input:
        unpack(gan_data),
        summary="results/gans/{gan}/training.json",
        ancillary="results/ancillary/model.pt",
        inception=fid_inception_weights,
    output:
        selected="results/gans/{gan}/selected.json",
        fid="results/gans/{gan}/fid.csv",
        grid=report("results/gans/{gan}/selected_grid.png", caption="../report/gan_grid.rst", category="GANs"),
    params:
        fid=config["fid"],
        seed=config["seed"],
        code=gan_code("fid", "selection", "weights", "classifier"),
    log:
        "logs/gans/select_checkpoint/{gan}.log",
    benchmark:
        "benchmarks/gans/select_checkpoint/{gan}.tsv"
    conda:
        "../../envs/gan.yaml"
    # at most half the cores: with two, it runs beside another GAN's training instead of waiting for both cores
    threads: min(4, max(1, workflow.cores // 2))
    priority: gan_priority
    resources:
        mem_mb=16000,
        runtime=240,
        gpu=1,
    wildcard_constraints:
        gan=trained_pattern(),
    script:
        "../scripts/select_checkpoint.py"


rule external_fid:
    """An external pool against the real training images, as a GAN's chosen snapshot is measured: FID, KID,
    precision / recall, overall and per class, on the same real subset and features. Nothing to choose."""
    input:
        unpack(gan_data),
        shards="results/pools/{gan}/shards.csv",
        ancillary="results/ancillary/model.pt",
        inception=fid_inception_weights,
    output:
        selected="results/gans/{gan}/selected.json",
        fid="results/gans/{gan}/fid.csv",
        grid=report("results/gans/{gan}/selected_grid.png", caption="../report/gan_grid.rst", category="GANs"),
    params:
        fid=config["fid"],
        seed=config["seed"],
        code=code_version("fid", "selection", "quality", "weights", "classifier", "pool", "external"),
    log:
        "logs/gans/external_fid/{gan}.log",
    benchmark:
        "benchmarks/gans/external_fid/{gan}.tsv"
    conda:
        "../../envs/gan.yaml"
    threads: 4
    resources:
        mem_mb=16000,
        runtime=240,
        gpu=1,
    wildcard_constraints:
        gan=external_pattern(),
    script:
        "../scripts/external_fid.py"


rule gan_table:
    """Training length, selected snapshot and FID of every GAN the design uses (the study's Table 4); an
    external pool's row has no training length and snapshot 'external'."""
    input:
        selected=expand("results/gans/{gan}/selected.json", gan=all_gans()),
        training=expand("results/gans/{gan}/training.json", gan=[g for g in all_gans() if g not in EXTERNAL]),
    output:
        csv=report("results/gan_fid.csv", caption="../report/gan_fid.rst", category="GANs"),
    params:
        gans=all_gans(),
        external=[g for g in all_gans() if g in EXTERNAL],
        labels=gan_labels(),
        code=code_version("selection"),
    log:
        "logs/gans/gan_table.log",
    benchmark:
        "benchmarks/gans/gan_table.tsv"
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    script:
        "../scripts/gan_table.py"
