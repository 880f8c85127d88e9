"""A 3x3 convolution (stride 1, ``SAME`` padding, NHWC) by Winograd's minimal filtering F(2x2, 3x3) (Lavin and
Gray, "Fast Algorithms for Convolutional Neural Networks", 2016): each 2x2 output tile costs 16 multiplies per
input-output channel pair instead of 36, so the channel mixing (one batched matmul) does 2.25x fewer FLOPs than
the direct convolution. The tile transforms around it are additions.

The same cross-correlation as ``tf.nn.conv2d(x, kernel, 1, "SAME")``, to float32 rounding; differentiable (every
step is a linear TF op). The tile transforms are memory-bound: as separate TF ops they cost more than the FLOPs
saved, compiled by XLA they do not, while XLA's own matmul is slower than TF's. So the mask head's in-process
inference (``MaskHead.call(winograd=True)``) runs :func:`input_tiles` and :func:`output_map` under XLA and the
batched matmul between them as TF's op (README, "Winograd for the mask head at inference").

Shape letters: ``N`` maps, ``H``, ``W`` map size, ``C_in``, ``C_out`` channels, ``T = N * tiles_h * tiles_w`` 2x2
output tiles (``tiles_h = ceil(H / 2)``), 16 the taps of a 4x4 transformed tile.
"""
import tensorflow as tf

# Kernel transform G (4x3); the input transform B^T and output transform A^T are written out as additions below.
_G = ((1.0, 0.0, 0.0), (0.5, 0.5, 0.5), (0.5, -0.5, 0.5), (0.0, 0.0, 1.0))


def transform_kernel(kernel):
    """``U = G g G^T`` for each channel pair.

    Args:
      kernel: [3, 3, C_in, C_out].
    Returns:
      [16, C_in, C_out], the 4x4 transformed taps flattened row-major.
    """
    g = tf.constant(_G, kernel.dtype)
    u = tf.einsum("ai,ijco,bj->abco", g, kernel, g)  # [4, 4, C_in, C_out]
    return tf.reshape(u, [16, tf.shape(kernel)[2], tf.shape(kernel)[3]])


def _b_transform(t0, t1, t2, t3):
    """``B^T d`` along one axis of a 4-tap window: rows of B^T are (1,0,-1,0), (0,1,1,0), (0,-1,1,0), (0,1,0,-1)."""
    return t0 - t2, t1 + t2, t2 - t1, t1 - t3


def _a_transform(m0, m1, m2, m3):
    """``A^T m`` along one axis: rows of A^T are (1,1,1,0) and (0,1,-1,-1)."""
    return m0 + m1 + m2, m1 - m2 - m3


def transform_input(x, tiles_h, tiles_w):
    """``B^T d B`` of every 4x4 input window at stride 2 (one per 2x2 output tile).

    Args:
      x: [N, 2 * tiles_h + 2, 2 * tiles_w + 2, C], the input padded by 1 (and to an even size).
    Returns:
      [16, T, C].
    """
    rows = [x[:, k:k + 2 * tiles_h:2] for k in range(4)]  # 4 x [N, tiles_h, W_p, C]
    taps = []
    for row in _b_transform(*rows):
        columns = [row[:, :, k:k + 2 * tiles_w:2] for k in range(4)]  # 4 x [N, tiles_h, tiles_w, C]
        taps.extend(_b_transform(*columns))
    v = tf.stack(taps)  # [16, N, tiles_h, tiles_w, C], tap (a, b) at 4a + b
    return tf.reshape(v, [16, -1, tf.shape(x)[-1]])


def transform_output(m, n, tiles_h, tiles_w):
    """``A^T m A`` of every tile, the 2x2 outputs put in place.

    Args:
      m: [16, T, C_out].
    Returns:
      [N, 2 * tiles_h, 2 * tiles_w, C_out].
    """
    m = tf.reshape(m, [4, 4, n, tiles_h, tiles_w, tf.shape(m)[-1]])
    s0, s1 = _a_transform(m[0], m[1], m[2], m[3])  # each [4, N, tiles_h, tiles_w, C_out]: along the tile's rows
    y00, y01 = _a_transform(s0[0], s0[1], s0[2], s0[3])  # then its columns
    y10, y11 = _a_transform(s1[0], s1[1], s1[2], s1[3])
    return tf.nn.depth_to_space(tf.concat([y00, y01, y10, y11], -1), 2)  # y_pq to pixel (2i + p, 2j + q)


def _tile_counts(height, width):
    return (height + 1) // 2, (width + 1) // 2


def input_tiles(x):
    """The transformed input windows of a 3x3 ``SAME`` convolution of ``x``.

    Args:
      x: [N, H, W, C_in], ``H`` and ``W`` static.
    Returns:
      [16, T, C_in].
    """
    height, width = x.shape[1], x.shape[2]
    tiles_h, tiles_w = _tile_counts(height, width)
    padded = tf.pad(x, [[0, 0], [1, 1 + 2 * tiles_h - height], [1, 1 + 2 * tiles_w - width], [0, 0]])
    return transform_input(padded, tiles_h, tiles_w)


def output_map(m, height, width):
    """The convolution's output from the transformed products of :func:`input_tiles`.

    Args:
      m: [16, T, C_out], ``input_tiles(x) @ transform_kernel(kernel)``.
      height, width: Python ints, the input's ``H`` and ``W``.
    Returns:
      [N, H, W, C_out].
    """
    tiles_h, tiles_w = _tile_counts(height, width)
    n = tf.shape(m)[1] // (tiles_h * tiles_w)
    return transform_output(m, n, tiles_h, tiles_w)[:, :height, :width]


def conv3x3(x, kernel):
    """``tf.nn.conv2d(x, kernel, 1, "SAME")`` by Winograd F(2x2, 3x3).

    Args:
      x: [N, H, W, C_in] float, ``H`` and ``W`` static.
      kernel: [3, 3, C_in, C_out], same dtype.
    Returns:
      [N, H, W, C_out].
    """
    m = tf.matmul(input_tiles(x), transform_kernel(kernel))  # [16, T, C_out]
    return output_map(m, x.shape[1], x.shape[2])
