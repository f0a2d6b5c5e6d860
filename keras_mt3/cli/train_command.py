"""`keras-mt3 train -o OUT_DIR`: train or fine-tune MT3 on audio/MIDI datasets.

Options come from flags and/or a JSON file (`--config`, keys = the long flag names with
underscores); flags win over the file, the file over the defaults. OUT_DIR receives
`checkpoints/` (weights and optimizer state after every epoch), `history.csv`, `logs/`
(TensorBoard, if installed), `train_config.json` (the options used) and `preset/` (the final
model, loadable with `MT3Transcriber.from_preset(OUT_DIR/preset)` and `keras-mt3 transcribe
--preset`).
"""

import argparse
import json
import os
import pathlib
import sys

from keras_mt3.errors import KerasMT3Error

# Backbone shapes by name ("mt3" is the released model's; the others are for small budgets).
BACKBONE_SIZES = {
    "mt3": dict(
        hidden_dim=512, num_heads=6, head_dim=64, intermediate_dim=1024,
        num_encoder_layers=8, num_decoder_layers=8,
    ),
    "small": dict(
        hidden_dim=256, num_heads=4, head_dim=64, intermediate_dim=1024,
        num_encoder_layers=4, num_decoder_layers=4,
    ),
    "tiny": dict(
        hidden_dim=128, num_heads=2, head_dim=64, intermediate_dim=256,
        num_encoder_layers=2, num_decoder_layers=2,
    ),
}
MAX_DECODE_LENGTH = 1024  # MT3's decoder length, the longest output at inference
DATASET_FLAGS = ("data", "maestro", "slakh", "guitarset", "urmp")
DEFAULTS = {
    "config": None,
    "output": None,
    "data": [],
    "maestro": None,
    "slakh": None,
    "guitarset": None,
    "urmp": None,
    "synthetic": 0,
    "split": "train",
    "validation_split": "validation",
    "validation_steps": None,
    "preset": None,
    "checkpoint_dir": None,
    "model_size": "small",
    "vocabulary": "mt3",
    "program_granularity": None,
    "dropout": 0.1,
    "steps": 10000,
    "steps_per_epoch": 500,
    "batch_size": 8,
    "window_frames": None,
    "target_length": 1024,
    "optimizer": "adafactor",
    "learning_rate": None,
    "z_loss": 1e-4,
    "loss_normalization": "token_mean",
    "cache": "memory",
    "jit_compile": None,
    "data_parallel": False,
    "resume": False,
    "seed": None,
    "verbose": "auto",
}


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "train",
        help="train or fine-tune a model on audio + MIDI datasets",
        description=__doc__.split("\n\n", 1)[1],
        argument_default=None,
    )
    add = parser.add_argument
    add("-o", "--output", help="output folder (checkpoints, logs, final preset)")
    add("--config", help="JSON file with any of these options (keys use underscores)")
    data = parser.add_argument_group("data")
    data.add_argument("--data", action="append", help="folder of x.wav + x.mid pairs (repeatable)")
    data.add_argument("--maestro", help="MAESTRO folder (with maestro-v*.csv/json)")
    data.add_argument("--slakh", help="Slakh2100 folder (train/validation/test/TrackNNNNN)")
    data.add_argument("--guitarset", help="GuitarSet folder (annotation/, audio_mono-mic/)")
    data.add_argument("--urmp", help="URMP folder (NN_Piece_inst.../)")
    data.add_argument("--synthetic", type=int, help="add N rendered random clips (a smoke test)")
    data.add_argument("--split", help="split to train on where datasets define one (train)")
    data.add_argument("--validation-split", help="split to validate on each epoch (validation)")
    data.add_argument("--validation-steps", type=int, help="validation batches per epoch (all)")
    data.add_argument(
        "--cache", help="'memory' (default), 'none', or a folder for a reusable on-disk cache"
    )
    model = parser.add_argument_group("model")
    model.add_argument("--preset", help="fine-tune this preset (mt3) or preset folder")
    model.add_argument("--checkpoint-dir", help="the preset's T5X checkpoint folder")
    model.add_argument(
        "--model-size", choices=sorted(BACKBONE_SIZES), help="size of a new model (small)"
    )
    model.add_argument("--vocabulary", help="target vocabulary of a new model (mt3, ismir2021)")
    model.add_argument(
        "--program-granularity", choices=("flat", "midi_class", "full"), help="instrument detail"
    )
    model.add_argument("--dropout", type=float, help="dropout of a new model (0.1)")
    train = parser.add_argument_group("training")
    train.add_argument("--steps", type=int, help="total training steps (10000)")
    train.add_argument("--steps-per-epoch", type=int, help="steps between checkpoints (500)")
    train.add_argument("--batch-size", type=int, help="examples per step (8)")
    train.add_argument("--window-frames", type=int, help="frames per example (vocabulary's: 256)")
    train.add_argument("--target-length", type=int, help="target tokens per example (1024)")
    train.add_argument("--optimizer", choices=("adafactor", "adamw"), help="(adafactor)")
    train.add_argument("--learning-rate", type=float, help="(adafactor 1e-3, adamw 3e-4)")
    train.add_argument("--z-loss", type=float, help="z-loss weight (1e-4)")
    train.add_argument(
        "--loss-normalization", choices=("token_mean", "sum"), help="(token_mean; T5X: sum)"
    )
    train.add_argument(
        "--jit-compile",
        action=argparse.BooleanOptionalAction,
        help="XLA-compile the train step (default: on under jax/tensorflow, off under torch)",
    )
    train.add_argument(
        "--data-parallel",
        action=argparse.BooleanOptionalAction,
        help="split batches over all local devices (jax: DataParallel, tensorflow: Mirrored)",
    )
    train.add_argument(
        "--resume",
        action=argparse.BooleanOptionalAction,
        help="continue from OUT_DIR's last checkpoint (weights, optimizer state, step)",
    )
    train.add_argument("--seed", type=int, help="seed of the data order and initialization")
    train.add_argument("--verbose", help="Keras fit verbosity: auto, 0, 1 or 2")
    parser.set_defaults(run=run)


def resolve_options(args):
    """Defaults, then the `--config` JSON, then the flags given: one dict of options."""
    options = dict(DEFAULTS)
    if args.config:
        options.update(_read_config(args.config))
    given = {key: value for key, value in vars(args).items() if key in DEFAULTS}
    options.update({key: value for key, value in given.items() if value is not None})
    if not options["output"]:
        raise KerasMT3Error("give an output folder with -o/--output (or `output` in --config)")
    if isinstance(options["data"], str):
        options["data"] = [options["data"]]
    if not (any(options[flag] for flag in DATASET_FLAGS) or options["synthetic"]):
        raise KerasMT3Error(
            "no training data: give --data FOLDER, --maestro, --slakh, --guitarset, --urmp or "
            "--synthetic N"
        )
    return options


def run(args):
    import warnings

    import keras

    # Validation sets are finite streams of unknown length; Keras warns when one ends.
    warnings.filterwarnings("ignore", message="Your input ran out of data")
    options = resolve_options(args)
    output = pathlib.Path(options["output"]).expanduser()
    output.mkdir(parents=True, exist_ok=True)
    if options["seed"] is not None:
        keras.utils.set_random_seed(options["seed"])
    strategy = _distribution(options["data_parallel"])

    from keras_mt3.data.pipeline import TrainingDataConfig, evaluation_dataset, training_dataset
    from keras_mt3.data.skip_log import SkipLog

    with strategy.scope() if strategy is not None else _no_scope():
        model = build_transcriber(options)
        compile_for_training(model, options)
        step = _resume(model, output) if options["resume"] else 0
    data_config = TrainingDataConfig(
        vocabulary=model.vocabulary,
        program_granularity=options["program_granularity"],
        window_frames=options["window_frames"],
        target_length=options["target_length"],
        batch_size=options["batch_size"],
        cache=None if options["cache"] == "none" else options["cache"],
        seed=options["seed"],
    )
    train_sources, validation_pairs = collect_pairs(options)
    skip_log = SkipLog()
    train_data = training_dataset(
        train_sources, data_config, skip_log=skip_log, start_batch=_batches_used(step, options)
    )
    validation_data = None
    if validation_pairs:
        validation_data = evaluation_dataset(validation_pairs, data_config, skip_log=skip_log)
        if options["validation_steps"]:
            validation_data = validation_data.take(options["validation_steps"])

    initial_epoch = step // options["steps_per_epoch"]
    epochs = max(1, -(-options["steps"] // options["steps_per_epoch"]))
    _write_options(output / "train_config.json", options, model)
    print(
        f"training {_describe(model)} on {_count(train_sources)} pairs "
        f"({keras.backend.backend()}, jit_compile={model.jit_compile}), {epochs} epochs of "
        f"{options['steps_per_epoch']} steps -> {output}",
        file=sys.stderr,
    )
    model.fit(
        train_data,
        steps_per_epoch=options["steps_per_epoch"],
        epochs=epochs,
        initial_epoch=initial_epoch,
        validation_data=validation_data,
        callbacks=training_callbacks(output),
        verbose=_verbosity(options["verbose"]),
        shuffle=False,  # the pipeline draws windows in random order itself
    )
    preset_dir = model.save_to_preset(output / "preset")
    print(f"data: {skip_log.summary()}", file=sys.stderr)
    print(f"saved the trained model to {preset_dir}")
    return 0


# ---- model --------------------------------------------------------------------------------


def build_transcriber(options):
    """The model to train: a preset to fine-tune, or a new backbone of `model_size`."""
    from keras_mt3.codec.vocabulary import get_vocabulary
    from keras_mt3.models.mt3_backbone import MT3Backbone
    from keras_mt3.models.mt3_transcriber import MT3Transcriber

    if options["preset"]:
        model = MT3Transcriber.from_preset(
            options["preset"], checkpoint_dir=options["checkpoint_dir"]
        )
        _check_fits(model, options)
        return model
    vocabulary = get_vocabulary(options["vocabulary"])
    frames = options["window_frames"] or vocabulary.input_frames
    # Position tables are computed, not learned: make them long enough for inference (full
    # segments, up to 1024 decoded tokens) whatever the training windows and targets are.
    backbone = MT3Backbone(
        vocabulary_size=vocabulary.num_embeddings,
        input_dim=512,
        max_encoder_length=max(frames, vocabulary.input_frames),
        max_decoder_length=max(options["target_length"], MAX_DECODE_LENGTH),
        dropout=options["dropout"],
        **BACKBONE_SIZES[options["model_size"]],
    )
    return MT3Transcriber(
        backbone, vocabulary=vocabulary, max_decode_length=options["target_length"]
    )


def _check_fits(model, options):
    backbone = model.backbone
    frames = options["window_frames"] or model.vocabulary.input_frames
    too_long = options["target_length"] > backbone.max_decoder_length
    if frames > backbone.max_encoder_length or too_long:
        raise KerasMT3Error(
            f"this model takes at most {backbone.max_encoder_length} frames and "
            f"{backbone.max_decoder_length} target tokens; lower --window-frames / --target-length"
        )


def compile_for_training(model, options):
    """Compiles with `MT3Loss` and the chosen optimizer; `jit_compile` is always explicit."""
    import keras

    from keras_mt3.models.losses import MT3Loss
    from keras_mt3.models.optimizers import make_optimizer

    jit_compile = options["jit_compile"]
    if jit_compile is None:
        jit_compile = default_jit_compile()
    model.compile(
        optimizer=make_optimizer(options["optimizer"], options["learning_rate"]),
        loss=MT3Loss(z_loss=options["z_loss"], normalization=options["loss_normalization"]),
        jit_compile=bool(jit_compile),
    )
    if keras.backend.backend() == "torch" and jit_compile:
        print("note: torch.compile is experimental for this model", file=sys.stderr)
    return model


def default_jit_compile():
    """XLA under JAX and TensorFlow; eager under torch (torch.compile gains little on this
    model and compiles slowly)."""
    import keras

    return keras.backend.backend() in ("jax", "tensorflow")


def training_callbacks(output):
    """Weights after every epoch, a CSV history, TensorBoard logs (when TensorBoard is
    installed) and a stop on NaN loss."""
    import importlib.util

    import keras

    output = pathlib.Path(output)
    (output / "checkpoints").mkdir(parents=True, exist_ok=True)
    callbacks = [
        keras.callbacks.ModelCheckpoint(
            str(output / "checkpoints" / "epoch_{epoch:04d}.weights.h5"), save_weights_only=True
        ),
        random_state_callback(output / "checkpoints"),
        keras.callbacks.CSVLogger(str(output / "history.csv"), append=True),
        keras.callbacks.TerminateOnNaN(),
    ]
    if importlib.util.find_spec("tensorboard") is not None:
        callbacks.append(keras.callbacks.TensorBoard(log_dir=str(output / "logs")))
    else:
        print("note: `pip install tensorboard` to also get TensorBoard logs", file=sys.stderr)
    return callbacks


# ---- data ---------------------------------------------------------------------------------


def collect_pairs(options):
    """`({dataset: training pairs}, validation pairs)` from the dataset options."""
    from keras_mt3.data import guitarset, maestro, slakh, urmp
    from keras_mt3.data.folder_dataset import folder_pairs
    from keras_mt3.data.synthetic import synthetic_pairs

    listed = {}
    for folder in options["data"]:
        pairs = folder_pairs(folder)
        listed.setdefault(pairs[0].dataset if pairs else str(folder), []).extend(pairs)
    readers = {
        "maestro": maestro.maestro_pairs,
        "slakh": slakh.slakh_pairs,
        "guitarset": guitarset.guitarset_pairs,
        "urmp": urmp.urmp_pairs,
    }
    for name, reader in readers.items():
        if options[name]:
            listed[name] = reader(options[name])
    if options["synthetic"]:
        listed["synthetic"] = synthetic_pairs(
            options["synthetic"],
            duration=8.0,
            seed=options["seed"] or 0,
            programs=(0, 24, 33, 40, 73),
            drum_pitches=(36, 38, 42),
            drum_hits_per_second=1.0,
        )
    train, validation = {}, []
    for name, pairs in listed.items():
        # Datasets without splits train on everything.
        has_splits = any(pair.split for pair in pairs)
        train[name] = [p for p in pairs if not has_splits or p.split == options["split"]]
        validation += [p for p in pairs if has_splits and p.split == options["validation_split"]]
    train = {name: pairs for name, pairs in train.items() if pairs}
    if not train:
        raise KerasMT3Error(
            f"no training pairs found in split {options['split']!r}; check the dataset folders "
            "and --split"
        )
    return train, validation


# ---- helpers ------------------------------------------------------------------------------


def _distribution(data_parallel):
    """A tf.distribute strategy (TensorFlow) or None; under JAX sets Keras' distribution."""
    if not data_parallel:
        return None
    import keras

    backend = keras.backend.backend()
    if backend == "jax":
        devices = keras.distribution.list_devices()
        keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices))
        print(f"data parallel over {len(devices)} devices: {', '.join(devices)}", file=sys.stderr)
        return None
    if backend == "tensorflow":
        import tensorflow as tf

        strategy = tf.distribute.MirroredStrategy()
        print(f"data parallel over {strategy.num_replicas_in_sync} devices", file=sys.stderr)
        return strategy
    raise KerasMT3Error(
        "--data-parallel supports the jax and tensorflow backends; under torch run one process "
        "per device with torch.distributed instead"
    )


class _no_scope:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _resume(model, output):
    """Restores the last checkpoint: weights, optimizer state with its step count, and the
    dropout random state. Returns the step training stopped at."""
    import warnings

    import keras

    checkpoints = sorted((output / "checkpoints").glob("epoch_*.weights.h5"))
    if not checkpoints:
        raise KerasMT3Error(f"--resume: no checkpoints in {output / 'checkpoints'}")
    checkpoint = checkpoints[-1]
    # The weights file holds the optimizer's variables too, but Keras loads them only into
    # an optimizer that already has its slots.
    model.optimizer.build(model.trainable_variables)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a mismatched optimizer is reported below
        try:
            model.load_weights(str(checkpoint))
        except ValueError as error:
            raise KerasMT3Error(
                f"--resume: {checkpoint} does not fit this model ({error}); resume with the "
                "model options the run started with"
            ) from None
    step = int(keras.ops.convert_to_numpy(model.optimizer.iterations))
    if step == 0:
        raise KerasMT3Error(
            f"--resume: {checkpoint} holds no state for the {type(model.optimizer).__name__} "
            "optimizer; resume with the --optimizer the run started with"
        )
    restored = _restore_random_state(model, checkpoint)
    print(
        f"resuming from {checkpoint} at step {step}"
        + ("" if restored else " (no saved dropout random state: drawn afresh)"),
        file=sys.stderr,
    )
    return step


def _batches_used(step, options):
    """Batches to skip so that a resumed seeded run sees the batches an uninterrupted one
    would; without a seed the stream is random anyway."""
    if step and options["seed"] is None:
        print("note: no --seed, so the resumed data stream is a new random one", file=sys.stderr)
        return 0
    return step


# Keras leaves the dropout seed generators' states out of weight files; they are saved beside
# each checkpoint so that a resumed run draws the masks an uninterrupted one would.
RANDOM_STATE_SUFFIX = ".random_state.json"


def random_state_callback(checkpoint_dir):
    """A callback writing `epoch_NNNN.random_state.json` after every epoch."""
    import keras

    from keras_mt3.utils import atomic_write

    class SaveRandomState(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            path = pathlib.Path(checkpoint_dir) / f"epoch_{epoch + 1:04d}{RANDOM_STATE_SUFFIX}"
            states = [_to_list(variable) for variable in _seed_state_variables(self.model)]
            with atomic_write(path, "w") as handle:
                json.dump(states, handle)

    return SaveRandomState()


def _restore_random_state(model, weights_path):
    """Loads the states saved beside `weights_path`; False when there are none."""
    import numpy as np

    path = pathlib.Path(str(weights_path).removesuffix(".weights.h5") + RANDOM_STATE_SUFFIX)
    if not path.is_file():
        return False
    states = json.loads(path.read_text())
    variables = _seed_state_variables(model)
    if len(states) != len(variables):
        raise KerasMT3Error(f"--resume: {path} does not fit this model")
    for variable, state in zip(variables, states):
        variable.assign(np.asarray(state, dtype=variable.dtype))
    return True


def _seed_state_variables(model):
    # `variables` lists the seed generators' states as well, `weights` does not.
    weights = {id(variable) for variable in model.weights}
    return [variable for variable in model.variables if id(variable) not in weights]


def _to_list(variable):
    import keras

    return keras.ops.convert_to_numpy(variable).tolist()


def _read_config(path):
    try:
        config = json.loads(pathlib.Path(path).expanduser().read_text())
    except (OSError, ValueError) as error:
        raise KerasMT3Error(f"cannot read the training config {path}: {error}") from None
    if not isinstance(config, dict):
        raise KerasMT3Error(f"{path} must hold a JSON object of options")
    unknown = sorted(set(config) - set(DEFAULTS))
    if unknown:
        raise KerasMT3Error(
            f"{path}: unknown options {', '.join(unknown)}; known: {', '.join(sorted(DEFAULTS))}"
        )
    return config


def _write_options(path, options, model):
    from keras_mt3.utils import atomic_write

    record = dict(
        options, backend=os.environ.get("KERAS_BACKEND"), backbone=model.backbone.get_config()
    )
    with atomic_write(path, "w") as handle:
        json.dump(record, handle, indent=2, default=str)


def _describe(model):
    return f"{model.backbone.count_params() / 1e6:.1f}M-parameter model"


def _count(sources):
    return sum(len(pairs) for pairs in sources.values())


def _verbosity(value):
    return value if value == "auto" else int(value)
