import numpy as np
import pytest
import torch

from ganaug import fid as fidmod
from ganaug.fid import (
    DomainFeatures,
    InceptionFeatures,
    feature_stats,
    fid_from_features,
    frechet_distance,
    kid,
    load_stats,
    make_extractor,
    save_stats,
)
from ganaug.io import InputError


def _direct_fid(x, y):
    """FID computed independently: Tr sqrt(S1 S2) = sum sqrt(eig(S1^1/2 S2 S1^1/2)) (symmetric PSD)."""
    mu1, mu2 = x.mean(0), y.mean(0)
    s1, s2 = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    w, v = np.linalg.eigh(s1)
    r1 = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    ev = np.linalg.eigvalsh(r1 @ s2 @ r1)
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.sqrt(np.clip(ev, 0, None)).sum())


def test_frechet_matches_direct_computation():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(500, 16)) @ rng.normal(size=(16, 16))
    b = rng.normal(0.3, 1.0, size=(400, 16)) @ rng.normal(size=(16, 16))
    got = fid_from_features(a, b)
    assert got == pytest.approx(_direct_fid(a, b), rel=1e-6)
    mu, s = feature_stats(a)
    assert frechet_distance(mu, s, mu, s) == pytest.approx(0.0, abs=1e-6)
    assert fid_from_features(b, a) == pytest.approx(got, rel=1e-6)


def test_frechet_closed_forms():
    # 1-D: (m1 - m2)^2 + (sd1 - sd2)^2
    assert frechet_distance(1.0, 4.0, 3.0, 9.0) == pytest.approx(4 + 1)
    # diagonal covariances
    d1, d2 = np.array([1.0, 4.0, 9.0]), np.array([4.0, 4.0, 1.0])
    val = frechet_distance(np.zeros(3), np.diag(d1), np.ones(3), np.diag(d2))
    assert val == pytest.approx(3 + ((np.sqrt(d1) - np.sqrt(d2)) ** 2).sum())


def test_frechet_rank_deficient_covariances():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(10, 32))  # N < D: singular covariance
    b = rng.normal(0.5, 1, size=(12, 32))
    got = fid_from_features(a, b)
    assert np.isfinite(got) and got == pytest.approx(_direct_fid(a, b), rel=1e-3, abs=1e-3)


def test_frechet_singular_fallback_adds_eps(monkeypatch):
    import scipy.linalg

    real = scipy.linalg.sqrtm
    calls = []

    def flaky(m):
        calls.append(m)
        if len(calls) == 1:
            return np.full_like(m, np.nan)
        return real(m)

    monkeypatch.setattr(scipy.linalg, "sqrtm", flaky)
    s = np.diag([1.0, 2.0])
    val = frechet_distance(np.zeros(2), s, np.zeros(2), s, eps=1e-6)
    assert len(calls) == 2 and np.allclose(calls[1], (s + 1e-6 * np.eye(2)) @ (s + 1e-6 * np.eye(2)))
    assert val == pytest.approx(0.0, abs=1e-5)


def test_frechet_shape_errors():
    with pytest.raises(InputError):
        frechet_distance(np.zeros(2), np.eye(2), np.zeros(3), np.eye(3))
    with pytest.raises(InputError):
        feature_stats(np.zeros((1, 4)))


def _direct_mmd(x, y):
    d = x.shape[1]
    k = lambda a, b: (a @ b / d + 1) ** 3
    m, n = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    return xx + yy - 2 * xy


def test_kid_matches_direct_unbiased_mmd():
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(30, 5)), rng.normal(0.4, 1.2, size=(30, 5))
    mean, std = kid(x, y, n_subsets=3, subset_size=1000, seed=0)  # subset = whole (permuted) sets
    assert mean == pytest.approx(_direct_mmd(x, y), rel=1e-9) and std == pytest.approx(0, abs=1e-9)


def test_kid_unbiased_and_seeded():
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(2000, 8)), rng.normal(size=(2000, 8))
    same = [kid(x, y, n_subsets=20, subset_size=50, seed=s)[0] for s in range(10)]
    # unbiased: centred on 0 for equal distributions (a biased estimator would be clearly positive)
    assert abs(np.mean(same)) < 3 * np.std(same) / np.sqrt(len(same)) + 1e-4
    assert min(same) < 0 or abs(np.mean(same)) < 1e-3
    shifted = kid(x, y + 0.5, n_subsets=20, subset_size=50, seed=0)[0]
    assert shifted > 10 * abs(np.mean(same))
    assert kid(x, y, 5, 100, seed=4) == kid(x, y, 5, 100, seed=4)
    with pytest.raises(InputError):
        kid(x[:1], y)


def test_stats_round_trip(tmp_path):
    mu, s = np.arange(3.0), np.eye(3)
    save_stats(tmp_path / "s.npz", mu, s)
    m2, s2 = load_stats(tmp_path / "s.npz")
    np.testing.assert_array_equal(m2, mu) and np.testing.assert_array_equal(s2, s)
    (tmp_path / "bad.npz").write_text("x")
    with pytest.raises(InputError, match="bad.npz"):
        load_stats(tmp_path / "bad.npz")


@pytest.fixture(scope="module")
def inception_file(tmp_path_factory):
    """A torchvision-format inception_v3 state dict (random weights, with the AuxLogits keys of the real
    ImageNet file) written locally: no network."""
    from torchvision.models import inception_v3

    torch.manual_seed(0)
    net = inception_v3(weights=None, aux_logits=True, init_weights=False)
    path = tmp_path_factory.mktemp("w") / "inception_v3_google.pth"
    torch.save(net.state_dict(), path)
    return path, net.eval()


def test_inception_features(inception_file):
    path, full = inception_file
    ext = InceptionFeatures(path)
    assert ext.name == "inception_v3_tv" and ext.metric == "fid_inception"
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, (2, 40, 40, 3), dtype=np.uint8)
    assert ext.input_size == (299, 299)
    ext.input_size = (80, 80)  # the network accepts >= 75 px; an 80 px input keeps the CPU test fast
    f = ext.features(imgs, batch_size=1)
    assert f.shape == (2, 2048) and f.dtype == np.float64 and np.isfinite(f).all()
    # reference: the same network fed (x - 0.5) / 0.5 at 299 px without transform_input, pool features
    x = torch.from_numpy(imgs).permute(0, 3, 1, 2).float() / 255
    x = torch.nn.functional.interpolate(x, size=(80, 80), mode="bilinear", align_corners=False, antialias=True)
    full.transform_input = False
    full.fc = torch.nn.Identity()
    with torch.no_grad():
        ref = full((x - 0.5) / 0.5).double().numpy()
    np.testing.assert_allclose(f, ref, rtol=1e-4, atol=1e-4)
    with pytest.raises(InputError):
        ext.features(imgs.astype(np.float32))


def test_inception_bad_file(tmp_path):
    with pytest.raises(InputError, match="not found"):
        InceptionFeatures(tmp_path / "none.pth")
    torch.save({"conv.weight": torch.zeros(1)}, tmp_path / "other.pth")
    with pytest.raises(InputError, match="other.pth"):
        InceptionFeatures(tmp_path / "other.pth")


def test_domain_features_timm_api():
    import timm

    torch.manual_seed(0)
    model = timm.create_model("test_resnet", num_classes=2).eval()
    ext = DomainFeatures(model, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25), (3, 48, 48), "ancillary:test_resnet")
    imgs = np.random.default_rng(1).integers(0, 256, (5, 32, 32, 3), dtype=np.uint8)
    f = ext.features(imgs, batch_size=2)
    x = torch.from_numpy(imgs).permute(0, 3, 1, 2).float() / 255
    x = torch.nn.functional.interpolate(x, size=(48, 48), mode="bilinear", align_corners=False, antialias=True)
    with torch.no_grad():
        ref = model.forward_head(model.forward_features((x - 0.5) / 0.25), pre_logits=True).double().numpy()
    assert f.shape == ref.shape and ext.metric == "fid_ancillary"
    np.testing.assert_allclose(f, ref, rtol=1e-5, atol=1e-5)


def test_domain_features_features_method_and_errors():
    class Wrapped(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(3, 4)

        def features(self, x):
            return self.lin(x.mean(dim=(2, 3)))

    ext = DomainFeatures(Wrapped(), (0, 0, 0), (1, 1, 1), 8, "ancillary:w")
    assert ext.features(np.zeros((2, 8, 8, 3), np.uint8)).shape == (2, 4)
    with pytest.raises(InputError):
        DomainFeatures(torch.nn.Linear(2, 2), (0, 0, 0), (1, 1, 1), 8, "x")


class _Info:
    mean, std, input_size, name = (0.5,) * 3, (0.5,) * 3, 32, "timm:test_resnet"


def _loader():
    import timm

    return timm.create_model("test_resnet", num_classes=2).eval(), _Info()


def test_make_extractor_choices(inception_file, tmp_path, monkeypatch):
    path, _ = inception_file
    ext = make_extractor({"inception_weights": str(path)}, _loader)
    assert ext.metric == "fid_inception"
    with pytest.raises(InputError, match="fid.inception_weights"):
        make_extractor({"inception_weights": str(tmp_path / "missing.pth")}, _loader)
    # nothing configured -> domain extractor named after the ancillary model
    ext = make_extractor({"inception_weights": None, "inception_url": None}, _loader)
    assert ext.metric == "fid_ancillary" and ext.name == "ancillary:timm:test_resnet"
    # url unreachable -> falls back to the domain extractor
    ext = make_extractor({"inception_url": "http://127.0.0.1:9/inception.pth", "cache_dir": str(tmp_path)}, _loader)
    assert ext.metric == "fid_ancillary"
    # url fetched into the cache -> inception (fetch stubbed to the local file)
    seen = {}

    def fake_fetch(url, sha, cache_dir, **kw):
        seen.update(url=url, sha=sha, cache_dir=cache_dir)
        return path

    monkeypatch.setattr("ganaug.weights.fetch", fake_fetch)
    class Stub:
        metric = "fid_inception"

        def __init__(self, p):
            seen["built"] = p

    monkeypatch.setattr(fidmod, "InceptionFeatures", Stub)
    ext = make_extractor({"inception_url": "http://x/inc.pth", "inception_sha256": "ab" * 32,
                          "cache_dir": str(tmp_path)}, _loader)
    assert ext.metric == "fid_inception" and seen["sha"] == "ab" * 32 and seen["built"] == path
    with pytest.raises(InputError, match="no Inception weights"):
        make_extractor({}, None)
    custom = DomainFeatures(*_loader()[:1], (0,) * 3, (1,) * 3, 32, "ancillary:custom")
    assert make_extractor({}, lambda: custom) is custom


def test_make_extractor_checksum_error_is_not_swallowed(monkeypatch, tmp_path):
    from ganaug.weights import ChecksumError

    def bad_fetch(*a, **k):
        raise ChecksumError("http://x/inc.pth: checksum mismatch")

    monkeypatch.setattr("ganaug.weights.fetch", bad_fetch)
    with pytest.raises(ChecksumError):
        make_extractor({"inception_url": "http://x/inc.pth"}, _loader)


def test_fid_on_features_detects_shift():
    rng = np.random.default_rng(5)
    a, b = rng.normal(size=(600, 8)), rng.normal(size=(600, 8))
    assert fid_from_features(a, b) < fid_from_features(a, b + 1.0)
    assert fidmod.compute_stats is not None
