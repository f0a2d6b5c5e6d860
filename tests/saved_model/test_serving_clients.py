"""serving/ clients: audio in, MIDI out, against a stand-in for TF Serving's REST API."""

import http.server
import importlib
import json
import subprocess
import sys
import threading

import numpy as np
import pytest
import soundfile
from export_support import REPO_ROOT, notes_from_outputs, synthetic_clip

SERVING_DIR = REPO_ROOT / "serving"


@pytest.fixture(scope="module")
def clients():
    sys.path.insert(0, str(SERVING_DIR))
    try:
        yield {
            name: importlib.import_module(name)
            for name in ("mt3_client_common", "rest_client", "grpc_client")
        }
    finally:
        sys.path.remove(str(SERVING_DIR))


@pytest.mark.backend_independent
def test_clients_send_audio_at_the_models_sample_rate(clients):
    # The clients need no keras-mt3 install, so they keep their own copy of the rate.
    from keras_mt3.constants import SAMPLE_RATE

    assert clients["mt3_client_common"].SAMPLE_RATE == SAMPLE_RATE


@pytest.mark.backend_independent
def test_audio_is_mixed_to_mono_and_resampled_to_16k(clients, tmp_path):
    rate = 44100
    t = np.arange(rate * 2) / rate
    stereo = np.stack([np.sin(2 * np.pi * 440 * t), np.zeros_like(t)], axis=1) * 0.5
    soundfile.write(tmp_path / "tone.wav", stereo, rate)
    samples = clients["mt3_client_common"].load_audio(tmp_path / "tone.wav")
    assert samples.dtype == np.float32 and samples.ndim == 1
    assert abs(len(samples) - 32000) <= 1
    spectrum = np.abs(np.fft.rfft(samples))
    assert abs(np.argmax(spectrum) * 16000 / len(samples) - 440) < 2
    assert 0.2 < np.max(np.abs(samples)) < 0.3  # the silent channel halves the level


@pytest.mark.backend_independent
def test_grpc_client_explains_a_missing_dependency(tmp_path):
    if importlib.util.find_spec("tensorflow_serving") is not None:
        pytest.skip("tensorflow-serving-api is installed, so nothing is missing")
    soundfile.write(tmp_path / "clip.wav", synthetic_clip(0.5), 16000)
    result = subprocess.run(
        [sys.executable, str(SERVING_DIR / "grpc_client.py"), str(tmp_path / "clip.wav")],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 1
    assert "pip install tensorflow-serving-api" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.backend_independent
def test_note_tensors_become_one_midi_track_per_instrument(clients, tmp_path):
    import pretty_midi

    common = clients["mt3_client_common"]
    outputs = {
        "num_notes": np.array([3, 0]),
        "onset_times": np.array([[0.5, 0.25, 1.0], [0, 0, 0]], "float32"),
        "offset_times": np.array([[1.5, 0.26, 1.01], [0, 0, 0]], "float32"),
        "pitches": np.array([[60, 36, 40], [0, 0, 0]]),
        "velocities": np.array([[127, 100, 127], [0, 0, 0]]),
        "programs": np.array([[33, 0, 0], [0, 0, 0]]),
        "is_drum": np.array([[False, True, False], [False] * 3]),
    }
    assert common.notes_from_outputs(outputs, row=1) == []
    common.write_midi(common.notes_from_outputs(outputs), tmp_path / "notes.mid")
    midi = pretty_midi.PrettyMIDI(str(tmp_path / "notes.mid"))
    tracks = {(track.program, track.is_drum): track.notes for track in midi.instruments}
    assert sorted(tracks) == [(0, False), (0, True), (33, False)]
    (bass,), (drum,), (piano,) = tracks[(33, False)], tracks[(0, True)], tracks[(0, False)]
    assert (bass.pitch, bass.velocity) == (60, 127)
    assert (bass.start, bass.end) == pytest.approx((0.5, 1.5), abs=1e-3)
    assert (drum.pitch, drum.start) == (36, pytest.approx(0.25, abs=1e-3))
    assert (piano.pitch, piano.end) == (40, pytest.approx(1.01, abs=1e-3))


class _FakeServing(http.server.BaseHTTPRequestHandler):
    """Answers POST /v1/models/NAME:predict like TF Serving (columnar format)."""

    model = None
    requests = []

    def do_POST(self):
        import tensorflow as tf

        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append((self.path, body["signature_name"]))
        inputs = body["inputs"]
        try:
            outputs = self.model.signatures[body["signature_name"]](
                waveform=tf.constant(inputs["waveform"], tf.float32),
                lengths=tf.constant(inputs["lengths"], tf.int32),
            )
            status, reply = 200, {"outputs": {k: v.numpy().tolist() for k, v in outputs.items()}}
        except tf.errors.InvalidArgumentError as error:
            status, reply = 400, {"error": error.message}
        data = json.dumps(reply).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def fake_server(tiny_saved_model):
    import tensorflow as tf

    _FakeServing.model = tf.saved_model.load(str(tiny_saved_model))
    server = http.server.HTTPServer(("127.0.0.1", 0), _FakeServing)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", _FakeServing.model
    server.shutdown()


def test_rest_client_writes_the_served_notes_as_midi(clients, fake_server, tmp_path, capsys):
    import pretty_midi
    import tensorflow as tf

    url, model = fake_server
    clip = synthetic_clip(5.0, seed=1)
    soundfile.write(tmp_path / "clip.flac", clip, 16000, subtype="PCM_24")
    samples = clients["mt3_client_common"].load_audio(tmp_path / "clip.flac")
    expected = model.signatures["serving_default"](
        waveform=tf.constant(samples[None]), lengths=tf.constant([len(samples)])
    )
    expected = notes_from_outputs({k: v.numpy() for k, v in expected.items()}, 0)
    assert expected, "the tiny model should find notes in the test clip"

    code = clients["rest_client"].main(
        [str(tmp_path / "clip.flac"), "-o", str(tmp_path / "out" / "clip.mid"), "--server", url]
    )
    assert code == 0
    assert f"{len(expected)} notes" in capsys.readouterr().out
    assert _FakeServing.requests[-1] == ("/v1/models/mt3:predict", "serving_default")
    midi = pretty_midi.PrettyMIDI(str(tmp_path / "out" / "clip.mid"))
    # MIDI cannot keep two sounding notes of one pitch apart (the random model repeats onsets),
    # so compare which notes start where, per track.
    written = {
        (round(note.start, 2), note.pitch, track.program, track.is_drum)
        for track in midi.instruments for note in track.notes
    }
    assert written == {(round(s, 2), p, prog, drum) for s, _, p, _, prog, drum in expected}
    assert [path.name for path in (tmp_path / "out").iterdir()] == ["clip.mid"]


def test_rest_client_reports_a_rejected_request(clients, fake_server, tmp_path, capsys):
    url, _ = fake_server
    soundfile.write(tmp_path / "long.wav", np.zeros(16000 * 13, "float32"), 16000)
    code = clients["rest_client"].main([str(tmp_path / "long.wav"), "--server", url])
    assert code == 1
    error = capsys.readouterr().err
    assert "rejected the request (400)" in error and "longer than the exported limit" in error
    assert not (tmp_path / "long.mid").exists()


def test_grpc_client_writes_the_served_notes_as_midi(clients, fake_server, tmp_path, capsys):
    """Against an in-process gRPC PredictionService that runs the SavedModel like TF Serving."""
    pytest.importorskip("tensorflow_serving", reason="needs `pip install tensorflow-serving-api`")
    from concurrent import futures

    import grpc
    import pretty_midi
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    _, model = fake_server
    received = []

    class PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
        def Predict(self, request, context):
            received.append((request.model_spec.name, request.model_spec.signature_name))
            inputs = {name: tf.make_ndarray(proto) for name, proto in request.inputs.items()}
            outputs = model.signatures[request.model_spec.signature_name](
                **{name: tf.constant(value) for name, value in inputs.items()}
            )
            response = predict_pb2.PredictResponse()
            for name, value in outputs.items():
                response.outputs[name].CopyFrom(tf.make_tensor_proto(value.numpy()))
            return response

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(PredictionService(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        clip = synthetic_clip(5.0, seed=1)
        soundfile.write(tmp_path / "clip.wav", clip, 16000, subtype="FLOAT")
        code = clients["grpc_client"].main(
            [str(tmp_path / "clip.wav"), "-o", str(tmp_path / "clip.mid"),
             "--server", f"127.0.0.1:{port}"]
        )
    finally:
        server.stop(None)
    assert code == 0, capsys.readouterr().err
    assert received == [("mt3", "serving_default")]
    expected = model.signatures["serving_default"](
        waveform=tf.constant(clip[None]), lengths=tf.constant([len(clip)])
    )
    expected = notes_from_outputs({k: v.numpy() for k, v in expected.items()}, 0)
    assert expected and f"{len(expected)} notes" in capsys.readouterr().out
    midi = pretty_midi.PrettyMIDI(str(tmp_path / "clip.mid"))
    written = {
        (round(note.start, 2), note.pitch, track.program, track.is_drum)
        for track in midi.instruments for note in track.notes
    }
    assert written == {(round(s, 2), p, prog, drum) for s, _, p, _, prog, drum in expected}
