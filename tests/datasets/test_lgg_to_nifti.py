"""datasets/lgg_to_nifti.py: the bundled sample converted to NIfTI cases in both layouts reads back, slice for slice,
as the TIFF folders' own examples, with the voxel size asked for; as a command and with its errors."""
import importlib.util
import json
import os
import subprocess
import sys

import nibabel as nib
import numpy as np
import pytest

from mrcnn_tf.config import DataConfig
from mrcnn_tf.data import lgg, readers

PROJECT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(PROJECT, "datasets", "lgg_to_nifti.py")
SAMPLE = os.path.join(PROJECT, "datasets", "sample")


def load_script():
    spec = importlib.util.spec_from_file_location("lgg_to_nifti", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def tiff_examples():
    reader = lgg.LGGReader(SAMPLE)
    return reader.items, [readers.load_example(reader, item, 128, 4) for item in reader.items]


@pytest.mark.parametrize("layout, data", [("brats", DataConfig(modalities=("t1", "flair", "t1ce"))),
                                          ("nnunet", DataConfig())])
def test_the_sample_converted_reads_back_as_the_tiff_examples(tmp_path, tiff_examples, layout, data):
    items, expected = tiff_examples
    cases = load_script().convert(SAMPLE, str(tmp_path), layout, spacing=(0.9, 0.9, 3.5))
    assert cases == list(dict.fromkeys(item.patient for item in items))  # one case per patient, named by its id
    reader = readers.open_dataset(str(tmp_path), "auto", data)
    assert reader.format == "nifti" and len(reader.items) == len(items) == 68
    for item, nifti_item, want in zip(items, reader.items, expected):
        assert nifti_item.patient == item.patient
        got = readers.load_example(reader, nifti_item, 128, 4)
        for key in want:
            np.testing.assert_array_equal(got[key], want[key], err_msg=f"{item.image_path} {key}")
    case = reader.case_volume(cases[0])
    np.testing.assert_allclose(case.spacing, [3.5, 0.9, 0.9])
    if layout == "nnunet":
        dataset = json.loads((tmp_path / "dataset.json").read_text())
        assert dataset["channel_names"] == {"0": "t1", "1": "flair", "2": "t1ce"} and dataset["numTraining"] == 6


def test_the_command_writes_the_patients_asked_for(tmp_path):
    out = tmp_path / "brats"
    result = subprocess.run([sys.executable, SCRIPT, "--data", SAMPLE, "--out", str(out), "--layout", "brats",
                             "--spacing", "1", "1", "2", "--patients", "TCGA_HT_7680", "TCGA_CS_5396"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "2 case(s) written" in result.stdout and "--modalities t1,flair,t1ce" in result.stdout
    assert sorted(os.listdir(out)) == ["TCGA_CS_5396", "TCGA_HT_7680"]
    assert sorted(os.listdir(out / "TCGA_HT_7680")) == [f"TCGA_HT_7680_{n}.nii.gz" for n in ("flair", "seg", "t1",
                                                                                               "t1ce")]
    image = nib.load(str(out / "TCGA_HT_7680" / "TCGA_HT_7680_flair.nii.gz"))
    assert image.shape == (256, 256, 8) and image.get_data_dtype() == np.uint8
    np.testing.assert_allclose(image.affine, np.diag([1.0, 1.0, 2.0, 1.0]))
    missing = subprocess.run([sys.executable, SCRIPT, "--data", SAMPLE, "--out", str(tmp_path / "x"), "--layout",
                              "nnunet", "--patients", "TCGA_XX_0000"], capture_output=True, text=True, timeout=300)
    assert missing.returncode == 2 and "no slices of the patient(s) ['TCGA_XX_0000']" in missing.stderr
