"""benchmarks/speed.py: the machine's GEMM rate beside the step's."""
import pytest
import tensorflow as tf
from conftest import load_benchmark


@pytest.fixture(scope="module")
def speed():
    return load_benchmark("speed")


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
