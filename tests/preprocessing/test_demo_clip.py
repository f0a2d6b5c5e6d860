import numpy as np
import pytest
import soundfile

from keras_mt3.demo import demo_clip_path
from keras_mt3.preprocessing.audio_io import load_audio

pytestmark = pytest.mark.backend_independent


def test_demo_clip_is_bundled_and_small():
    path = demo_clip_path()
    assert path.is_file() and path.suffix == ".flac"
    assert path.stat().st_size < 1_000_000
    info = soundfile.info(path)
    assert (info.samplerate, info.channels, info.frames) == (16000, 1, 336_000)


def test_demo_clip_is_the_reference_chorale_losslessly(reference_dir):
    np.testing.assert_array_equal(
        load_audio(demo_clip_path()), load_audio(reference_dir / "piano_chorale.wav")
    )
