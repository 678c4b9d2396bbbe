"""Split the dataset into train / val / in-distribution test (seeded and grouped, or from published lists)."""

from ganaug.datasets import import_split_lists, read_index, split_dataset
from ganaug.io import seed_from, write_csv
from ganaug.progress import start_job
from ganaug.data.sources import verify_sources

sm = snakemake  # noqa: F821
log, _ = start_job(sm.log[0], sm.threads)
verify_sources(sm.params.get("lists", {}), log=log)  # downloaded or `local` list files: their sha256
index = read_index(sm.input.index)
lists = {k[len("list_"):]: v for k, v in sm.input.items() if k.startswith("list_")}
if lists:
    parts = import_split_lists(index, lists)
else:
    parts = split_dataset(index, sm.params.fractions, seed_from(sm.params.seed, "split"), group_col=sm.params.group_by)
for name in ("train", "val", "test"):
    write_csv(sm.output[name], parts[name])
    log.info("%s: %d images (%d melanoma)", name, len(parts[name]), int(parts[name]["label"].sum()))
