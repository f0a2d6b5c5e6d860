"""MT3Transcriber: the task model. Audio in, NoteSequence out; trains with `fit`."""

import functools
import os
import pathlib
import time
from collections.abc import Iterable, Iterator
from typing import BinaryIO

import keras
import numpy as np
from note_seq.protobuf import music_pb2

from keras_mt3.codec import vocabulary as vocabulary_lib
from keras_mt3.codec.detokenize import tokens_to_note_sequence
from keras_mt3.constants import MAX_DECODE_LENGTH
from keras_mt3.errors import KerasMT3Error
from keras_mt3.layers.log_mel_spectrogram import LogMelSpectrogram
from keras_mt3.models.continuous_batching import SlotDecoder
from keras_mt3.models.greedy_decoding import make_greedy_decode_fn
from keras_mt3.models.mt3_backbone import MT3Backbone
from keras_mt3.preprocessing import audio_io
from keras_mt3.preprocessing import segments as segments_lib

# What `transcribe_many` reads: a path, the encoded file's bytes, or a binary file object.
AudioSource = str | os.PathLike | bytes | BinaryIO

# Batch shapes the decode programs are compiled for: powers of two up to BATCH_SIZE_STEP,
# then its multiples.
BATCH_SIZE_STEP = 4
# Segments decoded together by default: on a CPU a decoder step costs little more at 16 rows
# than at 8, so a clip of up to 32 s decodes in one pass.
DEFAULT_DECODE_BATCH_SIZE = 16


@keras.saving.register_keras_serializable(package="keras_mt3")
class MT3Transcriber(keras.Model):
    """MT3 music transcription: log-mel frontend + T5 encoder-decoder + MT3 codec.

    Calling the model maps `{"encoder_inputs", "decoder_token_ids"}` to logits (teacher
    forcing, for `fit`). `generate` runs cached greedy decoding on log-mel inputs and
    `transcribe` goes all the way from audio (array, path or file object) to a NoteSequence.

    Args:
        backbone: an `MT3Backbone`.
        vocabulary: a vocabulary name (`"mt3"`, `"ismir2021"`) or `VocabularyConfig`.
        decode_batch_size: most segments decoded together (`DEFAULT_DECODE_BATCH_SIZE`): the
            decoder slots of `transcribe`, the batch size of `generate`. Fewer segments use
            fewer slots or rows, rounded up to a nearby size (`padded_batch_size`), so only a
            few decode programs are ever compiled.
        max_decode_length: most tokens per segment (the original uses 1024).
    """

    # The backbone class a conversion from T5X builds (keras-hub's name for it).
    backbone_cls = MT3Backbone

    def __init__(
        self,
        backbone,
        vocabulary="mt3",
        decode_batch_size=DEFAULT_DECODE_BATCH_SIZE,
        max_decode_length=MAX_DECODE_LENGTH,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.backbone = backbone
        self.vocabulary = vocabulary_lib.get_vocabulary(vocabulary)
        self.decode_batch_size = int(decode_batch_size)
        self.max_decode_length = int(max_decode_length)
        self.frames_per_segment = self.vocabulary.input_frames
        self.frontend = LogMelSpectrogram(name="log_mel_spectrogram")
        self._decode_fn = None
        self._audio_decode_fn = None
        self._slot_decoders = {}
        self.build()

    def build(self, input_shape=None):
        # The backbone builds itself and the frontend has no weights, so the model is ready
        # for `load_weights` (e.g. resuming training) right after __init__.
        self.built = True

    # ---- construction -------------------------------------------------------------------

    @classmethod
    def from_preset(cls, preset="mt3", *, checkpoint_dir=None, download=True, progress=None, **kwargs):
        """Builds a transcriber from a preset.

        Args:
            preset: a preset name (`"mt3"`, `"ismir2021"`: the official weights, converted
                from their T5X checkpoint on first use and loaded from the cache after that),
                a preset folder (`save_to_preset`, `keras-mt3 convert`, `keras-mt3 train`), a
                T5X checkpoint folder (converted each time), or a hub handle:
                `"hf://OWNER/REPO"` (needs the `hf` extra) or
                `"kaggle://OWNER/MODEL/FRAMEWORK/VARIATION[/VERSION]"` (the `kaggle` extra).
            checkpoint_dir: read a preset name's T5X checkpoint from this folder instead of
                $KERAS_MT3_CHECKPOINT_DIR or the download cache.
            download: allow downloading the official checkpoint.
            progress: show progress bars (default: when stderr is a terminal).
            **kwargs: replace saved settings, e.g. `decode_batch_size`, `max_decode_length`.
        """
        from keras_mt3.checkpoints import convert_t5x

        return convert_t5x.load_preset(
            preset,
            cls,
            checkpoint_dir=checkpoint_dir,
            download=download,
            progress=progress,
            **kwargs,
        )

    def save_to_preset(self, preset_dir, *, overwrite=True):
        """Saves the model as a preset folder (config, weights, metadata; see
        `keras_mt3.preset_io`) that `from_preset(preset_dir)` loads; returns its path."""
        from keras_mt3 import preset_io

        return preset_io.save_to_preset(self, preset_dir, overwrite=overwrite)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "backbone": keras.saving.serialize_keras_object(self.backbone),
                "vocabulary": vocabulary_lib.serialize_vocabulary(self.vocabulary),
                "decode_batch_size": self.decode_batch_size,
                "max_decode_length": self.max_decode_length,
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["backbone"] = keras.saving.deserialize_keras_object(config["backbone"])
        return cls(**config)

    # ---- training -------------------------------------------------------------------------

    def call(self, inputs, training=False):
        return self.backbone(inputs, training=training)

    # ---- inference ------------------------------------------------------------------------

    def generate(self, encoder_inputs):
        """Greedy-decodes log-mel inputs `[n, frames, 512]` to model token ids `[n, length]`.

        Rows end with EOS followed by PAD (0); a row that never emits EOS fills the length.
        """
        outputs = [
            self._generate_batch(encoder_inputs[start : start + self.decode_batch_size])
            for start in range(0, len(encoder_inputs), self.decode_batch_size)
        ]
        return np.concatenate(outputs, axis=0) if outputs else np.zeros((0, 0), "int32")

    def _generate_batch(self, encoder_inputs):
        if self._decode_fn is None:
            self._decode_fn = make_greedy_decode_fn(self.backbone, self.max_decode_length)
        return self._run_padded(self._decode_fn, np.asarray(encoder_inputs, "float32"))

    def _transcribe_batch(self, segment_samples, num_frames):
        """Segment samples -> tokens in one greedy batch, frontend included in the compiled
        decode program: what `transcribe` did before its decoder slots, kept as the reference
        the slots must equal (tests)."""
        if self._audio_decode_fn is None:
            self._audio_decode_fn = make_greedy_decode_fn(
                self.backbone, self.max_decode_length, frontend=self.frontend
            )
        return self._run_padded(
            self._audio_decode_fn,
            np.asarray(segment_samples, "float32"),
            np.asarray(num_frames, "int32"),
        )

    def _slot_decoder(self, num_segments=None):
        """The `SlotDecoder` for `num_segments` (None: unknown), one per pool size: a pool
        no larger than the work (`padded_batch_size`) spares a short clip idle slots."""
        num_slots = self.decode_batch_size
        if num_segments is not None:
            num_slots = padded_batch_size(max(num_segments, 1), self.decode_batch_size)
        if num_slots not in self._slot_decoders:
            self._slot_decoders[num_slots] = SlotDecoder(
                self.backbone, self.frontend, num_slots, self.max_decode_length
            )
        return self._slot_decoders[num_slots]

    def _run_padded(self, decode_fn, *batch):
        count = len(batch[0])
        padded_count = padded_batch_size(count, self.decode_batch_size)
        if count < padded_count:
            batch = [
                np.concatenate([x, np.zeros((padded_count - count,) + x.shape[1:], x.dtype)])
                for x in batch
            ]
        return keras.ops.convert_to_numpy(decode_fn(*batch))[:count]

    def compute_log_mel(self, segment_samples, num_frames):
        return keras.ops.convert_to_numpy(self.frontend(segment_samples, num_frames))

    def transcribe(
        self,
        audio,
        *,
        sample_rate=None,
        progress=None,
        progress_callback=None,
        return_details=False,
    ):
        """Transcribes audio to a NoteSequence.

        Args:
            audio: a path, bytes, binary file object, or a 1-D/2-D array of samples (float, or
                PCM integers). Any common format and rate; stereo is mixed down. Paths are
                streamed, so long files use bounded memory.
            sample_rate: the rate of an array `audio` in Hz; required for arrays and refused
                for files, which carry their own rate.
            progress: show a progress bar (default: when stderr is a terminal).
            progress_callback: called as `progress_callback(segments_done, segments_total)`
                before the first segment and after each one, for progress shown elsewhere (a web
                page). `segments_total` is None when the length is not known up front (bytes,
                file objects). An exception it raises stops the transcription there, which is
                how a caller cancels one.
            return_details: also return a dict with counts and timings.
        """
        started = time.perf_counter()
        if audio_io.is_sample_array(audio):
            _check_array_rate(sample_rate)
            samples = audio_io.load_audio(np.asarray(audio), source_sample_rate=sample_rate)
            blocks, total_seconds = [samples], len(samples) / audio_io.SAMPLE_RATE
        else:
            if sample_rate is not None:
                raise audio_io.AudioLoadError(
                    "sample_rate= is only for arrays of samples; audio files carry their own "
                    "rate. Drop the argument."
                )
            total_seconds = audio_io.audio_duration(audio) if _is_path(audio) else None
            blocks = audio_io.stream_audio(audio)
        total_segments = None if total_seconds is None else self._count_segments(total_seconds)
        ((_, decoded),) = self._decode_files(
            [(audio, lambda: blocks)], total_segments, progress, progress_callback, catch=False
        )
        result = decoded.detokenized
        if not return_details:
            return result.note_sequence
        details = {
            "num_segments": decoded.num_segments,
            "num_notes": len(result.note_sequence.notes),
            "num_invalid_events": result.num_invalid_events,
            "num_dropped_events": result.num_dropped_events,
            "seconds": time.perf_counter() - started,
        }
        return result.note_sequence, details

    def transcribe_many(
        self,
        sources: Iterable[AudioSource],
        *,
        progress: bool | None = None,
        return_errors: bool = False,
    ) -> Iterator[tuple[AudioSource, music_pb2.NoteSequence | KerasMT3Error]]:
        """Transcribes many audio files; yields `(source, NoteSequence)` per file, in order.

        The files' segments share the decoder's slots (`SlotDecoder`): a slot that frees up
        takes the next segment, from the same file or the next, so this is faster than calling
        `transcribe` file by file. Files are read as their segments are needed, and each result
        is yielded once its file is done, so memory stays bounded however many files there are.

        Args:
            sources: paths, bytes or binary file objects (arrays: use `transcribe`).
            progress: show a progress bar over all files (default: when stderr is a terminal).
            return_errors: a file that cannot be read yields `(source, error)` (a
                `KerasMT3Error`) and the others go on; by default the error is raised.
        """
        sources = list(sources)
        durations = [_duration_or_none(source) for source in sources]
        total_segments = None
        if all(duration is not None for duration in durations):
            total_segments = sum(self._count_segments(duration) for duration in durations)
        files = [(source, functools.partial(audio_io.stream_audio, source)) for source in sources]
        for source, decoded in self._decode_files(files, total_segments, progress, None, catch=True):
            if decoded.error is None:
                yield source, decoded.detokenized.note_sequence
            elif return_errors:
                yield source, decoded.error
            else:
                raise decoded.error

    def _count_segments(self, seconds):
        num_samples = round(seconds * audio_io.SAMPLE_RATE)
        return segments_lib.count_segments(num_samples, self.frames_per_segment)

    def _decode_files(self, files, total_segments, progress, progress_callback, catch):
        """Decodes `(source, open_blocks)` files through one `SlotDecoder`; yields
        `(source, _FileTokens)` in the files' order, each as soon as it and those before it are
        done: `.detokenized` holds the notes, or `.error` the `KerasMT3Error` that stopped a
        file's reading (with `catch`; otherwise it propagates)."""
        from keras_mt3.utils import progress_bar

        files = list(files)
        pending = [_FileTokens() for _ in files]
        done_segments = 0
        report = progress_callback or (lambda done, total: None)

        def numbered_segments():
            for file_index, (_, open_blocks) in enumerate(files):
                record = pending[file_index]
                try:
                    batches = segments_lib.batched_segments(
                        open_blocks(), self.frames_per_segment, self.decode_batch_size
                    )
                    for batch in batches:
                        for samples, num_frames, start_time in zip(*batch):
                            record.start_times.append(start_time)
                            key = (file_index, len(record.start_times) - 1)
                            yield key, samples, int(num_frames)
                except KerasMT3Error as error:
                    if not catch:
                        raise
                    record.error = error
                record.read = True

        next_file = 0

        def finished_files():
            nonlocal next_file
            while next_file < len(files) and pending[next_file].done():
                record = pending[next_file]
                pending[next_file] = None  # the tokens are not needed any more
                record.detokenize(self.vocabulary)
                yield files[next_file][0], record
                next_file += 1

        report(0, total_segments)
        decoder = self._slot_decoder(total_segments)
        with progress_bar(total=total_segments, desc="transcribing", unit="seg", enabled=progress) as bar:
            for (file_index, segment_index), tokens in decoder.decode(numbered_segments()):
                if pending[file_index] is not None:
                    pending[file_index].tokens[segment_index] = tokens
                done_segments += 1
                bar.update(1)
                report(done_segments, total_segments)
                yield from finished_files()
        yield from finished_files()

    def transcribe_to_midi(self, audio, midi_path, **kwargs):
        """Transcribes `audio` and writes a MIDI file atomically; returns the NoteSequence."""
        from keras_mt3.midi_io import save_midi

        note_sequence = self.transcribe(audio, **kwargs)
        save_midi(note_sequence, midi_path)
        return note_sequence


def padded_batch_size(count, decode_batch_size):
    """The batch size `count` segments are padded to, capped at `decode_batch_size`: the next
    power of two up to 4, then the next multiple of 4.

    The compiled decode program depends on the batch shape, so padding keeps the number of
    programs small (1, 2, 4, 8, 12, 16 for the default `decode_batch_size`; a file needs at
    most two), each compiled once. Padding to a near size rather than always to the full size
    spares a file's short last batch most of the padded rows' encoder and decoder work.
    """
    if count >= decode_batch_size:
        return decode_batch_size
    if count <= BATCH_SIZE_STEP:
        padded = 1 << max(count - 1, 0).bit_length()
    else:
        padded = -(-count // BATCH_SIZE_STEP) * BATCH_SIZE_STEP
    return min(padded, decode_batch_size)


class _FileTokens:
    """One file's decoded segments while `MT3Transcriber._decode_files` runs."""

    def __init__(self):
        self.start_times = []
        self.tokens = {}
        self.read = False
        self.error = None
        self.detokenized = None

    @property
    def num_segments(self):
        return len(self.start_times)

    def done(self):
        return self.read and (self.error is not None or len(self.tokens) == self.num_segments)

    def detokenize(self, vocabulary):
        if self.error is None:
            segment_tokens = [self.tokens[index] for index in range(self.num_segments)]
            start_times = segments_lib.decode_start_times(np.asarray(self.start_times, np.float64))
            self.detokenized = tokens_to_note_sequence(segment_tokens, start_times, vocabulary)
        self.tokens = {}


def _duration_or_none(source):
    try:
        return audio_io.audio_duration(source) if _is_path(source) else None
    except KerasMT3Error:
        return None


def _check_array_rate(sample_rate):
    if sample_rate is None:
        raise audio_io.AudioLoadError(
            "transcribe() got raw samples without `sample_rate`; pass the rate they were "
            "recorded at (e.g. sample_rate=44100)."
        )
    audio_io.check_sample_rate(sample_rate, "sample_rate")


def _is_path(source):
    return isinstance(source, (str, pathlib.Path))
