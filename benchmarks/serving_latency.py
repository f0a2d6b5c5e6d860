"""Latency and throughput of the exported SavedModel's signatures, as a server would run them.

    python benchmarks/serving_latency.py [--model-dir DIR] [--request-batch-sizes 1 8] [--repeats 3]

Without --model-dir the official checkpoint is exported first (`keras-mt3 export`, in a child
process). The measurements run in this process, which loads the SavedModel with plain
TensorFlow (`tf.saved_model.load`, the same runtime TF Serving uses) and imports nothing of
keras_mt3 but its constants, on a 20 s clip (the reference piano recording):

- `serving_default` (audio in, notes out): a request holds `batch` copies of the clip;
  latency is per request, throughput is seconds of audio per second of compute.
- token signatures (`decode_tokens`, `decode_xla`): a request holds `batch` log-mel segments
  (2.048 s each) of the same clip.

The first request is timed separately: for the XLA signatures it includes compilation. Test
data comes from $KERAS_MT3_TEST_DATA (default ../shared beside the repository).
"""

import argparse
import os
import pathlib
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time

from keras_mt3.constants import SAMPLE_RATE, SEGMENT_SECONDS

REPO = pathlib.Path(__file__).resolve().parents[1]
TEST_DATA = pathlib.Path(os.environ.get("KERAS_MT3_TEST_DATA", REPO.parent / "shared"))
REFERENCE = TEST_DATA / "reference" / "mt3"
CHECKPOINT = pathlib.Path(
    os.environ.get("KERAS_MT3_CHECKPOINT_DIR", TEST_DATA / "checkpoints" / "mt3")
)
CLIP = "piano_chorale"
CLIP_SECONDS = 20.0
AUDIO_SIGNATURES = ("serving_default",)
TOKEN_SIGNATURES = ("decode_tokens", "decode_xla")


# Exported in a TensorFlow-backend process of its own, as `keras-mt3 export` does it.
EXPORT = """
import sys
from keras_mt3 import MT3Transcriber, export
model = MT3Transcriber.from_preset("mt3", checkpoint_dir=sys.argv[2])
export(model, sys.argv[1], max_audio_seconds=60, progress=False)
"""


def export_official(model_dir):
    command = [sys.executable, "-c", EXPORT, str(model_dir), str(CHECKPOINT)]
    environment = dict(
        os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="2", KERAS_BACKEND="tensorflow"
    )
    started = time.perf_counter()
    subprocess.run(command, check=True, env=environment)
    return time.perf_counter() - started


def requests_for(signature, batch_size):
    """`(inputs, audio seconds per request)` for one request of `batch_size`."""
    import numpy as np
    import soundfile

    if signature in AUDIO_SIGNATURES:
        clip, rate = soundfile.read(REFERENCE / f"{CLIP}.wav", dtype="float32")
        assert rate == SAMPLE_RATE
        clip = clip[: int(CLIP_SECONDS * SAMPLE_RATE)]
        waveform = np.tile(clip[None], (batch_size, 1))
        lengths = np.full(batch_size, len(clip), np.int32)
        return {"waveform": waveform, "lengths": lengths}, batch_size * len(clip) / SAMPLE_RATE
    with np.load(REFERENCE / f"{CLIP}.inputs.npz") as inputs:
        frames = inputs["encoder_input_tokens"][:batch_size].astype("float32")
    return {"encoder_inputs": frames}, batch_size * SEGMENT_SECONDS


def measure(model_dir, signatures, request_batch_sizes, repeats):
    import tensorflow as tf

    started = time.perf_counter()
    model = tf.saved_model.load(str(model_dir))
    load_seconds = time.perf_counter() - started
    loaded_rss_gb = peak_rss_gb()
    rows = []
    for signature in signatures:
        function = model.signatures[signature]
        for batch_size in request_batch_sizes:
            inputs, audio_seconds = requests_for(signature, batch_size)
            inputs = {name: tf.constant(value) for name, value in inputs.items()}
            started = time.perf_counter()
            outputs = function(**inputs)
            first = time.perf_counter() - started
            times = []
            for _ in range(repeats):
                started = time.perf_counter()
                outputs = function(**inputs)
                times.append(time.perf_counter() - started)
            latency = statistics.median(times)
            if "num_notes" in outputs:
                detail = f"{int(outputs['num_notes'][0])} notes per clip"
            else:
                detail = f"{int(tf.reduce_sum(tf.cast(outputs['tokens'] > 1, tf.int32)))} tokens"
                detail += " in all"
            rows.append((signature, batch_size, audio_seconds, first, latency, min(times),
                         peak_rss_gb(), detail))
            print(f"  measured {signature} batch {batch_size}: {latency:.2f} s", file=sys.stderr)
    return load_seconds, loaded_rss_gb, rows


def peak_rss_gb():
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def print_table(load_seconds, loaded_rss_gb, rows, export_seconds):
    # Other work on the machine slows every row alike; the load average says how much.
    print(f"\nCPU: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.1f}; "
          f"SavedModel loaded in {load_seconds:.1f} s, {loaded_rss_gb:.2f} GB resident"
          + (f" (exported in {export_seconds:.0f} s)" if export_seconds else ""))
    header = ("signature", "batch", "audio s/request", "first request s", "latency s (median)",
              "best s", "x realtime", "peak RSS GB", "output")
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" for _ in header) + "|")
    for signature, batch, audio, first, latency, best, rss, detail in rows:
        cells = (signature, str(batch), f"{audio:.1f}", f"{first:.2f}", f"{latency:.2f}",
                 f"{best:.2f}", f"{audio / latency:.1f}", f"{rss:.2f}", detail)
        print("| " + " | ".join(cells) + " |")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", help="an exported SavedModel (default: export one now)")
    parser.add_argument("--request-batch-sizes", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--signatures", nargs="+", default=list(AUDIO_SIGNATURES + TOKEN_SIGNATURES)
    )
    args = parser.parse_args()
    if not (REFERENCE / f"{CLIP}.wav").is_file():
        sys.exit(f"reference clip not found in {REFERENCE}; set KERAS_MT3_TEST_DATA")
    export_seconds = None
    with tempfile.TemporaryDirectory(prefix="mt3_serving_benchmark_") as scratch:
        model_dir = args.model_dir
        if model_dir is None:
            model_dir = pathlib.Path(scratch) / "mt3" / "1"
            export_seconds = export_official(model_dir)
        results = measure(model_dir, args.signatures, args.request_batch_sizes, args.repeats)
    print_table(*results, export_seconds)


if __name__ == "__main__":
    main()
