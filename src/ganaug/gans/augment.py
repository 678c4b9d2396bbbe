"""ADA-style differentiable augmentation (Karras et al. 2020b) for the discriminator's inputs.

Applied to real AND generated images before D, each transformation independently per sample with
probability p: x-flip, 90-degree rotations, integer translation (up to 1/8 of the size), isotropic
scaling (log2-normal, std 0.2), brightness (+N(0, 0.2)), contrast (x 2^N(0, 0.5)), saturation
(x 2^N(0, 1)) and cutout (a square of half the size set to 0). The geometric part is one affine
matrix per sample applied with a single grid_sample (reflection padding), so gradients flow to the
generator. p = 0 returns the input unchanged. Randomness comes from the torch.Generator passed in.

`AdaController` implements the adaptive p: every `interval` D steps, p moves by
sign(E[sign(D(real))] - target) * batch * interval / (ada_kimg * 1000), clamped to [0, 1].
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .distributed import ShardedDraws


class _GridSample(torch.autograd.Function):
    """Bilinear grid_sample (reflection padding) differentiable twice with respect to its input.

    R1 on augmented reals needs the gradient of a gradient through the warp; CUDA has no derivative of
    grid_sample's backward. That backward is linear in the incoming gradient (the adjoint warp), so its
    own derivative is the forward warp again. The grid (augmentation parameters) gets no gradient.
    """

    @staticmethod
    def forward(ctx, x, grid):
        ctx.save_for_backward(grid)
        ctx.x_shape = x.shape
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)

    @staticmethod
    def backward(ctx, grad_out):
        (grid,) = ctx.saved_tensors
        return _GridSampleAdjoint.apply(grad_out, grid, ctx.x_shape), None


class _GridSampleAdjoint(torch.autograd.Function):
    @staticmethod
    def forward(ctx, grad_out, grid, x_shape):
        ctx.save_for_backward(grid)
        dummy = grad_out.new_empty(x_shape)  # bilinear: the adjoint does not depend on the input's values
        grad_x, _ = torch.ops.aten.grid_sampler_2d_backward(grad_out, dummy, grid, 0, 2, False, [True, False])
        return grad_x  # interpolation 0 = bilinear, padding 2 = reflection

    @staticmethod
    def backward(ctx, gg):
        (grid,) = ctx.saved_tensors
        return _GridSample.apply(gg, grid), None, None


def grid_sample(x: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """F.grid_sample(x, grid, bilinear, reflection, align_corners=False), twice differentiable in x."""
    return _GridSample.apply(x, grid.detach())


# gen: a torch.Generator, or distributed.ShardedDraws on several processes (this rank's rows of the
# one-process draws, so each rank augments only its own shard)
def _rand(n, gen, device):
    if isinstance(gen, ShardedDraws):
        return gen.rand((n,), device)
    return torch.rand(n, generator=gen, device=device)


def _randn(n, gen, device):
    if isinstance(gen, ShardedDraws):
        return gen.randn((n,), device)
    return torch.randn(n, generator=gen, device=device)


def augment(x: torch.Tensor, p: float, gen: torch.Generator | None = None, xflip=True, rotate90=True,
            xint=True, scale=True, color=True, cutout=True) -> torch.Tensor:
    """Augment a batch NCHW in [-1, 1] with per-sample probability p (differentiable in x)."""
    if p <= 0:
        return x
    n, _, h, w = x.shape
    dev = x.device
    eye = torch.eye(3, device=dev).expand(n, 3, 3)
    m = eye.clone()

    def apply(mask, mat):
        nonlocal m
        mat = torch.where(mask[:, None, None], mat, eye)
        m = m @ mat

    if xflip:
        mask = _rand(n, gen, dev) < p
        f = torch.eye(3, device=dev).repeat(n, 1, 1)
        f[:, 0, 0] = -1
        apply(mask, f)
    if rotate90:
        mask = _rand(n, gen, dev) < p
        k = torch.floor(_rand(n, gen, dev) * 4)
        ang = k * (math.pi / 2)
        r = torch.eye(3, device=dev).repeat(n, 1, 1)
        cos, sin = torch.cos(ang).round(), torch.sin(ang).round()
        r[:, 0, 0], r[:, 0, 1], r[:, 1, 0], r[:, 1, 1] = cos, -sin, sin, cos
        apply(mask, r)
    if xint:
        mask = _rand(n, gen, dev) < p
        # integer pixel shifts up to 1/8 of the size, in normalised coords (2 units = full size)
        tx = torch.round((_rand(n, gen, dev) * 2 - 1) * 0.125 * w) * (2.0 / w)
        ty = torch.round((_rand(n, gen, dev) * 2 - 1) * 0.125 * h) * (2.0 / h)
        t = torch.eye(3, device=dev).repeat(n, 1, 1)
        t[:, 0, 2], t[:, 1, 2] = tx, ty
        apply(mask, t)
    if scale:
        mask = _rand(n, gen, dev) < p
        s = torch.exp2(_randn(n, gen, dev) * 0.2)
        sm = torch.eye(3, device=dev).repeat(n, 1, 1)
        sm[:, 0, 0], sm[:, 1, 1] = s, s
        apply(mask, sm)
    if xflip or rotate90 or xint or scale:
        theta = m[:, :2, :]
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        x = grid_sample(x, grid)

    if color:
        mask = (_rand(n, gen, dev) < p).float().reshape(n, 1, 1, 1)
        b = _randn(n, gen, dev).reshape(n, 1, 1, 1) * 0.2
        x = x + b * mask
        mask = (_rand(n, gen, dev) < p).reshape(n, 1, 1, 1)
        c = torch.exp2(_randn(n, gen, dev) * 0.5).reshape(n, 1, 1, 1)
        mean = x.mean(dim=[1, 2, 3], keepdim=True)
        x = torch.where(mask, (x - mean) * c + mean, x)
        mask = (_rand(n, gen, dev) < p).reshape(n, 1, 1, 1)
        s = torch.exp2(_randn(n, gen, dev) * 1.0).reshape(n, 1, 1, 1)
        luma = x.mean(dim=1, keepdim=True)
        x = torch.where(mask, (x - luma) * s + luma, x)
    if cutout:
        mask = (_rand(n, gen, dev) < p).reshape(n, 1, 1, 1)
        cx = _rand(n, gen, dev).reshape(n, 1, 1, 1)
        cy = _rand(n, gen, dev).reshape(n, 1, 1, 1)
        gx = (torch.arange(w, device=dev, dtype=x.dtype) + 0.5) / w
        gy = (torch.arange(h, device=dev, dtype=x.dtype) + 0.5) / h
        inside = ((gx.reshape(1, 1, 1, w) - cx).abs() < 0.25) & ((gy.reshape(1, 1, h, 1) - cy).abs() < 0.25)
        x = torch.where(mask & inside, torch.zeros_like(x), x)
    return x


class AdaController:
    """Adaptive augmentation probability (state: p and the running sign statistics).

    The sign statistic is summed on the device (no host sync per step: a multi-process run sums it over
    the processes there too, so that every process, and a snapshot, holds the global batch's statistic);
    it is read once per `interval` steps, when p is adjusted."""

    def __init__(self, target=0.6, ada_kimg=500.0, interval=4, p=0.0):
        self.target = float(target)
        self.ada_kimg = float(ada_kimg)
        self.interval = int(interval)
        self.p = float(p)
        self.sign_sum = 0.0  # a float (count 0, or restored from a snapshot) or a device tensor
        self.count = 0
        self.steps = 0

    def accumulate(self, real_logits: torch.Tensor, reduce=None, processes: int = 1):
        """Add D's logits on this process's reals; `reduce` (distributed.Context.sum) sums the statistic
        over the `processes`, each of which has as many logits."""
        s = torch.sign(real_logits.detach()).float().sum()
        self.sign_sum = self.sign_sum + (reduce(s) if reduce is not None else s)
        self.count += int(real_logits.numel()) * processes

    def step(self, batch_size: int):
        """Call once per D step; adjusts p every `interval` steps."""
        self.steps += 1
        if self.steps % self.interval or self.count == 0:
            return
        rt = float(self.sign_sum) / self.count  # the only host sync of ADA (a float32 sum of signs is exact)
        adjust = math.copysign(1.0, rt - self.target) if rt != self.target else 0.0
        self.p = min(max(self.p + adjust * batch_size * self.interval / (self.ada_kimg * 1000), 0.0), 1.0)
        self.last_rt = rt
        self.sign_sum, self.count = 0.0, 0

    def state_dict(self):
        return dict(p=self.p, sign_sum=float(self.sign_sum), count=self.count, steps=self.steps)

    def load_state_dict(self, s):
        self.p, self.sign_sum = float(s["p"]), float(s["sign_sum"])
        self.count, self.steps = int(s["count"]), int(s["steps"])
