"""GuitarSet (solo acoustic guitar, hexaphonic annotations): JAMS note annotations + audio.

Layout: `<root>/annotation/NAME.jams` and the audio in `<root>/audio_mono-mic/NAME_mic.wav`
(`audio="mic"`, default) or `<root>/audio_mono-pickup_mix/NAME_mix.wav` (`audio="mix"`). The
six `note_midi` annotations (one per string) are merged; pitches are rounded to the nearest
MIDI note and every note is program 24 (acoustic guitar), as in MT3. GuitarSet has no official
split: pairs carry `split=None` (filter them by name, e.g. player id `NAME[:2]`).
"""

import functools
import json
import pathlib

from note_seq.protobuf import music_pb2

from keras_mt3.constants import DEFAULT_VELOCITY
from keras_mt3.data.pairs import TranscriptionPair
from keras_mt3.errors import KerasMT3Error

DATASET = "guitarset"
GUITAR_PROGRAM = 24
AUDIO_LAYOUTS = {
    "mic": ("audio_mono-mic", "_mic.wav"),
    "mix": ("audio_mono-pickup_mix", "_mix.wav"),
}


def guitarset_pairs(root, audio="mic"):
    """Pairs of every annotation file under `<root>/annotation`."""
    if audio not in AUDIO_LAYOUTS:
        raise KerasMT3Error(f"audio must be one of {sorted(AUDIO_LAYOUTS)}, got {audio!r}")
    root = pathlib.Path(root).expanduser()
    annotations = root / "annotation"
    if not annotations.is_dir():
        raise KerasMT3Error(f"{annotations} does not exist; point to the unpacked GuitarSet folder")
    folder, suffix = AUDIO_LAYOUTS[audio]
    return [
        TranscriptionPair(
            name=f"{DATASET}/{jams.stem}",
            audio=root / folder / f"{jams.stem}{suffix}",
            notes=functools.partial(load_jams_notes, jams),
            dataset=DATASET,
            cache_token=_stamp(jams),
        )
        for jams in sorted(annotations.glob("*.jams"))
    ]


def load_jams_notes(path, program=GUITAR_PROGRAM):
    """A NoteSequence of every `note_midi` annotation in a JAMS file."""
    path = pathlib.Path(path)
    data = json.loads(path.read_text(encoding="utf-8"))
    sequence = music_pb2.NoteSequence(ticks_per_quarter=220)
    for annotation in data.get("annotations", []):
        if annotation.get("namespace") != "note_midi":
            continue
        for time, duration, value in _observations(annotation.get("data")):
            if duration <= 0:
                continue
            sequence.notes.add(
                pitch=int(round(value)),
                velocity=DEFAULT_VELOCITY,
                program=program,
                start_time=time,
                end_time=time + duration,
            )
    sequence.total_time = max((note.end_time for note in sequence.notes), default=0.0)
    return sequence


def _observations(data):
    """`(time, duration, value)` floats from JAMS data: a list of observation records, or (in
    older files) a dict of parallel lists."""
    if isinstance(data, dict):
        columns = [data.get(key, []) for key in ("time", "duration", "value")]
        records = zip(*columns)
    elif isinstance(data, list):
        records = ((obs["time"], obs["duration"], obs["value"]) for obs in data)
    else:
        raise ValueError("a note_midi annotation without data")
    return [(float(time), float(duration), float(value)) for time, duration, value in records]


def _stamp(path):
    stat = path.stat()
    return f"{stat.st_size}:{stat.st_mtime_ns}"
