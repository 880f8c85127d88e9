"""NIfTI cases: the two layouts of the field, and the ``nifti`` dataset reader.

Layouts (found by what the folder holds, :func:`find_cases`)::

    BraTS: ROOT/<CASE>/<CASE>_<modality>.nii.gz ..., <CASE>_seg.nii.gz   (one folder per case; the modality is
                                                                          the file name's last _ or - part)
    nnU-Net / Medical Segmentation Decathlon:
           ROOT/imagesTr/<CASE>_0000.nii.gz, <CASE>_0001.nii.gz ...   (one file per channel)
           ROOT/imagesTr/<CASE>.nii.gz                                (or one 4-D file: channels on the last axis)
           ROOT/labelsTr/<CASE>.nii.gz                                (ROOT/dataset.json may name the channels)

``.nii`` works wherever ``.nii.gz`` does. A case is a patient: its id is the patient id of its slices, so splits
stay patient-level. The reader's items are the chosen axial slices of every case (``data.volumes`` says how a
volume becomes slices); an item's ``image_path`` is ``<case folder>/<CASE>_z<slice>`` (a name, not a file) and its
``mask_path`` the case's label file.

Every mistake raises DataError naming the file: a volume of the wrong number of dimensions for its layout,
modalities of different grids, a label volume whose shape or affine differs from its image's, a case missing a
modality asked for, NaN or infinite voxels, an unreadable file.
"""
import collections
import dataclasses
import os
import re
import threading
import zlib

import nibabel as nib
import numpy as np

from mrcnn_tf.data import volumes
from mrcnn_tf.data.coco import read_json
from mrcnn_tf.data.items import Item
from mrcnn_tf.errors import DataError

NIFTI_ENDINGS = (".nii.gz", ".nii")
LABEL_NAME = "seg"  # BraTS' label file: <CASE>_seg.nii.gz
NNUNET_CHANNEL = re.compile(r"^(?P<case>.+)_(?P<channel>[0-9]{4})$")  # <CASE>_0000
DATASET_JSON = "dataset.json"
CASES_IN_MEMORY = 4  # decoded cases the reader keeps (a BraTS case is ~36 MB)


@dataclasses.dataclass(frozen=True)
class Channel:
    """One modality of a case: its ``name`` (a BraTS suffix such as ``"flair"``, or a channel number as a string),
    its file, its place on a 4-D volume's last axis (None for a 3-D file) and other names (a ``dataset.json``'s)."""

    name: str
    path: str
    index: int | None = None
    aliases: tuple = ()

    @property
    def source(self):
        return self.path if self.index is None else f"{self.path} (channel {self.index})"


@dataclasses.dataclass(frozen=True)
class Case:
    """One case of a NIfTI dataset: its id, the folder its slices are named in, its channels and its label file."""

    case_id: str
    folder: str
    channels: tuple
    label_path: str | None = None


# ---------------------------------------------------------------------------------------------------------------
# Files and layouts


def nifti_stem(name):
    """The name without ``.nii.gz`` / ``.nii``, or None for a file of another kind (and hidden files)."""
    if name.startswith("."):  # macOS' "._<name>" copies, which the Decathlon's archives hold
        return None
    for ending in NIFTI_ENDINGS:
        if name.lower().endswith(ending):
            return name[: -len(ending)]
    return None


def nifti_files(folder):
    """``{stem: path}`` of the NIfTI files directly in ``folder``; DataError for two files of one stem."""
    found = {}
    for name in sorted(os.listdir(folder)):
        stem = nifti_stem(name)
        path = os.path.join(folder, name)
        if stem is None or not os.path.isfile(path):
            continue
        if stem in found:
            raise DataError(f"{path}: {found[stem]} has the same name; expected one file per volume")
        found[stem] = path
    return found


def is_nifti_dataset(path):
    """Whether ``path`` is a NIfTI file, or a folder that holds NIfTI cases in one of the layouts."""
    if os.path.isfile(path):
        return nifti_stem(os.path.basename(path)) is not None
    if not os.path.isdir(path):
        return False
    if any(os.path.isdir(os.path.join(path, name)) for name in ("imagesTr", "imagesTs")) or nifti_files(path):
        return True
    return any(nifti_files(os.path.join(path, name)) for name in sorted(os.listdir(path))
               if os.path.isdir(os.path.join(path, name)) and not name.startswith("."))


def load_image(path):
    """The nibabel image of ``path`` (header read, data not yet); DataError naming it when unreadable."""
    try:
        return nib.load(path)
    except (nib.filebasedimages.ImageFileError, OSError, EOFError, ValueError, zlib.error) as error:
        raise DataError(f"{path}: not a readable NIfTI file ({error})") from error


def read_voxels(image, path):
    """The voxel array of a nibabel image (scaled by its slope and intercept when it has them)."""
    try:
        return np.asanyarray(image.dataobj)
    except (OSError, EOFError, ValueError, zlib.error) as error:
        raise DataError(f"{path}: the voxel data cannot be read ({error})") from error


def find_cases(path, require_labels=False):
    """The cases at ``path``: a NIfTI file (one case), a BraTS case folder, a folder of BraTS case folders, an
    nnU-Net dataset folder (``imagesTr``/``labelsTr``, else ``imagesTs``/``labelsTs``) or an nnU-Net images folder.
    Cases are sorted by id. DataError naming ``path`` when it holds none, and naming the case when
    ``require_labels`` and it has no label file."""
    if os.path.isfile(path):
        cases = [single_file_case(path)]
    elif not os.path.isdir(path):
        raise DataError(f"{path}: no such NIfTI file or folder")
    elif os.path.isdir(os.path.join(path, "imagesTr")) or os.path.isdir(os.path.join(path, "imagesTs")):
        split = "Tr" if os.path.isdir(os.path.join(path, "imagesTr")) else "Ts"
        cases = images_folder_cases(os.path.join(path, "images" + split), os.path.join(path, "labels" + split),
                                    channel_names(path))
    elif nifti_files(path):
        files = nifti_files(path)
        if os.path.basename(os.path.normpath(path)).startswith("images") or all(
                NNUNET_CHANNEL.match(stem) for stem in files):
            parent = os.path.dirname(os.path.normpath(path))
            labels = os.path.join(parent, os.path.basename(os.path.normpath(path)).replace("images", "labels", 1))
            cases = images_folder_cases(path, labels, channel_names(parent))
        else:
            cases = [case_folder_case(path)]
    else:
        folders = [os.path.join(path, name) for name in sorted(os.listdir(path)) if not name.startswith(".")]
        cases = [case_folder_case(folder) for folder in folders if os.path.isdir(folder) and nifti_files(folder)]
    if not cases:
        raise DataError(f"{path}: no NIfTI cases found (expected BraTS case folders of <CASE>_<modality>.nii.gz, "
                        "or an nnU-Net folder with imagesTr/ and labelsTr/)")
    if require_labels:
        for case in cases:
            if case.label_path is None:
                raise DataError(f"{case.folder}: case {case.case_id} has no label volume (expected "
                                f"{case.case_id}_{LABEL_NAME}.nii.gz beside its images, or labelsTr/{case.case_id}"
                                ".nii.gz)")
    ids = [case.case_id for case in cases]
    repeated = sorted({case_id for case_id in ids if ids.count(case_id) > 1})
    if repeated:
        raise DataError(f"{path}: the case id(s) {repeated} name more than one case")
    return sorted(cases, key=lambda case: case.case_id)


def channel_names(dataset_folder):
    """``{channel number: name}`` from the dataset folder's ``dataset.json`` (nnU-Net's ``channel_names``, the
    Decathlon's ``modality``), or ``{}``."""
    path = os.path.join(dataset_folder, DATASET_JSON)
    if not os.path.isfile(path):
        return {}
    content = read_json(path)
    names = (content.get("channel_names") or content.get("modality")) if isinstance(content, dict) else None
    if not isinstance(names, dict):
        return {}
    return {int(key): str(value) for key, value in names.items() if str(key).isdigit()}


def images_folder_cases(images_dir, labels_dir, names):
    """The cases of an nnU-Net / Decathlon images folder: ``<CASE>_0000.nii.gz`` per channel or one
    ``<CASE>.nii.gz`` (3-D, or 4-D with the channels last); labels ``labels_dir/<CASE>.nii.gz`` when present."""
    files = nifti_files(images_dir)
    labels = nifti_files(labels_dir) if os.path.isdir(labels_dir) else {}
    by_case = collections.defaultdict(list)
    for stem, path in files.items():
        # A Decathlon case may end in 4 digits too (TCGA_HT_7680.nii.gz): a label of that very name, or channels on
        # a 4th axis, make it a whole case.
        match = NNUNET_CHANNEL.match(stem)
        if match and stem not in labels and len(load_image(path).shape) == 3:
            number = int(match["channel"])
            by_case[match["case"]].append(Channel(str(number), path, None, _aliases(names, number)))
        else:
            by_case[stem].extend(whole_case_channels(path, names))
    cases = []
    for case_id, channels in by_case.items():
        numbers = [channel.name for channel in channels]
        if len(set(numbers)) != len(numbers):
            raise DataError(f"{images_dir}: case {case_id} has both {case_id}.nii.gz and per-channel files "
                            f"{case_id}_0000.nii.gz...; expected one or the other")
        channels.sort(key=lambda channel: int(channel.name))
        cases.append(Case(case_id, images_dir, tuple(channels), labels.get(case_id)))
    return cases


def _aliases(names, number):
    return (names[number],) if number in names else ()


def whole_case_channels(path, names=None):
    """The channels of one file holding a whole case: one for a 3-D volume, one per index of the last axis of a
    4-D volume (the Decathlon's layout). DataError naming ``path`` for another number of dimensions."""
    shape = load_image(path).shape
    if len(shape) == 3 or (len(shape) == 4 and shape[3] == 1):
        return [Channel("0", path, None, _aliases(names or {}, 0))]
    if len(shape) == 4:
        return [Channel(str(i), path, i, _aliases(names or {}, i)) for i in range(shape[3])]
    raise DataError(f"{path}: a volume of shape {shape}; expected 3-D, or 4-D with the modalities on the last axis")


def single_file_case(path):
    """A case given as one NIfTI file: its channels (:func:`whole_case_channels`); a BraTS file name
    (``<CASE>_flair.nii.gz``) or an nnU-Net one (``<CASE>_0000.nii.gz``) names its one modality."""
    stem = nifti_stem(os.path.basename(path))
    if stem is None:
        raise DataError(f"{path}: not a NIfTI file (.nii or .nii.gz)")
    channels = whole_case_channels(path)
    match = NNUNET_CHANNEL.match(stem)
    if match and len(channels) == 1:
        return Case(match["case"], os.path.dirname(path), (Channel(str(int(match["channel"])), path),))
    case_id, modality = _split_modality(stem)
    if modality and len(channels) == 1:
        return Case(case_id, os.path.dirname(path), (Channel(modality, path),))
    return Case(stem, os.path.dirname(path), tuple(channels))


def _split_modality(stem):
    """``BraTS_001_flair`` -> ``("BraTS_001", "flair")``; ``BraTS-GLI-00000-000-t2f`` -> ``(..., "t2f")``."""
    cut = max(stem.rfind("_"), stem.rfind("-"))
    return (stem[:cut], stem[cut + 1:].lower()) if cut > 0 else (stem, "")


def case_folder_case(folder):
    """A BraTS case folder: ``<CASE>_<modality>.nii.gz`` files and the label ``<CASE>_seg.nii.gz``; the case id is
    the folder's name."""
    channels, label_path = [], None
    for stem, path in nifti_files(folder).items():
        _, modality = _split_modality(stem)
        modality = modality or stem.lower()
        if modality == LABEL_NAME:
            if label_path is not None:
                raise DataError(f"{path}: a second label volume in {folder} (the other is {label_path})")
            label_path = path
        elif any(channel.name == modality for channel in channels):
            raise DataError(f"{path}: a second '{modality}' volume in {folder}")
        else:
            channels.append(Channel(modality, path))
    if not channels:
        raise DataError(f"{folder}: no image volume beside the label (expected <CASE>_<modality>.nii.gz files)")
    channels.sort(key=lambda channel: channel.name)
    return Case(os.path.basename(os.path.normpath(folder)), folder, tuple(channels), label_path)


# ---------------------------------------------------------------------------------------------------------------
# Modalities


def resolve_modalities(case, requested, any_single=False):
    """The channels of ``case`` that ``requested`` (``data.modalities``: names or indices, or ``()``) names, in
    its order. ``()`` takes all of a case's channels when it has at most three (numbers in order, names
    alphabetically). With ``any_single``, a case of one channel serves a request for one modality whatever its
    name (one file given to predict). DataError naming the case's folder and what it holds when a modality is
    missing or a choice is needed."""
    held = ", ".join(_describe(channel) for channel in case.channels)
    if not requested:
        if len(case.channels) > 3:
            raise DataError(f"{case.folder}: case {case.case_id} has {len(case.channels)} modalities ({held}); "
                            "choose up to three with --modalities (data.modalities)")
        return tuple(case.channels)
    if any_single and len(case.channels) == 1 and len(set(requested)) == 1:
        return (case.channels[0],) * len(requested)
    chosen = []
    for name in requested:
        found = [channel for channel in case.channels if _names(channel, name)]
        if not found:
            files = ", ".join(sorted({channel.path for channel in case.channels}))
            raise DataError(f"{case.folder}: case {case.case_id} has no modality {name!r} (it has {held}; files "
                            f"{files})")
        chosen.append(found[0])
    return tuple(chosen)


def _names(channel, name):
    """Whether ``name`` (as the user wrote it) is ``channel``: its name or an alias, any case; numbers by value."""
    wanted = name.strip().lower()
    if wanted.isdigit() and channel.name.isdigit():
        return int(wanted) == int(channel.name)
    return wanted == channel.name.lower() or wanted in (alias.lower() for alias in channel.aliases)


def _describe(channel):
    return channel.name + (f" = {'/'.join(channel.aliases)}" if channel.aliases else "")


# ---------------------------------------------------------------------------------------------------------------
# Reading a case


def spatial_grid(image, path, four_d=False):
    """``(shape [3], affine)`` of a nibabel image; DataError naming ``path`` when it is not 3-D (or 4-D when
    ``four_d``: the channels on the last axis; a 4-D volume of one channel counts as 3-D)."""
    shape = image.shape
    if four_d and len(shape) == 4:
        return tuple(shape[:3]), image.affine
    if len(shape) == 3 or (len(shape) == 4 and shape[3] == 1):
        return tuple(shape[:3]), image.affine
    expected = "4-D (the modalities on the last axis)" if four_d else "3-D"
    raise DataError(f"{path}: a volume of shape {tuple(shape)}; expected {expected}")


def check_case(case, channels):
    """Check from the headers alone that the chosen ``channels`` of ``case`` and its label lie on one grid:
    DataError naming the file that does not. Returns ``(shape, affine)`` of that grid."""
    reference = None
    for channel in channels:
        shape, affine = spatial_grid(load_image(channel.path), channel.path, channel.index is not None)
        if reference is None:
            reference = (shape, affine, channel.path)
        elif shape != reference[0] or not volumes.same_grid(affine, reference[1]):
            raise DataError(f"{channel.path}: its grid (shape {shape}) differs from {reference[2]}'s (shape "
                            f"{reference[0]}) or its affine does; the modalities of a case must share one grid")
    if case.label_path is not None:
        shape, affine = spatial_grid(load_image(case.label_path), case.label_path)
        if shape != reference[0]:
            raise DataError(f"{case.label_path}: label volume of shape {shape}, but its image {reference[2]} has "
                            f"shape {reference[0]}")
        if not volumes.same_grid(affine, reference[1]):
            raise DataError(f"{case.label_path}: the label volume's affine differs from its image's "
                            f"({reference[2]}):\n{np.round(affine, 4)}\nagainst\n{np.round(reference[1], 4)}")
    return reference[0], reference[1]


def read_case(case, channels, percentiles, label_map=(), with_labels=True):
    """The :class:`~mrcnn_tf.data.volumes.CaseVolume` of ``case`` with the modalities ``channels``
    (:func:`resolve_modalities`), scaled with ``percentiles``; its labels through ``label_map`` when
    ``with_labels`` and it has a label file. DataError naming the file for every inconsistency (module doc)."""
    shape, affine = check_case(case, channels)
    arrays, modalities = {}, []
    for channel in channels:
        if channel.path not in arrays:
            arrays[channel.path] = read_voxels(load_image(channel.path), channel.path)
        data = arrays[channel.path]
        data = data[..., channel.index] if channel.index is not None else data.reshape(shape)
        modalities.append((data, channel.source))
    labels = None
    sources = list(dict.fromkeys(channel.path for channel in channels))
    if with_labels and case.label_path is not None:
        labels = read_voxels(load_image(case.label_path), case.label_path).reshape(shape)
        sources.append(case.label_path)
    return volumes.make_case_volume(case.case_id, modalities, affine, percentiles, labels, label_map, sources)


def axial_count(shape, affine):
    """How many axial slices the canonical form of a grid of ``shape`` and ``affine`` has."""
    axis = int(np.flatnonzero(nib.io_orientation(affine)[:, 0] == 2)[0])  # the input axis that runs S
    return int(shape[axis])


# ---------------------------------------------------------------------------------------------------------------
# The dataset reader


class NiftiReader:
    """The ``nifti`` format of ``data.readers``: the chosen axial slices of every case of a NIfTI dataset.

    The options are those of the configuration's ``data`` section (``config.DataConfig``; the defaults here are its
    defaults, and a test keeps them equal). ``modalities`` (the resolved channel names, the first case's when none
    were asked for), ``class_names`` (from ``label_map``), ``cases`` and ``items`` are set on opening, where the
    headers of every case are checked; voxels are read when a slice is. Decoded cases are kept, a few at a time,
    so reading a case's slices in order reads its files once.
    """

    format = "nifti"

    def __init__(self, root, modalities=(), label_map=(), slices="all", intensity_percentiles=(0.5, 99.5)):
        self.root = root
        self.label_map = tuple(label_map)
        self.percentiles = tuple(intensity_percentiles)
        self.slices = slices
        self.class_names = volumes.class_names_of(self.label_map)
        self.cases = find_cases(root, require_labels=True)
        self.modalities = tuple(channel.name for channel in resolve_modalities(self.cases[0], tuple(modalities)))
        self._channels = {case.case_id: resolve_modalities(case, self.modalities) for case in self.cases}
        self._cache, self._lock = collections.OrderedDict(), threading.Lock()
        self.items, self._where = [], {}
        for case in self.cases:
            for z in self._chosen_slices(case):
                item = Item(os.path.join(case.folder, f"{case.case_id}_z{z:03d}"), case.label_path, case.case_id)
                self.items.append(item)
                self._where[item] = (case.case_id, z)

    def _chosen_slices(self, case):
        shape, affine = check_case(case, self._channels[case.case_id])
        tumour = None
        if volumes.parse_slice_choice(self.slices)[0] == "tumour":
            classes = self.case_volume(case.case_id).classes
            tumour = np.flatnonzero(classes.reshape(len(classes), -1).any(axis=1))
        return volumes.chosen_slices(self.slices, axial_count(shape, affine), tumour)

    def slice_of(self, item):
        """``(case id, axial slice index)`` of one of the reader's items."""
        return self._where[item]

    def case_volume(self, case_id):
        """The decoded :class:`~mrcnn_tf.data.volumes.CaseVolume` of a case (kept for the next calls; a case that
        failed raises its DataError again without being read again)."""
        with self._lock:
            if case_id in self._cache:
                self._cache.move_to_end(case_id)
            else:
                case = next(case for case in self.cases if case.case_id == case_id)
                try:
                    self._cache[case_id] = read_case(case, self._channels[case_id], self.percentiles, self.label_map)
                except DataError as error:
                    self._cache[case_id] = error
                while len(self._cache) > CASES_IN_MEMORY:
                    self._cache.popitem(last=False)
            found = self._cache[case_id]
        if isinstance(found, DataError):
            raise found
        return found

    def read(self, item):
        """``(image [H, W, 3] uint8, masks [I, H, W] uint8 0/1, classes [I] int32)`` of one axial slice: each
        8-connected region of a class in the slice's labels is an instance."""
        case_id, z = self.slice_of(item)
        case = self.case_volume(case_id)
        masks, classes = volumes.slice_instances(case.classes[z])
        return case.image[z], masks, classes
