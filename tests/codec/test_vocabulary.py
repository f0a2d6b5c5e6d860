import json

import numpy as np
import pytest

from keras_mt3.codec import vocabulary as vocab
from keras_mt3.codec.event_codec import Event
from keras_mt3.codec.vocabulary import (
    ISMIR2021_VOCABULARY,
    MT3_VOCABULARY,
    PROGRAM_GRANULARITIES,
    VocabularyConfig,
    bin_to_velocity,
    get_vocabulary,
    serialize_vocabulary,
    velocity_to_bin,
)
from keras_mt3.errors import KerasMT3Error

pytestmark = pytest.mark.backend_independent


def test_sizes_match_the_reference_table():
    assert (MT3_VOCABULARY.num_classes, MT3_VOCABULARY.vocab_size) == (1388, 1491)
    assert MT3_VOCABULARY.num_embeddings == 1536
    assert (ISMIR2021_VOCABULARY.num_classes, ISMIR2021_VOCABULARY.vocab_size) == (1514, 1617)
    assert ISMIR2021_VOCABULARY.num_embeddings == 1664


# (event type, first value, last value, first model id, last model id) per the reference table.
MT3_MODEL_ID_RANGES = [
    ("shift", 0, 1000, 3, 1003),
    ("pitch", 0, 127, 1004, 1131),
    ("velocity", 0, 1, 1132, 1133),
    ("tie", 0, 0, 1134, 1134),
    ("program", 0, 127, 1135, 1262),
    ("drum", 0, 127, 1263, 1390),
]
ISMIR2021_MODEL_ID_RANGES = [
    ("shift", 0, 1000, 3, 1003),
    ("pitch", 0, 127, 1004, 1131),
    ("velocity", 0, 127, 1132, 1259),
    ("tie", 0, 0, 1260, 1260),
    ("program", 0, 127, 1261, 1388),
    ("drum", 0, 127, 1389, 1516),
]


@pytest.mark.parametrize(
    "config, ranges",
    [(MT3_VOCABULARY, MT3_MODEL_ID_RANGES), (ISMIR2021_VOCABULARY, ISMIR2021_MODEL_ID_RANGES)],
)
def test_model_id_ranges(config, ranges):
    codec = config.codec
    for event_type, first_value, last_value, first_id, last_id in ranges:
        indices = [codec.encode_event(Event(event_type, v)) for v in (first_value, last_value)]
        assert config.codec_indices_to_model_ids(indices).tolist() == [first_id, last_id]
        first, last = codec.event_type_range(event_type)
        assert (first + 3, last + 3) == (first_id, last_id)
    # The ranges tile the regular ids with no gap.
    assert ranges[-1][4] == 3 + config.num_classes - 1


def test_model_ids_to_codec_indices_marks_special_and_out_of_range_ids():
    config = MT3_VOCABULARY
    ids = [0, 1, 2, 3, 1390, 1391, 1490, 1535, -7, 10**9]
    assert config.model_ids_to_codec_indices(ids).tolist() == [
        -2, -1, -2, 0, 1387, -2, -2, -2, -2, -2
    ]


def test_codec_indices_to_model_ids_rejects_out_of_range():
    with pytest.raises(KerasMT3Error):
        MT3_VOCABULARY.codec_indices_to_model_ids([1388])


def test_velocity_bins():
    # One bin (mt3): every sounding velocity is bin 1 and decodes to 127.
    assert {velocity_to_bin(v, 1) for v in range(1, 128)} == {1}
    assert bin_to_velocity(1, 1) == 127
    # 127 bins (ismir2021): the identity.
    assert [bin_to_velocity(velocity_to_bin(v, 127), 127) for v in range(128)] == list(range(128))
    # 0 is note-off in both directions.
    assert velocity_to_bin(0, 4) == 0 and bin_to_velocity(0, 4) == 0
    # 4 bins: ceil(4 v / 127) and int(127 b / 4).
    assert [velocity_to_bin(v, 4) for v in (1, 31, 32, 64, 127)] == [1, 1, 2, 3, 4]
    assert [bin_to_velocity(b, 4) for b in (1, 2, 3, 4)] == [31, 63, 95, 127]


def test_program_granularities():
    codec = MT3_VOCABULARY.codec
    first_program, _ = codec.event_type_range("program")
    pitch = codec.encode_event(Event("pitch", 60))
    tokens = np.array([5, first_program + 33, pitch, first_program + 7, first_program + 127])

    flat = PROGRAM_GRANULARITIES["flat"]
    assert flat.tokens_map_fn(tokens, codec).tolist() == [5, pitch]
    assert flat.program_map_fn(33) == 0

    midi_class = PROGRAM_GRANULARITIES["midi_class"]
    assert midi_class.tokens_map_fn(tokens, codec).tolist() == [
        5, first_program + 32, pitch, first_program + 0, first_program + 120
    ]
    assert [midi_class.program_map_fn(p) for p in (0, 7, 33, 127)] == [0, 0, 32, 120]

    full = PROGRAM_GRANULARITIES["full"]
    assert full.tokens_map_fn(tokens, codec).tolist() == tokens.tolist()
    assert full.program_map_fn(33) == 33


def test_named_configs():
    assert (MT3_VOCABULARY.num_velocity_bins, MT3_VOCABULARY.program_granularity) == (1, "full")
    assert (MT3_VOCABULARY.use_ties, MT3_VOCABULARY.input_frames) == (True, 256)
    assert (ISMIR2021_VOCABULARY.num_velocity_bins, ISMIR2021_VOCABULARY.program_granularity) == (
        127,
        "flat",
    )
    assert (ISMIR2021_VOCABULARY.use_ties, ISMIR2021_VOCABULARY.input_frames) == (False, 512)
    assert get_vocabulary("mt3") is MT3_VOCABULARY
    assert get_vocabulary("ismir2021") is ISMIR2021_VOCABULARY
    custom = VocabularyConfig(num_velocity_bins=4)
    assert get_vocabulary(custom) is custom
    assert custom.codec is custom.codec  # built once
    assert vocab.num_velocity_bins_from_codec(custom.codec) == 4


@pytest.mark.parametrize("name", ["MT3", "unknown", 3, None])
def test_unknown_vocabulary_names_raise(name):
    with pytest.raises(KerasMT3Error, match="unknown vocabulary"):
        get_vocabulary(name)


def test_serialized_vocabularies_come_back_equal():
    assert serialize_vocabulary(MT3_VOCABULARY) == "mt3"
    # A config that merely borrows a built-in name is not taken for the built-in one.
    for custom in (VocabularyConfig(use_ties=False, name="mt3_without_ties"),
                   VocabularyConfig(num_velocity_bins=4, name="mt3")):
        serialized = serialize_vocabulary(custom)
        assert isinstance(serialized, dict)
        assert get_vocabulary(json.loads(json.dumps(serialized))) == custom
    with pytest.raises(KerasMT3Error, match="not a vocabulary config"):
        get_vocabulary({"use_tie": False})


@pytest.mark.parametrize(
    "kwargs", [{"program_granularity": "class"}, {"num_velocity_bins": 0}, {"input_frames": 0}]
)
def test_invalid_configs_raise(kwargs):
    with pytest.raises(KerasMT3Error):
        VocabularyConfig(**kwargs)
