"""The TensorFlow-graph detokenizer gives exactly what the Python detokenizer gives."""

import json

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import HealthCheck, given, settings
from helpers import assert_same_notes, reference_notes
from hypothesis import strategies as st

from keras_mt3.codec.detokenize import tokens_to_note_sequence
from keras_mt3.codec.event_codec import Event
from keras_mt3.codec.vocabulary import ISMIR2021_VOCABULARY, MT3_VOCABULARY, NUM_SPECIAL_TOKENS
from keras_mt3.constants import EOS_ID, PAD_ID, UNK_ID
from keras_mt3.tf_ops.detokenize import detokenize

pytestmark = pytest.mark.backend_independent

REFERENCE_CLIPS = ("piano_chorale", "multi_band")
VOCABULARIES = {"mt3": MT3_VOCABULARY, "ismir2021": ISMIR2021_VOCABULARY}


def _compiled(vocabulary):
    # One trace per vocabulary: every shape is dynamic.
    @tf.function(
        input_signature=[
            tf.TensorSpec([None, None], tf.int32),
            tf.TensorSpec([None], tf.float64),
            tf.TensorSpec([None], tf.int32),
            tf.TensorSpec([], tf.int32),
        ],
        autograph=False,
    )
    def run(tokens, start_times, example_ids, num_examples):
        return detokenize(tokens, start_times, example_ids, num_examples, vocabulary)

    return run


DETOKENIZERS = {name: _compiled(vocabulary) for name, vocabulary in VOCABULARIES.items()}


def pad_rows(segments):
    """[S, L] int32 from ragged rows; EOS-padded, which ends a row just like its end."""
    length = max([len(row) for row in segments] + [1])
    tokens = np.full((len(segments), length), EOS_ID, np.int32)
    for index, row in enumerate(segments):
        tokens[index, : len(row)] = row
    return tokens


def graph_notes(result, example):
    count = int(result.num_notes[example])
    columns = (
        result.onset_times, result.offset_times, result.pitches, result.velocities,
        result.programs, result.is_drum,
    )
    rows = [column.numpy()[example, :count] for column in columns]
    return [
        (float(onset), float(offset), int(pitch), int(velocity), int(program), bool(drum))
        for onset, offset, pitch, velocity, program, drum in zip(*rows)
    ]


def python_notes(note_sequence):
    return [
        (n.start_time, n.end_time, n.pitch, n.velocity, n.program, n.is_drum)
        for n in note_sequence.notes
    ]


def check_against_python(segments, start_times, example_ids, num_examples, vocabulary_name):
    """Decodes in one batched graph call and per example in Python; all must agree exactly."""
    result = DETOKENIZERS[vocabulary_name](
        pad_rows(segments),
        np.asarray(start_times, np.float64),
        np.asarray(example_ids, np.int32),
        np.int32(num_examples),
    )
    assert result.num_notes.shape == (num_examples,)
    for example in range(num_examples):
        chosen = [i for i, owner in enumerate(example_ids) if owner == example]
        expected = tokens_to_note_sequence(
            [segments[i] for i in chosen],
            [start_times[i] for i in chosen],
            VOCABULARIES[vocabulary_name],
        )
        assert graph_notes(result, example) == python_notes(expected.note_sequence)
        assert int(result.num_invalid_events[example]) == expected.num_invalid_events
        assert int(result.num_dropped_events[example]) == expected.num_dropped_events
        # Padding past num_notes is zeros.
        count = int(result.num_notes[example])
        assert not result.onset_times.numpy()[example, count:].any()
        assert not result.is_drum.numpy()[example, count:].any()
    return result


# ---- the original MT3's decoded tokens ------------------------------------------------------


@pytest.mark.parametrize("clip", REFERENCE_CLIPS)
def test_reference_segments_give_the_reference_notes(reference_dir, clip):
    reference = json.loads((reference_dir / f"{clip}.json").read_text())
    segments = [segment["model_vocab_ids"] for segment in reference["segments"]]
    start_times = [segment["start_time"] for segment in reference["segments"]]
    result = check_against_python(segments, start_times, [0] * len(segments), 1, "mt3")

    graph = [
        (pitch, onset, offset, velocity, program, drum)
        for onset, offset, pitch, velocity, program, drum in graph_notes(result, 0)
    ]
    assert_same_notes(graph, reference_notes(reference_dir, clip), atol=1e-6)


def test_reference_clips_decode_together_in_one_batch(reference_dir):
    segments, start_times, example_ids = [], [], []
    for example, clip in enumerate(REFERENCE_CLIPS):
        reference = json.loads((reference_dir / f"{clip}.json").read_text())
        for segment in reversed(reference["segments"]):  # order must not matter
            segments.append(segment["model_vocab_ids"])
            start_times.append(segment["start_time"])
            example_ids.append(example)
    result = check_against_python(segments, start_times, example_ids, 2, "mt3")
    assert int(result.num_notes[0]) > 100 and int(result.num_notes[1]) > 300


# ---- hand-made streams ----------------------------------------------------------------------


def ids(*events, vocabulary=MT3_VOCABULARY):
    return [vocabulary.codec.encode_event(Event(*event)) + NUM_SPECIAL_TOKENS for event in events]


def summary(notes):
    """(pitch, program, is_drum, onset, offset) with times rounded to the 10 ms grid."""
    return [(n[2], n[4], n[5], round(n[0], 6), round(n[1], 6)) for n in notes]


def test_tie_section_keeps_named_notes_and_ends_the_others():
    first = ids(("tie", 0), ("shift", 10), ("program", 33), ("pitch", 40), ("pitch", 45))
    # The second segment names only pitch 45: pitch 40 ends at the segment start (2.04 s).
    second = ids(("program", 33), ("pitch", 45), ("tie", 0), ("shift", 5), ("velocity", 0),
                 ("pitch", 45))
    result = check_against_python([first + [EOS_ID], second], [0.0, 2.04], [0, 0], 1, "mt3")
    assert summary(graph_notes(result, 0)) == [
        (40, 33, False, 0.1, 2.04),
        (45, 33, False, 0.1, 2.09),
    ]


def test_shift_past_the_next_segment_drops_the_rest():
    first = ids(("tie", 0), ("shift", 150), ("pitch", 60), ("shift", 300), ("pitch", 61),
                ("pitch", 62))
    second = ids(("tie", 0), ("shift", 1), ("pitch", 70))
    result = check_against_python([first, second], [0.0, 2.04], [0, 0], 1, "mt3")
    assert int(result.num_dropped_events[0]) == 3
    assert summary(graph_notes(result, 0)) == [
        (60, 0, False, 1.5, 2.04),
        (70, 0, False, 2.05, 2.06),
    ]


def test_bad_ids_are_counted_and_skipped():
    stream = [PAD_ID, UNK_ID, 5000, -3, 1400] + ids(("tie", 0), ("shift", 3), ("drum", 36))
    result = check_against_python([stream], [0.0], [0], 1, "mt3")
    assert int(result.num_invalid_events[0]) == 5
    assert summary(graph_notes(result, 0)) == [(36, 0, True, 0.03, 0.04)]


def test_everything_after_eos_is_ignored():
    stream = ids(("tie", 0), ("shift", 3), ("pitch", 60)) + [EOS_ID] + ids(("pitch", 61))
    result = check_against_python([stream], [1.0], [0], 1, "mt3")
    assert [note[2] for note in graph_notes(result, 0)] == [60]


@pytest.mark.parametrize(
    "segments, start_times, example_ids, num_examples",
    [
        ([], [], [], 0),  # no examples at all
        ([], [], [], 3),  # examples without segments
        ([[EOS_ID], []], [0.0, 2.04], [0, 0], 1),  # segments without tokens
        ([[PAD_ID] * 4], [0.0], [1], 2),  # only padding, in the second example
    ],
)
def test_empty_inputs_give_empty_rows(segments, start_times, example_ids, num_examples):
    result = check_against_python(segments, start_times, example_ids, num_examples, "mt3")
    assert result.onset_times.shape[0] == num_examples
    assert not np.any(result.num_notes.numpy())


# ---- random streams, including malformed ones -----------------------------------------------


def token_strategy(vocabulary):
    """Ids drawn mostly from a few events (so notes collide, tie and end), plus junk."""
    codec = vocabulary.codec

    def event_ids(event_type, values):
        return st.sampled_from(values).map(
            lambda value: codec.encode_event(Event(event_type, value)) + NUM_SPECIAL_TOKENS
        )

    velocity_bins = [0, 1, vocabulary.num_velocity_bins]
    return st.one_of(
        event_ids("shift", [1, 2, 5, 30, 99, 150, 205]),
        event_ids("shift", [300, 1000]),
        event_ids("pitch", [60, 61, 64]),
        event_ids("pitch", [60, 61, 64]),
        event_ids("velocity", velocity_bins),
        event_ids("tie", [0]),
        event_ids("tie", [0]),
        event_ids("program", [0, 33]),
        event_ids("drum", [36, 42]),
        st.sampled_from([EOS_ID, PAD_ID, UNK_ID]),
        st.integers(NUM_SPECIAL_TOKENS + codec.num_classes, vocabulary.num_embeddings + 50),
        st.integers(-(2**31), 2**31 - 1),
    )


START_TIMES = st.one_of(
    st.sampled_from([0.0, 0.0, 1.0, 2.04, 4.09, 6.140000000000001, 2.04]),
    # TensorFlow's CPU kernels flush subnormal floats to zero; real start times are >= 0.
    st.floats(-1.0, 30.0, allow_nan=False, allow_subnormal=False),
)


@st.composite
def batches(draw, vocabulary):
    num_segments = draw(st.integers(0, 6))
    segments = [
        draw(st.lists(token_strategy(vocabulary), max_size=25)) for _ in range(num_segments)
    ]
    start_times = [draw(START_TIMES) for _ in range(num_segments)]
    num_examples = draw(st.integers(1, 3))
    example_ids = [draw(st.integers(0, num_examples - 1)) for _ in range(num_segments)]
    return segments, start_times, example_ids, num_examples


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches(MT3_VOCABULARY))
def test_random_mt3_streams_match_python(batch):
    check_against_python(*batch, "mt3")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches(ISMIR2021_VOCABULARY))
def test_random_ismir2021_streams_match_python(batch):
    check_against_python(*batch, "ismir2021")


def test_no_op_needs_xla():
    graph = DETOKENIZERS["mt3"].get_concrete_function().graph
    names = {op.type for op in graph.get_operations()}
    for function in graph._functions.values():  # loop bodies and branches
        names |= {node.op for node in function.cached_definition.node_def}
    assert not {name for name in names if name.startswith("Xla")}
