"""URMP (chamber-music ensembles): the mix `AuMix_*.wav` + per-part note annotations.

Layout: `<root>/NN_Piece_inst1_inst2.../` holding `AuMix_<folder>.wav` and, per part k,
`Notes_<k>_<inst>_NN_Piece.txt` whose lines are `onset_seconds frequency_hz duration_seconds`.
Frequencies are rounded to the nearest MIDI pitch; each part gets MT3's program for its
instrument code. MT3 validates on pieces 1, 2, 12, 13, 24, 25, 31, 38 and 39 (paper App. B);
those get `split="validation"`, the rest `"train"`.
"""

import functools
import math
import pathlib
import re

from note_seq.protobuf import music_pb2

from keras_mt3.constants import DEFAULT_VELOCITY
from keras_mt3.data.pairs import TranscriptionPair
from keras_mt3.errors import KerasMT3Error

DATASET = "urmp"
# MT3's program per URMP instrument code (docs/mt3_details.md#programs).
URMP_INSTRUMENT_PROGRAMS = {
    "vn": 40,
    "va": 41,
    "vc": 42,
    "db": 43,
    "tpt": 56,
    "tbn": 57,
    "tba": 58,
    "hn": 60,
    "sax": 64,
    "ob": 68,
    "bn": 70,
    "cl": 71,
    "fl": 73,
}
VALIDATION_PIECES = frozenset({1, 2, 12, 13, 24, 25, 31, 38, 39})
_PIECE_FOLDER = re.compile(r"^(\d+)_")
_NOTES_FILE = re.compile(r"^Notes_(\d+)_([a-z]+)_")


def urmp_pairs(root, split=None):
    """Pairs of every piece folder under `root` (of `split`, if given)."""
    root = pathlib.Path(root).expanduser()
    if not root.is_dir():
        raise KerasMT3Error(f"URMP folder {root} does not exist")
    pairs = []
    for piece in sorted(path for path in root.iterdir() if path.is_dir()):
        match = _PIECE_FOLDER.match(piece.name)
        if match is None:
            continue  # e.g. Supplementary_Files
        piece_split = "validation" if int(match.group(1)) in VALIDATION_PIECES else "train"
        if split is not None and piece_split != split:
            continue
        pairs.append(
            TranscriptionPair(
                name=f"{DATASET}/{piece.name}",
                audio=piece / f"AuMix_{piece.name}.wav",
                notes=functools.partial(load_urmp_notes, piece),
                dataset=DATASET,
                split=piece_split,
                cache_token=_stamp(piece),
            )
        )
    return pairs


def load_urmp_notes(piece):
    """One NoteSequence with the notes of every `Notes_*.txt` part file of a piece folder."""
    piece = pathlib.Path(piece)
    files = sorted(piece.glob("Notes_*.txt"))
    if not files:
        raise FileNotFoundError(f"no Notes_*.txt annotation files in {piece}")
    sequence = music_pb2.NoteSequence(ticks_per_quarter=220)
    for path in files:
        match = _NOTES_FILE.match(path.name)
        if match is None or match.group(2) not in URMP_INSTRUMENT_PROGRAMS:
            raise ValueError(f"{path.name}: unknown URMP part or instrument code")
        program = URMP_INSTRUMENT_PROGRAMS[match.group(2)]
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != 3:
                raise ValueError(f"{path.name} line {number}: expected onset, frequency, duration")
            onset, frequency, duration = (float(field) for field in fields)
            if frequency <= 0 or duration <= 0:
                continue
            sequence.notes.add(
                pitch=int(round(69 + 12 * math.log2(frequency / 440.0))),
                velocity=DEFAULT_VELOCITY,
                program=program,
                start_time=onset,
                end_time=onset + duration,
                instrument=int(match.group(1)),
            )
    sequence.total_time = max((note.end_time for note in sequence.notes), default=0.0)
    return sequence


def _stamp(piece):
    stamps = []
    for path in sorted(piece.glob("Notes_*.txt")):
        stat = path.stat()
        stamps.append(f"{path.name}:{stat.st_size}:{stat.st_mtime_ns}")
    return ",".join(stamps)
