"""Reduced-precision modes against float32: note F1 and speed, per clip, in one process.

    KERAS_BACKEND=jax python benchmarks/precision.py [--modes bfloat16 int8] [--clips NAME ...]

For each mode the official `mt3` weights are loaded twice, once as float32 (the default) and once
in the mode: `bfloat16` rebuilds the backbone under Keras's "bfloat16" dtype policy (weights and
activations; the log-mel frontend stays float32), `int8` applies Keras's own
`backbone.quantize("int8")`. Each clip is transcribed by both (best of `--repeats` warm calls),
and the mode's notes are scored against the float32 notes (mir_eval onset and onset+offset F1,
50 ms). A mode is worth offering only where it is faster and keeps F1 >= 0.99 on every clip.

Test data is read from $KERAS_MT3_TEST_DATA (default ../shared beside the repository).
"""

import argparse
import os
import pathlib
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
TEST_DATA = pathlib.Path(os.environ.get("KERAS_MT3_TEST_DATA", REPO.parent / "shared"))
CLIP_FOLDERS = (TEST_DATA / "reference" / "mt3", TEST_DATA / "reference" / "real")
CHECKPOINT = pathlib.Path(
    os.environ.get("KERAS_MT3_CHECKPOINT_DIR", TEST_DATA / "checkpoints" / "mt3")
)
MODES = ("bfloat16", "int8")


def reduced_model(model, mode):
    """A copy of `model` (float32 MT3Transcriber) with its backbone in `mode`."""
    from keras_mt3 import MT3Transcriber
    from keras_mt3.models.mt3_backbone import MT3Backbone

    config = model.backbone.get_config()
    if mode == "bfloat16":
        config["dtype"] = "bfloat16"
    backbone = MT3Backbone.from_config(config)
    backbone.set_weights(model.backbone.get_weights())
    if mode == "int8":
        backbone.quantize("int8")
    return MT3Transcriber(backbone, vocabulary=model.vocabulary)


def timed_transcription(model, audio, repeats):
    model.transcribe(audio, sample_rate=16000, progress=False)  # compiles
    best, notes = float("inf"), None
    for _ in range(repeats):
        started = time.perf_counter()
        notes = model.transcribe(audio, sample_rate=16000, progress=False)
        best = min(best, time.perf_counter() - started)
    return notes, best


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    parser.add_argument("--clips", nargs="+", help="clip names (default: all shared clips)")
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()

    import warnings

    import keras

    from keras_mt3 import MT3Transcriber
    from keras_mt3.metrics.transcription_metrics import transcription_metrics
    from keras_mt3.preprocessing.audio_io import load_audio

    clips = {
        path.stem: path
        for folder in CLIP_FOLDERS
        for path in sorted(folder.glob("*.wav"))
        if path.with_suffix(".mid").is_file() and (not args.clips or path.stem in args.clips)
    }
    model = MT3Transcriber.from_preset("mt3", checkpoint_dir=CHECKPOINT)
    with warnings.catch_warnings():
        # quantize() warns once per layer type it leaves alone (norms, dropout, positions).
        warnings.simplefilter("ignore")
        reduced = {mode: reduced_model(model, mode) for mode in args.modes}

    print(f"Keras backend {keras.backend.backend()}; F1 of each mode's notes against float32's")
    header = f"{'mode':<10}{'clip':<34}{'float32 s':>10}{'mode s':>8}{'speed':>7}" \
             f"{'onset F1':>9}{'on+off F1':>10}"
    print(header)
    print("-" * len(header))
    for name, path in clips.items():
        audio = load_audio(path)
        reference, reference_s = timed_transcription(model, audio, args.repeats)
        for mode, candidate in reduced.items():
            notes, seconds = timed_transcription(candidate, audio, args.repeats)
            scores = transcription_metrics(notes, reference)
            print(f"{mode:<10}{name:<34}{reference_s:>10.2f}{seconds:>8.2f}"
                  f"{reference_s / seconds:>6.2f}x{scores['onset_f1']:>9.3f}"
                  f"{scores['onset_offset_f1']:>10.3f}", flush=True)


if __name__ == "__main__":
    main()
