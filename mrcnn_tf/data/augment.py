"""Training augmentation of one unbatched example: flip, rotation + scale, brightness + contrast.

Pure TensorFlow, stateless and graph-safe, so that it runs inside ``tf.data.Dataset.map`` and the same seed always
gives the same output. An example is a dict (other keys pass through untouched) of
``images`` ``[S, S, 3]`` uint8, ``gt_boxes`` ``[G, 4]`` float32 ``[y1, x1, y2, x2]`` with an exclusive end (see
``ops.boxes``), ``gt_classes`` ``[G]`` int32 (-1 = padding) and ``gt_masks`` ``[G, S, S]`` uint8 0/1.
Static shapes and dtypes are kept exactly.

The masks are the truth: after the geometric steps every box is recomputed as the tight box of its mask (like
``instances.mask_to_box``), and an instance whose mask has left the image becomes padding (class -1, zero box,
zero mask) in its own slot.

Geometry convention: pixel ``(i, j)`` has its centre at index coordinates ``(i, j)`` (continuous box coordinates
``(i + 0.5, j + 0.5)``). Rotation and scale are about the image centre ``((H - 1) / 2, (W - 1) / 2)`` in index
coordinates, which is ``(H / 2, W / 2)`` in box coordinates, so that 90-degree turns permute pixels exactly like
``np.rot90``. A positive angle turns the image counter-clockwise as displayed (row 0 at the top), as ``np.rot90``
with ``k = 1``; a scale above 1 enlarges the content.

Shape letters: ``S`` image size (``H``, ``W`` when they may differ), ``G`` max instances.
"""
import math

import tensorflow as tf

from mrcnn_tf.ops import boxes as box_ops

IMAGE, BOXES, CLASSES, MASKS = "images", "gt_boxes", "gt_classes", "gt_masks"

# Sub-seed slots: fixed, so that switching one augmentation off does not change the draws of the others.
_FLIP, _ANGLE, _SCALE, _BRIGHTNESS, _CONTRAST = range(5)


def tight_boxes(masks):
    """Tight boxes ``[G, 4]`` float32 ``[y1, x1, y2, x2]`` (exclusive end) of masks ``[G, H, W]``; 0 if empty."""
    masks = tf.convert_to_tensor(masks)
    height, width = tf.shape(masks)[1], tf.shape(masks)[2]
    rows = tf.reduce_any(masks > 0, axis=2)  # [G, H]
    cols = tf.reduce_any(masks > 0, axis=1)  # [G, W]
    # argmax returns the first True; on the reversed axis it counts the empty rows/columns after the last one.
    y1 = tf.argmax(rows, axis=1, output_type=tf.int32)
    y2 = height - tf.argmax(tf.reverse(rows, axis=[1]), axis=1, output_type=tf.int32)
    x1 = tf.argmax(cols, axis=1, output_type=tf.int32)
    x2 = width - tf.argmax(tf.reverse(cols, axis=[1]), axis=1, output_type=tf.int32)
    boxes = tf.cast(tf.stack([y1, x1, y2, x2], axis=1), tf.float32)  # [G, 4]
    nonempty = tf.reduce_any(rows, axis=1)  # [G]
    return tf.where(nonempty[:, None], boxes, tf.zeros_like(boxes))


def update_instances_from_masks(example):
    """Recompute ``gt_boxes`` from ``gt_masks``; a slot with an empty mask or a negative class becomes padding.

    Padding is class -1, box ``[0, 0, 0, 0]`` and an all-zero mask, so that it never looks like an instance.
    Slots keep their order (no compaction). Returns a new example dict.
    """
    masks = example[MASKS]  # [G, S, S]
    classes = example[CLASSES]  # [G]
    valid = tf.logical_and(classes >= 0, tf.reduce_any(masks > 0, axis=[1, 2]))  # [G]
    out = dict(example)
    out[CLASSES] = tf.where(valid, classes, tf.constant(-1, classes.dtype))
    out[BOXES] = tf.where(valid[:, None], tight_boxes(masks), tf.zeros_like(example[BOXES]))
    out[MASKS] = tf.where(valid[:, None, None], masks, tf.zeros_like(masks))
    return out


def flip_example(example):
    """Mirror an example left-right: box ``[y1, x1, y2, x2]`` -> ``[y1, W - x2, y2, W - x1]``; padding stays zero."""
    image = example[IMAGE]  # [H, W, 3]
    flipped = box_ops.flip_boxes_left_right(example[BOXES], tf.shape(image)[1])  # [G, 4]
    valid = example[CLASSES] >= 0  # [G]
    out = dict(example)
    out[IMAGE] = tf.reverse(image, axis=[1])
    out[MASKS] = tf.reverse(example[MASKS], axis=[2])
    out[BOXES] = tf.where(valid[:, None], flipped, example[BOXES])
    return out


def rotation_scale_transform(angle_deg, scale, height, width):
    """The ``[8]`` float32 projective transform (output -> input, as ImageProjectiveTransformV3 wants it).

    Rotates by ``angle_deg`` (counter-clockwise as displayed) and scales by ``scale`` about the centre
    ``((height - 1) / 2, (width - 1) / 2)`` in pixel-index coordinates. The inverse map is
    ``input = c + R(-angle) (output - c) / scale`` with ``(x, y) = (column, row)``.
    """
    angle = tf.cast(angle_deg, tf.float32) * (math.pi / 180.0)
    scale = tf.cast(scale, tf.float32)
    cy = (tf.cast(height, tf.float32) - 1.0) / 2.0
    cx = (tf.cast(width, tf.float32) - 1.0) / 2.0
    cos, sin = tf.cos(angle) / scale, tf.sin(angle) / scale
    # input_x = a0 x + a1 y + a2, input_y = b0 x + b1 y + b2; a2, b2 keep the centre fixed.
    a0, a1 = cos, -sin
    b0, b1 = sin, cos
    a2 = cx - a0 * cx - a1 * cy
    b2 = cy - b0 * cx - b1 * cy
    return tf.stack([a0, a1, a2, b0, b1, b2, 0.0, 0.0])


def _warp(images, transform, interpolation):
    """``images`` ``[1, H, W, C]`` resampled through ``transform`` ``[8]`` with zero fill; same shape and dtype."""
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=images,
        transforms=transform[None, :],  # [1, 8]
        output_shape=tf.shape(images)[1:3],
        fill_value=tf.constant(0.0, tf.float32),
        interpolation=interpolation,
        fill_mode="CONSTANT",
    )


def rotate_and_scale_example(example, angle_deg, scale):
    """Rotate by ``angle_deg`` and scale by ``scale`` about the centre (see the module docstring).

    The image is resampled bilinearly (rounded back to uint8), the masks by nearest neighbour with the same
    transform, so they move together; boxes are then recomputed from the masks and vanished instances dropped.
    """
    image = example[IMAGE]  # [H, W, 3]
    transform = rotation_scale_transform(angle_deg, scale, tf.shape(image)[0], tf.shape(image)[1])  # [8]
    warped = _warp(tf.cast(image, tf.float32)[None], transform, "BILINEAR")[0]  # [H, W, 3]
    masks_hwg = tf.transpose(example[MASKS], [1, 2, 0])[None]  # [1, H, W, G]: instances as channels
    masks = _warp(masks_hwg, transform, "NEAREST")[0]  # [H, W, G]
    out = dict(example)
    out[IMAGE] = _to_uint8(warped)
    out[MASKS] = tf.transpose(masks, [2, 0, 1])  # [G, H, W]
    return update_instances_from_masks(out)


def adjust_brightness_contrast(image, delta, factor):
    """``(image - mean) * factor + mean + delta`` on ``image`` ``[H, W, C]`` uint8, clipped to [0, 255] uint8.

    ``mean`` is the mean over all pixels and channels, so grey images stay grey.
    """
    pixels = tf.cast(image, tf.float32)
    mean = tf.reduce_mean(pixels)
    return _to_uint8((pixels - mean) * tf.cast(factor, tf.float32) + mean + tf.cast(delta, tf.float32))


def _to_uint8(pixels):
    """float32 -> uint8, rounded and clipped first so that nothing wraps around."""
    return tf.cast(tf.clip_by_value(tf.round(pixels), 0.0, 255.0), tf.uint8)


def _uniform(seed, low, high):
    return tf.random.stateless_uniform([], seed=seed, minval=float(low), maxval=float(high), dtype=tf.float32)


def augment_example(example, seed, flip=True, max_rotation_deg=10.0, scale_range=(0.9, 1.1), brightness=0.1,
                    contrast=0.1):
    """Randomly augment one unbatched example; the same ``seed`` gives the same output.

    Args:
      example: dict with ``images`` ``[S, S, 3]`` uint8, ``gt_boxes`` ``[G, 4]`` float32, ``gt_classes`` ``[G]``
        int32, ``gt_masks`` ``[G, S, S]`` uint8 (other keys pass through).
      seed: ``[2]`` int32/int64 tensor for the ``tf.random.stateless_*`` ops.
      flip: a Python bool; if true, mirror left-right with probability 0.5.
      max_rotation_deg: the angle is uniform in ``[-max_rotation_deg, max_rotation_deg]``.
      scale_range: ``(low, high)``; the isotropic scale is uniform in it.
      brightness: add a uniform offset in ``[-brightness, brightness] * 255``.
      contrast: scale about the image mean by a factor uniform in ``[1 - contrast, 1 + contrast]``.
    Returns:
      the augmented example, same keys, static shapes and dtypes; boxes are the tight boxes of the masks and
      instances that left the image are padding. With everything off the example comes back unchanged.
    """
    seeds = tf.random.experimental.stateless_split(seed, num=5)  # [5, 2]
    out = dict(example)
    if flip:
        do_flip = _uniform(seeds[_FLIP], 0.0, 1.0) < 0.5
        out = tf.cond(do_flip, lambda: flip_example(out), lambda: dict(out))
    angle = _uniform(seeds[_ANGLE], -max_rotation_deg, max_rotation_deg)
    scale = _uniform(seeds[_SCALE], scale_range[0], scale_range[1])
    out = rotate_and_scale_example(out, angle, scale)
    delta = _uniform(seeds[_BRIGHTNESS], -brightness, brightness) * 255.0
    factor = _uniform(seeds[_CONTRAST], 1.0 - contrast, 1.0 + contrast)
    out[IMAGE] = adjust_brightness_contrast(out[IMAGE], delta, factor)
    for key in (IMAGE, BOXES, CLASSES, MASKS):
        out[key] = tf.ensure_shape(out[key], example[key].shape)
    return out


def crop_example(example, size, seed):
    """A random ``size`` x ``size`` window of one unbatched example (``size`` at most the image's sides), for
    training on crops: the window's centre is uniform over the bounding box of the image's content, moved inwards
    where the window would leave the image. Content is every pixel brighter than the image's darkest value, its
    background (0, or what brightness augmentation made of 0); a uniform image is all background and the centre is
    drawn over the whole image. Masks are cut with the image; boxes become the tight boxes of the cut masks and an
    instance cut away becomes padding (:func:`update_instances_from_masks`). ``seed``: ``[2]`` int tensor; the same
    seed gives the same window. Returns the example with static shapes ``[size, size, 3]`` and ``[G, size, size]``.
    """
    image = example[IMAGE]  # [H, W, 3]
    height, width = image.shape[0], image.shape[1]
    content = tf.reduce_any(image > tf.reduce_min(image), axis=2)  # [H, W]
    box = tight_boxes(tf.cast(content, tf.uint8)[None])[0]  # [4]: [y1, x1, y2, x2], zeros when there is no content
    box = tf.where(tf.reduce_any(content), box, tf.constant([0.0, 0.0, height, width], tf.float32))
    draws = tf.random.stateless_uniform([2], seed=seed, dtype=tf.float32)  # [2]: y, x
    centre = box[:2] + draws * (box[2:] - box[:2])  # [2]
    limit = tf.constant([height - size, width - size], tf.int32)
    top, left = tf.unstack(tf.clip_by_value(tf.cast(tf.round(centre - size / 2), tf.int32), 0, limit))
    out = dict(example)
    out[IMAGE] = tf.slice(image, [top, left, 0], [size, size, image.shape[2]])
    masks = example[MASKS]  # [G, H, W]
    out[MASKS] = tf.slice(masks, [0, top, left], [masks.shape[0], size, size])
    out = update_instances_from_masks(out)
    out[IMAGE] = tf.ensure_shape(out[IMAGE], [size, size, image.shape[2]])
    out[MASKS] = tf.ensure_shape(out[MASKS], [masks.shape[0], size, size])
    return out


def make_augmenter(seed, **options):
    """A ``fn(index, example) -> example`` for ``dataset.enumerate().map(fn)``; ``options`` go to ``augment_example``.

    The example seed is ``stateless_fold_in(base, index)`` with ``base = [seed, 0]`` for an int ``seed`` (or
    ``seed`` itself when it is a ``[2]`` tensor), so every index gets its own draw. To get a new draw every epoch,
    either enumerate *after* ``shuffle(...).repeat()`` (the index keeps counting across epochs), or fold the epoch
    in yourself: ``make_augmenter(tf.random.experimental.stateless_fold_in([seed, 0], epoch))``. Enumerating
    before ``repeat`` without folding in the epoch repeats the same augmentation of an example every epoch.
    """
    base = tf.constant([seed, 0], tf.int64) if isinstance(seed, int) else tf.cast(seed, tf.int64)  # [2]

    def augment(index, example):
        example_seed = tf.random.experimental.stateless_fold_in(base, tf.cast(index, tf.int64))  # [2]
        return augment_example(example, example_seed, **options)

    return augment
