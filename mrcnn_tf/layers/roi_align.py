"""RoIAlign layer over ``ops.roi_align.multilevel_roi_align``."""
import keras

from mrcnn_tf.ops import roi_align as roi_ops


class MultilevelRoIAlign(keras.layers.Layer):
    """Pools ``[B, R, out, out, F]`` features for RoIs ``[B, R, 4]`` from the FPN level their size selects."""

    def __init__(self, output_size, sampling_ratio, min_level, canonical_size, **kwargs):
        # Boxes stay float32 under a mixed policy: no autocast of the inputs.
        super().__init__(trainable=False, autocast=False, **kwargs)
        self.output_size = output_size
        self.sampling_ratio = sampling_ratio
        self.min_level = min_level
        self.canonical_size = canonical_size

    def call(self, features, rois, jit_compile=False, crop=False):
        """``jit_compile``: pool with XLA (faster; compiles once per shape, so for a fixed RoI count ``R``).
        ``crop``: the same values by ``tf.image.crop_and_resize``, faster still; its gradient is the gather's
        compiled by XLA (so again for a fixed ``R`` when training)."""
        if crop:
            if jit_compile:
                raise ValueError("crop=True pools by crop_and_resize, which XLA does not compile: not with jit_compile")
            return roi_ops.crop_multilevel_roi_align(
                features, rois, self.output_size, self.sampling_ratio, self.min_level, self.canonical_size
            )
        return roi_ops.multilevel_roi_align(
            features, rois, self.output_size, self.sampling_ratio, self.min_level, self.canonical_size, jit_compile
        )
