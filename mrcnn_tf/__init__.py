"""mrcnn_tf: Mask R-CNN (ResNet50-FPN) in Keras 3 / TensorFlow for tumour instance segmentation in MRI slices."""
from mrcnn_tf.config import Config

__all__ = ["Config"]
