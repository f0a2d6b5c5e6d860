"""Fine-tuning the converted official MT3 on one reference clip, under every backend: a few
small steps run and leave its transcription of the other clip as good as before."""

import keras
import numpy as np
import pytest

from keras_mt3.constants import DEFAULT_FRAMES_PER_SEGMENT, HOP_LENGTH
from keras_mt3.data.pairs import TranscriptionPair
from keras_mt3.data.pipeline import TrainingDataConfig, training_dataset
from keras_mt3.metrics import transcription_metrics
from keras_mt3.midi_io import load_midi
from keras_mt3.models.losses import MT3Loss
from keras_mt3.models.mt3_transcriber import MT3Transcriber
from keras_mt3.models.optimizers import make_optimizer
from keras_mt3.preprocessing.audio_io import load_audio

pytestmark = [pytest.mark.slow, pytest.mark.checkpoint]

SEGMENT_SAMPLES = DEFAULT_FRAMES_PER_SEGMENT * HOP_LENGTH
EVALUATED_SEGMENTS = 2  # kept short: the full model decodes slowly on a CPU


def first_segments_scores(model, reference_dir):
    """Transcription scores of the first 2 segments of multi_band against its ground truth."""
    audio = load_audio(reference_dir / "multi_band.wav")
    audio = audio[: EVALUATED_SEGMENTS * SEGMENT_SAMPLES - 256]  # MT3 pads one more frame
    estimate = model.transcribe(audio, sample_rate=16000, progress=False)
    truth = load_midi(reference_dir / "multi_band.mid")
    end = len(audio) / 16000
    kept = [note for note in truth.notes if note.start_time < end]
    del truth.notes[:]
    truth.notes.extend(kept)
    return transcription_metrics(estimate, truth)


def test_fine_tuning_a_few_steps_keeps_the_transcription_quality(checkpoint_dir, reference_dir):
    keras.utils.set_random_seed(0)
    model = MT3Transcriber.from_preset("mt3", checkpoint_dir=checkpoint_dir, decode_batch_size=2)
    before = first_segments_scores(model, reference_dir)
    assert before["onset_f1"] > 0.5

    chorale = TranscriptionPair(
        "piano_chorale", reference_dir / "piano_chorale.wav", reference_dir / "piano_chorale.mid"
    )
    # Half-length windows and short targets keep the steps cheap; the model still transcribes
    # full segments afterwards.
    config = TrainingDataConfig(window_frames=128, target_length=256, batch_size=1, seed=0)
    model.compile(
        optimizer=make_optimizer("adafactor", learning_rate=1e-5),
        loss=MT3Loss(),
        jit_compile=keras.backend.backend() == "jax",  # explicit; XLA pays off only under jax
    )
    weights_before = keras.ops.convert_to_numpy(model.backbone.logits_dense.kernel).copy()
    history = model.fit(training_dataset([chorale], config), steps_per_epoch=2, epochs=1, verbose=0)
    # The released model already predicts the pipeline's targets well (they are written the way
    # MT3 was trained on); a fresh model starts near ln(1536) = 7.3.
    assert np.isfinite(history.history["loss"][0]) and history.history["loss"][0] < 1.0
    weights_after = keras.ops.convert_to_numpy(model.backbone.logits_dense.kernel)
    assert 0 < np.abs(weights_after - weights_before).max() < 1e-3

    after = first_segments_scores(model, reference_dir)
    for metric in ("onset_f1", "program_full_f1"):
        assert abs(after[metric] - before[metric]) <= 0.02, (metric, before[metric], after[metric])
