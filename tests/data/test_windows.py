import numpy as np
import pytest

from keras_mt3.data.windows import (
    consecutive_windows,
    random_window,
    window_samples,
    window_start_time,
)

pytestmark = pytest.mark.backend_independent


def test_edge_windows_cover_every_frame_equally_often_and_clip_to_the_clip():
    rng = np.random.default_rng(0)
    num_frames, window = 300, 256
    coverage = np.zeros(num_frames)
    lengths = set()
    for _ in range(4000):
        start, end = random_window(num_frames, window, rng, edge_windows=True)
        assert 0 <= start < end <= num_frames and end - start <= window
        coverage[start:end] += 1
        lengths.add(end - start)
    # Starts are uniform on [-(window - 1), num_frames): each frame is in a window with
    # probability window / (num_frames + window - 1), the first and last included.
    expected = 4000 * window / (num_frames + window - 1)
    assert np.all(np.abs(coverage - expected) < 0.1 * expected)
    assert min(lengths) < 20 and window in lengths  # short edge windows and full ones


def test_inner_windows_are_full_and_start_at_any_frame():
    rng = np.random.default_rng(1)
    starts = set()
    for _ in range(2000):
        start, end = random_window(300, 256, rng, edge_windows=False)
        assert end - start == 256
        starts.add(start)
    assert starts == set(range(300 - 256 + 1))
    # A clip shorter than the window gives the whole clip.
    assert random_window(100, 256, rng, edge_windows=False) == (0, 100)


def test_consecutive_windows_tile_the_clip_like_inference_segments():
    assert consecutive_windows(600, 256) == [(0, 256), (256, 512), (512, 600)]
    assert consecutive_windows(256, 256) == [(0, 256)]


def test_window_samples_copy_the_window_and_zero_the_rest():
    audio = np.arange(1000, dtype=np.float32)
    samples = window_samples(audio, 2, 10, 16)
    assert samples.shape == (16 * 128,)
    # Frames 2..7 exist (audio ends inside frame 7); later samples are zero padding.
    np.testing.assert_array_equal(samples[: 1000 - 256], audio[256:])
    assert not samples[1000 - 256 :].any()
    with pytest.raises(ValueError):
        window_samples(audio, 0, 20, 16)


def test_window_start_time_rounds_down_to_10_ms_exactly():
    assert window_start_time(0) == 0.0
    assert window_start_time(256) == 2.04  # 2.048 s
    assert window_start_time(3) == 0.02  # 24 ms
    assert window_start_time(110) == 0.88  # exactly 0.88 s stays 0.88
    assert window_start_time(1280) == 10.24
