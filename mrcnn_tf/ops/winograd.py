"""A 3x3 convolution (stride 1, ``SAME`` padding, NHWC) by Winograd's minimal filtering F(2x2, 3x3) (Lavin and
Gray, "Fast Algorithms for Convolutional Neural Networks", 2016): each 2x2 output tile costs 16 multiplies per
input-output channel pair instead of 36, so the channel mixing (one batched matmul) does 2.25x fewer FLOPs than
the direct convolution. The tile transforms around it are additions.

The same cross-correlation as ``tf.nn.conv2d(x, kernel, 1, "SAME")``, to float32 rounding; differentiable (every
step is a linear TF op). Tried for the mask head's four 256-channel convolutions on 14x14 RoIs, which are near
this CPU's peak FLOP/s as direct convolutions; it does not pay there on this AVX2 CPU (``benchmarks/kernels.py``
times both: 100 RoIs, 176 ms direct, 451 ms by Winograd as separate TF ops, whose tile transforms are
memory-bound, 168 ms compiled by XLA), so the model does not use it. Tried again in the whole inference
(2026-12-02: the tile transforms with the bias, GroupNorm and ReLU under XLA, the batched matmul TF's, for all four
convolutions): ``ab.py`` gave 1547.7 against 1525.1 ms, 1.5% faster, within noise, for a first call 3 s longer,
so it was taken out. The four batched matmuls took
417 ms where the direct convolutions took 842 ms, but the XLA transforms took 294 ms more: each convolution writes
and reads 80 MB of transformed tiles and products, and this machine writes a fresh 80 MB in about 33 ms under XLA.

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


def conv3x3(x, kernel):
    """``tf.nn.conv2d(x, kernel, 1, "SAME")`` by Winograd F(2x2, 3x3).

    Args:
      x: [N, H, W, C_in] float.
      kernel: [3, 3, C_in, C_out], same dtype.
    Returns:
      [N, H, W, C_out].
    """
    n, h, w = tf.shape(x)[0], tf.shape(x)[1], tf.shape(x)[2]
    tiles_h, tiles_w = (h + 1) // 2, (w + 1) // 2
    padded = tf.pad(x, [[0, 0], [1, 1 + 2 * tiles_h - h], [1, 1 + 2 * tiles_w - w], [0, 0]])
    m = tf.matmul(transform_input(padded, tiles_h, tiles_w), transform_kernel(kernel))  # [16, T, C_out]
    return transform_output(m, n, tiles_h, tiles_w)[:, :h, :w]
