"""TensorFlow's start-up log lines, held to TF_CPP_MIN_LOG_LEVEL and printed once.

TensorFlow 2.21's C++ libraries log through absl before absl logging is initialised, and absl
then writes every message to stderr whatever TF_CPP_MIN_LOG_LEVEL says; two of TensorFlow's
shared libraries carry their own copy of the same start-up code, so each line appears twice.
On a machine without a CUDA driver the first device listing also logs a failed cuInit as an
error, right after TensorFlow said that it found no driver and will not use a GPU.

These lines go to file descriptor 2 from C++, so `quiet_tensorflow_startup()` captures that
descriptor while TensorFlow is imported and its devices are first listed, then writes back
what TensorFlow's own level lets through, each line once. Everything else written meanwhile
(Python warnings, errors, tracebacks) is written back unchanged.
"""

import contextlib
import importlib.abc
import os
import re
import sys
import tempfile

_ABSL_LINE = re.compile(r"^([IWEF])\d{4} [\d:.]+\s+\d+ (\S+:\d+)\] (.*)$")
_SEVERITIES = "IWEF"  # the order of TF_CPP_MIN_LOG_LEVEL's 0..3
_ABSL_BANNER = "WARNING: All log messages before absl::InitializeLog() is called are written"
_NO_CUDA_DRIVER = "Could not find cuda drivers on your machine"
_NO_DRIVER_CUINIT = "failed call to cuInit"


@contextlib.contextmanager
def quiet_tensorflow_startup():
    """Within the block, TensorFlow's first import shows only its start-up lines at or above
    TF_CPP_MIN_LOG_LEVEL, once each. Does nothing if TensorFlow is already imported."""
    if "tensorflow" in sys.modules:
        yield
        return
    finder = _TensorFlowFinder()
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        with contextlib.suppress(ValueError):
            sys.meta_path.remove(finder)


def filter_startup_lines(text, min_level):
    """The lines of `text` to show: absl's banner, lines below `min_level` (0 = INFO .. 3 =
    FATAL) and repeats are dropped, and above level 0 the cuInit failure of a machine that
    TensorFlow found no CUDA driver on (it says so as INFO, and uses the CPU)."""
    kept, seen = [], set()
    no_driver = _NO_CUDA_DRIVER in text
    for line in text.splitlines(keepends=True):
        if line.startswith(_ABSL_BANNER):
            continue
        match = _ABSL_LINE.match(line.rstrip("\n"))
        if match:
            severity, location, message = match.groups()
            if _SEVERITIES.index(severity) < min_level or (location, message) in seen:
                continue
            if no_driver and min_level > 0 and message.startswith(_NO_DRIVER_CUINIT):
                continue
            seen.add((location, message))
        kept.append(line)
    return "".join(kept)


def _min_log_level():
    try:
        return int(os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0"))
    except ValueError:
        return 0


class _TensorFlowFinder(importlib.abc.MetaPathFinder):
    """Finds `tensorflow` with the other finders and wraps its loader in the filter."""

    def find_spec(self, name, path=None, target=None):
        if name != "tensorflow":
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                if spec.loader is not None:
                    spec.loader = _FilteredLoader(spec.loader)
                return spec
        return None


class _FilteredLoader(importlib.abc.Loader):
    def __init__(self, loader):
        self._loader = loader

    def __getattr__(self, name):  # resource readers and the like: the real loader's
        return getattr(self._loader, name)

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        module.__loader__ = module.__spec__.loader = self._loader
        with _filtered_stderr_fd():
            self._loader.exec_module(module)
            with contextlib.suppress(Exception):
                module.config.list_physical_devices()  # where cuInit is called, and logs


@contextlib.contextmanager
def _filtered_stderr_fd():
    try:
        saved = os.dup(2)
    except OSError:  # no stderr to filter
        yield
        return
    with tempfile.TemporaryFile() as capture:
        _flush_stderr()
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            _flush_stderr()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            text = capture.read().decode("utf-8", errors="replace")
            shown = filter_startup_lines(text, _min_log_level())
            if shown:
                os.write(2, shown.encode("utf-8"))


def _flush_stderr():
    with contextlib.suppress(Exception):
        sys.stderr.flush()
