"""Small helpers shared across the package: atomic file output and progress bars."""

import contextlib
import os
import pathlib
import sys
import tempfile


@contextlib.contextmanager
def atomic_write(path, mode="wb"):
    """Open a temporary file beside `path`; it replaces `path` only if the block succeeds.

    An existing file at `path` is therefore never left half-written: on error it is untouched.
    """
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        # mkstemp creates the file private (0600); give it the permissions open() would.
        os.chmod(tmp_name, 0o666 & ~_current_umask())
        with os.fdopen(fd, mode) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise


def _current_umask():
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
