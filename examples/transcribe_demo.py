"""Transcribe the bundled demo clip (a Bach chorale played on piano) to MIDI.

    KERAS_BACKEND=jax python examples/transcribe_demo.py [-o demo.mid] [--checkpoint-dir DIR]

The official checkpoint is read from --checkpoint-dir, else $KERAS_MT3_CHECKPOINT_DIR, else the
project's test-data copy in ../shared/checkpoints/mt3 when present, else it is downloaded once
from the public MT3 bucket into the cache.
"""

import argparse
import os
import pathlib
import time

DEFAULT_TEST_DATA_CHECKPOINT = (
    pathlib.Path(__file__).resolve().parents[1].parent / "shared" / "checkpoints" / "mt3"
)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", default="demo.mid", help="MIDI file to write")
    parser.add_argument("--checkpoint-dir", help="directory of the official MT3 checkpoint")
    args = parser.parse_args()

    checkpoint_dir = args.checkpoint_dir or os.environ.get("KERAS_MT3_CHECKPOINT_DIR")
    if checkpoint_dir is None and (DEFAULT_TEST_DATA_CHECKPOINT / "checkpoint").is_file():
        checkpoint_dir = DEFAULT_TEST_DATA_CHECKPOINT

    from keras_mt3 import MT3Transcriber
    from keras_mt3.demo import demo_clip_path

    started = time.perf_counter()
    model = MT3Transcriber.from_preset("mt3", checkpoint_dir=checkpoint_dir)
    loaded = time.perf_counter()
    notes, details = model.transcribe(demo_clip_path(), return_details=True)
    model_seconds = time.perf_counter() - loaded
    from keras_mt3.midi_io import save_midi

    save_midi(notes, args.output)
    instruments = sorted({("drums" if n.is_drum else f"program {n.program}") for n in notes.notes})
    print(
        f"{demo_clip_path().name}: {len(notes.notes)} notes over {notes.total_time:.1f} s, "
        f"instruments: {', '.join(instruments) or 'none'}; {details['num_segments']} segments; "
        f"wrote {args.output} (load {loaded - started:.1f} s, transcribe {model_seconds:.1f} s)"
    )


if __name__ == "__main__":
    main()
