"""Start-up time: how long `MT3Transcriber.from_preset("mt3")` takes in a fresh process.

    python benchmarks/preset_startup.py [--backends jax tensorflow torch] [--calls 2]

Per backend, `--calls` processes run one after another on one empty cache (a temporary
$KERAS_MT3_CACHE): the first converts the official T5X checkpoint into the cache, the later ones
load that conversion. Each reports the seconds of `from_preset` alone (the import of keras-mt3 and
Keras before it is timed apart). The checkpoint is read from $KERAS_MT3_CHECKPOINT_DIR (default
../shared/checkpoints/mt3 beside the repository), so no download is timed.
"""

import argparse
import os
import pathlib
import sys
import tempfile
import time

from backend_runs import print_result, run_per_backend

REPO = pathlib.Path(__file__).resolve().parents[1]
TEST_DATA = pathlib.Path(os.environ.get("KERAS_MT3_TEST_DATA", REPO.parent / "shared"))
CHECKPOINT = pathlib.Path(
    os.environ.get("KERAS_MT3_CHECKPOINT_DIR", TEST_DATA / "checkpoints" / "mt3")
)


def child(cache, call):
    os.environ["KERAS_MT3_CACHE"] = cache
    started = time.perf_counter()
    import keras

    from keras_mt3.models.mt3_transcriber import MT3Transcriber

    imported = time.perf_counter()
    MT3Transcriber.from_preset("mt3", checkpoint_dir=CHECKPOINT, progress=False)
    loaded = time.perf_counter()
    print_result(
        {
            "backend": keras.backend.backend(),
            "call": int(call),
            "import_seconds": imported - started,
            "from_preset_seconds": loaded - imported,
        }
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", nargs="+", default=["jax", "tensorflow", "torch"])
    parser.add_argument("--calls", type=int, default=2)
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(*args.child[1:])
    rows = []
    for backend in args.backends:
        with tempfile.TemporaryDirectory() as cache:
            for call in range(1, args.calls + 1):
                rows += run_per_backend(__file__, [backend], [cache, call])
    print(f"from_preset('mt3') in a fresh process, checkpoint read from {CHECKPOINT}\n")
    print("backend     call  import s  from_preset s")
    print("----------  ----  --------  -------------")
    for row in rows:
        print(
            f"{row['backend']:<10}  {row['call']:>4}  {row['import_seconds']:>8.1f}  "
            f"{row['from_preset_seconds']:>13.2f}"
        )


if __name__ == "__main__":
    sys.exit(main())
