"""benchmarks/step_cost.py: variants are the preset with settings changed, timed in turns, and each gets the steps
its median step time fits into the budget (the measurement itself is budget.measure_step_seconds, tested there)."""
import pytest
from conftest import load_benchmark

from mrcnn_tf import budget
from mrcnn_tf.config import Config


@pytest.fixture(scope="module")
def step_cost():
    return load_benchmark("step_cost")


def test_variants_are_timed_in_turns_and_given_the_steps_the_budget_holds(step_cost, capsys):
    order = []
    times = {128: [0.25, 0.2, 0.3], 256: [0.5, 0.7, 0.4]}  # "best" samples 128 RoIs

    def measure(config, data):
        order.append(config.roi.batch_size_per_image)
        return times[config.roi.batch_size_per_image].pop(0)

    args = step_cost.argparse.Namespace(data="d", preset="best", minutes=10.0, rounds=3,
                                        variant=[["more_rois", "roi.batch_size_per_image=256"]])
    summary = step_cost.run(args, measure)
    assert order == [128, 256] * 3  # in turns, not one configuration after the other
    preset, more = summary["configurations"]["preset"], summary["configurations"]["more_rois"]
    assert preset["median_step_seconds"] == 0.25 and more["median_step_seconds"] == 0.5
    assert more["relative_to_preset"] == 2.0 and more["settings"] == ["roi.batch_size_per_image=256"]
    fitted = budget.fit_steps(Config.from_preset("best"), 600 * budget.SCHEDULE_MARGIN / 0.25).train
    assert preset["steps_in_budget"] == fitted.epochs * fitted.steps_per_epoch == 2280  # 20 epochs of 114
    assert more["steps_in_budget"] == 1140  # 10 minutes x 0.95 / 0.5 s: 20 epochs of 57


def test_a_variant_needs_a_name_and_a_setting(step_cost, capsys):
    with pytest.raises(SystemExit):
        step_cost.main(["--data", "d", "--variant", "lonely"])
    assert step_cost.main(["--data", "d", "--variant", "bad", "roi.nope=1"]) == 2
    assert "roi.nope" in capsys.readouterr().err
