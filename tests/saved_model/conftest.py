"""Fixtures of the export tests: a tiny model exported once per session, the C++ harness.

Exporting builds TensorFlow graphs, so these fixtures skip unless KERAS_BACKEND=tensorflow
(the export from other backends has its own test, which goes through a child process).
"""

import hashlib
import os
import pathlib
import shutil
import subprocess

import pytest
from export_support import REPO_ROOT
from export_support import TINY_MAX_AUDIO_SECONDS
from export_support import build_tiny_backbone
from export_support import tiny_transcriber

HARNESS_SOURCE = REPO_ROOT / "serving" / "cpp" / "saved_model_harness.cc"


@pytest.fixture(scope="session")
def tensorflow_backend():
    import keras

    if keras.backend.backend() != "tensorflow":
        pytest.skip(
            "SavedModel export builds TensorFlow graphs: run with KERAS_BACKEND=tensorflow "
            "(other backends are covered by test_export_from_other_backends.py)"
        )


@pytest.fixture(scope="session")
def tiny_backbone(tensorflow_backend):
    return build_tiny_backbone()


@pytest.fixture(scope="session")
def tiny_saved_model(tiny_backbone, tmp_path_factory):
    """`(path, backbone)`: the tiny model exported once, all four signatures, any batch."""
    from keras_mt3.saved_model import export

    path = tmp_path_factory.mktemp("tiny_export") / "mt3_tiny" / "1"
    export(
        tiny_transcriber(tiny_backbone),
        path,
        max_audio_seconds=TINY_MAX_AUDIO_SECONDS,
        progress=False,
    )
    return path


@pytest.fixture(scope="session")
def serving_harness(tensorflow_backend):
    """Path of the compiled C++ harness (built once, cached under the temp folder by hash)."""
    compiler = shutil.which(os.environ.get("CXX", "g++")) or shutil.which("c++")
    if compiler is None:
        pytest.skip("no C++ compiler (g++/c++) found to build serving/cpp/saved_model_harness.cc")
    import tensorflow as tf

    compile_flags = tf.sysconfig.get_compile_flags()
    library_dir = pathlib.Path(tf.sysconfig.get_lib())
    link_flags = [
        f"-L{library_dir}",
        "-l:libtensorflow_cc.so.2",
        "-l:libtensorflow_framework.so.2",
        f"-Wl,-rpath,{library_dir}",
    ]
    key = hashlib.sha256(
        HARNESS_SOURCE.read_bytes() + " ".join(compile_flags + link_flags).encode()
    ).hexdigest()[:16]
    cache = pathlib.Path(os.environ.get("TMPDIR", "/tmp")) / "keras_mt3_harness"
    binary = cache / f"saved_model_harness-{key}"
    if not binary.is_file():
        cache.mkdir(parents=True, exist_ok=True)
        staging = binary.with_suffix(f".{os.getpid()}.tmp")
        command = [compiler, "-O0", *compile_flags, str(HARNESS_SOURCE), "-o", str(staging),
                   *link_flags, "-w"]
        result = subprocess.run(command, capture_output=True, text=True)
        assert result.returncode == 0, f"building the C++ harness failed:\n{result.stderr[-4000:]}"
        os.replace(staging, binary)
    return binary
