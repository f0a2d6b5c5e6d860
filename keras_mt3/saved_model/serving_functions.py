"""The functions behind the exported signatures (TensorFlow backend only).

`serving_default` runs MT3's inference chain as one graph of ordinary TF kernels: framing
(`keras_mt3.tf_ops.segments`), the log-mel frontend, the encoder and greedy decoding
(`tf_greedy_decoding`) in batches of `decode_batch_size` segments, and detokenization
(`keras_mt3.tf_ops.detokenize`). The token
signatures run only the encoder and decoder: `decode_tokens` with the same plain-graph decoder,
`decode_xla` with the model's own XLA-compiled decoding function. Requests are checked first
with `tf.debugging` asserts, so a bad request fails with an InvalidArgument error that says
what is wrong, before any work.
"""

import tensorflow as tf

from keras_mt3.constants import SAMPLE_RATE
from keras_mt3.models.greedy_decoding import make_greedy_decode_fn
from keras_mt3.saved_model import signatures as names
from keras_mt3.saved_model.tf_greedy_decoding import greedy_decode_without_xla
from keras_mt3.tf_ops.detokenize import detokenize
from keras_mt3.tf_ops.segments import waveform_to_segments


class ServingFunctions:
    """Builds `{signature name: (python function, input signature)}` for one model.

    Args:
        backbone: a built `MT3Backbone` (TensorFlow backend).
        frontend: the `LogMelSpectrogram` layer.
        vocabulary: a `VocabularyConfig`.
        request_batch_size: fixed number of clips per request, or None for any.
        max_audio_seconds: longest clip a request may hold.
        decode_batch_size: segments encoded and decoded together.
        max_decode_length: most tokens per segment.
        include_xla: also build the XLA-compiled `decode_xla`.
    """

    def __init__(
        self,
        backbone,
        frontend,
        vocabulary,
        *,
        request_batch_size,
        max_audio_seconds,
        decode_batch_size,
        max_decode_length,
        include_xla,
    ):
        self.backbone = backbone
        self.frontend = frontend
        self.vocabulary = vocabulary
        self.request_batch_size = request_batch_size
        self.max_audio_seconds = float(max_audio_seconds)
        self.max_samples = int(round(self.max_audio_seconds * SAMPLE_RATE))
        self.decode_batch_size = int(decode_batch_size)
        self.max_decode_length = int(max_decode_length)
        self.frames_per_segment = vocabulary.input_frames
        self.include_xla = include_xla

    # ---- signatures -----------------------------------------------------------------------

    def endpoints(self):
        audio_spec = [
            tf.TensorSpec([self.request_batch_size, None], tf.float32, name=names.WAVEFORM),
            tf.TensorSpec([self.request_batch_size], tf.int32, name=names.LENGTHS),
        ]
        frames_spec = [
            tf.TensorSpec(
                [self.request_batch_size, self.frames_per_segment, self.backbone.input_dim],
                tf.float32,
                name=names.ENCODER_INPUTS,
            )
        ]
        endpoints = {
            names.SERVING_DEFAULT: (self.transcribe, audio_spec),
            names.DECODE_TOKENS: (self.decode_tokens, frames_spec),
        }
        if self.include_xla:
            endpoints[names.DECODE_XLA] = (self.decode_xla, frames_spec)
        return endpoints

    def decode_tokens(self, encoder_inputs):
        with tf.control_dependencies(self._check_frames(encoder_inputs)):
            encoded = self.backbone.encode(encoder_inputs, training=False)
            tokens = greedy_decode_without_xla(self.backbone, encoded, self.max_decode_length)
        return {names.TOKENS: tokens}

    def decode_xla(self, encoder_inputs):
        with tf.control_dependencies(self._check_frames(encoder_inputs)):
            # The very function MT3Transcriber uses under TensorFlow: tf.function(jit_compile=True).
            decode = make_greedy_decode_fn(self.backbone, self.max_decode_length, jit=True)
            tokens = decode(encoder_inputs)
        return {names.TOKENS: tf.identity(tokens)}

    # ---- pipeline -------------------------------------------------------------------------

    def transcribe(self, waveform, lengths):
        with tf.control_dependencies(self._check_audio(waveform, lengths)):
            segments = waveform_to_segments(waveform, lengths, self.frames_per_segment)
            tokens = self._decode_segments(segments)
            notes = detokenize(
                tokens,
                segments.start_times,
                segments.example_ids,
                num_examples=tf.shape(waveform)[0],
                vocabulary=self.vocabulary,
            )
        return {
            names.ONSET_TIMES: tf.cast(notes.onset_times, tf.float32),
            names.OFFSET_TIMES: tf.cast(notes.offset_times, tf.float32),
            names.PITCHES: notes.pitches,
            names.VELOCITIES: notes.velocities,
            names.PROGRAMS: notes.programs,
            names.IS_DRUM: notes.is_drum,
            names.NUM_NOTES: notes.num_notes,
            names.NUM_INVALID_EVENTS: notes.num_invalid_events,
            names.NUM_DROPPED_EVENTS: notes.num_dropped_events,
        }

    def _decode_segments(self, segments):
        """Tokens `[num_segments, max_decode_length]`, decoding `decode_batch_size` at a time
        (bounds memory; the last batch is simply smaller, nothing is padded)."""
        num_segments = tf.shape(segments.samples)[0]
        rows = self.decode_batch_size
        num_batches = (num_segments + rows - 1) // rows

        def decode_batch(index, outputs):
            start = index * rows
            stop = tf.minimum(start + rows, num_segments)
            log_mel = self.frontend(segments.samples[start:stop], segments.num_frames[start:stop])
            encoded = self.backbone.encode(log_mel, training=False)
            tokens = greedy_decode_without_xla(self.backbone, encoded, self.max_decode_length)
            return index + 1, outputs.write(index, tokens)

        outputs = tf.TensorArray(
            tf.int32,
            size=num_batches,
            element_shape=tf.TensorShape([None, self.max_decode_length]),
            infer_shape=False,
        )
        _, outputs = tf.while_loop(
            lambda index, _: index < num_batches,
            decode_batch,
            (tf.constant(0), outputs),
            parallel_iterations=1,
        )
        return outputs.concat()

    # ---- request checks -------------------------------------------------------------------
    # Each group of checks runs only once the previous one passed, so a request fails on its
    # first problem, and nothing sized by the request runs before its shapes are known good.

    def _check_audio(self, waveform, lengths):
        batch = ("batch", self.request_batch_size)
        shapes = [
            _assert_shape(waveform, names.WAVEFORM, [batch, ("samples", None)]),
            _assert_shape(lengths, names.LENGTHS, [batch]),
        ]
        with tf.control_dependencies(shapes):
            same_batch = tf.debugging.assert_equal(
                tf.shape(lengths)[0],
                tf.shape(waveform)[0],
                message=f"`{names.LENGTHS}` needs one entry per row of `{names.WAVEFORM}`",
            )
        with tf.control_dependencies([same_batch]):
            bounds = [
                tf.debugging.assert_non_negative(
                    lengths, message=f"`{names.LENGTHS}` must be >= 0 (samples per clip)"
                ),
                tf.debugging.assert_less_equal(
                    lengths,
                    tf.shape(waveform)[1],
                    message=f"`{names.LENGTHS}` exceeds the samples in `{names.WAVEFORM}`",
                ),
                tf.debugging.assert_less_equal(
                    lengths,
                    self.max_samples,
                    message=(
                        f"audio is longer than the exported limit of "
                        f"{self.max_audio_seconds:g} s ({self.max_samples} samples at "
                        f"{SAMPLE_RATE} Hz); split it into shorter requests or export again "
                        "with a larger max_audio_seconds"
                    ),
                ),
            ]
        with tf.control_dependencies(bounds):
            inside = tf.range(tf.shape(waveform)[1])[None, :] < lengths[:, None]
            finite = tf.logical_or(tf.math.is_finite(waveform), tf.logical_not(inside))
            return [
                tf.debugging.Assert(
                    tf.reduce_all(finite),
                    [f"`{names.WAVEFORM}` holds NaN or infinite samples; send finite audio"],
                )
            ]

    def _check_frames(self, encoder_inputs):
        axes = [
            ("batch", self.request_batch_size),
            ("frames", self.frames_per_segment),
            ("bins", self.backbone.input_dim),
        ]
        with tf.control_dependencies([_assert_shape(encoder_inputs, names.ENCODER_INPUTS, axes)]):
            return [
                tf.debugging.Assert(
                    tf.reduce_all(tf.math.is_finite(encoder_inputs)),
                    [f"`{names.ENCODER_INPUTS}` holds NaN or infinite values"],
                )
            ]


def _assert_shape(tensor, name, axes):
    """An assert that `tensor` has one dimension per `(axis name, size or None)` in `axes`.

    The signature's TensorSpec binds only Python callers: TF Serving and the C++ API feed
    tensors of any shape. Without this a rank-3 waveform broadcast the NaN check to
    [batch, samples, samples]. The shape is read with raw ops because `tf.shape` and `tf.rank`
    answer from the traced static shape, which a fed tensor need not have.
    """
    layout = "[" + ", ".join(axis if size is None else str(size) for axis, size in axes) + "]"
    message = f"`{name}` must have shape {layout} (rank {len(axes)}); got shape"
    shape = tf.raw_ops.Shape(input=tensor)
    rank = tf.debugging.Assert(tf.equal(tf.raw_ops.Size(input=shape), len(axes)), [message, shape])
    fixed = [(axis, size) for axis, (_, size) in enumerate(axes) if size is not None]
    if not fixed:
        return rank
    with tf.control_dependencies([rank]):
        sizes = tf.stack([shape[axis] for axis, _ in fixed])
        return tf.debugging.Assert(
            tf.reduce_all(tf.equal(sizes, [size for _, size in fixed])), [message, shape]
        )
