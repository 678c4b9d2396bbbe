import pytest
import torch

from ganaug.classifier.models import PRETRAINEDMODELS_NAMES, ModelInfo, create_classifier, validate_model_name
from ganaug.io import InputError


def test_timm_model_uniform_api():
    torch.manual_seed(0)
    model, info = create_classifier("timm:test_resnet", num_classes=2, channels=[16, 32, 48, 64], stem_width=8)
    assert isinstance(info, ModelInfo)
    assert info.name == "timm:test_resnet" and info.num_classes == 2
    assert len(info.mean) == 3 and len(info.std) == 3
    assert info.model_kwargs == {"channels": (16, 32, 48, 64), "stem_width": 8}
    model.eval()
    x = torch.randn(3, 3, 32, 32)
    logits = model(x)
    feats = model.features(x)
    assert logits.shape == (3, 2)
    assert feats.shape == (3, info.feature_dim)
    # logits are the linear head of the penultimate features
    assert torch.allclose(model.net.fc(feats), logits, atol=1e-5)


@pytest.mark.parametrize("name,match", [
    ("timm:no_such_model_xyz", "unknown timm model"),
    ("resnet18", "<library>:<model>"),
    ("keras:resnet18", "unknown model library"),
    ("pretrainedmodels:no_such", "unknown pretrainedmodels model"),
])
def test_unknown_names_name_the_config_key(name, match):
    with pytest.raises(InputError, match=match) as e:
        validate_model_name(name)
    assert "classifier.model" in str(e.value) and "timm.list_models" in str(e.value)
    with pytest.raises(InputError, match="classifier.model"):
        create_classifier(name)


def test_validate_known_names():
    assert validate_model_name("timm:resnet10t") == "timm:resnet10t"
    assert validate_model_name("pretrainedmodels:inceptionv4") == "pretrainedmodels:inceptionv4"
    assert validate_model_name("timm:anything", check_exists=False) == "timm:anything"


def test_static_pretrainedmodels_list_matches_package():
    import pretrainedmodels

    assert set(PRETRAINEDMODELS_NAMES) == set(pretrainedmodels.model_names)


def test_bad_timm_kwargs():
    with pytest.raises(InputError, match="classifier.model_kwargs"):
        create_classifier("timm:test_resnet", no_such_argument=3)


def test_pretrainedmodels_inceptionv4_builds_without_download():
    model, info = create_classifier("pretrainedmodels:inceptionv4", num_classes=2, pretrained=False)
    assert info.mean == (0.5, 0.5, 0.5) and info.std == (0.5, 0.5, 0.5)
    assert info.input_size == 299 and info.feature_dim == 1536
    assert model.head.out_features == 2
    # any input size works: the fixed 8x8 average pool was made adaptive (the conv stack is skipped
    # here to keep the test fast: a 3x3 feature map goes through the pooling + new head)
    assert isinstance(model.net.avg_pool, torch.nn.AdaptiveAvgPool2d)
    fmap = torch.randn(2, 1536, 3, 3)
    with torch.no_grad():
        pooled = model.net.logits(fmap)
        assert torch.allclose(pooled, fmap.mean(dim=(2, 3)), atol=1e-6)
        assert model.head(pooled).shape == (2, 2)


def test_pretrainedmodels_loads_local_weights_through_package_code(tmp_path):
    """'pretrained' weights come from a local file through the package's own loading code (resnet18:
    a torchvision-format state dict with fc.* keys that pretrainedmodels renames to last_linear)."""
    import torchvision

    torch.manual_seed(0)
    ref = torchvision.models.resnet18()
    path = tmp_path / "resnet18.pth"
    torch.save(ref.state_dict(), path)
    model, info = create_classifier("pretrainedmodels:resnet18", num_classes=2, pretrained=True,
                                    weights_path=path)
    assert torch.equal(model.net.conv1.weight, ref.conv1.weight)
    assert info.feature_dim == 512 and model.head.out_features == 2
    assert info.mean == pytest.approx((0.485, 0.456, 0.406))
    with pytest.raises(InputError, match="weights file not found"):
        create_classifier("pretrainedmodels:resnet18", pretrained=True, weights_path=tmp_path / "missing.pth")
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="bad.pth"):
        create_classifier("pretrainedmodels:resnet18", pretrained=True, weights_path=bad)


def test_bgr_caffe_style_models_get_rgb_unit_range_normalisation():
    model, info = create_classifier("pretrainedmodels:bninception", pretrained=False)
    assert model.bgr
    # settings: BGR order, 0-255 range, mean [104, 117, 128] -> RGB order, [0, 1] range
    assert info.mean == pytest.approx((128 / 255, 117 / 255, 104 / 255))
    assert info.std == pytest.approx((1 / 255,) * 3)


def test_timm_pretrained_from_local_file(tmp_path):
    import timm

    torch.manual_seed(1)
    ref = timm.create_model("test_resnet")  # 1000 classes, like an ImageNet checkpoint
    path = tmp_path / "test_resnet.pth"
    torch.save(ref.state_dict(), path)
    model, _ = create_classifier("timm:test_resnet", num_classes=2, pretrained=True, weights_path=path)
    assert torch.equal(model.net.conv1[0].weight, ref.conv1[0].weight)
    assert model.net.fc.out_features == 2
    with pytest.raises(InputError, match="weights file not found"):
        create_classifier("timm:test_resnet", pretrained=True, weights_path=tmp_path / "missing.pth")


def test_pretrainedmodels_weights_are_fetched_with_cache_when_no_path(tmp_path, monkeypatch):
    import torchvision

    import ganaug.weights

    ref = torchvision.models.resnet18()
    local = tmp_path / "resnet18-5c106cde.pth"
    torch.save(ref.state_dict(), local)
    calls = []

    def fake_fetch(url, sha256, cache_dir, filename=None, timeout=30):
        calls.append((url, cache_dir))
        return local

    monkeypatch.setattr(ganaug.weights, "fetch", fake_fetch)
    model, _ = create_classifier("pretrainedmodels:resnet18", pretrained=True, cache_dir=tmp_path / "cache")
    assert calls == [("https://download.pytorch.org/models/resnet18-5c106cde.pth", tmp_path / "cache")]
    assert torch.equal(model.net.conv1.weight, ref.conv1.weight)


def test_builtin_resnet_uniform_api_and_identity_start():
    torch.manual_seed(0)
    model, info = create_classifier("ganaug:resnet", num_classes=2, channels=[8, 16, 24], layers=[1, 2, 1],
                                    stem_width=4)
    assert info.name == "ganaug:resnet" and info.feature_dim == 24
    assert info.model_kwargs == {"channels": (8, 16, 24), "layers": (1, 2, 1), "stem_width": 4}
    assert validate_model_name("ganaug:resnet") == "ganaug:resnet"
    model.eval()
    x = torch.randn(3, 3, 32, 32)
    feats = model.features(x)
    assert feats.shape == (3, 24) and model(x).shape == (3, 2)
    assert torch.allclose(model.head(feats), model(x), atol=1e-6)
    # the last BN of every residual branch starts at zero: each block is relu(shortcut(x)) at init
    block = model.net.stages[1]
    h = torch.randn(2, 8, 8, 8)
    assert torch.allclose(block(h), torch.relu(block.shortcut(h)))
    # the same weights rebuild the same network from (name, kwargs), as load_classifier does
    again, _ = create_classifier(info.name, num_classes=2, **info.model_kwargs)
    again.load_state_dict(model.state_dict())
    assert torch.equal(again.eval()(x), model(x))


@pytest.mark.parametrize("kwargs,match", [
    ({"pretrained": True}, "classifier.pretrained"),
    ({"channels": [8, 16], "layers": [1]}, "classifier.model_kwargs"),
    ({"no_such_argument": 3}, "classifier.model_kwargs"),
])
def test_builtin_resnet_bad_settings(kwargs, match):
    with pytest.raises(InputError, match=match):
        create_classifier("ganaug:resnet", **kwargs)
    with pytest.raises(InputError, match="unknown ganaug model"):
        validate_model_name("ganaug:vgg")


def test_builtin_resnet_sees_the_image_centre_from_the_start():
    """Stride-2 shortcuts average (ResNet-D): with 1x1 strided ones, the zero-initialised network would see
    only the image corner at 32 px (the lesion is in the centre, and the classifier barely learnt)."""
    torch.manual_seed(0)
    model, _ = create_classifier("ganaug:resnet", channels=[16, 32, 48, 64], stem_width=8)
    model.eval()
    x = torch.rand(2, 3, 32, 32)
    centre = x.clone()
    centre[:, :, 12:20, 12:20] += 1.0
    assert (model.features(centre) - model.features(x)).abs().max() > 1e-3


def test_timm_names_read_from_source_match_the_registry():
    """The config check reads timm's model names from its source (no torch import): the same set as the
    registry that timm.is_model consults once imported (current and deprecated names)."""
    import timm
    from timm.models import get_deprecated_models

    from ganaug.classifier.names import timm_is_model, timm_model_names

    assert timm_model_names() == set(timm.list_models()) | set(get_deprecated_models())
    for name in ("resnet10t", "resnet50.a1_in1k", "no_such_model_xyz", "resnet50.", "test_resnet"):
        assert timm_is_model(name) == timm.is_model(name), name


def test_native_names_are_the_built_in_networks():
    from ganaug.classifier.names import NATIVE_NAMES
    from ganaug.classifier.resnet import MODELS

    assert NATIVE_NAMES == tuple(MODELS)
    assert validate_model_name("ganaug:resnet") == "ganaug:resnet"
    with pytest.raises(InputError, match="unknown ganaug model 'vgg'"):
        validate_model_name("ganaug:vgg")


def test_package_names_load_on_first_use():
    """ganaug.classifier loads its modules lazily; every exported name resolves."""
    import ganaug.classifier as classifier

    for name in classifier.__all__:
        assert getattr(classifier, name) is not None, name
    with pytest.raises(AttributeError):
        classifier.no_such_name  # noqa: B018


def test_timm_name_missed_by_the_source_reading_is_asked_of_timm(monkeypatch):
    """A timm whose source declares a model otherwise than timm_model_names reads: the name is still
    accepted (timm confirms it), and an unknown one still refused."""
    from ganaug.classifier import names

    monkeypatch.setattr(names, "timm_model_names", lambda: frozenset({"some_other_model"}))
    assert names.validate_model_name("timm:resnet10t") == "timm:resnet10t"
    with pytest.raises(InputError, match="unknown timm model 'no_such_model_xyz'"):
        names.validate_model_name("timm:no_such_model_xyz")
