"""What many test folders share: tiny backbones, NoteSequence builders, layer contracts.

Import with `from helpers import ...`: tests/ is on `sys.path` because tests/conftest.py lives
there (pytest's default `prepend` import mode). Keras and keras_mt3's models are imported
inside the functions that need them, so backend-independent tests can use the NoteSequence
builder without loading a backend.
"""

import json

import numpy as np
import pytest
from note_seq.protobuf import music_pb2

from keras_mt3.constants import DEFAULT_VELOCITY

# ---- tiny backbones -------------------------------------------------------------------------

# Arbitrary small shapes (10 input features, 20 ids) for tests of the network's mechanics.
TINY_BACKBONE_CONFIG = dict(
    vocabulary_size=20, hidden_dim=16, num_heads=2, head_dim=4, intermediate_dim=24,
    num_encoder_layers=2, num_decoder_layers=2,
    input_dim=10, max_encoder_length=12, max_decoder_length=16,
)

# One layer each, but MT3's vocabulary and the model's 512 log-mel inputs: small enough for
# quick `generate` / `transcribe` / export tests on real audio.
TINY_MT3_BACKBONE_CONFIG = {
    **{key: TINY_BACKBONE_CONFIG[key] for key in ("hidden_dim", "num_heads", "max_decoder_length")},
    **dict(head_dim=8, intermediate_dim=32, num_encoder_layers=1, num_decoder_layers=1),
}


def _build_backbone(seed, config):
    import keras

    from keras_mt3.models.mt3_backbone import MT3Backbone

    keras.utils.set_random_seed(seed)
    return MT3Backbone(**config)


def tiny_backbone(seed=0, **overrides):
    """An `MT3Backbone` of `TINY_BACKBONE_CONFIG` (with `overrides`), weights drawn from `seed`."""
    return _build_backbone(seed, {**TINY_BACKBONE_CONFIG, **overrides})


def tiny_mt3_backbone(seed=0, vocabulary="mt3", **overrides):
    """An `MT3Backbone` of `TINY_MT3_BACKBONE_CONFIG` sized for `vocabulary`'s ids; the input
    width and encoder length are the model's defaults (512 mel bins, 256 frames)."""
    from keras_mt3.codec.vocabulary import get_vocabulary

    size = get_vocabulary(vocabulary).num_embeddings
    return _build_backbone(seed, {**TINY_MT3_BACKBONE_CONFIG, "vocabulary_size": size, **overrides})


def tiny_transcriber(
    seed=0, vocabulary="mt3", decode_batch_size=2, max_decode_length=None, **overrides
):
    """An `MT3Transcriber` around `tiny_mt3_backbone`; decodes as many tokens as the backbone
    allows unless `max_decode_length` says otherwise."""
    from keras_mt3.models.mt3_transcriber import MT3Transcriber

    backbone = tiny_mt3_backbone(seed, vocabulary, **overrides)
    return MT3Transcriber(
        backbone,
        vocabulary=vocabulary,
        decode_batch_size=decode_batch_size,
        max_decode_length=max_decode_length or backbone.max_decoder_length,
    )


def backbone_inputs(config, batch_size=2, decoder_length=5, seed=0, first_id=0):
    """Random `{"encoder_inputs", "decoder_token_ids"}` for a backbone of `config` (e.g.
    `TINY_BACKBONE_CONFIG`): full encoder length, ids from `first_id` up."""
    rng = np.random.default_rng(seed)
    encoder_shape = (batch_size, config["max_encoder_length"], config["input_dim"])
    return {
        "encoder_inputs": rng.normal(size=encoder_shape).astype("float32"),
        "decoder_token_ids": rng.integers(
            first_id, config["vocabulary_size"], size=(batch_size, decoder_length)
        ).astype("int32"),
    }


# ---- NoteSequences --------------------------------------------------------------------------

NOTE_FIELDS = ("pitch", "start_time", "end_time", "velocity", "program", "is_drum")
_NOTE_DEFAULTS = (DEFAULT_VELOCITY, 0, False)


def note_sequence(notes):
    """A NoteSequence from `(pitch, start, end[, velocity[, program[, is_drum]]])` tuples.

    Missing fields are velocity 100, program 0, not drums. The sequence carries what one read
    from a MIDI file carries: 220 ticks per quarter, a 120 qpm tempo and `total_time`.
    """
    sequence = music_pb2.NoteSequence(ticks_per_quarter=220)
    sequence.tempos.add(qpm=120.0)
    for note in notes:
        values = (*note, *_NOTE_DEFAULTS[len(note) - 3 :])
        sequence.notes.add(**dict(zip(NOTE_FIELDS, values)))
    sequence.total_time = max((note.end_time for note in sequence.notes), default=0.0)
    return sequence


def note_tuples(notes):
    """`notes` (a NoteSequence, its `notes`, or `NOTE_FIELDS` tuples) as sorted tuples."""
    notes = getattr(notes, "notes", notes)
    return sorted(
        note if isinstance(note, tuple) else tuple(getattr(note, field) for field in NOTE_FIELDS)
        for note in notes
    )


def assert_same_notes(actual, expected, atol):
    """Same notes (see `note_tuples`): pitches, velocities, programs and drum flags exactly,
    onset and offset times within `atol` seconds."""
    actual, expected = note_tuples(actual), note_tuples(expected)
    assert [note[:1] + note[3:] for note in actual] == [note[:1] + note[3:] for note in expected]
    times = [time for note in actual for time in note[1:3]]
    assert times == pytest.approx([time for note in expected for time in note[1:3]], abs=atol)


def reference_notes(reference_dir, clip):
    """The original MT3's transcription of `clip` (its `.json` reference) as `NOTE_FIELDS`
    tuples, in file order."""
    notes = json.loads((reference_dir / f"{clip}.json").read_text())["notes"]
    return [
        (n["pitch"], n["start"], n["end"], n["velocity"], n["program"], n["is_drum"])
        for n in notes
    ]


# ---- layer and model contracts (in the spirit of keras-hub's run_layer_test) ----------------


def _numpy_outputs(outputs):
    import keras

    if isinstance(outputs, dict):
        return {key: keras.ops.convert_to_numpy(value) for key, value in outputs.items()}
    if isinstance(outputs, (list, tuple)):
        return [keras.ops.convert_to_numpy(value) for value in outputs]
    return keras.ops.convert_to_numpy(outputs)


def _shapes(outputs):
    if isinstance(outputs, dict):
        return {key: tuple(value.shape) for key, value in outputs.items()}
    if isinstance(outputs, list):
        return [tuple(value.shape) for value in outputs]
    return tuple(outputs.shape)


def _call(layer, input_data, call_kwargs):
    if isinstance(input_data, tuple):
        return layer(*input_data, **call_kwargs)
    return layer(input_data, **call_kwargs)


def _assert_same_outputs(actual, expected, atol):
    if isinstance(expected, dict):
        assert actual.keys() == expected.keys()
        for key in expected:
            np.testing.assert_allclose(actual[key], expected[key], atol=atol, rtol=0)
    elif isinstance(expected, list):
        for got, want in zip(actual, expected, strict=True):
            np.testing.assert_allclose(got, want, atol=atol, rtol=0)
    else:
        np.testing.assert_allclose(actual, expected, atol=atol, rtol=0)


def run_layer_test(
    layer_cls,
    init_kwargs,
    input_data,
    expected_output_shape,
    call_kwargs=None,
    expected_num_weights=None,
    atol=0.0,
):
    """The contract every keras_mt3 layer and model keeps; returns the layer and its outputs.

    Builds `layer_cls(**init_kwargs)`, calls it on `input_data` (a tuple is passed as
    positional arguments), checks the output shape (a tuple, or a dict/list of them) and, where
    given, the weight count; then rebuilds it from `get_config()`, checks that the config comes
    back the same, copies the weights over and checks that the copy gives the same outputs.
    Finally `run_serialization_test` checks the registered-serializable round trip.
    """
    call_kwargs = call_kwargs or {}
    layer = layer_cls(**init_kwargs)
    outputs = _numpy_outputs(_call(layer, input_data, call_kwargs))
    assert _shapes(outputs) == expected_output_shape
    if expected_num_weights is not None:
        assert len(layer.weights) == expected_num_weights
    config = layer.get_config()
    rebuilt = layer_cls.from_config(config)
    assert rebuilt.get_config() == config
    _call(rebuilt, input_data, call_kwargs)  # builds its weights
    rebuilt.set_weights(layer.get_weights())
    _assert_same_outputs(_numpy_outputs(_call(rebuilt, input_data, call_kwargs)), outputs, atol)
    run_serialization_test(layer, input_data, call_kwargs, atol)
    return layer, outputs


def run_serialization_test(instance, input_data, call_kwargs=None, atol=0.0):
    """`keras.saving.serialize_keras_object` -> `deserialize_keras_object` gives an object of
    the same class and config that, given `instance`'s weights, computes the same outputs."""
    import keras

    call_kwargs = call_kwargs or {}
    expected = _numpy_outputs(_call(instance, input_data, call_kwargs))
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(instance))
    assert type(restored) is type(instance)
    assert restored.get_config() == instance.get_config()
    _call(restored, input_data, call_kwargs)
    restored.set_weights(instance.get_weights())
    _assert_same_outputs(_numpy_outputs(_call(restored, input_data, call_kwargs)), expected, atol)
    return restored


# ---- preset contract -------------------------------------------------------------------------
# The preset round trip (`MT3Transcriber.save_to_preset` -> `from_preset`, `.keras` files) goes
# here, beside the two contracts above, as `run_preset_test`.
