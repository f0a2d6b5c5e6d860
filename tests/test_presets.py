import contextlib
import functools
import gzip
import http.server
import json
import pathlib
import shutil
import socket
import threading
import tracemalloc

import numpy as np
import pytest

from keras_mt3.checkpoints import presets
from keras_mt3.errors import CheckpointError
from keras_mt3.errors import PresetError

pytestmark = pytest.mark.backend_independent


@pytest.fixture(autouse=True)
def isolated_environment(monkeypatch, tmp_path):
    # The test run may point KERAS_MT3_CHECKPOINT_DIR at the real checkpoint; these tests
    # exercise the other routes, so start from a clean environment and a private home.
    for name in (
        presets.CHECKPOINT_DIR_ENV,
        presets.CHECKPOINT_URL_ENV,
        presets.CACHE_ENV,
        presets.ALLOW_HTTP_ENV,
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))


class RecordingHandler(http.server.SimpleHTTPRequestHandler):
    """Serves a directory, recording requests; `server.cut_short` maps a path to the number of
    bytes of it to send (under a Content-Length that promises all), `server.redirects` maps a
    path to a Location to answer with."""

    def log_message(self, *args):
        pass

    def do_GET(self):
        self.server.requested.append(self.path)
        if self.path in self.server.redirects:
            self.send_response(302)
            self.send_header("Location", self.server.redirects[self.path])
            self.end_headers()
        elif self.path in self.server.cut_short:
            body = pathlib.Path(self.translate_path(self.path)).read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: self.server.cut_short[self.path]])
            self.close_connection = True
        else:
            super().do_GET()


@contextlib.contextmanager
def serve(directory, cut_short=None, redirects=None):
    """A loopback HTTP server for `directory`; yields (base_url, list of requested paths)."""
    handler = functools.partial(RecordingHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.requested = []
    server.cut_short = cut_short or {}
    server.redirects = redirects or {}
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
    real_open = presets._open_url

    def rerouted(url):
        return real_open(url.replace("https://storage.googleapis.com/", closed))

    monkeypatch.setattr(presets, "_open_url", rerouted)
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


def test_shipped_manifest_matches_the_official_checkpoint(checkpoint_dir):
    # The manifest lists every file of the official checkpoint with its size and sha256.
    computed = presets.write_manifest(checkpoint_dir)
    assert computed == presets.load_manifest("mt3")
    assert sorted(computed["files"]) == relative_files(checkpoint_dir)
    folders = {name.split("/")[0] for name in computed["files"] if "/" in name}
    assert len(folders) == 147 and len(computed["parameters"]) == 189
    # ismir2021 has no file hashes, only the parameter layout.
    assert "files" not in presets.load_manifest("ismir2021")


def test_mt3_preset_matches_the_checkpoint_shapes(checkpoint_dir):
    from keras_mt3.codec.vocabulary import get_vocabulary

    vocabulary = get_vocabulary(presets.PRESETS["mt3"]["vocabulary"])
    embedding = json.loads(
        (checkpoint_dir / "target.decoder.token_embedder.embedding" / ".zarray").read_text()
    )
    assert embedding["shape"][0] == vocabulary.num_embeddings
    assert presets.official_preset(checkpoint_dir) == "mt3"
    for spec in presets.PRESETS.values():
        assert spec["checkpoint_url"].startswith("https://storage.googleapis.com/mt3/checkpoints/")
        assert spec["vocabulary"] in ("mt3", "ismir2021") and spec["description"]


# ---- verification of downloads, against crafted servers ------------------------------------

LAYER_0 = "encoder/layers_0/mlp/wi_0/kernel"
LAYER_1 = "encoder/layers_1/mlp/wi_0/kernel"
EMBEDDING = "decoder/token_embedder/embedding"
SCALE = "encoder/encoder_norm/scale"
HASHED, UNHASHED = "tiny", "tiny-unhashed"
BOTH_MANIFESTS = pytest.mark.parametrize("preset", [HASHED, UNHASHED])
NOT_IN_MANIFEST = "the preset's manifest"


def _folder(name):
    return "target." + name.replace("/", ".")


def _tiny_params(seed=0):
    rng = np.random.default_rng(seed)
    shapes = {LAYER_0: (4, 6), LAYER_1: (4, 6), EMBEDDING: (7, 6), SCALE: (6,)}
    return {name: rng.normal(size=shape).astype("float32") for name, shape in shapes.items()}


@pytest.fixture
def tiny(tmp_path, monkeypatch, t5x_checkpoint_writer):
    """A tiny "official" checkpoint, registered as preset `tiny` (manifest with sha256 of every
    file) and `tiny-unhashed` (parameter layout only, as for ismir2021), and served from a copy
    that tests tamper with."""
    params = _tiny_params()
    official = t5x_checkpoint_writer(
        tmp_path / "official", params, inline={SCALE}, chunks={EMBEDDING: (3, 4)}
    )
    manifest = presets.write_manifest(official, tmp_path / "tiny.json")
    layout_only = {
        name: {"shape": entry["shape"], "dtype": entry["dtype"]}
        for name, entry in manifest["parameters"].items()
    }
    (tmp_path / "tiny-unhashed.json").write_text(json.dumps({"parameters": layout_only}))
    for name in (HASHED, UNHASHED):
        spec = dict(presets.PRESETS["mt3"], manifest=tmp_path / f"{name}.json")
        monkeypatch.setitem(presets.PRESETS, name, spec)
    served = tmp_path / "served"
    shutil.copytree(official, served)

    class Tiny:
        root, cache = tmp_path, tmp_path / "cache"

        def __init__(self):
            self.params, self.official, self.served = params, official, served

        def directory(self, preset):
            return presets.cached_checkpoint_dir(preset, self.cache)

        def load(self, preset, url):
            return presets.load_checkpoint(
                preset, cache_dir=self.cache, base_url=url, progress=False
            )

    return Tiny()


def _all_files(root):
    return {path for path in root.rglob("*") if path.is_file()}


def _refused(tiny, preset, url, match):
    """Downloading `preset` from `url` fails with `match`, keeps nothing unverified and writes
    nothing outside the cache."""
    before = _all_files(tiny.root)
    with pytest.raises(PresetError, match=match) as info:
        tiny.load(preset, url)
    written = _all_files(tiny.root) - before
    assert all(tiny.cache in path.parents for path in written), written
    directory = tiny.directory(preset)
    assert not (directory / presets.COMPLETE_MARKER).exists()
    assert not list(directory.rglob("*.part"))
    return info.value


def _write_zarray(directory, name, **changes):
    path = directory / _folder(name) / ".zarray"
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


def _write_chunk(directory, name, key, block):
    (directory / _folder(name) / key).write_bytes(gzip.compress(block.astype("<f4").tobytes(), 1))


@BOTH_MANIFESTS
def test_download_is_verified_then_read(tiny, preset):
    with serve(tiny.served) as (url, requested):
        params = tiny.load(preset, url)
    assert len(requested) == len(relative_files(tiny.official))
    for name, array in tiny.params.items():
        np.testing.assert_array_equal(params[name], array)
    directory = tiny.directory(preset)
    assert relative_files(directory) == sorted(
        relative_files(tiny.official) + [presets.COMPLETE_MARKER]
    )
    marker = json.loads((directory / presets.COMPLETE_MARKER).read_text())
    assert marker["verified"] == (
        "sha256 manifest" if preset == HASHED else "structure and finite values"
    )


@BOTH_MANIFESTS
def test_path_traversal_in_the_dimension_separator_is_refused(tiny, preset):
    _write_zarray(tiny.served, EMBEDDING, dimension_separator="/../../../../../escaped/")
    # What a hostile server would answer for the escaping chunk names.
    (tiny.served / "escaped").mkdir()
    for key in ("0", "1"):
        (tiny.served / "escaped" / key).write_bytes(b"pwned")
    with serve(tiny.served) as (url, requested):
        match = NOT_IN_MANIFEST if preset == HASHED else "dimension_separator .* is neither"
        _refused(tiny, preset, url, match)
    assert not any(".." in path or "escaped" in path for path in requested)
    assert not (tiny.root / "escaped").exists()
    assert not (tiny.directory(preset) / _folder(EMBEDDING) / ".zarray").exists()


@pytest.mark.parametrize(
    "shape, chunks, match",
    [
        ([2**40, 2**40], [1, 1], "1208925819614629174706176 chunks, more than 65536"),
        ([2**20, 2**20], [2**20, 2**20], "bytes, more than 4294967296"),
        ([8, 6], [3, 4], r"shape \(8, 6\), expected \(7, 6\)"),
    ],
)
@BOTH_MANIFESTS
def test_zarray_with_a_huge_or_unexpected_shape_is_refused(tiny, preset, shape, chunks, match):
    _write_zarray(tiny.served, EMBEDDING, shape=shape, chunks=chunks)
    tracemalloc.start()
    try:
        with serve(tiny.served) as (url, requested):
            _refused(tiny, preset, url, NOT_IN_MANIFEST if preset == HASHED else match)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 32 << 20  # nothing the size of the declared array was allocated
    assert not any(_folder(EMBEDDING) + "/" in path and "zarray" not in path for path in requested)


def test_file_with_a_wrong_hash_is_not_kept_and_is_fetched_again(tiny):
    chunk = f"{_folder(LAYER_0)}/0.0"
    good = (tiny.served / chunk).read_bytes()
    _write_chunk(tiny.served, LAYER_0, "0.0", np.zeros((4, 6)))  # valid zarr, other values
    with serve(tiny.served) as (url, requested):
        error = _refused(tiny, HASHED, url, NOT_IN_MANIFEST)
        assert url + chunk in str(error)
        assert not (tiny.directory(HASHED) / chunk).exists()
        (tiny.served / chunk).write_bytes(good)
        kept = relative_files(tiny.directory(HASHED))
        requested.clear()
        params = tiny.load(HASHED, url)
    # What was verified before is kept, the refused file is fetched again.
    assert sorted(path[1:] for path in requested) == sorted(
        set(relative_files(tiny.official)) - set(kept)
    )
    assert "/" + chunk in requested
    np.testing.assert_array_equal(params[LAYER_0], tiny.params[LAYER_0])


@BOTH_MANIFESTS
def test_chunk_with_nan_is_refused(tiny, preset):
    block = tiny.params[LAYER_1].copy()
    block[2, 3] = np.nan
    _write_chunk(tiny.served, LAYER_1, "0.0", block)
    with serve(tiny.served) as (url, _):
        match = NOT_IN_MANIFEST if preset == HASHED else f"'{LAYER_1}' holds 1 NaN or infinite"
        _refused(tiny, preset, url, match)


@BOTH_MANIFESTS
def test_short_body_is_not_kept_and_is_fetched_again(tiny, preset):
    chunk = f"/{_folder(EMBEDDING)}/1.1"
    with serve(tiny.served, cut_short={chunk: 10}) as (url, _):
        error = _refused(tiny, preset, url, "stopped early")
    assert f"{url}{chunk[1:]} stopped early (10 of" in str(error)
    kept = relative_files(tiny.directory(preset))
    with serve(tiny.served) as (url, requested):
        params = tiny.load(preset, url)
    assert chunk in requested
    assert not {path[1:] for path in requested} & set(kept)
    np.testing.assert_array_equal(params[EMBEDDING], tiny.params[EMBEDDING])


def _swap_folders(directory, first, second):
    a, b, spare = directory / _folder(first), directory / _folder(second), directory / "spare"
    a.rename(spare)
    b.rename(a)
    spare.rename(b)


def test_swapped_layer_folders_are_refused(tiny):
    _swap_folders(tiny.served, LAYER_0, LAYER_1)
    with serve(tiny.served) as (url, _):
        _refused(tiny, HASHED, url, NOT_IN_MANIFEST)
    # A local copy of the official checkpoint (recognised by its `checkpoint` file) is held to
    # the manifest too.
    with pytest.raises(CheckpointError, match=f"{_folder(LAYER_0)}/0.0 differs from the official"):
        presets.load_checkpoint(tiny.served, preset=HASHED)


def test_damaged_checkpoint_file_in_the_cache_is_repaired(tiny):
    # One flipped bit in an inline array still parses; the cache must hold the official file.
    with serve(tiny.served) as (url, requested):
        tiny.load(HASHED, url)
        cached = tiny.directory(HASHED) / "checkpoint"
        data = bytearray(cached.read_bytes())
        offset = bytes(data).index(tiny.params[SCALE].tobytes())
        data[offset + 1] ^= 0x01
        cached.write_bytes(bytes(data))
        with pytest.raises(CheckpointError, match="checkpoint differs from the official"):
            tiny.load(HASHED, url)
        requested.clear()
        params = tiny.load(HASHED, url)
    assert requested == ["/checkpoint"]
    np.testing.assert_array_equal(params[SCALE], tiny.params[SCALE])


@BOTH_MANIFESTS
def test_damaged_cache_is_repaired_by_the_next_run(tiny, preset):
    chunk = f"{_folder(EMBEDDING)}/2.0"
    cached = tiny.directory(preset) / chunk
    with serve(tiny.served) as (url, requested):
        tiny.load(preset, url)
        damaged = np.full((3, 4), np.inf)
        _write_chunk(tiny.directory(preset), EMBEDDING, "2.0", damaged)
        requested.clear()
        match = "differs from the official" if preset == HASHED else "holds 4 NaN or infinite"
        with pytest.raises(CheckpointError, match=match) as info:
            tiny.load(preset, url)
        assert requested == []  # the cache was complete: nothing fetched
        assert f"{chunk} removed; the next run downloads" in str(info.value)
        assert not cached.exists()
        assert not (tiny.directory(preset) / presets.COMPLETE_MARKER).exists()
        params = tiny.load(preset, url)
    assert requested == ["/" + chunk]
    np.testing.assert_array_equal(params[EMBEDDING], tiny.params[EMBEDDING])


def test_checkpoint_dir_environment_variable_is_verified_but_never_changed(tiny, monkeypatch):
    monkeypatch.setenv(presets.CHECKPOINT_DIR_ENV, str(tiny.served))
    params = presets.load_checkpoint(HASHED, cache_dir=tiny.cache)
    np.testing.assert_array_equal(params[EMBEDDING], tiny.params[EMBEDDING])
    # A damaged copy of the official checkpoint is reported, and left as it is.
    _write_chunk(tiny.served, EMBEDDING, "0.0", np.zeros((3, 4)))
    before = {path: path.read_bytes() for path in _all_files(tiny.served)}
    with pytest.raises(CheckpointError, match="embedding/0.0 differs from the official") as info:
        presets.load_checkpoint(HASHED, cache_dir=tiny.cache)
    assert "removed" not in str(info.value)
    assert {path: path.read_bytes() for path in _all_files(tiny.served)} == before
    assert not tiny.cache.exists()


def test_local_directories_are_checked_but_never_changed(tiny, t5x_checkpoint_writer):
    # The user's own checkpoint (not the official `checkpoint` file): read without hashes,
    # still checked for layout and finite values.
    own_params = _tiny_params(seed=1)
    own = t5x_checkpoint_writer(tiny.root / "own", own_params, inline={SCALE}, step=7)
    params = presets.load_checkpoint(own, preset=HASHED)
    np.testing.assert_array_equal(params[LAYER_1], own_params[LAYER_1])
    block = own_params[LAYER_1].copy()
    block[0, 0] = np.nan
    _write_chunk(own, LAYER_1, "0.0", block)
    before = {path: path.read_bytes() for path in _all_files(own)}
    with pytest.raises(CheckpointError, match=f"'{LAYER_1}' holds 1 NaN or infinite"):
        presets.load_checkpoint(own, preset=HASHED)
    assert {path: path.read_bytes() for path in _all_files(own)} == before
    # Another layout than the preset's is refused before any array is read.
    other = t5x_checkpoint_writer(tiny.root / "other", {LAYER_0: np.zeros((4, 5))})
    with pytest.raises(CheckpointError, match="3 parameter.s. missing.*shape \\[4, 5\\]"):
        presets.load_checkpoint(other, preset=UNHASHED)


@pytest.mark.parametrize(
    "url",
    [
        "storage.googleapis.com/mt3/checkpoints/mt3/",
        "localhost:8000/mt3/",
        "/srv/checkpoints/mt3",
        "ftp://mirror.example/mt3/",
        "file:///srv/checkpoints/mt3/",
    ],
)
def test_url_without_an_http_scheme_is_refused(tmp_path, monkeypatch, url):
    with pytest.raises(PresetError, match=r"is not an http\(s\) URL") as info:
        presets.resolve_checkpoint_dir("mt3", cache_dir=tmp_path, base_url=url)
    assert presets.CHECKPOINT_DIR_ENV in str(info.value)
    monkeypatch.setenv(presets.CHECKPOINT_URL_ENV, url)
    with pytest.raises(PresetError, match=r"is not an http\(s\) URL"):
        presets.resolve_checkpoint_dir("mt3", cache_dir=tmp_path)
    assert not list(tmp_path.iterdir())


def test_plain_http_only_to_loopback_or_when_allowed(monkeypatch):
    allowed = ("http://127.0.0.1:9/x/", "http://[::1]:9/x/", "http://localhost/x/", "https://a/x/")
    for url in allowed:
        assert presets.check_download_url(url) == url
    for url in ("http://mirror.example/x/", "http://10.0.0.8/x/"):
        with pytest.raises(PresetError, match=f"plain http .*{presets.ALLOW_HTTP_ENV}=1"):
            presets.check_download_url(url)
    monkeypatch.setenv(presets.ALLOW_HTTP_ENV, "1")
    assert presets.check_download_url("http://mirror.example/x/") == "http://mirror.example/x/"


def test_redirect_to_plain_http_elsewhere_is_refused(tiny):
    redirects = {"/checkpoint": "http://mirror.example/checkpoint"}
    with serve(tiny.served, redirects=redirects) as (url, requested):
        _refused(tiny, HASHED, url, "plain http from mirror.example")
    assert requested == ["/checkpoint"]
