"""One row per GAN: training length, selected snapshot, FID (Table 4 of the study)."""

import json

from ganaug.io import write_csv
from ganaug.progress import start_job
from ganaug.selection import gan_table

sm = snakemake  # noqa: F821
log, _ = start_job(sm.log[0], sm.threads)
# an external pool has no training.json (None: nothing trained)
training = iter(sm.input.training)
entries = [
    (gan, json.loads(open(sel).read()), None if gan in sm.params.external else json.loads(open(next(training)).read()))
    for gan, sel in zip(sm.params.gans, sm.input.selected)
]
table = gan_table(entries, labels=dict(sm.params.labels))
write_csv(sm.output.csv, table)
log.info("%s", table.to_string(index=False))
