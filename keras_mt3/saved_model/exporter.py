"""`export()`: an MT3 model -> a TensorFlow SavedModel for TF Serving (or any TF runtime).

Under the TensorFlow backend the SavedModel is built directly with `keras.export.ExportArchive`.
Under JAX or PyTorch the weights are handed to a TensorFlow-backend subprocess, which rebuilds
the same model and exports it (`tf_subprocess`): the signatures are TF graphs either way, and
rebuilding keeps them free of jax2tf/XLA-only ops.

The SavedModel is written into a temporary folder beside `path` and renamed into place, so
`path` never holds a half-written model (TF Serving may be watching it).
"""

import dataclasses
import json
import pathlib

from keras_mt3.errors import KerasMT3Error
from keras_mt3.saved_model import signatures as names
from keras_mt3.utils import atomic_folder

DEFAULT_MAX_AUDIO_SECONDS = 600.0


def export(
    model,
    path,
    *,
    request_batch_size=None,
    max_audio_seconds=DEFAULT_MAX_AUDIO_SECONDS,
    decode_batch_size=None,
    max_decode_length=None,
    vocabulary=None,
    include_xla=True,
    overwrite=False,
    progress=None,
    verbose=False,
):
    """Exports `model` as a TensorFlow SavedModel at `path`; returns `path`.

    Signatures (names in `keras_mt3.saved_model.signatures`; see serving/README.md):
    `serving_default` (audio -> notes, no XLA), `decode_tokens` (log-mel -> tokens, no XLA)
    and `decode_xla` (the same tokens, decoding compiled with XLA).

    Args:
        model: an `MT3Transcriber`, or an `MT3Backbone` (then `vocabulary` says which).
        path: the SavedModel folder to create, e.g. `models/mt3/1` for TF Serving.
        request_batch_size: fixed number of clips per request, or None for any.
        max_audio_seconds: longest clip a request may hold; longer ones are rejected with an
            InvalidArgument error. It bounds a request's time and memory.
        decode_batch_size: segments encoded and decoded together (default: the
            transcriber's `decode_batch_size`, else `DEFAULT_DECODE_BATCH_SIZE`, 16). Bounds
            decoding memory per request.
        max_decode_length: most tokens per segment (default: the transcriber's, else the
            backbone's `max_decoder_length`, 1024 for MT3).
        vocabulary: vocabulary name or config (default: the transcriber's, else "mt3").
        include_xla: also export the XLA signature `decode_xla`.
        overwrite: replace an existing `path`, if it is empty or a SavedModel that `export()`
            wrote; any other folder is refused.
        progress: show a progress bar (default: when stderr is a terminal).
        verbose: print the signatures once written.
    """
    import keras

    from keras_mt3.codec import vocabulary as vocabulary_lib
    from keras_mt3.models.mt3_transcriber import DEFAULT_DECODE_BATCH_SIZE

    backbone, model_defaults = _unpack_model(model)
    options = {
        "request_batch_size": _optional_positive_int(request_batch_size, "request_batch_size"),
        "max_audio_seconds": _positive_float(max_audio_seconds, "max_audio_seconds"),
        "decode_batch_size": _optional_positive_int(
            decode_batch_size
            or model_defaults.get("decode_batch_size")
            or DEFAULT_DECODE_BATCH_SIZE,
            "decode_batch_size",
        ),
        "max_decode_length": _optional_positive_int(
            max_decode_length
            or model_defaults.get("max_decode_length")
            or backbone.max_decoder_length,
            "max_decode_length",
        ),
        "include_xla": bool(include_xla),
    }
    vocabulary = vocabulary_lib.get_vocabulary(
        vocabulary or model_defaults.get("vocabulary") or "mt3"
    )
    if options["max_decode_length"] > backbone.max_decoder_length:
        raise KerasMT3Error(
            f"max_decode_length={options['max_decode_length']} exceeds the backbone's "
            f"max_decoder_length={backbone.max_decoder_length}; pass a smaller value"
        )
    path = pathlib.Path(path).expanduser()
    check_export_target(path, overwrite)
    if keras.backend.backend() != "tensorflow":
        from keras_mt3.saved_model.tf_subprocess import export_in_tensorflow_subprocess

        return export_in_tensorflow_subprocess(
            backbone, vocabulary, path, options, overwrite=overwrite, progress=progress
        )
    with atomic_folder(path, lambda: check_export_target(path, overwrite)) as staging:
        _write_saved_model(backbone, vocabulary, staging, options, progress, verbose)
    return path


def _write_saved_model(backbone, vocabulary, folder, options, progress, verbose):
    import keras

    from keras_mt3.saved_model.serving_functions import ServingFunctions
    from keras_mt3.layers.log_mel_spectrogram import LogMelSpectrogram
    from keras_mt3.utils import progress_bar

    functions = ServingFunctions(
        backbone, LogMelSpectrogram(name="log_mel_spectrogram"), vocabulary, **options
    )
    endpoints = functions.endpoints()
    archive = keras.export.ExportArchive()
    archive.track(backbone)
    with progress_bar(
        total=len(endpoints) + 1, desc="exporting", unit="step", enabled=progress
    ) as bar:
        for name, (function, input_signature) in endpoints.items():
            bar.set_postfix_str(f"tracing {name}")
            traced = archive.add_endpoint(name, function, input_signature=input_signature)
            traced.get_concrete_function()
            bar.update(1)
        bar.set_postfix_str("writing")
        archive.write_out(str(folder), verbose=verbose)
        _write_manifest(folder, vocabulary, options, list(endpoints))
        bar.update(1)


def _write_manifest(folder, vocabulary, options, endpoint_names):
    from keras_mt3.constants import SAMPLE_RATE
    from keras_mt3.version import __version__

    audio_io = {"inputs": [names.WAVEFORM, names.LENGTHS], "outputs": list(names.NOTE_OUTPUTS)}
    token_io = {"inputs": [names.ENCODER_INPUTS], "outputs": [names.TOKENS]}
    manifest = {
        "keras_mt3_version": __version__,
        "vocabulary": dataclasses.asdict(vocabulary),
        "sample_rate": SAMPLE_RATE,
        "frames_per_segment": vocabulary.input_frames,
        **{key: value for key, value in options.items() if key != "include_xla"},
        "signatures": {
            name: {
                "needs_xla": names.NEEDS_XLA[name],
                **(token_io if name in (names.DECODE_TOKENS, names.DECODE_XLA) else audio_io),
            }
            for name in endpoint_names
        },
    }
    extra = folder / "assets.extra"
    extra.mkdir(exist_ok=True)
    (extra / names.MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n")


# ---- arguments ------------------------------------------------------------------------------


def _unpack_model(model):
    """`(backbone, defaults)` from a transcriber or a bare backbone."""
    from keras_mt3.models.mt3_backbone import MT3Backbone

    if isinstance(model, MT3Backbone):
        return model, {}
    backbone = getattr(model, "backbone", None)
    if not isinstance(backbone, MT3Backbone):
        raise KerasMT3Error(
            f"export() needs an MT3Transcriber or MT3Backbone, got {type(model).__name__}"
        )
    defaults = {
        "decode_batch_size": getattr(model, "decode_batch_size", None),
        "max_decode_length": getattr(model, "max_decode_length", None),
        "vocabulary": getattr(model, "vocabulary", None),
    }
    return backbone, defaults


def _optional_positive_int(value, name):
    if value is None:
        return None
    if isinstance(value, bool) or not float(value).is_integer() or int(value) < 1:
        raise KerasMT3Error(f"{name} must be a positive integer (or None), got {value!r}")
    return int(value)


def _positive_float(value, name):
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if not number > 0 or number == float("inf"):
        raise KerasMT3Error(f"{name} must be a positive number of seconds, got {value!r}")
    return number


# ---- atomic folder output -------------------------------------------------------------------


def check_export_target(path, overwrite):
    """Raises `KerasMT3Error` unless a SavedModel may be written to `path` (a Path).

    `overwrite` replaces only an empty folder or a SavedModel this package exported (its
    manifest says so), never a folder that may hold anything else.
    """
    from keras_mt3.utils import check_output_parent

    if path.exists() and not overwrite:
        raise KerasMT3Error(
            f"{path} already exists; choose a new folder (TF Serving expects one numbered "
            "folder per model version) or pass overwrite=True (--overwrite)"
        )
    if path.exists() and not path.is_dir():
        raise KerasMT3Error(f"{path} exists and is not a folder; remove it or choose another path")
    if path.is_dir() and any(path.iterdir()) and not is_keras_mt3_export(path):
        raise KerasMT3Error(
            f"{path} is not a SavedModel written by keras-mt3 (no saved_model.pb with "
            f"assets.extra/{names.MANIFEST_FILE}), so overwrite does not replace it; remove it "
            "yourself if it can go, or choose another folder"
        )
    check_output_parent(path)


def is_keras_mt3_export(path):
    """Whether folder `path` holds a SavedModel that `export()` wrote (its manifest is there)."""
    path = pathlib.Path(path)
    manifest = path / "assets.extra" / names.MANIFEST_FILE
    try:
        recorded = json.loads(manifest.read_text())
    except (OSError, ValueError):
        return False
    return (path / "saved_model.pb").is_file() and isinstance(recorded, dict) and (
        "keras_mt3_version" in recorded
    )
