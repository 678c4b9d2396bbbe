"""The shared speed helpers of the generators (ganaug.gans.accel)."""

import copy

import pytest
import torch

from ganaug.gans import accel
from ganaug.io import InputError


def test_ema_update_equals_the_per_parameter_lerp():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3))
    ema = copy.deepcopy(model)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p))
        model[1].running_mean.add_(1.0)
    expected = [p.detach().lerp(q, 0.9) for p, q in zip(model.parameters(), ema.parameters())]
    accel.ema_update(ema, model, 0.9)
    for e, x in zip(ema.parameters(), expected):
        torch.testing.assert_close(e, x)
    torch.testing.assert_close(ema[1].running_mean, model[1].running_mean)
    assert not torch.equal(next(ema.parameters()), next(model.parameters()))


def test_device_stats_average_per_key_and_reset():
    s = accel.DeviceStats()
    s.add("a", torch.tensor([1.0, 3.0]))
    s.add("a", torch.tensor(4.0))
    s.add("b", 2.5)
    assert s.means() == {"a": 3.0, "b": 2.5}
    s.reset()
    assert s.means() == {}


def test_precision_resolution():
    assert accel.resolve_precision("auto", "cpu") == "fp32"
    assert accel.resolve_precision("fp32", "cpu") == "fp32"
    assert accel.resolve_precision("auto", "cuda") == "bf16"
    with pytest.raises(InputError, match="gans.stylegan2.precision: bf16 needs a CUDA device"):
        accel.resolve_precision("bf16", "cpu", key="gans.stylegan2.precision")
    with pytest.raises(InputError, match="must be one of auto, fp32, bf16, got 'fp16'"):
        accel.resolve_precision("fp16", "cpu")
