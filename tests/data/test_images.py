"""mrcnn_tf/data/images.py: image files decoded for every reader and predict. ``read_image`` gives what OpenCV
decodes (colour as BGR); ``read_rgb_image`` gives ``[H, W, 3]`` uint8 RGB whatever the file holds. Files are
written to ``tmp_path`` with OpenCV (PNG) or tifffile (TIFF, as the LGG data)."""
import cv2
import numpy as np
import pytest
import tifffile

from mrcnn_tf.data.images import IMAGE_EXTENSIONS, MASK_EXTENSIONS, read_image, read_rgb_image
from mrcnn_tf.errors import DataError

HEIGHT, WIDTH = 20, 30


def _grey(dtype=np.uint8, high=255):
    return (np.arange(HEIGHT * WIDTH).reshape(HEIGHT, WIDTH) * high // (HEIGHT * WIDTH - 1)).astype(dtype)


def _colour():
    """``[H, W, 3]`` uint8 RGB with a different constant in each channel."""
    image = np.empty((HEIGHT, WIDTH, 3), np.uint8)
    image[..., 0], image[..., 1], image[..., 2] = 200, 100, 30  # R, G, B
    return image


def _write_png(path, array):
    assert cv2.imwrite(str(path), array)
    return str(path)


def test_grey_png_becomes_three_equal_channels(tmp_path):
    grey = _grey()
    path = _write_png(tmp_path / "grey.png", grey)
    assert read_image(path).shape == (HEIGHT, WIDTH)  # as decoded
    image = read_rgb_image(path)
    assert image.shape == (HEIGHT, WIDTH, 3) and image.dtype == np.uint8
    for channel in range(3):
        np.testing.assert_array_equal(image[..., channel], grey)


def test_grey_tiff_becomes_three_equal_channels(tmp_path):
    grey = _grey()
    tifffile.imwrite(tmp_path / "grey.tif", grey, photometric="minisblack")
    np.testing.assert_array_equal(read_rgb_image(str(tmp_path / "grey.tif")), np.repeat(grey[..., None], 3, axis=2))


def test_colour_comes_out_rgb_not_opencvs_bgr(tmp_path):
    colour = _colour()
    png = _write_png(tmp_path / "colour.png", colour[..., ::-1])  # OpenCV writes BGR
    np.testing.assert_array_equal(read_image(png), colour[..., ::-1])  # and decodes BGR
    np.testing.assert_array_equal(read_rgb_image(png), colour)
    tifffile.imwrite(tmp_path / "colour.tif", colour, photometric="rgb")  # an RGB TIFF, as the LGG slices
    np.testing.assert_array_equal(read_rgb_image(str(tmp_path / "colour.tif")), colour)


def test_alpha_is_dropped(tmp_path):
    colour = _colour()
    bgra = np.concatenate([colour[..., ::-1], np.full((HEIGHT, WIDTH, 1), 7, np.uint8)], axis=2)
    path = _write_png(tmp_path / "alpha.png", bgra)
    assert read_image(path).shape == (HEIGHT, WIDTH, 4)
    np.testing.assert_array_equal(read_rgb_image(path), colour)


def test_16_bit_keeps_its_values_raw_and_is_rescaled_to_uint8(tmp_path):
    grey = _grey(np.uint16, high=4000)  # 0 .. 4000, as a 12-bit scanner writes
    path = _write_png(tmp_path / "deep.png", grey)
    raw = read_image(path)
    assert raw.dtype == np.uint16
    np.testing.assert_array_equal(raw, grey)
    image = read_rgb_image(path)
    assert image.dtype == np.uint8 and image.shape == (HEIGHT, WIDTH, 3)
    # Its own range to 0 .. 255 (not the top byte: that would leave it nearly black), the order kept.
    expected = grey.astype(np.float64) * 255 / 4000
    assert np.abs(image[..., 0] - expected).max() <= 0.5 + 1e-3
    assert image.min() == 0 and image.max() == 255
    assert (np.diff(image[..., 0].ravel().astype(int)) >= 0).all()


def test_a_finite_float_tiff_is_rescaled_to_uint8(tmp_path):
    ramp = np.linspace(-1.5, 2.5, HEIGHT * WIDTH, dtype=np.float32).reshape(HEIGHT, WIDTH)
    tifffile.imwrite(tmp_path / "float.tif", ramp)
    assert read_image(str(tmp_path / "float.tif")).dtype == np.float32  # OpenCV decodes tifffile's float TIFFs
    image = read_rgb_image(str(tmp_path / "float.tif"))
    assert image.dtype == np.uint8 and image.shape == (HEIGHT, WIDTH, 3)
    np.testing.assert_array_equal(image[..., 0], np.round((ramp + 1.5) * 255 / 4).astype(np.uint8))
    # float64 colour: OpenCV's colour conversion refuses it, the channel swap does not.
    colour = _colour().astype(np.float64) / 255
    tifffile.imwrite(tmp_path / "colour.tif", colour, photometric="rgb")
    expected = np.round((_colour().astype(np.float64) - 30) * 255 / 170).astype(np.uint8)  # R, G, B: 255, 105, 0
    np.testing.assert_array_equal(read_rgb_image(str(tmp_path / "colour.tif")), expected)


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("channels", [1, 3])
def test_a_float_tiff_with_one_non_finite_pixel_is_a_data_error_naming_it(tmp_path, value, channels):
    # Rescaled, the one NaN would make the whole image black, with only a NumPy warning.
    image = np.linspace(0, 1, HEIGHT * WIDTH * channels, dtype=np.float32).reshape(HEIGHT, WIDTH, channels)
    image[5, 7, 0] = value
    path = str(tmp_path / "scan.tif")
    tifffile.imwrite(path, image[..., 0] if channels == 1 else image, photometric="minisblack" if channels == 1
                     else "rgb")
    with pytest.raises(DataError, match="1 pixel value.s. are NaN or infinite") as error:
        read_rgb_image(path)
    assert str(error.value).startswith(path)


def test_flags_reach_opencv(tmp_path):
    path = _write_png(tmp_path / "colour.png", _colour()[..., ::-1])
    assert read_image(path, cv2.IMREAD_GRAYSCALE).shape == (HEIGHT, WIDTH)


def test_a_missing_file_is_a_data_error_naming_it(tmp_path):
    path = str(tmp_path / "scan.png")
    for read in (read_image, read_rgb_image):
        with pytest.raises(DataError, match="file not found") as error:
            read(path)
        assert str(error.value).startswith(path)


@pytest.mark.parametrize("content", [b"", b"not an image at all", b"\x89PNG\r\n\x1a\n" + bytes(range(256)),
                                     b"II*\x00" + bytes(range(256)) * 4])
def test_an_empty_or_corrupt_file_is_a_data_error_naming_it(tmp_path, content):
    path = tmp_path / "scan.png"
    path.write_bytes(content)
    for read in (read_image, read_rgb_image):
        with pytest.raises(DataError, match="empty or corrupt image") as error:
            read(str(path))
        assert str(error.value).startswith(str(path))


def test_extensions_are_lower_case_and_masks_are_lossless():
    assert set(MASK_EXTENSIONS) <= set(IMAGE_EXTENSIONS)
    assert {".png", ".tif", ".tiff", ".jpg"} <= set(IMAGE_EXTENSIONS)
    assert not {".jpg", ".jpeg"} & set(MASK_EXTENSIONS)  # JPEG turns one label value into many
    assert all(ext == ext.lower() and ext.startswith(".") for ext in IMAGE_EXTENSIONS)
