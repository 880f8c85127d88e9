"""SGD with momentum, decoupled weight decay and global gradient-norm clipping, one fused pass per variable.

``keras.optimizers.SGD(momentum=..., weight_decay=..., global_clipnorm=...)`` runs each of its steps as separate
elementwise ops over all 44 M parameters: the weight decay, the clipped gradients, the momentum and the variable
each read and write the whole model again, about ten passes over memory a step: on a 2-core CPU, more than the
box head costs (docs/performance.md). :class:`FusedSGD` does the same arithmetic with one XLA-compiled function per
variable, which reads the variable, its momentum and its gradient once and writes the two new values:

    scale = min(1, clipnorm / ||g||_global)          (NaN when the norm is not finite, as Keras)
    m     = momentum * m - lr * scale * g
    v     = v * (1 - lr * weight_decay) + m          (nesterov: + momentum * m - lr * scale * g instead of + m)

``lr`` is the schedule's value at the current step; the weight decay is decoupled (not fed through the momentum),
as in Keras. Under ``tf.distribute`` the gradients are summed over replicas before they are clipped (Keras clips
each replica's gradients before the sum), so N replicas train exactly as one device on their global batch.
"""
import keras
import tensorflow as tf


@tf.function(jit_compile=True)
def _momentum_update(variable, buffer, gradient, step, decay, momentum, nesterov):
    """Update the tf.Variables ``variable`` and ``buffer`` (its momentum) in place from ``gradient`` (same shape,
    float32); scalars ``step`` (learning rate x clip scale), ``decay`` (1 - learning rate x weight decay)."""
    velocity = momentum * buffer - step * gradient
    buffer.assign(velocity)
    update = momentum * velocity - step * gradient if nesterov else velocity
    variable.assign(variable * decay + update)


@tf.function(jit_compile=True)
def _plain_update(variable, gradient, step, decay):
    """SGD without momentum, in place."""
    variable.assign(variable * decay - step * gradient)


def global_clip_scale(gradients, clip_norm):
    """The factor ``min(1, clip_norm / global norm)`` that clips ``gradients`` (a list, ``None`` allowed) to
    ``clip_norm``; NaN when the norm is not finite, so that a diverged step shows as NaN; 1 when ``clip_norm`` is
    ``None`` or 0."""
    if not clip_norm:
        return tf.constant(1.0)
    norm = tf.linalg.global_norm([g for g in gradients if g is not None])
    return clip_norm * tf.minimum(1.0 / norm, 1.0 / clip_norm) + (norm - norm)


@keras.saving.register_keras_serializable(package="mrcnn_tf")
class FusedSGD(keras.optimizers.SGD):
    """``keras.optimizers.SGD`` with ``momentum``, ``nesterov``, ``weight_decay`` and ``global_clipnorm``, fused.

    Takes the arguments of ``keras.optimizers.SGD``; per-variable ``clipnorm`` / ``clipvalue``, gradient
    accumulation and EMA are not supported (``ValueError``). TensorFlow backend only.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        unsupported = {"clipnorm": self.clipnorm, "clipvalue": self.clipvalue, "use_ema": self.use_ema,
                       "gradient_accumulation_steps": self.gradient_accumulation_steps}
        given = sorted(name for name, value in unsupported.items() if value)
        if given:
            raise ValueError(f"FusedSGD does not support {', '.join(given)}; use keras.optimizers.SGD")

    def _backend_apply_gradients(self, grads, trainable_variables):
        variables = [v.value if isinstance(v, keras.Variable) else v for v in trainable_variables]  # tf.Variables
        # Sum over replicas first (a no-op on one device), then clip that sum: every replica computes the same
        # scale, and N replicas clip as one device does on their global batch.
        grads_and_vars = self._all_reduce_sum_gradients(list(zip(grads, variables)))
        learning_rate = tf.cast(self.learning_rate, tf.float32)
        step = learning_rate * global_clip_scale([g for g, _ in grads_and_vars], self.global_clipnorm)
        decay_rate = learning_rate * tf.cast(self.weight_decay or 0.0, tf.float32)
        tf.__internal__.distribute.interim.maybe_merge_call(
            self._update_on_each_device, self._distribution_strategy, grads_and_vars, (step, decay_rate))

    def _update_on_each_device(self, distribution, grads_and_vars, rates):
        for gradient, variable in grads_and_vars:
            distribution.extended.update(variable, self._fused_update,
                                         args=(gradient, self._buffer(variable), rates), group=False)

    def _buffer(self, variable):
        """The momentum tf.Variable of ``variable`` (mirrored under MirroredStrategy); None without momentum."""
        if self.momentum == 0:
            return None
        return self.momentums[self._get_variable_index(variable)].value

    def _fused_update(self, variable, gradient, buffer, rates):
        """Update ``variable`` (this device's copy) and ``buffer`` with the scalars ``rates`` = (step, decay
        rate)."""
        step, decay_rate = rates
        decay = 1.0 - decay_rate if self._use_weight_decay(variable) else tf.constant(1.0)
        gradient = tf.cast(tf.convert_to_tensor(gradient), variable.dtype)  # dense, also from IndexedSlices
        if buffer is None:
            _plain_update(variable, gradient, step, decay)
            return
        buffer = self._copy_on_device(buffer, variable.device)
        _momentum_update(variable, buffer, gradient, step, decay, tf.constant(self.momentum), self.nesterov)

    def _copy_on_device(self, variable, device):
        """The copy of a (possibly mirrored) ``variable`` that lives on ``device``: the jit-compiled update writes
        one device's tf.Variable, which tf.distribute does not pick for arguments it is given."""
        copies = self._distribution_strategy.experimental_local_results(variable)
        if len(copies) == 1:
            return copies[0]
        return next(copy for copy in copies if copy.device == device)
