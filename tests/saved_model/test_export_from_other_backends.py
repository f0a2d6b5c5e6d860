"""Export from a JAX or PyTorch session: the model is rebuilt under TensorFlow in a child
process, and the SavedModel gives what the session's own model gives."""

import keras
import numpy as np
import pytest
from export_support import (
    build_tiny_backbone,
    float32_notes,
    notes_from_outputs,
    padded_audio,
    run_signatures,
    synthetic_clip,
    tiny_transcriber,
)

from keras_mt3.saved_model import signatures as names
from keras_mt3.preprocessing.segments import audio_to_segments

pytestmark = pytest.mark.skipif(
    keras.backend.backend() == "tensorflow",
    reason="under TensorFlow export() builds the SavedModel in-process (test_export_tiny.py)",
)


def test_export_rebuilds_the_model_under_tensorflow(tmp_path):
    from keras_mt3.saved_model import export

    transcriber = tiny_transcriber(build_tiny_backbone())
    path = tmp_path / "mt3" / "1"
    returned = export(transcriber, path, max_audio_seconds=8.0, progress=False)
    assert returned == path and (path / "saved_model.pb").is_file()

    clip = synthetic_clip(4.5, seed=5)
    segments = audio_to_segments(clip, 256)
    log_mel = transcriber.compute_log_mel(segments.samples, segments.num_frames)
    waveform, lengths = padded_audio([clip])
    outputs = run_signatures(
        path,
        {
            names.SERVING_DEFAULT: {names.WAVEFORM: waveform, names.LENGTHS: lengths},
            names.DECODE_TOKENS: {names.ENCODER_INPUTS: log_mel},
        },
        tmp_path,
    )
    expected = float32_notes(transcriber.transcribe(clip, sample_rate=16000, progress=False))
    assert notes_from_outputs(outputs[names.SERVING_DEFAULT], 0) == expected
    np.testing.assert_array_equal(
        outputs[names.DECODE_TOKENS][names.TOKENS], transcriber.generate(log_mel)
    )


def test_bad_arguments_are_rejected_before_starting_the_child_process(tmp_path):
    from keras_mt3.errors import KerasMT3Error
    from keras_mt3.saved_model import export

    target = tmp_path / "model"
    with pytest.raises(KerasMT3Error, match="positive"):
        export(build_tiny_backbone(), target, max_audio_seconds=-1)
    assert not target.exists()
