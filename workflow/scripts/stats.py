"""Paired comparisons of every experiment with its baseline; one paper-style table per figure."""

from ganaug.progress import start_job
from ganaug.stats import write_stats

sm = snakemake  # noqa: F821
log, _ = start_job(sm.log[0], sm.threads)
stats = write_stats(sm.input.auc, sm.params.experiments, sm.output.stats, sm.params.tables_dir,
                    n_boot=sm.params.cfg["n_boot"], seed=sm.params.seed, alpha=sm.params.cfg["alpha"],
                    design_csv=sm.input.design)
log.info("%d comparisons, %d significant after Holm", int((stats["baseline"] != stats["experiment"]).sum()),
         int(stats["significant"].sum()))
