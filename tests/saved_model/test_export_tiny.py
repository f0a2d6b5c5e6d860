"""The exported SavedModel of a tiny random model: signatures, parity, bad requests, C++ serving.

The model is exported once per session (`tiny_saved_model`); its outputs are compared with
`MT3Transcriber.transcribe` / `generate` on the same Keras model.
"""

import json
import os
import re
import subprocess
import time

import numpy as np
import pytest
from export_support import (
    TINY_DECODE_LENGTH,
    TINY_MAX_AUDIO_SECONDS,
    float32_notes,
    notes_from_outputs,
    padded_audio,
    synthetic_clip,
    tiny_transcriber,
)
from saved_model_inspection import parse_show_all, saved_model_cli, xla_requirements

from keras_mt3.constants import SAMPLE_RATE
from keras_mt3.preprocessing.segments import audio_to_segments
from keras_mt3.saved_model import signatures as names

ALL_SIGNATURES = (names.SERVING_DEFAULT, names.DECODE_TOKENS, names.DECODE_XLA)
CLIPS = {"five_seconds": synthetic_clip(5.0, seed=1), "short": synthetic_clip(0.3, seed=2),
         "ten_seconds": synthetic_clip(9.7, seed=3)}


@pytest.fixture(scope="module")
def transcriber(tiny_backbone):
    return tiny_transcriber(tiny_backbone)


@pytest.fixture(scope="module")
def expected_notes(transcriber):
    return {
        name: float32_notes(transcriber.transcribe(clip, sample_rate=SAMPLE_RATE, progress=False))
        for name, clip in CLIPS.items()
    }


@pytest.fixture(scope="module")
def segment_log_mel(transcriber):
    segments = audio_to_segments(CLIPS["ten_seconds"], 256)
    return transcriber.compute_log_mel(segments.samples, segments.num_frames)


@pytest.fixture(scope="module")
def loaded(tiny_saved_model):
    import tensorflow as tf

    return tf.saved_model.load(str(tiny_saved_model))


# ---- structure ------------------------------------------------------------------------------


def test_saved_model_cli_shows_the_documented_signatures(tiny_saved_model):
    result = saved_model_cli("show", "--dir", str(tiny_saved_model), "--all")
    assert result.returncode == 0, result.stderr[-2000:]
    shown = parse_show_all(result.stdout)
    note_outputs = {
        names.ONSET_TIMES: ("DT_FLOAT", "(-1, -1)"),
        names.OFFSET_TIMES: ("DT_FLOAT", "(-1, -1)"),
        names.PITCHES: ("DT_INT32", "(-1, -1)"),
        names.VELOCITIES: ("DT_INT32", "(-1, -1)"),
        names.PROGRAMS: ("DT_INT32", "(-1, -1)"),
        names.IS_DRUM: ("DT_BOOL", "(-1, -1)"),
        names.NUM_NOTES: ("DT_INT32", "(-1)"),
        names.NUM_INVALID_EVENTS: ("DT_INT32", "(-1)"),
        names.NUM_DROPPED_EVENTS: ("DT_INT32", "(-1)"),
    }
    audio_inputs = {names.WAVEFORM: ("DT_FLOAT", "(-1, -1)"), names.LENGTHS: ("DT_INT32", "(-1)")}
    token_io = {
        "inputs": {names.ENCODER_INPUTS: ("DT_FLOAT", "(-1, 256, 512)")},
        "outputs": {names.TOKENS: ("DT_INT32", f"(-1, {TINY_DECODE_LENGTH})")},
    }
    assert shown[names.SERVING_DEFAULT] == {"inputs": audio_inputs, "outputs": note_outputs}
    for name in (names.DECODE_TOKENS, names.DECODE_XLA):
        assert shown[name] == token_io


def test_saved_model_cli_runs_the_token_signature(tiny_saved_model, transcriber, segment_log_mel,
                                                  tmp_path):
    np.save(tmp_path / "frames.npy", segment_log_mel[:2])
    result = saved_model_cli(
        "run", "--dir", str(tiny_saved_model), "--tag_set", "serve",
        "--signature_def", names.DECODE_TOKENS,
        "--inputs", f"{names.ENCODER_INPUTS}={tmp_path / 'frames.npy'}",
        "--outdir", str(tmp_path / "out"),
    )
    assert result.returncode == 0, result.stderr[-2000:]
    tokens = np.load(tmp_path / "out" / f"{names.TOKENS}.npy")
    np.testing.assert_array_equal(tokens, transcriber.generate(segment_log_mel[:2]))


def test_only_the_xla_signatures_need_xla(tiny_saved_model):
    requirements = xla_requirements(tiny_saved_model)
    assert set(requirements) == set(ALL_SIGNATURES)
    for name in (names.SERVING_DEFAULT, names.DECODE_TOKENS):
        assert requirements[name] == [], f"{name} must run without XLA"
    assert any("jit-compiled" in reason for reason in requirements[names.DECODE_XLA])


def test_manifest_describes_the_export(tiny_saved_model):
    manifest = json.loads((tiny_saved_model / "assets.extra" / names.MANIFEST_FILE).read_text())
    assert manifest["vocabulary"]["name"] == "mt3_without_ties"
    assert manifest["vocabulary"]["use_ties"] is False
    assert manifest["max_audio_seconds"] == TINY_MAX_AUDIO_SECONDS
    assert manifest["max_decode_length"] == TINY_DECODE_LENGTH
    assert manifest["decode_batch_size"] == 4  # the transcriber's batch size
    assert manifest["request_batch_size"] is None
    assert {name: entry["needs_xla"] for name, entry in manifest["signatures"].items()} == (
        names.NEEDS_XLA
    )


# ---- results of the loaded SavedModel ------------------------------------------------------
# (test_export_checkpoint_parity.py checks the official model in a fresh interpreter without
# keras_mt3; here the tiny model is loaded next to the Keras model it came from.)


def call_signature(loaded, signature, inputs):
    import tensorflow as tf

    outputs = loaded.signatures[signature](
        **{name: tf.constant(value) for name, value in inputs.items()}
    )
    return {name: value.numpy() for name, value in outputs.items()}


def test_signatures_match_the_model(loaded, transcriber, expected_notes, segment_log_mel):
    clip_names = list(CLIPS)
    waveform, lengths = padded_audio([CLIPS[name] for name in clip_names])
    batch = call_signature(
        loaded, names.SERVING_DEFAULT, {names.WAVEFORM: waveform, names.LENGTHS: lengths}
    )
    for row, name in enumerate(clip_names):
        assert notes_from_outputs(batch, row) == expected_notes[name], name
    assert sum(len(notes) for notes in expected_notes.values()) > 5, "the test clips need notes"
    single, single_lengths = padded_audio([CLIPS["five_seconds"]])
    alone = call_signature(
        loaded, names.SERVING_DEFAULT, {names.WAVEFORM: single, names.LENGTHS: single_lengths}
    )
    assert notes_from_outputs(alone, 0) == expected_notes["five_seconds"]
    expected_tokens = transcriber.generate(segment_log_mel)
    for signature in (names.DECODE_TOKENS, names.DECODE_XLA):
        tokens = call_signature(loaded, signature, {names.ENCODER_INPUTS: segment_log_mel})
        np.testing.assert_array_equal(tokens[names.TOKENS], expected_tokens)


# ---- bad requests ---------------------------------------------------------------------------


def transcribe(loaded, waveform, lengths):
    import tensorflow as tf

    return loaded.signatures[names.SERVING_DEFAULT](
        waveform=tf.constant(waveform), lengths=tf.constant(lengths)
    )


@pytest.mark.parametrize(
    "waveform, lengths, message",
    [
        (np.zeros((2, 100), "float32"), np.array([100], "int32"), "needs one entry per row"),
        (np.zeros((1, 100), "float32"), np.array([-5], "int32"), "must be >= 0"),
        (np.zeros((1, 100), "float32"), np.array([101], "int32"), "exceeds the samples"),
        (
            np.zeros((1, int(TINY_MAX_AUDIO_SECONDS * SAMPLE_RATE) + 1), "float32"),
            np.array([int(TINY_MAX_AUDIO_SECONDS * SAMPLE_RATE) + 1], "int32"),
            "longer than the exported limit of 12 s",
        ),
        (np.array([[0.0, np.nan, 0.0]], "float32"), np.array([3], "int32"), "NaN or infinite"),
        (np.array([[0.0, np.inf, 0.0]], "float32"), np.array([3], "int32"), "NaN or infinite"),
    ],
)
def test_bad_audio_requests_fail_with_a_readable_message(loaded, waveform, lengths, message):
    import tensorflow as tf

    with pytest.raises(tf.errors.InvalidArgumentError, match=re.escape(message)):
        transcribe(loaded, waveform, lengths)


@pytest.mark.parametrize(
    "inputs",
    [
        {names.WAVEFORM: np.zeros((1, 100), "float64"), names.LENGTHS: np.array([100], "int32")},
        {names.WAVEFORM: np.zeros((1, 100), "float32"), names.LENGTHS: np.array([100], "int64")},
        {names.WAVEFORM: np.zeros(100, "float32"), names.LENGTHS: np.array([100], "int32")},
        {names.WAVEFORM: np.zeros((1, 1, 100), "float32"), names.LENGTHS: np.array([100], "int32")},
    ],
    ids=["float64 waveform", "int64 lengths", "rank-1 waveform", "rank-3 waveform"],
)
def test_wrong_dtypes_and_ranks_are_rejected_before_running(loaded, inputs):
    import tensorflow as tf

    with pytest.raises((TypeError, ValueError, tf.errors.InvalidArgumentError)):
        loaded.signatures[names.SERVING_DEFAULT](
            **{key: tf.constant(value) for key, value in inputs.items()}
        )


class SessionFeeder:
    """Runs signatures as TF Serving and the C++ API do: the tensors go straight into
    Session::Run, without the Python-side check of their shapes against the signature."""

    def __init__(self, model_dir):
        import tensorflow as tf

        graph = tf.Graph()
        with graph.as_default():
            self.session = tf.compat.v1.Session(graph=graph)
            self.meta_graph = tf.compat.v1.saved_model.loader.load(
                self.session, ["serve"], str(model_dir)
            )
        self._callables = {}

    def prepare(self, signature_name):
        """The signature's callable (made once: making one optimizes the whole graph)."""
        from tensorflow.core.protobuf import config_pb2

        if signature_name not in self._callables:
            signature = self.meta_graph.signature_def[signature_name]
            inputs = sorted(signature.inputs)
            options = config_pb2.CallableOptions(
                feed=[signature.inputs[name].name for name in inputs],
                fetch=[output.name for output in signature.outputs.values()],
            )
            run = self.session._make_callable_from_options(options)
            self._callables[signature_name] = (inputs, list(signature.outputs), run)
        return self._callables[signature_name]

    def __call__(self, signature_name, inputs):
        input_names, output_names, run = self.prepare(signature_name)
        return dict(zip(output_names, run(*(inputs[name] for name in input_names))))


@pytest.fixture(scope="module")
def session_feeder(tiny_saved_model):
    feeder = SessionFeeder(tiny_saved_model)
    yield feeder
    feeder.session.close()


@pytest.mark.parametrize(
    "waveform_shape, lengths_shape, message",
    [
        ((64000,), (1,), "`waveform` must have shape [batch, samples] (rank 2); got shape] [64"),
        # Rank 3 once broadcast the NaN check to [1, 64000, 64000] (minutes and gigabytes).
        ((1, 64000, 1), (1,), "`waveform` must have shape [batch, samples] (rank 2)"),
        ((1, 1, 64000), (1,), "`waveform` must have shape [batch, samples] (rank 2)"),
        ((1, 64000), (1, 1), "`lengths` must have shape [batch] (rank 1); got shape] [1 1]"),
        ((1, 64000), (), "`lengths` must have shape [batch] (rank 1)"),
    ],
    ids=["rank-1 waveform", "waveform [batch, samples, 1]", "waveform [batch, 1, samples]",
         "rank-2 lengths", "scalar lengths"],
)
def test_fed_audio_of_the_wrong_rank_fails_fast_with_a_readable_message(
    session_feeder, waveform_shape, lengths_shape, message
):
    import tensorflow as tf

    inputs = {
        names.WAVEFORM: np.zeros(waveform_shape, "float32"),
        names.LENGTHS: np.full(lengths_shape, 64000, "int32"),
    }
    session_feeder.prepare(names.SERVING_DEFAULT)
    started = time.perf_counter()
    with pytest.raises(tf.errors.InvalidArgumentError, match=re.escape(message)):
        session_feeder(names.SERVING_DEFAULT, inputs)
    assert time.perf_counter() - started < 1.0


def test_fed_requests_of_the_right_rank_still_run_and_are_checked(session_feeder, expected_notes):
    import tensorflow as tf

    waveform, lengths = padded_audio([CLIPS["short"]])
    outputs = session_feeder(
        names.SERVING_DEFAULT, {names.WAVEFORM: waveform, names.LENGTHS: lengths}
    )
    assert notes_from_outputs(outputs, 0) == expected_notes["short"]
    two_rows = np.zeros((2, 100), "float32")
    with pytest.raises(tf.errors.InvalidArgumentError, match="needs one entry per row"):
        session_feeder(
            names.SERVING_DEFAULT,
            {names.WAVEFORM: two_rows, names.LENGTHS: np.array([100], "int32")},
        )
    for signature in (names.DECODE_TOKENS, names.DECODE_XLA):
        with pytest.raises(
            tf.errors.InvalidArgumentError,
            match=re.escape("`encoder_inputs` must have shape [batch, 256, 512] (rank 3); got "
                            "shape] [1 100 512]"),
        ):
            session_feeder(signature, {names.ENCODER_INPUTS: np.zeros((1, 100, 512), "float32")})


def test_bad_frames_are_rejected(loaded):
    import tensorflow as tf

    frames = np.zeros((1, 256, 512), "float32")
    frames[0, 3, 4] = np.nan
    for signature in (names.DECODE_TOKENS, names.DECODE_XLA):
        with pytest.raises(tf.errors.InvalidArgumentError, match="NaN or infinite"):
            loaded.signatures[signature](encoder_inputs=tf.constant(frames))
        with pytest.raises((TypeError, ValueError, tf.errors.InvalidArgumentError)):
            loaded.signatures[signature](encoder_inputs=tf.zeros((1, 100, 512)))


def test_empty_audio_gives_empty_results_and_the_model_keeps_working(loaded, expected_notes):
    empty = transcribe(loaded, np.zeros((2, 0), "float32"), np.zeros(2, "int32"))
    assert empty[names.NUM_NOTES].numpy().tolist() == [0, 0]
    assert empty[names.ONSET_TIMES].shape == (2, 0)
    no_clips = transcribe(loaded, np.zeros((0, 0), "float32"), np.zeros(0, "int32"))
    assert no_clips[names.NUM_NOTES].shape == (0,)
    assert no_clips[names.PITCHES].shape == (0, 0)
    # One empty clip next to a real one: the real one is unaffected.
    waveform, lengths = padded_audio([CLIPS["five_seconds"], np.zeros(0, "float32")])
    outputs = {key: value.numpy() for key, value in transcribe(loaded, waveform, lengths).items()}
    assert notes_from_outputs(outputs, 0) == expected_notes["five_seconds"]
    assert outputs[names.NUM_NOTES][1] == 0


# ---- export arguments and atomic output -----------------------------------------------------


def test_export_refuses_an_existing_folder_and_bad_arguments(tiny_backbone, tmp_path):
    from keras_mt3.errors import KerasMT3Error
    from keras_mt3.saved_model import export

    existing = tmp_path / "model"
    existing.mkdir()
    with pytest.raises(KerasMT3Error, match="already exists"):
        export(tiny_backbone, existing)
    bad_arguments = [
        {"max_audio_seconds": 0},
        {"max_audio_seconds": float("nan")},
        {"request_batch_size": 0},
        {"decode_batch_size": 2.5},
        {"max_decode_length": TINY_DECODE_LENGTH + 1},
        {"vocabulary": "no-such-vocabulary"},
    ]
    for arguments in bad_arguments:
        with pytest.raises(KerasMT3Error):
            export(tiny_backbone, tmp_path / "new", **arguments)
    with pytest.raises(KerasMT3Error, match="MT3Transcriber or MT3Backbone"):
        export(object(), tmp_path / "new")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["model"]


# ---- served from C++, as TF Serving does ----------------------------------------------------


def run_harness(harness, model_dir, requests, disable_xla):
    """Runs `[(signature, input file)]` in one harness process; returns
    `(exit code, {signature: its output lines})`."""
    command = [str(harness)] + (["--disable-xla"] if disable_xla else []) + [str(model_dir)]
    for signature, input_path in requests:
        command += [signature, str(input_path)]
    environment = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    result = subprocess.run(command, capture_output=True, text=True, env=environment, timeout=600)
    blocks, lines = {}, None
    for line in result.stdout.splitlines():
        if line.startswith("signature "):
            lines = blocks.setdefault(line.split()[1], [])
        elif lines is not None:
            lines.append(line)
    return result.returncode, blocks, result


def parse_harness_notes(lines):
    notes = []
    for line in lines:
        if line.startswith("note "):
            onset, offset, pitch, velocity, program, drum = line.split()[1:]
            notes.append((float(np.float32(onset)), float(np.float32(offset)), int(pitch),
                          int(velocity), int(program), drum == "1"))
    return notes


def parse_harness_tokens(lines):
    return np.array(
        [[int(value) for value in line.split()[1:]] for line in lines if line.startswith("tokens")]
    )


@pytest.mark.parametrize("disable_xla", [False, True], ids=["xla allowed", "xla disabled"])
def test_cpp_serving_runs_each_signature(serving_harness, tiny_saved_model, transcriber,
                                         expected_notes, segment_log_mel, tmp_path, disable_xla):
    audio_path, frames_path = tmp_path / "audio.f32", tmp_path / "frames.f32"
    CLIPS["five_seconds"].astype("<f4").tofile(audio_path)
    segment_log_mel[:3].astype("<f4").tofile(frames_path)
    expected_tokens = transcriber.generate(segment_log_mel[:3])
    requests = [
        (signature, audio_path if signature == names.SERVING_DEFAULT else frames_path)
        for signature in ALL_SIGNATURES
    ]
    code, blocks, result = run_harness(serving_harness, tiny_saved_model, requests, disable_xla)
    context = (result.stdout[-3000:], result.stderr[-3000:])
    assert set(blocks) == set(ALL_SIGNATURES), context
    for signature, lines in blocks.items():
        if disable_xla and names.NEEDS_XLA[signature]:
            assert any("XLA compilation disabled" in line for line in lines), context
            continue
        assert lines[-1] == "ok", (signature, context)
        if signature == names.SERVING_DEFAULT:
            assert parse_harness_notes(lines) == expected_notes["five_seconds"]
        else:
            np.testing.assert_array_equal(parse_harness_tokens(lines), expected_tokens)
    assert code == (3 if disable_xla else 0), context
