"""TensorFlow's start-up lines are held to TF_CPP_MIN_LOG_LEVEL, once each; the rest stays."""

import pytest

from keras_mt3.tensorflow_logs import filter_startup_lines

pytestmark = pytest.mark.backend_independent

# What TensorFlow 2.21 wrote to stderr while it was imported and its devices listed, on a
# machine without a CUDA driver (oneDNN sentence shortened), then a Python warning.
BANNER = "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
ONEDNN = "I0000 00:00:1796159476.032415   19774 port.cc:153] oneDNN custom operations are on.\n"
NO_DRIVER = (
    "I0000 00:00:1796159476.032838   19774 cudart_stub.cc:31] Could not find cuda drivers on "
    "your machine, GPU will not be used.\n"
)
CUINIT = (
    "E0000 00:00:1796159483.260008   19774 cuda_platform.cc:52] failed call to cuInit: INTERNAL: "
    "CUDA error: Failed call to cuInit: UNKNOWN ERROR (303)\n"
)
PYTHON_WARNING = "/x/y.py:3: UserWarning: something real\n  warn('something real')\n"
STARTUP = BANNER + ONEDNN + NO_DRIVER + BANNER + ONEDNN + NO_DRIVER + CUINIT + PYTHON_WARNING


def with_time(line, seconds):
    return line.replace("1796159476.032415", seconds)


def test_level_two_keeps_only_what_is_not_tensorflow_start_up_noise():
    assert filter_startup_lines(STARTUP, 2) == PYTHON_WARNING


def test_level_zero_shows_every_line_once():
    # The second copy differs only in its time stamp, as the two libraries' copies do.
    text = STARTUP.replace(ONEDNN, with_time(ONEDNN, "1796159480.401617"), 1)
    shown = filter_startup_lines(text, 0)
    assert shown.count("oneDNN custom operations") == 1
    assert shown.count("Could not find cuda drivers") == 1
    assert CUINIT in shown and PYTHON_WARNING in shown and "absl::InitializeLog" not in shown


def test_real_errors_stay():
    # A cuInit failure where TensorFlow did not say it found no driver is a real problem.
    broken_gpu = CUINIT + "F0000 00:00:1.5   19774 gpu.cc:1] the GPU fell off the bus\n"
    assert filter_startup_lines(broken_gpu, 2) == broken_gpu
    assert filter_startup_lines(broken_gpu, 3) == broken_gpu.split("\n", 1)[1]
