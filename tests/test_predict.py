import numpy as np
import pytest
import torch

from ganaug.classifier.augment import BatchAugment, normalise_only
from ganaug.classifier.models import create_classifier
from ganaug.classifier.predict import features, per_image_loss, predict_proba, predict_proba_models, tta_params
from ganaug.io import InputError


@pytest.fixture(scope="module")
def model_info():
    torch.manual_seed(0)
    model, info = create_classifier("timm:test_resnet", channels=[8, 16, 16, 24], stem_width=8)
    info.input_size = 16
    # non-trivial batch-norm statistics so predictions vary between images
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(16, 3, 16, 16) * 2)
    return model.eval(), info


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(0).integers(0, 256, (13, 16, 16, 3), dtype=np.uint8)


def test_no_tta_equals_plain_forward(model_info, images):
    model, info = model_info
    p = predict_proba(model, info, images, "cpu", tta=0, batch_size=5)
    with torch.no_grad():
        x = normalise_only(torch.from_numpy(images), info.mean, info.std, info.input_size)
        ref = torch.softmax(model(x), 1)[:, 1].double().numpy()
    assert p.shape == (13,)
    np.testing.assert_allclose(p, ref, atol=1e-6)


def test_tta_batching_equals_per_replica_loop(model_info, images):
    model, info = model_info
    tta = 4
    p_big = predict_proba(model, info, images, "cpu", tta=tta, seed=3, batch_size=256)
    p_small = predict_proba(model, info, images, "cpu", tta=tta, seed=3, batch_size=6)  # 1 image/pass
    np.testing.assert_allclose(p_big, p_small, atol=1e-6)
    # reference: for each replica, augment all images with that replica's parameters
    aug = BatchAugment(None, info.mean, info.std, info.input_size)
    params = tta_params(aug, len(images), tta, seed=3)
    x = torch.from_numpy(images)
    per_replica = []
    with torch.no_grad():
        for r in range(tta):
            xr = aug.apply(x, {k: v[:, r] for k, v in params.items()})
            per_replica.append(torch.softmax(model(xr), 1)[:, 1].double())
    ref = torch.stack(per_replica, 1).mean(1).numpy()
    np.testing.assert_allclose(p_big, ref, atol=1e-6)
    # TTA changes the result, and the seed matters
    assert not np.allclose(p_big, predict_proba(model, info, images, "cpu", tta=0))
    assert not np.allclose(p_big, predict_proba(model, info, images, "cpu", tta=tta, seed=4))


def test_per_image_loss_and_features(model_info, images):
    model, info = model_info
    labels = np.arange(13) % 2
    loss = per_image_loss(model, info, images, labels, "cpu", batch_size=4)
    p = predict_proba(model, info, images, "cpu")
    expected = -np.log(np.where(labels == 1, p, 1 - p))
    np.testing.assert_allclose(loss, expected, rtol=1e-4, atol=1e-6)
    f = features(model, info, images, "cpu", batch_size=4)
    assert f.shape == (13, info.feature_dim) and f.dtype == np.float32
    with torch.no_grad():
        logits = model.net.fc(torch.from_numpy(f))
    np.testing.assert_allclose(torch.softmax(logits, 1)[:, 1].numpy(), p, atol=1e-5)
    with pytest.raises(InputError, match="labels"):
        per_image_loss(model, info, images, labels[:3], "cpu")
    with pytest.raises(InputError, match="uint8"):
        predict_proba(model, info, images.astype(np.float32), "cpu")


def test_memmap_images_give_the_same_predictions(model_info, images, tmp_path):
    model, info = model_info
    np.save(tmp_path / "x.npy", images)
    mm = np.load(tmp_path / "x.npy", mmap_mode="r")
    assert isinstance(mm, np.memmap)
    np.testing.assert_allclose(predict_proba(model, info, mm, "cpu", tta=2, batch_size=5),
                               predict_proba(model, info, images, "cpu", tta=2, batch_size=5), atol=1e-6)
    np.testing.assert_allclose(features(model, info, mm, "cpu", batch_size=5),
                               features(model, info, images, "cpu", batch_size=5), atol=1e-6)


def test_several_models_share_the_augmented_batches_and_equal_one_at_a_time(images):
    """evaluate's path: three replicates' models (and one of another input size, which gets batches of
    its own) on one test set give what predict_proba gives each alone, with and without TTA."""
    models = []
    for seed, size in ((1, 16), (2, 16), (3, 12), (4, 16)):
        torch.manual_seed(seed)
        models.append(create_classifier("timm:test_resnet", channels=[8, 16, 16, 24], stem_width=8))
        models[-1][1].input_size = size
    for tta in (3, 0):
        together = predict_proba_models(models, images, "cpu", tta=tta, seed=5, batch_size=7)
        assert len(together) == len(models)
        for (model, info), p in zip(models, together):
            alone = predict_proba(model, info, images, "cpu", tta=tta, seed=5, batch_size=7)
            np.testing.assert_array_equal(p, alone)
        # each model's own weights: the four predictions differ
        assert len({p.tobytes() for p in together}) == len(models)
