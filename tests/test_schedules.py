"""Learning-rate warm-up and decay."""
import numpy as np
import pytest

from mrcnn_tf.schedules import WarmupSchedule


def test_linear_warmup_then_constant():
    schedule = WarmupSchedule(0.001, warmup_steps=10, total_steps=100)
    # step s (0-based) trains with base * (s + 1) / warmup until the warm-up ends.
    np.testing.assert_allclose([float(schedule(s)) for s in (0, 4, 9, 10, 99)], [1e-4, 5e-4, 1e-3, 1e-3, 1e-3],
                               rtol=1e-6)


def test_cosine_decays_to_zero_at_the_last_step():
    schedule = WarmupSchedule(0.01, warmup_steps=10, total_steps=110, decay="cosine")
    assert float(schedule(10)) == pytest.approx(0.01)
    assert float(schedule(60)) == pytest.approx(0.005, rel=1e-5)  # half-way: cos(pi / 2) -> half the rate
    assert float(schedule(110)) == pytest.approx(0.0, abs=1e-9)
    rates = [float(schedule(s)) for s in range(10, 111, 10)]
    assert all(a >= b for a, b in zip(rates, rates[1:]))


def test_unknown_schedule_is_rejected():
    with pytest.raises(ValueError, match="lr_schedule"):
        WarmupSchedule(0.1, 1, 10, decay="step")
