"""The service with the real MT3 model: the notes sent over HTTP (JSON and MIDI) are exactly
`model.transcribe`'s, and the page in a real headless Chromium shows, plays and downloads them.

The service code is the same under every Keras backend (it calls `transcribe`, whose fidelity
per backend is tested in tests/models), so these tests load the model once, under JAX only.
"""

import os
import pathlib
import shutil

import httpx
import keras
import pytest
from service_support import running_server

from keras_mt3 import note_export
from keras_mt3.metrics import transcription_metrics
from keras_mt3.midi_io import load_midi, midi_bytes
from keras_mt3.models.mt3_transcriber import MT3Transcriber
from keras_mt3.service import create_app

pytestmark = [
    pytest.mark.checkpoint,
    pytest.mark.slow,
    pytest.mark.skipif(
        keras.backend.backend() != "jax",
        reason="the service is backend-agnostic; its real-model tests run once, under JAX",
    ),
]

API = "/v1/transcriptions"
CLIPS = ("piano_chorale", "multi_band")
BROWSER_CLIP = "multi_band"  # several instruments, so the colours show
CHROMIUM = os.environ.get("KERAS_MT3_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def model(checkpoint_dir):
    return MT3Transcriber.from_preset("mt3", checkpoint_dir=checkpoint_dir)


@pytest.fixture(scope="module")
def expected(model, reference_dir):
    """`model.transcribe` of each clip, called directly (no HTTP)."""
    return {clip: model.transcribe(reference_dir / f"{clip}.wav", progress=False) for clip in CLIPS}


@pytest.fixture(scope="module")
def server(model):
    with (
        running_server(create_app(model)) as url,
        httpx.Client(base_url=url, timeout=300) as client,
    ):
        yield url, client


def note_tuple(note):
    return (note.start_time, note.end_time, note.pitch, note.velocity, note.program, note.is_drum)


@pytest.mark.parametrize("clip", CLIPS)
def test_json_and_midi_over_http_equal_model_transcribe(server, expected, reference_dir, clip):
    _, client = server
    audio = (reference_dir / f"{clip}.wav").read_bytes()
    as_json = client.post(API, content=audio, headers={"Content-Type": "audio/wav"})
    assert as_json.status_code == 200, as_json.text
    assert as_json.json() == note_export.notes_to_dict(expected[clip])  # every note, every field
    assert sorted(map(note_tuple, note_export.notes_from_json(as_json.text).notes)) == sorted(
        map(note_tuple, expected[clip].notes)
    )

    as_midi = client.post(
        API, files={"file": (f"{clip}.wav", audio)}, headers={"Accept": "audio/midi"}
    )
    assert as_midi.status_code == 200, as_midi.text
    assert as_midi.content == midi_bytes(expected[clip])
    scores = transcription_metrics(load_midi(as_midi.content), expected[clip])
    assert scores["program_full_f1"] == 1.0, scores


def browser_or_skip():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed (pip install playwright)")
    if not (os.path.isfile(CHROMIUM) or shutil.which(CHROMIUM)):
        pytest.skip(
            f"no Chromium at {CHROMIUM} (apt-get install chromium, or set KERAS_MT3_CHROMIUM)"
        )
    return sync_playwright


def artifacts_dir(tmp_path):
    directory = pathlib.Path(os.environ.get("KERAS_MT3_TEST_ARTIFACTS", tmp_path))
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def test_page_in_chromium_shows_plays_and_downloads_the_notes(
    server, expected, reference_dir, tmp_path
):
    sync_playwright = browser_or_skip()
    url, _ = server
    notes = note_export.notes_to_dict(expected[BROWSER_CLIP])
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "profile"),
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_FLAGS,
            accept_downloads=True,
            viewport={"width": 1280, "height": 1100},
        )
        try:
            page = context.new_page()
            requests = []
            page.on("request", lambda request: requests.append(request.url))
            page.goto(url + "/")
            bad = {"name": "broken.wav", "mimeType": "audio/wav", "buffer": b"RIFF broken" * 9}
            page.set_input_files("#file-input", files=[bad])
            page.wait_for_selector("#error-box:not([hidden])")
            assert "could not decode the uploaded file 'broken.wav'" in page.inner_text("#error-box")
            page.set_input_files("#file-input", str(reference_dir / f"{BROWSER_CLIP}.wav"))
            page.wait_for_selector("#result:not([hidden])", timeout=240_000)
            assert page.is_hidden("#error-box")

            assert page.inner_text("#note-count") == str(notes["num_notes"])
            assert page.inner_text("#instrument-count") == str(len(notes["instruments"]))
            assert page.locator("#note-table tbody tr").count() == notes["num_notes"]
            counts = page.locator("#instrument-table tbody tr td:last-child").all_inner_texts()
            assert counts == [str(i["num_notes"]) for i in notes["instruments"]]
            # The piano roll draws each instrument in a colour of its own.
            pixels = page.evaluate(PIXELS_PER_INSTRUMENT_COLOUR)
            assert len(pixels) == len(notes["instruments"]) and min(pixels.values()) > 0, pixels

            page.click("#play")
            page.wait_for_function("Number(document.querySelector('#play').dataset.scheduled) > 0")
            page.click("#play")

            with page.expect_download() as download:
                page.click("#download-midi")
            saved = tmp_path / "download.mid"
            download.value.save_as(saved)
            assert download.value.suggested_filename == f"{BROWSER_CLIP}.mid"
            assert saved.read_bytes() == midi_bytes(expected[BROWSER_CLIP])

            page.screenshot(path=str(artifacts_dir(tmp_path) / "service_page.png"), full_page=False)
            assert all(r.startswith(url) or r.startswith("blob:") for r in requests), requests
        finally:
            context.close()


# Pixels of each instrument's colour on the piano roll (inside the notes' bars, the colour is
# exact; edges blend into the background).
PIXELS_PER_INSTRUMENT_COLOUR = """() => {
  const canvas = document.querySelector('#pianoroll');
  const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
  const counts = {};
  for (const colour of state.colors.values()) {
    const [r, g, b] = [1, 3, 5].map((i) => parseInt(colour.slice(i, i + 2), 16));
    counts[colour] = 0;
    for (let i = 0; i < data.length; i += 4) {
      if (data[i] === r && data[i + 1] === g && data[i + 2] === b) counts[colour] += 1;
    }
  }
  return counts;
}"""
