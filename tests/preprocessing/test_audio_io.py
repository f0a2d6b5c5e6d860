import io
import tracemalloc
import wave

import numpy as np
import pytest
import soundfile
import soxr

from keras_mt3.errors import AudioLoadError
from keras_mt3.preprocessing.audio_io import audio_duration, load_audio, stream_audio

pytestmark = pytest.mark.backend_independent

SOURCE_RATE = 44100


def two_tone_stereo(seconds, rate=SOURCE_RATE):
    """440 Hz on the left, 1 kHz on the right: mono is their average, easy to predict."""
    t = np.arange(int(seconds * rate)) / rate
    left = 0.5 * np.sin(2 * np.pi * 440.0 * t)
    right = 0.25 * np.sin(2 * np.pi * 1000.0 * t)
    return np.stack([left, right], axis=1).astype(np.float32)


def expected_mono_16k(seconds):
    t = np.arange(int(np.ceil(seconds * 16000))) / 16000
    return 0.25 * np.sin(2 * np.pi * 440.0 * t) + 0.125 * np.sin(2 * np.pi * 1000.0 * t)


@pytest.fixture(scope="module")
def stereo_clip():
    return two_tone_stereo(3.3)


@pytest.fixture(scope="module")
def stereo_wav(tmp_path_factory, stereo_clip):
    path = tmp_path_factory.mktemp("audio") / "stereo.wav"
    soundfile.write(path, stereo_clip, SOURCE_RATE, subtype="FLOAT")
    return path


def test_stereo_44k_becomes_mono_16k_matching_librosa_style_resampling(stereo_wav, stereo_clip):
    audio = load_audio(stereo_wav)
    assert audio.dtype == np.float32 and audio.ndim == 1
    # librosa.load: channel mean, then soxr 'HQ', length ceil(n * 16000 / 44100).
    reference = soxr.resample(stereo_clip.mean(axis=1), SOURCE_RATE, 16000, quality="HQ")
    assert len(audio) == int(np.ceil(len(stereo_clip) * 16000 / SOURCE_RATE)) == 52800
    np.testing.assert_allclose(audio[: len(reference)], reference[: len(audio)], atol=1e-6)
    # And it is the right signal: compare with the analytic tones away from the edges.
    inner = slice(800, len(audio) - 800)
    np.testing.assert_allclose(audio[inner], expected_mono_16k(3.3)[inner], atol=2e-3)


@pytest.mark.parametrize("fmt, subtype, tolerance", [
    ("WAV", "PCM_16", 1e-3),
    ("FLAC", "PCM_24", 1e-3),
    ("OGG", "VORBIS", 0.05),
])
def test_formats_decode_to_the_same_signal(tmp_path, stereo_clip, fmt, subtype, tolerance):
    path = tmp_path / f"clip.{fmt.lower()}"
    soundfile.write(path, stereo_clip, SOURCE_RATE, format=fmt, subtype=subtype)
    audio = load_audio(path)
    assert audio.dtype == np.float32
    assert len(audio) == 52800
    inner = slice(800, len(audio) - 800)
    assert np.abs(audio[inner] - expected_mono_16k(3.3)[inner]).max() < tolerance


def test_mp3_is_read(tmp_path, stereo_clip):
    path = tmp_path / "clip.mp3"
    soundfile.write(path, stereo_clip, SOURCE_RATE, format="MP3")
    audio = load_audio(path)
    # MP3 adds encoder delay, so check the level and spectrum rather than sample alignment.
    assert abs(len(audio) - 52800) < 16000 * 0.2
    rms = np.sqrt(np.mean(audio[8000:-8000] ** 2))
    assert rms == pytest.approx(np.sqrt(0.25**2 / 2 + 0.125**2 / 2), rel=0.05)
    spectrum = np.abs(np.fft.rfft(audio[8000:24000]))  # one second: 1 Hz bins
    assert abs(int(np.argmax(spectrum)) - 440) <= 1
    spectrum[430:451] = 0
    assert abs(int(np.argmax(spectrum)) - 1000) <= 1


def test_16k_mono_input_is_returned_unchanged(tmp_path):
    samples = np.random.default_rng(0).uniform(-0.5, 0.5, 16001).astype(np.float32)
    path = tmp_path / "mono16k.wav"
    soundfile.write(path, samples, 16000, subtype="FLOAT")
    np.testing.assert_array_equal(load_audio(path), samples)


def test_bytes_and_file_object_match_path(stereo_wav):
    from_path = load_audio(stereo_wav)
    data = stereo_wav.read_bytes()
    np.testing.assert_array_equal(load_audio(data), from_path)
    with open(stereo_wav, "rb") as handle:
        np.testing.assert_array_equal(load_audio(handle), from_path)
    np.testing.assert_array_equal(load_audio(io.BytesIO(data)), from_path)
    np.testing.assert_array_equal(load_audio(str(stereo_wav)), from_path)


def test_array_input(stereo_wav, stereo_clip):
    from_path = load_audio(stereo_wav)
    from_array = load_audio(stereo_clip, source_sample_rate=SOURCE_RATE)
    np.testing.assert_array_equal(from_array, from_path)
    # librosa's [channels, samples] layout works too.
    np.testing.assert_array_equal(
        load_audio(stereo_clip.T.copy(), source_sample_rate=SOURCE_RATE), from_path
    )
    pcm = (np.array([0.5, -0.25, 0.0]) * 32768).astype(np.int16)
    np.testing.assert_array_equal(
        load_audio(pcm, source_sample_rate=16000), np.array([0.5, -0.25, 0.0], np.float32)
    )


def test_unsigned_pcm_is_offset_binary(tmp_path):
    # 8-bit WAV is unsigned with 128 as silence: an array of it reads as libsndfile decodes the
    # same bytes in a file.
    pcm = np.array([[128, 128], [0, 0], [255, 255], [192, 64], [100, 160]], np.uint8)
    path = tmp_path / "u8.wav"
    with wave.open(str(path), "wb") as file:
        file.setnchannels(2)
        file.setsampwidth(1)
        file.setframerate(16000)
        file.writeframes(pcm.tobytes())
    from_array = load_audio(pcm, source_sample_rate=16000)
    np.testing.assert_array_equal(from_array, load_audio(path))
    np.testing.assert_array_equal(from_array, [0.0, -1.0, 127 / 128, 0.0, (-28 + 32) / 256])
    assert load_audio(np.full(10, 128, np.uint8), source_sample_rate=16000).tolist() == [0.0] * 10


def test_silent_audio_is_valid(tmp_path):
    path = tmp_path / "silence.wav"
    soundfile.write(path, np.zeros((44100, 2), np.int16), 44100)
    audio = load_audio(path)
    assert audio.shape == (16000,)
    assert not audio.any()


def test_other_output_rate(stereo_wav):
    assert len(load_audio(stereo_wav, sample_rate=22050)) == int(np.ceil(145530 * 22050 / 44100))


@pytest.fixture
def error_message():
    def message(*args, **kwargs):
        with pytest.raises(AudioLoadError) as info:
            load_audio(*args, **kwargs)
        return str(info.value)

    return message


def test_missing_file(tmp_path, error_message):
    message = error_message(tmp_path / "nope.wav")
    assert "nope.wav" in message and "does not exist" in message


def test_directory(tmp_path, error_message):
    message = error_message(tmp_path)
    assert "is a directory" in message and "one audio file" in message


def test_corrupt_bytes(error_message):
    message = error_message(b"RIFF\x00\x00not really a wave file" * 10)
    assert "could not decode the audio bytes" in message
    assert "corrupt" in message and "ffmpeg" in message


def test_truncated_flac(tmp_path, stereo_clip, error_message):
    path = tmp_path / "cut.flac"
    soundfile.write(path, stereo_clip, SOURCE_RATE)
    path.write_bytes(path.read_bytes()[:30])
    message = error_message(path)
    assert "cut.flac" in message and "corrupt" in message


def test_unsupported_format(tmp_path, error_message):
    path = tmp_path / "song.m4a"
    path.write_bytes(b"\x00\x00\x00\x20ftypM4A " + bytes(200))
    message = error_message(path)
    assert "the .m4a format is not supported" in message and "ffmpeg" in message


def test_text_file(tmp_path, error_message):
    path = tmp_path / "notes.txt"
    path.write_text("not audio\n" * 50)
    assert "could not decode audio file" in error_message(path)


def test_zero_length(tmp_path, error_message):
    empty_wav = tmp_path / "empty.wav"
    soundfile.write(empty_wav, np.zeros((0, 1), np.float32), 16000)
    assert "zero length" in error_message(empty_wav)
    empty_file = tmp_path / "zero.wav"
    empty_file.write_bytes(b"")
    assert "0 bytes" in error_message(empty_file)
    assert "zero length" in error_message(b"")
    assert "zero length" in error_message(np.zeros(0, np.float32), source_sample_rate=16000)
    # Channels without samples, either way round: empty, not NaN from averaging nothing.
    for shape in [(2, 0), (0, 2), (0, 0)]:
        message = error_message(np.zeros(shape, np.float32), source_sample_rate=16000)
        assert "is empty audio" in message and "NaN" not in message, shape


def test_non_finite_samples(tmp_path, error_message):
    samples = np.zeros(1000, np.float32)
    samples[[10, 500]] = [np.nan, np.inf]
    path = tmp_path / "nan.wav"
    soundfile.write(path, samples, 16000, subtype="FLOAT")
    message = error_message(path)
    assert "2 NaN or infinite samples" in message and "nan.wav" in message
    assert "NaN" in error_message(samples, source_sample_rate=16000)
    with pytest.raises(AudioLoadError, match="NaN"):
        list(stream_audio(path))


def test_array_errors(error_message):
    assert "1-D (mono) or 2-D" in error_message(np.zeros((2, 3, 4)), source_sample_rate=16000)
    assert "1-D (mono) or 2-D" in error_message(np.float32(0.5), source_sample_rate=16000)
    assert "source_sample_rate is required" in error_message(np.zeros(100, np.float32))
    assert "must hold numbers" in error_message(np.array(["a", "b"]), source_sample_rate=16000)


def test_rate_argument_errors(stereo_wav, error_message):
    assert "only for NumPy array input" in error_message(stereo_wav, source_sample_rate=44100)
    with pytest.raises(ValueError, match="sample_rate must be a positive"):
        load_audio(stereo_wav, sample_rate=0)
    assert "cannot read audio from a int" in error_message(42)


@pytest.mark.parametrize("fmt", ["WAV", "FLAC", "OGG", "MP3"])
def test_stream_blocks_concatenate_to_load_audio(tmp_path, fmt):
    # An awkward length and block size, so no block boundary lines up with anything.
    clip = two_tone_stereo(5.123)
    path = tmp_path / f"clip.{fmt.lower()}"
    soundfile.write(path, clip, SOURCE_RATE, format=fmt)
    whole = load_audio(path)
    blocks = list(stream_audio(path, block_seconds=0.77))
    assert len(blocks) > 5
    assert all(block.dtype == np.float32 and block.ndim == 1 for block in blocks)
    streamed = np.concatenate(blocks)
    assert streamed.shape == whole.shape
    np.testing.assert_allclose(streamed, whole, atol=1e-5)


def test_stream_at_the_target_rate_and_from_arrays(stereo_clip):
    mono16k = np.random.default_rng(1).uniform(-1, 1, 50_001).astype(np.float32)
    data = io.BytesIO()
    soundfile.write(data, mono16k, 16000, format="WAV", subtype="FLOAT")
    blocks = list(stream_audio(data.getvalue(), block_seconds=1.0))
    assert [len(block) for block in blocks] == [16000, 16000, 16000, 2001]
    np.testing.assert_array_equal(np.concatenate(blocks), mono16k)
    from_array = list(stream_audio(stereo_clip, block_seconds=1.0, source_sample_rate=SOURCE_RATE))
    np.testing.assert_array_equal(
        np.concatenate(from_array), load_audio(stereo_clip, source_sample_rate=SOURCE_RATE)
    )


def test_stream_uses_bounded_memory(tmp_path):
    # 40 s of 44.1 kHz stereo is 14 MB as float32; 2 s blocks need a small fraction of that.
    path = tmp_path / "long.wav"
    soundfile.write(path, two_tone_stereo(40.0), SOURCE_RATE, subtype="PCM_16")
    tracemalloc.start()
    try:
        total = sum(len(block) for block in stream_audio(path, block_seconds=2.0))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert total == 640000
    assert peak < 4_000_000  # decoding whole would peak near 21 MB


def test_stream_errors(tmp_path):
    with pytest.raises(AudioLoadError, match="does not exist"):
        list(stream_audio(tmp_path / "missing.flac"))
    empty = tmp_path / "empty.wav"
    soundfile.write(empty, np.zeros((0, 2), np.float32), 16000)
    with pytest.raises(AudioLoadError, match="zero length"):
        list(stream_audio(empty))


def test_audio_duration(stereo_wav, tmp_path):
    assert audio_duration(stereo_wav) == pytest.approx(145530 / 44100)
    with pytest.raises(AudioLoadError, match="does not exist"):
        audio_duration(tmp_path / "missing.wav")
