"""A Keras ``Conv2D`` (3x3, stride 1, ``same``, channels last) whose convolution runs as Winograd F(2x2, 3x3)."""
import keras

from mrcnn_tf.ops import winograd


class WinogradConv2D(keras.layers.Conv2D):
    """``Conv2D(filters, 3, padding="same")`` by :func:`mrcnn_tf.ops.winograd.conv3x3`: the same weights (so the
    same checkpoints) and outputs to float32 rounding, 2.25x fewer multiplies in the channel mixing."""

    def __init__(self, filters, kernel_size=3, padding="same", **kwargs):
        super().__init__(filters, kernel_size, padding=padding, **kwargs)
        plain = (self.kernel_size == (3, 3) and self.padding == "same" and self.strides == (1, 1)
                 and self.dilation_rate == (1, 1) and self.groups == 1 and self.data_format == "channels_last")
        if not plain:
            raise ValueError("WinogradConv2D is a 3x3, stride 1, 'same', ungrouped, channels-last convolution, got "
                             f"kernel {self.kernel_size}, strides {self.strides}, padding {self.padding!r}, "
                             f"dilation {self.dilation_rate}, groups {self.groups}, {self.data_format}")

    def convolution_op(self, inputs, kernel):
        return winograd.conv3x3(inputs, kernel)
