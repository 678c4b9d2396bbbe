"""Write a toy external pool (a folder per class of fresh toyderm images) for trying `kind: external` without
images of one's own:

    python dev/toy_external_pool.py --out external/toy_pool --n-per-class 600 --seed 1

then in the config: gans: {toypool: {kind: external, path: external/toy_pool, abbreviation: toy}}."""

import argparse

from ganaug.toyderm import make_external_pool

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--out", required=True, help="folder to write (benign/ and melanoma/ inside)")
parser.add_argument("--n-per-class", type=int, required=True, help="images per class")
parser.add_argument("--seed", type=int, required=True, help="rendering seed (another than the study's datasets)")
parser.add_argument("--size", type=int, default=64, help="image size in pixels (default 64, as toyderm's)")
args = parser.parse_args()
print(make_external_pool(args.out, args.n_per_class, args.seed, size=args.size))
