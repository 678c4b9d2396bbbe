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
- Losses are means over the rank's rows; the gradients are averaged over the ranks before every optimiser
  step, which gives the gradient of the global mean. The averaging runs in buckets (GradReducer, about
  `bucket_mb` MB each) launched as asynchronous all_reduces while backward still runs: a hook on every
  parameter marks its gradient done, a bucket whose gradients are all done is reduced (buckets are
  launched in one fixed order, the same on every rank), and `reduce_grads` launches the rest and waits.
  No host sync: that the ranks reduced gradients of the same parameters is checked on the device and
  read at snapshot time (`check_reductions`). Batch statistics the trainer keeps (StyleGAN2's w_avg and
  path-length mean, ADA's sign statistic) are reduced with `mean`/`sum`; the logged loss statistics are
  averaged over the ranks at every snapshot.
- Per-sample random transforms (ADA) run on this rank's rows only: `draws(generator)` gives an object
  whose rand/randn(shape of this rank's rows) draw the global batch's numbers and keep this rank's rows,
  so the parameters are those of the one-process run while the work is 1/W of it.
- Networks are not wrapped in DistributedDataParallel: the lazy regularisation steps (R1, path length)
  and the per-level optimiser resets and unused layers of PGAN make explicit reduction simpler and exact
  (a parameter without a gradient keeps none, as in one process).
- BatchNorm layers (SPADE) would see per-rank batch statistics: training a GAN with BatchNorm on
  several processes is refused.

A trainer that supports this takes `self.dist = context()` and uses its draw helpers (randn, rand,
randint, shard, draws), `reduce_grads` before each optimiser step and `mean`/`sum` for its batch
statistics; with one process every helper is the plain torch call, so one-process training is unchanged.

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

from .accel import DeviceStats

ENV_KEYS = ("RANK", "WORLD_SIZE", "LOCAL_RANK")


class ShardedDraws:
    """Stands in for a torch.Generator where per-sample numbers are drawn for THIS rank's rows (StyleGAN2's
    noise inputs, ADA's parameters): rand/randn(shape of this rank's rows) draw the global batch's numbers
    (shape[0] * W rows) and keep this rank's rows. With one process they are the plain draws."""

    def __init__(self, ctx: "Context", generator: torch.Generator):
        self.ctx, self.generator = ctx, generator

    def _global(self, shape) -> tuple:
        shape = tuple(shape) if isinstance(shape, (tuple, list, torch.Size)) else (int(shape),)
        return (shape[0] * self.ctx.world, *shape[1:])

    def randn(self, shape, device=None, dtype=None) -> torch.Tensor:
        return self.ctx.randn(self._global(shape), self.generator, device, dtype)

    def rand(self, shape, device=None) -> torch.Tensor:
        return self.ctx.rand(self._global(shape), self.generator, device)


class _Done:
    """The handle of a reduction that has already completed (a stand-in for an async work object)."""

    def wait(self):
        return True


class GradReducer:
    """Averages the gradients of some parameters over the ranks, in buckets reduced while backward runs
    (see the module doc). One per set of modules that a trainer passes to Context.reduce_grads.

    A bucket goes out once the gradients it expects are done: those of its parameters that have had a
    gradient in an earlier round (PGAN's layers of other levels, or a layer a loss does not reach, have
    none). Buckets go out in index order only, so every rank issues the same collectives in the same
    order. A gradient that arrives after its bucket went out (a parameter used for the first time, or a
    second backward before the reduction) makes the round reduce everything again after backward:
    correct, only not overlapped."""

    def __init__(self, ctx: "Context", params, bucket_bytes: int):
        self.ctx = ctx
        params = list(params)
        # backward produces the last layers' gradients first: bucket in reverse order of registration
        self.buckets: list[list[torch.nn.Parameter]] = []
        size, key = 0, None
        for p in reversed(params):
            k = (p.dtype, p.device)
            nbytes = p.numel() * p.element_size()
            if not self.buckets or k != key or size + nbytes > bucket_bytes:
                self.buckets.append([])
                size, key = 0, k
            self.buckets[-1].append(p)
            size += nbytes
        self.bucket_of = {id(p): i for i, b in enumerate(self.buckets) for p in b}
        # the parameters that have had a gradient (this first call comes after a backward without hooks)
        self.expected = {id(p) for p in params if p.grad is not None}
        self.mismatch = None  # device flag: a reduction whose gradient count differed between ranks
        self._reset()
        self.handles = [p.register_post_accumulate_grad_hook(self._on_grad) for p in params]

    def _reset(self):
        self.need = [sum(id(p) in self.expected for p in b) for b in self.buckets]
        self.done = [0] * len(self.buckets)
        self.fired: set[int] = set()
        self.next = 0           # buckets launch in index order only: the same collectives on every rank
        self.pending = []       # (grads, flat buffer, work)
        self.again = False      # a gradient came after its bucket went out: reduce all after backward

    def _on_grad(self, p):
        i = self.bucket_of[id(p)]
        if id(p) in self.fired or i < self.next:
            self.again = True
        self.fired.add(id(p))
        if id(p) in self.expected:
            self.done[i] += 1
        while not self.again and self.next < len(self.buckets) and self.done[self.next] >= self.need[self.next]:
            self._launch(self.next)
            self.next += 1

    def _launch(self, i: int) -> None:
        grads = [p.grad for p in self.buckets[i] if p.grad is not None]
        if not grads:
            return
        # the count of gradients rides along: averaged over the ranks it stays the count when all agree
        count = torch.full((1,), float(len(grads)), device=grads[0].device, dtype=grads[0].dtype)
        flat = torch.cat([g.reshape(-1) for g in grads] + [count]).div_(self.ctx.world)
        self.pending.append((grads, flat, self.ctx.all_reduce_async(flat)))

    def finish(self) -> None:
        """Launch the buckets not launched yet, wait for all, and write the averaged gradients back."""
        if self.again:  # some gradients changed after their bucket went out: reduce them all anew
            for _, _, work in self.pending:
                work.wait()
            self.pending, self.next = [], 0
        while self.next < len(self.buckets):
            self._launch(self.next)
            self.next += 1
        for grads, flat, work in self.pending:
            work.wait()
            bad = (flat[-1] - len(grads)).abs() > 0.5 / self.ctx.world  # a mean of integer counts
            self.mismatch = bad if self.mismatch is None else self.mismatch | bad
            i = 0
            for g in grads:
                g.copy_(flat[i:i + g.numel()].view_as(g))
                i += g.numel()
        self.expected |= self.fired
        self._reset()

    def remove(self) -> None:
        for h in self.handles:
            h.remove()


class Context:
    """This process's place in a data-parallel run: rank, world size, and the collectives a trainer
    needs. world == 1 (no process group): every helper is the plain one-process operation."""

    bucket_mb = 25.0  # gradient bucket size (DistributedDataParallel's default)

    def __init__(self, rank: int = 0, world: int = 1, local_rank: int = 0, device=None):
        self.rank, self.world, self.local_rank = int(rank), int(world), int(local_rank)
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.reducers: dict[tuple, GradReducer] = {}

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
        itself in one process, else a ShardedDraws whose randn(shape) draws for the global batch."""
        return ShardedDraws(self, generator) if self.active else generator

    def draws(self, generator: torch.Generator) -> ShardedDraws:
        """Per-sample draws for this rank's rows (rand/randn of this rank's shape, the numbers of the
        one-process run): what a per-sample random transform (ADA) draws its parameters with, so that
        each rank transforms only its own rows. A ShardedDraws also with one process."""
        return ShardedDraws(self, generator)

    def per_sample(self, fn, x: torch.Tensor) -> torch.Tensor:
        """fn(x) for a per-sample random transform fn that draws one row per sample of its input with a
        torch.Generator: runs fn on the global batch with the other ranks' rows zero and keeps this
        rank's rows, so the draws are those of the one-process run. Differentiable in x. W times the
        work of fn on this rank's rows: a transform that takes `draws(generator)` needs no such detour."""
        if not self.active:
            return fn(x)
        zero = torch.zeros_like(x)
        full = torch.stack([x if r == self.rank else zero for r in range(self.world)], dim=1)
        out = fn(full.reshape(self.global_shape(x)))
        return out.reshape(x.shape[0], self.world, *out.shape[1:])[:, self.rank]

    # ------------------------------------------------------------------------------------ reductions
    def all_reduce(self, x: torch.Tensor) -> None:
        """Sum x over the ranks, in place."""
        tdist.all_reduce(x)

    def all_reduce_async(self, x: torch.Tensor):
        """Start summing x over the ranks, in place; returns a handle whose wait() ends it."""
        return tdist.all_reduce(x, async_op=True)

    def reduce_grads(self, *modules: torch.nn.Module) -> None:
        """Average the gradients of the modules' parameters over the ranks (call after backward, before
        the optimiser step). Parameters without a gradient keep none (the same ones on every rank).
        The first call for a set of modules reduces at once and installs the hooks that, from the next
        backward on, reduce each bucket as soon as its gradients are done."""
        if not self.active:
            return
        key = tuple(id(m) for m in modules)
        reducer = self.reducers.get(key)
        if reducer is None:
            params = [p for m in modules for p in m.parameters()]
            reducer = self.reducers[key] = GradReducer(self, params, int(self.bucket_mb * 2 ** 20))
        reducer.finish()

    def check_reductions(self) -> None:
        """RuntimeError if some gradient reduction so far had gradients of other parameters on another
        rank (a device flag read here, at snapshot time, not at every step)."""
        flags = [r.mismatch for r in self.reducers.values() if r.mismatch is not None]
        if flags and bool(torch.stack(flags).any()):
            raise RuntimeError(f"rank {self.rank}: the ranks have gradients for different parameters")

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

    def average_stats(self, stats) -> None:
        """Average a trainer's statistics sums over the ranks, in place (same keys on every rank): a
        dict of floats or an accel.DeviceStats (reduced on the device)."""
        if not self.active or not stats:
            return
        if isinstance(stats, DeviceStats):
            stats.reduce_sums(lambda t: self.sum(t) / self.world)
            return
        keys = sorted(stats)
        t = torch.tensor([float(stats[k]) for k in keys], dtype=torch.float64, device=self.device)
        t = self.sum(t) / self.world
        for k, v in zip(keys, t.tolist()):
            stats[k] = v

    def barrier(self) -> None:
        if self.active:
            tdist.barrier()


_contexts: dict[tuple, Context] = {}


def context() -> Context:
    """The Context of this process: from the initialised process group (one object per group, so that the
    training loop and the trainer share its gradient reducers), else a one-process one."""
    if not (tdist.is_available() and tdist.is_initialized()):
        return Context()
    world = tdist.get_world_size()
    if tdist.get_backend() == "nccl":
        device = torch.device("cuda", torch.cuda.current_device())
    else:
        device = torch.device("cpu")
    key = (tdist.get_rank(), world, str(device))
    if key not in _contexts:
        _contexts[key] = Context(tdist.get_rank(), world, int(os.environ.get("LOCAL_RANK", 0)), device)
    return _contexts[key]


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
    for ctx in _contexts.values():
        for r in ctx.reducers.values():
            r.remove()
    _contexts.clear()
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
