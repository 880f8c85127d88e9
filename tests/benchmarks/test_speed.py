"""benchmarks/speed.py: the machine's GEMM rate beside the step's."""
import pytest
from conftest import load_benchmark


@pytest.fixture(scope="module")
def speed():
    return load_benchmark("speed")


def test_gemm_rate_counts_two_flops_per_multiply_add_over_the_median_time(speed, monkeypatch):
    timed = []

    def median_ms(fn, steps):
        timed.append((fn(), steps))  # the product runs, and its output is a scalar
        return 4.0

    monkeypatch.setattr(speed, "median_ms", median_ms)
    rate = speed.gemm_gflop_per_s(5, shape=(8, 16, 32))
    assert rate == pytest.approx(2 * 8 * 16 * 32 / 1e9 / 4.0 * 1000)
    assert timed[0][0].shape == () and timed[0][1] == 5


def test_gemm_rate_of_a_real_product_is_positive_and_finite(speed):
    assert 0 < speed.gemm_gflop_per_s(2, shape=(64, 64, 64)) < 1e5
