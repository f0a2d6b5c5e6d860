"""Acceptance: the exported official MT3 transcribes the reference clips exactly like Keras.

Exports the official checkpoint once, then runs every signature in a fresh interpreter that
never imports keras_mt3: `serving_default` on both clips in one request, the token signatures
(`decode_tokens` without XLA, `decode_xla`) on every log-mel segment of both clips. Notes must
equal `MT3Transcriber.transcribe`'s (identical note lists, i.e. note F1 = 1.0); the tokens are
detokenized with `keras_mt3.codec` for that, as a client of the token signatures would.
"""

import numpy as np
import pytest
from export_support import float32_notes, notes_from_outputs, padded_audio, run_signatures

from keras_mt3.codec.detokenize import tokens_to_note_sequence
from keras_mt3.preprocessing.segments import audio_to_segments, decode_start_times
from keras_mt3.saved_model import signatures as names

pytestmark = [pytest.mark.checkpoint, pytest.mark.slow]

REFERENCE_CLIPS = ("piano_chorale", "multi_band")
MAX_AUDIO_SECONDS = 30.0


@pytest.fixture(scope="module")
def official(tensorflow_backend, checkpoint_dir, reference_dir, tmp_path_factory):
    """`(saved model path, transcriber, clips)`."""
    from keras_mt3.models.mt3_transcriber import MT3Transcriber
    from keras_mt3.preprocessing.audio_io import load_audio
    from keras_mt3.saved_model import export

    model = MT3Transcriber.from_preset("mt3", checkpoint_dir=checkpoint_dir, progress=False)
    path = tmp_path_factory.mktemp("official_export") / "mt3" / "1"
    export(model, path, max_audio_seconds=MAX_AUDIO_SECONDS, progress=False)
    clips = {name: load_audio(reference_dir / f"{name}.wav") for name in REFERENCE_CLIPS}
    return path, model, clips


def test_every_signature_matches_the_keras_model_on_the_reference_clips(official, tmp_path):
    path, model, clips = official
    expected = {
        name: float32_notes(model.transcribe(clip, sample_rate=16000, progress=False))
        for name, clip in clips.items()
    }
    # Both clips in one request (zero-padded to the longer one): their segments also share
    # decoding batches, unlike in `transcribe`, which must not change any note.
    waveform, lengths = padded_audio([clips[name] for name in REFERENCE_CLIPS])
    segments = {name: audio_to_segments(clips[name]) for name in REFERENCE_CLIPS}
    log_mel = np.concatenate(
        [model.compute_log_mel(s.samples, s.num_frames) for s in segments.values()]
    )
    frames = {names.ENCODER_INPUTS: log_mel}
    requests = {
        names.SERVING_DEFAULT: {names.WAVEFORM: waveform, names.LENGTHS: lengths},
        names.DECODE_TOKENS: frames,
        names.DECODE_XLA: frames,
    }

    outputs = run_signatures(path, requests, tmp_path)

    assert len(expected["piano_chorale"]) > 100 and len(expected["multi_band"]) > 300
    for row, name in enumerate(REFERENCE_CLIPS):
        assert notes_from_outputs(outputs[names.SERVING_DEFAULT], row) == expected[name], name
    for signature in (names.DECODE_TOKENS, names.DECODE_XLA):
        tokens = outputs[signature][names.TOKENS]
        first = 0
        for name, clip_segments in segments.items():
            count = len(clip_segments.num_frames)
            decoded = tokens_to_note_sequence(
                list(tokens[first : first + count]),
                decode_start_times(clip_segments.start_times),
                model.vocabulary,
            )
            assert float32_notes(decoded.note_sequence) == expected[name], (signature, name)
            first += count
