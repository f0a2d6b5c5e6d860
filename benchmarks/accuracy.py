"""Transcription accuracy on a folder of (audio, ground-truth MIDI) pairs, with MT3's metrics.

    python benchmarks/accuracy.py [FOLDER] [--preset mt3] [--checkpoint-dir DIR] [--all-metrics]

FOLDER holds `NAME.wav` (or another audio format) beside `NAME.mid`, the ground truth; default:
the reference clips in $KERAS_MT3_TEST_DATA/reference/mt3 (default ../shared beside the
repository). Where `NAME.mt3.mid` (the original MT3's transcription) exists, the original's scores
are printed too, so the port can be compared with it file by file.
"""

import argparse
import os
import pathlib
import sys

REPO = pathlib.Path(__file__).resolve().parents[1]
TEST_DATA = pathlib.Path(os.environ.get("KERAS_MT3_TEST_DATA", REPO.parent / "shared"))
DEFAULT_FOLDER = TEST_DATA / "reference" / "mt3"
ORIGINAL_SUFFIX = ".mt3"


def audio_pairs(folder):
    """(name, audio path, reference MIDI path or None) for every audio file in `folder`."""
    from keras_mt3.evaluation import pair_with_references
    from keras_mt3.preprocessing.audio_io import AUDIO_EXTENSIONS
    from keras_mt3.utils import expand_inputs

    return pair_with_references(expand_inputs([folder], AUDIO_EXTENSIONS), folder)


def original_pairs(pairs, folder):
    """The pairs whose original MT3 transcription `NAME.mt3.mid` is in `folder`."""
    from keras_mt3.evaluation import find_reference

    found = []
    for name, _, reference in pairs:
        original = find_reference(folder, name + ORIGINAL_SUFFIX)
        if original is not None:
            found.append((name, original, reference))
    return found


def print_metrics(title, results, all_metrics):
    from keras_mt3.evaluation import format_table, mean_metrics

    print(f"\n{title}\n")
    print(format_table(results))
    for result in results:
        if result.failed:
            print(f"{result.name}: error: {result.error}")
    if all_metrics:
        mean = mean_metrics(results)
        if mean is not None:
            print("\nmean of every metric:")
            for key, value in mean.items():
                print(f"  {key:40s} {'n/a' if value is None else f'{value:.4f}'}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folder", nargs="?", default=str(DEFAULT_FOLDER))
    parser.add_argument("--preset", default="mt3")
    parser.add_argument("--checkpoint-dir", default=os.environ.get("KERAS_MT3_CHECKPOINT_DIR"))
    parser.add_argument("--decode-batch-size", type=int, help="segments decoded together")
    parser.add_argument("--all-metrics", action="store_true", help="also list every mean metric")
    args = parser.parse_args(argv)
    if args.checkpoint_dir is None and (TEST_DATA / "checkpoints" / args.preset).is_dir():
        args.checkpoint_dir = str(TEST_DATA / "checkpoints" / args.preset)

    import keras

    from keras_mt3.evaluation import evaluate_files
    from keras_mt3.midi_io import load_midi
    from keras_mt3.models.mt3_transcriber import MT3Transcriber

    folder = pathlib.Path(args.folder)
    if not folder.is_dir():
        sys.exit(f"{folder} is not a folder of audio + MIDI pairs (set KERAS_MT3_TEST_DATA)")
    pairs = audio_pairs(folder)
    if not pairs:
        sys.exit(f"no audio files in {folder}")
    settings = {}
    if args.decode_batch_size:
        settings["decode_batch_size"] = args.decode_batch_size
    model = MT3Transcriber.from_preset(args.preset, checkpoint_dir=args.checkpoint_dir, **settings)
    results = evaluate_files(pairs, lambda path: model.transcribe(path, progress=False))
    print_metrics(
        f"keras-mt3 (preset {args.preset}, Keras backend {keras.backend.backend()})",
        results,
        args.all_metrics,
    )
    originals = original_pairs(pairs, folder)
    if originals:
        print_metrics(
            "original MT3 (NAME.mt3.mid)",
            evaluate_files(originals, load_midi, progress=False),
            args.all_metrics,
        )
    return 1 if any(result.failed for result in results) else 0


if __name__ == "__main__":
    sys.exit(main())
