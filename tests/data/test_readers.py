"""mrcnn_tf/data/readers.py, the registry of dataset formats: what a path is taken for, a forced format, and the
errors for a path or a format that is not there. (Each reader's own detection and reading: test_lgg.py,
test_coco_reader.py, test_folder_reader.py.)"""
import pytest
from conftest import write_lgg_folder

from mrcnn_tf.data import readers
from mrcnn_tf.data.coco import CocoReader
from mrcnn_tf.data.folder import FolderReader
from mrcnn_tf.data.items import Item
from mrcnn_tf.data.lgg import LGGReader
from mrcnn_tf.data.nifti import NiftiReader
from mrcnn_tf.errors import DataError


def test_one_reader_per_format():
    assert readers.FORMATS == ("lgg", "coco", "folder", "nifti")
    assert (LGGReader.format, CocoReader.format, FolderReader.format, NiftiReader.format) == readers.FORMATS


def test_an_lgg_folder_is_the_default_and_a_forced_format_wins(tmp_path):
    write_lgg_folder(str(tmp_path))
    assert readers.detect_format(str(tmp_path)) == "lgg"
    reader = readers.open_dataset(str(tmp_path))
    assert isinstance(reader, LGGReader) and len(reader.items) == 6
    assert all(isinstance(item, Item) for item in reader.items)
    with pytest.raises(DataError, match="images"):  # forced: the folder reader looks for images/ + masks/
        readers.open_dataset(str(tmp_path), "folder")


def test_images_and_masks_folders_are_the_folder_format_even_beside_a_coco_file(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    (tmp_path / "export_coco.json").write_text("{}")
    assert readers.detect_format(str(tmp_path)) == "folder"


def test_a_missing_path_is_named(tmp_path):
    missing = str(tmp_path / "nowhere")
    with pytest.raises(DataError, match="no such data folder or file") as error:
        readers.open_dataset(missing)
    assert missing in str(error.value)


def test_an_unknown_format_is_named_with_the_known_ones(tmp_path):
    with pytest.raises(DataError, match="unknown data format 'dicom'; expected one of .*'lgg'.*'nifti'.* or 'auto'"):
        readers.open_dataset(str(tmp_path), "dicom")


def test_nifti_cases_are_found_by_what_the_folder_holds_and_take_the_data_section(tmp_path):
    from volume_data import CROP, sample_stack, write_brats_case, write_nnunet_case

    from mrcnn_tf.config import DataConfig

    images, labels = sample_stack(crop=CROP)
    brats = write_brats_case(str(tmp_path / "brats"), "C1", images, labels)
    write_nnunet_case(str(tmp_path / "nnunet"), "C1", images, labels)
    for path in (str(tmp_path / "brats"), brats, str(tmp_path / "nnunet"), str(tmp_path / "nnunet" / "imagesTr"),
                 str(tmp_path / "brats" / "C1" / "C1_t1.nii.gz")):
        assert readers.detect_format(path) == "nifti", path
    reader = readers.open_dataset(str(tmp_path / "brats"), "auto", DataConfig(modalities=("t1ce",), slices="tumour"))
    assert isinstance(reader, NiftiReader) and reader.modalities == ("t1ce",) and len(reader.items) == 3
    assert readers.volume_options(None) == {}
    write_lgg_folder(str(tmp_path / "lgg"))
    assert readers.detect_format(str(tmp_path / "lgg")) == "lgg"  # TIFF patient folders stay lgg
    with pytest.raises(DataError, match="no NIfTI cases found"):
        readers.open_dataset(str(tmp_path / "lgg"), "nifti")
