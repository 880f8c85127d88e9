"""FusedSGD: the same steps as keras.optimizers.SGD, in one pass per variable."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from mrcnn_tf.optimizer import FusedSGD, global_clip_scale
from mrcnn_tf.schedules import WarmupSchedule


def initial_values():
    return [np.linspace(-2, 2, 35).reshape(5, 7).astype("float32"), np.ones(3, "float32")]


def run_steps(optimizer, steps=4, exclude=None):
    """Final values of two variables after ``steps`` updates with fixed, different gradients."""
    variables = [keras.Variable(value, name=name) for value, name in zip(initial_values(), ("kernel", "bias"))]
    if exclude:
        optimizer.exclude_from_weight_decay(var_names=exclude)
    optimizer.build(variables)
    apply = tf.function(lambda grads: optimizer.apply(grads, variables))
    for k in range(steps):
        apply([tf.constant(np.sin(np.arange(35) * (k + 1)).reshape(5, 7), tf.float32),
               tf.constant([3.0, -1.0, 2.0]) * (k + 1)])
    return [v.numpy() for v in variables]


CASES = {
    "momentum, weight decay, clipped": dict(learning_rate=0.1, momentum=0.9, weight_decay=1e-2, global_clipnorm=1.0),
    "nesterov, not clipped": dict(learning_rate=0.1, momentum=0.9, nesterov=True, weight_decay=1e-2,
                                  global_clipnorm=100.0),
    "no momentum": dict(learning_rate=0.1, momentum=0.0, weight_decay=1e-2),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_matches_keras_sgd(case):
    expected = run_steps(keras.optimizers.SGD(**CASES[case]))
    fused = run_steps(FusedSGD(**CASES[case]))
    for want, got, initial in zip(expected, fused, initial_values()):
        assert np.abs(want - initial).max() > 0.05  # the steps moved the variable
        np.testing.assert_allclose(got, want, atol=2e-6)


def test_follows_the_schedule_and_weight_decay_exclusions():
    def make(cls):
        return cls(learning_rate=WarmupSchedule(0.1, 2, 4, "cosine"), momentum=0.9, weight_decay=0.5)

    expected = run_steps(make(keras.optimizers.SGD), exclude=["bias"])
    fused = run_steps(make(FusedSGD), exclude=["bias"])
    for want, got in zip(expected, fused):
        np.testing.assert_allclose(got, want, atol=2e-6)
    assert not np.allclose(run_steps(make(FusedSGD))[1], fused[1])  # the exclusion changed the bias


def test_global_clip_scale():
    grads = [tf.constant([3.0, 0.0]), None, tf.constant([[4.0]])]  # global norm 5
    assert float(global_clip_scale(grads, 10.0)) == 1.0
    assert float(global_clip_scale(grads, 1.0)) == pytest.approx(0.2)
    assert float(global_clip_scale(grads, None)) == 1.0
    assert np.isnan(float(global_clip_scale([tf.constant([np.inf])], 1.0)))


def test_unsupported_arguments_are_refused():
    with pytest.raises(ValueError, match="clipnorm"):
        FusedSGD(learning_rate=0.1, clipnorm=1.0)
    with pytest.raises(ValueError, match="use_ema"):
        FusedSGD(learning_rate=0.1, use_ema=True)


def test_momentum_survives_a_checkpoint(tmp_path):
    """Resuming restores the momentum buffers: the step after a restore equals the step without one."""
    def setup():
        variable = keras.Variable(np.ones(4, "float32"))
        optimizer = FusedSGD(learning_rate=0.1, momentum=0.9)
        optimizer.build([variable])
        return variable, optimizer

    variable, optimizer = setup()
    gradient = [tf.constant([1.0, -1.0, 2.0, 0.5])]
    optimizer.apply(gradient, [variable])
    path = tf.train.Checkpoint(v=variable, optimizer=optimizer).save(str(tmp_path / "ckpt"))
    optimizer.apply(gradient, [variable])
    restored, optimizer2 = setup()
    tf.train.Checkpoint(v=restored, optimizer=optimizer2).restore(path)
    optimizer2.apply(gradient, [restored])
    np.testing.assert_allclose(restored.numpy(), variable.numpy(), atol=1e-7)
    assert not np.allclose(variable.numpy(), 1 - 2 * 0.1 * gradient[0].numpy())  # momentum mattered


def test_serializes_by_name():
    schedule = WarmupSchedule(0.01, 10, 100, "cosine")
    optimizer = FusedSGD(learning_rate=schedule, momentum=0.9, weight_decay=1e-4, global_clipnorm=10.0)
    again = keras.optimizers.deserialize(keras.optimizers.serialize(optimizer))
    assert isinstance(again, FusedSGD)
    assert again.get_config() == optimizer.get_config()
    assert float(again.learning_rate) == float(schedule(0))


def test_sparse_gradients_are_applied_as_dense():
    table = keras.Variable(np.ones((4, 2), "float32"))
    optimizer = FusedSGD(learning_rate=0.5, momentum=0.9)
    optimizer.build([table])
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(tf.gather(table, [1, 3]))
    gradient = tape.gradient(loss, [table])
    assert isinstance(gradient[0], tf.IndexedSlices)
    optimizer.apply(gradient, [table])
    np.testing.assert_allclose(table.numpy(), [[1, 1], [0.5, 0.5], [1, 1], [0.5, 0.5]])
