"""Acceptance: the exported official MT3 transcribes the reference clips exactly like Keras.

Exports the official checkpoint once, then runs every signature in a fresh interpreter that
never imports keras_mt3: `serving_default` on both clips in one request, `decode_xla` on every
log-mel segment of both clips and `decode_tokens` on those of the chorale (it runs the same
decoder without XLA as `serving_default`, which already covers both clips). Notes must
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
    log_mel = {name: model.compute_log_mel(s.samples, s.num_frames) for name, s in segments.items()}
    clips_per_signature = {
        names.DECODE_TOKENS: ("piano_chorale",),
        names.DECODE_XLA: REFERENCE_CLIPS,
    }
    requests = {
        signature: {names.ENCODER_INPUTS: np.concatenate([log_mel[name] for name in clip_names])}
        for signature, clip_names in clips_per_signature.items()
    }
    requests[names.SERVING_DEFAULT] = {names.WAVEFORM: waveform, names.LENGTHS: lengths}

    outputs = run_signatures(path, requests, tmp_path)

    assert len(expected["piano_chorale"]) > 100 and len(expected["multi_band"]) > 300
    for row, name in enumerate(REFERENCE_CLIPS):
        assert notes_from_outputs(outputs[names.SERVING_DEFAULT], row) == expected[name], name
    for signature, clip_names in clips_per_signature.items():
        tokens = outputs[signature][names.TOKENS]
        assert len(tokens) == sum(len(segments[name].num_frames) for name in clip_names)
        first = 0
        for name in clip_names:
            clip_segments = segments[name]
            count = len(clip_segments.num_frames)
            decoded = tokens_to_note_sequence(
                list(tokens[first : first + count]),
                decode_start_times(clip_segments.start_times),
                model.vocabulary,
            )
            assert float32_notes(decoded.note_sequence) == expected[name], (signature, name)
            first += count
