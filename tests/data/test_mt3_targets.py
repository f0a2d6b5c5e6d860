"""The two places where the targets once differed from the original MT3's, and the options that
keep the other behaviour.

Expected ids come from the original's seqio chain (`tokenize_transcription_example` ->
`extract_target_sequence_with_indices` -> `map_midi_programs` -> `run_length_encode_shifts_fn`,
mt3 vocabulary), run on these exact inputs; the package's earlier output is given beside them.
"""

import numpy as np
import pytest

from helpers import note_sequence
from keras_mt3.codec.tokenize import segment_tokens
from keras_mt3.data.clip_store import ClipStore
from keras_mt3.data.pairs import TranscriptionPair
from keras_mt3.errors import KerasMT3Error

pytestmark = pytest.mark.backend_independent


def targets(notes, num_samples, start_frame, end_frame, **store_options):
    pair = TranscriptionPair(
        "clip", np.zeros(num_samples, np.float32), note_sequence(notes), sample_rate=16000
    )
    clip = ClipStore([pair], "mt3", **store_options).get(0)
    return segment_tokens(clip.encoded, start_frame, end_frame).tolist()


# One note, pitch 60, program 0, 0.5-1.0 s; the window starts at 1.6 s, after the note ended.
LATE_WINDOW = dict(notes=[(60, 0.5, 1.0)], num_samples=48000, start_frame=200, end_frame=256)


def test_a_window_after_the_last_note_gets_mt3s_stale_tie_section():
    # program 0, pitch 60, tie, EOS: the state before the last event's step (note 60 sounding).
    assert targets(**LATE_WINDOW) == [1135, 1064, 1134, 1]


def test_the_sounding_notes_after_the_last_note_on_request():
    assert targets(**LATE_WINDOW, stale_final_ties=False) == [1134, 1]


# Pitch 60 at 0.1-1.0 s and struck again at 0.5-0.7 s while still sounding (not Slakh data).
REPEATED_NOTE = dict(notes=[(60, 0.1, 1.0), (60, 0.5, 0.7)], num_samples=32000, start_frame=0,
                     end_frame=251)


def test_overlapping_repeats_are_kept_outside_slakh_as_mt3_keeps_them():
    # tie, 0.1 s: program 0, velocity 1, on 60; 0.5 s: on 60; 0.7 s: velocity 0, off 60;
    # 1.0 s: off 60; EOS.
    assert targets(**REPEATED_NOTE) == [
        1134, 13, 1135, 1133, 1064, 53, 1064, 73, 1132, 1064, 103, 1064, 1
    ]


def test_trimming_every_dataset_on_request():
    # The first note ends at the repeat's onset (0.5 s): off 60, velocity 1, on 60 there.
    assert targets(**REPEATED_NOTE, trim_overlaps="all") == [
        1134, 13, 1135, 1133, 1064, 53, 1132, 1064, 1133, 1064, 73, 1132, 1064, 1
    ]


def test_an_unknown_trimming_mode_is_refused():
    with pytest.raises(KerasMT3Error, match="trim_overlaps"):
        ClipStore([], "mt3", trim_overlaps="slakh")
