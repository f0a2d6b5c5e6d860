"""End to end: audio -> MT3Transcriber.transcribe -> notes, against the original MT3's notes."""

import json

import keras
import numpy as np
import pytest
import soundfile
from helpers import note_sequence, note_tuples, reference_notes, tiny_transcriber
from note_seq.protobuf import music_pb2

from keras_mt3.errors import AudioLoadError, KerasMT3Error
from keras_mt3.metrics import transcription_metrics
from keras_mt3.models.mt3_transcriber import MT3Transcriber
from keras_mt3.preprocessing.audio_io import load_audio

CLIPS = ("piano_chorale", "multi_band")


@pytest.fixture(scope="module")
def mt3(checkpoint_dir):
    return MT3Transcriber.from_preset("mt3", checkpoint_dir=checkpoint_dir)


@pytest.mark.checkpoint
@pytest.mark.parametrize("clip", CLIPS)
def test_transcribe_matches_original_mt3(mt3, reference_dir, clip):
    estimate, details = mt3.transcribe(
        reference_dir / f"{clip}.wav", progress=False, return_details=True
    )
    original = note_sequence(reference_notes(reference_dir, clip))
    scores = transcription_metrics(estimate, original)
    # Multi-instrument F1 (onset + offset per program, drums onset-only; see
    # docs/mt3_details.md#metrics).
    assert scores["program_full_f1"] >= 0.99, scores
    assert details["num_segments"] == len(
        json.loads((reference_dir / f"{clip}.json").read_text())["segments"]
    )


@pytest.mark.checkpoint
def test_array_input_equals_path_input_and_stereo_44k_is_handled(mt3, reference_dir, tmp_path):
    mono = load_audio(reference_dir / "piano_chorale.wav")[: 16000 * 3]
    from_array = mt3.transcribe(mono, sample_rate=16000, progress=False)
    assert len(from_array.notes) > 0
    # The same audio as a stereo 44.1 kHz file: resampled + mixed down, nearly the same notes.
    import soxr

    stereo = np.stack([soxr.resample(mono, 16000, 44100)] * 2, axis=1)
    path = tmp_path / "stereo.wav"
    soundfile.write(path, stereo, 44100, subtype="FLOAT")
    from_file = mt3.transcribe(path, progress=False)
    scores = transcription_metrics(from_file, from_array)
    assert scores["program_full_f1"] >= 0.9, scores


@pytest.fixture(scope="module", name="tiny_transcriber")
def tiny_transcriber_fixture():
    return tiny_transcriber()


def test_silent_and_short_audio_give_valid_results(tiny_transcriber):
    silence = tiny_transcriber.transcribe(np.zeros(16000, "float32"), sample_rate=16000)
    assert isinstance(silence, music_pb2.NoteSequence)
    one_sample = tiny_transcriber.transcribe(np.zeros(1, "float32"), sample_rate=16000)
    assert isinstance(one_sample, music_pb2.NoteSequence)


def test_generate_pads_batches_and_keeps_row_count(tiny_transcriber):
    log_mel = np.random.default_rng(0).normal(size=(3, 256, 512)).astype("float32")
    tokens = tiny_transcriber.generate(log_mel)
    assert tokens.shape == (3, 16)
    assert tokens.dtype == np.int32
    # Deterministic and independent of batch position.
    np.testing.assert_array_equal(tiny_transcriber.generate(log_mel[2:]), tokens[2:])


def test_bad_inputs_raise_clear_errors(tiny_transcriber, tmp_path):
    with pytest.raises(AudioLoadError, match="sample_rate"):
        tiny_transcriber.transcribe(np.zeros(100, "float32"))
    with pytest.raises(AudioLoadError, match="not found|does not exist|No such"):
        tiny_transcriber.transcribe(tmp_path / "missing.wav")
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x00\x00garbage" * 10)
    with pytest.raises(AudioLoadError):
        tiny_transcriber.transcribe(corrupt)
    empty = tmp_path / "empty.wav"
    soundfile.write(empty, np.zeros(0, "float32"), 16000)
    with pytest.raises(AudioLoadError):
        tiny_transcriber.transcribe(empty)


def test_sample_rate_errors_name_sample_rate_and_files_refuse_it(tiny_transcriber, tmp_path):
    for bad in (0, -16000, float("nan"), "16000"):
        with pytest.raises(KerasMT3Error, match=r"^sample_rate must be") as info:
            tiny_transcriber.transcribe(np.zeros(100, "float32"), sample_rate=bad)
        assert "source_sample_rate" not in str(info.value)
    path = tmp_path / "clip.wav"
    soundfile.write(path, np.zeros(1600, "float32"), 16000)
    for source in (path, str(path), path.read_bytes()):
        with pytest.raises(AudioLoadError, match="sample_rate= is only for arrays"):
            tiny_transcriber.transcribe(source, sample_rate=16000)
    with pytest.raises(AudioLoadError, match="without `sample_rate`"):
        tiny_transcriber.transcribe(np.float32(0.5))


def test_uint8_and_empty_arrays(tiny_transcriber):
    silence = tiny_transcriber.transcribe(np.zeros(16000, "float32"), sample_rate=16000)
    unsigned = tiny_transcriber.transcribe(np.full(16000, 128, np.uint8), sample_rate=16000)
    assert unsigned == silence  # 128 is uint8 PCM's silence
    with pytest.raises(AudioLoadError, match="is empty audio"):
        tiny_transcriber.transcribe(np.zeros((2, 0), "float32"), sample_rate=16000)


def test_transcribe_to_midi_never_leaves_a_half_written_file(tiny_transcriber, tmp_path):
    target = tmp_path / "out.mid"
    target.write_bytes(b"previous contents")
    with pytest.raises(AudioLoadError):
        tiny_transcriber.transcribe_to_midi(tmp_path / "missing.wav", target)
    assert target.read_bytes() == b"previous contents"
    tiny_transcriber.transcribe_to_midi(np.zeros(16000, "float32"), target, sample_rate=16000)
    assert target.read_bytes().startswith(b"MThd")


@pytest.mark.parametrize(
    "count, expected",
    [(1, 1), (2, 2), (3, 4), (4, 4), (5, 8), (8, 8), (9, 12), (11, 12), (13, 16), (16, 16), (40, 16)],
)
def test_smaller_batches_are_padded_to_few_sizes(count, expected):
    from keras_mt3.models.mt3_transcriber import padded_batch_size

    assert padded_batch_size(count, decode_batch_size=16) == expected
    assert padded_batch_size(count, decode_batch_size=6) == min(expected, 6)


def test_tokens_do_not_depend_on_batch_padding(tiny_transcriber):
    log_mel = np.random.default_rng(1).normal(size=(5, 256, 512)).astype("float32")
    tiny_transcriber.decode_batch_size = 8
    try:
        together = tiny_transcriber.generate(log_mel)  # one batch padded from 5 to 8 rows
        one_by_one = np.concatenate([tiny_transcriber.generate(row[None]) for row in log_mel])
        three_padded_to_four = tiny_transcriber.generate(log_mel[:3])
    finally:
        tiny_transcriber.decode_batch_size = 2
    np.testing.assert_array_equal(together, one_by_one)
    np.testing.assert_array_equal(three_padded_to_four, together[:3])


def test_fused_frontend_decoding_equals_log_mel_then_generate(tiny_transcriber):
    from keras_mt3.preprocessing.segments import audio_to_segments

    audio = np.random.default_rng(2).normal(scale=0.1, size=3 * 32768 + 500).astype("float32")
    segments = audio_to_segments(audio, tiny_transcriber.frames_per_segment)
    log_mel = tiny_transcriber.compute_log_mel(segments.samples, segments.num_frames)
    np.testing.assert_array_equal(
        tiny_transcriber._transcribe_batch(segments.samples, segments.num_frames),
        tiny_transcriber.generate(log_mel),
    )


def test_progress_callback_sees_every_segment_and_can_stop_the_work(tiny_transcriber, tmp_path):
    path = tmp_path / "five_segments.wav"  # 5 segments of 2.048 s
    soundfile.write(path, np.zeros(5 * 32768 - 1000, "float32"), 16000)
    calls = []
    tiny_transcriber.transcribe(path, progress_callback=lambda done, total: calls.append((done, total)))
    assert calls == [(done, 5) for done in range(6)]

    class Stop(Exception):
        pass

    def stop_after_first_segment(done, total):
        if done:
            raise Stop()

    with pytest.raises(Stop):
        tiny_transcriber.transcribe(path, progress_callback=stop_after_first_segment)


def test_transcribe_many_yields_each_file_in_order_as_transcribe_would(tiny_transcriber, tmp_path):
    rng = np.random.default_rng(4)
    paths = []
    for index, seconds in enumerate([5.0, 0.5, 9.0]):
        paths.append(tmp_path / f"clip{index}.wav")
        soundfile.write(paths[-1], rng.normal(scale=0.1, size=int(seconds * 16000)), 16000)
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF not really a wav file")
    sources = [paths[0], corrupt, paths[1], paths[2]]

    results = list(tiny_transcriber.transcribe_many(sources, progress=False, return_errors=True))
    assert [source for source, _ in results] == sources
    assert isinstance(results[1][1], AudioLoadError)
    for source, notes in [results[0], results[2], results[3]]:
        alone = tiny_transcriber.transcribe(source, progress=False)
        assert note_tuples(notes) == note_tuples(alone)
    assert len(results[3][1].notes) > 0  # the comparison above is not of empty results

    with pytest.raises(AudioLoadError):
        list(tiny_transcriber.transcribe_many(sources, progress=False))
    assert list(tiny_transcriber.transcribe_many([], progress=False)) == []


def test_a_custom_vocabulary_survives_get_config_and_keras_saving(tmp_path):
    from keras_mt3.codec.vocabulary import VocabularyConfig

    vocabulary = VocabularyConfig(use_ties=False, num_velocity_bins=4, name="mt3_without_ties")
    model = tiny_transcriber(vocabulary=vocabulary)
    log_mel = np.random.default_rng(3).normal(size=(2, 256, 512)).astype("float32")
    tokens = model.generate(log_mel)

    rebuilt = MT3Transcriber.from_config(model.get_config())
    assert rebuilt.vocabulary == vocabulary and rebuilt.max_decode_length == 16
    path = tmp_path / "custom.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert isinstance(loaded, MT3Transcriber) and loaded.vocabulary == vocabulary
    np.testing.assert_array_equal(loaded.generate(log_mel), tokens)
    # The built-in vocabularies are still stored by name.
    assert MT3Transcriber(model.backbone, vocabulary="mt3").get_config()["vocabulary"] == "mt3"
