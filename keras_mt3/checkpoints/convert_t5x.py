"""T5X MT3 checkpoints -> `MT3Transcriber`s and Keras presets.

The one place that knows how T5X names and lays out MT3's weights, and `load_preset`, what
`MT3Transcriber.from_preset` calls. It imports no model class: the caller hands over the class
to build (`MT3Transcriber`, whose `backbone_cls` builds the backbone), so the package graph
stays acyclic (models -> checkpoints -> preset_io, never back).

A T5X folder's model is derived from the checkpoint itself: sizes from the parameter shapes
(`backbone_config_from_t5x`), the vocabulary from the token embedding's rows. An official
preset's checkpoint is converted once into the cache (`converted_preset`), which records the
sha256 of the `checkpoint` file it came from and is converted again when that changes.
"""

import os
import pathlib
import shutil

import numpy as np

from keras_mt3 import preset_io
from keras_mt3.checkpoints import presets
from keras_mt3.checkpoints import t5x_checkpoint as t5x
from keras_mt3.checkpoints.t5x_checkpoint import preview_names
from keras_mt3.codec import vocabulary as vocabulary_lib
from keras_mt3.errors import CheckpointError
from keras_mt3.errors import PresetError

SOURCE_FORMAT = "t5x"


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
    """The `MT3Backbone` arguments implied by a T5X parameter dict and the vocabulary its
    token embedding fits: returns `(config, vocabulary name)`.

    The attention head split cannot be read from the flat kernels, nor the encoder's length
    from its (computed) positions: MT3's `head_dim` 64 and the vocabulary's segment length are
    assumed.

    Raises:
        CheckpointError: a parameter MT3 has is missing, or the embedding fits no known
            vocabulary.
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
    vocabulary = _vocabulary_of_size(int(vocabulary_size))
    head_dim = 64
    config = {
        "vocabulary_size": int(vocabulary_size),
        "hidden_dim": int(hidden_dim),
        "num_heads": int(inner_dim) // head_dim,
        "head_dim": head_dim,
        "intermediate_dim": int(intermediate_dim),
        "num_encoder_layers": _count_layers(params, "encoder"),
        "num_decoder_layers": _count_layers(params, "decoder"),
        "input_dim": int(input_dim),
        "max_encoder_length": vocabulary.input_frames,
    }
    return config, vocabulary.name


def _vocabulary_of_size(rows):
    matches = [v for v in vocabulary_lib.VOCABULARIES.values() if v.num_embeddings == rows]
    if len(matches) != 1:
        known = ", ".join(
            f"{v.name} ({v.num_embeddings})" for v in vocabulary_lib.VOCABULARIES.values()
        )
        raise CheckpointError(
            f"the checkpoint's token embedding has {rows} rows, which fits no known MT3 "
            f"vocabulary (rows: {known}); keras-mt3 cannot tell how to read its tokens"
        )
    return matches[0]


def transcriber_from_t5x(params, transcriber_cls, **kwargs):
    """A `transcriber_cls` (`MT3Transcriber`) holding T5X parameters `params` (`{name:
    array}`), its size and vocabulary derived from them; `kwargs` go to `transcriber_cls`
    (e.g. `decode_batch_size`).

    The caller hands the class over (its `backbone_cls` builds the backbone) so that this
    module, which `keras_mt3.models` reaches through `preset_io`, imports no model class.
    """
    config, vocabulary = backbone_config_from_t5x(params)
    backbone = transcriber_cls.backbone_cls(**config)
    load_t5x_weights(backbone, params)
    return transcriber_cls(backbone, vocabulary=vocabulary, **kwargs)


def read_t5x_folder(directory, progress=None):
    """The verified parameters of the T5X checkpoint in `directory`, and their source record.

    A copy of an official preset's checkpoint (its `checkpoint` file is the official one) is
    checked against that preset's manifest, file hashes included; any other checkpoint for
    structure and finite values.
    """
    # Says what is wrong with a path that does not exist or holds no T5X checkpoint.
    directory = presets.resolve_checkpoint_dir(directory, download=False)
    preset = presets.official_preset(directory)
    if preset is not None:
        params = presets.load_checkpoint(directory, preset=preset, progress=progress)
    else:
        params = t5x.read_t5x_checkpoint(directory, progress=progress)
    return params, _source_record(directory, preset)


def _source_record(directory, preset):
    return {
        "format": SOURCE_FORMAT,
        "preset": preset,
        "checkpoint_sha256": t5x.tree_sha256(directory),
    }


def convert_t5x_checkpoint(t5x_dir, output_dir, transcriber_cls, *, overwrite=False, progress=None):
    """Converts the T5X MT3 checkpoint in `t5x_dir` into preset folder `output_dir`, as a
    `transcriber_cls` (`MT3Transcriber`).

    The model is derived from the checkpoint (see `backbone_config_from_t5x`). The preset is
    written atomically (see `preset_io.save_to_preset`); `overwrite` allows replacing an
    existing preset. Returns `output_dir`.

    Raises:
        CheckpointError: the checkpoint is damaged or not an MT3 one.
        PresetError: `output_dir` may not be written.
    """
    preset_io.check_preset_target(pathlib.Path(output_dir).expanduser(), overwrite)
    params, source = read_t5x_folder(t5x_dir, progress=progress)
    model = transcriber_from_t5x(params, transcriber_cls)
    return preset_io.save_to_preset(model, output_dir, overwrite=overwrite, source=source)


def converted_preset(preset, transcriber_cls, *, checkpoint_dir=None, download=True, progress=None):
    """The cached Keras preset folder of official preset `preset`, converted on first use.

    The T5X checkpoint is found (and downloaded) as by `presets.resolve_checkpoint_dir`,
    `checkpoint_dir` overriding where; the conversion in the cache
    (`presets.converted_preset_dir`) is used while it records that checkpoint's sha256, and is
    made again (atomically, so a concurrent reader never sees half a preset) otherwise.
    """
    return _cached_conversion(preset, transcriber_cls, checkpoint_dir, download, progress)[0]


def _cached_conversion(preset, transcriber_cls, checkpoint_dir, download, progress):
    """`(folder, model)`: the model when it was converted just now, else None."""
    source_dir = presets.resolve_checkpoint_dir(
        checkpoint_dir or preset, download=download, progress=progress
    )
    target = presets.converted_preset_dir(preset)
    source = _source_record(source_dir, preset)
    if preset_io.read_metadata(target).get("source") == source:
        return target, None
    params = presets.load_checkpoint(
        checkpoint_dir or preset, preset=preset, download=download, progress=progress
    )
    model = transcriber_from_t5x(params, transcriber_cls)
    return preset_io.save_to_preset(model, target, source=source), model


def load_preset(
    source, transcriber_cls, *, checkpoint_dir=None, download=True, progress=None, **overrides
):
    """The `transcriber_cls` (`MT3Transcriber`) of anything `MT3Transcriber.from_preset` takes:
    a preset name, a T5X checkpoint folder (both converted here), or a Keras preset folder or
    hub handle (`preset_io.load`). A preset name wins over a folder of the same name.

    Raises:
        PresetError: the source is unknown, missing, unreadable or holds another class, or
            `checkpoint_dir` comes without a preset name.
    """
    text = os.fspath(source)
    if checkpoint_dir is not None and text not in presets.PRESETS:
        raise PresetError(
            f"a checkpoint folder (checkpoint_dir, --checkpoint-dir) goes with a preset name "
            f"({', '.join(sorted(presets.PRESETS))}), and {text!r} is not one: pass the folder "
            "itself as the preset instead"
        )
    if text not in presets.PRESETS and preset_io.is_keras_preset(text):
        return preset_io.load(text, expected=transcriber_cls, **overrides)
    return load_t5x_source(
        source, transcriber_cls, checkpoint_dir=checkpoint_dir, download=download,
        progress=progress, **overrides,
    )


def load_t5x_source(
    source, transcriber_cls, *, checkpoint_dir=None, download=True, progress=None, **overrides
):
    """The `transcriber_cls` (`MT3Transcriber`) of a preset name (converted once, see
    `converted_preset`) or of a T5X checkpoint folder (converted in memory each time); what
    `load_preset` calls for anything that is not a Keras preset. `overrides` go to
    `transcriber_cls`."""
    if isinstance(source, str) and source in presets.PRESETS:
        cached, converted = _cached_conversion(
            source, transcriber_cls, checkpoint_dir, download, progress
        )
        if converted is None:
            try:
                return preset_io.load_preset_dir(cached, **overrides)
            except PresetError:
                # A damaged conversion in the cache (its source still matches): make it again.
                shutil.rmtree(cached, ignore_errors=True)
                _, converted = _cached_conversion(
                    source, transcriber_cls, checkpoint_dir, download, progress
                )
        # Building the model costs more than reading the checkpoint: keep the one just built.
        if not overrides:
            return converted
        settings = {"vocabulary": converted.vocabulary, **overrides}
        return type(converted)(converted.backbone, **settings)
    directory = pathlib.Path(source).expanduser()
    if directory.is_dir() and not (directory / t5x.CHECKPOINT_FILE).is_file():
        raise PresetError(
            f"{str(directory)!r} is neither a Keras preset folder (no {preset_io.CONFIG_FILE}) "
            f"nor a T5X checkpoint folder (no `{t5x.CHECKPOINT_FILE}` file). Pass a preset name "
            f"({', '.join(sorted(presets.PRESETS))}) or the folder of a saved or converted "
            "preset or of a T5X checkpoint."
        )
    params, _ = read_t5x_folder(source, progress=progress)
    return transcriber_from_t5x(params, transcriber_cls, **overrides)


def _count_layers(params, stack):
    indices = {name.split("/")[1] for name in params if name.startswith(f"{stack}/layers_")}
    return len(indices)
