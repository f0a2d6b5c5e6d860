"""`tf_log_mel` (TensorFlow ops) equals the `LogMelSpectrogram` layer it mirrors."""

import keras
import numpy as np

from keras_mt3.constants import HOP_LENGTH, NUM_MEL_BINS
from keras_mt3.layers.log_mel_spectrogram import LogMelSpectrogram
from keras_mt3.tf_ops.log_mel_spectrogram import tf_log_mel


def test_tf_log_mel_equals_the_model_frontend():
    rng = np.random.default_rng(0)
    samples = (0.1 * rng.standard_normal((3, 64 * HOP_LENGTH))).astype(np.float32)
    samples[2, 5000:] = 0.0
    num_frames = np.array([64, 40, 39], np.int32)
    expected = keras.ops.convert_to_numpy(LogMelSpectrogram()(samples, num_frames))
    actual = tf_log_mel(samples, num_frames).numpy()
    assert actual.shape == (3, 64, NUM_MEL_BINS)
    np.testing.assert_allclose(actual, expected, atol=2e-4, rtol=1e-4)
    assert not actual[1, 40:].any() and actual[1, 39].any()
