"""SlotDecoder (continuous batching) gives every segment exactly the tokens of greedy decoding
that segment alone, whatever shares the slots with it."""

import json

import keras
import numpy as np
import pytest
from helpers import tiny_mt3_backbone

from keras_mt3.layers.log_mel_spectrogram import LogMelSpectrogram
from keras_mt3.models.continuous_batching import SlotDecoder
from keras_mt3.models.greedy_decoding import make_greedy_decode_fn
from keras_mt3.preprocessing.audio_io import load_audio
from keras_mt3.preprocessing.segments import audio_to_segments

MAX_LENGTH = 64
SEGMENT_SAMPLES = 256 * 128


@pytest.fixture(scope="module")
def eos_prone_backbone():
    """A tiny backbone with the same weights under every backend (drawn with NumPy, not the
    backend's RNG), its EOS logit scaled so that segments stop after very different numbers of
    tokens."""
    backbone = tiny_mt3_backbone(max_decoder_length=MAX_LENGTH)
    rng = np.random.default_rng(0)
    for variable in backbone.weights:
        scale = 1 / np.sqrt(variable.shape[0])
        variable.assign(rng.normal(0, scale, size=variable.shape).astype("float32"))
    kernel = keras.ops.convert_to_numpy(backbone.logits_dense.kernel).copy()
    kernel[:, 1] *= 4.2
    backbone.logits_dense.kernel.assign(kernel)
    return backbone


def random_segments(count, seed=0):
    rng = np.random.default_rng(seed)
    loudness = rng.uniform(0.001, 1, size=(count, 1)).astype("float32")
    samples = rng.normal(size=(count, SEGMENT_SAMPLES)).astype("float32") * loudness
    num_frames = rng.integers(1, 257, size=count).astype("int32")
    return samples, num_frames


def decode_alone(backbone, frontend, samples, num_frames):
    decode = make_greedy_decode_fn(backbone, MAX_LENGTH, frontend=frontend)
    rows = [decode(samples[i : i + 1], num_frames[i : i + 1]) for i in range(len(samples))]
    return np.concatenate([keras.ops.convert_to_numpy(row) for row in rows])


def token_count(row):
    """Tokens up to and including EOS (all of them when there is none)."""
    ends = np.flatnonzero(row == 1)
    return int(ends[0]) + 1 if len(ends) else len(row)


def test_slots_give_each_segment_its_tokens_alone(eos_prone_backbone):
    frontend = LogMelSpectrogram()
    samples, num_frames = random_segments(16, seed=1)
    expected = decode_alone(eos_prone_backbone, frontend, samples, num_frames)
    lengths = sorted(token_count(row) for row in expected)
    # Segments that stop within each cache length, and some that never emit EOS.
    assert lengths[0] <= 16 and any(32 < n < MAX_LENGTH for n in lengths), lengths
    assert lengths[-1] == MAX_LENGTH, lengths

    # 4 slots for 16 segments: slots are refilled while others are mid-sequence, and the pool's
    # caches grow (8 -> 16 -> 32 -> 64 positions) and shrink again.
    decoder = SlotDecoder(
        eos_prone_backbone, frontend, num_slots=4, max_length=MAX_LENGTH, admit_size=2,
        cache_lengths=(8, 16, 32),
    )
    segments = ((index, samples[index], int(num_frames[index])) for index in range(16))
    decoded = list(decoder.decode(segments))
    assert sorted(key for key, _ in decoded) == list(range(16))
    finish_order = [key for key, _ in decoded]
    assert finish_order != sorted(finish_order)  # short segments overtook long ones
    for key, tokens in decoded:
        np.testing.assert_array_equal(tokens, expected[key], err_msg=f"segment {key}")


def test_an_empty_input_and_a_single_segment(eos_prone_backbone):
    frontend = LogMelSpectrogram()
    decoder = SlotDecoder(eos_prone_backbone, frontend, num_slots=2, max_length=MAX_LENGTH)
    assert list(decoder.decode([])) == []
    samples, num_frames = random_segments(1, seed=3)
    ((key, tokens),) = decoder.decode([("only", samples[0], int(num_frames[0]))])
    assert key == "only"
    expected = decode_alone(eos_prone_backbone, frontend, samples, num_frames)
    np.testing.assert_array_equal(tokens, expected[0])


def test_segments_are_read_only_as_slots_free_up(eos_prone_backbone):
    frontend = LogMelSpectrogram()
    samples, num_frames = random_segments(12, seed=5)
    read = []

    def source():
        for index in range(12):
            read.append(index)
            yield index, samples[index], int(num_frames[index])

    decoder = SlotDecoder(eos_prone_backbone, frontend, num_slots=2, max_length=MAX_LENGTH)
    first_key, _ = next(decoder.decode(source()))
    # Two slots and two waiting: nothing further has been read when the first segment ends.
    assert len(read) <= 4 and first_key in read


@pytest.fixture(scope="module")
def official_slots(checkpoint_dir):
    from keras_mt3.models.mt3_transcriber import MT3Transcriber

    model = MT3Transcriber.from_preset("mt3", checkpoint_dir=checkpoint_dir)
    # Few slots, so segments run side by side at different positions and the band's longer
    # segments (up to 144 tokens) move the pool to its 256-position caches and back.
    return SlotDecoder(model.backbone, model.frontend, num_slots=4, admit_size=2)


@pytest.mark.checkpoint
@pytest.mark.parametrize("clip", ["piano_chorale", "multi_band"])
def test_official_model_gives_the_original_tokens_of_every_segment(
    official_slots, reference_dir, clip
):
    """Batch greedy decoding reproduces the original MT3's ids on these segments
    (tests/models/test_greedy_decoding.py, test_mt3_transcriber.py); the slots must too."""
    segments = audio_to_segments(load_audio(reference_dir / f"{clip}.wav"))
    expected = json.loads((reference_dir / f"{clip}.json").read_text())["segments"]
    assert len(expected) == len(segments.num_frames)
    items = ((i, row, int(n)) for i, (row, n) in enumerate(zip(segments.samples, segments.num_frames)))
    decoded = dict(official_slots.decode(items))
    for index, segment in enumerate(expected):
        ids = segment["model_vocab_ids"]  # up to and including EOS
        np.testing.assert_array_equal(decoded[index][: len(ids)], ids, err_msg=f"segment {index}")
        assert not decoded[index][len(ids) :].any()
