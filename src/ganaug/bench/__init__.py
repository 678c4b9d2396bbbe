"""Benchmark of the study's GPU work and its predicted cost: ``python -m ganaug.bench --help``.

- ``measure``: steady-state throughput of each GAN (training img/s, s/kimg, peak memory, generation
  img/s), of the classifier (training img/s, TTA forward passes/s, plain forward img/s) and of the FID
  network, fp32 and bf16, through the library's public interfaces; runnable as a script against any
  checkout's ``src`` (old code against new, same harness);
- ``cost``: the whole study's GPU-hours per stage and its wall time on N GPUs, from the config and
  those throughputs;
- ``report``: the markdown tables; ``__main__``: the command line (JSON out, tables printed).
"""
