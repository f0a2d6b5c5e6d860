"""Preset registry and where each preset's official T5X checkpoint comes from.

`resolve_checkpoint_dir` turns a preset name (or a directory) into a local checkpoint directory:
an existing directory is used as is; for a preset name, `$KERAS_MT3_CHECKPOINT_DIR` wins, then
the cache (`$KERAS_MT3_CACHE`, default `~/.cache/keras_mt3`), which is filled from Magenta's
public bucket on first use. Converted Keras presets live in the same cache
(`converted_preset_dir`).
"""

import http.client
import json
import math
import os
import pathlib
import urllib.error
import urllib.parse
import urllib.request

import msgpack

from keras_mt3.errors import PresetError
from keras_mt3.utils import atomic_write, progress_bar

CHECKPOINT_DIR_ENV = "KERAS_MT3_CHECKPOINT_DIR"
CHECKPOINT_URL_ENV = "KERAS_MT3_CHECKPOINT_URL"
CACHE_ENV = "KERAS_MT3_CACHE"
COMPLETE_MARKER = "COMPLETE"
CHECKPOINT_FILE = "checkpoint"

PRESETS = {
    "mt3": {
        "description": (
            "MT3 multi-instrument transcription (Gardner et al., ICLR 2022): 2.048 s segments, "
            "General MIDI programs in 34 groups plus drums, no velocity. 45.9M parameters."
        ),
        "vocabulary": "mt3",
        "backbone": {"vocabulary_size": 1536, "max_encoder_length": 256},
        "checkpoint_url": "https://storage.googleapis.com/mt3/checkpoints/mt3/",
    },
    "ismir2021": {
        "description": (
            "Piano transcription with velocity (Hawthorne et al., ISMIR 2021): 4.096 s "
            "segments, 127 velocity bins, no ties, no instruments."
        ),
        "vocabulary": "ismir2021",
        "backbone": {"vocabulary_size": 1664, "max_encoder_length": 512},
        "checkpoint_url": "https://storage.googleapis.com/mt3/checkpoints/ismir2021/",
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
            ($KERAS_MT3_CHECKPOINT_URL also overrides it).

    Raises:
        PresetError: unknown preset, a directory without a `checkpoint` file, or a failed
            download.
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
    files = download_checkpoint(url, directory, progress=progress)
    _write_marker(directory, url, files)
    return directory


def _names_a_directory(preset_or_path):
    # A bare preset name wins over a same-named folder in the working directory.
    if isinstance(preset_or_path, str) and preset_or_path in PRESETS:
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


def _write_marker(directory, url, files):
    with atomic_write(directory / COMPLETE_MARKER, "w") as handle:
        json.dump({"source": url, "files": sorted(files)}, handle, indent=1)


# ---- download ------------------------------------------------------------------------------

DOWNLOAD_TIMEOUT_SECONDS = 60
_COPY_BUFFER_BYTES = 1 << 20
_NETWORK_ERRORS = (urllib.error.URLError, ConnectionError, TimeoutError, http.client.HTTPException)


def download_checkpoint(base_url, directory, progress=None):
    """Mirror the T5X checkpoint at `base_url` into `directory`; returns the relative file names.

    The `checkpoint` file comes first: its TensorStore specs name the zarr folders, each of
    which needs its `.zarray` and then the chunk files that metadata implies. Every file is
    written to `NAME.part` and renamed when complete, so an interrupted download resumes by
    skipping the files already there.
    """
    base_url = base_url if base_url.endswith("/") else base_url + "/"
    directory = pathlib.Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    fetched = []
    received = 0
    with progress_bar(desc="downloading checkpoint", unit="file", enabled=progress) as bar:

        def fetch(relative_name):
            nonlocal received
            received += _fetch_file(base_url, directory, relative_name)
            fetched.append(relative_name)
            bar.set_postfix_str(f"{received / 1e6:.1f} MB", refresh=False)
            bar.update(1)

        fetch(CHECKPOINT_FILE)
        folders = zarr_folders(directory / CHECKPOINT_FILE)
        bar.total = 1 + 2 * len(folders)  # at least `.zarray` + one chunk each
        bar.refresh()
        for folder in folders:
            fetch(f"{folder}/.zarray")
            chunk_keys = _chunk_keys(directory / folder / ".zarray")
            bar.total += len(chunk_keys) - 1
            for key in chunk_keys:
                fetch(f"{folder}/{key}")
    return fetched


def zarr_folders(checkpoint_file):
    """Names of the zarr folders a flax msgpack `checkpoint` file refers to, in tree order."""
    try:
        # Arrays are msgpack extension objects; the download needs none of them.
        tree = msgpack.unpackb(
            pathlib.Path(checkpoint_file).read_bytes(),
            ext_hook=lambda code, data: None,
            raw=False,
            strict_map_key=False,
        )
    except (ValueError, msgpack.UnpackException) as error:
        raise PresetError(
            f"{checkpoint_file} is not a readable T5X checkpoint file ({error}). Delete it and "
            "download again."
        ) from error
    folders = []
    pending = [tree]
    while pending:
        node = pending.pop()
        if isinstance(node, dict) and isinstance(node.get("kvstore"), dict):
            folders.append(_safe_folder_name(node["kvstore"].get("path", ""), checkpoint_file))
        elif isinstance(node, dict):
            pending.extend(reversed(list(node.values())))
        elif isinstance(node, (list, tuple)):
            pending.extend(reversed(node))
    return list(dict.fromkeys(folders))


def _safe_folder_name(kvstore_path, checkpoint_file):
    # Paths are relative to the checkpoint directory (a copied checkpoint may carry absolute
    # ones: keep the last component). Never let a file's contents steer writes elsewhere.
    name = str(kvstore_path).rstrip("/").rsplit("/", 1)[-1]
    if name in ("", ".", "..") or "\\" in name:
        raise PresetError(
            f"{checkpoint_file} names an invalid zarr folder {kvstore_path!r}; the file is "
            "corrupt. Delete it and download again."
        )
    return name


def _chunk_keys(zarray_path):
    try:
        metadata = json.loads(zarray_path.read_text())
        shape, chunks = metadata["shape"], metadata["chunks"]
        separator = metadata.get("dimension_separator") or "."
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise PresetError(
            f"{zarray_path} is not valid zarr metadata ({error}). Delete it and download again."
        ) from error
    grid = [range(math.ceil(size / chunk)) for size, chunk in zip(shape, chunks)]
    if not grid:
        return ["0"]
    keys = [""]
    for axis in grid:
        keys = [f"{key}{separator if key else ''}{i}" for key in keys for i in axis]
    return keys


def _fetch_file(base_url, directory, relative_name):
    """Download one file unless it is already there; returns the bytes fetched.

    The data goes to `NAME.part`, renamed only once complete: a file that exists is whole.
    """
    destination = directory / relative_name
    if destination.is_file():
        return 0
    destination.parent.mkdir(parents=True, exist_ok=True)
    url = urllib.parse.urljoin(base_url, urllib.parse.quote(relative_name))
    partial = destination.with_name(destination.name + ".part")
    received = 0
    try:
        with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_SECONDS) as response:
            expected = response.headers.get("Content-Length")
            with open(partial, "wb") as handle:
                while chunk := response.read(_COPY_BUFFER_BYTES):
                    handle.write(chunk)
                    received += len(chunk)
                handle.flush()
                os.fsync(handle.fileno())
    except urllib.error.HTTPError as error:
        raise PresetError(
            f"downloading {url} failed: the server answered HTTP {error.code} {error.reason}. "
            + _local_copy_hint(base_url)
        ) from error
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
    if expected is not None and received != int(expected):
        raise PresetError(
            f"downloading {url} stopped early ({received} of {expected} bytes). Run again to "
            "resume. " + _local_copy_hint(base_url)
        )
    os.replace(partial, destination)
    return received


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
