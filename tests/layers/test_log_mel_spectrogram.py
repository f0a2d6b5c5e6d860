import keras
import numpy as np
import pytest
from helpers import run_layer_test
from keras import ops

from keras_mt3.layers.log_mel_spectrogram import LogMelSpectrogram, mel_weight_matrix
from keras_mt3.preprocessing.audio_io import load_audio
from keras_mt3.preprocessing.segments import audio_to_segments

# The spec's numbers, written out: the reference must not share the layer's constants.
LOG_FLOOR = float(np.log(np.float32(1e-5)))


def numpy_log_mel(samples, num_frames):
    """Float64 reference straight from the definition: frame by frame, no tricks."""
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(2048) / 2048)
    mel = mel_weight_matrix().astype(np.float64)
    padded = np.pad(samples.astype(np.float64), (0, 2048))
    frames = np.stack([padded[128 * i : 128 * i + 2048] for i in range(len(samples) // 128)])
    log_mel = np.log(np.maximum(np.abs(np.fft.rfft(frames * window)) @ mel, 1e-5))
    log_mel[num_frames:] = 0.0
    return log_mel


def run_compiled(layer, samples, num_frames):
    """Calls `layer` the way each backend compiles it: jax.jit, XLA tf.function, torch eager."""
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        return np.asarray(jax.jit(lambda s, n: layer(s, n))(samples, num_frames))
    if backend == "tensorflow":
        import tensorflow as tf

        compiled = tf.function(lambda s, n: layer(s, n), jit_compile=True)
        return compiled(tf.constant(samples), tf.constant(num_frames)).numpy()
    return ops.convert_to_numpy(layer(samples, num_frames))


def test_mel_matrix_matches_tensorflow():
    import tensorflow as tf

    ours = mel_weight_matrix(512, 1025, 16000, 20.0, 7600.0)
    theirs = tf.signal.linear_to_mel_weight_matrix(512, 1025, 16000, 20.0, 7600.0).numpy()
    assert ours.dtype == np.float32 and ours.shape == (1025, 512)
    assert np.abs(ours - theirs).max() < 2e-4
    assert not ours[0].any()  # DC row
    assert np.flatnonzero(~ours.any(axis=0)).tolist() == [1, 10]  # bands that catch no bin


def test_matches_numpy_definition_under_compilation():
    rng = np.random.default_rng(0)
    samples = rng.standard_normal((3, 40 * 128)).astype(np.float32) * 0.3
    samples[1] = 0.0  # digital silence: every frame is log(1e-5)
    num_frames = np.array([40, 40, 17], np.int32)
    layer = LogMelSpectrogram()
    out = run_compiled(layer, samples, num_frames)
    assert out.shape == (3, 40, 512) and out.dtype == np.float32
    for row in (0, 2):
        expected = numpy_log_mel(samples[row], num_frames[row])
        np.testing.assert_allclose(out[row], expected, atol=2e-3)
    np.testing.assert_allclose(out[1], LOG_FLOOR, rtol=1e-6)
    assert not out[2, 17:].any()
    assert (out[2, :17] != 0).all()


def test_without_num_frames_every_row_is_kept():
    samples = np.random.default_rng(1).standard_normal((2, 8 * 128)).astype(np.float32)
    out = ops.convert_to_numpy(LogMelSpectrogram()(samples))
    assert out.shape == (2, 8, 512)
    # The last frames see zero padding but are still log-mels, not the 0.0 of masked rows.
    assert (out[:, -1] != 0).all()


@pytest.mark.parametrize("name", ["piano_chorale", "multi_band"])
def test_matches_original_mt3_encoder_inputs(reference_dir, name):
    reference = np.load(reference_dir / f"{name}.inputs.npz")
    segments = audio_to_segments(load_audio(reference_dir / f"{name}.wav"), 256)
    np.testing.assert_array_equal(segments.num_frames, reference["num_frames"])
    out = run_compiled(LogMelSpectrogram(), segments.samples, segments.num_frames)
    expected = reference["encoder_input_tokens"]
    assert out.shape == expected.shape
    difference = np.abs(out - expected)
    assert difference.max() <= 5e-3
    assert difference.mean() <= 1e-4


def test_layer_contract():
    init = dict(num_mel_bins=64, fft_length=512, hop_length=128, name="frontend")
    samples = np.random.default_rng(2).standard_normal((2, 10 * 128)).astype(np.float32)
    num_frames = np.array([10, 7], np.int32)
    run_layer_test(LogMelSpectrogram, init, samples, (2, 10, 64), expected_num_weights=0)
    run_layer_test(LogMelSpectrogram, init, (samples, num_frames), (2, 10, 64))


def test_fft_length_must_be_a_multiple_of_the_hop():
    with pytest.raises(ValueError, match="multiple of hop_length"):
        LogMelSpectrogram(fft_length=1000, hop_length=128)
