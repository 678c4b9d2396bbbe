"""The FID Inception weights (fid.inception_weights): fetched into the cache once and checked."""

from ganaug.fid import inception_weights_record
from ganaug.io import write_json
from ganaug.progress import start_job

sm = snakemake  # noqa: F821
log, _ = start_job(sm.log[0], sm.threads)
record = inception_weights_record({"inception_weights": sm.params.weights, "cache_dir": "results/cache/weights"})
write_json(sm.output.record, record)
log.info("FID Inception weights: %s (sha256 %s)", record["path"], record["sha256"])
