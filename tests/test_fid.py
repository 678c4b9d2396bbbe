import hashlib
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from http_server import FileServer

from ganaug import fid as fidmod
from ganaug.fid import (
    DomainFeatures,
    InceptionFeatures,
    feature_stats,
    fid_from_features,
    fid_settings,
    frechet_distance,
    inception_weights_file,
    inception_weights_record,
    load_stats,
    make_extractor,
    make_extractors,
    save_stats,
)
from ganaug.io import InputError
from ganaug.weights import ChecksumError


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


def test_stats_round_trip(tmp_path):
    mu, s = np.arange(3.0), np.eye(3)
    save_stats(tmp_path / "s.npz", mu, s)
    m2, s2 = load_stats(tmp_path / "s.npz")
    np.testing.assert_array_equal(m2, mu) and np.testing.assert_array_equal(s2, s)
    (tmp_path / "bad.npz").write_text("x")
    with pytest.raises(InputError, match="bad.npz"):
        load_stats(tmp_path / "bad.npz")


def _random_inception_state(seed=0):
    """A state dict of torch-fidelity's FeatureExtractorInceptionV3 with random weights (the real ones cannot
    be downloaded here): the class is built with its weight loading skipped, convolutions re-initialised so
    that the 2048-d features are O(0.1) rather than vanishing."""
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    with pytest.MonkeyPatch.context() as m, tempfile.TemporaryDirectory() as d:
        m.setattr(FeatureExtractorInceptionV3, "load_state_dict", lambda self, *a, **k: None)
        torch.save({}, Path(d) / "empty.pth")
        torch.manual_seed(seed)
        net = FeatureExtractorInceptionV3("inception-v3-compat", ["2048"],
                                          feature_extractor_weights_path=str(Path(d) / "empty.pth"))
    for mod in net.modules():
        if isinstance(mod, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(mod.weight, nonlinearity="relu")
    return net.state_dict()


@pytest.fixture(scope="module")
def inception_file(tmp_path_factory):
    """Random weights in the format of torch-fidelity's Inception file, named like it with the file's own
    sha256 prefix (torch.hub convention): no network."""
    folder = tmp_path_factory.mktemp("w")
    tmp = folder / "weights.pth"
    torch.save(_random_inception_state(), tmp)
    digest = hashlib.sha256(tmp.read_bytes()).hexdigest()
    path = folder / f"weights-inception-random-{digest[:8]}.pth"
    tmp.rename(path)
    return path, digest


class _Uint8Images(torch.utils.data.Dataset):
    """N x H x W x 3 uint8 images as torch-fidelity's input: a Dataset of 3 x H x W uint8 tensors."""

    def __init__(self, images):
        self.images = images

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return torch.from_numpy(self.images[i]).permute(2, 0, 1).contiguous()


def test_inception_fid_equals_torch_fidelity(inception_file, monkeypatch):
    """Our FID through InceptionFeatures = torch-fidelity's own calculate_metrics FID on the same weights and
    images (the input conversion, its resize and scaling, our Frechet distance), on torch-fidelity's 192-d
    layer: on the 2048-d pool features both matrix square roots take a minute of one CPU core. The 2048-d
    features the standard extractor returns are checked against the library's network below."""
    import torch_fidelity
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    path, _ = inception_file
    assert FeatureExtractorInceptionV3.INPUT_IMAGE_SIZE == 299  # the standard input size, used by default
    # the smallest input the network takes (75 px), for both computations: keeps the CPU test fast
    monkeypatch.setattr(FeatureExtractorInceptionV3, "INPUT_IMAGE_SIZE", 75)
    rng = np.random.default_rng(0)
    real = rng.integers(0, 256, (16, 24, 20, 3), dtype=np.uint8)  # not square: H and W must not be swapped
    real[:, :12] //= 2
    fake = np.clip(real.astype(int) + rng.integers(-60, 60, real.shape), 0, 255).astype(np.uint8)
    ext = InceptionFeatures(path, feature="192")
    assert isinstance(ext.net, FeatureExtractorInceptionV3) and ext.metric == "fid_inception"
    fr, fg = ext.features(real, batch_size=7), ext.features(fake, batch_size=16)
    assert fr.shape == (16, 192) and fr.dtype == np.float64 and np.isfinite(fr).all()
    ours = fid_from_features(fr, fg)
    ref = torch_fidelity.calculate_metrics(
        input1=_Uint8Images(real), input2=_Uint8Images(fake), fid=True, feature_layer_fid="192", cuda=False,
        cache=False, verbose=False, save_cpu_ram=True, batch_size=16,
        feature_extractor_weights_path=str(path))["frechet_inception_distance"]
    assert ref > 1e-3  # not a trivial 0 = 0
    assert ours == pytest.approx(ref, rel=1e-4)
    # the standard extractor: the 2048-d pool features of the same network, as torch-fidelity's FID uses
    std = InceptionFeatures(path)
    assert std.name == "inception-v3-compat" and std.net.features_list == ["2048"]
    assert FeatureExtractorInceptionV3.get_default_feature_layer_for_metric("fid") == "2048"
    f2048 = std.features(real[:3], batch_size=2)
    (lib,) = std.net(torch.from_numpy(real[:3]).permute(0, 3, 1, 2).contiguous())
    assert f2048.shape == (3, 2048) and np.isfinite(f2048).all() and f2048.std() > 1e-3
    np.testing.assert_allclose(f2048, lib.double().numpy(), rtol=1e-5, atol=1e-6)
    with pytest.raises(InputError):
        ext.features(real.astype(np.float32))
    with pytest.raises(InputError, match="feature"):
        InceptionFeatures(path, feature="1000")


def test_inception_bad_file(tmp_path):
    with pytest.raises(InputError, match="not found"):
        InceptionFeatures(tmp_path / "none.pth")
    (tmp_path / "garbage.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="garbage.pth"):
        InceptionFeatures(tmp_path / "garbage.pth")
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


def _inception_cfg(**weights):
    return {"features": "inception", "inception_weights": weights}


def test_make_extractors_choices(inception_file, tmp_path, monkeypatch):
    path, digest = inception_file

    class Stub:  # the real class is tested above; here only which extractors are made, from which file
        metric, name = "fid_inception", "inception-v3-compat"

        def __init__(self, p):
            assert Path(p) == path

    monkeypatch.setattr(fidmod, "InceptionFeatures", Stub)
    # Inception selects, the ancillary classifier's FID is the second metric
    exts = make_extractors({**_inception_cfg(local=str(path))}, _loader)
    assert [e.metric for e in exts] == ["fid_inception", "fid_ancillary"]
    assert exts[1].name == "ancillary:timm:test_resnet"
    assert make_extractor(_inception_cfg(local=str(path)), _loader).metric == "fid_inception"
    assert [e.metric for e in make_extractors({**_inception_cfg(local=str(path)), "second_metric": False},
                                              _loader)] == ["fid_inception"]
    # a plain path is a local file (the former form of the key); features default to inception then
    assert make_extractor({"inception_weights": str(path)}, _loader).metric == "fid_inception"
    # nothing configured -> the ancillary features only
    assert [e.metric for e in make_extractors({}, _loader)] == ["fid_ancillary"]
    # ancillary selects, Inception beside it when its weights are set
    exts = make_extractors({"features": "ancillary", "inception_weights": str(path)}, _loader)
    assert [e.metric for e in exts] == ["fid_ancillary", "fid_inception"]
    # an unreachable URL is an error naming the key, never a silent switch to other features
    with pytest.raises(InputError, match="fid.inception_weights.url") as e:
        make_extractor({**_inception_cfg(url="http://127.0.0.1:9/w-12345678.pth"), "cache_dir": str(tmp_path)},
                       _loader)
    assert "127.0.0.1:9" in str(e.value) and "local" in str(e.value)
    custom = DomainFeatures(*_loader()[:1], (0,) * 3, (1,) * 3, 32, "ancillary:custom")
    assert make_extractor({}, lambda: custom) is custom
    with pytest.raises(InputError, match="ancillary"):
        make_extractor({}, None)


def test_inception_weights_local_file(inception_file, tmp_path):
    path, digest = inception_file
    assert inception_weights_file(_inception_cfg(local=str(path))) == path  # name prefix checked
    assert inception_weights_file(_inception_cfg(local=str(path), sha256=digest.upper())) == path
    # a copy under another name, checked against the name of the url it stands for
    copy = tmp_path / "inception.pth"
    copy.write_bytes(path.read_bytes())
    assert inception_weights_file(_inception_cfg(local=str(copy), url=f"http://x/{path.name}")) == copy
    # corrupted: a mismatch names the key and the file, by full checksum or by the name's prefix
    bad = tmp_path / path.name
    bad.write_bytes(path.read_bytes()[:-1] + b"x")
    with pytest.raises(ChecksumError, match=f"fid.inception_weights.local: {bad}: checksum mismatch"):
        inception_weights_file(_inception_cfg(local=str(bad), sha256=digest))
    with pytest.raises(ChecksumError, match=f"{bad}: checksum mismatch.*{digest[:8]}"):
        inception_weights_file(_inception_cfg(local=str(bad)))
    with pytest.raises(InputError, match="fid.inception_weights.local: .*missing.pth: weights file not found"):
        inception_weights_file(_inception_cfg(local=str(tmp_path / "missing.pth")))


def test_inception_weights_download(inception_file, tmp_path):
    """Fetched once from a local HTTP server into the cache with the checksum recorded; a corrupted
    download (full checksum or the name's hash prefix) fails naming the file and is removed."""
    path, digest = inception_file
    data = path.read_bytes()
    server = FileServer({f"/w/{path.name}": data, "/w/weights-inception-2015-12-05-6726825d.pth": data})
    try:
        url = f"{server.url}/w/{path.name}"
        cfg = {**_inception_cfg(url=url), "cache_dir": str(tmp_path / "cache")}
        got = inception_weights_file(cfg)
        assert got == tmp_path / "cache" / path.name and got.read_bytes() == data
        assert (tmp_path / "cache" / f"{path.name}.sha256").read_text().split()[0] == digest  # recorded
        record = inception_weights_record(cfg)
        assert record["sha256"] == digest and record["path"] == str(got) and record["url"] == url
        n = len(server.requests)
        assert make_extractor(cfg, _loader).metric == "fid_inception" and len(server.requests) == n  # cached
        # the cached file gets corrupted: its recorded checksum catches it and it is downloaded again
        got.write_bytes(b"corrupted")
        assert inception_weights_file(cfg).read_bytes() == data
        # a wrong full checksum configured: the download is removed, the message names url and file
        cfg2 = {**_inception_cfg(url=url, sha256="0" * 64), "cache_dir": str(tmp_path / "cache2")}
        with pytest.raises(ChecksumError, match="fid.inception_weights.url: .*checksum mismatch") as e:
            inception_weights_file(cfg2)
        assert path.name in str(e.value) and not any((tmp_path / "cache2").iterdir())
        # no sha256 configured: the served file does not match the hash prefix in its name
        url3 = f"{server.url}/w/weights-inception-2015-12-05-6726825d.pth"
        cfg3 = {**_inception_cfg(url=url3), "cache_dir": str(tmp_path / "cache3")}
        with pytest.raises(ChecksumError, match="weights-inception-2015-12-05-6726825d.pth.*6726825d") as e:
            inception_weights_file(cfg3)
        assert "fid.inception_weights.url" in str(e.value) and not any((tmp_path / "cache3").iterdir())
    finally:
        server.close()


@pytest.mark.parametrize("cfg,key", [
    ({"features": "imagenet"}, "fid.features"),
    ({"features": "inception"}, "fid.inception_weights: required"),
    ({"inception_url": "http://x/w.pth"}, "fid.inception_url: replaced by fid.inception_weights"),
    ({"inception_sha256": "ab" * 32}, "fid.inception_sha256"),
    ({"inception_weigths": "w.pth"}, "fid.inception_weigths: unknown key"),
    ({"inception_weights": {"urll": "http://x/w.pth"}}, "fid.inception_weights.urll: unknown key"),
    ({"inception_weights": {"url": "http://x/w.pth", "sha256": "abc"}}, "fid.inception_weights.sha256"),
    ({"inception_weights": {"sha256": "ab" * 32}}, "fid.inception_weights: needs url or local"),
    ({"inception_weights": 3}, "fid.inception_weights: expected"),
    ({"second_metric": "yes"}, "fid.second_metric"),
    ({"tolerance": -0.1}, "fid.tolerance"),
    ({"n_images": 1}, "fid.n_images"),
    ({"kid_subsets": 1}, "fid.kid_subsets"),
    ({"kid_subset_size": 1.5}, "fid.kid_subset_size"),
])
def test_fid_settings_errors_name_the_key(cfg, key):
    with pytest.raises(InputError) as e:
        fid_settings(cfg)
    assert str(e.value).startswith(key), str(e.value)


def test_fid_settings_defaults():
    cfg = fid_settings(None)
    assert cfg["features"] == "ancillary" and cfg["tolerance"] == 0.3 and cfg["second_metric"] is True
    cfg = fid_settings({"inception_weights": "w.pth", "inception_url": None})
    assert cfg["features"] == "inception"
    assert cfg["inception_weights"] == {"url": None, "sha256": None, "local": "w.pth"}


def test_config_check_names_fid_keys(tmp_path):
    from ganaug.config_check import _check_fid

    assert _check_fid({"features": "ancillary"}, tmp_path) == []
    assert _check_fid({"features": "inception", "inception_weights": {"local": "w.pth"}}, tmp_path) == [
        "fid.inception_weights.local: file not found: w.pth"]
    (tmp_path / "w.pth").write_bytes(b"x")
    assert _check_fid({"features": "inception", "inception_weights": {"local": "w.pth"}}, tmp_path) == []
    assert _check_fid({"features": "imagenet"}, tmp_path)[0].startswith("fid.features")


def test_fid_on_features_detects_shift():
    rng = np.random.default_rng(5)
    a, b = rng.normal(size=(600, 8)), rng.normal(size=(600, 8))
    assert fid_from_features(a, b) < fid_from_features(a, b + 1.0)
    assert fidmod.compute_stats is not None
