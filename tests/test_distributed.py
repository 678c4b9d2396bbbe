"""Data-parallel GAN training (ganaug.gans.distributed, ganaug.gans.launch): two CPU processes (gloo,
started with torchrun by train_job) give the one-process StyleGAN2 result with the same global batch, and
a distributed run resumes exactly. PGAN and pix2pixHD are checked the same way with two ranks as threads
of this process (a stand-in for the process group: no launch cost); SPADE is refused."""

import json
import logging
import shutil
import threading
import types

import gan_helpers as gh
import numpy as np
import pandas as pd
import pytest
import torch

from ganaug.gans import distributed, gan_module
from ganaug.gans.augment import augment
from ganaug.gans.distributed import Context, check_supported
from ganaug.gans.launch import _args, _parser, train_job
from ganaug.gans.training import load_snapshot, train_gan
from ganaug.io import InputError

# as tests/test_gan_training.py: ADA (p rises from the 4th step on, so augmentation is on in most steps),
# R1 and path length every 2 steps, style mixing. Global batch 8: 4 per process, one minibatch-stddev
# group of 4 per process; path-length batch 4: 2 per process.
CFG = dict(resolution=16, z_dim=16, w_dim=16, mapping_layers=2, channel_base=256, channel_max=16,
           batch=8, r1_interval=2, pl_weight=2.0, pl_interval=2, ada=True, ada_kimg=0.05, ada_interval=3,
           ada_target=0.0, ema_kimg=0.05, total_kimg=0.128, snapshot_kimg=0.032)
SNAPSHOTS = ["snapshot-000000_032.pt", "snapshot-000000_064.pt", "snapshot-000000_096.pt",
             "snapshot-000000_128.pt"]
# Tolerance of distributed vs one process. The two runs do the same arithmetic except for the order of
# float32 sums: a weight gradient is a sum over the batch, here two sums over 4 samples added by the
# all_reduce instead of one over 8 (and BLAS blocks differ with the batch size). That is a relative
# difference of ~1e-7 per step, which 16 Adam steps (lr 0.0025 scaled by the equalised-lr gains, beta1 0
# so an update is ~lr * g / |g|) and the GAN feedback carry into the weights. Measured max |difference|
# of any network tensor (torch 2.14, CPU): StyleGAN2 (16 steps) 7.6e-6, PGAN (12 steps) 6e-7, pix2pixHD
# (12 steps) 8e-8. ATOL = RTOL = 1e-4 leaves a margin of > 10 and is far below a real discrepancy (a wrong
# share of the batch, a missing reduction or a draw out of step moves weights by ~lr = 2.5e-3 per step).
ATOL, RTOL = 1e-4, 1e-4


@pytest.fixture(scope="module")
def data():
    return gh.class_data()


@pytest.fixture(scope="module")
def files(data, tmp_path_factory):
    d = tmp_path_factory.mktemp("data")
    np.save(d / "images.npy", data[0])
    pd.DataFrame({"image": [f"i{k}" for k in range(len(data[1]))], "label": data[1]}).to_csv(d / "train.csv",
                                                                                             index=False)
    return d / "images.npy", d / "train.csv"


def run_two(files, out_dir, cfg=CFG):
    """train_job with gpus=2 on CPU: torchrun, 2 processes of 1 thread each, gloo."""
    summary = out_dir / "training.json"
    return train_job("stylegan2", files[0], files[1], out_dir, cfg, 3, summary, "cpu",
                     logging.getLogger("ganaug"), gpus=2, threads=2, log_path=out_dir / "train.log")


@pytest.fixture(scope="module")
def one(data, tmp_path_factory):
    return gh.train_straight(tmp_path_factory, "stylegan2", *data, CFG)  # seed 3, one thread


@pytest.fixture(scope="module")
def two(files, tmp_path_factory):
    out = tmp_path_factory.mktemp("two")
    return out, run_two(files, out)


def max_diff(a: dict, b: dict) -> float:
    return max(float((a[k].double() - b[k].double()).abs().max()) for k in a)


def dead_biases(net: torch.nn.Module, prefix: str) -> set[str]:
    """State-dict keys (under `prefix`) of conv biases that a non-affine InstanceNorm right after the conv
    cancels (pix2pixHD keeps them, as the reference code). Such a bias changes no output and its gradient
    is zero up to rounding; Adam scales that rounding noise to steps of +-lr, in one process as in two,
    so these biases wander by up to lr per step differently in any two runs that round differently."""
    out = set()
    for name, m in net.named_modules():
        if isinstance(m, torch.nn.Sequential):
            for i in range(len(m) - 1):
                nxt = m[i + 1]
                if isinstance(m[i], torch.nn.modules.conv._ConvNd) and m[i].bias is not None \
                        and isinstance(nxt, torch.nn.InstanceNorm2d) and not nxt.affine:
                    out.add(f"{prefix}.{name}.{i}.bias".replace("..", "."))
    return out


def assert_close_runs(d1, d2, snapshots, atol=ATOL, rtol=RTOL, skip=()) -> float:
    """The runs in d1 and d2 drew the same numbers and agree within the tolerance: networks (but the
    state-dict keys `skip`, "G.<key>"), optimiser moments, metrics (the loss statistics within a looser
    tolerance). Returns the largest network difference."""
    worst = 0.0
    for name in snapshots:
        a, b = load_snapshot(d1 / name), load_snapshot(d2 / name)
        for n in ("G", "G_ema", "D"):
            a[n] = {k: v for k, v in a[n].items() if f"{n}.{k}" not in skip}
            b[n] = {k: v for k, v in b[n].items() if f"{n}.{k}" not in skip}
        for key in ("gen", "data_gen"):  # the generators are in step with the one-process run's
            assert torch.equal(a["rng"][key], b["rng"][key]), (name, key)
        assert torch.equal(a["data"]["perm"], b["data"]["perm"])
        assert (a["images_seen"], a["step"], a["cfg"]) == (b["images_seen"], b["step"], b["cfg"])
        for key in ("G", "G_ema", "D"):
            assert a[key].keys() == b[key].keys()
            for k in a[key]:
                assert torch.allclose(a[key][k], b[key][k], rtol=rtol, atol=atol), (name, key, k)
            worst = max(worst, max_diff(a[key], b[key]))
        for key in ("G_opt", "D_opt"):
            sa, sb = a[key]["state"], b[key]["state"]
            assert sa.keys() == sb.keys() and len(sa) > 0
            for i in sa:
                for k in ("exp_avg", "exp_avg_sq"):
                    assert torch.allclose(sa[i][k], sb[i][k], rtol=rtol, atol=atol), (name, key, i, k)
                assert torch.equal(sa[i]["step"], sb[i]["step"])
    m1, m2 = gh.metrics_records(d1 / "metrics.jsonl"), gh.metrics_records(d2 / "metrics.jsonl")
    assert [r.keys() for r in m1] == [r.keys() for r in m2] and len(m1) == len(snapshots)
    for r1, r2 in zip(m1, m2):
        for k, v in r1.items():
            if isinstance(v, float):
                assert r2[k] == pytest.approx(v, rel=1e-3, abs=1e-4), k
            else:
                assert r2[k] == v, k
    return worst


def test_two_processes_equal_one(one, two):
    (d1, s1), (d2, s2) = one, two
    assert s2["snapshots"] == s1["snapshots"] == SNAPSHOTS and s2["kimg"] == pytest.approx(0.128)
    log = (d2 / "train.log").read_text()
    assert "2 processes of batch 4" in log and "backend gloo" in log
    # metrics: the per-process statistics averaged over the processes = the one-process statistics
    worst = assert_close_runs(d1, d2, SNAPSHOTS)
    print(f"max |one process - two processes| over the StyleGAN2 snapshots' networks: {worst:.3g}")
    for name in SNAPSHOTS:
        a, b = load_snapshot(d1 / name), load_snapshot(d2 / name)
        assert b["ada"]["p"] == pytest.approx(a["ada"]["p"]) and b["ada"]["count"] == a["ada"]["count"]
        assert b["ada"]["sign_sum"] == a["ada"]["sign_sum"]  # reduced over the processes
        assert float(b["pl_mean"]) == pytest.approx(float(a["pl_mean"]), rel=RTOL, abs=ATOL)
    assert load_snapshot(d1 / SNAPSHOTS[-1])["ada"]["p"] > 0  # augmentation was on (the per_sample path)


def test_killed_and_resumed_equals_straight(files, two, tmp_path):
    out, summary = two
    # a run that died after its second snapshot: the later snapshots are gone, metrics.jsonl still has
    # their lines (rank 0 truncates it); every process resumes from snapshot 2
    for name in SNAPSHOTS[:2] + ["metrics.jsonl"]:
        shutil.copy(out / name, tmp_path / name)
    resumed = run_two(files, tmp_path)
    assert resumed["snapshots"] == SNAPSHOTS
    assert "resuming from snapshot-000000_064.pt" in (tmp_path / "train.log").read_text()
    # the same processes doing the same sums: bit-identical
    gh.assert_same_run(out, tmp_path, SNAPSHOTS, "ada", "pl_mean")
    assert json.loads((tmp_path / "training.json").read_text())["snapshots"] == SNAPSHOTS


# ------------------------------------------------------- PGAN, pix2pixHD, SPADE: ranks as threads


class _Done:
    def wait(self):
        return True


class ThreadContext(Context):
    """Rank `rank` of a group of threads of this process: all_reduce sums the ranks' tensors in rank
    order (what the process group does, minus the processes). Gradient buckets of 2 KB, so that the
    GANs' gradients go in many buckets, most of them reduced while backward runs."""

    bucket_mb = 2 / 1024

    def __init__(self, group, rank):
        super().__init__(rank, group["world"])
        self.group = group
        self.launched = 0  # all_reduce_async calls (the gradient buckets)

    def all_reduce_async(self, x):
        self.launched += 1
        self.all_reduce(x)
        return _Done()

    def all_reduce(self, x):
        slots, barrier = self.group["slots"], self.group["barrier"]
        slots[self.rank] = x.detach().clone()
        barrier.wait()
        total = slots[0].clone()
        for t in slots[1:]:
            total += t
        barrier.wait()
        x.copy_(total)

    def barrier(self):
        self.group["barrier"].wait()


def _in_threads(world, fn, timeout=60):
    """fn(ctx) in `world` threads, each with its ThreadContext; returns {rank: result}. A rank's error stops
    the others waiting at the barrier and is raised here."""
    group = dict(world=world, slots=[None] * world, barrier=threading.Barrier(world, timeout=timeout))
    results, errors = {}, {}

    def run(r):
        try:
            results[r] = fn(ThreadContext(group, r))
        except BaseException as e:  # noqa: BLE001 - handed to the test thread
            errors[r] = e
            group["barrier"].abort()

    threads = [threading.Thread(target=run, args=(r,)) for r in range(world)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise next(e for e in errors.values() if not isinstance(e, threading.BrokenBarrierError))
    return results


def train_threads(world, gan, out_dir, *args, **kw):
    """train_gan(gan, images, labels, out_dir, cfg, seed, device, **kw) as `world` ranks in threads
    (args: images, labels, cfg, seed, device); returns rank 0's summary."""
    local = threading.local()

    def rank(ctx):
        local.ctx = ctx
        return train_gan(gan, *args[:2], out_dir, *args[2:], **kw)

    # networks are initialised from the global torch RNG, which threads share: one rank at a time
    lock, trainer = threading.Lock(), gan_module(gan).Trainer
    init = trainer.__init__

    def locked_init(self, *a, **k):
        with lock:
            init(self, *a, **k)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(distributed, "context", lambda: getattr(local, "ctx", Context()))
        mp.setattr(trainer, "__init__", locked_init)
        return _in_threads(world, rank, timeout=120)[0]


@pytest.mark.parametrize("gan", ["pgan", "pix2pixhd"])
def test_other_gans_two_ranks_equal_one(gan, tmp_path):
    if gan == "pgan":
        # 2 steps at 4 px, fade-in to 8 px (level change: optimisers re-created), 8 px, fade-in to 16 px
        images, labels = gh.label_map_data(n=32, r=16)[:2]
        masks = None
        cfg = dict(resolution=16, z_dim=16, channel_base=256, channel_max=16, batch=8, stable_kimg=0.016,
                   transition_kimg=0.032, ema_beta=0.9, total_kimg=0.096, snapshot_kimg=0.048)
    else:
        images, labels, masks = gh.label_map_data(n=32, r=16)
        cfg = dict(resolution=16, ngf=16, ndf=8, n_blocks=2, batch=8, total_kimg=0.096, snapshot_kimg=0.048)
    one = train_gan(gan, images, labels, tmp_path / "one", cfg, 3, "cpu", masks=masks)
    two = train_threads(2, gan, tmp_path / "two", images, labels, cfg, 3, "cpu", masks=masks)
    assert two["snapshots"] == one["snapshots"]
    skip = set()
    if gan == "pix2pixhd":
        G, D = gan_module(gan).build_networks(load_snapshot(tmp_path / "one" / one["snapshots"][0])["cfg"])
        skip = dead_biases(G, "G") | dead_biases(G, "G_ema") | dead_biases(D, "D")
        assert "G.model.4.bias" in skip and "D.scales.0.layers.1.0.bias" in skip
    worst = assert_close_runs(tmp_path / "one", tmp_path / "two", one["snapshots"], skip=skip)
    print(f"max |one process - two ranks| over the {gan} snapshots' networks: {worst:.3g}")


def test_spade_is_refused(tmp_path):
    images, labels, masks = gh.label_map_data(n=8, r=16)
    with pytest.raises(InputError, match=r"gans\.spade: its G has BatchNorm"):
        train_threads(2, "spade", tmp_path, images, labels, dict(resolution=16, batch=8), 3, "cpu",
                      masks=masks)
    with pytest.raises(InputError, match=r"gans\.pgan\.batch: 6 .* multiple of 4"):
        train_threads(4, "pgan", tmp_path, images, labels, dict(resolution=16, batch=6), 3, "cpu")
    assert not list(tmp_path.glob("snapshot-*"))


# ------------------------------------------------------------------ helpers, without processes


def test_rank_shares_of_the_draws():
    """What each of 3 ranks draws is its strided share of the one-process draw, also through ADA."""
    world, n = 3, 6
    g0 = torch.Generator().manual_seed(5)
    full_z = torch.randn((n, 4), generator=g0)
    x = torch.randn(n, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    full_aug = augment(x, 0.7, g0)
    full_noise = Context().noise_generator(g0)
    assert full_noise is g0
    for r in range(world):
        ctx = Context(r, world)
        g = torch.Generator().manual_seed(5)
        assert torch.equal(ctx.randn((n, 4), g), full_z[r::world])
        assert ctx.global_shape(x[r::world]) == x.shape
        aug = ctx.per_sample(lambda t: augment(t, 0.7, g), x[r::world])
        assert torch.allclose(aug, full_aug[r::world], atol=1e-6)
        assert torch.equal(g.get_state(), g0.get_state())  # in step with the one-process generator
    shard = Context(1, 2).noise_generator(torch.Generator().manual_seed(2))
    want = torch.randn((4, 1, 2, 2), generator=torch.Generator().manual_seed(2))[1::2]
    assert torch.equal(shard.randn((2, 1, 2, 2)), want)


def test_one_process_context_is_plain():
    ctx = Context()
    assert not ctx.active and ctx.is_main
    t = torch.arange(5.0)
    assert ctx.shard(t) is t and ctx.mean(t) is t and ctx.sum(t) is t
    stats = {"a": 1.5}
    ctx.average_stats(stats)
    assert stats == {"a": 1.5}
    assert ctx.check_batch(7, "k") == 7


def test_refusals_and_one_process_train_job(data, tmp_path):
    with pytest.raises(InputError, match=r"gans\.stylegan2\.batch: 10 .* multiple of 4"):
        Context(0, 4).check_batch(10, "gans.stylegan2.batch")
    bn = types.SimpleNamespace(dist=Context(), G=torch.nn.Sequential(torch.nn.BatchNorm2d(3)),
                               D=torch.nn.Linear(2, 2))
    with pytest.raises(InputError, match=r"gans\.spade: its G has BatchNorm"):
        check_supported("spade", bn)
    with pytest.raises(InputError, match=r"gans\.foo: training on several GPUs"):
        check_supported("foo", types.SimpleNamespace(G=bn.G, D=bn.D))
    check_supported("pix2pixhd", types.SimpleNamespace(dist=Context(), G=bn.D, D=bn.D))
    # one process: train_job trains in-process and writes the summary
    np.save(tmp_path / "i.npy", data[0])
    pd.DataFrame({"label": data[1]}).to_csv(tmp_path / "t.csv", index=False)
    out = train_job("stylegan2", tmp_path / "i.npy", tmp_path / "t.csv", tmp_path / "run",
                    dict(CFG, total_kimg=0.016), 3, tmp_path / "run" / "training.json", "cpu",
                    logging.getLogger("ganaug"))
    assert json.loads((tmp_path / "run" / "training.json").read_text()) == out
    # a translation GAN's data: the label-map cache and its rows; the torchrun command line carries them
    im, lb, maps = gh.label_map_data(n=8, r=16)
    np.save(tmp_path / "im.npy", np.concatenate([im, im[:2]]))  # the mask rows pick 8 of 10 images
    np.save(tmp_path / "maps.npy", maps)
    pd.DataFrame({"row": np.arange(8), "label": lb, "image": "x", "mask": "y"}).to_csv(tmp_path / "rows.csv")
    pd.DataFrame({"label": np.r_[lb, lb[:2]]}).to_csv(tmp_path / "t2.csv", index=False)
    out = train_job("pix2pixhd", tmp_path / "im.npy", tmp_path / "t2.csv", tmp_path / "p2p",
                    dict(resolution=16, ngf=8, ndf=8, n_blocks=1, batch=8, total_kimg=0.008,
                         snapshot_kimg=0.008), 3, tmp_path / "p2p" / "training.json", "cpu",
                    logging.getLogger("ganaug"), masks=tmp_path / "maps.npy", mask_rows=tmp_path / "rows.csv")
    assert out["snapshots"] == ["snapshot-000000_008.pt"]
    argv = _args("pix2pixhd", "im.npy", "t.csv", "out", {"batch": 8}, 3, "s.json", "cpu", "log.txt", "m.npy",
                 "m.csv", 2, "c0de")
    ns = _parser().parse_args(argv)
    assert (ns.masks, ns.mask_rows, ns.log_file, json.loads(ns.cfg), ns.threads, ns.code_version) == \
        ("m.npy", "m.csv", "log.txt", {"batch": 8}, 2, "c0de")
    with pytest.raises(InputError, match=r"gans\.stylegan2\.batch: 7 .* multiple of 2"):  # no processes
        train_job("stylegan2", tmp_path / "i.npy", tmp_path / "t.csv", tmp_path / "run", dict(CFG, batch=7),
                  3, tmp_path / "run" / "training.json", "cpu", logging.getLogger("ganaug"), gpus=2)
    with pytest.raises(InputError, match="no 'label' column"):
        pd.DataFrame({"x": data[1]}).to_csv(tmp_path / "t.csv", index=False)
        train_job("stylegan2", tmp_path / "i.npy", tmp_path / "t.csv", tmp_path / "run", CFG, 3,
                  tmp_path / "run" / "training.json", "cpu", logging.getLogger("ganaug"))


# -------------------------------------------------------------- bucketed gradient reduction


class _GradNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.body = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 8),
                                        torch.nn.Tanh(), torch.nn.Linear(8, 2))
        self.unused = torch.nn.Linear(3, 3)  # never in a graph: its parameters must keep no gradient

    def forward(self, x):
        return self.body(x)


_init_lock = threading.Lock()


def _grad_net(seed=0):
    with _init_lock:  # the global torch RNG is shared by the rank threads
        torch.manual_seed(seed)
        return _GradNet()


def test_bucketed_reduction_is_the_global_mean_and_overlaps_backward():
    world = 2
    x = torch.randn(8, 4, generator=torch.Generator().manual_seed(0))
    net = _grad_net()
    net(x).square().mean().backward()
    want = {k: p.grad.clone() for k, p in net.named_parameters() if p.grad is not None}
    assert want and "unused.weight" not in want

    def rank(ctx):
        ctx.bucket_mb = 100 / 2 ** 20  # 100-byte buckets: most parameters in a bucket of their own
        net = _grad_net()
        xs = ctx.shard(x)
        out = []
        for step in range(3):  # step 0 installs the hooks; then the buckets go out during backward
            net.zero_grad(set_to_none=True)
            before = ctx.launched
            loss = net(xs).square().mean()
            loss.backward()
            if step == 2:  # a second backward before the reduction: the sum of both is averaged
                net(xs).square().mean().backward()
            during = ctx.launched - before
            ctx.reduce_grads(net)
            out.append((during, ctx.launched - before, {k: p.grad for k, p in net.named_parameters()}))
        ctx.check_reductions()
        return out, len(ctx.reducers[(id(net),)].buckets)

    for r, (steps, n_buckets) in _in_threads(world, rank).items():
        assert n_buckets == 5  # the unused layer shares the first bucket with the last layer's bias
        (d0, l0, g0), (d1, l1, g1), (d2, l2, g2) = steps
        assert (d0, l0) == (0, 5)  # first call: everything reduced after backward
        assert (d1, l1) == (5, 5)  # then every bucket goes out during backward
        assert (d2, l2) == (5, 10)  # gradients changed after their buckets went out: all reduced again
        for grads, scale in ((g0, 1), (g1, 1), (g2, 2)):
            assert grads["unused.weight"] is None and grads["unused.bias"] is None
            for k, g in want.items():
                assert torch.allclose(grads[k], scale * g, atol=1e-6), (r, k)


def test_ranks_with_gradients_of_other_parameters_are_caught():
    def rank(ctx):
        a, b, c = (torch.nn.Parameter(torch.ones(n)) for n in (8, 4, 4))
        m = torch.nn.ParameterList([a, b, c])
        # rank 0: a gradient for a (8 numbers); rank 1: for b and c (8 numbers too): same buffer size
        loss = a.sum() if ctx.rank == 0 else b.sum() + c.sum()
        loss.backward()
        ctx.reduce_grads(m)
        with pytest.raises(RuntimeError, match="gradients for different parameters"):
            ctx.check_reductions()

    _in_threads(2, rank)


def _gloo_rank(rank, world, store, q):
    import torch.distributed as tdist

    tdist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    try:
        ctx = Context(rank, world)
        ctx.bucket_mb = 1 / 1024
        net = _grad_net()
        x = torch.randn(8, 4, generator=torch.Generator().manual_seed(0))
        for _ in range(2):
            net.zero_grad(set_to_none=True)
            net(ctx.shard(x)).square().mean().backward()
            ctx.reduce_grads(net)
        ctx.check_reductions()
        q.put((rank, {k: None if p.grad is None else p.grad.clone() for k, p in net.named_parameters()}))
    finally:
        tdist.destroy_process_group()


def test_bucketed_reduction_with_gloo_processes(tmp_path):
    """The real asynchronous collectives (gloo, 2 processes) in 1 KB buckets: the one-process gradient."""
    import torch.multiprocessing as mp

    x = torch.randn(8, 4, generator=torch.Generator().manual_seed(0))
    net = _grad_net()
    net(x).square().mean().backward()
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    procs = [ctx.Process(target=_gloo_rank, args=(r, 2, tmp_path / "store", q)) for r in range(2)]
    for p in procs:
        p.start()
    got = dict(q.get(timeout=120) for _ in procs)
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    for r in range(2):
        for k, p in net.named_parameters():
            if p.grad is None:
                assert got[r][k] is None, k
            else:
                assert torch.allclose(got[r][k], p.grad, atol=1e-6), (r, k)


def test_each_rank_augments_its_own_rows():
    """ADA through Context.draws: each rank augments only its rows and gets the one-process result."""
    world, n = 3, 6
    x = torch.randn(n, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    g0 = torch.Generator().manual_seed(5)
    full = augment(x, 0.7, g0)
    assert torch.allclose(augment(x, 0.7, Context().draws(torch.Generator().manual_seed(5))), full)
    for r in range(world):
        ctx = Context(r, world)
        g = torch.Generator().manual_seed(5)
        seen = []
        mine = augment(x[r::world], 0.7, ctx.draws(g))
        assert torch.allclose(mine, full[r::world], atol=1e-6)
        assert torch.equal(g.get_state(), g0.get_state())  # in step with the one-process generator
        seen.append(mine.shape[0])
        assert seen == [n // world]  # the work of this rank's rows only
