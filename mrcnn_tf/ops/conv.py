"""2-D convolution with its forward pass compiled by XLA, its input gradient TensorFlow's own kernel.

Why: on a CPU without AVX-512 (AVX2 only), TensorFlow's oneDNN convolution is oneDNN's im2col + GEMM (oneDNN's
direct AVX2 kernels need a blocked layout TF does not use), slow forward and slower filter gradient, while XLA's
CPU convolution (Eigen's) is fast forward but slow backward (docs/performance.md has the measures). So
:func:`conv2d` takes XLA's forward and TF's input gradient kernel (oneDNN's where oneDNN is on, Eigen's otherwise).
The filter gradient of a stride-1 ``SAME`` convolution with a k x k kernel (k > 1: the 3x3 ones, most of the cost)
is one matrix product of the input's k x k patches with the output gradient, under XLA; the others (1x1, strided)
keep TF's kernel. A CPU measure: ``MaskRCNN`` does not use it where a GPU is visible.

Shape letters: ``B`` batch, ``H``/``W`` input side, ``C`` input channels, ``F`` filters, ``k`` kernel side.
"""
import tensorflow as tf

_forward = {}  # (strides, padding) -> its XLA-compiled convolution; XLA compiles one program per input shape


def _xla_conv2d(strides, padding):
    key = (strides, padding)
    if key not in _forward:
        _forward[key] = tf.function(lambda x, kernel: tf.nn.conv2d(x, kernel, strides, padding), jit_compile=True)
    return _forward[key]


def same_patches(x, k):
    """The ``k`` x ``k`` neighbourhoods of every position of ``x`` ``[B, H, W, C]`` zero-padded as ``SAME``
    (odd ``k``): ``[B*H*W, k*k*C]``, ordered (row offset, column offset, channel) as a ``[k, k, C, F]`` kernel."""
    height, width, half = tf.shape(x)[1], tf.shape(x)[2], k // 2
    padded = tf.pad(x, [[0, 0], [half, half], [half, half], [0, 0]])  # [B, H + k - 1, W + k - 1, C]
    windows = [padded[:, i:i + height, j:j + width, :] for i in range(k) for j in range(k)]
    return tf.reshape(tf.concat(windows, axis=-1), [-1, k * k * x.shape[-1]])


@tf.function(jit_compile=True)
def same_filter_gradient(x, dy, k):
    """The kernel gradient ``[k, k, C, F]`` of a stride-1 ``SAME`` convolution (odd ``k``, a Python int) of input
    ``x`` ``[B, H, W, C]``, given its output gradient ``dy`` ``[B, H, W, F]``: ``patches(x)^T @ dy``."""
    channels, filters = x.shape[-1], dy.shape[-1]
    # Sums over B*H*W products: accumulated in float32 whatever the dtype (XLA fuses the casts into the product).
    patches = tf.cast(same_patches(x, k), tf.float32)  # [B*H*W, k*k*C]
    product = tf.matmul(patches, tf.reshape(tf.cast(dy, tf.float32), [-1, filters]), transpose_a=True)  # [k*k*C, F]
    return tf.cast(tf.reshape(product, [k, k, channels, filters]), x.dtype)


def conv2d(x, kernel, strides, padding):
    """``tf.nn.conv2d(x, kernel, strides, padding)`` (NHWC, no dilation), forward under XLA.

    Args:
      x: ``[B, H, W, C]`` float (float32, float16 or bfloat16).
      kernel: ``[k, k, C, F]`` in ``x``'s dtype.
      strides: one int, the stride along both sides.
      padding: ``"SAME"`` or ``"VALID"``.
    Returns:
      ``[B, H', W', F]`` in ``x``'s dtype; its input gradient is ``Conv2DBackpropInput`` (``tf.nn.conv2d``'s own,
      outside XLA), its kernel gradient :func:`same_filter_gradient` or ``Conv2DBackpropFilter`` (see above).
    """
    if padding not in ("SAME", "VALID"):
        raise ValueError(f"padding must be 'SAME' or 'VALID', got {padding!r}")
    forward = _xla_conv2d(int(strides), padding)
    step = [1, int(strides), int(strides), 1]
    side = kernel.shape[0]
    by_patches = side > 1 and side % 2 == 1 and kernel.shape[1] == side and int(strides) == 1 and padding == "SAME"

    @tf.custom_gradient
    def convolve(x, kernel):
        def gradients(dy):  # dy: [B, H', W', F]
            dx = tf.raw_ops.Conv2DBackpropInput(input_sizes=tf.shape(x), filter=kernel, out_backprop=dy,
                                                strides=step, padding=padding)  # [B, H, W, C]
            if by_patches:
                return dx, same_filter_gradient(x, dy, side)  # [k, k, C, F]
            dkernel = tf.raw_ops.Conv2DBackpropFilter(input=x, filter_sizes=tf.shape(kernel), out_backprop=dy,
                                                      strides=step, padding=padding)  # [k, k, C, F]
            return dx, dkernel

        return forward(x, kernel), gradients

    return convolve(x, kernel)
