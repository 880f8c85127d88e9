"""Build NIfTI cases from an LGG folder (Kaggle's lgg-mri-segmentation ``kaggle_3m``, or ``datasets/sample``).

    python datasets/lgg_to_nifti.py --data datasets/sample --out /tmp/lgg_brats --layout brats
    python datasets/lgg_to_nifti.py --data ~/data/kaggle_3m --out /tmp/lgg_nnunet --layout nnunet --spacing 1 1 3

Each patient becomes one case, named by its patient id (``TCGA_CS_4942``, as the lgg reader names patients, so a
run's ``splits.json`` selects the same patients in both forms). Its slices, in slice-number order, are stacked into
volumes, one per channel of the TIFFs: pre-contrast (``t1``), FLAIR (``flair``) and post-contrast (``t1ce``), uint8
as they are; the masks become the label volume (1 = tumour). The volumes are written in the canonical orientation
(RAS+) so that the nifti reader cuts exactly the TIFFs' slices out of them again (``mrcnn_tf.data.volumes``):
slice number increasing from inferior to superior, the TIFFs' rows from anterior to posterior and columns from the
patient's right to left. The TIFFs carry no voxel size: ``--spacing`` gives it (column, row and slice spacing in
mm; millilitres follow it).

Layouts::

    brats:   OUT/<CASE>/<CASE>_t1.nii.gz, <CASE>_flair.nii.gz, <CASE>_t1ce.nii.gz, <CASE>_seg.nii.gz
    nnunet:  OUT/imagesTr/<CASE>_0000.nii.gz (t1), _0001 (flair), _0002 (t1ce); OUT/labelsTr/<CASE>.nii.gz;
             OUT/dataset.json

The nifti reader's default channel order is the channel number for nnU-Net and the alphabetical order of the names
for BraTS: give ``--modalities t1,flair,t1ce`` with the BraTS layout to keep the TIFFs' channel order.
"""
import argparse
import json
import os
import sys

import nibabel as nib
import numpy as np

from mrcnn_tf.data import lgg, volumes
from mrcnn_tf.errors import DataError, run_command
from mrcnn_tf.staging import StagedFiles

LGG_CHANNELS = ("t1", "flair", "t1ce")  # the TIFFs' channels: pre-contrast, FLAIR, post-contrast
TIFF_CHANNEL_ORDER = ",".join(LGG_CHANNELS)


def patient_slices(root, patients=None):
    """``{patient id: [Item, ...]}`` of the LGG folder ``root`` in slice order, for ``patients`` (ids) or all."""
    by_patient = {}
    for item in lgg.list_slices(root):
        if patients is None or item.patient in patients:
            by_patient.setdefault(item.patient, []).append(item)
    missing = sorted(set(patients or ()) - set(by_patient))
    if missing:
        raise DataError(f"{root}: no slices of the patient(s) {missing}")
    return by_patient


def stack_patient(items):
    """A patient's slices -> axial stacks ``[Z, H, W, 3]`` uint8 (images) and ``[Z, H, W]`` uint8 (labels 0/1)."""
    images, labels = [], []
    for item in items:
        image, masks = lgg.read_slice(item)
        if images and image.shape != images[0].shape:
            raise DataError(f"{item.image_path}: size {image.shape[:2]} differs from {items[0].image_path}'s "
                            f"{images[0].shape[:2]}; the slices of a volume share one size")
        images.append(image)
        labels.append(masks.any(axis=0).astype(np.uint8) if len(masks) else np.zeros(image.shape[:2], np.uint8))
    return np.stack(images), np.stack(labels)


def write_case(out, layout, case_id, images, labels, spacing):
    """Write one case's volumes (module doc) in ``layout``; the files of each folder appear together."""
    affine = np.diag([float(s) for s in spacing] + [1.0])  # RAS+: the canonical grid itself
    channels = volumes.from_axial_slices(images)  # [X, Y, Z, 3]
    if layout == "brats":
        files = {os.path.join(out, case_id, f"{case_id}_{name}.nii.gz"): channels[..., c]
                 for c, name in enumerate(LGG_CHANNELS)}
        files[os.path.join(out, case_id, f"{case_id}_seg.nii.gz")] = volumes.from_axial_slices(labels)
    else:
        files = {os.path.join(out, "imagesTr", f"{case_id}_{c:04d}.nii.gz"): channels[..., c]
                 for c in range(len(LGG_CHANNELS))}
        files[os.path.join(out, "labelsTr", f"{case_id}.nii.gz")] = volumes.from_axial_slices(labels)
    for folder in dict.fromkeys(os.path.dirname(path) for path in files):
        with StagedFiles(folder) as stage:
            for path, volume in files.items():
                if os.path.dirname(path) == folder:
                    image = nib.Nifti1Image(np.ascontiguousarray(volume), affine)
                    nib.save(image, stage.path(os.path.basename(path)))


def write_dataset_json(out, case_ids):
    """nnU-Net's ``dataset.json``: channel names, labels, the number of training cases, the file ending."""
    content = {"name": "LGG from TIFF slices", "channel_names": {str(c): n for c, n in enumerate(LGG_CHANNELS)},
               "labels": {"background": 0, "tumour": 1}, "numTraining": len(case_ids), "file_ending": ".nii.gz"}
    with open(os.path.join(out, "dataset.json"), "w") as f:
        json.dump(content, f, indent=1)


def convert(data, out, layout, spacing=(1.0, 1.0, 3.0), patients=None, verbose=False):
    """Convert the LGG folder ``data`` into NIfTI cases under ``out`` (module doc); returns the case ids."""
    if layout not in ("brats", "nnunet"):
        raise DataError(f"layout must be brats or nnunet, got {layout!r}")
    by_patient = patient_slices(data, patients)
    for number, (case_id, items) in enumerate(by_patient.items(), start=1):
        images, labels = stack_patient(items)
        write_case(out, layout, case_id, images, labels, spacing)
        if verbose:
            print(f"{number}/{len(by_patient)} {case_id}: {len(items)} slices", file=sys.stderr)
    if layout == "nnunet":
        write_dataset_json(out, list(by_patient))
    return list(by_patient)


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="LGG folder: patient folders of X.tif + X_mask.tif")
    p.add_argument("--out", required=True, help="folder to write the cases into")
    p.add_argument("--layout", required=True, choices=("brats", "nnunet"))
    p.add_argument("--spacing", type=float, nargs=3, default=(1.0, 1.0, 3.0), metavar=("X", "Y", "Z"),
                   help="column, row and slice spacing in mm (default 1 1 3)")
    p.add_argument("--patients", nargs="+", metavar="ID", help="only these patient ids (e.g. TCGA_CS_4942)")
    args = p.parse_args(argv)
    if min(args.spacing) <= 0:
        p.error(f"--spacing must be positive, got {args.spacing}")
    return args


def main(argv=None):
    args = parse_args(argv)
    patients = set(args.patients) if args.patients else None

    def run():
        return convert(args.data, args.out, args.layout, args.spacing, patients, verbose=True)

    hint = "" if args.layout == "nnunet" else f" (train and evaluate with --modalities {TIFF_CHANNEL_ORDER})"
    return run_command(run, lambda cases: f"{len(cases)} case(s) written to {args.out}{hint}")


if __name__ == "__main__":
    sys.exit(main())
