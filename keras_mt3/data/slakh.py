"""Slakh2100 (synthesized multi-track mixes): `mix.flac` + per-stem MIDI, programs by class.

Layout: `<root>/<split>/TrackNNNNN/` (or `<root>/TrackNNNNN/` without splits) holding
`metadata.yaml`, the mix (`mix.flac` or `mix.wav`) and `MIDI/Sxx.mid` per stem. Stems that are
not rendered into the mix are left out; a rendered stem whose MIDI is missing makes the track
unusable (its notes would be absent from the targets).

Programs: MT3 trains Slakh with one program per instrument class (the `full` granularity, paper
Table 7). A stem's General MIDI `program_num` is mapped to its class's program: the largest
class program not above it (e.g. 30 Overdriven/Distortion Guitar -> 29, 34 Picked Bass -> 33).
Drum stems become `is_drum` notes. `program_map="original"` keeps the MIDI programs instead.

As in MT3, each stem's sustain pedal is applied to its own notes, and tracks used for training
(every split but validation and test) get overlapping repeats of a note trimmed afterwards:
stems of one class share a program, so their notes can overlap, which the codec cannot encode.
"""

import functools
import pathlib

import yaml
from note_seq import sequences_lib
from note_seq.protobuf import music_pb2

from keras_mt3.data.pairs import TranscriptionPair
from keras_mt3.errors import KerasMT3Error
from keras_mt3.midi_io import load_midi

DATASET = "slakh"
SPLITS = ("train", "validation", "test")
# MT3 keeps the notes of its Slakh evaluation tracks as they are.
UNTRIMMED_SPLITS = ("validation", "test")
MIX_FILES = ("mix.flac", "mix.wav")
# Slakh2100 instrument classes and the program MT3 writes for each (docs/mt3_details.md#programs).
SLAKH_CLASS_PROGRAMS = {
    "Acoustic Piano": 0,
    "Electric Piano": 4,
    "Chromatic Percussion": 8,
    "Organ": 16,
    "Acoustic Guitar": 24,
    "Clean Electric Guitar": 26,
    "Distorted Electric Guitar": 29,
    "Acoustic Bass": 32,
    "Electric Bass": 33,
    "Violin": 40,
    "Viola": 41,
    "Cello": 42,
    "Contrabass": 43,
    "Orchestral Harp": 46,
    "Timpani": 47,
    "String Ensemble": 48,
    "Synth Strings": 50,
    "Choir and Voice": 52,
    "Orchestral Hit": 55,
    "Trumpet": 56,
    "Trombone": 57,
    "Tuba": 58,
    "French Horn": 60,
    "Brass Section": 61,
    "Soprano/Alto Sax": 64,
    "Tenor Sax": 66,
    "Baritone Sax": 67,
    "Oboe": 68,
    "English Horn": 69,
    "Bassoon": 70,
    "Clarinet": 71,
    "Pipe": 73,
    "Synth Lead": 80,
    "Synth Pad": 88,
}
PROGRAM_MAPS = ("classes", "original")
_CLASS_PROGRAMS = sorted(SLAKH_CLASS_PROGRAMS.values())


def slakh_class_program(program_num):
    """The class program of a General MIDI program (the largest class program <= it)."""
    return max(program for program in _CLASS_PROGRAMS if program <= int(program_num))


def slakh_pairs(root, split=None, program_map="classes"):
    """Pairs of every track under `root` (of `split`, if given; the `omitted` folder of the
    redux release is never used)."""
    if program_map not in PROGRAM_MAPS:
        raise KerasMT3Error(f"program_map must be one of {PROGRAM_MAPS}, got {program_map!r}")
    root = pathlib.Path(root).expanduser()
    if not root.is_dir():
        raise KerasMT3Error(f"Slakh folder {root} does not exist")
    pairs = []
    for track, track_split in _tracks(root):
        if split is not None and track_split != split:
            continue
        mix = next((track / name for name in MIX_FILES if (track / name).is_file()), None)
        pairs.append(
            TranscriptionPair(
                name=f"{DATASET}/{track.name}",
                audio=mix if mix is not None else track / MIX_FILES[0],
                notes=functools.partial(load_slakh_notes, track, program_map),
                dataset=DATASET,
                split=track_split,
                cache_token=f"slakh:{program_map}:{_source_stamp(track)}",
                trim_overlaps=track_split not in UNTRIMMED_SPLITS,
            )
        )
    return pairs


def load_slakh_notes(track, program_map="classes"):
    """One NoteSequence with the notes of every rendered stem of a track folder, each stem's
    sustain pedal applied."""
    track = pathlib.Path(track)
    metadata_path = track / "metadata.yaml"
    if not metadata_path.is_file():
        raise FileNotFoundError(f"{metadata_path} does not exist")
    try:
        metadata = yaml.safe_load(metadata_path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise ValueError(f"{metadata_path} is not valid YAML: {error}") from None
    stems = metadata.get("stems") if isinstance(metadata, dict) else None
    if not isinstance(stems, dict):
        raise ValueError(f"{metadata_path} has no `stems` section")
    midi_dir = track / str(metadata.get("midi_dir") or "MIDI")
    combined = music_pb2.NoteSequence(ticks_per_quarter=220)
    for instrument, (stem_id, stem) in enumerate(sorted(stems.items())):
        if not stem.get("audio_rendered", True):
            continue
        midi_path = midi_dir / f"{stem_id}.mid"
        if not midi_path.is_file():
            raise FileNotFoundError(f"{midi_path} (stem {stem_id} is in the mix) does not exist")
        is_drum = bool(stem.get("is_drum", False))
        program = 0 if is_drum else int(stem.get("program_num", 0))
        if program_map == "classes" and not is_drum:
            program = slakh_class_program(program)
        # Before stems are merged (and trimmed), so a pedal holds only its own stem's notes.
        stem_notes = sequences_lib.apply_sustain_control_changes(load_midi(midi_path))
        for note in stem_notes.notes:
            combined.notes.add(
                pitch=note.pitch,
                velocity=note.velocity,
                start_time=note.start_time,
                end_time=note.end_time,
                program=program,
                is_drum=is_drum,
                instrument=instrument,
            )
    combined.total_time = max((note.end_time for note in combined.notes), default=0.0)
    return combined


def _tracks(root):
    """`(track folder, split)` of every TrackNNNNN folder, sorted."""
    found = []
    for split in SPLITS:
        if (root / split).is_dir():
            found += [(track, split) for track in (root / split).iterdir() if _is_track(track)]
    found += [(track, None) for track in root.iterdir() if _is_track(track)]
    return sorted(found, key=lambda item: (item[0].name, item[1] or ""))


def _is_track(path):
    return path.is_dir() and path.name.startswith("Track")


def _source_stamp(track):
    """Sizes and modification times of the files the notes are read from (for the cache)."""
    stamps = []
    for path in [track / "metadata.yaml", *sorted((track / "MIDI").glob("*.mid"))]:
        try:
            stat = path.stat()
        except OSError:
            continue
        stamps.append(f"{path.name}:{stat.st_size}:{stat.st_mtime_ns}")
    return ",".join(stamps)
