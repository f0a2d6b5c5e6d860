"""Preset registry and where each preset's official T5X checkpoint comes from.

`resolve_checkpoint_dir` turns a preset name (or a directory) into a local checkpoint directory:
an existing directory is used as is; for a preset name, `$KERAS_MT3_CHECKPOINT_DIR` wins, then
the cache (`$KERAS_MT3_CACHE`, default `~/.cache/keras_mt3`), which is filled from Magenta's
public bucket on first use. `load_checkpoint` also reads it, verified. Each is converted once
into a Keras preset in the same cache (`converted_preset_dir`, written by
`keras_mt3.checkpoints.convert_t5x.converted_preset`), which is what later loads read.

Each preset ships a manifest (`keras_mt3/manifests/<preset>.json`, made by `write_manifest`):
the name, shape and dtype of every parameter and, where the official files were at hand when it
was written, the size and sha256 of every file of the official checkpoint. A download is checked
against it file by file before it is kept, and only a fully verified download is marked
complete.
"""

import http.client
import ipaddress
import json
import os
import pathlib
import urllib.error
import urllib.parse
import urllib.request

from keras_mt3.checkpoints import t5x_checkpoint as t5x
from keras_mt3.errors import CheckpointError
from keras_mt3.errors import PresetError
from keras_mt3.utils import atomic_write, progress_bar

CHECKPOINT_DIR_ENV = "KERAS_MT3_CHECKPOINT_DIR"
CHECKPOINT_URL_ENV = "KERAS_MT3_CHECKPOINT_URL"
CACHE_ENV = "KERAS_MT3_CACHE"
ALLOW_HTTP_ENV = "KERAS_MT3_ALLOW_HTTP"
COMPLETE_MARKER = "COMPLETE"
CHECKPOINT_FILE = t5x.CHECKPOINT_FILE
MANIFEST_DIR = pathlib.Path(__file__).resolve().parents[1] / "manifests"

PRESETS = {
    "mt3": {
        "description": (
            "MT3 multi-instrument transcription (Gardner et al., ICLR 2022): 2.048 s segments, "
            "General MIDI programs in 34 groups plus drums, no velocity. 45.9M parameters."
        ),
        "vocabulary": "mt3",
        "checkpoint_url": "https://storage.googleapis.com/mt3/checkpoints/mt3/",
        "manifest": MANIFEST_DIR / "mt3.json",
    },
    "ismir2021": {
        "description": (
            "Piano transcription with velocity (Hawthorne et al., ISMIR 2021): 4.096 s "
            "segments, 127 velocity bins, no ties, no instruments."
        ),
        "vocabulary": "ismir2021",
        "checkpoint_url": "https://storage.googleapis.com/mt3/checkpoints/ismir2021/",
        # Parameter layout only, no file hashes: downloads are checked for structure and
        # finite values, but a file swapped for another of the same shape goes unnoticed.
        "manifest": MANIFEST_DIR / "ismir2021.json",
    },
}


def get_preset(name):
    """The registry entry of preset `name`; PresetError listing the known ones otherwise."""
    if name not in PRESETS:
        raise PresetError(
            f"unknown preset {name!r}. Known presets: {', '.join(sorted(PRESETS))}; or pass the "
            "path of a local checkpoint directory."
        )
    return PRESETS[name]


def cache_root(cache_dir=None):
    """Root of keras-mt3's cache: `cache_dir`, else $KERAS_MT3_CACHE, else ~/.cache/keras_mt3."""
    if cache_dir is not None:
        return pathlib.Path(cache_dir).expanduser()
    if os.environ.get(CACHE_ENV):
        return pathlib.Path(os.environ[CACHE_ENV]).expanduser()
    xdg_cache = os.environ.get("XDG_CACHE_HOME") or pathlib.Path.home() / ".cache"
    return pathlib.Path(xdg_cache).expanduser() / "keras_mt3"


def cached_checkpoint_dir(preset, cache_dir=None):
    """Where the T5X checkpoint of `preset` is (or will be) downloaded."""
    get_preset(preset)
    return cache_root(cache_dir) / "checkpoints" / preset


def converted_preset_dir(preset, cache_dir=None):
    """Where the converted Keras preset of `preset` (config.json + model.weights.h5) is kept."""
    get_preset(preset)
    return cache_root(cache_dir) / "presets" / preset


def official_preset(directory):
    """The preset whose official checkpoint `directory` holds a copy of (its `checkpoint` file
    has the manifest's sha256), or None."""
    digest = t5x.tree_sha256(directory)
    for name in PRESETS:
        official = load_manifest(name).get("files", {}).get(CHECKPOINT_FILE)
        if official is not None and official["sha256"] == digest:
            return name
    return None


def resolve_checkpoint_dir(
    preset_or_path, *, cache_dir=None, download=True, progress=None, base_url=None
):
    """Local directory of a T5X checkpoint, downloading the official one when needed.

    Args:
        preset_or_path: a preset name (see `PRESETS`) or a checkpoint directory.
        cache_dir: cache root to use instead of $KERAS_MT3_CACHE / ~/.cache/keras_mt3.
        download: fetch a missing or incomplete checkpoint; with False, raise instead.
        progress: show a progress bar (default: when stderr is a terminal).
        base_url: checkpoint folder URL to download from instead of the preset's
            ($KERAS_MT3_CHECKPOINT_URL also overrides it); see `check_download_url`.

    Raises:
        PresetError: unknown preset, a directory without a `checkpoint` file, a refused URL,
            or a failed or unverifiable download.
    """
    if _names_a_directory(preset_or_path):
        return _checked_checkpoint_dir(pathlib.Path(preset_or_path).expanduser(), "directory")
    preset = os.fspath(preset_or_path)
    if preset not in PRESETS and _looks_like_a_path(preset_or_path):
        raise PresetError(
            f"checkpoint directory {preset!r} does not exist. Check the path, or pass a preset "
            f"name: {', '.join(sorted(PRESETS))}."
        )
    spec = get_preset(preset)
    if os.environ.get(CHECKPOINT_DIR_ENV):
        return _checked_checkpoint_dir(
            pathlib.Path(os.environ[CHECKPOINT_DIR_ENV]).expanduser(), f"${CHECKPOINT_DIR_ENV}"
        )
    directory = cached_checkpoint_dir(preset, cache_dir)
    if (directory / COMPLETE_MARKER).is_file():
        return directory
    if not download:
        raise PresetError(
            f"the {preset!r} checkpoint is not in the cache ({directory}) and download=False. "
            f"Allow the download, or set {CHECKPOINT_DIR_ENV} to a local copy."
        )
    url = base_url or os.environ.get(CHECKPOINT_URL_ENV) or spec["checkpoint_url"]
    download_checkpoint(url, directory, load_manifest(preset), progress=progress)
    return directory


def load_checkpoint(
    preset_or_path, *, preset=None, cache_dir=None, download=True, progress=None, base_url=None
):
    """The T5X parameters (`{name: array}`) of a preset or a checkpoint directory, verified.

    The checkpoint is found (and downloaded) as by `resolve_checkpoint_dir`, whose arguments
    these are; `preset` names the preset whose manifest applies (default: `preset_or_path`
    when that is a preset name, else "mt3"). The parameters must have the manifest's names,
    shapes and dtypes and finite values; a directory whose `checkpoint` file is the official
    one must also match the manifest's file hashes.

    A damaged file found in the cache is removed, with the completion marker, so that the next
    call downloads it again.

    Raises:
        PresetError: see `resolve_checkpoint_dir`.
        CheckpointError: the checkpoint is incomplete, damaged or not the preset's.
    """
    if preset is None:
        preset = preset_or_path if _is_preset_name(preset_or_path) else "mt3"
    manifest = load_manifest(preset)
    directory = resolve_checkpoint_dir(
        preset_or_path, cache_dir=cache_dir, download=download, progress=progress, base_url=base_url
    )
    cached = _is_preset_name(preset_or_path) and directory == cached_checkpoint_dir(
        preset_or_path, cache_dir
    )
    try:
        return t5x.read_t5x_checkpoint(
            directory,
            progress=progress,
            expected=manifest["parameters"],
            official_files=manifest.get("files"),
            # The cache only ever holds the official checkpoint: any other tree is damage.
            require_official=cached and "files" in manifest,
        )
    except CheckpointError as error:
        if not cached:
            raise
        _forget(directory, error.files)
        raise CheckpointError(
            f"{error} The cached copy was marked incomplete"
            + (f" and {', '.join(error.files)} removed" if error.files else "")
            + "; the next run downloads what is missing or damaged again.",
            files=error.files,
        ) from error


def _is_preset_name(preset_or_path):
    return isinstance(preset_or_path, str) and preset_or_path in PRESETS


def _forget(directory, relative_names):
    for relative in relative_names:
        _cache_path(directory, relative).unlink(missing_ok=True)
    (directory / COMPLETE_MARKER).unlink(missing_ok=True)


def _names_a_directory(preset_or_path):
    # A bare preset name wins over a same-named folder in the working directory.
    if _is_preset_name(preset_or_path):
        return False
    return pathlib.Path(preset_or_path).expanduser().is_dir()


def _looks_like_a_path(preset_or_path):
    text = os.fspath(preset_or_path)
    return not isinstance(preset_or_path, str) or any(c in text for c in "/\\~.")


def _checked_checkpoint_dir(directory, origin):
    if not (directory / CHECKPOINT_FILE).is_file():
        raise PresetError(
            f"{origin} {str(directory)!r} holds no `{CHECKPOINT_FILE}` file, so it is not a T5X "
            "checkpoint directory. Point it at the folder that holds `checkpoint` and the "
            "`target.*` zarr folders, e.g. a copy made with "
            "`gsutil cp -r gs://mt3/checkpoints/mt3 DIR`."
        )
    return directory


# ---- manifests -----------------------------------------------------------------------------


def load_manifest(preset):
    """The manifest of `preset`: `{"parameters": {name: {"shape", "dtype", ["chunks"]}},
    ["files": {relative path: {"size", "sha256"}}]}` (see `write_manifest`)."""
    path = get_preset(preset).get("manifest")
    if path is None:
        raise PresetError(f"preset {preset!r} has no manifest, so its checkpoint cannot be checked")
    try:
        manifest = json.loads(pathlib.Path(path).read_text())
    except (OSError, ValueError) as error:
        manifest = {"error": error}
    if not isinstance(manifest.get("parameters"), dict):
        raise PresetError(
            f"the manifest of preset {preset!r} ({path}) is missing or unreadable "
            f"({manifest.get('error', 'no parameters')}); reinstall keras-mt3."
        )
    return manifest


def write_manifest(directory, path=None, *, hashes=True):
    """The manifest of the T5X checkpoint in `directory`, also written to `path` when given.

    `parameters` gives every parameter's shape and dtype (and zarr chunk shape); with `hashes`,
    `files` gives the size and sha256 of each file the checkpoint consists of (the `checkpoint`
    file, and each zarr folder's `.zarray` and chunks). The checkpoint is read in full first, so
    only a valid one gets a manifest.
    """
    directory = pathlib.Path(directory).expanduser()
    params = t5x.read_t5x_checkpoint(directory, progress=False)
    leaves = t5x.read_tree((directory / CHECKPOINT_FILE).read_bytes(), directory / CHECKPOINT_FILE)
    parameters = {
        name: {"shape": list(array.shape), "dtype": array.dtype.name}
        for name, array in params.items()
    }
    # Downloads name each zarr folder after its parameter, as T5X does: so must this one.
    t5x.check_parameters(leaves, parameters, f"the checkpoint in {directory}")
    files = [CHECKPOINT_FILE]
    for name, leaf in leaves.items():
        if t5x.is_tensorstore_spec(leaf):
            folder = t5x.t5x_folder_name(name)
            zarray = f"{folder}/{t5x.ZARRAY_FILE}"
            layout = t5x.parse_zarray((directory / zarray).read_bytes(), name, zarray)
            parameters[name]["chunks"] = list(layout.chunks)
            files += [zarray] + [f"{folder}/{key}" for _, key in layout.chunk_keys()]
    manifest = {"parameters": parameters}
    if hashes:
        manifest["files"] = {
            relative: {"size": len(data), "sha256": t5x.sha256_hex(data)}
            for relative in files
            for data in [(directory / relative).read_bytes()]
        }
    if path is not None:
        with atomic_write(path, "w") as handle:
            handle.write(_manifest_json(manifest))
    return manifest


def _manifest_json(manifest):
    # One line per parameter or file: readable, and a changed file shows as a one-line diff.
    sections = []
    for section, entries in sorted(manifest.items()):
        lines = [
            f"  {json.dumps(key)}: {json.dumps(entries[key], sort_keys=True)}"
            for key in sorted(entries)
        ]
        sections.append(f" {json.dumps(section)}: {{\n" + ",\n".join(lines) + "\n }")
    return "{\n" + ",\n".join(sections) + "\n}\n"


# ---- where downloads may come from ---------------------------------------------------------


def check_download_url(url):
    """Returns `url` if a checkpoint may be downloaded from it; PresetError otherwise.

    https is required. Plain http is accepted for a loopback host (a mirror on this machine,
    with no network in between) and, for any host, when $KERAS_MT3_ALLOW_HTTP is 1 (a mirror
    on a network you trust). Redirects are held to the same rule.
    """
    url = str(url)
    try:
        parts = urllib.parse.urlsplit(url)
        host = parts.hostname
    except ValueError as error:
        raise PresetError(f"checkpoint URL {url!r} is malformed ({error}).") from error
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not host:
        raise PresetError(
            f"checkpoint URL {url!r} is not an http(s) URL: give the folder's full address, "
            "e.g. https://storage.googleapis.com/mt3/checkpoints/mt3/. For a checkpoint folder "
            f"on this machine, set {CHECKPOINT_DIR_ENV} to it instead."
        )
    if scheme == "http" and not _is_loopback(host) and os.environ.get(ALLOW_HTTP_ENV) != "1":
        raise PresetError(
            f"refusing to download the checkpoint over plain http from {host} ({url}): anyone "
            f"on the way could change it. Use https, or set {ALLOW_HTTP_ENV}=1 to allow a "
            "mirror you trust (files are still checked against the preset's manifest)."
        )
    return url


def _is_loopback(host):
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _CheckedRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        check_download_url(newurl)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


_OPENER = urllib.request.build_opener(_CheckedRedirects)


def _open_url(url):
    return _OPENER.open(url, timeout=DOWNLOAD_TIMEOUT_SECONDS)


# ---- download ------------------------------------------------------------------------------

DOWNLOAD_TIMEOUT_SECONDS = 60
# Largest `checkpoint` and `.zarray` files accepted without a file manifest (MT3's are 0.9 MB
# and 200 bytes); a chunk may be at most its inflated size plus deflate's worst-case overhead.
MAX_TREE_BYTES = 64 << 20
MAX_ZARRAY_BYTES = 64 << 10
_COPY_BUFFER_BYTES = 1 << 20
_NETWORK_ERRORS = (urllib.error.URLError, ConnectionError, TimeoutError, http.client.HTTPException)


def download_checkpoint(base_url, directory, manifest, progress=None):
    """Mirrors and verifies the T5X checkpoint at `base_url` in `directory`; returns its files.

    The `checkpoint` file comes first: its TensorStore specs name the zarr folders, each of
    which needs its `.zarray` and then the chunk files that metadata implies. Only names and
    shapes the manifest's `parameters` expect are accepted, before anything is written or
    allocated, and file names are built from them, never from the server's text. With the
    manifest's `files`, every file must have its recorded size and sha256; without, chunks
    must decode to finite values of the declared size. A file is written to `NAME.part` and
    renamed once verified; `COMPLETE` is written last. Files already there are verified the
    same way and fetched again if they fail, so a damaged or interrupted download is repaired
    by the next call.

    Raises:
        PresetError: a refused URL, a network or server error, or a file that fails
            verification (nothing unverified is kept).
    """
    base_url = check_download_url(base_url if base_url.endswith("/") else base_url + "/")
    directory = pathlib.Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    expected, official = manifest["parameters"], manifest.get("files")
    (directory / COMPLETE_MARKER).unlink(missing_ok=True)
    with progress_bar(desc="downloading checkpoint", unit="file", enabled=progress) as bar:
        fetcher = _Fetcher(base_url, directory, official, bar)
        bar.total = len(official) if official else 1
        leaves = fetcher.get(
            CHECKPOINT_FILE, MAX_TREE_BYTES, lambda raw: _checked_tree(raw, expected, base_url)
        )
        specs = [name for name, leaf in leaves.items() if t5x.is_tensorstore_spec(leaf)]
        if not official:
            bar.total = 1 + 2 * len(specs)  # at least `.zarray` + one chunk each
        for name in specs:
            _fetch_zarr_array(fetcher, name, expected[name], verify_chunks=not official)
    unlisted = sorted(set(official or ()) - set(fetcher.files))
    if unlisted:
        raise PresetError(
            f"the checkpoint at {base_url} lacks {len(unlisted)} file(s) of the official one "
            f"({t5x.preview_names(unlisted)}); it is not the official checkpoint."
        )
    with atomic_write(directory / COMPLETE_MARKER, "w") as handle:
        verified = "sha256 manifest" if official else "structure and finite values"
        record = {"source": base_url, "verified": verified, "files": sorted(fetcher.files)}
        json.dump(record, handle, indent=1)
    return fetcher.files


def _checked_tree(raw, expected, base_url):
    leaves = t5x.read_tree(raw, CHECKPOINT_FILE)
    t5x.check_parameters(leaves, expected, f"the checkpoint at {base_url}")
    return leaves


def _fetch_zarr_array(fetcher, name, expected_entry, verify_chunks):
    folder = t5x.t5x_folder_name(name)
    zarray = f"{folder}/{t5x.ZARRAY_FILE}"

    def checked_layout(raw):
        layout = t5x.parse_zarray(raw, name, zarray)
        t5x.check_layout(name, layout, expected_entry, chunks=True)
        return layout

    layout = fetcher.get(zarray, MAX_ZARRAY_BYTES, checked_layout)
    keys = list(layout.chunk_keys())
    if verify_chunks:
        fetcher.bar.total += len(keys) - 1
    # Deflate's worst case grows incompressible data by 5 bytes per 16 KiB block.
    limit = layout.chunk_bytes + layout.chunk_bytes // 1000 + 1024
    for index, key in keys:
        relative = f"{folder}/{key}"
        check = None
        if verify_chunks:

            def check(raw, index=index, relative=relative):
                t5x.read_chunk(raw, layout, index, name, relative)

        fetcher.get(relative, limit, check)


class _Fetcher:
    """Fetches files of one checkpoint into a directory, verifying each before keeping it."""

    def __init__(self, base_url, directory, official, bar):
        self.base_url, self.directory, self.official, self.bar = base_url, directory, official, bar
        self.files = []
        self.received = 0

    def get(self, relative, limit, check=None):
        """Verified file `relative` (fetched unless a verified copy is there); returns
        `check(bytes)`, or None without `check`. At most `limit` bytes are accepted."""
        destination = _cache_path(self.directory, relative)
        entry = self.official.get(relative) if self.official is not None else None
        if self.official is not None and entry is None:
            raise PresetError(
                f"the checkpoint at {self.base_url} needs {relative}, which the official "
                "checkpoint does not have; it is not the official checkpoint."
            )
        if destination.is_file():
            try:
                result = self._verified(destination.read_bytes(), relative, entry, check)
            except (CheckpointError, PresetError):
                destination.unlink()  # damaged: fetch it again
            else:
                return self._done(relative, result)
        if entry is not None:
            limit, limit_source = entry["size"], "bytes the preset's manifest records"
        else:
            limit_source = "bytes a checkpoint file of its kind may have"
        destination.parent.mkdir(parents=True, exist_ok=True)
        partial = destination.with_name(destination.name + ".part")
        url = urllib.parse.urljoin(self.base_url, urllib.parse.quote(relative))
        try:
            self.received += _fetch(url, partial, limit, self.base_url, limit_source)
            result = self._verified(partial.read_bytes(), relative, entry, check, url)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        os.replace(partial, destination)
        return self._done(relative, result)

    def _verified(self, data, relative, entry, check, url=None):
        if entry is not None and (
            len(data) != entry["size"] or t5x.sha256_hex(data) != entry["sha256"]
        ):
            raise PresetError(
                f"{url or relative} does not match the preset's manifest ({len(data)} bytes "
                f"with sha256 {t5x.sha256_hex(data)[:16]}..., expected {entry['size']} bytes "
                f"with sha256 {entry['sha256'][:16]}...). The server does not serve the official "
                "checkpoint, or the transfer was damaged; the file was not kept. "
                + _local_copy_hint(self.base_url)
            )
        try:
            return check(data) if check else None
        except CheckpointError as error:
            raise PresetError(
                f"the server at {self.base_url} sent an invalid checkpoint file: {error} The "
                "file was not kept. " + _local_copy_hint(self.base_url)
            ) from error

    def _done(self, relative, result):
        self.files.append(relative)
        self.bar.set_postfix_str(f"{self.received / 1e6:.1f} MB", refresh=False)
        self.bar.update(1)
        return result


def _cache_path(directory, relative):
    # Names are built from validated parameter names and chunk indices; refuse anything else.
    parts = pathlib.PurePosixPath(relative).parts
    if not parts or relative.startswith("/") or "\\" in relative or ".." in parts:
        raise PresetError(f"refusing to write checkpoint file {relative!r} outside {directory}")
    return directory.joinpath(*parts)


def _fetch(url, partial, limit, base_url, limit_source):
    """Streams `url` into `partial`; returns the number of bytes.

    More than `limit` bytes are refused: `limit_source` says where that limit comes from.
    """
    received = 0
    try:
        with _open_url(url) as response:
            declared = _content_length(response)
            if declared is not None and declared > limit:
                raise _too_long(url, declared, limit, limit_source)
            with open(partial, "wb") as handle:
                while chunk := response.read(min(_COPY_BUFFER_BYTES, limit + 1 - received)):
                    received += len(chunk)
                    if received > limit:
                        raise _too_long(url, f"more than {limit}", limit, limit_source)
                    handle.write(chunk)
                handle.flush()
                os.fsync(handle.fileno())
    except urllib.error.HTTPError as error:
        raise PresetError(
            f"downloading {url} failed: the server answered HTTP {error.code} {error.reason}. "
            + _local_copy_hint(base_url)
        ) from error
    except http.client.IncompleteRead as error:
        received += len(error.partial)
        raise _stopped_early(url, received, received + (error.expected or 0), base_url) from error
    except _NETWORK_ERRORS as error:
        reason = getattr(error, "reason", None) or error
        raise PresetError(
            f"could not download {url} ({reason}); this machine seems to be offline or cannot "
            "reach the server. " + _local_copy_hint(base_url)
        ) from error
    except OSError as error:
        raise PresetError(
            f"could not write {partial} ({error}). Free some disk space or choose another cache "
            f"folder with ${CACHE_ENV}."
        ) from error
    if declared is not None and received != declared:
        raise _stopped_early(url, received, declared, base_url)
    return received


def _content_length(response):
    try:
        return int(response.headers["Content-Length"])
    except (KeyError, TypeError, ValueError):
        return None


def _too_long(url, size, limit, limit_source):
    return PresetError(
        f"{url} is {size} bytes, more than the {limit} {limit_source}; the server does not "
        "serve the expected checkpoint. Nothing was kept."
    )


def _stopped_early(url, received, declared, base_url):
    return PresetError(
        f"downloading {url} stopped early ({received} of {declared} bytes). Run again to "
        "resume. " + _local_copy_hint(base_url)
    )


def _local_copy_hint(base_url):
    public_prefix = "https://storage.googleapis.com/"
    if base_url.startswith(public_prefix):
        source = "gs://" + base_url[len(public_prefix) :].rstrip("/")
    else:
        source = base_url
    return (
        f"To use a local copy instead, copy the checkpoint folder on a connected machine "
        f"(`gsutil cp -r {source} DIR`) and set {CHECKPOINT_DIR_ENV} to the copied folder "
        "(the one that holds the `checkpoint` file)."
    )
