"""GroupNorm whose training calls can run under XLA (``ops.group_norm.group_norm_xla``)."""
import keras
import tensorflow as tf

from tensorflow.python.ops import control_flow_util  # TF-internal: is a graph being compiled by XLA?

from mrcnn_tf.ops.group_norm import group_norm, group_norm_by_channel, group_norm_xla


@keras.saving.register_keras_serializable(package="mrcnn_tf")
class GroupNormalization(keras.layers.GroupNormalization):
    """Keras' ``GroupNormalization`` (same weights, same values); with ``xla=True`` a training call
    (``training=True``) runs :func:`~mrcnn_tf.ops.group_norm.group_norm` under XLA, which fuses its moments and
    scale-and-shift into a few passes over the activations, forward and backward (README, "XLA for GroupNorm in
    training", for what it buys). All layers share one XLA function, compiled once per input shape. Other calls
    (inference; training with ``xla=False``) run :func:`~mrcnn_tf.ops.group_norm.group_norm_by_channel`, faster
    than Keras' arithmetic as separate TF ops (the mask head at inference, the exported serving graph, which must
    be XLA-free), or :func:`~mrcnn_tf.ops.group_norm.group_norm` when an enclosing function is being compiled by
    XLA (in-process inference's backbone + FPN, ``inference.xla_features``), where the grouped form is faster.

    It keeps Keras' class name: ``.weights.h5`` files key a layer by its class name, so the weights of runs trained
    with Keras' layer load into this one and back.
    """

    def __init__(self, xla=False, **kwargs):
        super().__init__(**kwargs)
        self.ours = self.axis == -1 and self.scale and self.center  # what our functions compute
        if xla and not self.ours:
            raise ValueError("GroupNormalization(xla=True) normalises the last axis with scale and center")
        self.xla = xla

    def call(self, inputs, training=None):
        if not self.ours:
            return super().call(inputs)
        gamma, beta = tf.convert_to_tensor(self.gamma), tf.convert_to_tensor(self.beta)  # [C] each
        if training and self.xla:
            return group_norm_xla(inputs, gamma, beta, self.groups, self.epsilon)
        if control_flow_util.GraphOrParentsInXlaContext(tf.compat.v1.get_default_graph()):
            return group_norm(inputs, gamma, beta, self.groups, self.epsilon)  # XLA fuses the grouped form best
        return group_norm_by_channel(inputs, gamma, beta, self.groups, self.epsilon)

    def get_config(self):
        return {**super().get_config(), "xla": self.xla}
