"""Conv2D whose training calls can run their forward pass under XLA (``ops.conv.conv2d``)."""
import keras
import tensorflow as tf

from mrcnn_tf.ops import conv as conv_ops


@keras.saving.register_keras_serializable(package="mrcnn_tf")
class Conv2D(keras.layers.Conv2D):
    """Keras' ``Conv2D`` (same weights, same arithmetic); with ``xla=True`` a training call (``training=True``)
    computes the convolution with :func:`~mrcnn_tf.ops.conv.conv2d`: the forward pass compiled by XLA, the input
    gradient by TF's own kernel, a 3x3 filter gradient as patches @ dy under XLA (docs/performance.md for what it
    buys on CPU).
    Inference calls stay plain: the exported serving graph must be XLA-free, and in-process inference compiles
    the whole backbone + FPN anyway (``runtime.xla_features``).

    It keeps Keras' class name: ``.weights.h5`` files key a layer by its class name, so the weights of runs trained
    with Keras' layer load into this one and back.
    """

    def __init__(self, *args, xla=False, **kwargs):
        super().__init__(*args, **kwargs)
        square_stride = self.strides[0] == self.strides[1]
        plain = self.dilation_rate == (1, 1) and self.groups == 1 and self.data_format == "channels_last"
        if xla and not (square_stride and plain):
            raise ValueError("Conv2D(xla=True) takes channels-last inputs, one stride for both sides, no dilation "
                             "and no groups")
        self.xla = xla

    def call(self, inputs, training=None):
        """``[B, H, W, C]`` -> ``[B, H', W', F]``, as Keras' ``Conv2D``; under XLA when ``training`` and ``xla``."""
        if not (training and self.xla):
            return super().call(inputs)
        kernel = tf.convert_to_tensor(self.kernel)  # [k, k, C, F] in the compute dtype
        outputs = conv_ops.conv2d(inputs, kernel, self.strides[0], self.padding.upper())
        if self.use_bias:
            outputs = outputs + tf.convert_to_tensor(self.bias)
        return self.activation(outputs) if self.activation is not None else outputs

    def get_config(self):
        return {**super().get_config(), "xla": self.xla}
