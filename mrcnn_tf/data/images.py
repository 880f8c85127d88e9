"""Image files in, arrays out: the one place where files are decoded (OpenCV), for every reader and predict.

Images may be grey, colour or with alpha, 8 or 16 bits, or float; they come out as ``[H, W, 3]`` uint8 RGB
(``instances.to_rgb`` rescales what is not uint8). A missing, empty or corrupt file raises DataError naming it.
"""
import os

import cv2
import numpy as np

from mrcnn_tf.data import instances
from mrcnn_tf.errors import DataError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
# No JPEG: its compression blurs edges and turns one label value into many.
MASK_EXTENSIONS = (".png", ".tif", ".tiff")


def read_image(path, flags=cv2.IMREAD_UNCHANGED):
    """The array OpenCV decodes from ``path`` (colour as BGR(A)); DataError naming ``path`` when it is missing,
    empty or corrupt."""
    if not os.path.isfile(path):
        raise DataError(f"{path}: file not found")
    image = cv2.imread(path, flags)
    if image is None or image.size == 0:
        raise DataError(f"{path}: empty or corrupt image (OpenCV could not decode it)")
    return image


def read_rgb_image(path):
    """An image file (grey, colour or with alpha; 8 or 16 bits) -> ``[H, W, 3]`` uint8 RGB."""
    image = read_image(path)
    if image.ndim == 3 and image.shape[2] >= 3:
        image = cv2.cvtColor(np.ascontiguousarray(image[..., :3]), cv2.COLOR_BGR2RGB)
    return instances.to_rgb(image, path)
