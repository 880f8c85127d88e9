"""Tests for the CocoReader of mrcnn_tf/data/coco.py on tiny COCO folders written to ``tmp_path``, and once on the
real Roboflow export.

The tiny folder: images 80 x 96 (H x W) PNGs; categories 0 (unused super-category), 3 and 7 (used), 9 (used only
by a crowd annotation). Rectangles ``[y1, x1, y2, x2]`` (exclusive end) fill ``mask[y1:y2, x1:x2]``.
"""
import functools
import json
import os
import time

import cv2
import numpy as np
import pytest
from pycocotools import mask as mask_utils

from mrcnn_tf.data import pipeline, readers
from mrcnn_tf.data.coco import CocoReader, segmentation_to_mask
from mrcnn_tf.data.images import read_rgb_image
from mrcnn_tf.errors import DataError

HEIGHT, WIDTH = 80, 96
ROBOFLOW_VAL = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "data", "coco_roboflow_256", "val")
CATEGORIES = [{"id": 0, "name": "Brain-Tumor"}, {"id": 3, "name": "glioma"}, {"id": 7, "name": "meningioma"},
              {"id": 9, "name": "crowd-only"}]
RLE_BOX = (40, 50, 60, 90)  # 20 x 40 = 800 px
UNCOMPRESSED_BOX = (10, 10, 20, 30)  # 10 x 20 = 200 px
CROWD_BOX = (62, 5, 76, 40)
POLYGON = [10, 5, 30, 5, 30, 25, 10, 25]  # x, y: the square x 10..30, y 5..25: 400 px


def _rectangle(box, size=(HEIGHT, WIDTH)):
    mask = np.zeros(size, np.uint8)
    y1, x1, y2, x2 = box
    mask[y1:y2, x1:x2] = 1
    return mask


def _compressed_rle(mask):
    rle = mask_utils.encode(np.asfortranarray(mask))
    return {"size": [int(s) for s in rle["size"]], "counts": rle["counts"].decode("ascii")}


def _uncompressed_rle(mask):
    """COCO's crowd format: run lengths of the column-major pixels, starting with a run of zeros."""
    pixels = mask.flatten(order="F")
    changes = np.flatnonzero(np.diff(pixels)) + 1
    bounds = np.concatenate([[0], changes, [len(pixels)]])
    counts = np.diff(bounds).tolist()
    if pixels[0]:
        counts = [0] + counts
    return {"size": list(mask.shape), "counts": counts}


def _write_image(path, size=(HEIGHT, WIDTH), colour=False):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    rng = np.random.default_rng(len(path))
    image = rng.integers(0, 255, size + ((3,) if colour else ()), dtype=np.uint8)
    assert cv2.imwrite(str(path), image)
    return str(path)


def _write_json(path, content):
    with open(path, "w") as file:
        file.write(content if isinstance(content, str) else json.dumps(content))
    return str(path)


def _annotation(annotation_id, image_id, category_id, segmentation, crowd=0):
    return {"id": annotation_id, "image_id": image_id, "category_id": category_id, "bbox": [0, 0, 1, 1],
            "area": 1, "segmentation": segmentation, "iscrowd": crowd}


def _dataset():
    """Image 7 (``scan_a.png``): a polygon of category 7, a compressed RLE of category 3 and a crowd region of
    category 9. Image 3 (``export/scan_b.png``, a folder the export does not have): an uncompressed RLE of
    category 3. Image 5 (``nested/scan_c.png``): no annotation."""
    images = [{"id": 7, "file_name": "scan_a.png", "height": HEIGHT, "width": WIDTH},
              {"id": 3, "file_name": "export/scan_b.png", "height": HEIGHT, "width": WIDTH},
              {"id": 5, "file_name": "nested/scan_c.png", "height": HEIGHT, "width": WIDTH}]
    annotations = [_annotation(1, 7, 7, [POLYGON]),
                   _annotation(2, 7, 3, _compressed_rle(_rectangle(RLE_BOX))),
                   _annotation(3, 7, 9, _uncompressed_rle(_rectangle(CROWD_BOX)), crowd=1),
                   _annotation(4, 3, 3, _uncompressed_rle(_rectangle(UNCOMPRESSED_BOX)))]
    return {"images": images, "categories": CATEGORIES, "annotations": annotations}


def _coco_folder(root, dataset=None):
    """Write the images of ``_dataset`` and a json (``dataset``, default ``_dataset()``); returns the json path."""
    _write_image(os.path.join(root, "scan_a.png"))
    _write_image(os.path.join(root, "scan_b.png"), colour=True)
    _write_image(os.path.join(root, "nested", "scan_c.png"))
    return _write_json(os.path.join(root, "_annotations.coco.json"), dataset or _dataset())


def _by_id(reader, image_id):
    return next(item for item in reader.items if item.image_id == image_id)


# --- items and classes -----------------------------------------------------------------------------------------


def test_items_follow_image_ids_and_find_their_files(tmp_path):
    reader = CocoReader(_coco_folder(tmp_path))
    assert reader.format == "coco"
    assert [item.image_id for item in reader.items] == [3, 5, 7]
    assert [item.image_path for item in reader.items] == [
        str(tmp_path / "scan_b.png"),  # "export/scan_b.png" is not there: its base name beside the json is
        str(tmp_path / "nested" / "scan_c.png"),  # the file name as given, relative to the json's folder
        str(tmp_path / "scan_a.png")]
    assert all(item.mask_path is None and item.patient is None for item in reader.items)


def test_used_categories_become_classes_one_to_k_in_id_order(tmp_path):
    reader = CocoReader(_coco_folder(tmp_path))
    # 0 is used by nothing, 9 only by a crowd region: both dropped; 3 -> class 1, 7 -> class 2.
    assert reader.class_names == ("glioma", "meningioma")
    image, masks, classes = reader.read(_by_id(reader, 7))
    assert image.shape == (HEIGHT, WIDTH, 3) and image.dtype == np.uint8
    assert masks.shape == (2, HEIGHT, WIDTH) and masks.dtype == np.uint8
    np.testing.assert_array_equal(classes, [2, 1])  # the file's annotation order: polygon of 7, RLE of 3
    assert classes.dtype == np.int32


def test_polygons_and_both_rle_forms_decode(tmp_path):
    reader = CocoReader(_coco_folder(tmp_path))
    _, masks, _ = reader.read(_by_id(reader, 7))
    np.testing.assert_array_equal(masks[1], _rectangle(RLE_BOX))
    # pycocotools fills a polygon's integer corners as the exclusive-end rectangle between them.
    np.testing.assert_array_equal(masks[0], _rectangle((5, 10, 25, 30)))
    _, masks, classes = reader.read(_by_id(reader, 3))
    np.testing.assert_array_equal(masks, _rectangle(UNCOMPRESSED_BOX)[None])
    np.testing.assert_array_equal(classes, [1])


def test_crowd_annotations_are_left_out(tmp_path):
    reader = CocoReader(_coco_folder(tmp_path))
    _, masks, classes = reader.read(_by_id(reader, 7))
    assert len(masks) == len(classes) == 2  # of the three annotations of image 7
    assert not (masks * _rectangle(CROWD_BOX)).any()


def test_an_image_without_annotations_has_no_instances(tmp_path):
    reader = CocoReader(_coco_folder(tmp_path))
    image, masks, classes = reader.read(_by_id(reader, 5))
    assert image.shape == (HEIGHT, WIDTH, 3) and masks.shape == (0, HEIGHT, WIDTH) and classes.shape == (0,)


def test_one_used_category_is_named_tumour(tmp_path):
    dataset = _dataset()
    dataset["categories"] = [{"id": 0, "name": "Brain-Tumor"}, {"id": 1, "name": "object"}]
    dataset["annotations"] = [{**a, "category_id": 1} for a in dataset["annotations"]]
    reader = CocoReader(_coco_folder(tmp_path, dataset))
    assert reader.class_names == ("tumour",)
    np.testing.assert_array_equal(reader.read(_by_id(reader, 7))[2], [1, 1])


def test_a_file_without_annotations_gives_the_tumour_class(tmp_path):
    dataset = {**_dataset(), "annotations": []}
    reader = CocoReader(_coco_folder(tmp_path, dataset))
    assert reader.class_names == ("tumour",) and len(reader.items) == 3
    assert reader.read(_by_id(reader, 7))[1].shape == (0, HEIGHT, WIDTH)


def test_roboflow_export_loads_as_one_tumour_class():
    path = os.path.join(ROBOFLOW_VAL, "_annotations.coco.json")
    if not os.path.isfile(path):
        pytest.skip(f"Roboflow COCO export not found at {os.path.abspath(path)}")
    reader = CocoReader(path)
    with open(path) as file:
        annotations = json.load(file)["annotations"]
    counts = {}
    for annotation in annotations:
        counts[annotation["image_id"]] = counts.get(annotation["image_id"], 0) + 1
    assert reader.class_names == ("tumour",) and len(reader.items) == 20
    busiest = max(counts, key=counts.get)
    assert counts[busiest] > 1
    image, masks, classes = reader.read(_by_id(reader, busiest))
    assert image.shape == (256, 256, 3) and masks.shape == (counts[busiest], 256, 256)
    np.testing.assert_array_equal(classes, [1] * counts[busiest])
    assert all(mask.any() for mask in masks)


# --- errors ----------------------------------------------------------------------------------------------------


def _with_annotation(**changes):
    dataset = _dataset()
    dataset["annotations"].append({**_annotation(99, 7, 3, [POLYGON]), **changes})
    return dataset


def _with_image(**changes):
    dataset = _dataset()
    dataset["images"].append({"id": 8, "file_name": "scan_a.png", "height": HEIGHT, "width": WIDTH, **changes})
    return dataset


@pytest.mark.parametrize("content, message", [
    (_with_image(id=7), "repeats image id 7"),  # rather than one image with the annotations of both
    (_with_annotation(id=2), "repeats annotation id 2"),
    (_with_image(id="seven"), "has id 'seven'"),
    (_with_image(file_name=None), "has file_name None"),
    ({"images": {"id": 1}, "annotations": [], "categories": []}, "'images' should be a JSON list"),
])
def test_repeated_ids_and_malformed_images_raise_naming_the_json(tmp_path, content, message):
    path = _coco_folder(tmp_path, content)
    with pytest.raises(DataError) as error:
        CocoReader(path)
    assert path in str(error.value) and message in str(error.value)


@pytest.mark.parametrize("content, message", [
    ('{"images": [', "not valid JSON"),
    ({"images": [], "annotations": []}, "lacks ['categories']"),
    ({"images": [{"id": 1, "file_name": "a.png"}], "annotations": [], "categories": []}, "lacks ['height', 'width']"),
    (_with_annotation(image_id=42), "image_id 42"),
    (_with_annotation(category_id=11), "category_id [11]"),
    (_with_annotation(segmentation=[]), "no segmentation"),
])
def test_bad_files_raise_naming_the_json(tmp_path, content, message):
    path = _coco_folder(tmp_path, content)
    with pytest.raises(DataError) as error:
        CocoReader(path)
    assert path in str(error.value) and message in str(error.value)


def test_missing_image_is_named_when_read(tmp_path):
    dataset = _dataset()
    dataset["images"][0]["file_name"] = "gone/scan_gone.png"
    reader = CocoReader(_coco_folder(tmp_path, dataset))  # listing does not open the images
    with pytest.raises(DataError) as error:
        reader.read(_by_id(reader, 7))
    assert str(tmp_path / "gone" / "scan_gone.png") in str(error.value)


def test_image_of_another_size_than_the_json_says_is_named(tmp_path):
    path = _coco_folder(tmp_path)
    image_path = _write_image(str(tmp_path / "scan_a.png"), size=(HEIGHT, WIDTH + 1))
    reader = CocoReader(path)
    with pytest.raises(DataError) as error:
        reader.read(_by_id(reader, 7))
    assert image_path in str(error.value) and "differs" in str(error.value)


def test_rle_of_another_size_names_the_json(tmp_path):
    dataset = _dataset()
    dataset["annotations"][1]["segmentation"] = _compressed_rle(_rectangle(RLE_BOX, size=(HEIGHT, HEIGHT)))
    path = _coco_folder(tmp_path, dataset)
    reader = CocoReader(path)
    with pytest.raises(DataError) as error:
        reader.read(_by_id(reader, 7))
    assert path in str(error.value)


# --- segmentations, validated before they are decoded ---------------------------------------------------------

PIXELS = HEIGHT * WIDTH
VALID_COUNTS = _uncompressed_rle(_rectangle(UNCOMPRESSED_BOX))["counts"]
SHORT_COMPRESSED = _compressed_rle(_rectangle(RLE_BOX, size=(HEIGHT - 1, WIDTH)))["counts"]  # one row short


def _rle(counts, size=(HEIGHT, WIDTH)):
    return {"size": list(size), "counts": counts}


BAD_SEGMENTATIONS = {
    "short uncompressed RLE": (_rle(VALID_COUNTS[:-1]), f"cover {PIXELS - VALID_COUNTS[-1]} pixels"),
    "long uncompressed RLE": (_rle(VALID_COUNTS + [5]), f"cover {PIXELS + 5} pixels"),
    "negative count": (_rle([PIXELS + 10, -10]), "not all non-negative integers"),
    "fractional count": (_rle([PIXELS - 0.5, 0.5]), "not all non-negative integers"),
    "text count": (_rle(["7680"]), "not all non-negative integers"),
    "short compressed RLE": (_rle(SHORT_COMPRESSED), f"cover {PIXELS - WIDTH} pixels"),
    "empty compressed RLE": (_rle(""), "cover 0 pixels"),
    "garbage compressed RLE": (_rle("garbage!!"), "counts string is not valid"),
    "compressed RLE ending inside a number": (_rle("0o"), "counts string is not valid"),
    "counts of another type": (_rle({"a": 1}), "RLE counts of type dict"),
    "RLE without counts": ({"size": [HEIGHT, WIDTH]}, "lacks ['counts']"),
    "text size": (_rle(VALID_COUNTS, size=("80", "96")), "RLE of size ['80', '96']"),
    "size of three numbers": (_rle(VALID_COUNTS, size=(HEIGHT, WIDTH, 1)), "RLE of size [80, 96, 1]"),
    "size of another image": (_rle(VALID_COUNTS, size=(WIDTH, HEIGHT)), "RLE of size [96, 80]"),
    "polygon of 2 points": ([[1, 1, 20, 20]], "polygon of 4 numbers"),
    "polygon of an odd count": ([POLYGON + [3]], "polygon of 9 numbers"),
    "polygon of a text": (["10, 5, 30, 5, 30, 25"], "not a list of polygons"),
    "text coordinate": ([[10, 5, 30, "5", 30, 25]], "y = '5'"),
    "boolean coordinate": ([[10, 5, 30, 5, True, 25]], "x = True"),
    "NaN coordinate": ([[10, 5, 30, 5, float("nan"), 25]], "x = nan"),  # Python's json reads NaN
    "infinite coordinate": ([[10, 5, 30, 5, 30, float("-inf")]], "y = -inf"),
    "coordinate 1e7": ([[10, 5, 1e7, 5, 30, 25]], "x = 10000000.0"),
    "coordinate 1e30": ([[10, 5, 30, 1e30, 30, 25]], "y = 1e+30"),
    "coordinate one pixel beyond the margin": ([[10, 5, 30, 5, 30, -HEIGHT - 1]], f"y = {-HEIGHT - 1}"),
}


@pytest.mark.parametrize("segmentation, message", BAD_SEGMENTATIONS.values(), ids=BAD_SEGMENTATIONS.keys())
def test_a_bad_segmentation_is_named_when_its_image_is_read(tmp_path, segmentation, message):
    path = _coco_folder(tmp_path, _with_annotation(segmentation=segmentation))
    reader = CocoReader(path)  # listing does not decode, so that --skip-bad can skip the image alone
    reader.read(_by_id(reader, 3))
    started = time.perf_counter()
    with pytest.raises(DataError) as error:
        reader.read(_by_id(reader, 7))
    assert time.perf_counter() - started < 0.5  # 1e7 took 107 s and 1.2 GB in pycocotools, 1e30 was killed
    assert path in str(error.value) and "annotation 99 of image 7" in str(error.value)
    assert message in str(error.value)


@pytest.mark.parametrize("segmentation", [_rle(VALID_COUNTS[:-1]), _rle(SHORT_COMPRESSED), _rle("")])
def test_a_short_rle_is_refused_before_pycocotools_decodes_it(monkeypatch, segmentation):
    # pycocotools decodes a short RLE into uninitialised memory: a different mask on every run.
    def decode(rle):
        raise AssertionError(f"decoded {rle}")

    monkeypatch.setattr(mask_utils, "decode", decode)
    with pytest.raises(DataError, match="cover"):
        segmentation_to_mask("gt.json", segmentation, HEIGHT, WIDTH, "annotation 4 of image 3")


def test_valid_segmentations_decode_as_pycocotools_decodes_them():
    rng = np.random.default_rng(0)
    for height, width in [(1, 1), (3, 50), (HEIGHT, WIDTH)]:
        for density in (0.0, 0.3, 1.0):
            mask = (rng.random((height, width)) < density).astype(np.uint8)
            compressed = _compressed_rle(mask)
            uncompressed = _uncompressed_rle(mask)
            np.testing.assert_array_equal(segmentation_to_mask("a.json", compressed, height, width), mask)
            np.testing.assert_array_equal(segmentation_to_mask("a.json", uncompressed, height, width), mask)
            # pycocotools' own decoding of the same files, as COCO.annToMask does it.
            np.testing.assert_array_equal(mask_utils.decode(compressed), mask)
            np.testing.assert_array_equal(
                mask_utils.decode(mask_utils.frPyObjects(uncompressed, height, width)), mask)
    polygons = [POLYGON, [-HEIGHT, -HEIGHT, 40.5, 3, 2 * WIDTH, 2 * HEIGHT]]  # the second one to the margins
    expected = mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(polygons, HEIGHT, WIDTH)))
    np.testing.assert_array_equal(segmentation_to_mask("a.json", polygons, HEIGHT, WIDTH), expected)
    assert expected.any() and not expected.all()


def test_sizes_written_as_whole_floats_are_accepted(tmp_path):
    dataset = _dataset()
    dataset["images"][1].update(height=float(HEIGHT), width=float(WIDTH))
    dataset["annotations"][3]["segmentation"]["size"] = [float(HEIGHT), float(WIDTH)]
    reader = CocoReader(_coco_folder(tmp_path, dataset))
    np.testing.assert_array_equal(reader.read(_by_id(reader, 3))[1], _rectangle(UNCOMPRESSED_BOX)[None])


@pytest.mark.parametrize("key, value", [("height", 0), ("width", -96), ("height", 80.5), ("width", "96"),
                                        ("height", True), ("width", None)])
def test_an_image_size_that_is_no_positive_integer_is_named(tmp_path, key, value):
    dataset = _dataset()
    dataset["images"][0][key] = value
    path = _coco_folder(tmp_path, dataset)
    reader = CocoReader(path)
    with pytest.raises(DataError) as error:
        reader.read(_by_id(reader, 7))
    assert path in str(error.value) and f"image 7 has {key} {value!r}" in str(error.value)


# --- file names stay inside the json's folder ------------------------------------------------------------------


@pytest.mark.parametrize("file_name", ["../outside.png", "nested/../../outside.png", "ABSOLUTE"])
def test_a_file_name_leading_out_of_the_folder_is_refused(tmp_path, file_name):
    outside = _write_image(str(tmp_path / "outside.png"))  # there, so that only the rule can refuse it
    dataset = _dataset()
    dataset["images"][0]["file_name"] = outside if file_name == "ABSOLUTE" else file_name
    path = _coco_folder(tmp_path / "data", dataset)
    reader = CocoReader(path)
    with pytest.raises(DataError) as error:
        reader.read(_by_id(reader, 7))
    assert str(error.value).startswith(path) and "image 7 has file_name" in str(error.value)
    assert "leads out of the json's folder" in str(error.value)
    assert reader.read(_by_id(reader, 3))[0].shape == (HEIGHT, WIDTH, 3)  # the other images still read


def test_an_absolute_file_name_inside_the_folder_and_a_symlink_out_of_it_are_read(tmp_path):
    # The rule is lexical: a link inside the folder is the user's own, wherever it points.
    linked = _write_image(str(tmp_path / "elsewhere" / "linked.png"))
    os.makedirs(tmp_path / "data")
    os.symlink(linked, tmp_path / "data" / "link.png")
    dataset = _dataset()
    dataset["images"][0]["file_name"] = "link.png"
    dataset["images"][1]["file_name"] = str(tmp_path / "data" / "scan_b.png")
    reader = CocoReader(_coco_folder(tmp_path / "data", dataset))
    np.testing.assert_array_equal(reader.read(_by_id(reader, 7))[0], read_rgb_image(linked))
    assert reader.read(_by_id(reader, 3))[0].shape == (HEIGHT, WIDTH, 3)


# --- --skip-bad --------------------------------------------------------------------------------------------------


def test_skip_bad_leaves_out_only_the_image_with_a_bad_annotation(tmp_path):
    dataset = _dataset()
    dataset["annotations"][3]["segmentation"]["counts"] = VALID_COUNTS[:-1]  # image 3's only annotation
    reader = readers.open_dataset(_coco_folder(tmp_path, dataset))
    load = functools.partial(readers.load_example, reader, image_size=64, max_instances=4)
    with pytest.raises(DataError, match="annotation 4 of image 3"):
        pipeline.decode_all(reader.items, load, verbose=False)
    kept, arrays = pipeline.decode_all(reader.items, load, verbose=False, skip_bad=True)
    assert [item.image_id for item in kept] == [5, 7]
    assert arrays["images"].shape == (2, 64, 64, 3)
    np.testing.assert_array_equal(arrays["gt_classes"][1], [1, 2, -1, -1])  # image 7 whole


# --- readers -----------------------------------------------------------------------------------------------------


def test_open_dataset_picks_coco_for_a_json_and_for_its_folder(tmp_path):
    path = _coco_folder(tmp_path)
    for where in (path, str(tmp_path)):
        assert readers.detect_format(where) == "coco"
        reader = readers.open_dataset(where)
        assert isinstance(reader, CocoReader) and reader.json_path == path
        assert [item.image_id for item in reader.items] == [3, 5, 7]


def test_load_example_resizes_to_the_network_input(tmp_path):
    reader = readers.open_dataset(_coco_folder(tmp_path))
    example = readers.load_example(reader, _by_id(reader, 7), 64, 4)
    assert example["image"].shape == (64, 64, 3) and example["gt_masks"].shape == (4, 64, 64)
    np.testing.assert_array_equal(example["gt_classes"], [1, 2, -1, -1])  # largest first: the RLE's 800 px
    # RLE_BOX [40, 50, 60, 90] scaled by 64/80 in y and 64/96 in x.
    np.testing.assert_allclose(example["gt_boxes"][0], [32, 33.3, 48, 60], atol=1.5)
