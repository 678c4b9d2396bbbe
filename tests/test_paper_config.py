"""config/paper.yaml against the paper (Bissoto et al. 2021): Table 2 (both applications, every label, in
order), the classifier protocol of Section 3.2, the data of Section 3.1 / Table 3. A drift of the config from
the paper fails here. Table 4 (each GAN's length and snapshots): tests/test_gan_training.py
(test_paper_config_trains_each_gan_past_its_table4_epoch)."""

from pathlib import Path

import pytest
import yaml

from ganaug.design import application_order, build_experiments

REPO = Path(__file__).resolve().parents[1]
PAPER = yaml.safe_load((REPO / "config" / "paper.yaml").read_text())

# Table 2, with the labels of Figure 2 (GAN and sampling abbreviations; "sgn" and random are written out
# here, as our labels always name the GAN). The augmentation row lists (1:1/2:1/2), "the same as 1:1/2".
TABLE2_AUGMENTATION = [
    "1:0",
    "1:1/2 p2p", "1:1/2 spd", "1:1/2 pgn", "1:1/2 all",
    "1:1/4 sgn", "1:1/2 sgn", "1:1 sgn",
    "1:1/2 sgn bst", "1:1/2 sgn wst", "1:1/2 sgn div",
    "1:1 sgn bst", "1:1 sgn wst", "1:1 sgn div",
    "(1:1/2:3/4) sgn", "(1:1/2:1) sgn",
]
TABLE2_ANONYMIZATION = [
    "1/16:0", "1/16:1/16 sgn", "1/16:15/16 sgn",
    "1/8:0", "1/8:1/8 sgn", "1/8:7/8 sgn",
    "1/4:0", "1/4:1/4 sgn", "1/4:3/4 sgn",
    "1/2:0", "1/2:1/2 sgn",
    "1:1 sgn", "1:0",
]
@pytest.fixture(scope="module")
def experiments():
    return build_experiments(PAPER["experiments"])


def _labels(experiments, application):
    by_id = {e.id: e for e in experiments}
    return [by_id[i].label for i in application_order(experiments, application)]


def test_table2_both_applications_every_label_in_order(experiments):
    assert _labels(experiments, "augmentation") == TABLE2_AUGMENTATION
    assert _labels(experiments, "anonymization") == TABLE2_ANONYMIZATION
    # 1:0 and 1:1 are the same runs in both figures: 16 + 13 - 2 distinct experiments
    assert len(experiments) == 27
    shared = sorted(e.label for e in experiments if len(e.applications) == 2)
    assert shared == ["1:0", "1:1 sgn"]


def test_table2_factors():
    gans = {e.get("gan") for e in PAPER["experiments"]["augmentation"]} - {None}
    assert gans == {"pix2pixhd", "pgan", "spade", "stylegan2", "all"}
    sampling = {e.get("sampling", "random") for e in PAPER["experiments"]["augmentation"] if e.get("gan")}
    assert sampling == {"random", "diverse", "best", "worst"}
    anon = PAPER["experiments"]["anonymization"]
    assert {e.get("gan") for e in anon} - {None} == {"stylegan2"}  # "a single GAN (StyleGAN2)"
    assert {e.get("sampling", "random") for e in anon} == {"random"}  # "and a single sampling technique"


def test_replicates_pool_and_translation_sets():
    assert PAPER["replicates"] == 10  # "We replicated each experiment ten times"
    assert PAPER["pool"]["n_per_class"] == 100000  # "100,000 images for each of the 2 classes"
    # "For pix2pixHD and SPADE, we use the whole training set's mask to generate our synthetic set"
    assert PAPER["pool"]["copies_per_mask"] == 1
    assert PAPER["sampling"]["translation_images"] == "one_per_mask"


def test_classifier_protocol_of_section_3_2():
    c = PAPER["classifier"]
    assert c["model"] == "pretrainedmodels:inceptionv4" and c["pretrained"] is True  # Inception-v4, ImageNet
    assert (c["lr"], c["momentum"], c["weight_decay"]) == (0.001, 0.9, 0.001)  # SGD
    # "reduce by 10 on each validation plateau after a 10-epoch patience until a minimum of 10^-5"
    assert (c["plateau_factor"], c["plateau_patience"], c["min_lr"]) == (0.1, 10, 0.00001)
    assert c["batch_size"] == 32 and c.get("balanced_batches", False) is False  # "shuffling the data"
    assert c["input_size"] == 299 and c.get("normalize", "imagenet") == "imagenet"  # ImageNet mean / std
    assert (c["epochs"], c["early_stopping_patience"]) == (100, 22)
    assert c["tta"] == 50  # "we average the predictions of 50 augmented replicas"
    aug = {**{"hflip": True, "vflip": True, "scale": [0.75, 1.0], "rotation": 45.0, "hue": 0.1,
              "brightness": 0.0, "contrast": 0.0, "saturation": 0.0}, **(c.get("augment") or {})}
    assert aug["hflip"] and aug["vflip"] and list(aug["scale"]) == [0.75, 1.0]
    assert aug["rotation"] == 45 and aug["hue"] == 0.1
    assert aug["brightness"] == aug["contrast"] == aug["saturation"] == 0


def test_test_sets_of_table_3():
    assert set(PAPER["testsets"]) == {"isic19", "isic20", "derm7pt_derm", "derm7pt_clinic", "dermofit"}
    assert PAPER["testsets"]["isic19"] == {**PAPER["testsets"]["isic19"], "split": "test"}


def test_the_study_summary_a_dry_run_prints(experiments):
    """What `snakemake -n --configfile config/paper.yaml` prints before the jobs (workflow/rules/common.smk)."""
    from ganaug.summary import study_summary

    text = study_summary(PAPER, experiments)
    for words in ("16 augmentation + 13 anonymization experiments = 27 distinct (1:0, 1:1 sgn in both)",
                  "x 10 replicates = 270 classifier trainings", "published lists",
                  "0ee27b93d7d14716a1cf1a9b229cfe07a3f21f88", "train 14,805, val 1,931, test 3,863",
                  "stylegan2 10,000 kimg (675.4 epochs of 14,805 images)", "pgan 15,000 kimg", "pix2pixhd 1,297 kimg",
                  "spade 1,037.6 kimg", "FID on inception features", "pretrainedmodels:inceptionv4 pretrained",
                  "TTA 50"):
        assert words in text, (words, text)
