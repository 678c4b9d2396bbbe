"""The classifier's optimiser and learning-rate schedule: SGD with momentum and weight decay, reduced on
validation plateaus, with exactly the semantics of ``torch.optim.SGD`` (dampening 0, no Nesterov; the
weight decay added to the gradient; the first momentum buffer a copy of the gradient) and
``torch.optim.lr_scheduler.ReduceLROnPlateau`` (mode min, relative threshold 1e-4, no cooldown, eps 1e-8).

Why not torch.optim: its Optimizer methods are wrapped by ``torch._disable_dynamo``, whose first call
imports torch._dynamo, about 1.5 s of CPU in every training process. On the CPU, where a toy run lasts
seconds, that is a sixth of each of the default study's 82 classifier jobs. The update runs as
``torch._foreach`` ops over all parameters, as torch.optim's default multi-tensor path does.
tests/test_classifier_optim.py checks both against torch.optim, step by step, and the state round trip.
"""

from __future__ import annotations

import math

import torch


class SGD:
    def __init__(self, params, lr: float, momentum: float = 0.0, weight_decay: float = 0.0):
        self.params = [p for p in params if p.requires_grad]
        if not self.params:
            raise ValueError("SGD: no parameters to optimise")
        self.lr, self.momentum, self.weight_decay = float(lr), float(momentum), float(weight_decay)
        self.buffers: list[torch.Tensor] | None = None  # momentum buffers, made at the first step

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.params:
            if set_to_none:
                p.grad = None
            elif p.grad is not None:
                p.grad.zero_()

    @torch.no_grad()
    def step(self) -> None:
        live = [i for i, p in enumerate(self.params) if p.grad is not None]
        if not live:
            return
        params = [self.params[i] for i in live]
        grads = [self.params[i].grad for i in live]
        if self.weight_decay:
            grads = torch._foreach_add(grads, params, alpha=self.weight_decay)
        if self.momentum:
            if self.buffers is None:
                self.buffers = [None] * len(self.params)
            bufs = [self.buffers[i] for i in live]
            if all(b is not None for b in bufs):
                torch._foreach_mul_(bufs, self.momentum)
                torch._foreach_add_(bufs, grads)
            else:
                for k, i in enumerate(live):
                    if self.buffers[i] is None:
                        self.buffers[i] = torch.clone(grads[k]).detach()
                    else:
                        self.buffers[i].mul_(self.momentum).add_(grads[k])
                bufs = [self.buffers[i] for i in live]
            grads = bufs
        torch._foreach_add_(params, grads, alpha=-self.lr)

    def state_dict(self) -> dict:
        return {"lr": self.lr, "momentum": self.momentum, "weight_decay": self.weight_decay,
                "buffers": None if self.buffers is None else list(self.buffers)}

    def load_state_dict(self, state: dict) -> None:
        self.lr, self.momentum, self.weight_decay = state["lr"], state["momentum"], state["weight_decay"]
        bufs = state["buffers"]
        if bufs is not None and len(bufs) != len(self.params):
            raise ValueError(f"SGD state: {len(bufs)} momentum buffers for {len(self.params)} parameters")
        self.buffers = None if bufs is None else [None if b is None else b.to(p.device).clone()
                                                  for b, p in zip(bufs, self.params)]


class ReduceLROnPlateau:
    """lr <- max(lr * factor, min_lr) after more than `patience` epochs without a relative improvement of
    1e-4 of the monitored (minimised) value."""

    threshold = 1e-4
    eps = 1e-8

    def __init__(self, optimizer: SGD, factor: float = 0.1, patience: int = 10, min_lr: float = 0.0):
        if not factor < 1.0:
            raise ValueError("ReduceLROnPlateau: factor must be < 1")
        self.optimizer, self.factor, self.patience, self.min_lr = optimizer, float(factor), int(patience), float(min_lr)
        self.best, self.num_bad_epochs = math.inf, 0

    def step(self, value: float) -> None:
        value = float(value)
        if value < self.best * (1.0 - self.threshold):
            self.best, self.num_bad_epochs = value, 0
        else:
            self.num_bad_epochs += 1
        if self.num_bad_epochs > self.patience:
            old = self.optimizer.lr
            new = max(old * self.factor, self.min_lr)
            if old - new > self.eps:
                self.optimizer.lr = new
            self.num_bad_epochs = 0

    def state_dict(self) -> dict:
        return {"best": self.best, "num_bad_epochs": self.num_bad_epochs}

    def load_state_dict(self, state: dict) -> None:
        self.best, self.num_bad_epochs = float(state["best"]), int(state["num_bad_epochs"])
