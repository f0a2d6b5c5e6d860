import pathlib
import subprocess
import sys

import pytest

pytestmark = pytest.mark.backend_independent

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_codec_imports_no_ml_framework():
    code = (
        "import sys, keras_mt3.codec, keras_mt3.codec.tokenize, keras_mt3.codec.detokenize;"
        "print(sorted(m for m in ('keras', 'tensorflow', 'jax', 'torch') if m in sys.modules))"
    )
    output = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO_ROOT
    ).stdout
    assert output.strip() == "[]"


def test_package_exports_the_public_api():
    from keras_mt3.codec import (
        ISMIR2021_VOCABULARY,
        MT3_VOCABULARY,
        DetokenizeResult,
        get_vocabulary,
    )

    assert DetokenizeResult._fields == ("note_sequence", "num_invalid_events", "num_dropped_events")
    assert get_vocabulary("mt3") is MT3_VOCABULARY and MT3_VOCABULARY.name == "mt3"
    assert ISMIR2021_VOCABULARY.name == "ismir2021"
