"""Small volumes the volume tests make themselves: NIfTI cases stacked from the bundled sample's slices of a
patient (``datasets/sample``), and DICOM series written with pydicom.

The sample's TIFFs go into RAS+ volumes exactly as ``datasets/lgg_to_nifti.py`` writes them (the test of that script
checks it against these), so the nifti reader must give back the TIFFs' own slices.
"""
import os

import nibabel as nib
import numpy as np
import pydicom
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

from mrcnn_tf.data import lgg, volumes

PROJECT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLE = os.path.join(PROJECT, "datasets", "sample")
SAMPLE_PATIENT = "TCGA_HT_7680"  # 8 slices, 3 with tumour
LGG_CHANNELS = ("t1", "flair", "t1ce")
SPACING = (0.9, 0.8, 3.0)  # column (x), row (y), slice (z) in mm
CROP = (128, 96, 64)  # top, left, size: a 64-px window around the sample patient's tumour (slices 1-3)


def sample_items(patient=SAMPLE_PATIENT):
    """The sample's LGG items of one patient, in slice order."""
    return [item for item in lgg.list_slices(SAMPLE) if item.patient == patient]


def sample_stack(patient=SAMPLE_PATIENT, crop=None):
    """A sample patient's slices as axial stacks: images ``[Z, H, W, 3]`` uint8 and labels ``[Z, H, W]`` uint8 0/1;
    ``crop`` ``(top, left, size)`` cuts a ``size x size`` window of every slice (faster tests; :data:`CROP` holds
    the sample patient's tumour)."""
    images, labels = [], []
    for item in sample_items(patient):
        image, masks = lgg.read_slice(item)
        images.append(image)
        labels.append(masks.any(axis=0).astype(np.uint8) if len(masks) else np.zeros(image.shape[:2], np.uint8))
    images, labels = np.stack(images), np.stack(labels)
    if crop is not None:
        top, left, size = crop
        images, labels = images[:, top:top + size, left:left + size], labels[:, top:top + size, left:left + size]
    return np.ascontiguousarray(images), np.ascontiguousarray(labels)


def canonical_affine(spacing=SPACING, origin=(0.0, 0.0, 0.0)):
    """A RAS+ affine with the voxel size ``spacing`` (x, y, z mm)."""
    affine = np.diag([float(s) for s in spacing] + [1.0])
    affine[:3, 3] = origin
    return affine


def save_nifti(path, volume, affine):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    nib.save(nib.Nifti1Image(np.ascontiguousarray(volume), affine), path)
    return path


def write_brats_case(root, case_id, images, labels, affine=None, channels=LGG_CHANNELS, label=True):
    """``root/<case_id>/<case_id>_<channel>.nii.gz`` per channel of an axial stack ``[Z, H, W, C]`` and the label
    ``<case_id>_seg.nii.gz`` (RAS+ volumes of ``affine``). Returns the case folder."""
    affine = canonical_affine() if affine is None else affine
    folder = os.path.join(root, case_id)
    grid = volumes.from_axial_slices(images)  # [X, Y, Z, C]
    for c, name in enumerate(channels):
        save_nifti(os.path.join(folder, f"{case_id}_{name}.nii.gz"), grid[..., c], affine)
    if label:
        save_nifti(os.path.join(folder, f"{case_id}_seg.nii.gz"), volumes.from_axial_slices(labels), affine)
    return folder


def write_nnunet_case(root, case_id, images, labels, affine=None, four_d=False):
    """nnU-Net's ``imagesTr/<case_id>_000c.nii.gz`` and ``labelsTr/<case_id>.nii.gz``, or with ``four_d`` the
    Decathlon's one 4-D ``imagesTr/<case_id>.nii.gz`` (channels last)."""
    affine = canonical_affine() if affine is None else affine
    grid = volumes.from_axial_slices(images)  # [X, Y, Z, C]
    if four_d:
        save_nifti(os.path.join(root, "imagesTr", f"{case_id}.nii.gz"), grid, affine)
    else:
        for c in range(grid.shape[-1]):
            save_nifti(os.path.join(root, "imagesTr", f"{case_id}_{c:04d}.nii.gz"), grid[..., c], affine)
    save_nifti(os.path.join(root, "labelsTr", f"{case_id}.nii.gz"), volumes.from_axial_slices(labels), affine)
    return root


def write_dicom_series(folder, volume, spacing=SPACING, origin=(10.0, -20.0, 30.0), series_uid=None, names=None,
                       study_uid=None, description="FLAIR"):
    """Write a DICOM series (MR Image Storage, one file per slice) of an axial stack ``volume`` ``[Z, H, W]``
    (uint16 or uint8): standard axial orientation (rows to the patient's left, columns posterior), slice ``z`` at
    ``origin + z * spacing[2]`` along the feet-to-head axis. ``names``: the file name of each slice (default: in
    reverse slice order, so that file order is not slice order). Returns the file paths in slice order."""
    os.makedirs(folder, exist_ok=True)
    series_uid = series_uid or generate_uid()
    study_uid = study_uid or "1.2.826.0.1.3680043.8.498.1"
    names = names or [f"IM{len(volume) - z:04d}" for z in range(len(volume))]
    frame_uid = "1.2.826.0.1.3680043.8.498.2"
    paths = []
    for z, pixels in enumerate(volume):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = MRImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = pydicom.Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = MRImageStorage, meta.MediaStorageSOPInstanceUID
        ds.PatientName, ds.PatientID, ds.PatientBirthDate, ds.PatientSex = "Test^Volume", "VOL001", "", "O"
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study_uid, series_uid, frame_uid
        ds.StudyDate, ds.StudyTime, ds.StudyID, ds.AccessionNumber = "20240101", "120000", "1", ""
        ds.ReferringPhysicianName, ds.Modality, ds.SeriesNumber, ds.InstanceNumber = "", "MR", 7, z + 1
        ds.SeriesDescription, ds.Manufacturer = description, "tests"
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.ImagePositionPatient = [origin[0], origin[1], origin[2] + z * spacing[2]]
        ds.PixelSpacing = [spacing[1], spacing[0]]  # row spacing, column spacing
        ds.SliceThickness = spacing[2]
        ds.Rows, ds.Columns = pixels.shape
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        bits = 8 if pixels.dtype == np.uint8 else 16
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = bits, bits, bits - 1, 0
        ds.PixelData = np.ascontiguousarray(pixels.astype(np.uint8 if bits == 8 else np.uint16)).tobytes()
        path = os.path.join(folder, names[z])
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths

