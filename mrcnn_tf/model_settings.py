"""What a model folder records about the data it was trained on: the configuration's ``data`` section (how volumes
become slices: modalities, scaling, label map, slice choice) and the class names.

Evaluation and volume prediction read volumes as training did through this. The places, first found wins:

* an export folder's ``export.json`` (``mrcnn_tf.export``), when it holds a ``"data"`` entry;
* the run folder's ``config.json`` (``mrcnn_tf.runs``): the folder itself, or for an export the run folder it was
  exported into (``RUN/export``, ``RUN/export/<version>``).
"""
import dataclasses
import json
import os

from mrcnn_tf.config import Config, DataConfig
from mrcnn_tf.errors import ConfigError

CONFIG_FILE = "config.json"  # mrcnn_tf.runs.CONFIG_FILE (runs imports TensorFlow; this module does not)
EXPORT_FILE = "export.json"  # mrcnn_tf.export.EXPORT_FILE
SAVED_MODEL_FILE = "saved_model.pb"  # what makes a folder an export


@dataclasses.dataclass(frozen=True)
class RecordedData:
    """The data section and class names a model folder records, and the file they were read from."""

    data: DataConfig
    class_names: tuple
    path: str


def export_version_dir(path):
    """The SavedModel folder that ``path`` names: ``path`` itself when it holds ``saved_model.pb``, else its
    highest integer-named subfolder that does (TF Serving's layout), else None."""
    if os.path.isfile(os.path.join(path, SAVED_MODEL_FILE)):
        return path
    if not os.path.isdir(path):
        return None
    versions = [int(name) for name in os.listdir(path)
                if name.isdigit() and os.path.isfile(os.path.join(path, name, SAVED_MODEL_FILE))]
    return os.path.join(path, str(max(versions))) if versions else None


def _from_export(folder):
    path = os.path.join(folder, EXPORT_FILE)
    if not os.path.isfile(path):
        return None
    try:
        with open(path) as f:
            settings = json.load(f)
    except (OSError, json.JSONDecodeError) as error:
        raise ConfigError(f"{path}: not a readable export description ({error})") from error
    if not isinstance(settings, dict) or "data" not in settings:
        return None
    try:
        data = DataConfig(**settings["data"])
    except TypeError as error:
        raise ConfigError(f"{path}: its 'data' entry is not a data section ({error})") from error
    return RecordedData(data, tuple(settings.get("class_names") or data.class_names), path)


def run_file(model_dir, name):
    """The path of the run folder's file ``name`` for a model folder: the run folder's own, or for an export the
    run's it was exported into (``RUN/export/<version>``, ``RUN/export``, ``RUN``); None when there is none."""
    export = export_version_dir(model_dir)
    if export is None:
        path = os.path.join(model_dir, name)
        return path if os.path.isfile(path) else None  # a run folder holds its own files
    folder = os.path.abspath(export)
    for _ in range(3):  # RUN/export/<version>, RUN/export, RUN
        path = os.path.join(folder, name)
        if os.path.isfile(path):
            return path
        folder = os.path.dirname(folder)
    return None


def recorded_data(model_dir):
    """The :class:`RecordedData` of a run or export folder (module doc), or None when it records none."""
    export = export_version_dir(model_dir)
    if export is not None:
        found = _from_export(export)
        if found is not None:
            return found
    path = run_file(model_dir, CONFIG_FILE)
    if path is None:
        return None
    config = Config.from_json(path)
    return RecordedData(config.data, tuple(config.class_names), path)
