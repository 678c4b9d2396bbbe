"""Near copies per GAN, measure and threshold, beside the real-to-real baseline."""

import json

from ganaug.audit import audit_table
from ganaug.io import write_csv
from ganaug.progress import start_job

sm = snakemake  # noqa: F821
log, _ = start_job(sm.log[0], sm.threads)
table = audit_table([json.loads(open(p).read()) for p in sm.input.summaries])
write_csv(sm.output.csv, table)
log.info("%s", table.to_string(index=False))
