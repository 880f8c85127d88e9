"""Config: JSON round trip, section updates, unknown keys rejected, the named presets and the runtime section."""
import dataclasses
import json
import re

import pytest

from mrcnn_tf import config as config_lib
from mrcnn_tf.config import DEVICE_POLICIES, Config, RuntimeConfig
from mrcnn_tf.errors import ConfigError

SWITCHES = ("jit_compile", "xla_roi_align", "crop_roi_align", "xla_group_norm", "xla_conv", "xla_features")


def test_json_round_trip_keeps_every_value(tmp_path):
    config = Config(image_size=128).replace(rpn={"nms_iou": 0.6}, anchors={"sizes": (8, 16, 32, 64, 128)},
                                            runtime={"device": "cpu", "xla_conv": False, "jit_compile": True})
    path = tmp_path / "config.json"
    config.to_json(path)
    assert Config.from_json(path) == config
    assert json.loads(path.read_text())["runtime"] == {"device": "cpu", "jit_compile": True, "xla_roi_align": None,
                                                       "crop_roi_align": None, "xla_group_norm": None,
                                                       "xla_conv": False, "xla_features": None}


def test_paper_defaults():
    config = Config()
    assert (config.image_size, config.train.batch_size, config.train.learning_rate) == (256, 1, 0.001)
    assert (config.train.steps_per_epoch, config.train.epochs) == (200, 30)
    assert config.num_classes == 2 and config.anchors.strides == (4, 8, 16, 32, 64)
    assert config.canonical_roi_size == pytest.approx(71.68)
    assert config.runtime == RuntimeConfig()  # every switch left to the device's policy


def test_unknown_keys_are_rejected_naming_the_key_and_the_file(tmp_path):
    data = Config().to_dict()
    data["rpn"]["nms_threshold"] = 0.5
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ConfigError, match="nms_threshold") as error:
        Config.from_json(path)
    assert str(path) in str(error.value)
    with pytest.raises(ConfigError, match="unknown config keys: \\['speed'\\]"):
        Config.from_dict({"speed": {}})


def test_a_config_written_before_the_runtime_section_loads_with_the_device_policy():
    data = Config().to_dict()
    del data["runtime"]
    data["train"].update(jit_compile=True, xla_conv=False, xla_roi_align=True, crop_roi_align=True,
                         xla_group_norm=True)
    data["inference"]["xla_features"] = False
    assert Config.from_dict(data) == Config()


def test_the_speed_switches_are_runtime_keys_only():
    # In a configuration that has the runtime section, a switch left under train or inference is named.
    for section, key in (("train", "jit_compile"), ("train", "xla_conv"), ("inference", "xla_features")):
        data = Config().to_dict()
        data[section][key] = True
        with pytest.raises(ConfigError, match=key):
            Config.from_dict(data)


@pytest.mark.parametrize("content", ["{not json", '["a list"]', '{"train": 5}', '{"image_size": 100}'])
def test_an_unreadable_config_file_is_a_config_error_naming_it(tmp_path, content):
    path = tmp_path / "config.json"
    path.write_text(content)
    with pytest.raises(ConfigError, match=f"^{re.escape(str(path))}: not a readable configuration"):
        Config.from_json(str(path))


def test_a_missing_config_file_is_a_config_error_naming_it(tmp_path):
    path = str(tmp_path / "nowhere.json")
    with pytest.raises(ConfigError, match=f"^{re.escape(path)}: not a readable configuration"):
        Config.from_json(path)


@pytest.mark.parametrize("size", [0, 100, -64])
def test_image_size_must_be_a_multiple_of_the_coarsest_stride(size):
    with pytest.raises(ConfigError, match="multiple of 64"):
        Config(image_size=size)


def test_more_sampled_rois_than_candidates_is_a_config_error():
    with pytest.raises(ConfigError, match="batch_size_per_image"):
        Config().replace(roi={"batch_size_per_image": 300}, rpn={"train_post_nms_topk": 250})


@pytest.mark.parametrize("repeat", [0, -1])
def test_empty_slices_are_shown_at_least_once_a_pass(repeat):
    with pytest.raises(ConfigError, match="empty_slice_repeat"):
        Config().replace(train={"empty_slice_repeat": repeat})


# --- presets ---------------------------------------------------------------------------------------------------


def test_preset_best_is_the_recipe_over_the_defaults():
    best = Config.from_preset("best")
    train = best.train
    assert (train.learning_rate, train.lr_schedule, train.empty_slice_repeat) == (0.01, "cosine", 2)
    assert train.crop_size == 192  # whole 256-pixel slices at inference
    assert best.replace(train=Config().train) == Config()  # nothing but the train section changes
    preset = config_lib.preset("best")
    assert preset.fit_schedule and preset.scoring == {"score_threshold": "val", "min_precision": 0.97}


def test_preset_paper_is_the_defaults():
    assert Config.from_preset("paper") == Config()
    preset = config_lib.preset("paper")
    assert not preset.fit_schedule and preset.scoring == {"score_threshold": 0.5}


def test_every_preset_is_described_and_changes_only_known_keys():
    assert sorted(config_lib.PRESETS) == ["best", "paper"]
    for name, preset in config_lib.PRESETS.items():
        assert preset.description
        Config.from_dict(Config.from_preset(name).to_dict())  # a valid config, whose keys all exist


def test_an_unknown_preset_is_a_config_error_naming_the_presets():
    with pytest.raises(ConfigError, match="unknown preset 'fastest'; expected one of \\['best', 'paper'\\]"):
        Config.from_preset("fastest")


# --- runtime ---------------------------------------------------------------------------------------------------


def test_auto_resolves_to_the_policy_of_the_device_tensorflow_sees():
    cpu, gpu = RuntimeConfig().resolved(gpu_visible=False), RuntimeConfig().resolved(gpu_visible=True)
    assert cpu == RuntimeConfig(device="cpu", **DEVICE_POLICIES["cpu"])
    assert gpu == RuntimeConfig(device="gpu", **DEVICE_POLICIES["gpu"])
    assert cpu.xla_conv and not gpu.xla_conv  # XLA convolutions replace oneDNN's CPU kernels, not cuDNN's
    assert all(isinstance(getattr(cpu, name), bool) for name in SWITCHES)


def test_a_named_device_wins_over_what_tensorflow_sees():
    assert RuntimeConfig(device="cpu").resolved(gpu_visible=True) == RuntimeConfig().resolved(gpu_visible=False)
    assert RuntimeConfig(device="gpu").resolved(gpu_visible=False) == RuntimeConfig().resolved(gpu_visible=True)


@pytest.mark.parametrize("name", SWITCHES)
def test_a_given_switch_wins_over_the_policy(name):
    for gpu_visible in (False, True):
        policy = RuntimeConfig().resolved(gpu_visible)
        for value in (False, True):
            resolved = RuntimeConfig(**{name: value}).resolved(gpu_visible)
            assert resolved == dataclasses.replace(policy, **{name: value})


def test_resolving_twice_changes_nothing():
    once = RuntimeConfig(xla_conv=False).resolved(gpu_visible=False)
    assert once.resolved(gpu_visible=True) == once


@pytest.mark.parametrize("device", ["tpu", "GPU", ""])
def test_an_unknown_device_is_a_config_error(device):
    with pytest.raises(ConfigError, match=f"runtime.device must be 'auto', 'cpu' or 'gpu', got {device!r}"):
        RuntimeConfig(device=device).resolved(gpu_visible=False)


# --- the data section (volumes) ----------------------------------------------------------------------------------


def test_the_data_section_round_trips_through_json(tmp_path):
    config = Config().replace(data={"modalities": ("flair", "t1ce", "2"), "label_map": ((1, "core"), (4, "core"),
                                                                                        (2, "oedema")),
                                    "slices": "every:3", "intensity_percentiles": (1, 99)})
    path = tmp_path / "config.json"
    config.to_json(path)
    assert json.loads(path.read_text())["data"] == {"modalities": ["flair", "t1ce", "2"],
                                                    "label_map": [[1, "core"], [4, "core"], [2, "oedema"]],
                                                    "slices": "every:3", "intensity_percentiles": [1.0, 99.0]}
    loaded = Config.from_json(path)
    assert loaded == config and loaded.data.class_names == ("core", "oedema")
    assert Config().data.class_names == ("tumour",)


def test_a_config_written_before_the_data_section_loads_with_its_defaults():
    data = Config().to_dict()
    del data["data"]
    assert Config.from_dict(data).data == config_lib.DataConfig()
    assert config_lib.DataConfig() == config_lib.DataConfig(modalities=(), label_map=(), slices="all",
                                                            intensity_percentiles=(0.5, 99.5))


@pytest.mark.parametrize("changes, message", [
    ({"modalities": ("a", "b", "c", "d")}, "one to three non-empty names"),
    ({"modalities": ("a", "")}, "one to three non-empty names"),
    ({"label_map": ((0, "background"),)}, "distinct label values >= 1"),
    ({"label_map": ((1, "a"), (1, "b"))}, "distinct label values >= 1"),
    ({"label_map": ((1, ""),)}, "distinct label values >= 1"),
    ({"label_map": (("x", "a"),)}, "label_map as \\(value, name\\) pairs"),
    ({"slices": "every:0"}, "'all', 'tumour' or 'every:K'"),
    ({"slices": "some"}, "'all', 'tumour' or 'every:K'"),
    ({"intensity_percentiles": (99, 1)}, "0 <= low < high <= 100"),
])
def test_a_bad_data_section_is_a_config_error(changes, message):
    with pytest.raises(ConfigError, match=message):
        Config().replace(data=changes)


def test_the_volume_flags_parse_to_the_data_section():
    assert config_lib.parse_modalities("flair, t1ce,t2") == ("flair", "t1ce", "t2")
    assert config_lib.parse_label_map("1=necrosis,2:oedema,4=enhancing") == ((1, "necrosis"), (2, "oedema"),
                                                                             (4, "enhancing"))
    for bad in ("flair,,t2", ""):
        with pytest.raises(ConfigError, match="modalities: expected names or indices"):
            config_lib.parse_modalities(bad)
    for bad in ("1", "x=a", "1=", "1=a,,2=b"):
        with pytest.raises(ConfigError, match="label map: expected VALUE=NAME pairs"):
            config_lib.parse_label_map(bad)


def test_with_settings_changes_the_named_keys_and_refuses_unknown_ones():
    config = Config.from_preset("best").with_settings(
        ["roi.mask_rois_per_image=8", "train.learning_rate=2e-2", "anchors.sizes=[8, 16, 32, 64, 128]",
         "train.strategy=mirrored", "image_size=512"])
    assert config.roi.mask_rois_per_image == 8 and config.train.learning_rate == 0.02
    assert config.anchors.sizes == (8, 16, 32, 64, 128) and config.train.strategy == "mirrored"
    assert config.image_size == 512 and config.train.lr_schedule == "cosine"  # the rest is the preset's
    for bad, named in (("roi.no_such=1", "roi.no_such"), ("no_such=1", "no_such"), ("roi=1", "section.key"),
                       ("train.seed", "section.key=value"), ("roi.mask_size.x=1", "roi.mask_size.x"),
                       ("image_size=100", "image_size"), ("train.epochs=2.5", "train.epochs"),
                       ("train.augment=1", "train.augment"), ("class_names=tumour", "class_names")):
        with pytest.raises(ConfigError, match=re.escape(named)):
            Config().with_settings([bad])


def test_crop_size_is_zero_or_a_p6_multiple_up_to_the_image_size():
    assert Config().replace(train={"crop_size": 192}).train.crop_size == 192
    for bad in (100, 320, -64):
        with pytest.raises(ConfigError, match="crop_size"):
            Config().replace(train={"crop_size": bad})


def test_the_optimizer_is_sgd_or_adamw():
    assert Config().train.optimizer == "sgd"
    assert Config().with_settings(["train.optimizer=adamw"]).train.optimizer == "adamw"
    with pytest.raises(ConfigError, match="train.optimizer must be one of sgd, adamw, got 'adam'"):
        Config().replace(train={"optimizer": "adam"})


def test_the_lr_schedule_is_constant_or_cosine():
    assert Config().train.lr_schedule == "constant"
    assert Config().with_settings(["train.lr_schedule=cosine"]).train.lr_schedule == "cosine"
    with pytest.raises(ConfigError, match="train.lr_schedule must be one of constant, cosine, got 'step'"):
        Config().with_settings(["train.lr_schedule=step"])
