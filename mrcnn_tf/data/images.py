"""Image files in, arrays out: the one place where files are decoded (OpenCV), for every reader and predict.

Images may be grey, colour or with alpha, 8 or 16 bits, or float; they come out as ``[H, W, 3]`` uint8 RGB
(``instances.to_rgb`` rescales what is not uint8). A missing, empty or corrupt file, and a float image with a NaN
or infinite pixel, raise DataError naming it.
"""
import os

import cv2

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
    """An image file (grey, colour or with alpha; 8 or 16 bits, or float) -> ``[H, W, 3]`` uint8 RGB.

    DataError naming ``path`` when it is missing, empty or corrupt, or (a float image) holds a NaN or infinite
    pixel (see ``instances.to_rgb``).
    """
    image = read_image(path)
    if image.ndim == 3 and image.shape[2] >= 3:
        # BGR(A) -> RGB by slicing: cv2.cvtColor refuses float64, which a float TIFF may hold.
        image = image[..., 2::-1]
    return instances.to_rgb(image, path)
