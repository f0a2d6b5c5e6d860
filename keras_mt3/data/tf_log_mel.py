"""MT3's log-mel frontend in TensorFlow ops, for tf.data pipelines under any Keras backend.

It computes what `keras_mt3.layers.LogMelSpectrogram` computes (same window, filterbank and
log floor, taken from that module), so the model sees the same inputs in training as at
inference. The layer itself is written with `keras.ops`, which under JAX or torch cannot run
inside a tf.data graph; this function can.
"""

import tensorflow as tf

from keras_mt3.layers.log_mel_spectrogram import LOG_FLOOR, mel_weight_matrix, periodic_hann_window
from keras_mt3.preprocessing.segments import HOP_LENGTH

FFT_LENGTH = 2048
NUM_MEL_BINS = 512


def tf_log_mel(samples, num_frames=None):
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
