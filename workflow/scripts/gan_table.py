"""One row per GAN: training length, selected snapshot, FID (Table 4 of the study)."""

import json

from ganaug.io import write_csv
from ganaug.progress import start_job
from ganaug.selection import gan_table

sm = snakemake  # noqa: F821
log, _ = start_job(sm.log[0], sm.threads)
entries = [
    (gan, json.loads(open(sel).read()), json.loads(open(train).read()))
    for gan, sel, train in zip(sm.params.gans, sm.input.selected, sm.input.training)
]
table = gan_table(entries)
write_csv(sm.output.csv, table)
log.info("%s", table.to_string(index=False))
