"""TensorFlow twin of `keras_mt3.layers.log_mel_spectrogram`: MT3's log-mel frontend in tf ops.

The layer is written with `keras.ops`, which under JAX or torch cannot run inside a tf.data
graph; this function can, so the training pipeline computes its inputs here under any backend.
It uses the layer module's window and filterbank and the shared constants, so the model sees
the same inputs in training as at inference; tests/tf_ops/test_tf_log_mel_spectrogram.py checks
that the two agree.
"""

import tensorflow as tf

from keras_mt3.constants import FFT_LENGTH, HOP_LENGTH, LOG_FLOOR, NUM_MEL_BINS
from keras_mt3.layers.log_mel_spectrogram import mel_weight_matrix, periodic_hann_window


def tf_log_mel(samples, num_frames=None) -> tf.Tensor:
    """`samples` `[..., frames * 128]` -> log-mel `[..., frames, 512]` float32.

    Frame i covers samples `[128 i, 128 i + 2048)`, zero past the end (uncentered STFT). Rows at
    or after `num_frames` (per leading index) are set to 0.0, as MT3 pads after the log.
    """
    samples = tf.convert_to_tensor(samples, tf.float32)
    padding = [[0, 0]] * (samples.shape.rank - 1) + [[0, FFT_LENGTH - HOP_LENGTH]]
    frames = tf.signal.frame(tf.pad(samples, padding), FFT_LENGTH, HOP_LENGTH, pad_end=False)
    spectrum = tf.signal.rfft(frames * periodic_hann_window(FFT_LENGTH), [FFT_LENGTH])
    mel = tf.tensordot(tf.abs(spectrum), mel_weight_matrix(NUM_MEL_BINS, FFT_LENGTH // 2 + 1), 1)
    log_mel = tf.math.log(tf.where(mel <= 0.0, LOG_FLOOR, mel))
    if num_frames is None:
        return log_mel
    frame_index = tf.range(tf.shape(log_mel)[-2])
    valid = frame_index < tf.expand_dims(tf.cast(num_frames, tf.int32), -1)
    return tf.where(valid[..., None], log_mel, 0.0)
