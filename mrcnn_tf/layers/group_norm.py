"""GroupNorm whose training calls run ``ops.group_norm`` (a shorter gradient), under XLA when asked."""
import keras
import tensorflow as tf

from mrcnn_tf.ops.group_norm import group_norm, group_norm_xla


@keras.saving.register_keras_serializable(package="mrcnn_tf")
class GroupNormalization(keras.layers.GroupNormalization):
    """Keras' ``GroupNormalization`` (same weights, same values to float32 rounding). A training call
    (``training=True``) of a layer normalising the last axis with scale and center runs
    :func:`~mrcnn_tf.ops.group_norm.group_norm`, Keras' arithmetic with a shorter gradient (README, "GroupNorm's
    gradient"); with ``xla=True`` under XLA, which fuses it into a few passes over the activations, forward and
    backward (README, "XLA for GroupNorm in training"). All layers share one XLA function, compiled once per input
    shape. Other calls are Keras' own: the exported serving graph must be XLA-free, and in-process inference
    compiles the whole backbone + FPN anyway (``inference.xla_features``).

    It keeps Keras' class name: ``.weights.h5`` files key a layer by its class name, so the weights of runs trained
    with Keras' layer load into this one and back.
    """

    def __init__(self, xla=False, **kwargs):
        super().__init__(**kwargs)
        if xla and not (self.axis == -1 and self.scale and self.center):
            raise ValueError("GroupNormalization(xla=True) normalises the last axis with scale and center")
        self.xla = xla

    def call(self, inputs, training=None):
        if training and self.axis == -1 and self.scale and self.center:
            gamma, beta = tf.convert_to_tensor(self.gamma), tf.convert_to_tensor(self.beta)  # [C] each
            norm = group_norm_xla if self.xla else group_norm
            return norm(inputs, gamma, beta, self.groups, self.epsilon)
        return super().call(inputs)

    def get_config(self):
        return {**super().get_config(), "xla": self.xla}
