"""Transcription speed and memory per Keras backend, next to the original MT3's figures.

    python benchmarks/transcribe_speed.py [--backends jax tensorflow torch] [--long-minutes 10]

Each backend runs in its own process (a process has one Keras backend). For each reference clip it
reports compute seconds per audio second with compilation excluded (best of `--repeats` calls
after a first call, which compiles the decode programs; the compile time, summed over the clips,
is reported separately), and the process's peak resident memory. With
`--long-minutes N` it also transcribes an N-minute file (the clips repeated) from disk, which
shows the memory bound for long audio. The original's numbers come from the `timings` recorded
in the reference json (t5x on a 2-core CPU).

Test data is read from $KERAS_MT3_TEST_DATA (default ../shared beside the repository).
"""

import argparse
import json
import os
import pathlib
import sys
import tempfile

from backend_runs import print_result, run_per_backend

REPO = pathlib.Path(__file__).resolve().parents[1]
TEST_DATA = pathlib.Path(os.environ.get("KERAS_MT3_TEST_DATA", REPO.parent / "shared"))
REFERENCE = TEST_DATA / "reference" / "mt3"
CHECKPOINT = pathlib.Path(
    os.environ.get("KERAS_MT3_CHECKPOINT_DIR", TEST_DATA / "checkpoints" / "mt3")
)
CLIPS = ("piano_chorale", "multi_band")


def measure(backend, long_minutes, repeats):
    """Runs inside the per-backend child process; prints one JSON line."""
    import resource
    import time

    import numpy as np
    import soundfile

    from keras_mt3 import MT3Transcriber
    from keras_mt3.constants import SAMPLE_RATE
    from keras_mt3.preprocessing.audio_io import load_audio

    started = time.perf_counter()
    model = MT3Transcriber.from_preset("mt3", checkpoint_dir=CHECKPOINT)
    result = {"backend": backend, "load_s": time.perf_counter() - started, "clips": {}}

    clips = {name: load_audio(REFERENCE / f"{name}.wav") for name in CLIPS}
    # A clip's first call also compiles the decode programs for its batch shapes (see
    # `padded_batch_size`; one 12-row program serves both reference clips); later calls reuse
    # them.
    compile_s = 0.0
    for name, audio in clips.items():
        seconds = []
        for _ in range(repeats + 1):
            started = time.perf_counter()
            notes = model.transcribe(audio, sample_rate=SAMPLE_RATE, progress=False)
            seconds.append(time.perf_counter() - started)
        compile_s += seconds[0] - min(seconds[1:])
        result["clips"][name] = {
            "audio_s": len(audio) / SAMPLE_RATE,
            "compute_s": min(seconds[1:]),
            "notes": len(notes.notes),
        }
    result["compile_s"] = compile_s
    result["peak_rss_mb_clips"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    if long_minutes:
        joined = np.concatenate(list(clips.values()))
        repeats_needed = int(np.ceil(long_minutes * 60 * SAMPLE_RATE / len(joined)))
        long_audio = np.tile(joined, repeats_needed)[: int(long_minutes * 60 * SAMPLE_RATE)]
        with tempfile.TemporaryDirectory() as tmp:
            path = pathlib.Path(tmp) / "long.flac"
            soundfile.write(path, long_audio, SAMPLE_RATE)
            del long_audio, joined
            started = time.perf_counter()
            notes = model.transcribe(path, progress=False)
            result["long"] = {
                "audio_s": long_minutes * 60,
                "compute_s": time.perf_counter() - started,
                "notes": len(notes.notes),
                "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            }
    print_result(result)


def original_figures():
    figures = {}
    for name in CLIPS:
        timings = json.loads((REFERENCE / f"{name}.json").read_text())["timings"]
        figures[name] = timings["wall_s_excluding_compile"] / timings["audio_seconds"]
    return figures


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", nargs="+", default=["jax", "tensorflow", "torch"])
    parser.add_argument("--long-minutes", type=float, default=0.0)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        measure(args.child, args.long_minutes, args.repeats)
        return

    original = original_figures()
    rows = run_per_backend(
        __file__, args.backends,
        ["--repeats", args.repeats, "--long-minutes", args.long_minutes],
    )

    header = f"{'backend':<11}{'clip':<15}{'audio s':>8}{'compute s':>10}{'s/audio s':>10}" \
             f"{'original':>10}{'speed-up':>9}{'compile s':>10}{'peak MB':>9}"
    print(header)
    print("-" * len(header))
    for row in rows:
        for name, clip in row["clips"].items():
            per_second = clip["compute_s"] / clip["audio_s"]
            print(f"{row['backend']:<11}{name:<15}{clip['audio_s']:>8.1f}{clip['compute_s']:>10.2f}"
                  f"{per_second:>10.3f}{original[name]:>10.3f}{original[name] / per_second:>8.1f}x"
                  f"{row['compile_s']:>10.1f}{row['peak_rss_mb_clips']:>9.0f}")
        if "long" in row:
            long = row["long"]
            print(f"{row['backend']:<11}{'long file':<15}{long['audio_s']:>8.0f}"
                  f"{long['compute_s']:>10.1f}{long['compute_s'] / long['audio_s']:>10.3f}"
                  f"{'':>10}{'':>9}{'':>10}{long['peak_rss_mb']:>9.0f}")


if __name__ == "__main__":
    main()
