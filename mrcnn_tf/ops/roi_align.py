"""RoIAlign from gather ops: bilinear sampling with half-pixel alignment, XLA-compilable, deterministic gradient.

Alignment (torchvision ``roi_align(aligned=True)``, detectron2 ``ROIAlign(aligned=True)``): a feature map of
stride ``s`` has the value of its cell ``(i, j)`` at the image point ``((i + 0.5) s, (j + 0.5) s)``. An image point
``y`` therefore sits at the continuous feature index ``y / s - 0.5``; without the ``- 0.5`` every RoI would be
sampled half a cell down and to the right. A RoI ``[y1, x1, y2, x2]`` is split into ``out x out`` bins; each
bin is sampled on a regular ``r x r`` grid (``r = sampling_ratio``) at the bin's sub-cell centres, each sample
interpolated bilinearly from the 4 nearest cells, and the ``r * r`` samples are averaged. A sample further than
one cell outside the map is 0; a sample between is clamped to the border (as torchvision's CPU kernel).

All levels are flattened into one ``[B, T, C]`` tensor so that one ``tf.gather`` serves every tap of every RoI,
whatever its level; the gradient is the gather's (an unsorted segment sum), not ``crop_and_resize``'s racy one.
:func:`crop_multilevel_roi_align` computes the same values with ``tf.image.crop_and_resize``, whose forward kernel
is faster on a CPU than the gather, and takes the gather's gradient (docs/performance.md has the measure).

Shape letters: ``B`` batch, ``R`` RoIs per image, ``T`` cells of all levels, ``C`` channels,
``P``/``Q`` sample rows / columns per RoI (``out * r``), ``L`` levels, ``N`` RoIs of all images (``B * R``).
"""
import math

import tensorflow as tf

from mrcnn_tf.ops import boxes as box_ops


def assign_fpn_levels(boxes, min_level, max_level, canonical_size, canonical_level=4):
    """FPN equation (1): level ``floor(k0 + log2(sqrt(w h) / canonical_size))`` clipped to the levels.

    ``canonical_size`` is 224 for 800-pixel images in the FPN paper; callers scale it to their input size.
    Args: ``boxes`` ``[..., 4]``. Returns ``[...]`` int32 levels.
    """
    size = tf.sqrt(box_ops.box_area(boxes))
    level = canonical_level + tf.math.log(tf.maximum(size, 1e-6) / canonical_size) / math.log(2.0)
    level = tf.floor(level + 1e-6)  # torchvision's epsilon: a box exactly at a boundary goes up
    return tf.cast(tf.clip_by_value(level, min_level, max_level), tf.int32)


def _axis_samples(start, length, output_size, sampling_ratio):
    """Continuous sample positions ``[B, R, out * r]`` along one axis of each RoI."""
    steps = (tf.range(output_size * sampling_ratio, dtype=tf.float32) + 0.5) / sampling_ratio  # [P]
    return start[..., None] + steps * (length / output_size)[..., None]


def _corner_weights(position, size):
    """Bilinear corners along one axis: low index, high index, their weights, all ``[B, R, P]``.

    ``position`` is a continuous cell index; ``size`` ``[B, R]`` the map's extent on this axis.
    """
    size = tf.cast(size, tf.float32)[..., None]
    inside = (position >= -1.0) & (position <= size)
    position = tf.clip_by_value(position, 0.0, size - 1.0)
    low = tf.floor(position)
    high = tf.minimum(low + 1.0, size - 1.0)
    frac = position - low
    valid = tf.cast(inside, tf.float32)
    return tf.cast(low, tf.int32), tf.cast(high, tf.int32), (1.0 - frac) * valid, frac * valid


def _taps(low, high, low_weight, high_weight, output_size, sampling_ratio):
    """One axis' bilinear taps per bin: indices and weights ``[B, R, out, r, 2]`` (low and high corner)."""
    shape = tf.concat([tf.shape(low)[:2], [output_size, sampling_ratio, 2]], 0)
    index = tf.reshape(tf.stack([low, high], axis=-1), shape)
    weight = tf.reshape(tf.stack([low_weight, high_weight], axis=-1), shape)
    return index, weight


def roi_align_flat(flat_features, boxes, heights, widths, offsets, output_size, sampling_ratio):
    """RoIAlign on flattened feature maps; the building block of both public RoIAlign functions.

    Each output cell is a weighted sum of ``4 r^2`` feature cells, its taps (``r x r`` samples, 4 bilinear corners
    each): one ``tf.gather`` fetches all taps of all RoIs, and one batched matmul with the tap weights (which
    include the ``1 / r^2`` of the average) sums them. Its gradient is one segment sum.

    Args:
      flat_features: ``[B, T, C]``, maps flattened row-major and concatenated.
      boxes: ``[B, R, 4]`` float32 in continuous cell indices of each RoI's own map (already divided by the
        stride and shifted by ``-0.5``).
      heights, widths: ``[B, R]`` int32 size of each RoI's map.
      offsets: ``[B, R]`` int32 position of each RoI's map in ``T``.
      output_size: ``out``; sampling_ratio: ``r``.
    Returns:
      ``[B, R, out, out, C]`` in the features' dtype.
    """
    out, r = output_size, sampling_ratio
    y = _axis_samples(boxes[..., 0], boxes[..., 2] - boxes[..., 0], out, r)  # [B, R, out * r]
    x = _axis_samples(boxes[..., 1], boxes[..., 3] - boxes[..., 1], out, r)
    rows, row_weights = _taps(*_corner_weights(y, heights), out, r)  # [B, R, out, r, 2]
    cols, col_weights = _taps(*_corner_weights(x, widths), out, r)
    # Taps of bin (i, j): rows [i, s, a] x cols [j, t, c] -> [B, R, out_i, out_j, r_s, 2_a, r_t, 2_c].
    rows, row_weights = rows[:, :, :, None, :, :, None, None], row_weights[:, :, :, None, :, :, None, None]
    cols, col_weights = cols[:, :, None, :, None, None, :, :], col_weights[:, :, None, :, None, None, :, :]
    per_roi = (slice(None), slice(None)) + (None,) * 6  # [B, R] -> [B, R, 1, 1, 1, 1, 1, 1]
    index = offsets[per_roi] + rows * widths[per_roi] + cols
    weight = row_weights * col_weights / float(r * r)
    batch, rois = tf.shape(boxes)[0], tf.shape(boxes)[1]
    channels, taps = flat_features.shape[-1], 4 * r * r
    values = tf.gather(flat_features, tf.reshape(index, [batch, -1]), batch_dims=1)  # [B, R*out*out*taps, C]
    values = tf.reshape(values, [-1, taps, channels])  # [B*R*out*out, taps, C]
    weight = tf.cast(tf.reshape(weight, [-1, 1, taps]), flat_features.dtype)
    pooled = tf.matmul(weight, values)  # [B*R*out*out, 1, C]
    return tf.reshape(pooled, [batch, rois, out, out, channels])


def roi_align(features, boxes, output_size, sampling_ratio=2, spatial_scale=1.0):
    """RoIAlign on one map: ``features`` ``[B, H, W, C]``, ``boxes`` ``[B, R, 4]`` in image pixels.

    ``spatial_scale`` is ``1 / stride``. Returns ``[B, R, out, out, C]``.
    """
    shape = tf.shape(features)
    flat = tf.reshape(features, [shape[0], -1, features.shape[-1]])
    scaled = boxes * spatial_scale - 0.5
    ones = tf.ones(tf.shape(boxes)[:2], tf.int32)
    return roi_align_flat(flat, scaled, ones * shape[1], ones * shape[2], ones * 0, output_size, sampling_ratio)


# The same function compiled by XLA, which fuses the tap weighting into the gather and its gradient into one
# scatter, instead of materialising all taps (forward + backward on 512 RoIs: about half the time on a CPU).
# XLA compiles once per input shape: use it where the RoI count is static.
_roi_align_flat_xla = tf.function(roi_align_flat, jit_compile=True)


def multilevel_roi_align(features, boxes, output_size, sampling_ratio, min_level, canonical_size,
                         jit_compile=False):
    """RoIAlign of each RoI from the FPN level its size selects.

    Args:
      features: list of ``L`` maps ``[B, H_l, W_l, C]`` for levels ``min_level ..``; level ``l`` has stride
        ``2 ** l`` and static spatial sizes.
      boxes: ``[B, R, 4]`` float32 in image pixels.
      output_size, sampling_ratio: as :func:`roi_align_flat`.
      canonical_size: box size that maps to level 4 (FPN's 224, scaled to the input size).
      jit_compile: pool with the XLA-compiled :func:`roi_align_flat` (same values and gradient); it compiles
        for each new shape, so only for a fixed ``R``.
    Returns:
      ``[B, R, out, out, C]``.
    """
    max_level = min_level + len(features) - 1
    level_heights = [f.shape[1] for f in features]
    level_widths = [f.shape[2] for f in features]
    level_offsets = [0]
    for h, w in zip(level_heights[:-1], level_widths[:-1]):
        level_offsets.append(level_offsets[-1] + h * w)
    batch = tf.shape(features[0])[0]
    flat = tf.concat([tf.reshape(f, [batch, -1, f.shape[-1]]) for f in features], axis=1)  # [B, T, C]

    level = assign_fpn_levels(boxes, min_level, max_level, canonical_size) - min_level  # [B, R]
    scale = tf.gather([2.0 ** -(min_level + i) for i in range(len(features))], level)  # [B, R]
    scaled = boxes * scale[..., None] - 0.5
    heights = tf.gather(level_heights, level)
    widths = tf.gather(level_widths, level)
    offsets = tf.gather(level_offsets, level)
    pool = _roi_align_flat_xla if jit_compile else roi_align_flat
    return pool(flat, scaled, heights, widths, offsets, output_size, sampling_ratio)


def _crop_level(features, boxes, image_index, output_size, sampling_ratio):
    """RoIAlign of ``N`` RoIs on one map ``[B, H, W, C]`` (static ``H``, ``W``) by ``tf.image.crop_and_resize``.

    ``boxes`` ``[N, 4]`` are in continuous cell indices of this map, ``image_index`` ``[N]`` int32 their image.
    crop_and_resize samples a ``P x P`` grid from the first to the last sample of the box, bilinearly; RoIAlign's
    samples are that grid (``P = out * r``, half a sample step inside the box). Padding the map by one edge-replicated
    cell reproduces RoIAlign's border rule: a sample at most one cell outside is clamped to the border, and one
    further out falls outside the padded map, where crop_and_resize gives 0, as RoIAlign. Returns
    ``[N, out, out, C]`` float32.
    """
    height, width = features.shape[1], features.shape[2]
    padded = tf.pad(features, [[0, 0], [1, 1], [1, 1], [0, 0]], mode="SYMMETRIC")  # [B, H + 2, W + 2, C]
    samples = output_size * sampling_ratio
    half_step = (boxes[:, 2:] - boxes[:, :2]) / (2.0 * samples)  # [N, 2]
    first, last = boxes[:, :2] + half_step + 1.0, boxes[:, 2:] - half_step + 1.0  # in the padded map's cells
    extent = tf.constant([height + 1.0, width + 1.0])
    normalized = tf.concat([first / extent, last / extent], axis=-1)  # [N, 4], 0..1 over the padded map
    crops = tf.image.crop_and_resize(padded, normalized, image_index, [samples, samples])  # [N, P, P, C] float32
    return tf.nn.avg_pool2d(crops, sampling_ratio, sampling_ratio, "VALID")  # the r x r samples of each bin


def _crop_pool(features, boxes, output_size, sampling_ratio, min_level, canonical_size):
    """The forward pass of :func:`crop_multilevel_roi_align` (``features``: ``L`` maps ``[B, H_l, W_l, C]``,
    ``boxes`` ``[B, R, 4]``; returns ``[B, R, out, out, C]``): each level pools its own RoIs (one crop_and_resize a
    level), and the results are put back in RoI order."""
    # crop_and_resize refuses non-finite boxes (a diverging step's): pool those at 0, and let the losses' own NaN
    # report the divergence, as with the gather.
    boxes = tf.where(tf.math.is_finite(boxes), boxes, 0.0)
    max_level = min_level + len(features) - 1
    batch, rois, channels = tf.shape(boxes)[0], tf.shape(boxes)[1], features[0].shape[-1]
    flat_boxes = tf.reshape(boxes, [-1, 4])  # [N, 4]
    image_index = tf.repeat(tf.range(batch), rois)  # [N]
    level = tf.reshape(assign_fpn_levels(boxes, min_level, max_level, canonical_size), [-1]) - min_level  # [N]
    positions, pooled = [], []
    for index, level_features in enumerate(features):
        chosen = tf.cast(tf.where(tf.equal(level, index))[:, 0], tf.int32)  # [N_l] this level's RoIs
        scaled = tf.gather(flat_boxes, chosen) * 2.0 ** -(min_level + index) - 0.5  # [N_l, 4] cell indices
        positions.append(chosen)
        pooled.append(_crop_level(level_features, scaled, tf.gather(image_index, chosen), output_size,
                                  sampling_ratio))  # [N_l, out, out, C]
    stitched = tf.dynamic_stitch(positions, pooled)  # [N, out, out, C]
    shape = tf.stack([batch, rois, output_size, output_size, channels])
    return tf.cast(tf.reshape(stitched, shape), features[0].dtype)


@tf.function(jit_compile=True)
def _feature_gradient_xla(features, boxes, upstream, output_size, sampling_ratio, min_level, canonical_size):
    """The gradient of ``sum(upstream * multilevel_roi_align(features, boxes, ...))`` with respect to each map,
    compiled by XLA (the gather's scatter; XLA drops the forward values it does not need)."""
    with tf.GradientTape() as tape:
        tape.watch(features)
        pooled = multilevel_roi_align(features, boxes, output_size, sampling_ratio, min_level, canonical_size)
    return tape.gradient(pooled, features, output_gradients=upstream)


def crop_multilevel_roi_align(features, boxes, output_size, sampling_ratio, min_level, canonical_size):
    """:func:`multilevel_roi_align`'s values (to float32 rounding) by ``tf.image.crop_and_resize``.

    crop_and_resize's forward is fast on a CPU (one RoI's samples are read from one cache-resident map region),
    but its gradient is racy there (and refused under op determinism), and it does not compile under XLA. So the
    gradient with respect to the features is the gather's, :func:`multilevel_roi_align`'s, compiled by XLA: use it
    with a fixed RoI count ``R`` when training (XLA compiles once per shape). No gradient flows to the boxes.

    Args and returns as :func:`multilevel_roi_align`; the output has the features' dtype.
    """
    @tf.custom_gradient
    def pool(*maps):
        def gradient(upstream):  # [B, R, out, out, C]
            return _feature_gradient_xla(list(maps), boxes, upstream, output_size, sampling_ratio, min_level,
                                         canonical_size)

        return _crop_pool(list(maps), boxes, output_size, sampling_ratio, min_level, canonical_size), gradient

    return pool(*features)
