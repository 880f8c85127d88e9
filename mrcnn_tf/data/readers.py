"""One interface over every dataset format; ``open_dataset`` picks the reader by what it finds at the path.

A reader has ``format`` (its name), ``class_names`` (foreground classes, index 0 = class 1), ``items`` (list of
:class:`~mrcnn_tf.data.items.Item`, in a stable order) and ``read(item) -> (image, masks, classes)``: the image
``[H, W, 3]`` uint8 RGB, instance masks ``[I, H, W]`` uint8 0/1 and classes ``[I]`` int32 (>= 1), all at the
file's own size.
Formats, one module each:

* ``lgg`` (``data.lgg``): patient folders of ``X.tif`` + ``X_mask.tif`` (Kaggle's ``lgg-mri-segmentation``).
* ``coco`` (``data.coco``): a COCO json (an annotation tool's export) and its images.
* ``folder`` (``data.folder``): ``images/`` + ``masks/`` with matching file stems.
* ``nifti`` (``data.nifti``): NIfTI cases, BraTS or nnU-Net / Decathlon layout; items are axial slices of cases.

The volume formats take options, the configuration's ``data`` section (``config.DataConfig``: modalities, label
map, slice choice, intensity scaling); the 2-D formats ignore it.
"""
import os

from mrcnn_tf.data import instances, nifti
from mrcnn_tf.data.coco import CocoReader
from mrcnn_tf.data.folder import FolderReader
from mrcnn_tf.data.lgg import LGGReader
from mrcnn_tf.errors import DataError

FORMATS = ("lgg", "coco", "folder", "nifti")
VOLUME_FORMATS = ("nifti",)
# The fields of config.DataConfig that a volume reader takes (data/ does not import the configuration)
VOLUME_OPTIONS = ("modalities", "label_map", "slices", "intensity_percentiles")


def _coco_json_in(folder):
    names = sorted(n for n in os.listdir(folder) if n.endswith(".json") and "coco" in n.lower())
    return os.path.join(folder, names[0]) if len(names) == 1 else None


def detect_format(path):
    """``coco`` for a json file or a folder holding one ``*coco*.json``, ``folder`` for ``images/`` + ``masks/``,
    ``nifti`` for a NIfTI file or a folder of NIfTI cases (``data.nifti``'s layouts), ``lgg`` otherwise."""
    if os.path.isfile(path) and path.endswith(".json"):
        return "coco"
    if os.path.isfile(path) and nifti.is_nifti_dataset(path):
        return "nifti"
    if not os.path.isdir(path):
        raise DataError(f"{path}: no such data folder or file")
    if os.path.isdir(os.path.join(path, "images")) and os.path.isdir(os.path.join(path, "masks")):
        return "folder"
    if _coco_json_in(path):
        return "coco"
    if nifti.is_nifti_dataset(path):
        return "nifti"
    return "lgg"


def volume_options(data):
    """The reader options of a ``config.DataConfig`` (or any object with its fields); ``{}`` for None, which
    leaves the reader's defaults (the same as the configuration's)."""
    return {} if data is None else {name: getattr(data, name) for name in VOLUME_OPTIONS}


def open_dataset(path, format="auto", data=None):
    """The reader of the dataset at ``path``; ``format`` forces one of :data:`FORMATS`. ``data``: the
    configuration's ``data`` section, for the volume formats (None: its defaults)."""
    if format == "auto":
        format = detect_format(path)
    if format == "lgg":
        return LGGReader(path)
    if format == "coco":
        return CocoReader(path if path.endswith(".json") else (_coco_json_in(path) or path))
    if format == "folder":
        return FolderReader(path)
    if format == "nifti":
        return nifti.NiftiReader(path, **volume_options(data))
    raise DataError(f"unknown data format {format!r}; expected one of {FORMATS} or 'auto'")


def resolve_modalities(path, format="auto", data=None):
    """The modalities a volume dataset's reader would use, as names (``data.modalities`` when given, else those
    of its first case, so that a run records them); None for the 2-D formats, and for a path that is not there
    (opening the dataset names it). Reads file names and one header, not voxels."""
    if not os.path.exists(path):
        return None
    if format == "auto":
        format = detect_format(path)
    if format not in VOLUME_FORMATS:
        return None
    first = nifti.find_cases(path)[0]
    requested = tuple(data.modalities) if data is not None else ()
    return tuple(channel.name for channel in nifti.resolve_modalities(first, requested))


def load_example(reader, item, image_size, max_instances):
    """One item of ``reader`` as the padded, resized example dict of ``data.instances``."""
    image, masks, classes = reader.read(item)
    return instances.make_example(image, masks, classes, image_size, max_instances, item.image_path)
