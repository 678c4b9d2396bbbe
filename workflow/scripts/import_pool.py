"""Check an external pool (a folder per class or an index CSV) and write it as pool shards."""

import pandas as pd

from ganaug.design import Experiment
from ganaug.external import import_pool, synthetic_demand
from ganaug.progress import start_job
from ganaug.trainsets import class_counts

sm = snakemake  # noqa: F821
log, _ = start_job(sm.log[0], sm.threads)
experiments = [Experiment.from_dict(d) for d in sm.params.experiments]
demand = synthetic_demand(experiments, sm.wildcards.gan, class_counts(pd.read_csv(sm.input.train)))
import_pool(sm.wildcards.gan, dict(sm.params.entry), sm.input.train, demand, sm.params.outdir, sm.output.shards,
            shard_size=sm.params.shard_size, one_per_mask=sm.params.one_per_mask, workers=sm.threads, log=log)
