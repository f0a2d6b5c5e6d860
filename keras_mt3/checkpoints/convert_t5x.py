"""T5X MT3 parameters -> `MT3Backbone` weights, and Keras presets (`config.json` + weights)."""

import json
import os
import pathlib
import shutil
import tempfile

import numpy as np

from keras_mt3.checkpoints.t5x_checkpoint import preview_names
from keras_mt3.errors import CheckpointError
from keras_mt3.errors import PresetError

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.weights.h5"
DEFAULT_VOCABULARY = "mt3"


def t5x_variable_map(backbone):
    """`{t5x parameter name: (backbone variable, shape of the T5X array)}` for every weight.

    T5X stores attention kernels flat (`[hidden, heads*head_dim]`, `[heads*head_dim, hidden]`);
    the backbone keeps heads as their own axis. The flat layout is head-major, so a plain C-order
    reshape converts between the two.
    """
    mapping = {}

    def add(name, variable, t5x_shape=None):
        mapping[name] = (variable, tuple(t5x_shape or variable.shape))

    def add_attention(prefix, attention):
        hidden, heads, head_dim = attention.query_kernel.shape
        for part, variable in (
            ("query", attention.query_kernel),
            ("key", attention.key_kernel),
            ("value", attention.value_kernel),
        ):
            add(f"{prefix}/{part}/kernel", variable, (hidden, heads * head_dim))
        add(f"{prefix}/out/kernel", attention.output_kernel, (heads * head_dim, hidden))

    def add_mlp(prefix, mlp):
        add(f"{prefix}/wi_0/kernel", mlp.gate_kernel)
        add(f"{prefix}/wi_1/kernel", mlp.linear_kernel)
        add(f"{prefix}/wo/kernel", mlp.output_kernel)

    add("encoder/continuous_inputs_projection/kernel", backbone.continuous_inputs_projection.kernel)
    for i, layer in enumerate(backbone.encoder_layers):
        prefix = f"encoder/layers_{i}"
        add(f"{prefix}/pre_attention_layer_norm/scale", layer.pre_attention_layer_norm.scale)
        add_attention(f"{prefix}/attention", layer.attention)
        add(f"{prefix}/pre_mlp_layer_norm/scale", layer.pre_mlp_layer_norm.scale)
        add_mlp(f"{prefix}/mlp", layer.mlp)
    add("encoder/encoder_norm/scale", backbone.encoder_norm.scale)

    add("decoder/token_embedder/embedding", backbone.token_embedder.embeddings)
    for i, layer in enumerate(backbone.decoder_layers):
        prefix = f"decoder/layers_{i}"
        add(
            f"{prefix}/pre_self_attention_layer_norm/scale",
            layer.pre_self_attention_layer_norm.scale,
        )
        add_attention(f"{prefix}/self_attention", layer.self_attention)
        add(
            f"{prefix}/pre_cross_attention_layer_norm/scale",
            layer.pre_cross_attention_layer_norm.scale,
        )
        add_attention(f"{prefix}/encoder_decoder_attention", layer.cross_attention)
        add(f"{prefix}/pre_mlp_layer_norm/scale", layer.pre_mlp_layer_norm.scale)
        add_mlp(f"{prefix}/mlp", layer.mlp)
    add("decoder/decoder_norm/scale", backbone.decoder_norm.scale)
    add("decoder/logits_dense/kernel", backbone.logits_dense.kernel)
    return mapping


def load_t5x_weights(backbone, params):
    """Assigns T5X parameters (`{name: array}`, see `read_t5x_checkpoint`) to `backbone`.

    Every backbone weight must be given and every given parameter used, with matching shapes;
    otherwise nothing is assigned and a `CheckpointError` lists the problems.
    """
    mapping = t5x_variable_map(backbone)
    missing = sorted(set(mapping) - set(params))
    unused = sorted(set(params) - set(mapping))
    wrong_shapes = [
        f"{name}: checkpoint {tuple(np.shape(params[name]))}, model expects {t5x_shape}"
        for name, (_, t5x_shape) in mapping.items()
        if name in params and tuple(np.shape(params[name])) != t5x_shape
    ]
    problems = []
    if missing:
        problems.append(
            f"{len(missing)} weight(s) missing from the checkpoint: {preview_names(missing)}"
        )
    if unused:
        problems.append(
            f"{len(unused)} checkpoint parameter(s) the model has no place for: "
            + preview_names(unused)
        )
    if wrong_shapes:
        problems.append(f"{len(wrong_shapes)} shape mismatch(es): {preview_names(wrong_shapes)}")
    if problems:
        raise CheckpointError(
            "the checkpoint does not match the MT3Backbone configuration ("
            + "; ".join(problems)
            + "). Build the backbone with the checkpoint's configuration (see "
            "`backbone_config_from_t5x`) or use the matching checkpoint."
        )
    for name, (variable, _) in mapping.items():
        variable.assign(np.asarray(params[name], dtype="float32").reshape(variable.shape))


def backbone_config_from_t5x(params):
    """The `MT3Backbone` size arguments implied by a T5X parameter dict's shapes.

    The attention head split cannot be read from the flat kernels; MT3's `head_dim` 64 is
    assumed.
    """
    try:
        vocabulary_size, hidden_dim = params["decoder/token_embedder/embedding"].shape
        input_dim = params["encoder/continuous_inputs_projection/kernel"].shape[0]
        intermediate_dim = params["encoder/layers_0/mlp/wi_0/kernel"].shape[1]
        inner_dim = params["encoder/layers_0/attention/query/kernel"].shape[1]
    except KeyError as error:
        raise CheckpointError(
            f"the checkpoint lacks {error.args[0]!r}; it is not an MT3 checkpoint"
        ) from error
    head_dim = 64
    return {
        "vocabulary_size": int(vocabulary_size),
        "hidden_dim": int(hidden_dim),
        "num_heads": int(inner_dim) // head_dim,
        "head_dim": head_dim,
        "intermediate_dim": int(intermediate_dim),
        "num_encoder_layers": _count_layers(params, "encoder"),
        "num_decoder_layers": _count_layers(params, "decoder"),
        "input_dim": int(input_dim),
    }


def convert_t5x_checkpoint(t5x_dir, output_dir, preset_config=None, progress=None):
    """Converts a T5X MT3 checkpoint into a Keras preset directory; returns its path.

    `preset_config` is a preset spec `{"backbone": {MT3Backbone kwargs}, "vocabulary": name}`;
    sizes it leaves out are read from the checkpoint's shapes. The preset (`config.json` and
    `model.weights.h5`) is written to a temporary folder first and only then moved into place,
    so `output_dir` never holds a half-written preset.
    """
    from keras_mt3.checkpoints.t5x_checkpoint import read_t5x_checkpoint
    from keras_mt3.models.mt3_backbone import MT3Backbone

    preset_config = dict(preset_config or {})
    params = read_t5x_checkpoint(t5x_dir, progress=progress)
    backbone_config = {**backbone_config_from_t5x(params), **preset_config.get("backbone", {})}
    backbone = MT3Backbone(**backbone_config)
    load_t5x_weights(backbone, params)
    vocabulary = preset_config.get("vocabulary", DEFAULT_VOCABULARY)
    return save_preset(backbone, output_dir, vocabulary)


def save_preset(backbone, output_dir, vocabulary=DEFAULT_VOCABULARY):
    """Writes `config.json` + `model.weights.h5` for `backbone` into `output_dir` atomically."""
    output_dir = pathlib.Path(output_dir).expanduser()
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = pathlib.Path(tempfile.mkdtemp(prefix=f".{output_dir.name}.", dir=output_dir.parent))
    try:
        config = {"backbone": backbone.get_config(), "vocabulary": _vocabulary_name(vocabulary)}
        (staging / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n")
        backbone.save_weights(str(staging / WEIGHTS_FILE))
        if output_dir.exists():
            # Weights first: a preset is only picked up once its config.json is in place.
            for name in (WEIGHTS_FILE, CONFIG_FILE):
                os.replace(staging / name, output_dir / name)
        else:
            os.replace(staging, output_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return output_dir


def load_backbone_from_preset_dir(directory):
    """Builds the backbone saved by `save_preset`; returns `(backbone, vocabulary name)`."""
    from keras_mt3.models.mt3_backbone import MT3Backbone

    directory = pathlib.Path(directory).expanduser()
    config_path, weights_path = directory / CONFIG_FILE, directory / WEIGHTS_FILE
    for path in (config_path, weights_path):
        if not path.is_file():
            raise PresetError(
                f"{directory} is not a keras-mt3 preset: {path.name} is missing. Convert a T5X "
                "checkpoint with `keras_mt3.checkpoints.convert_t5x.convert_t5x_checkpoint` first."
            )
    try:
        config = json.loads(config_path.read_text())
        backbone = MT3Backbone.from_config(config["backbone"])
    except (ValueError, KeyError, TypeError) as error:
        raise PresetError(
            f"{config_path} is not a valid keras-mt3 preset config ({error}). Convert the "
            "checkpoint again."
        ) from error
    problem = None
    try:
        backbone.load_weights(str(weights_path))
        # Keras silently ignores arrays the model has no place for; count them ourselves.
        stored = _count_stored_arrays(weights_path)
        if stored != len(backbone.weights):
            problem = f"the file holds {stored} arrays, the model has {len(backbone.weights)}"
    except Exception as error:  # h5py / Keras raise many types for a bad or mismatched file
        problem = f"{type(error).__name__}: {error}"
    if problem:
        raise PresetError(
            f"could not load {weights_path} into the backbone described by {config_path.name} "
            f"({problem}). The preset is corrupt or its files do not belong together; convert "
            "the checkpoint again."
        )
    return backbone, config.get("vocabulary", DEFAULT_VOCABULARY)


def _count_stored_arrays(weights_path):
    import h5py

    datasets = []
    with h5py.File(weights_path, "r") as handle:
        handle.visititems(lambda _, item: datasets.append(isinstance(item, h5py.Dataset)))
    return sum(datasets)


def _vocabulary_name(vocabulary):
    return vocabulary if isinstance(vocabulary, str) else vocabulary.name


def _count_layers(params, stack):
    indices = {name.split("/")[1] for name in params if name.startswith(f"{stack}/layers_")}
    return len(indices)
