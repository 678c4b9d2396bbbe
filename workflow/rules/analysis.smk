"""Analysis: tidy AUC table -> paired statistics vs baselines -> Figure-2-style box plots per application and
test set; memorization audit per GAN."""


rule aggregate:
    input:
        predictions=prediction_files(),
    output:
        auc=report("results/auc.csv", caption="../report/auc.rst", category="Results"),
    params:
        experiments=[EXPERIMENTS[e].to_dict() for e in EXPERIMENT_IDS],
        runs=[(e, r, t) for e in EXPERIMENT_IDS for r in REPLICATES for t in TESTSETS],
        code=code_version("analysis", "metrics", "stats"),
    log:
        "logs/analysis/aggregate.log",
    benchmark:
        "benchmarks/analysis/aggregate.tsv"
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    script:
        "../scripts/aggregate.py"


rule stats:
    """Every experiment against its baseline, paired by replicate: difference, Wilcoxon with its interval, Holm."""
    input:
        auc="results/auc.csv",
        design="results/tables/design.csv",
    output:
        stats=report("results/stats.csv", caption="../report/stats.rst", category="Results"),
        tables=[
            report(f, caption="../report/tables.rst", category="Tables")
            for f in table_files()
        ],
    params:
        experiments=[EXPERIMENTS[e].to_dict() for e in EXPERIMENT_IDS],
        cfg=config["stats"],
        seed=config["seed"],
        tables_dir=lambda w, output: os.path.dirname(output.tables[0]),
        code=code_version("stats"),
    log:
        "logs/analysis/stats.log",
    benchmark:
        "benchmarks/analysis/stats.tsv"
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    script:
        "../scripts/stats.py"


rule plot_figures:
    input:
        auc="results/auc.csv",
        stats="results/stats.csv",
    output:
        figures=[report(f, caption="../report/figures.rst", category="Figures") for f in figure_files()],
    params:
        order={app: application_order(list(EXPERIMENTS.values()), app) for app in APPLICATIONS},
        # the all-real run 1:0 as a dotted reference line: the anonymization figure's "expected upper bound"
        reference={app: BASELINE_ID for app in APPLICATIONS if app in EXPERIMENTS[BASELINE_ID].applications},
        code=code_version("analysis"),
    log:
        "logs/analysis/figures.log",
    benchmark:
        "benchmarks/analysis/figures.tsv"
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    script:
        "../scripts/figures.py"


rule audit:
    """Memorization audit: each synthetic training image of a GAN against its nearest real training image (and, for
    translation GANs, its own source image under 8 flips/rotations); real-to-real baseline across lesions."""
    input:
        samples=samples_using_gan,
        csv="results/data/splits/train.csv",
        images_gan=lambda w: cache_file("splits/train", GAN_SIZE.get(w.gan, 256)),
        images_cls=cache_file("splits/train", CLS_SIZE),
        ancillary="results/ancillary/model.pt",
    output:
        nearest="results/audit/{gan}/nearest.csv",
        summary="results/audit/{gan}/summary.json",
        grid_phash=report("results/audit/{gan}/closest_phash.png", caption="../report/audit_grid.rst", category="Audit"),
        grid_features=report(
            "results/audit/{gan}/closest_features.png", caption="../report/audit_grid.rst", category="Audit"
        ),
    params:
        cfg=config["audit"],
        cls_size=CLS_SIZE,
        outdir=lambda w, output: os.path.dirname(output.summary),
        code=code_version("audit", "phash", "cache", "classifier"),
    log:
        "logs/analysis/audit/{gan}.log",
    benchmark:
        "benchmarks/analysis/audit/{gan}.tsv"
    conda:
        "../../envs/classifier.yaml"
    threads: 1
    resources:
        mem_mb=8000,
        runtime=60,
        gpu=1,
    script:
        "../scripts/audit.py"


rule audit_table:
    input:
        summaries=expand("results/audit/{gan}/summary.json", gan=all_gans()),
    output:
        csv=report("results/audit/summary.csv", caption="../report/audit.rst", category="Audit"),
    params:
        code=code_version("audit"),
    log:
        "logs/analysis/audit_table.log",
    benchmark:
        "benchmarks/analysis/audit_table.tsv"
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    script:
        "../scripts/audit_table.py"


rule report:
    """The Snakemake HTML report of this study (figures, AUC table, GAN sample grids, run statistics)."""
    input:
        analysis_files(),
    output:
        html="results/report.html",
    params:
        snakefile=workflow.main_snakefile,
        configfiles=" ".join(f"--configfile {f}" for f in workflow.overwrite_configfiles),
    log:
        "logs/analysis/report.log",
    benchmark:
        "benchmarks/analysis/report.tsv"
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    shell:
        # a second Snakemake reads this run's metadata; --nolock because this run holds the lock
        "snakemake --snakefile {params.snakefile} --directory . {params.configfiles} "
        "--report {output.html} --nolock > {log} 2>&1"
