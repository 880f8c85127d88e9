"""mrcnn_tf: Mask R-CNN (ResNet50-FPN) in Keras 3 / TensorFlow for tumour instance segmentation in MRI slices."""
import os

# CPU settings that TensorFlow reads once, when it is first imported: set here, before any module of the package
# imports it, unless the user has set them (importing TensorFlow before mrcnn_tf leaves TF's own defaults).
# - TF_CPU_ALLOCATOR_USE_BFC: TF's caching allocator. Without it each step's large temporaries (the RoIAlign taps
#   of 1000 proposals: 800 MB) are fresh pages from the OS, faulted in again every step.
# - TF_ENABLE_ONEDNN_OPTS: oneDNN kernels, which TF turns on by itself only on CPUs with AVX-512 VNNI or newer.
# docs/performance.md has what they change on an AVX2-only CPU.
CPU_ENVIRONMENT = {"TF_CPU_ALLOCATOR_USE_BFC": "true", "TF_ENABLE_ONEDNN_OPTS": "1"}
for _name, _value in CPU_ENVIRONMENT.items():
    os.environ.setdefault(_name, _value)

from mrcnn_tf.config import Config  # noqa: E402

__all__ = ["CPU_ENVIRONMENT", "Config"]
