"""Train a small MT3 from scratch on rendered clips, on a CPU, and score it on held-out clips.

    KERAS_BACKEND=jax python examples/train_small.py [--steps 8000] [--output runs/train_small]

The training data is made on the fly: random single-instrument notes rendered with the
package's toy synthesizer (no download). The model is the `tiny` backbone (1.2M parameters)
trained with the same pipeline, loss and `fit` as `keras-mt3 train`; afterwards it transcribes
held-out clips (other random notes, same synthesizer) with `MT3Transcriber.transcribe` and
prints MT3's note metrics. The default run (8000 steps) took 34 minutes on an idle 2-core CPU
and reached onset F1 0.17 (docs/training.md); more `--steps` give a better model.
"""

import argparse
import pathlib
import time

import keras
import numpy as np

from keras_mt3.constants import SAMPLE_RATE
from keras_mt3.data import TrainingDataConfig, synthetic_pairs, training_dataset
from keras_mt3.metrics import transcription_metrics
from keras_mt3.training import TrainingConfig, build_transcriber, compile_for_training

# Sparse single-instrument notes over an octave and a half: easy enough for the tiny model to
# learn pitch and (coarser) timing within a CPU hour; MT3's real task needs far longer training.
NOTE_OPTIONS = dict(
    programs=(0,), notes_per_second=1.5, pitch_range=(55, 72), note_seconds=(0.2, 0.6)
)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=8000)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--train-clips", type=int, default=400)
    parser.add_argument("--eval-clips", type=int, default=16)
    parser.add_argument("--clip-seconds", type=float, default=6.0)
    parser.add_argument("--target-length", type=int, default=128)
    parser.add_argument("--learning-rate", type=float, default=1e-3, help="peak, after warmup")
    parser.add_argument("--warmup-steps", type=int, default=200)
    parser.add_argument("--steps-per-epoch", type=int, default=500)
    parser.add_argument("--model-size", default="tiny")
    parser.add_argument("--output", default="runs/train_small")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    keras.utils.set_random_seed(args.seed)
    output = pathlib.Path(args.output)
    output.mkdir(parents=True, exist_ok=True)

    train_pairs = synthetic_pairs(
        args.train_clips, args.clip_seconds, seed=args.seed + 1, name_prefix="train", **NOTE_OPTIONS
    )
    held_out = synthetic_pairs(
        args.eval_clips,
        args.clip_seconds,
        seed=args.seed + 2,
        name_prefix="held_out",
        **NOTE_OPTIONS,
    )
    config = TrainingConfig(
        model_size=args.model_size,
        target_length=args.target_length,
        dropout=0.0,  # plenty of fresh windows, few steps: regularization only slows it down
        optimizer="adamw",
        learning_rate=keras.optimizers.schedules.CosineDecay(
            0.0,
            decay_steps=max(1, args.steps - args.warmup_steps),
            warmup_target=args.learning_rate,
            warmup_steps=args.warmup_steps,
            alpha=0.05,
        ),
    )
    model = compile_for_training(build_transcriber(config), config)
    data_config = TrainingDataConfig(
        target_length=args.target_length, batch_size=args.batch_size, seed=args.seed
    )
    steps_per_epoch = min(args.steps_per_epoch, args.steps)
    epochs = max(1, args.steps // steps_per_epoch)  # fit runs whole epochs only
    started = time.perf_counter()
    model.fit(
        training_dataset(train_pairs, data_config),
        steps_per_epoch=steps_per_epoch,
        epochs=epochs,
        callbacks=[keras.callbacks.CSVLogger(str(output / "history.csv"))],
        verbose=2,
        shuffle=False,  # windows come in random order from the pipeline
    )
    train_minutes = (time.perf_counter() - started) / 60
    model.save_to_preset(output / "preset")

    scores = []
    for pair in held_out:
        estimate = model.transcribe(pair.audio, sample_rate=SAMPLE_RATE, progress=False)
        scores.append(transcription_metrics(estimate, pair.notes))
    print(f"\ntrained {epochs * steps_per_epoch} steps in {train_minutes:.1f} min ({keras.backend.backend()})")
    print(f"held-out clips: {len(held_out)} x {args.clip_seconds:g} s")
    for metric in ("onset_f1", "onset_offset_f1", "frame_f1"):
        print(f"  {metric:<16} {np.mean([score[metric] for score in scores]):.3f}")
    print(f"model saved to {output / 'preset'}")


if __name__ == "__main__":
    main()
