"""Transcription speed and memory per Keras backend, optionally against an earlier commit.

    python benchmarks/transcribe_speed.py [--backends jax tensorflow torch] [--clips NAME ...]
        [--baseline 0208d5c] [--rounds 2] [--repeats 2] [--long-minutes 10]

Each backend runs in its own process (a process has one Keras backend). For each clip it reports
compute seconds per audio second with compilation excluded (best of `--repeats` calls after a
first call, which compiles the decode programs; the compile time, summed over the clips, is
reported separately), and the process's peak resident memory. The clips are the original MT3's
two reference clips (../shared/reference/mt3) and the real recordings (../shared/reference/real).

With `--baseline REV` the same measurement runs on commit REV too, checked out in a temporary git
worktree and imported from there, alternating with this build `--rounds` times in the same run
(the host's speed drifts by tens of percent over an hour, so only figures from one run compare).
It prints per clip and backend the ratio REV / this build and, where
../shared/reference/speed records the original MT3 beside REV on this hardware, that ratio
times REV's recorded speed-up over the original: this build's speed-up over the original. The
original cannot be run here, so that product is the only honest way to state one.

With `--long-minutes N` it also transcribes an N-minute file (the clips repeated) from disk, which
shows the memory bound for long audio. With `--many-files N` it transcribes a folder of N files
(the clips, then cuts of them: 0-5 s, 3-12 s, the first half) the way `keras-mt3 transcribe
FOLDER` does in that build (`transcribe_many` where the build has it, else file by file), twice,
and reports the second pass (compilation excluded).

Test data is read from $KERAS_MT3_TEST_DATA (default ../shared beside the repository).
"""

import argparse
import contextlib
import json
import os
import pathlib
import subprocess
import tempfile

from backend_runs import print_result, run_per_backend

REPO = pathlib.Path(__file__).resolve().parents[1]
TEST_DATA = pathlib.Path(os.environ.get("KERAS_MT3_TEST_DATA", REPO.parent / "shared"))
CLIP_FOLDERS = (TEST_DATA / "reference" / "mt3", TEST_DATA / "reference" / "real")
SPEED_RECORD = TEST_DATA / "reference" / "speed" / "2026-12-01.json"
CHECKPOINT = pathlib.Path(
    os.environ.get("KERAS_MT3_CHECKPOINT_DIR", TEST_DATA / "checkpoints" / "mt3")
)
SAMPLE_RATE = 16000  # the clips' rate; the child passes it to builds that predate constants.py


def available_clips():
    """{name: wav path} of every clip with ground truth in the shared reference folders."""
    return {
        path.stem: path
        for folder in CLIP_FOLDERS
        for path in sorted(folder.glob("*.wav"))
        if path.with_suffix(".mid").is_file()
    }


def measure(backend, clip_paths, long_minutes, repeats, many_files=0):
    """Runs inside the per-backend child process; prints one JSON line.

    Uses only API that every compared commit has (`from_preset`, `transcribe(array,
    sample_rate=...)`, `load_audio`), because the same function runs against older checkouts.
    """
    import resource
    import time

    import numpy as np
    import soundfile

    import keras_mt3
    from keras_mt3 import MT3Transcriber
    from keras_mt3.preprocessing.audio_io import load_audio

    started = time.perf_counter()
    model = MT3Transcriber.from_preset("mt3", checkpoint_dir=CHECKPOINT)
    result = {
        "backend": backend,
        "library": str(pathlib.Path(keras_mt3.__file__).resolve().parent),
        "load_s": time.perf_counter() - started,
        "clips": {},
    }

    clips = {pathlib.Path(path).stem: load_audio(path) for path in clip_paths}
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

    if many_files:
        result["many"] = many_files_result(model, clips, many_files)

    if long_minutes:
        joined = np.concatenate(list(clips.values()))
        samples = int(long_minutes * 60 * SAMPLE_RATE)
        long_audio = np.tile(joined, int(np.ceil(samples / len(joined))))[:samples]
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


def many_files_result(model, clips, count):
    """Seconds to transcribe `count` files (the clips and cuts of them) from a folder, the
    second of two passes, as the build's own CLI would."""
    import time

    import soundfile

    rate = SAMPLE_RATE
    cuts = (
        lambda audio: audio,
        lambda audio: audio[: 5 * rate],
        lambda audio: audio[3 * rate : 12 * rate],
        lambda audio: audio[: len(audio) // 2],
    )
    pieces = [cut(audio) for cut in cuts for audio in clips.values()]
    pieces = pieces[:count]
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for index, piece in enumerate(pieces):
            paths.append(pathlib.Path(tmp) / f"{index:02d}.wav")
            soundfile.write(paths[-1], piece, SAMPLE_RATE)

        def transcribe_folder():
            if hasattr(model, "transcribe_many"):
                return [notes for _, notes in model.transcribe_many(paths, progress=False)]
            return [model.transcribe(path, progress=False) for path in paths]

        passes = []
        for _ in range(2):
            started = time.perf_counter()
            notes = transcribe_folder()
            passes.append(time.perf_counter() - started)
    return {
        "files": len(pieces),
        "audio_s": sum(len(piece) for piece in pieces) / SAMPLE_RATE,
        "first_s": passes[0],
        "compute_s": passes[1],
        "notes": sum(len(sequence.notes) for sequence in notes),
    }


@contextlib.contextmanager
def checked_out(revision):
    """A temporary detached git worktree of `revision`; yields (its root, the full commit)."""
    commit = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--verify", f"{revision}^{{commit}}"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()
    with tempfile.TemporaryDirectory(prefix="keras-mt3-baseline-") as tmp:
        root = pathlib.Path(tmp) / "tree"
        subprocess.run(
            ["git", "-C", str(REPO), "worktree", "add", "--detach", str(root), commit],
            check=True, capture_output=True,
        )
        try:
            yield root, commit
        finally:
            subprocess.run(
                ["git", "-C", str(REPO), "worktree", "remove", "--force", str(root)],
                capture_output=True,
            )


def recorded_speedups(commit):
    """{(clip, backend): original MT3 s / `commit`'s s} where the speed record has both, else {}.

    The record names the commit it timed beside the original (`keras_mt3_<commit>_<backend>`).
    """
    if not SPEED_RECORD.is_file():
        return {}
    record = json.loads(SPEED_RECORD.read_text())["seconds_per_audio_second"]
    speedups = {}
    for clip, figures in record.items():
        for key, seconds in figures.items():
            parts = key.split("_")
            if key.startswith("keras_mt3_") and commit.startswith(parts[2]):
                speedups[(clip, parts[3])] = figures["original_mt3"] / seconds
    return speedups


def run_rounds(backends, trees, rounds, child_arguments):
    """{(tree label, backend): [result per round]}, alternating trees within each round."""
    results = {}
    for _ in range(rounds):
        for backend in backends:
            for label, root in trees:
                env = {"PYTHONPATH": str(root)}
                for row in run_per_backend(__file__, [backend], child_arguments, env=env):
                    if pathlib.Path(row["library"]) != (root / "keras_mt3").resolve():
                        raise SystemExit(f"{label}: imported keras_mt3 from {row['library']}")
                    results.setdefault((label, backend), []).append(row)
    return results


def best(rows, clip):
    return min(row["clips"][clip]["compute_s"] / row["clips"][clip]["audio_s"] for row in rows)


def print_plain(results, backends, clips):
    header = f"{'backend':<11}{'clip':<34}{'audio s':>8}{'s/audio s':>10}{'compile s':>10}" \
             f"{'peak MB':>9}"
    print(header)
    print("-" * len(header))
    for backend in backends:
        rows = results.get(("this build", backend))
        if not rows:
            continue
        for clip in clips:
            print(f"{backend:<11}{clip:<34}{rows[0]['clips'][clip]['audio_s']:>8.1f}"
                  f"{best(rows, clip):>10.3f}{min(r['compile_s'] for r in rows):>10.1f}"
                  f"{max(r['peak_rss_mb_clips'] for r in rows):>9.0f}")
        print_many(backend, rows)
        print_long(backend, rows)


def print_many(backend, rows, baseline_rows=None):
    manys = [row["many"] for row in rows if "many" in row]
    if not manys:
        return
    fastest = min(manys, key=lambda many: many["compute_s"])
    label = f"{fastest['files']} files, total s"
    line = f"{backend:<11}{label:<34}"
    theirs = [row["many"] for row in baseline_rows or () if "many" in row]
    if theirs:
        theirs_s = min(many["compute_s"] for many in theirs)
        line += f"{theirs_s:>11.1f}{fastest['compute_s']:>8.1f}{theirs_s / fastest['compute_s']:>6.2f}x"
        line += f"   notes {theirs[0]['notes']} / {fastest['notes']}"
    else:
        line += f"{fastest['audio_s']:>8.0f}{fastest['compute_s']:>10.1f}"
    print(line)


def print_long(backend, rows):
    longs = [row["long"] for row in rows if "long" in row]
    if longs:
        fastest = min(longs, key=lambda long: long["compute_s"])
        print(f"{backend:<11}{'long file (%.0f s)' % fastest['audio_s']:<34}"
              f"{fastest['audio_s']:>8.0f}{fastest['compute_s'] / fastest['audio_s']:>10.3f}"
              f"{'':>10}{max(long['peak_rss_mb'] for long in longs):>9.0f}")


def print_against(results, backends, clips, baseline, commit, speedups):
    """Per clip: both builds' s/audio s (best over rounds), their ratio, and the speed-up over
    the original implied by the recorded baseline-vs-original ratio."""
    header = f"{'backend':<11}{'clip':<34}{baseline[:10]:>11}{'this':>8}{'ratio':>7}" \
             f"{'vs original':>12}"
    print(header)
    print("-" * len(header))
    for backend in backends:
        ours, theirs = results.get(("this build", backend)), results.get((baseline, backend))
        if not ours or not theirs:
            print(f"{backend:<11}(no result for both builds)")
            continue
        ours_total = theirs_total = original_total = 0.0
        for clip in clips:
            ratio = best(theirs, clip) / best(ours, clip)
            speedup = speedups.get((clip, backend))
            implied = f"{ratio * speedup:>11.1f}x" if speedup else f"{'n/a':>12}"
            print(f"{backend:<11}{clip:<34}{best(theirs, clip):>11.3f}{best(ours, clip):>8.3f}"
                  f"{ratio:>6.2f}x{implied}")
            if speedup:
                audio_s = ours[0]["clips"][clip]["audio_s"]
                ours_total += audio_s * best(ours, clip)
                theirs_total += audio_s * best(theirs, clip)
                original_total += audio_s * best(theirs, clip) * speedup
        if ours_total:
            print(f"{backend:<11}{'clip set (total time, recorded clips)':<34}"
                  f"{'':>11}{'':>8}{theirs_total / ours_total:>6.2f}x"
                  f"{original_total / ours_total:>11.1f}x")
        print_many(backend, ours, theirs)
        print_long(backend, ours)
    if not speedups:
        print(f"\n(no original-MT3 figures recorded beside {commit[:10]} in {SPEED_RECORD})")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", nargs="+", default=["jax", "tensorflow", "torch"])
    parser.add_argument("--clips", nargs="+", help="clip names (default: all shared clips)")
    parser.add_argument("--baseline", help="commit to time against in the same run")
    parser.add_argument("--rounds", type=int, default=1, help="alternations with the baseline")
    parser.add_argument("--long-minutes", type=float, default=0.0)
    parser.add_argument("--many-files", type=int, default=0, help="also time a folder of N files")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--clip-paths", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        measure(args.child, args.clip_paths, args.long_minutes, args.repeats, args.many_files)
        return

    known = available_clips()
    names = args.clips or list(known)
    unknown = sorted(set(names) - set(known))
    if unknown:
        parser.error(f"unknown clips {unknown}; known: {', '.join(known)}")
    child_arguments = ["--repeats", args.repeats, "--long-minutes", args.long_minutes,
                       "--many-files", args.many_files,
                       "--clip-paths", *(known[name] for name in names)]
    if not args.baseline:
        results = run_rounds(args.backends, [("this build", REPO)], args.rounds, child_arguments)
        print_plain(results, args.backends, names)
        return
    with checked_out(args.baseline) as (root, commit):
        results = run_rounds(
            args.backends, [(args.baseline, root), ("this build", REPO)], args.rounds,
            child_arguments,
        )
    print_against(results, args.backends, names, args.baseline, commit, recorded_speedups(commit))


if __name__ == "__main__":
    main()
