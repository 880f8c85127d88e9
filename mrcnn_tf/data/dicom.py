"""DICOM series in: the files of one series, in order along the slice normal, as a voxel grid with its affine.

A series folder holds one file per slice (any file names; files that are not DICOM, such as a DICOMDIR's
neighbours' notes, are skipped). Slices are ordered by their position along the slice normal
(``ImagePositionPatient`` projected on the cross product of the two ``ImageOrientationPatient`` directions), never
by file name or ``InstanceNumber``. The grid comes out as NIfTI lays it out: ``[columns, rows, slices]`` with a
voxel-to-world affine in RAS mm (DICOM's patient coordinates are LPS, so x and y change sign), which the volume code
(``data.volumes``) then treats as any NIfTI volume.

DataError, naming the folder and the files at fault: no DICOM image, more than one series (or several
orientations or image sizes), two slices at one position, a gap in the positions (a missing slice), a file without
the geometry attributes, a multi-frame file, pixel data that cannot be decoded.

Shape letters: ``C`` columns, ``R`` rows, ``S`` slices.
"""
import dataclasses
import os

import numpy as np
import pydicom
from pydicom.errors import InvalidDicomError

from mrcnn_tf.errors import DataError

GEOMETRY = ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing", "Rows", "Columns")
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
# Two slices closer than this (mm) along the normal are at the same position; a step more than this share larger
# than the series' usual step leaves a slice out.
SAME_POSITION_MM = 1e-3
STEP_TOLERANCE = 0.1


@dataclasses.dataclass(frozen=True)
class Series:
    """One DICOM series as a voxel grid.

    Attributes:
      folder: where it was read from. files: its files, in slice order. datasets: their headers (pydicom
        datasets, pixel data not loaded), in the same order (what a DICOM Segmentation references).
      voxels: ``[C, R, S]`` the stored values after the rescale slope and intercept (uint8 stays uint8 where the
        series has no rescale). affine: ``[4, 4]`` voxel to RAS mm.
    """

    folder: str
    files: tuple
    datasets: tuple
    voxels: np.ndarray
    affine: np.ndarray

    @property
    def series_uid(self):
        return str(self.datasets[0].SeriesInstanceUID)


def is_dicom_file(path):
    """Whether ``path`` is a DICOM file (the ``DICM`` mark after its 128-byte preamble)."""
    try:
        with open(path, "rb") as f:
            return f.read(132)[128:132] == b"DICM"
    except OSError:
        return False


def dicom_files(folder):
    """The DICOM files directly in ``folder`` (hidden files left out), sorted by name."""
    if not os.path.isdir(folder):
        return []
    paths = [os.path.join(folder, name) for name in sorted(os.listdir(folder)) if not name.startswith(".")]
    return [path for path in paths if os.path.isfile(path) and is_dicom_file(path)]


def _read_header(path):
    try:
        return pydicom.dcmread(path, stop_before_pixels=True)
    except (InvalidDicomError, OSError, ValueError, EOFError) as error:
        raise DataError(f"{path}: not a readable DICOM file ({error})") from error


def read_headers(folder):
    """``[(path, dataset)]`` of the folder's DICOM images (files with pixel data), all of one series; DataError
    naming the folder when there is none or several series."""
    headers = [(path, _read_header(path)) for path in dicom_files(folder)]
    headers = [(path, ds) for path, ds in headers if "Rows" in ds]  # images (a DICOMDIR, say, has no rows)
    if not headers:
        raise DataError(f"{folder}: no DICOM image files")
    by_series = {}
    for path, ds in headers:
        by_series.setdefault(str(ds.get("SeriesInstanceUID", "")), []).append(path)
    if len(by_series) > 1:
        listed = "; ".join(f"{uid or '(none)'}: {len(paths)} file(s), e.g. {paths[0]}"
                           for uid, paths in sorted(by_series.items()))
        raise DataError(f"{folder}: files of {len(by_series)} series (SeriesInstanceUID {listed}); expected one "
                        "series per folder")
    return headers


def _geometry(path, ds):
    missing = [name for name in GEOMETRY if name not in ds]
    if missing:
        raise DataError(f"{path}: lacks {missing}; a slice of a volume needs its position and orientation")
    if int(ds.get("NumberOfFrames", 1) or 1) > 1:
        raise DataError(f"{path}: a multi-frame image ({ds.NumberOfFrames} frames); expected one slice per file")
    orientation = np.array([float(v) for v in ds.ImageOrientationPatient], np.float64)
    position = np.array([float(v) for v in ds.ImagePositionPatient], np.float64)
    return orientation, position, (int(ds.Rows), int(ds.Columns))


def order_slices(headers, folder):
    """``headers`` (``[(path, dataset)]`` of one series) sorted along the slice normal, with that normal and the
    positions on it. DataError naming the files for mixed orientations or sizes, two slices at one position, or
    a gap where a slice is missing."""
    geometry = [_geometry(path, ds) for path, ds in headers]
    orientation, _, size = geometry[0]
    for (path, _), (other, _, other_size) in zip(headers, geometry):
        if not np.allclose(other, orientation, atol=1e-4) or other_size != size:
            raise DataError(f"{path}: orientation {other.round(4).tolist()} and size {other_size} differ from "
                            f"{headers[0][0]}'s ({orientation.round(4).tolist()}, {size}); expected one series")
    normal = np.cross(orientation[:3], orientation[3:])
    positions = np.array([position @ normal for _, position, _ in geometry])
    order = np.argsort(positions, kind="stable")
    headers, positions = [headers[i] for i in order], positions[order]
    steps = np.diff(positions)
    for i in np.flatnonzero(steps < SAME_POSITION_MM):
        raise DataError(f"{folder}: {headers[i][0]} and {headers[i + 1][0]} are at the same position "
                        f"({positions[i]:.3f} mm along the slice normal); expected one slice per position")
    if len(steps):
        usual = float(steps.min())  # the series' step: missing slices only make steps longer
        for i in np.flatnonzero(steps > usual * (1 + STEP_TOLERANCE)):
            raise DataError(f"{folder}: a gap of {steps[i]:.3f} mm between {headers[i][0]} and {headers[i + 1][0]} "
                            f"where the series steps {usual:.3f} mm: slice(s) missing")
    return headers, normal, positions


def series_affine(first, last, count, normal):
    """The voxel (column, row, slice) to RAS mm affine of a series from its first and last slices' datasets."""
    orientation = np.array([float(v) for v in first.ImageOrientationPatient], np.float64)
    row_spacing, column_spacing = (float(v) for v in first.PixelSpacing)
    origin = np.array([float(v) for v in first.ImagePositionPatient], np.float64)
    if count > 1:
        step = (np.array([float(v) for v in last.ImagePositionPatient], np.float64) - origin) / (count - 1)
    else:
        step = normal * float(first.get("SpacingBetweenSlices", first.get("SliceThickness", 1.0)) or 1.0)
    affine = np.eye(4)
    affine[:3, 0] = orientation[:3] * column_spacing  # along a row: the next column
    affine[:3, 1] = orientation[3:] * row_spacing  # down a column: the next row
    affine[:3, 2] = step
    affine[:3, 3] = origin
    return LPS_TO_RAS @ affine


def _pixels(path):
    """One slice's stored values ``[R, C]`` after its rescale (DataError naming the file when undecodable)."""
    try:
        ds = pydicom.dcmread(path)
        pixels = ds.pixel_array
    except Exception as error:  # pydicom raises many kinds for compressed data it has no decoder for
        raise DataError(f"{path}: its pixel data cannot be decoded ({type(error).__name__}: {error})") from error
    if pixels.ndim != 2:
        raise DataError(f"{path}: pixel data of shape {pixels.shape}; expected one grey image")
    slope, intercept = float(ds.get("RescaleSlope", 1) or 1), float(ds.get("RescaleIntercept", 0) or 0)
    if (slope, intercept) != (1.0, 0.0):
        return pixels.astype(np.float32) * np.float32(slope) + np.float32(intercept)
    return pixels


def read_series(folder):
    """The :class:`Series` in ``folder`` (module doc for the order and the errors)."""
    headers, normal, _ = order_slices(read_headers(folder), folder)
    slices = [_pixels(path) for path, _ in headers]
    dtypes = {s.dtype for s in slices}
    dtype = slices[0].dtype if len(dtypes) == 1 else np.float32
    voxels = np.stack([s.astype(dtype, copy=False) for s in slices], axis=-1).transpose(1, 0, 2)  # [C, R, S]
    affine = series_affine(headers[0][1], headers[-1][1], len(headers), normal)
    return Series(folder=folder, files=tuple(path for path, _ in headers),
                  datasets=tuple(ds for _, ds in headers), voxels=voxels, affine=affine)


def series_folders(path):
    """How a DICOM input is laid out: ``{"": path}`` for a folder of one series' files, ``{name: sub-folder}`` for a
    case folder whose sub-folders each hold one series (named by modality: ``flair/``, ``t1ce/``...), ``{}`` when
    ``path`` holds neither."""
    if dicom_files(path):
        return {"": path}
    if not os.path.isdir(path):
        return {}
    folders = {name: os.path.join(path, name) for name in sorted(os.listdir(path)) if not name.startswith(".")}
    return {name: folder for name, folder in folders.items() if os.path.isdir(folder) and dicom_files(folder)}
