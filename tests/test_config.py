"""Config: JSON round trip, section updates, unknown keys rejected."""
import json

import pytest

from mrcnn_tf.config import Config
from mrcnn_tf.errors import ConfigError


def test_json_round_trip_keeps_every_value(tmp_path):
    config = Config(image_size=128).replace(rpn={"nms_iou": 0.6}, anchors={"sizes": (8, 16, 32, 64, 128)})
    path = tmp_path / "config.json"
    config.to_json(path)
    assert Config.from_json(path) == config


def test_paper_defaults():
    config = Config()
    assert (config.image_size, config.train.batch_size, config.train.learning_rate) == (256, 1, 0.001)
    assert (config.train.steps_per_epoch, config.train.epochs) == (200, 30)
    assert config.num_classes == 2 and config.anchors.strides == (4, 8, 16, 32, 64)
    assert config.canonical_roi_size == pytest.approx(71.68)


def test_unknown_keys_are_rejected(tmp_path):
    data = Config().to_dict()
    data["rpn"]["nms_threshold"] = 0.5
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="nms_threshold"):
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
