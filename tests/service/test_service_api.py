"""The HTTP service against a real uvicorn server on loopback, with a fast stand-in model.

What the model computes is checked in test_service_model.py with the real MT3; here the
subject is the HTTP layer: formats, jobs, limits, tokens, errors, clean-up.
"""

import csv
import io
import os
import re
import threading
import time

import httpx
import pytest
from service_support import ToneTranscriber, expected_tone_notes, running_server, tone_wav

from keras_mt3 import note_export
from keras_mt3.midi_io import load_midi
from keras_mt3.service import ServiceSettings, create_app, exposure_warning, is_loopback

pytestmark = pytest.mark.backend_independent

API = "/v1/transcriptions"
LIMITS = dict(max_upload_bytes=200_000, max_audio_seconds=5.0, async_over_seconds=2.0)


@pytest.fixture(scope="module")
def server():
    app = create_app(ToneTranscriber(), ServiceSettings(**LIMITS))
    with running_server(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        yield client, app


@pytest.fixture
def client(server):
    return server[0]


def serve(transcriber, **settings):
    """A server of its own, for tests that need other settings or a slower model."""
    return running_server(create_app(transcriber, ServiceSettings(**{**LIMITS, **settings})))


def onsets_and_pitches(notes):
    return [(note["onset"], note["pitch"]) for note in notes]


def assert_error(response, status, code, *fragments):
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert (error["status"], error["code"]) == (status, code), error
    for fragment in fragments:
        assert fragment in error["message"], error["message"]


def assert_no_uploads_left(app):
    assert os.listdir(app.state.workdir) == []


def wait_until_done(client, job, timeout=30):
    deadline = time.monotonic() + timeout
    seen = []
    while job["status"] not in ("done", "failed", "cancelled"):
        assert time.monotonic() < deadline, job
        time.sleep(0.02)
        job = client.get(job["status_url"]).json()
        seen.append(job["progress"])
    return job, seen


# ---- answers ----------------------------------------------------------------------------


def test_json_answer_is_the_note_export_schema(client):
    response = client.post(API, content=tone_wav(64, 1.0), headers={"Content-Type": "audio/wav"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    document = response.json()
    assert onsets_and_pitches(document["notes"]) == expected_tone_notes(64, 1.0)
    assert set(document["notes"][0]) == set(note_export.NOTE_FIELDS)
    assert document["num_notes"] == 4
    assert [i["num_notes"] for i in document["instruments"]] == [2, 1, 1]  # programs 0, 1, 2
    assert document["instruments"][1]["instrument"] == "Bright Acoustic Piano"


@pytest.mark.parametrize(
    "query, accept",
    [
        ("?format=mid", None),
        ("?format=midi", "application/json"),
        ("", "audio/midi"),
        ("", "text/html;q=0.9, audio/midi;q=0.8, application/json;q=0.1"),
    ],
)
def test_midi_by_format_parameter_or_accept_header(client, query, accept):
    headers = {"Accept": accept} if accept else {}
    response = client.post(
        API + query, files={"file": ("tone.wav", tone_wav(57, 1.0))}, headers=headers
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "audio/midi"
    assert 'filename="tone.mid"' in response.headers["content-disposition"]
    notes = sorted(load_midi(response.content).notes, key=lambda n: n.start_time)
    assert [(round(n.start_time, 3), n.pitch) for n in notes] == expected_tone_notes(57, 1.0)


def test_csv_answer(client):
    response = client.post(API, content=tone_wav(70, 0.5), headers={"Accept": "text/csv"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [(float(r["onset"]), int(r["pitch"])) for r in rows] == expected_tone_notes(70, 0.5)
    assert rows[0]["is_drum"] == "false"


def test_raw_and_multipart_bodies_give_the_same_notes(client):
    audio = tone_wav(60, 1.0)
    raw = client.post(API, content=audio, headers={"Content-Type": "application/octet-stream"})
    form = client.post(API, files={"audio": ("a.wav", audio, "audio/wav")})
    assert raw.status_code == form.status_code == 200
    assert raw.json() == form.json()


def test_long_audio_becomes_a_job_with_progress():
    with serve(ToneTranscriber(seconds_per_note=0.05)) as url, httpx.Client(base_url=url) as client:
        response = client.post(API, files={"file": ("long.wav", tone_wav(62, 3.0))})
        assert response.status_code == 202  # 3 s > async_over_seconds
        job = response.json()
        assert response.headers["location"] == job["status_url"] == f"{API}/{job['id']}"
        job, seen = wait_until_done(client, job)
        assert job["status"] == "done" and job["num_notes"] == 12
        fractions = [p for p in seen if p is not None]
        assert fractions == sorted(fractions) and fractions[-1] == 1.0
        assert any(0 < p < 1 for p in fractions), seen  # progress was visible while running
        result = client.get(job["result_url"], params={"format": "json"}).json()
        assert onsets_and_pitches(result["notes"]) == expected_tone_notes(62, 3.0)
        midi = client.get(job["result_url"], headers={"Accept": "audio/midi"})
        assert len(load_midi(midi.content).notes) == 12


def test_async_parameter_and_prefer_header_make_short_clips_jobs_too(client):
    for kwargs in ({"params": {"async": "true"}}, {"headers": {"Prefer": "respond-async"}}):
        response = client.post(API, content=tone_wav(60, 0.5), **kwargs)
        assert response.status_code == 202
        job, _ = wait_until_done(client, response.json())
        assert job["status"] == "done"


def test_unfinished_result_is_409_and_delete_cancels():
    model = ToneTranscriber(seconds_per_note=0.2)
    with serve(model) as url, httpx.Client(base_url=url) as client:
        job = client.post(API + "?async=true", content=tone_wav(60, 4.0)).json()
        early = client.get(job["status_url"] + "/result")
        assert_error(early, 409, "not_finished", job["id"])
        assert early.headers["retry-after"] == "1"
        assert client.delete(job["status_url"]).status_code == 204
        assert_error(client.get(job["status_url"]), 404, "unknown_job")
        assert_error(client.delete(job["status_url"]), 404, "unknown_job")
        wait_for_idle(client)
        assert model.finished == 0  # stopped part-way, not run to the end


def wait_for_idle(client, timeout=20):
    deadline = time.monotonic() + timeout
    while True:
        health = client.get("/healthz").json()
        if health["running"] == 0 and health["queued"] == 0:
            return health
        assert time.monotonic() < deadline, health
        time.sleep(0.05)


def test_client_that_hangs_up_cancels_its_transcription():
    model = ToneTranscriber(seconds_per_note=0.2)  # 16 notes: 3.2 s if left to run
    with serve(model, async_over_seconds=10) as url, httpx.Client(base_url=url) as client:
        with pytest.raises(httpx.ReadTimeout):
            client.post(API, content=tone_wav(60, 4.0), timeout=0.6)
        wait_for_idle(client)
        assert model.calls == 1 and model.finished == 0


# ---- bad requests ---------------------------------------------------------------------------


def too_long_body():
    yield b"\0" * 150_000
    yield b"\0" * 150_000


BAD_REQUESTS = {
    "empty body": (dict(content=b""), 400, "empty_upload", "empty"),
    "empty file part": (dict(files={"file": ("a.wav", b"")}), 400, "empty_upload", "empty"),
    "no file part": (dict(data={"name": "x"}, files={}), 415, "unsupported_media_type", "file"),
    "form without file": (
        dict(files={"note": (None, "just text")}),
        400,
        "no_file",
        "curl -F file=@",
    ),
    "json body": (
        dict(content=b"{}", headers={"Content-Type": "application/json"}),
        415,
        "unsupported_media_type",
        "application/json",
    ),
    "corrupt audio": (
        dict(files={"file": ("song.wav", b"RIFF not really a wav " * 20)}),
        422,
        "unreadable_audio",
        "'song.wav'",
    ),
    "over-size upload": (
        dict(content=b"\0" * 250_000),
        413,
        "upload_too_large",
        "200000 bytes",
    ),
    "over-size without Content-Length": (
        dict(content=too_long_body()),
        413,
        "upload_too_large",
        "200000 bytes",
    ),
    "over-long audio": (
        dict(content=tone_wav(60, 6.0, sample_rate=4000)),
        413,
        "audio_too_long",
        "6.0 s long",
        "at most 5 s",
    ),
    "unknown format": (dict(content=b"x", params={"format": "mp4"}), 400, "unknown_format", "mp4"),
    "unacceptable Accept": (
        dict(content=b"x", headers={"Accept": "image/png"}),
        406,
        "not_acceptable",
        "image/png",
    ),
}


@pytest.mark.parametrize("case", BAD_REQUESTS, ids=list(BAD_REQUESTS))
def test_bad_requests_get_a_clear_json_error_and_the_server_keeps_serving(server, case):
    client, app = server
    kwargs, status, code, *fragments = BAD_REQUESTS[case]
    assert_error(client.post(API, **kwargs), status, code, *fragments)
    assert client.get("/healthz").status_code == 200
    good = client.post(API, content=tone_wav(60, 0.5))
    assert onsets_and_pitches(good.json()["notes"]) == expected_tone_notes(60, 0.5)
    assert_no_uploads_left(app)


def test_unknown_job_and_unknown_route(client):
    assert_error(client.get(f"{API}/no-such-job"), 404, "unknown_job", "no-such-job")
    assert_error(client.get(f"{API}/no-such-job/result"), 404, "unknown_job")
    assert_error(client.get("/nowhere"), 404, "not_found")
    assert_error(client.put(API), 405, "method_not_allowed")


def test_bad_query_parameter_is_a_400(client):
    assert_error(
        client.post(API, params={"async": "maybe"}, content=b"x"), 400, "bad_request", "async"
    )


def test_queue_full_is_429_with_retry_after_and_recovers():
    model = ToneTranscriber(seconds_per_note=0.1)
    with serve(model, queue_size=0) as url, httpx.Client(base_url=url) as client:
        first = client.post(API + "?async=true", content=tone_wav(60, 1.0))
        assert first.status_code == 202
        refused = client.post(API, content=tone_wav(61, 1.0))
        assert_error(refused, 429, "queue_full", "queue is full")
        assert int(refused.headers["retry-after"]) >= 1
        wait_until_done(client, first.json())
        assert client.post(API, content=tone_wav(61, 1.0)).status_code == 200


def test_a_transcription_over_the_time_limit_is_stopped_with_504():
    model = ToneTranscriber(seconds_per_note=0.1)
    with serve(model, timeout_seconds=0.25) as url, httpx.Client(base_url=url) as client:
        response = client.post(API, content=tone_wav(60, 2.0))
        assert_error(response, 504, "timeout", "0.25 s")
        assert model.finished == 0
        assert client.get("/healthz").json()["running"] == 0


def test_failing_model_is_a_500_and_the_server_keeps_serving():
    class Broken(ToneTranscriber):
        def _transcribe(self, audio, report):
            if self.calls == 1:
                raise RuntimeError("boom inside the model")
            return super()._transcribe(audio, report)

    with serve(Broken()) as url, httpx.Client(base_url=url) as client:
        response = client.post(API, content=tone_wav(60, 0.5))
        assert_error(response, 500, "internal_error", "inside the server")
        assert "boom" not in response.text  # internals stay in the server's log
        assert client.post(API, content=tone_wav(60, 0.5)).status_code == 200


def test_results_are_kept_for_a_bounded_time_and_number():
    with (
        serve(ToneTranscriber(), max_kept_results=2, result_ttl_seconds=1.0) as url,
        httpx.Client(base_url=url) as client,
    ):
        jobs = []
        for pitch in (60, 61, 62):
            jobs.append(client.post(API + "?async=true", content=tone_wav(pitch, 0.5)).json())
            wait_until_done(client, jobs[-1])
        assert_error(client.get(jobs[0]["status_url"]), 404, "unknown_job")  # oldest dropped
        assert client.get(jobs[2]["status_url"]).json()["status"] == "done"
        assert client.get("/healthz").json()["kept_results"] == 2
        time.sleep(1.2)
        assert_error(client.get(jobs[2]["status_url"]), 404, "unknown_job")  # expired
        assert client.get("/healthz").json()["kept_results"] == 0


# ---- tokens ---------------------------------------------------------------------------------


def test_token_is_required_on_the_api_when_set():
    with serve(ToneTranscriber(), token="s3cret") as url, httpx.Client(base_url=url) as client:
        missing = client.post(API, content=tone_wav(60, 0.5))
        assert_error(missing, 401, "missing_token", "Authorization: Bearer")
        assert missing.headers["www-authenticate"] == "Bearer"
        wrong = client.post(
            API, content=tone_wav(60, 0.5), headers={"Authorization": "Bearer nope"}
        )
        assert_error(wrong, 401, "invalid_token")
        assert_error(
            client.get(f"{API}/x", headers={"Authorization": "Basic s3cret"}), 401, "missing_token"
        )
        right = client.post(
            API, content=tone_wav(60, 0.5), headers={"Authorization": "Bearer s3cret"}
        )
        assert right.status_code == 200
        # The page and health checks stay open: they hold no one's data.
        assert client.get("/healthz").status_code == 200
        assert client.get("/").status_code == 200


def test_exposure_warning_only_for_other_hosts_without_a_token():
    for host in ("127.0.0.1", "localhost", "::1", "[::1]", "127.0.0.2"):
        assert is_loopback(host) and exposure_warning(host, None) is None
    for host in ("0.0.0.0", "::", "192.168.1.5", "example.org"):
        assert not is_loopback(host)
        assert "without a token" in exposure_warning(host, None)
        assert exposure_warning(host, "t") is None


@pytest.mark.parametrize(
    "settings",
    [dict(max_upload_bytes=0), dict(timeout_seconds=0), dict(queue_size=-1), dict(token=" ")],
)
def test_settings_reject_nonsense(settings):
    with pytest.raises(ValueError):
        ServiceSettings(**settings)


# ---- the page and the schema ----------------------------------------------------------------


def test_page_loads_nothing_from_elsewhere(client):
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert 'id="pianoroll"' in page.text
    references = re.findall(r'(?:src|href)="([^"]*)"', page.text)
    assert references and all(ref.startswith("/static/") for ref in references), references
    for ref in references:
        asset = client.get(ref)
        assert asset.status_code == 200
        assert not re.search(r"https?://|//[a-z0-9.-]+\.[a-z]{2,}/", asset.text), ref


def test_openapi_schema_is_served_and_cdn_docs_are_off(client):
    schema = client.get("/openapi.json").json()
    assert {f"{API}", f"{API}/{{job_id}}", f"{API}/{{job_id}}/result", "/healthz"} <= set(
        schema["paths"]
    )
    body = schema["paths"][API]["post"]["requestBody"]["content"]
    assert {"multipart/form-data", "audio/*"} <= set(body)
    assert client.get("/docs").status_code == 404
    assert client.get("/redoc").status_code == 404


def test_concurrent_requests_run_one_at_a_time_and_leave_no_uploads():
    model = ToneTranscriber(seconds_per_note=0.02)
    app = create_app(model, ServiceSettings(**LIMITS))
    with running_server(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        answers = []
        threads = [
            threading.Thread(
                target=lambda p=pitch: answers.append(
                    (p, client.post(API, content=tone_wav(p, 1.0)))
                )
            )
            for pitch in range(60, 66)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for pitch, answer in answers:
            assert onsets_and_pitches(answer.json()["notes"]) == expected_tone_notes(pitch, 1.0)
        assert model.calls == 6 and model.max_concurrent == 1
        assert_no_uploads_left(app)
