"""Small helpers shared across the package: safe file output and progress bars."""

import contextlib
import os
import pathlib
import shutil
import sys
import tempfile
from typing import Collection, Iterable, Optional, Union


@contextlib.contextmanager
def atomic_write(path, mode="wb"):
    """Open a temporary file beside `path`; it replaces `path` only if the block succeeds.

    An existing file at `path` is therefore never left half-written: on error it is untouched.

    Raises:
        OutputError: the file cannot be written there (a file where a folder should be, a
            folder where the file should be, no permission, a full disk).
    """
    path = pathlib.Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as error:
        raise _output_error(path, error) from error
    try:
        # mkstemp creates the file private (0600); give it the permissions open() would.
        os.chmod(tmp_name, 0o666 & ~current_umask())
        with os.fdopen(fd, mode) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException as error:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        if isinstance(error, OSError):
            raise _output_error(path, error) from error
        raise


@contextlib.contextmanager
def atomic_folder(path, before_replace=None):
    """A temporary folder beside `path` that becomes `path` if the block succeeds.

    Readers never see a half-written folder: it appears (or replaces the old one) by a rename.
    `before_replace()`, when given, runs just before that, so that a check made at the start
    of a long job is made again against what is there now. On error nothing changes.

    Raises:
        OutputError: the folder cannot be created beside `path`.
    """
    from keras_mt3.errors import OutputError

    path = pathlib.Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        staging = pathlib.Path(
            tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        )
    except OSError as error:
        raise OutputError(f"cannot create {path}: {error.strerror or error}") from error
    try:
        yield staging
        # mkdtemp made it private (0700); other accounts (TF Serving) must be able to read it.
        os.chmod(staging, 0o777 & ~current_umask())
        if before_replace is not None:
            before_replace()
        try:
            os.replace(staging, path)  # absent, or an empty folder
        except OSError:
            if not path.is_dir():
                raise
            retired = pathlib.Path(
                tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=path.parent)
            )
            os.replace(path, retired / path.name)
            os.replace(staging, path)
            shutil.rmtree(retired, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def check_output_file(path):
    """Raises `OutputError` if a file could not be written at `path`; creates nothing.

    Commands call it before their long work, so that a bad output path fails at once rather
    than after the results are computed.
    """
    from keras_mt3.errors import OutputError

    path = pathlib.Path(path)
    if path.is_dir():
        raise OutputError(f"cannot write {path}: it is a folder; give the name of a file")
    check_output_parent(path)


def check_output_parent(path):
    """Raises `OutputError` unless the folder `path` goes in exists, or can be created, and is
    writable; creates nothing."""
    from keras_mt3.errors import OutputError

    for ancestor in pathlib.Path(path).parents:
        if ancestor.is_dir():
            if not os.access(ancestor, os.W_OK | os.X_OK):
                raise OutputError(f"cannot write {path}: no permission to write in {ancestor}")
            return
        if ancestor.exists() or ancestor.is_symlink():
            raise OutputError(f"cannot write {path}: {ancestor} is a file, not a folder")


def expand_inputs(
    paths: Iterable[Union[str, os.PathLike]], extensions: Collection[str]
) -> list[pathlib.Path]:
    """Files as given, plus the files ending in one of `extensions` (sorted, recursive) of
    every folder given.

    Paths that do not exist are returned too, so the caller reports them one by one. A file
    reached twice (given, and inside a folder given) is listed once.
    """
    return [path for path, _ in expand_inputs_with_roots(paths, extensions)]


def expand_inputs_with_roots(
    paths: Iterable[Union[str, os.PathLike]], extensions: Collection[str]
) -> list[tuple[pathlib.Path, Optional[pathlib.Path]]]:
    """`(file, root)` pairs of `expand_inputs`: root is the folder given that the file was found
    in, or None for a file given directly (what `unique_output_names` mirrors)."""
    found, seen = [], set()
    for raw in paths:
        path = pathlib.Path(raw)
        if path.is_dir():
            matches = sorted(
                p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in extensions
            )
            pairs = [(match, path) for match in matches]
        else:
            pairs = [(path, None)]
        for file, root in pairs:
            key = os.path.realpath(file)
            if key not in seen:
                seen.add(key)
                found.append((file, root))
    return found


def unique_output_names(sources, suffix, roots=None):
    """One relative output path per source file, ending in `suffix`, no two the same.

    A source found inside a folder the user gave (its entry in `roots`; None for a file given
    directly) keeps its subfolders below that folder; others are named after the file. Sources
    that would still share a name keep the folders that tell them apart (`a/song.wav` and
    `b/song.wav` give `a/song.mid` and `b/song.mid`), and where only the extension differs, it
    stays too (`song.wav.mid`, `song.flac.mid`). Names differing only in case count as the
    same, as they are on macOS and Windows.

    Raises:
        OutputError: two sources cannot be told apart (the same path given twice).
    """
    from keras_mt3.errors import OutputError

    sources = [pathlib.Path(os.path.abspath(source)) for source in sources]
    roots = [None] * len(sources) if roots is None else roots
    stems = [
        pathlib.Path(source.name) if root is None else source.relative_to(os.path.abspath(root))
        for source, root in zip(sources, roots)
    ]
    for group in _clashes(stem.with_suffix(suffix) for stem in stems):
        shared = os.path.commonpath([sources[i].parent for i in group])
        for i in group:
            stems[i] = sources[i].relative_to(shared)
    names = [stem.with_suffix(suffix) for stem in stems]
    for group in _clashes(names):
        for i in group:
            names[i] = stems[i].with_name(stems[i].name + suffix)
    clashes = _clashes(names)
    if clashes:
        listed = "; ".join(" and ".join(str(sources[i]) for i in group) for group in clashes)
        raise OutputError(f"these inputs would write the same output file: {listed}")
    return names


def _clashes(names):
    """Index groups of `names` that are equal ignoring case."""
    groups = {}
    for index, name in enumerate(names):
        groups.setdefault(str(name).casefold(), []).append(index)
    return [group for group in groups.values() if len(group) > 1]


def _output_error(path, error):
    """The clearest `OutputError` for an OSError met while writing `path`."""
    from keras_mt3.errors import OutputError

    try:
        check_output_file(path)
    except OutputError as specific:
        return specific
    return OutputError(f"cannot write {path}: {error.strerror or error}")


def current_umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def progress_bar(total=None, desc=None, unit="it", enabled=None, **kwargs):
    """A tqdm bar on stderr; silent when `enabled` is False (default: only on a terminal)."""
    from tqdm.auto import tqdm

    if enabled is None:
        enabled = sys.stderr.isatty()
    return tqdm(total=total, desc=desc, unit=unit, disable=not enabled, file=sys.stderr, **kwargs)


def lazy_module_getattr(module_name, names_to_modules):
    """A module `__getattr__` that imports each name from its module on first use.

    Keeps `import keras_mt3` (and its subpackages) cheap and Keras-backend neutral until a name
    that needs Keras or TensorFlow is actually used.
    """
    import importlib

    def __getattr__(name):
        if name not in names_to_modules:
            raise AttributeError(f"module {module_name!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(names_to_modules[name]), name)
        setattr(sys.modules[module_name], name, value)
        return value

    return __getattr__
