"""Fine-tune the official MT3 on a real recorded quartet (Bach10) so that it names its instruments.

    KERAS_BACKEND=jax python examples/finetune_ensemble.py [--output runs/finetune_ensemble]

The released `mt3` checkpoint hears the notes of Bach10's violin, clarinet, saxophone and
bassoon quartet fairly well but mostly names the wrong instruments. This script fine-tunes it on
one chorale, `02-AchLiebenChristen` (40.5 s), and holds out the other, `03-ChristederdubistTag
undLicht` (25.4 s, same four players), for testing. Training windows are MT3's: random 2.048 s
windows at any 8 ms frame offset, tie sections, full General MIDI programs, cut by
`keras_mt3.data`; each window gets a random gain and a little noise (neither changes a pitch or
a note time, so the targets stay exact). Only the decoder trains: it writes the instrument
names; a frozen encoder makes the steps cheaper and forgets less of MT3's other music
(docs/training.md, "Fine-tuning on a real ensemble", has the measurements behind the defaults).

At the end it transcribes the held-out chorale, and, to check that the model has not forgotten
what it knew, the piano chorale and the multi_band clip of `../shared/reference/mt3`, with the
official and the fine-tuned model, and prints a before/after table of note F1 scores
(`--no-evaluate` skips it). The fine-tuned model is written as a preset to `OUTPUT/preset`:

    keras-mt3 transcribe --preset runs/finetune_ensemble/preset song.wav -o song.mid
"""

import argparse
import json
import os
import pathlib
import sys
import time

import keras
import numpy as np
import tensorflow as tf

from keras_mt3.constants import HOP_LENGTH
from keras_mt3.data import TranscriptionPair, TrainingDataConfig, window_dataset
from keras_mt3.data.pipeline import batch_for_model
from keras_mt3.metrics import ONSET_ONLY, multi_instrument_counts, transcription_metrics
from keras_mt3.midi_io import load_midi
from keras_mt3.models.losses import MT3Loss
from keras_mt3.models.mt3_transcriber import MT3Transcriber
from keras_mt3.models.optimizers import make_optimizer
from keras_mt3.training import default_jit_compile

SHARED = pathlib.Path(
    os.environ.get("KERAS_MT3_TEST_DATA", pathlib.Path(__file__).resolve().parents[2] / "shared")
) / "reference"
TRAIN_CLIP = "02-AchLiebenChristen"
HELD_OUT_CLIP = "03-ChristederdubistTagundLicht"
# Clips scored before and after: the held-out chorale, plus two of MT3's own kinds of music
# (synthesized piano; band with drums) that fine-tuning on four wind and string players
# must not make it forget.
FORGETTING_CLIPS = ("piano_chorale", "multi_band")
# The longest target of 2000 random Bach10 windows is 168 tokens (tie section included).
TARGET_LENGTH = 192


def main(argv=None):
    args = parse_args(argv)
    keras.utils.set_random_seed(args.seed)
    output = pathlib.Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    model = MT3Transcriber.from_preset("mt3", checkpoint_dir=args.checkpoint_dir)

    clips = evaluation_clips(args.real_dir, args.reference_dir) if args.evaluate else {}
    before = score(model, clips)

    trainable = freeze(model.backbone, args.train)
    model.compile(
        optimizer=make_optimizer(args.optimizer, args.learning_rate),
        loss=MT3Loss(),
        jit_compile=default_jit_compile(),  # as `keras-mt3 train` chooses
    )
    pair = TranscriptionPair(TRAIN_CLIP, args.real_dir / f"{TRAIN_CLIP}.wav",
                             args.real_dir / f"{TRAIN_CLIP}.mid", dataset="bach10")
    config = TrainingDataConfig(
        vocabulary=model.vocabulary,
        target_length=args.target_length,
        batch_size=args.batch_size,
        seed=args.seed,
    )
    data = augmented_batches(pair, config, args.gain_db, args.noise_snr_db, args.seed)
    steps_per_epoch = min(args.steps_per_epoch, args.steps)
    epochs = max(1, -(-args.steps // steps_per_epoch))
    print(
        f"fine-tuning {trainable / 1e6:.1f}M of {model.backbone.count_params() / 1e6:.1f}M "
        f"parameters ({args.train}) on {TRAIN_CLIP} for {epochs * steps_per_epoch} steps of "
        f"batch {args.batch_size} ({keras.backend.backend()}); held out: {HELD_OUT_CLIP}",
        file=sys.stderr,
    )
    started = time.perf_counter()
    model.fit(
        data,
        steps_per_epoch=steps_per_epoch,
        epochs=epochs,
        callbacks=[keras.callbacks.CSVLogger(str(output / "history.csv"))],
        verbose=args.verbose,
        shuffle=False,  # the pipeline draws windows in random order itself
    )
    train_minutes = (time.perf_counter() - started) / 60
    preset = model.save_to_preset(output / "preset")
    print(f"trained {epochs * steps_per_epoch} steps in {train_minutes:.1f} min; preset: {preset}")

    if clips:
        after = score(model, clips)
        print_table(before, after)
        options = {key: str(value) for key, value in vars(args).items()}
        record = dict(options=options, train_minutes=train_minutes, before=before, after=after)
        (output / "scores.json").write_text(json.dumps(record, indent=2) + "\n")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add = parser.add_argument
    add("--output", default="runs/finetune_ensemble", help="output folder (history, preset/)")
    add("--steps", type=int, default=200, help="training steps")
    add("--steps-per-epoch", type=int, default=50, help="steps per line of progress")
    add("--batch-size", type=int, default=4, help="windows per step")
    add("--target-length", type=int, default=TARGET_LENGTH, help="target tokens per window")
    add("--train", choices=sorted(TRAINABLE_PARTS), default="decoder",
        help="what trains; the rest is frozen")
    add("--optimizer", choices=("adafactor", "adamw"), default="adafactor")
    add("--learning-rate", type=float, default=1e-3,
        help="constant; Adafactor scales it by each weight's RMS")
    add("--gain-db", type=float, default=6.0, help="random gain in [-x, +x] dB per window")
    add("--noise-snr-db", type=float, default=30.0,
        help="white noise at least this far below the window's level (dB); 0 disables")
    add("--evaluate", action=argparse.BooleanOptionalAction, default=True,
        help="score the official and the fine-tuned model before/after")
    add("--real-dir", type=pathlib.Path, default=SHARED / "real",
        help="folder with the Bach10 clips (wav + mid)")
    add("--reference-dir", type=pathlib.Path, default=SHARED / "mt3",
        help="folder with piano_chorale and multi_band (wav + mid)")
    add("--checkpoint-dir", help="the official checkpoint (default: $KERAS_MT3_CHECKPOINT_DIR "
        "or the download cache)")
    add("--seed", type=int, default=0)
    add("--verbose", type=int, default=1, help="Keras fit verbosity (1: progress bar, 2: a line "
        "per epoch)")
    args = parser.parse_args(argv)
    for name in ("steps", "steps_per_epoch", "batch_size", "target_length"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    needed = [args.real_dir / f"{TRAIN_CLIP}.{extension}" for extension in ("wav", "mid")]
    if args.evaluate:
        needed += [path for files in _clip_files(args.real_dir, args.reference_dir).values()
                   for path in files]
    missing = [str(path) for path in needed if not path.is_file()]
    if missing:
        parser.error(f"missing {', '.join(missing)}; point --real-dir / --reference-dir at them")
    return args


# ---- what trains ----------------------------------------------------------------------------


def _encoder(backbone):
    return [backbone.continuous_inputs_projection, *backbone.encoder_layers, backbone.encoder_norm]


def _decoder(backbone):
    return [backbone.token_embedder, *backbone.decoder_layers, backbone.decoder_norm,
            backbone.logits_dense]


TRAINABLE_PARTS = {
    "all": lambda backbone: _encoder(backbone) + _decoder(backbone),
    "decoder": _decoder,
}


def freeze(backbone, part):
    """Leaves only `part`'s layers trainable; returns how many parameters train."""
    keep = {id(layer) for layer in TRAINABLE_PARTS[part](backbone)}
    for layer in _encoder(backbone) + _decoder(backbone):
        layer.trainable = id(layer) in keep
    return sum(int(np.prod(variable.shape)) for variable in backbone.trainable_variables)


# ---- data -----------------------------------------------------------------------------------


def augmented_batches(pair, config, gain_db, noise_snr_db, seed):
    """`fit` batches of random windows of `pair`, each with a random gain and white noise.

    Both act on the samples before the log-mel, so the targets stay exact: a gain moves every
    log-mel bin by the same amount (the model must not tie instruments to loudness), noise
    fills the quiet bins a real room or microphone would.
    """
    windows = window_dataset([pair], config).enumerate()

    def augment(index, window):
        draws = tf.random.stateless_uniform([3], seed=[seed, index], dtype=tf.float32)
        samples = window["samples"]
        in_clip = tf.range(tf.shape(samples)[0]) < window["num_frames"] * HOP_LENGTH
        valid = tf.cast(in_clip, tf.float32)  # padding after a clip's end stays silent
        samples = samples * 10.0 ** ((2.0 * draws[0] - 1.0) * gain_db / 20.0)
        if noise_snr_db > 0:
            rms = tf.sqrt(tf.reduce_sum(samples**2) / tf.maximum(tf.reduce_sum(valid), 1.0))
            # SNR drawn in [noise_snr_db, noise_snr_db + 20] dB.
            level = rms * 10.0 ** (-(noise_snr_db + 20.0 * draws[1]) / 20.0)
            noise = tf.random.stateless_normal(tf.shape(samples), seed=[seed, index + 2**40])
            samples = samples + level * noise * valid
        return dict(window, samples=samples)

    return batch_for_model(windows.map(augment), config.batch_size)


# ---- scoring --------------------------------------------------------------------------------


def evaluation_clips(real_dir, reference_dir):
    """`{name: (audio path, reference NoteSequence)}` of the clips scored before and after."""
    return {
        name: (str(audio), load_midi(midi))
        for name, (audio, midi) in _clip_files(real_dir, reference_dir).items()
    }


def _clip_files(real_dir, reference_dir):
    folders = {HELD_OUT_CLIP: real_dir, **{name: reference_dir for name in FORGETTING_CLIPS}}
    return {
        name: (folder / f"{name}.wav", folder / f"{name}.mid") for name, folder in folders.items()
    }


def score(model, clips):
    """`{clip: {metric: value}}`: onset F1 (instruments ignored), program-aware onset F1
    (notes must also carry the right General MIDI program) and MT3's multi-instrument F1."""
    scores = {}
    for name, (audio, reference) in clips.items():
        estimate = model.transcribe(audio, progress=False)
        metrics = transcription_metrics(estimate, reference)
        program_onset = multi_instrument_counts(
            estimate, reference, "full", offset_ratio=ONSET_ONLY
        )
        scores[name] = {
            "onset_f1": metrics["onset_f1"],
            "program_onset_f1": program_onset.total.f1,
            "program_full_f1": metrics["program_full_f1"],
        }
    return scores


COLUMNS = (("onset F1", "onset_f1"), ("program onset F1", "program_onset_f1"),
           ("multi-instrument F1", "program_full_f1"))


def print_table(before, after):
    print(f"\n{'clip':<32} {'model':<11} " + " ".join(f"{header:>19}" for header, _ in COLUMNS))
    for name in before:
        for label, scores in (("official", before), ("fine-tuned", after)):
            values = " ".join(f"{scores[name][key]:>19.3f}" for _, key in COLUMNS)
            print(f"{name:<32} {label:<11} {values}")


if __name__ == "__main__":
    main()
