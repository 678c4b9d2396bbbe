"""Data-parallel GAN training over several processes (one per GPU), launched with torchrun.

What a run with world size W does, so that it equals the one-process run with the same config (up to
float reduction order; tests/test_distributed.py):
- `batch` in the config is the GLOBAL batch; each rank trains on batch / W images (must divide).
- Every random draw that has one row per sample (data order and flips, latents, fake classes, noise
  inputs, augmentation parameters, ...) is made for the whole global batch by every rank with the same
  generators, and each rank keeps its rows: rows r, r + W, r + 2W, ... (a strided slice, so that the
  minibatch-stddev groups of StyleGAN2/PGAN, samples i, i + n/g, ..., are the same groups as in the
  global batch whenever the per-rank batch holds whole groups). Scalar draws are the same on every rank.
  The generators therefore stay in step on all ranks, and a snapshot (written by rank 0) is the same
  snapshot a one-process run writes: it resumes with any number of processes.
- Losses are means over the rank's rows; before every optimiser step the gradients are summed over the
  ranks (one all_reduce of a flat buffer) and divided by W, which is the gradient of the global mean.
  Batch statistics the trainer keeps (StyleGAN2's w_avg and path-length mean, ADA's sign statistic) are
  reduced the same way; the logged loss statistics are averaged over the ranks at every snapshot.
- Networks are not wrapped in DistributedDataParallel: the lazy regularisation steps (R1, path length)
  and the per-level optimiser resets of PGAN make explicit reduction simpler and exact.
- BatchNorm layers (SPADE) would see per-rank batch statistics: training a GAN with BatchNorm on
  several processes is refused.

A trainer that supports this takes `self.dist = context()` and uses its draw helpers (randn, rand,
randint, shard), `reduce_grads` before each optimiser step and `mean`/`sum` for its batch statistics;
with one process every helper is the plain torch call, so one-process training is unchanged.

Launch: `run_distributed(nproc, args)` runs `python -m torch.distributed.run --standalone
--nproc_per_node=nproc -m ganaug.gans.launch args...` (the same as `torchrun ...`); each process calls
`init_from_env` (RANK, WORLD_SIZE, LOCAL_RANK from torchrun; backend nccl on CUDA, gloo on CPU; rank r
uses cuda:LOCAL_RANK).
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys

import torch
import torch.distributed as tdist

from ganaug.io import InputError

ENV_KEYS = ("RANK", "WORLD_SIZE", "LOCAL_RANK")


class _NoiseShard:
    """Stands in for a torch.Generator where a network draws per-sample noise itself (StyleGAN2's noise
    inputs): randn(shape) of THIS rank's shape draws the global batch's noise and keeps this rank's rows."""

    def __init__(self, ctx: "Context", generator: torch.Generator):
        self.ctx, self.generator = ctx, generator

    def randn(self, shape, device=None, dtype=None) -> torch.Tensor:
        shape = (shape[0] * self.ctx.world, *shape[1:])
        return self.ctx.randn(shape, self.generator, device, dtype)


class Context:
    """This process's place in a data-parallel run: rank, world size, and the collectives a trainer
    needs. world == 1 (no process group): every helper is the plain one-process operation."""

    def __init__(self, rank: int = 0, world: int = 1, local_rank: int = 0, device=None):
        self.rank, self.world, self.local_rank = int(rank), int(world), int(local_rank)
        self.device = torch.device(device) if device is not None else torch.device("cpu")

    @property
    def active(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def __repr__(self):
        return f"Context(rank={self.rank}, world={self.world}, device={self.device})"

    # ------------------------------------------------------------------------------------- batches
    def check_batch(self, batch: int, key: str) -> int:
        """The per-rank share of a global batch `batch`; InputError naming `key` if W does not divide it."""
        if batch % self.world:
            raise InputError(f"{key}: {batch} is the global batch of a run on {self.world} processes "
                             f"(resources gpu); it must be a multiple of {self.world}")
        return batch // self.world

    def check_groups(self, batch: int, group: int, log: logging.Logger, what: str = "minibatch-stddev"):
        """Warn when the per-rank batch splits the `group`-sized minibatch-stddev groups differently from
        the global batch (then the run is not the one-process run; it is what StyleGAN2-ADA does too)."""
        def g(n):
            k = min(group, n)
            while n % k:
                k -= 1
            return k

        if self.active and g(batch) != g(batch // self.world):
            log.warning(f"{what} groups: {g(batch // self.world)} per process (batch {batch // self.world}) "
                        f"instead of {g(batch)} (batch {batch}); the run differs from a one-process run")

    def shard(self, x: torch.Tensor) -> torch.Tensor:
        """This rank's rows (r, r + W, ...) of a global-batch tensor."""
        return x[self.rank::self.world] if self.active else x

    def global_shape(self, x: torch.Tensor) -> tuple:
        """The global-batch shape of this rank's tensor x."""
        return (x.shape[0] * self.world, *x.shape[1:])

    def randn(self, shape, generator, device=None, dtype=None) -> torch.Tensor:
        """This rank's rows of torch.randn(shape) (shape: the GLOBAL batch's)."""
        return self.shard(torch.randn(shape, generator=generator, device=device, dtype=dtype))

    def rand(self, shape, generator, device=None) -> torch.Tensor:
        """This rank's rows of torch.rand(shape) (shape: the GLOBAL batch's)."""
        return self.shard(torch.rand(shape, generator=generator, device=device))

    def randint(self, low: int, high: int, shape, generator, device=None) -> torch.Tensor:
        """This rank's rows of torch.randint(low, high, shape) (shape: the GLOBAL batch's)."""
        return self.shard(torch.randint(low, high, shape, generator=generator, device=device))

    def noise_generator(self, generator: torch.Generator):
        """What to pass as `generator` to a network that draws per-sample noise with it: the generator
        itself in one process, else an object whose randn(shape) draws for the global batch."""
        return _NoiseShard(self, generator) if self.active else generator

    def per_sample(self, fn, x: torch.Tensor) -> torch.Tensor:
        """fn(x) for a per-sample random transform fn that draws one row per sample of its input (ADA):
        runs fn on the global batch with the other ranks' rows zero and keeps this rank's rows, so the
        draws are those of the one-process run. Differentiable in x."""
        if not self.active:
            return fn(x)
        zero = torch.zeros_like(x)
        full = torch.stack([x if r == self.rank else zero for r in range(self.world)], dim=1)
        out = fn(full.reshape(self.global_shape(x)))
        return out.reshape(x.shape[0], self.world, *out.shape[1:])[:, self.rank]

    # ------------------------------------------------------------------------------------ reductions
    def all_reduce(self, x: torch.Tensor) -> None:
        """Sum x over the ranks, in place (the one collective everything here goes through)."""
        tdist.all_reduce(x)

    def reduce_grads(self, *modules: torch.nn.Module) -> None:
        """Average the gradients of the modules' parameters over the ranks (call after backward, before
        the optimiser step). Parameters without a gradient keep none (the same ones on every rank)."""
        if not self.active:
            return
        grads = [p.grad for m in modules for p in m.parameters() if p.grad is not None]
        if not grads:
            return
        count = torch.tensor([float(len(grads))], device=grads[0].device, dtype=grads[0].dtype)
        flat = torch.cat([g.reshape(-1) for g in grads] + [count])
        self.all_reduce(flat)
        if int(flat[-1].item()) != len(grads) * self.world:
            raise RuntimeError(f"rank {self.rank}: the ranks have gradients for different parameters")
        flat = flat[:-1].div_(self.world)
        i = 0
        for g in grads:
            g.copy_(flat[i:i + g.numel()].view_as(g))
            i += g.numel()

    def sum(self, x: torch.Tensor) -> torch.Tensor:
        """Sum over the ranks of tensor x (a new tensor; x itself in one process)."""
        if not self.active:
            return x
        y = x.detach().clone()
        self.all_reduce(y)
        return y

    def mean(self, x: torch.Tensor) -> torch.Tensor:
        """Mean over the ranks of tensor x (x itself in one process)."""
        return self.sum(x) / self.world if self.active else x

    def average_stats(self, stats: dict) -> None:
        """Average a trainer's float statistics sums over the ranks, in place (same keys on every rank)."""
        if not self.active or not stats:
            return
        keys = sorted(stats)
        t = torch.tensor([float(stats[k]) for k in keys], dtype=torch.float64, device=self.device)
        t = self.sum(t) / self.world
        for k, v in zip(keys, t.tolist()):
            stats[k] = v

    def barrier(self) -> None:
        if self.active:
            tdist.barrier()


def context() -> Context:
    """The Context of this process: from the initialised process group, else the one-process one."""
    if not (tdist.is_available() and tdist.is_initialized()):
        return Context()
    world = tdist.get_world_size()
    if tdist.get_backend() == "nccl":
        device = torch.device("cuda", torch.cuda.current_device())
    else:
        device = torch.device("cpu")
    return Context(tdist.get_rank(), world, int(os.environ.get("LOCAL_RANK", 0)), device)


def check_supported(gan: str, trainer) -> None:
    """InputError unless `trainer` can train on several processes (see the module doc)."""
    if getattr(trainer, "dist", None) is None:
        raise InputError(f"gans.{gan}: training on several GPUs (resources gpu > 1) is not supported for "
                         f"this GAN; give its train_gan rule gpu=1")
    for name in ("G", "D"):
        for m in getattr(trainer, name).modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                raise InputError(f"gans.{gan}: its {name} has BatchNorm layers (batch statistics would be "
                                 f"per GPU); training it on several GPUs (resources gpu > 1) is not "
                                 f"supported: give its train_gan rule gpu=1")


def init_from_env(device: str = "auto") -> Context:
    """Join the process group torchrun set up (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT in the
    environment): backend nccl on CUDA (this rank on cuda:LOCAL_RANK), gloo on CPU. device: 'auto'
    (CUDA when present), 'cpu' or 'cuda'."""
    missing = [k for k in ENV_KEYS if k not in os.environ]
    if missing:
        raise InputError(f"distributed training: {', '.join(missing)} not set; start the processes with "
                         "torchrun (ganaug.gans.distributed.run_distributed)")
    rank, world, local_rank = (int(os.environ[k]) for k in ENV_KEYS)
    use_cuda = torch.cuda.is_available() if device == "auto" else str(device).startswith("cuda")
    if use_cuda:
        if not torch.cuda.is_available():
            raise InputError("distributed training: device cuda requested but CUDA is not available")
        if local_rank >= torch.cuda.device_count():
            raise InputError(f"distributed training: process {local_rank} of {world} but only "
                             f"{torch.cuda.device_count()} CUDA device(s) visible")
        torch.cuda.set_device(local_rank)
        dev = torch.device("cuda", local_rank)
    else:
        dev = torch.device("cpu")
    if not tdist.is_initialized():
        tdist.init_process_group("nccl" if use_cuda else "gloo", rank=rank, world_size=world,
                                 device_id=dev if use_cuda else None)
    return Context(rank, world, local_rank, dev)


def shutdown() -> None:
    if tdist.is_available() and tdist.is_initialized():
        tdist.destroy_process_group()


def run_distributed(nproc: int, args: list[str], threads: int = 1, log: logging.Logger | None = None,
                    module: str = "ganaug.gans.launch") -> None:
    """Run `python -m module args...` as nproc processes of one data-parallel run on this machine
    (torchrun --standalone), each with threads // nproc (at least 1) CPU threads; waits for them and
    raises RuntimeError if any failed. The processes' stdout/stderr are this process's."""
    nproc = int(nproc)
    if nproc < 2:
        raise ValueError(f"run_distributed: needs at least 2 processes, got {nproc}")
    log = log or logging.getLogger("ganaug")
    per_rank = max(1, int(threads) // nproc)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           "-m", module, *[str(a) for a in args]]
    env = dict(os.environ, OMP_NUM_THREADS=str(per_rank))
    log.info(f"launching {nproc} processes ({per_rank} CPU thread(s) each): {' '.join(cmd)}")
    proc = subprocess.Popen(cmd, env=env)
    try:
        rc = proc.wait()
    finally:
        if proc.poll() is None:  # interrupted: stop torchrun (it stops its workers)
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
    if rc != 0:
        raise RuntimeError(f"distributed training ({nproc} processes) failed with exit status {rc}; the "
                           "processes' errors are in the log")
