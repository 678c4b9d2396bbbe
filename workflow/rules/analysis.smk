"""Analysis: tidy AUC table -> Figure-2-style box plots per application and test set."""


rule aggregate:
    input:
        predictions=prediction_files(),
    output:
        auc=report("results/auc.csv", caption="../report/auc.rst", category="Results"),
    params:
        experiments=[EXPERIMENTS[e].to_dict() for e in EXPERIMENT_IDS],
        runs=[(e, r, t) for e in EXPERIMENT_IDS for r in REPLICATES for t in TESTSETS],
        code=code_version("analysis", "metrics"),
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


rule plot_figures:
    input:
        auc="results/auc.csv",
    output:
        figures=[report(f, caption="../report/figures.rst", category="Figures") for f in figure_files()],
    params:
        order={app: [e for e in EXPERIMENT_IDS if app in EXPERIMENTS[e].applications] for app in APPLICATIONS},
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


rule report:
    """The Snakemake HTML report of this study (figures, AUC table, GAN sample grids, run statistics)."""
    input:
        "results/auc.csv",
        figure_files(),
        gan_table_file(),
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
