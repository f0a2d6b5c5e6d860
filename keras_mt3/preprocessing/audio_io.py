"""Audio input: decode a file (or bytes, a file object, an array) to mono float32 at 16 kHz.

Decoding uses soundfile (libsndfile: WAV, FLAC, OGG Vorbis/Opus, MP3, AIFF, ...). Channels are
averaged and the result is resampled with soxr at 'HQ' quality, which is what `librosa.load` does
by default since librosa 0.10; the original MT3 Colab loads audio that way, so the samples match
it closely. The output length also follows librosa: ``ceil(num_samples * out_rate / in_rate)``.
"""

import contextlib
import io
import math
import os
import pathlib
from collections.abc import Iterator

import numpy as np
import soundfile
import soxr

from keras_mt3.constants import SAMPLE_RATE
from keras_mt3.errors import AudioLoadError, KerasMT3Error

RESAMPLE_QUALITY = "HQ"
# What a folder of audio is searched for (datasets, `keras-mt3 transcribe DIR`): libsndfile's
# formats under the names people give them.
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".mp3", ".aif", ".aiff")
_SEEK_LEAD_IN = 8192

# Containers people often try that libsndfile cannot read.
_UNSUPPORTED_SUFFIXES = {".m4a", ".aac", ".mp4", ".wma", ".webm", ".opus", ".mkv", ".mov", ".amr"}
_CONVERT_HINT = (
    "Readable formats are WAV, FLAC, OGG (Vorbis/Opus), MP3 and the others libsndfile supports; "
    "convert anything else first, e.g. `ffmpeg -i input.m4a output.wav`."
)


def load_audio(
    source, sample_rate: int = SAMPLE_RATE, *, source_sample_rate: int | None = None
) -> np.ndarray:
    """Decode `source` to a mono float32 1-D array at `sample_rate` Hz.

    Args:
        source: a path (str or os.PathLike), the encoded file as `bytes`, a binary file object,
            or samples as a NumPy array or list (1-D, or 2-D with channels on the shorter axis):
            floats, or PCM integers at full scale (unsigned ones centred on their middle value,
            as in 8-bit WAV).
        sample_rate: the output rate in Hz.
        source_sample_rate: the rate of an array `source`; required for arrays, not allowed
            otherwise (files carry their own rate).

    Raises:
        AudioLoadError: the source is missing, unreadable, empty, not finite or badly shaped.
    """
    check_sample_rate(sample_rate, "sample_rate")
    if is_sample_array(source):
        mono, in_rate = _array_to_mono(np.asarray(source), source_sample_rate), source_sample_rate
        description = "the audio array"
    else:
        _reject_rate_for_files(source_sample_rate)
        description = _describe(source)
        with _open(source) as sound_file:
            in_rate = sound_file.samplerate
            mono = _mix_down(_read(sound_file, -1, description))
    _check_samples(mono, description)
    return _resample(mono, in_rate, sample_rate)


def stream_audio(
    source,
    sample_rate: int = SAMPLE_RATE,
    block_seconds: float = 60.0,
    *,
    source_sample_rate: int | None = None,
) -> Iterator[np.ndarray]:
    """Yield `source` as consecutive mono float32 blocks at `sample_rate` Hz, in bounded memory.

    Each block covers about `block_seconds` of input, so an hour-long file never sits in memory
    whole. Concatenated, the blocks equal `load_audio(source, sample_rate)` up to the resampler's
    rounding (its filter state carries across blocks, so there are no seams). Takes the same
    sources as `load_audio`; an array is resampled whole, then handed out in blocks.
    """
    check_sample_rate(sample_rate, "sample_rate")
    if not block_seconds > 0:
        raise ValueError(f"block_seconds must be positive, got {block_seconds!r}")
    if is_sample_array(source):
        audio = load_audio(source, sample_rate, source_sample_rate=source_sample_rate)
        block_samples = max(1, int(block_seconds * sample_rate))
        for start in range(0, len(audio), block_samples):
            yield audio[start : start + block_samples]
        return
    _reject_rate_for_files(source_sample_rate)
    description = _describe(source)
    with _open(source) as sound_file:
        in_rate = sound_file.samplerate
        block_frames = max(1, int(block_seconds * in_rate))
        resampler = None
        if in_rate != sample_rate:
            resampler = soxr.ResampleStream(
                in_rate, sample_rate, 1, dtype="float32", quality=RESAMPLE_QUALITY
            )
        frames_in = frames_out = 0
        for samples in _read_blocks(sound_file, block_frames, description):
            mono = _mix_down(samples)
            _check_finite(mono, description)
            frames_in += len(mono)
            last = len(mono) < block_frames
            if resampler is None:
                block = mono
            else:
                block = resampler.resample_chunk(mono, last=last)
                if last:
                    block = _trim_or_pad_tail(
                        block, frames_out, _resampled_length(frames_in, in_rate, sample_rate)
                    )
            frames_out += len(block)
            if len(block):
                yield block
        if frames_in == 0:
            raise AudioLoadError(_empty_message(description))


def audio_duration(source) -> float:
    """Duration of an audio file in seconds, read from its header (nothing is decoded)."""
    with _open(source) as sound_file:
        return sound_file.frames / sound_file.samplerate


def _resampled_length(num_samples, in_rate, out_rate):
    # Same float arithmetic as librosa.resample, so lengths agree with librosa.load exactly.
    return int(np.ceil(num_samples * (float(out_rate) / in_rate)))


def _resample(mono, in_rate, out_rate):
    if in_rate == out_rate:
        return mono
    resampled = soxr.resample(mono, in_rate, out_rate, quality=RESAMPLE_QUALITY)
    target = _resampled_length(len(mono), in_rate, out_rate)
    return _trim_or_pad_tail(resampled, 0, target).astype(np.float32, copy=False)


def _trim_or_pad_tail(block, samples_before, total):
    """Make `samples_before + len(block)` equal `total` by cutting or zero-padding `block`."""
    wanted = max(0, total - samples_before)
    if len(block) >= wanted:
        return block[:wanted]
    return np.concatenate([block, np.zeros(wanted - len(block), block.dtype)])


def _mix_down(samples):
    """[frames, channels] -> [frames] by averaging channels."""
    if samples.shape[1] == 1:
        return np.ascontiguousarray(samples[:, 0])
    return samples.mean(axis=1, dtype=np.float32)


def is_sample_array(source) -> bool:
    """Whether `source` is samples (an array, NumPy scalar, list or tuple) rather than a file."""
    return isinstance(source, (np.ndarray, np.generic, list, tuple))


def _array_to_mono(array, source_sample_rate):
    if source_sample_rate is None:
        raise AudioLoadError(
            "source_sample_rate is required when the audio is a NumPy array: pass the rate the "
            "samples were recorded at, e.g. load_audio(samples, source_sample_rate=44100)."
        )
    check_sample_rate(source_sample_rate, "source_sample_rate")
    if array.ndim not in (1, 2):
        raise AudioLoadError(
            f"an audio array must be 1-D (mono) or 2-D (samples x channels), got shape "
            f"{array.shape}; pass one clip at a time."
        )
    if np.issubdtype(array.dtype, np.integer):
        # PCM integers: full scale maps to [-1, 1), as soundfile does when decoding. Unsigned
        # PCM (8-bit WAV) is offset binary: the middle value, 128 for uint8, is silence.
        scale = float(2 ** (8 * array.dtype.itemsize - 1))
        silence = scale if np.issubdtype(array.dtype, np.unsignedinteger) else 0.0
        array = (array.astype(np.float64) - silence) / scale
    elif not np.issubdtype(array.dtype, np.floating):
        raise AudioLoadError(f"an audio array must hold numbers, got dtype {array.dtype}.")
    array = np.asarray(array, np.float32)
    if array.ndim == 1:
        return array
    if array.size == 0:
        return np.zeros(0, np.float32)  # (2, 0): channels of nothing, not NaN from their mean
    # The shorter axis is channels: clips are far longer than their channel count.
    if array.shape[0] < array.shape[1]:
        array = array.T
    return _mix_down(array)


def _check_samples(mono, description):
    if mono.size == 0:
        raise AudioLoadError(_empty_message(description))
    _check_finite(mono, description)


def _check_finite(mono, description):
    if not np.all(np.isfinite(mono)):
        bad = int(np.count_nonzero(~np.isfinite(mono)))
        raise AudioLoadError(
            f"{description} contains {bad} NaN or infinite samples; the file is damaged or was "
            "written from invalid data. Re-export it (e.g. as 16-bit WAV)."
        )


def _empty_message(description):
    return (
        f"{description} is empty audio: it holds no samples (zero length); nothing to "
        "transcribe."
    )


def check_sample_rate(rate, name):
    """Raises `KerasMT3Error` unless `rate` is a positive, finite number of Hz; the message
    names the argument `name` the caller was given."""
    if isinstance(rate, bool) or not isinstance(rate, (int, float, np.number)) or not rate > 0:
        raise KerasMT3Error(f"{name} must be a positive number of Hz, got {rate!r}")
    if not math.isfinite(rate):
        raise KerasMT3Error(f"{name} must be finite, got {rate!r}")


def _reject_rate_for_files(source_sample_rate):
    if source_sample_rate is not None:
        raise AudioLoadError(
            "source_sample_rate is only for NumPy array input; an audio file's rate is read "
            "from the file itself. Drop the argument."
        )


def _describe(source):
    if isinstance(source, (str, os.PathLike)):
        return f"audio file '{os.fspath(source)}'"
    if isinstance(source, (bytes, bytearray, memoryview)):
        return "the audio bytes"
    return "the audio file object"


@contextlib.contextmanager
def _open(source):
    """Open `source` as a soundfile.SoundFile, turning every failure into AudioLoadError."""
    description = _describe(source)
    if isinstance(source, (str, os.PathLike)):
        path = pathlib.Path(source)
        if path.is_dir():
            raise AudioLoadError(f"{description} is a directory; pass the path of one audio file.")
        if not path.exists():
            raise AudioLoadError(f"{description} does not exist; check the path.")
        if path.stat().st_size == 0:
            raise AudioLoadError(_empty_message(description) + " The file is 0 bytes.")
        opener = str(path)
    elif isinstance(source, (bytes, bytearray, memoryview)):
        if len(source) == 0:
            raise AudioLoadError(_empty_message(description) + " The input is 0 bytes.")
        opener = io.BytesIO(bytes(source))
    elif hasattr(source, "read"):
        opener = source
    else:
        raise AudioLoadError(
            f"cannot read audio from a {type(source).__name__}; pass a file path, bytes, a binary "
            "file object, or a NumPy array with source_sample_rate."
        )
    try:
        sound_file = soundfile.SoundFile(opener)
    except (soundfile.LibsndfileError, RuntimeError, TypeError) as error:
        raise AudioLoadError(_decode_failure_message(source, description, error)) from error
    with sound_file:
        yield sound_file


def _read(sound_file, frames, description):
    try:
        return sound_file.read(frames, dtype="float32", always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError) as error:
        raise AudioLoadError(
            f"{description} is corrupt: decoding stopped part-way ({error}). Re-export or "
            "re-download it."
        ) from error


def _read_blocks(sound_file, block_frames, description):
    """Yield [frames, channels] blocks of `block_frames`; the last one is shorter (maybe empty).

    soundfile queries and sets the file position around every read. libsndfile's MP3 decoder
    restarts imperfectly after such a seek (the next ~1,500 samples come out wrong), so on
    seekable files each block is read with a lead-in of `_SEEK_LEAD_IN` frames that is dropped.
    """
    position = 0
    while True:
        lead_in = min(position, _SEEK_LEAD_IN) if sound_file.seekable() else 0
        if lead_in:
            sound_file.seek(position - lead_in)
        block = _read(sound_file, lead_in + block_frames, description)[lead_in:]
        position += len(block)
        yield block
        if len(block) < block_frames:
            return


def _decode_failure_message(source, description, error):
    if isinstance(source, (str, os.PathLike)):
        suffix = pathlib.Path(source).suffix.lower()
        if suffix in _UNSUPPORTED_SUFFIXES:
            return f"{description}: the {suffix} format is not supported. {_CONVERT_HINT}"
    return (
        f"could not decode {description} ({error}): it is corrupt, truncated, or in an "
        f"unsupported format. {_CONVERT_HINT}"
    )
