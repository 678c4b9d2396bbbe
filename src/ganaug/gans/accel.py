"""Hardware speed shared by the generators: reduced precision, fused optimisers, the EMA of G, device
statistics read only at log time.

Precision is a per-GAN config key `precision`: "fp32", "bf16", or "auto" (bf16 on CUDA, fp32
elsewhere). bf16 runs under autocast, so parameters, optimiser state and the EMA stay fp32; a model
keeps its numerically sensitive parts (normalisations, the regularisers' gradient norms) in fp32 by
running them under `full_precision()`.
"""

from __future__ import annotations

import torch

from ganaug.io import InputError

from .settings import PRECISIONS, check_precision  # noqa: F401 (re-exported; the config check needs no torch)


def resolve_precision(value, device, key: str = "precision") -> str:
    """"fp32" or "bf16" for this device; `key` names the config key in errors."""
    check_precision(value, key)
    cuda = torch.device(device).type == "cuda"
    if value == "auto":
        return "bf16" if cuda else "fp32"
    if value == "bf16" and not cuda:
        # CPU bf16 autocast exists but is slower than fp32 on most CPUs: refuse rather than surprise
        raise InputError(f"{key}: bf16 needs a CUDA device (this run is on {device}); use fp32 or auto")
    return value


def autocast(device, precision: str):
    """The autocast context of a resolved precision (a no-op for fp32)."""
    dev = torch.device(device).type
    return torch.autocast(device_type=dev, dtype=torch.bfloat16, enabled=precision == "bf16")


def full_precision(device):
    """Leave autocast for a numerically sensitive part (inputs must be cast to float32 by the caller)."""
    return torch.autocast(device_type=torch.device(device).type, enabled=False)


def configure_backends(device) -> None:
    """Settings for a long training job on CUDA: cuDNN autotuning (input shapes are fixed per job)."""
    if torch.device(device).type == "cuda":
        torch.backends.cudnn.benchmark = True


def adam(params, lr: float, betas, eps: float = 1e-8):
    """Adam, fused into one kernel on CUDA (same update as the default implementation)."""
    params = list(params)
    cuda = bool(params) and params[0].is_cuda
    return torch.optim.Adam(params, lr=lr, betas=tuple(betas), eps=eps, fused=True if cuda else None)


@torch.no_grad()
def ema_update(ema: torch.nn.Module, model: torch.nn.Module, beta: float) -> None:
    """ema <- beta * ema + (1 - beta) * model for every parameter in a few multi-tensor kernels;
    buffers are copied. Same values as a per-parameter `p.lerp(p_ema, beta)` loop."""
    e = [p for p in ema.parameters()]
    m = [p.detach() for p in model.parameters()]
    if e:
        torch._foreach_lerp_(e, m, 1.0 - beta)
    for b_ema, b in zip(ema.buffers(), model.buffers()):
        b_ema.copy_(b)


class DeviceStats:
    """Running sums of logged losses kept on the device: adding one costs no host sync; `means()`
    reads them all at once, at log time."""

    def __init__(self):
        self._sum: dict[str, torch.Tensor] = {}
        self._n: dict[str, int] = {}

    def add(self, key: str, value) -> None:
        v = value.detach().float().mean() if torch.is_tensor(value) else torch.tensor(float(value))
        self._sum[key] = self._sum[key] + v if key in self._sum else v.clone()
        self._n[key] = self._n.get(key, 0) + 1

    def means(self) -> dict[str, float]:
        if not self._sum:
            return {}
        keys = list(self._sum)
        vals = torch.stack([self._sum[k].float() for k in keys]).cpu().tolist()  # one sync
        return {k: v / self._n[k] for k, v in zip(keys, vals)}

    def reset(self) -> None:
        self._sum.clear()
        self._n.clear()

    def reduce_sums(self, fn) -> None:
        """Replace the sums by fn(their stacked tensor) in one call (e.g. their mean over processes)."""
        if not self._sum:
            return
        keys = list(self._sum)
        out = fn(torch.stack([self._sum[k].float() for k in keys]))
        for k, v in zip(keys, out.unbind()):
            self._sum[k] = v
