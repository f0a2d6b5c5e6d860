import contextlib
import functools
import http.server
import json
import shutil
import socket
import threading

import pytest

from keras_mt3 import presets
from keras_mt3.errors import PresetError

pytestmark = pytest.mark.backend_independent


@pytest.fixture(autouse=True)
def isolated_environment(monkeypatch, tmp_path):
    # The test run may point KERAS_MT3_CHECKPOINT_DIR at the real checkpoint; these tests
    # exercise the other routes, so start from a clean environment and a private home.
    for name in (presets.CHECKPOINT_DIR_ENV, presets.CHECKPOINT_URL_ENV, presets.CACHE_ENV):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))


class RecordingHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        self.server.requested.append(self.path)
        super().do_GET()


@contextlib.contextmanager
def serve(directory):
    """A loopback HTTP server for `directory`; yields (base_url, list of requested paths)."""
    handler = functools.partial(RecordingHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.requested = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", server.requested
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def unused_port_url():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


def relative_files(directory):
    return sorted(
        str(path.relative_to(directory)) for path in directory.rglob("*") if path.is_file()
    )


def test_download_resume_and_offline(checkpoint_dir, tmp_path):
    cache = tmp_path / "cache"
    source_files = relative_files(checkpoint_dir)
    assert "checkpoint" in source_files and len(source_files) > 100

    with serve(checkpoint_dir) as (url, requested):
        directory = presets.resolve_checkpoint_dir(
            "mt3", cache_dir=cache, base_url=url, progress=False
        )
        assert directory == cache / "checkpoints" / "mt3"
        assert len(requested) == len(source_files)
        assert relative_files(directory) == sorted(source_files + [presets.COMPLETE_MARKER])
        for name in source_files:
            assert (directory / name).read_bytes() == (checkpoint_dir / name).read_bytes(), name
        marker = json.loads((directory / presets.COMPLETE_MARKER).read_text())
        assert marker["source"] == url and sorted(marker["files"]) == source_files

        # Complete: a second call touches no network.
        requested.clear()
        assert presets.resolve_checkpoint_dir("mt3", cache_dir=cache, base_url=url) == directory
        assert requested == []

        # Interrupted: two chunks gone (one with a stale partial file), no marker.
        lost = [name for name in source_files if name.endswith("/0.0")][:2]
        for name in lost:
            (directory / name).unlink()
        stale = directory / (lost[0] + ".part")
        stale.write_bytes(b"half a chunk")
        (directory / presets.COMPLETE_MARKER).unlink()
        requested.clear()
        presets.resolve_checkpoint_dir("mt3", cache_dir=cache, base_url=url, progress=False)
        # Only the lost chunks are fetched; everything else, `checkpoint` included, is on disk.
        assert sorted(path.lstrip("/") for path in requested) == sorted(lost)
        assert not stale.exists()
        for name in lost:
            assert (directory / name).read_bytes() == (checkpoint_dir / name).read_bytes()
        assert (directory / presets.COMPLETE_MARKER).is_file()

    # Offline: the server is gone and one file is missing again.
    (directory / lost[1]).unlink()
    (directory / presets.COMPLETE_MARKER).unlink()
    with pytest.raises(PresetError) as info:
        presets.resolve_checkpoint_dir("mt3", cache_dir=cache, base_url=url, progress=False)
    message = str(info.value)
    assert url + lost[1] in message
    assert "offline" in message
    assert presets.CHECKPOINT_DIR_ENV in message and "gsutil cp -r" in message
    assert not (directory / presets.COMPLETE_MARKER).exists()
    shutil.rmtree(cache)  # 170 MB; pytest keeps old temporary folders around


def test_url_from_environment_and_http_errors(tmp_path, monkeypatch):
    (tmp_path / "served").mkdir()
    with serve(tmp_path / "served") as (url, _):
        monkeypatch.setenv(presets.CHECKPOINT_URL_ENV, url + "missing/")
        with pytest.raises(PresetError) as info:
            presets.resolve_checkpoint_dir("mt3", cache_dir=tmp_path / "cache", progress=False)
    message = str(info.value)
    assert f"{url}missing/checkpoint" in message and "HTTP 404" in message
    assert not list((tmp_path / "cache").rglob("checkpoint"))


def test_unreachable_server_gives_offline_error(tmp_path):
    url = unused_port_url()
    with pytest.raises(PresetError, match="seems to be offline") as info:
        presets.resolve_checkpoint_dir("ismir2021", cache_dir=tmp_path, base_url=url)
    assert url + "checkpoint" in str(info.value)


def test_official_hint_names_the_bucket(tmp_path, monkeypatch):
    # Pretend the public bucket is unreachable by routing its URL to a closed local port.
    closed = unused_port_url()
    real_urlopen = presets.urllib.request.urlopen

    def rerouted(url, *args, **kwargs):
        return real_urlopen(url.replace("https://storage.googleapis.com/", closed), *args, **kwargs)

    monkeypatch.setattr(presets.urllib.request, "urlopen", rerouted)
    with pytest.raises(PresetError) as info:
        presets.resolve_checkpoint_dir("ismir2021", cache_dir=tmp_path)
    message = str(info.value)
    assert "https://storage.googleapis.com/mt3/checkpoints/ismir2021/checkpoint" in message
    assert "gsutil cp -r gs://mt3/checkpoints/ismir2021 DIR" in message


def test_local_directory_is_used_as_is(checkpoint_dir, tmp_path):
    assert presets.resolve_checkpoint_dir(checkpoint_dir) == checkpoint_dir
    assert presets.resolve_checkpoint_dir(str(checkpoint_dir)) == checkpoint_dir
    with pytest.raises(PresetError, match="holds no `checkpoint` file"):
        presets.resolve_checkpoint_dir(tmp_path)


def test_checkpoint_dir_environment_variable(checkpoint_dir, tmp_path, monkeypatch):
    monkeypatch.setenv(presets.CHECKPOINT_DIR_ENV, str(checkpoint_dir))
    assert presets.resolve_checkpoint_dir("mt3", cache_dir=tmp_path) == checkpoint_dir
    monkeypatch.setenv(presets.CHECKPOINT_DIR_ENV, str(tmp_path))
    with pytest.raises(PresetError, match=presets.CHECKPOINT_DIR_ENV):
        presets.resolve_checkpoint_dir("mt3")


def test_unknown_preset_or_missing_directory(tmp_path):
    with pytest.raises(PresetError) as info:
        presets.resolve_checkpoint_dir("mt4")
    assert "'mt4'" in str(info.value) and "ismir2021, mt3" in str(info.value)
    for missing in (tmp_path / "missing", str(tmp_path / "missing")):
        with pytest.raises(PresetError, match="missing' does not exist"):
            presets.resolve_checkpoint_dir(missing)
    with pytest.raises(PresetError, match="Known presets"):
        presets.converted_preset_dir("nope")


def test_no_download_when_disallowed(tmp_path):
    with pytest.raises(PresetError, match="download=False"):
        presets.resolve_checkpoint_dir("mt3", cache_dir=tmp_path, download=False)
    assert not list(tmp_path.iterdir())


def test_cache_locations(tmp_path, monkeypatch):
    default = presets.cached_checkpoint_dir("mt3")
    assert default == tmp_path / "xdg" / "keras_mt3" / "checkpoints" / "mt3"
    monkeypatch.setenv(presets.CACHE_ENV, str(tmp_path / "elsewhere"))
    assert presets.cached_checkpoint_dir("ismir2021") == (
        tmp_path / "elsewhere" / "checkpoints" / "ismir2021"
    )
    assert presets.converted_preset_dir("mt3") == tmp_path / "elsewhere" / "presets" / "mt3"
    assert presets.converted_preset_dir("mt3", cache_dir=tmp_path / "c") == (
        tmp_path / "c" / "presets" / "mt3"
    )


def test_zarr_folders_of_the_official_checkpoint(checkpoint_dir):
    folders = presets.zarr_folders(checkpoint_dir / "checkpoint")
    on_disk = sorted(path.name for path in checkpoint_dir.glob("target.*") if path.is_dir())
    assert sorted(folders) == on_disk
    assert len(folders) == 147


def test_mt3_preset_matches_the_checkpoint_shapes(checkpoint_dir):
    backbone = presets.PRESETS["mt3"]["backbone"]
    embedding = json.loads(
        (checkpoint_dir / "target.decoder.token_embedder.embedding" / ".zarray").read_text()
    )
    assert embedding["shape"][0] == backbone["vocabulary_size"]
    for spec in presets.PRESETS.values():
        assert spec["checkpoint_url"].startswith("https://storage.googleapis.com/mt3/checkpoints/")
        assert spec["vocabulary"] in ("mt3", "ismir2021") and spec["description"]
