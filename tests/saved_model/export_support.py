"""Helpers shared by the export tests: a tiny model, a test clip, fresh interpreters."""

import os
import pathlib
import subprocess
import sys

import numpy as np

from keras_mt3.constants import SAMPLE_RATE

EXPORT_TESTS_DIR = pathlib.Path(__file__).resolve().parent
REPO_ROOT = EXPORT_TESTS_DIR.parents[1]

TINY_DECODE_LENGTH = 32
TINY_MAX_AUDIO_SECONDS = 12.0


def build_tiny_backbone(seed=0, max_decoder_length=TINY_DECODE_LENGTH):
    """A one-layer MT3Backbone whose greedy output looks like MT3 token streams.

    With random weights nearly every argmax is an id that decodes to nothing, so the logits
    are restricted to EOS, short shifts, a few pitches/programs/drums, both velocities and
    tie: decoded segments then hold onsets, offsets, tie sections, drums and invalid events.
    """
    import keras
    from helpers import tiny_mt3_backbone

    from keras_mt3.codec.event_codec import Event
    from keras_mt3.codec.vocabulary import MT3_VOCABULARY, NUM_SPECIAL_TOKENS
    from keras_mt3.constants import EOS_ID

    backbone = tiny_mt3_backbone(
        seed,
        hidden_dim=32,
        intermediate_dim=48,
        max_decoder_length=max_decoder_length,
        dropout=0.0,
    )
    codec = MT3_VOCABULARY.codec
    events = (
        [Event("shift", value) for value in range(1, 60, 3)]
        + [Event("pitch", value) for value in range(58, 70)]
        + [Event("velocity", 0), Event("velocity", 1), Event("tie", 0)]
        + [Event("program", value) for value in (0, 33)]
        + [Event("drum", value) for value in (36, 38)]
    )
    favoured = [EOS_ID] + [codec.encode_event(event) + NUM_SPECIAL_TOKENS for event in events]
    mask = np.zeros(MT3_VOCABULARY.num_embeddings, "float32")
    mask[favoured] = 1.0
    kernel = keras.ops.convert_to_numpy(backbone.logits_dense.kernel)
    backbone.logits_dense.kernel.assign(kernel * mask * 10.0)
    return backbone


def tiny_vocabulary():
    """MT3's codec without tie sections.

    A random decoder soon repeats one id; without ties, repeated pitch ids are onsets that
    end the previous note, so the tiny model's segments turn into audio-dependent notes (with
    ties they would stay inside the tie section). The official checkpoint's tests cover ties.
    """
    from keras_mt3.codec.vocabulary import VocabularyConfig

    return VocabularyConfig(use_ties=False, name="mt3_without_ties")


def tiny_transcriber(backbone):
    from keras_mt3.models.mt3_transcriber import MT3Transcriber

    return MT3Transcriber(
        backbone,
        vocabulary=tiny_vocabulary(),
        decode_batch_size=4,
        max_decode_length=TINY_DECODE_LENGTH,
    )


def synthetic_clip(seconds, seed=0):
    """A few seconds of noisy tones at 16 kHz (float32)."""
    rng = np.random.RandomState(seed)
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    tones = sum(np.sin(2 * np.pi * f * t) * (t % 1.0 < 0.5) for f in (220.0, 330.0, 440.0))
    return (0.2 * tones + 0.05 * rng.normal(size=t.shape)).astype("float32")



def run_in_fresh_python(script, *args, timeout=600):
    """Runs `script` (a file in this folder) in a new interpreter; returns the result."""
    environment = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run(
        [sys.executable, str(EXPORT_TESTS_DIR / script), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=environment,
    )


NOTE_FIELDS = ("onset_times", "offset_times", "pitches", "velocities", "programs", "is_drum")


def notes_from_outputs(outputs, row, prefix=""):
    """Note tuples (onset, offset, pitch, velocity, program, is_drum) of one clip's row in a
    signature's outputs (a dict of arrays, keys optionally prefixed)."""
    count = int(outputs[f"{prefix}num_notes"][row])
    columns = [np.asarray(outputs[f"{prefix}{field}"])[row, :count] for field in NOTE_FIELDS]
    return [
        (float(onset), float(offset), int(pitch), int(velocity), int(program), bool(drum))
        for onset, offset, pitch, velocity, program, drum in zip(*columns)
    ]


def float32_notes(note_sequence):
    """A NoteSequence's notes as the exported signatures return them (float32 times)."""
    return [
        (
            float(np.float32(note.start_time)),
            float(np.float32(note.end_time)),
            note.pitch,
            note.velocity,
            note.program,
            note.is_drum,
        )
        for note in note_sequence.notes
    ]


def padded_audio(clips):
    """`(waveform [batch, longest], lengths [batch])` as the audio signatures take them."""
    lengths = np.array([len(clip) for clip in clips], np.int32)
    waveform = np.zeros((len(clips), max(lengths.tolist() + [0])), np.float32)
    for row, clip in enumerate(clips):
        waveform[row, : len(clip)] = clip
    return waveform, lengths


def run_signatures(model_dir, requests, work_dir):
    """Runs `{request key: {input: array}}` through saved_model_runner.py in a fresh
    interpreter; returns `{request key: {output: array}}`."""
    requests_path = pathlib.Path(work_dir) / "requests.npz"
    results_path = pathlib.Path(work_dir) / "results.npz"
    np.savez(
        requests_path,
        **{
            f"{key}/{name}": value
            for key, inputs in requests.items()
            for name, value in inputs.items()
        },
    )
    result = run_in_fresh_python("saved_model_runner.py", model_dir, requests_path, results_path)
    assert result.returncode == 0, result.stderr[-4000:]
    outputs = {key: {} for key in requests}
    with np.load(results_path) as arrays:
        for name in arrays.files:
            key, output = name.split("/")
            outputs[key][output] = arrays[name]
    return outputs
