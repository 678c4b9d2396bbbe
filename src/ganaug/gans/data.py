"""Real-data sampling shared by the GAN trainers, and the RNG part of their snapshots.

Data order: a CPU torch.Generator, seeded per run, draws one permutation of the N training images after
another; a batch takes the next B indices of it and then B uniforms for random x-flips (flip where
< 0.5). The flips are drawn whether or not the GAN mirrors its reals, so the draw order does not depend
on `mirror`. On CUDA both go to the device in one non-blocking copy from pinned memory.
A snapshot holds the states of the trainer's device generator (rng.gen), of this generator (rng.data_gen),
of the global RNGs (rng.torch_cpu, rng.cuda; unused by training, restored so that a resumed process
matches) and the rest of the current permutation (data.perm, with data.n), so a resumed
run continues exactly where the snapshot was taken.
"""

from __future__ import annotations

import numpy as np
import torch


def real_data(images, labels, device) -> tuple[torch.Tensor, torch.Tensor]:
    """The training images (uint8 NHWC) and their classes (int64) as tensors on the device, copied there once
    for the whole run."""
    return (torch.from_numpy(np.ascontiguousarray(images)).to(device),
            torch.from_numpy(np.asarray(labels, dtype=np.int64)).to(device))


class RealSampler:
    """The order and the x-flips of the real images (see the module doc)."""

    def __init__(self, n: int, seed: int, device):
        self.n = n
        self.device = device
        self.gen = torch.Generator().manual_seed(seed)
        self.perm = torch.zeros(0, dtype=torch.int64)

    def next(self, B: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(indices of the next B images, bool flip mask [B]), both on the device."""
        while len(self.perm) < B:
            self.perm = torch.cat([self.perm, torch.randperm(self.n, generator=self.gen)])
        idx, self.perm = self.perm[:B], self.perm[B:]
        flip = torch.rand(B, generator=self.gen) < 0.5
        if torch.device(self.device).type != "cuda":
            return idx.to(self.device), flip
        # one copy from pinned memory, queued without waiting for the GPU (no host sync per step)
        both = torch.stack([idx, flip.long()]).pin_memory().to(self.device, non_blocking=True)
        return both[0], both[1].bool()

    def state_dict(self) -> dict:
        """The snapshot's `data` entry (the generator's state goes to rng.data_gen, see rng_state)."""
        return dict(perm=self.perm.clone(), n=self.n)

    def load_state_dict(self, data: dict) -> None:
        self.perm = data["perm"].clone()


def real_images(images: torch.Tensor, idx: torch.Tensor, flip: torch.Tensor | None = None) -> torch.Tensor:
    """uint8 NHWC images[idx] -> float NCHW in [-1, 1], x-flipped where `flip` (None: no flips)."""
    x = images[idx].permute(0, 3, 1, 2).float() / 127.5 - 1.0
    if flip is not None:
        x = torch.where(flip.reshape(-1, 1, 1, 1), x.flip(3), x)
    return x


def rng_state(gen: torch.Generator, sampler: RealSampler) -> dict:
    """The `rng` and `data` entries of a trainer snapshot (see the module doc)."""
    rng = dict(gen=gen.get_state(), data_gen=sampler.gen.get_state(), torch_cpu=torch.get_rng_state())
    if torch.cuda.is_available():
        rng["cuda"] = torch.cuda.get_rng_state_all()
    return dict(rng=rng, data=sampler.state_dict())


def load_rng_state(s: dict, gen: torch.Generator, sampler: RealSampler) -> None:
    """Restore what rng_state stored in snapshot `s`."""
    gen.set_state(s["rng"]["gen"])
    sampler.gen.set_state(s["rng"]["data_gen"])
    sampler.load_state_dict(s["data"])
    torch.set_rng_state(s["rng"]["torch_cpu"])
    cuda = s["rng"].get("cuda")
    if cuda is not None and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)


class ClassConditionalBatches:
    """Batches of the class-conditional trainers (StyleGAN2, PGAN): real images with their classes, and the
    latents and classes of fakes. Uses the trainer's images, labels, sampler, dist, gen, cfg, B, N, device."""

    def real_batch(self):
        idx, flip = self.sampler.next(self.B)
        idx, flip = self.dist.shard(idx), self.dist.shard(flip)
        return real_images(self.images, idx, flip if self.cfg["mirror"] else None), self.labels[idx]

    def fake_inputs(self, n):
        """Latents and classes of n fakes (n: the global batch; this process's rows of it)."""
        d = self.dist
        z = d.randn((n, self.cfg["z_dim"]), self.gen, self.device)
        c = self.labels[d.randint(0, self.N, (n,), self.gen, self.device)]
        return z, c
