"""What each experiment's train set holds per class (real, synthetic, and the synthetic count asked)."""

from ganaug.design import Experiment
from ganaug.io import atomic_path, write_csv
from ganaug.progress import start_job
from ganaug.stats import to_markdown
from ganaug.trainsets import design_table

sm = snakemake  # noqa: F821
log, _ = start_job(sm.log[0], sm.threads)
experiments = [Experiment.from_dict(d) for d in sm.params.experiments]
table = design_table(experiments, sm.input.train, dict(zip(sm.params.ids, sm.input.trainsets)))
write_csv(sm.output.csv, table)
with atomic_path(sm.output.md) as tmp:
    tmp.write_text(to_markdown(table.drop(columns=["position"])))
log.info("%d rows", len(table))
