"""What the REST and gRPC clients share: audio in, MIDI out. Needs no keras-mt3 install.

The exported model does all of MT3 (framing, spectrogram, model, detokenization) in the
server, so a client only has to send 16 kHz mono float32 samples and turn the returned note
tensors into a MIDI file. Dependencies: numpy, soundfile, soxr, pretty_midi.
"""

import argparse
import os
import pathlib
import sys
import tempfile

import numpy as np

# What the model's `waveform` input expects: keras_mt3.constants.SAMPLE_RATE, copied so that a
# client needs no keras-mt3 install (a test checks that the two agree).
SAMPLE_RATE = 16000
NOTE_FIELDS = ("onset_times", "offset_times", "pitches", "velocities", "programs", "is_drum")


def load_audio(path):
    """Decodes an audio file to mono float32 at 16 kHz (channels averaged, soxr 'HQ')."""
    import soundfile
    import soxr

    samples, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    mono = samples.mean(axis=1)
    if rate != SAMPLE_RATE:
        mono = soxr.resample(mono, rate, SAMPLE_RATE, quality="HQ")
    mono = np.ascontiguousarray(mono, dtype=np.float32)
    if not np.isfinite(mono).all():
        raise ValueError(f"{path} holds NaN or infinite samples")
    return mono


def notes_from_outputs(outputs, row=0):
    """Notes of one clip from the signature's outputs (`{name: array}`), as dicts."""
    count = int(np.asarray(outputs["num_notes"]).reshape(-1)[row])
    columns = {name: np.asarray(outputs[name])[row, :count] for name in NOTE_FIELDS}
    return [
        {
            "start": float(columns["onset_times"][i]),
            "end": float(columns["offset_times"][i]),
            "pitch": int(columns["pitches"][i]),
            "velocity": int(columns["velocities"][i]),
            "program": int(columns["programs"][i]),
            "is_drum": bool(columns["is_drum"][i]),
        }
        for i in range(count)
    ]


def write_midi(notes, path):
    """Writes `notes` as a MIDI file, one track per (program, drums); replaces `path`
    atomically (a temporary file beside it is renamed into place)."""
    import pretty_midi

    midi = pretty_midi.PrettyMIDI()
    tracks = {}
    for note in sorted(notes, key=lambda note: (note["start"], note["pitch"])):
        key = (note["program"], note["is_drum"])
        if key not in tracks:
            name = "Drums" if note["is_drum"] else pretty_midi.program_to_instrument_name(key[0])
            tracks[key] = pretty_midi.Instrument(program=key[0], is_drum=key[1], name=name)
            midi.instruments.append(tracks[key])
        tracks[key].notes.append(
            pretty_midi.Note(
                velocity=note["velocity"], pitch=note["pitch"], start=note["start"], end=note["end"]
            )
        )
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(
        prefix=f".{path.name}.", suffix=".tmp", dir=path.parent
    )
    try:
        with os.fdopen(descriptor, "wb") as handle:
            midi.write(handle)
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise


def argument_parser(description, default_address):
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "audio", help="audio file (wav, flac, ogg, mp3, ...; any rate, mixed to mono)"
    )
    parser.add_argument("-o", "--output", help="MIDI file to write (default: AUDIO with .mid)")
    parser.add_argument("--server", default=default_address, help=f"default: {default_address}")
    parser.add_argument("--model", default="mt3", help="model name in models.config")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds to wait")
    return parser


def output_path(args):
    if args.output:
        return pathlib.Path(args.output)
    return pathlib.Path(args.audio).with_suffix(".mid")


def report(notes, audio_seconds, path):
    programs = sorted({"drums" if n["is_drum"] else f"program {n['program']}" for n in notes})
    print(f"{len(notes)} notes ({', '.join(programs) or 'none'}) from {audio_seconds:.1f} s "
          f"of audio -> {path}")


def fail(message):
    print(f"error: {message}", file=sys.stderr)
    return 1


def run(predict, args, errors=(OSError, RuntimeError, ValueError)):
    """Sends `args.audio` through `predict(server, model, samples, timeout)` and writes the MIDI;
    returns the exit code. `errors` are reported in one line instead of a traceback."""
    try:
        samples = load_audio(args.audio)
        outputs = predict(args.server, args.model, samples, args.timeout)
    except errors as error:
        return fail(str(error))
    notes = notes_from_outputs(outputs)
    path = output_path(args)
    write_midi(notes, path)
    report(notes, len(samples) / SAMPLE_RATE, path)
    return 0
