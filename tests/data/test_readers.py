"""Every dataset reader on a tiny fake copy of its dataset's layout."""

import csv
import json

import pytest

from keras_mt3.codec.detokenize import tokens_to_note_sequence
from keras_mt3.codec.tokenize import segment_tokens
from keras_mt3.data.clip_store import ClipStore
from keras_mt3.data.folder_dataset import folder_pairs
from keras_mt3.data.guitarset import guitarset_pairs
from keras_mt3.data.loading import load_pair
from keras_mt3.data.maestro import maestro_pairs
from keras_mt3.data.slakh import load_slakh_notes, slakh_class_program, slakh_pairs
from keras_mt3.data.urmp import urmp_pairs
from keras_mt3.errors import KerasMT3Error
from keras_mt3.midi_io import save_midi

from data_helpers import write_audio, write_pair
from helpers import note_sequence

pytestmark = pytest.mark.backend_independent


def notes_of(pair):
    sequence = load_pair(pair).note_sequence
    return sorted(
        (n.pitch, round(n.start_time, 3), round(n.end_time, 3), n.program, n.is_drum)
        for n in sequence.notes
    )


def test_folder_pairs_audio_with_midi_by_name_and_split_folders(tmp_path):
    write_pair(tmp_path / "train", "a", [(60, 0.1, 0.5)], seconds=1.0)
    write_pair(tmp_path / "test" / "deep", "b", [(62, 0.2, 0.4)], seconds=1.0)
    write_audio(tmp_path / "lonely.flac", 0.5)  # no MIDI
    save_midi(note_sequence([(64, 0.1, 0.2)]), tmp_path / "orphan.mid")  # no audio
    pairs = {pair.name.split("/", 1)[1]: pair for pair in folder_pairs(tmp_path, dataset="toy")}
    assert sorted(pairs) == ["lonely", "orphan", "test/deep/b", "train/a"]
    assert pairs["train/a"].split == "train" and pairs["test/deep/b"].split == "test"
    assert pairs["lonely"].split is None and pairs["lonely"].dataset == "toy"
    assert not pairs["lonely"].notes.exists() and not pairs["orphan"].audio.exists()
    assert notes_of(pairs["train/a"]) == [(60, 0.1, 0.5, 0, False)]
    with pytest.raises(KerasMT3Error, match="does not exist"):
        folder_pairs(tmp_path / "nowhere")


@pytest.mark.parametrize("metadata_format", ["csv", "json_columns", "json_records"])
def test_maestro_pairs_from_metadata_with_splits(tmp_path, metadata_format):
    rows = [
        {
            "split": split,
            "year": year,
            "midi_filename": f"{year}/{name}.midi",
            "audio_filename": f"{year}/{name}.wav",
        }
        for split, year, name in (("train", 2004, "p1"), ("test", 2006, "p2"))
    ]
    write_pair(tmp_path / "2004", "p1", [(60, 0.1, 0.5)], seconds=1.0)
    (tmp_path / "2004" / "p1.mid").rename(tmp_path / "2004" / "p1.midi")
    if metadata_format == "csv":
        with open(tmp_path / "maestro-v3.0.0.csv", "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    elif metadata_format == "json_columns":
        columns = {key: {str(i): row[key] for i, row in enumerate(rows)} for key in rows[0]}
        (tmp_path / "maestro-v3.0.0.json").write_text(json.dumps(columns))
    else:
        (tmp_path / "maestro-v1.0.0.json").write_text(json.dumps(rows))
    pairs = maestro_pairs(tmp_path)
    assert [(p.name, p.split, p.dataset) for p in pairs] == [
        ("maestro/2004/p1", "train", "maestro"),
        ("maestro/2006/p2", "test", "maestro"),
    ]
    train = maestro_pairs(tmp_path, split="train")
    assert len(train) == 1 and notes_of(train[0]) == [(60, 0.1, 0.5, 0, False)]


def test_maestro_without_metadata_says_what_is_missing(tmp_path):
    with pytest.raises(KerasMT3Error, match="maestro-v"):
        maestro_pairs(tmp_path)
    (tmp_path / "maestro-v3.0.0.csv").write_text("a,b\n1,2\n")
    with pytest.raises(KerasMT3Error, match="lacks"):
        maestro_pairs(tmp_path)


SLAKH_METADATA = """\
UUID: 0123abcd
audio_dir: stems
midi_dir: MIDI
stems:
  S00:
    audio_rendered: true
    inst_class: Guitar
    is_drum: false
    midi_program_name: Distortion Guitar
    midi_saved: true
    program_num: 30
  S01:
    audio_rendered: true
    inst_class: Drums
    is_drum: true
    midi_program_name: Drums
    program_num: 0
  S02:
    audio_rendered: false
    inst_class: Bass
    is_drum: false
    program_num: 34
  S03:
    audio_rendered: true
    inst_class: Bass
    is_drum: false
    program_num: 34   # Electric Bass (pick)
"""


def make_slakh_track(root, split, name, with_all_midi=True):
    track = root / split / name
    (track / "MIDI").mkdir(parents=True)
    (track / "metadata.yaml").write_text(SLAKH_METADATA)
    write_audio(track / "mix.flac", 1.0)
    save_midi(note_sequence([(50, 0.1, 0.6)]), track / "MIDI" / "S00.mid")
    save_midi(note_sequence([(36, 0.2, 0.3, 100, 0, True)]), track / "MIDI" / "S01.mid")
    save_midi(note_sequence([(40, 0.1, 0.9)]), track / "MIDI" / "S02.mid")
    if with_all_midi:
        save_midi(note_sequence([(33, 0.3, 0.8)]), track / "MIDI" / "S03.mid")
    return track


def test_slakh_stems_get_class_programs_drums_and_unrendered_stems_are_left_out(tmp_path):
    make_slakh_track(tmp_path, "train", "Track00001")
    make_slakh_track(tmp_path, "validation", "Track00002")
    make_slakh_track(tmp_path, "omitted", "Track00003")
    pairs = slakh_pairs(tmp_path)
    assert [(p.name, p.split) for p in pairs] == [
        ("slakh/Track00001", "train"),
        ("slakh/Track00002", "validation"),
    ]
    assert pairs[0].audio.name == "mix.flac"
    # Program 30 (distortion guitar) -> class 29, 34 (picked bass) -> 33; S02 is not rendered.
    assert notes_of(pairs[0]) == [
        (33, 0.3, 0.8, 33, False),
        (36, 0.2, 0.3, 0, True),
        (50, 0.1, 0.6, 29, False),
    ]
    original = slakh_pairs(tmp_path, split="train", program_map="original")
    assert {note[3] for note in notes_of(original[0]) if not note[4]} == {30, 34}


def test_slakh_class_programs_match_mt3_table():
    assert [slakh_class_program(p) for p in (0, 3, 5, 25, 27, 31, 35, 45, 62, 65, 75, 90, 127)] == [
        0, 0, 4, 24, 26, 29, 33, 43, 61, 64, 73, 88, 88,
    ]


OVERLAP_METADATA = """\
stems:
  S00: {audio_rendered: true, inst_class: Guitar, is_drum: false, program_num: 30}
  S01: {audio_rendered: true, inst_class: Guitar, is_drum: false, program_num: 29}
  S02: {audio_rendered: true, inst_class: Drums, is_drum: true, program_num: 0}
  S03: {audio_rendered: true, inst_class: Drums, is_drum: true, program_num: 0}
"""


def make_overlapping_slakh_track(root, split):
    """Two distorted-guitar stems (both class program 29) playing pitch 50, the first held by
    its sustain pedal past the second's onset, and two drum stems hitting 36 together."""
    track = root / split / "Track00001"
    (track / "MIDI").mkdir(parents=True)
    (track / "metadata.yaml").write_text(OVERLAP_METADATA)
    write_audio(track / "mix.flac", 1.5)
    held = note_sequence([(50, 0.1, 0.3)])
    held.control_changes.add(time=0.2, control_number=64, control_value=127)
    held.control_changes.add(time=1.0, control_number=64, control_value=0)
    save_midi(held, track / "MIDI" / "S00.mid")
    save_midi(note_sequence([(50, 0.5, 0.6)]), track / "MIDI" / "S01.mid")
    save_midi(note_sequence([(36, 0.2, 0.3, 100, 0, True)]), track / "MIDI" / "S02.mid")
    save_midi(note_sequence([(36, 0.2, 0.25, 100, 0, True)]), track / "MIDI" / "S03.mid")


def test_slakh_training_tracks_trim_overlapping_repeats_after_the_sustain_pedal(tmp_path):
    make_overlapping_slakh_track(tmp_path, "train")
    make_overlapping_slakh_track(tmp_path, "validation")
    train, validation = slakh_pairs(tmp_path)
    assert train.split == "train" and train.trim_overlaps and not validation.trim_overlaps
    # The pedal holds S00's note to 1.0 s; trimming then ends it at S01's onset (trimming
    # before the pedal would have missed that overlap). Of the drum hits struck together, the
    # later stem's is kept, as MT3 keeps the last listed.
    assert notes_of(train) == [
        (36, 0.2, 0.25, 0, True),
        (50, 0.1, 0.5, 29, False),
        (50, 0.5, 0.6, 29, False),
    ]
    # The training targets carry the trimmed notes.
    clip = ClipStore([train], "mt3").get(0)
    decoded = tokens_to_note_sequence(
        [segment_tokens(clip.encoded, 0, clip.num_frames)], [0.0], "mt3"
    )
    assert decoded.num_invalid_events == 0
    assert sorted(
        (n.pitch, round(n.start_time * 100), round(n.end_time * 100), n.is_drum)
        for n in decoded.note_sequence.notes
    ) == [(36, 20, 21, True), (50, 10, 50, False), (50, 50, 60, False)]
    # MT3 evaluates on Slakh's notes as they are.
    assert notes_of(validation) == [
        (36, 0.2, 0.25, 0, True),
        (36, 0.2, 0.3, 0, True),
        (50, 0.1, 1.0, 29, False),
        (50, 0.5, 0.6, 29, False),
    ]


def test_slakh_track_missing_a_rendered_stems_midi_is_reported(tmp_path):
    track = make_slakh_track(tmp_path, "train", "Track00001", with_all_midi=False)
    with pytest.raises(FileNotFoundError, match="S03"):
        load_slakh_notes(track)


def jams(notes_per_string):
    annotations = [{"namespace": "pitch_contour", "data": []}]
    for string, notes in enumerate(notes_per_string):
        annotations.append(
            {
                "namespace": "note_midi",
                "annotation_metadata": {"data_source": str(string)},
                "data": [
                    {"time": t, "duration": d, "value": v, "confidence": None} for t, d, v in notes
                ],
            }
        )
    return json.dumps({"annotations": annotations, "file_metadata": {"duration": 2.0}})


def test_guitarset_merges_strings_rounds_pitches_and_uses_program_24(tmp_path):
    (tmp_path / "annotation").mkdir()
    (tmp_path / "annotation" / "00_BN1-129-Eb_comp.jams").write_text(
        jams([[(0.1, 0.4, 40.2)], [(0.5, 0.3, 45.7), (0.9, 0.0, 50.0)]])
    )
    write_audio(tmp_path / "audio_mono-mic" / "00_BN1-129-Eb_comp_mic.wav", 2.0)
    (pair,) = guitarset_pairs(tmp_path)
    assert pair.name == "guitarset/00_BN1-129-Eb_comp" and pair.audio.is_file()
    assert notes_of(pair) == [(40, 0.1, 0.5, 24, False), (46, 0.5, 0.8, 24, False)]
    (mix,) = guitarset_pairs(tmp_path, audio="mix")
    assert mix.audio.name == "00_BN1-129-Eb_comp_mix.wav"


def test_guitarset_reads_the_older_column_layout_of_jams(tmp_path):
    (tmp_path / "annotation").mkdir()
    document = {
        "annotations": [
            {"namespace": "note_midi", "data": {"time": [0.2], "duration": [0.5], "value": [64.0]}}
        ]
    }
    (tmp_path / "annotation" / "x.jams").write_text(json.dumps(document))
    write_audio(tmp_path / "audio_mono-mic" / "x_mic.wav", 1.0)
    assert notes_of(guitarset_pairs(tmp_path)[0]) == [(64, 0.2, 0.7, 24, False)]


def test_urmp_parts_get_instrument_programs_and_mt3_validation_pieces(tmp_path):
    for folder, parts in (("01_Jupiter_vn_vc", ("vn", "vc")), ("03_Dance_fl_cl", ("fl", "cl"))):
        piece = tmp_path / folder
        write_audio(piece / f"AuMix_{folder}.wav", 2.0)
        number, title = folder.split("_")[:2]
        for k, code in enumerate(parts, start=1):
            (piece / f"Notes_{k}_{code}_{number}_{title}.txt").write_text(
                f"0.100\t{440.0 * k:.3f}\t0.400\n\n0.700\t261.626\t0.300\n"
            )
    (tmp_path / "Supplementary_Files").mkdir()
    pairs = urmp_pairs(tmp_path)
    assert [(p.name, p.split) for p in pairs] == [
        ("urmp/01_Jupiter_vn_vc", "validation"),
        ("urmp/03_Dance_fl_cl", "train"),
    ]
    assert notes_of(pairs[0]) == [
        (60, 0.7, 1.0, 40, False),
        (60, 0.7, 1.0, 42, False),
        (69, 0.1, 0.5, 40, False),
        (81, 0.1, 0.5, 42, False),
    ]
    assert [p.name for p in urmp_pairs(tmp_path, split="train")] == ["urmp/03_Dance_fl_cl"]
