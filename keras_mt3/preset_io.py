"""Keras presets: one folder per model, in keras-hub's layout, saved and loaded by class name.

A preset folder holds

- `config.json`: `keras.saving.serialize_keras_object(model)`, which names the registered class
  (`"keras_mt3>MT3Transcriber"`) and its config, the backbone's nested inside;
- `model.weights.h5`: the weights, as `save_weights()` writes them, of the model or, for a task
  model with a `backbone` (all of whose weights are the backbone's), of the backbone: as in
  keras-hub, and free of the optimizer state a compiled model would add;
- `metadata.json`: the keras-mt3 and Keras versions, the date, the parameter count and, for a
  converted checkpoint, what it was converted from (`source`).

Nothing here imports a model class or knows T5X: `load_preset_dir` deserializes whatever
registered class the config names. `load` takes a preset folder or a `hf://owner/repo` or
`kaggle://owner/model/framework/variation[/version]` handle (downloaded by huggingface_hub or
kagglehub, the `hf` and `kaggle` extras). Preset names and T5X checkpoint folders are the
converter's (`keras_mt3.checkpoints.convert_t5x.load_preset`, what `MT3Transcriber.from_preset`
calls), which comes here for everything else.
"""

import datetime
import json
import os
import pathlib

from keras_mt3.errors import PresetError
from keras_mt3.utils import atomic_folder

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.weights.h5"
METADATA_FILE = "metadata.json"
HF_PREFIX = "hf://"
KAGGLE_PREFIX = "kaggle://"
# Not part of a preset: how the model was last compiled belongs to a training run.
_UNSAVED_CONFIG_KEYS = ("compile_config",)


def load(source, *, expected=None, **overrides):
    """The model of a preset folder or a `hf://` / `kaggle://` handle.

    Args:
        source: a preset folder (see the module docstring) or a hub handle.
        expected: the class the model must be (an instance of).
        **overrides: config entries to replace, e.g. `decode_batch_size=2`.

    Raises:
        PresetError: the source is missing, unreadable, not a preset or holds another class.
    """
    text = os.fspath(source)
    if text.startswith((HF_PREFIX, KAGGLE_PREFIX)):
        model = load_preset_dir(download_preset(text), **overrides)
    elif is_preset_dir(source):
        model = load_preset_dir(source, **overrides)
    else:
        raise PresetError(f"{text} is neither a Keras preset folder nor a hub handle")
    if expected is not None and not isinstance(model, expected):
        raise PresetError(
            f"{text} holds a {type(model).__name__}, not a {expected.__name__}; load it with "
            f"{type(model).__name__}.from_preset"
        )
    return model


def is_keras_preset(source):
    """Whether `source` names a Keras preset: a hub handle or a folder with a `config.json`."""
    text = os.fspath(source)
    return text.startswith((HF_PREFIX, KAGGLE_PREFIX)) or is_preset_dir(text)


def is_preset_dir(directory):
    """Whether `directory` is a folder holding a preset's `config.json`."""
    return (pathlib.Path(directory).expanduser() / CONFIG_FILE).is_file()


# ---- save --------------------------------------------------------------------------------


def save_to_preset(model, directory, *, overwrite=True, source=None):
    """Writes `model` as a preset folder `directory`, atomically; returns its path.

    The folder appears complete or not at all (written beside it, then renamed). With
    `overwrite`, an existing preset there is replaced; a folder that is not a preset is never
    touched. `source` is recorded in the metadata (see `read_metadata`).

    Raises:
        PresetError: `directory` exists and may not be replaced.
    """
    import keras

    from keras_mt3.version import __version__

    directory = pathlib.Path(directory).expanduser()
    check_preset_target(directory, overwrite)
    config = keras.saving.serialize_keras_object(model)
    for key in _UNSAVED_CONFIG_KEYS:
        config.pop(key, None)
    metadata = {
        "keras_mt3_version": __version__,
        "keras_version": keras.__version__,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "class_name": config.get("registered_name") or config.get("class_name"),
        "parameter_count": int(model.count_params()),
    }
    if source is not None:
        metadata["source"] = source
    owner = _weights_owner(model)
    if len(owner.weights) != len(model.weights):
        raise PresetError(
            f"{type(model).__name__} has weights outside its backbone, which a preset does not "
            "hold; save it with model.save(PATH.keras) instead"
        )
    with atomic_folder(directory, lambda: check_preset_target(directory, overwrite)) as staging:
        (staging / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n")
        owner.save_weights(str(staging / WEIGHTS_FILE))
        (staging / METADATA_FILE).write_text(json.dumps(metadata, indent=2) + "\n")
    return directory


def check_preset_target(directory, overwrite):
    """Raises PresetError unless a preset may be written to folder `directory`: it does not
    exist, is empty, or (with `overwrite`) holds a preset."""
    directory = pathlib.Path(directory).expanduser()
    if directory.exists() and not directory.is_dir():
        raise PresetError(f"{directory} exists and is not a folder; choose another path")
    if not directory.is_dir() or not any(directory.iterdir()):
        return
    if not is_preset_dir(directory):
        raise PresetError(
            f"{directory} is not empty and holds no preset ({CONFIG_FILE}), so it is never "
            "replaced; choose a new or empty folder"
        )
    if not overwrite:
        raise PresetError(
            f"{directory} already holds a preset; choose a new folder or allow overwriting "
            "(overwrite=True, --overwrite)"
        )


# ---- load --------------------------------------------------------------------------------


def load_preset_dir(directory, **overrides):
    """Builds the model saved in preset folder `directory` and loads its weights.

    `overrides` replace entries of the saved config (e.g. `batch_size`).

    Raises:
        PresetError: a file is missing or unreadable, the config names an unknown class, or
            the weights do not fit the model.
    """
    import keras

    directory = pathlib.Path(directory).expanduser()
    config_path, weights_path = directory / CONFIG_FILE, directory / WEIGHTS_FILE
    for path in (config_path, weights_path):
        if not path.is_file():
            raise PresetError(
                f"{directory} is not a keras-mt3 preset: {path.name} is missing. Save one with "
                "`model.save_to_preset(DIR)` or convert a T5X checkpoint with "
                "`keras-mt3 convert T5X_DIR DIR`."
            )
    try:
        config = json.loads(config_path.read_text())
        if not isinstance(config, dict) or "class_name" not in config:
            raise ValueError("it names no class; it may be from an older keras-mt3")
        if overrides:
            config = dict(config, config={**config["config"], **overrides})
        model = keras.saving.deserialize_keras_object(config)
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise PresetError(
            f"{config_path} is not a valid keras-mt3 preset config ({error}). Save or convert "
            "the preset again."
        ) from error
    problem = None
    owner = _weights_owner(model)
    try:
        owner.load_weights(str(weights_path))
        # Keras silently ignores arrays the model has no place for; count them ourselves.
        stored = _count_stored_arrays(weights_path)
        if stored != len(owner.weights):
            problem = f"the file holds {stored} arrays, the model has {len(owner.weights)}"
    except Exception as error:  # h5py / Keras raise many types for a bad or mismatched file
        problem = f"{type(error).__name__}: {error}"
    if problem:
        raise PresetError(
            f"could not load {weights_path} into the model described by {config_path.name} "
            f"({problem}). The preset is corrupt or its files do not belong together; save or "
            "convert it again."
        )
    return model


def _weights_owner(model):
    return getattr(model, "backbone", None) or model


def read_metadata(directory):
    """The `metadata.json` of preset folder `directory` as a dict; {} if absent or unreadable."""
    try:
        metadata = json.loads((pathlib.Path(directory) / METADATA_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return metadata if isinstance(metadata, dict) else {}


def _count_stored_arrays(weights_path):
    """How many arrays a Keras `.weights.h5` file holds."""
    import h5py

    datasets = []
    with h5py.File(weights_path, "r") as handle:
        handle.visititems(lambda _, item: datasets.append(isinstance(item, h5py.Dataset)))
    return sum(datasets)


# ---- hubs --------------------------------------------------------------------------------


def download_preset(handle):
    """The local folder of hub handle `hf://owner/repo` or
    `kaggle://owner/model/framework/variation[/version]`, fetched into that hub's own cache
    (or found there: both honour their offline settings, `HF_HUB_OFFLINE=1` and a versioned
    Kaggle handle already cached)."""
    if handle.startswith(HF_PREFIX):
        repo = handle[len(HF_PREFIX) :].strip("/")
        if repo.count("/") != 1:
            raise PresetError(f"{handle!r} is not a Hugging Face handle: use hf://OWNER/REPO")
        hub = _import_hub("huggingface_hub", "hf", handle)
        fetch = lambda: hub.snapshot_download(repo_id=repo)  # noqa: E731
    else:
        slug = handle[len(KAGGLE_PREFIX) :].strip("/")
        if slug.count("/") not in (3, 4):
            raise PresetError(
                f"{handle!r} is not a Kaggle model handle: use "
                "kaggle://OWNER/MODEL/FRAMEWORK/VARIATION[/VERSION]"
            )
        hub = _import_hub("kagglehub", "kaggle", handle)
        fetch = lambda: hub.model_download(slug)  # noqa: E731
    try:
        return pathlib.Path(fetch())
    except Exception as error:  # each hub raises its own types for offline, missing, denied
        raise PresetError(
            f"could not fetch preset {handle} ({type(error).__name__}: {error}). Check the "
            "handle and the network, or download the folder yourself and pass its path."
        ) from error


def _import_hub(module, extra, handle):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise PresetError(
            f"loading {handle} needs the {module} package: pip install 'keras-mt3[{extra}]'"
        ) from error
