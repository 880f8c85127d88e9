"""Volumes as the model sees them: canonical orientation, intensity scaling, modality stacking, axial slices, and
back to the input's voxels; 3-D connected components and voxel volumes.

The same functions serve training and evaluation (``data.nifti``) and prediction (``mrcnn_tf.volume_predict``), so a
volume is cut and scaled the same way at both ends. docs/volumes.md explains the choices.

* Orientation: a volume is turned to the closest canonical orientation, RAS+ (the first voxel axis runs to the
  patient's Right, the second to Anterior, the third to Superior), by flipping and permuting axes only (nibabel's
  ``as_closest_canonical``: no resampling). Axial slices are then cut along the third axis and laid out as a
  radiologist reads them: slice 0 is the most inferior, rows run from anterior to posterior and columns from the
  patient's right to their left. A standard axial DICOM image (orientation ``1,0,0,0,1,0``) comes out as stored.
* Intensities: a uint8 volume is used as it is; any other is scaled to uint8 per modality and per volume by
  :func:`scale_to_uint8` (percentiles of the non-zero voxels).

Shape letters: ``X``, ``Y``, ``Z`` the canonical axes (right, anterior, superior); an axial stack is ``[Z, H, W]``
with ``H = Y`` and ``W = X``; ``C`` modalities.
"""
import dataclasses

import nibabel as nib
import numpy as np
from scipy import ndimage

from mrcnn_tf.data import instances
from mrcnn_tf.errors import DataError

CANONICAL = ("R", "A", "S")
TUMOUR = "tumour"


# ---------------------------------------------------------------------------------------------------------------
# Orientation


def canonical_transform(affine):
    """The nibabel orientation transform (``[3, 2]``: axis, flip) from the voxel axes of ``affine`` to RAS+."""
    return nib.orientations.ornt_transform(nib.io_orientation(affine), nib.orientations.axcodes2ornt(CANONICAL))


def to_canonical(data, affine):
    """``data`` (``[i, j, k, ...]``, a voxel grid of ``affine``) flipped and permuted to RAS+, and its affine."""
    transform = canonical_transform(affine)
    canonical = nib.orientations.apply_orientation(data, transform)
    return canonical, affine @ nib.orientations.inv_ornt_aff(transform, data.shape[:3])


def from_canonical(canonical, affine):
    """The inverse of :func:`to_canonical`: a RAS+ grid ``[X, Y, Z, ...]`` back to the voxel axes of ``affine``."""
    back = nib.orientations.ornt_transform(nib.orientations.axcodes2ornt(CANONICAL), nib.io_orientation(affine))
    return nib.orientations.apply_orientation(canonical, back)


def axial_slices(canonical):
    """A RAS+ grid ``[X, Y, Z, ...]`` -> axial slices ``[Z, H, W, ...]`` (rows anterior to posterior, columns the
    patient's right to left, slice 0 the most inferior)."""
    flipped = canonical[::-1, ::-1]  # columns from the right, rows from anterior
    return np.ascontiguousarray(np.swapaxes(flipped, 0, 2))  # [Z, Y, X, ...]


def from_axial_slices(slices):
    """The inverse of :func:`axial_slices`: ``[Z, H, W, ...]`` -> a RAS+ grid ``[X, Y, Z, ...]``."""
    return np.ascontiguousarray(np.swapaxes(slices, 0, 2)[::-1, ::-1])


def voxel_sizes(affine):
    """The voxel's edge lengths in mm along the three voxel axes of ``affine`` (``[3]`` float64)."""
    return np.sqrt((np.asarray(affine, np.float64)[:3, :3] ** 2).sum(axis=0))


def voxel_volume_ml(affine):
    """The volume of one voxel of ``affine`` in millilitres (1 mL = 1000 mm^3)."""
    return abs(float(np.linalg.det(np.asarray(affine, np.float64)[:3, :3]))) / 1000.0


def same_grid(affine_a, affine_b, tolerance=1e-3):
    """Whether two affines place voxels at the same points, to ``tolerance`` (mm, and its share of a direction)."""
    return np.allclose(np.asarray(affine_a, np.float64), np.asarray(affine_b, np.float64), rtol=0, atol=tolerance)


# ---------------------------------------------------------------------------------------------------------------
# Intensities and modalities


def check_finite(volume, source):
    """DataError naming ``source`` when ``volume`` holds NaN or infinite voxels."""
    if np.issubdtype(volume.dtype, np.floating):
        bad = np.size(volume) - int(np.count_nonzero(np.isfinite(volume)))
        if bad:
            raise DataError(f"{source}: {bad} voxel(s) are NaN or infinite; expected finite intensities")


def scale_to_uint8(volume, percentiles, source):
    """One modality's volume -> uint8, the same way at training and prediction.

    A uint8 volume is returned as it is. Any other is scaled linearly so that the low percentile of ``percentiles``
    (e.g. ``(0.5, 99.5)``) of its non-zero voxels becomes 0 and the high one 255, clipping beyond; the percentiles
    of non-zero voxels because skull-stripped volumes are mostly zero background, which would otherwise set the low
    end. A volume without a non-zero voxel, or a constant one, gives zeros. DataError naming ``source`` for NaN or
    infinite voxels.
    """
    if volume.dtype == np.uint8:
        return volume
    check_finite(volume, source)
    values = volume[volume != 0]
    if values.size == 0:
        return np.zeros(volume.shape, np.uint8)
    low, high = np.percentile(values.astype(np.float64), percentiles)
    if high <= low:
        return np.zeros(volume.shape, np.uint8)
    scaled = (volume.astype(np.float32) - np.float32(low)) * np.float32(255.0 / (high - low))
    return np.clip(scaled, 0, 255).round().astype(np.uint8)


def stack_channels(volumes):
    """One to three volumes of one shape -> ``[..., 3]``, channel ``c`` from volume ``c mod C``: one modality is
    repeated three times, two give ``(a, b, a)``, three keep their order."""
    if not 1 <= len(volumes) <= 3:
        raise ValueError(f"expected 1 to 3 modalities, got {len(volumes)}")
    return np.stack([volumes[c % len(volumes)] for c in range(3)], axis=-1)


# ---------------------------------------------------------------------------------------------------------------
# Labels


def class_names_of(label_map):
    """The class names of a label map (``((value, name), ...)``) in order of first appearance; ``("tumour",)``
    without one."""
    return tuple(dict.fromkeys(name for _, name in label_map)) or (TUMOUR,)


def label_classes(labels, label_map, source):
    """A label volume -> class ids uint8 (0 background): with a label map, each listed value's class (1..K in order
    of first appearance of the names) and 0 elsewhere; without, 1 wherever the label is above 0. DataError naming
    ``source`` for non-finite or non-integer labels."""
    check_finite(labels, source)
    if np.issubdtype(labels.dtype, np.floating):
        if not np.array_equal(labels, np.round(labels)):
            raise DataError(f"{source}: a label volume holds whole numbers; found fractional values")
        labels = np.round(labels).astype(np.int64)
    if not label_map:
        return (labels > 0).astype(np.uint8)
    names = class_names_of(label_map)
    classes = np.zeros(labels.shape, np.uint8)
    for value, name in label_map:
        classes[labels == value] = names.index(name) + 1
    return classes


def slice_instances(class_slice):
    """A slice's class ids ``[H, W]`` -> instance masks ``[I, H, W]`` uint8 and their classes ``[I]`` int32: each
    8-connected region of each class is one instance (as the LGG reader's masks), largest first within a class."""
    masks, classes = [], []
    for class_id in np.unique(class_slice[class_slice > 0]):
        regions = instances.label_instances(class_slice == class_id)
        masks.append(regions)
        classes.append(np.full(len(regions), class_id, np.int32))
    if not masks:
        return np.zeros((0,) + class_slice.shape, np.uint8), np.zeros((0,), np.int32)
    return np.concatenate(masks), np.concatenate(classes)


# ---------------------------------------------------------------------------------------------------------------
# Slice choice


def parse_slice_choice(text):
    """``"all"``, ``"tumour"`` or ``"every:K"`` -> ``(kind, K)`` (K is 1 for the first two)."""
    kind, _, step = text.partition(":")
    if kind in ("all", "tumour") and not step:
        return kind, 1
    if kind == "every" and step.isdigit() and int(step) >= 1:
        return kind, int(step)
    raise DataError(f"slice choice must be 'all', 'tumour' or 'every:K' (K >= 1), got {text!r}")


def chosen_slices(choice, count, tumour_slices=None):
    """The axial slice indices of a volume of ``count`` slices that ``choice`` keeps; ``tumour_slices`` (indices of
    the slices holding tumour) is needed for ``"tumour"``."""
    kind, step = parse_slice_choice(choice)
    if kind == "tumour":
        return sorted(int(z) for z in tumour_slices)
    return list(range(0, count, step))


# ---------------------------------------------------------------------------------------------------------------
# A case, ready for the model


@dataclasses.dataclass(frozen=True)
class CaseVolume:
    """One case (a patient's volumes), as the model sees it and as its outputs are written back.

    Attributes:
      case_id: the case's name (its patient id for splits).
      image: ``[Z, H, W, 3]`` uint8 axial slices in the canonical layout (module doc), one modality per channel.
      classes: ``[Z, H, W]`` uint8 class ids (0 background), or None for a case without labels.
      affine: ``[4, 4]`` the input's voxel-to-world (RAS mm) affine; shape: the input's spatial shape (3 ints).
      canonical_affine: ``[4, 4]`` the affine of the RAS+ grid the slices were cut from.
      sources: the files (or folders) it was read from, for messages and summaries.
    """

    case_id: str
    image: np.ndarray
    classes: np.ndarray | None
    affine: np.ndarray
    shape: tuple
    canonical_affine: np.ndarray
    sources: tuple = ()

    @property
    def spacing(self):
        """The voxel size in mm along the axes of the axial stack ``[Z, H, W]``."""
        x, y, z = voxel_sizes(self.canonical_affine)
        return np.array([z, y, x])

    @property
    def voxel_ml(self):
        """The volume of one voxel in mL."""
        return voxel_volume_ml(self.affine)

    def to_input_space(self, stack):
        """An axial stack ``[Z, H, W]`` of this case -> the input's voxel grid (``shape``, ``affine``)."""
        return from_canonical(from_axial_slices(stack), self.affine)


def make_case_volume(case_id, modalities, affine, percentiles, labels=None, label_map=(), sources=()):
    """A :class:`CaseVolume` from its modality volumes (``[i, j, k]`` each, one grid of ``affine``, already checked
    to agree) and optional label volume: scaled to uint8 (:func:`scale_to_uint8`), stacked as channels, turned to
    RAS+ and cut into axial slices. ``modalities`` is a list of ``(volume, source)``."""
    scaled = [scale_to_uint8(volume, percentiles, source) for volume, source in modalities]
    stacked, canonical_affine = to_canonical(stack_channels(scaled), affine)  # [X, Y, Z, 3]
    classes = None
    if labels is not None:
        source = sources[-1] if sources else case_id
        classes = axial_slices(to_canonical(label_classes(labels, label_map, source), affine)[0])
    return CaseVolume(case_id=case_id, image=axial_slices(stacked), classes=classes,
                      affine=np.asarray(affine, np.float64), shape=tuple(int(n) for n in modalities[0][0].shape[:3]),
                      canonical_affine=canonical_affine, sources=tuple(sources))


# ---------------------------------------------------------------------------------------------------------------
# 3-D regions


def connected_components_3d(mask):
    """The 26-connected regions of a 3-D mask (the 3-D kin of a slice's 8-connected regions) -> ids ``[same shape]``
    (0 outside, 1..n by size, largest first; uint8 up to 255 regions, else uint16) and ``n``."""
    labels, count = ndimage.label(mask > 0, structure=np.ones((3, 3, 3), bool))
    dtype = np.uint8 if count < 256 else np.uint16
    if count == 0:
        return np.zeros(mask.shape, dtype), 0
    sizes = np.bincount(labels.ravel())[1:]
    order = np.argsort(-sizes, kind="stable")  # region order[i] -> id i + 1
    relabel = np.zeros(count + 1, dtype)
    relabel[order + 1] = np.arange(1, count + 1)
    return relabel[labels], int(count)
