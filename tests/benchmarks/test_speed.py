"""benchmarks/speed.py: the settings it measures under, the twin it counts FLOPs on, and the machine's GEMM rate
beside the step's."""
import types

import pytest
import tensorflow as tf
from conftest import load_benchmark


@pytest.fixture(scope="module")
def speed():
    return load_benchmark("speed")


def test_torchvision_settings_and_a_whole_step_under_xla_only_when_asked(speed):
    config = speed.benchmark_config("torchvision", 256, 2, norm="frozen_bn")
    assert (config.rpn.train_pre_nms_topk, config.roi.batch_size_per_image, config.inference.max_detections) == (
        2000, 512, 100)
    assert config.train.batch_size == 2 and config.backbone.norm == "frozen_bn"
    assert config.runtime.jit_compile is None  # the device policy decides
    ours = speed.benchmark_config("ours", 256, 1, jit_compile=True)
    assert ours.runtime.jit_compile is True and ours.roi.batch_size_per_image == 128  # our own sampling


def test_flops_are_counted_on_a_twin_without_xla_with_the_same_weights(speed, monkeypatch):
    built = []

    class Twin:
        def set_weights(self, weights):
            self.weights = weights

    monkeypatch.setattr(speed, "compile_model", lambda config: built.append(config) or Twin())
    config = speed.benchmark_config("ours", 256, 1)
    twin = speed.counting_twin(types.SimpleNamespace(config=config, get_weights=lambda: ["weights"]))
    assert twin.weights == ["weights"]
    for gpu_visible in (False, True):
        runtime = built[0].runtime.resolved(gpu_visible)
        assert not (runtime.xla_conv or runtime.xla_group_norm or runtime.xla_roi_align or runtime.crop_roi_align)
    assert built[0].replace(runtime=config.runtime) == config  # the same model otherwise


def test_inference_runs_as_the_model_runtime_says(speed):
    calls = []

    class Model:
        runtime = types.SimpleNamespace(xla_features=True)

        def __call__(self, images, training, xla_features):
            calls.append((training, xla_features))
            return images

    speed.in_process_inference(Model())(tf.zeros([1]))
    assert calls == [(False, True)]


def test_mask_head_is_not_counted_apart_when_the_whole_step_runs_under_xla(speed):
    model = types.SimpleNamespace(config=speed.benchmark_config("ours", 256, 1),
                                  runtime=types.SimpleNamespace(jit_compile=True))
    assert speed.mask_head_gflop(model, 1, 4, training=True) == 0.0  # its static slots are in the step's graph


def test_gemm_rate_is_two_flops_per_multiply_add_of_the_product_over_its_median_time(speed, monkeypatch):
    timed = []

    def median_ms(fn, steps):
        timed.append((float(fn()), steps))  # what the timed call computes
        return 4.0

    monkeypatch.setattr(speed, "median_ms", median_ms)
    monkeypatch.setattr(speed.tf.random, "normal", lambda shape: tf.ones(shape))
    rate = speed.gemm_gflop_per_s(5, shape=(8, 16, 32))
    assert rate == pytest.approx(0.002048)  # 2 x 8 x 16 x 32 = 8192 FLOP in 4 ms
    # the timed call is the product: every entry of ones(8, 16) @ ones(16, 32) is 16, and their sum 8 x 32 x 16
    assert timed == [(4096.0, 5)]
