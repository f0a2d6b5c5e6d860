"""`keras_mt3.training` as a library: `TrainingConfig` checks its options and shares the data
pipeline's defaults, `collect_pairs` splits the datasets, and `train` resumed from a checkpoint
ends where an uninterrupted run does."""

import dataclasses
import logging

import keras
import numpy as np
import pytest
from weights_files import stored_arrays

from keras_mt3.data.pipeline import TrainingDataConfig
from keras_mt3.errors import KerasMT3Error
from keras_mt3.models.mt3_transcriber import MT3Transcriber
from keras_mt3.training import TrainingConfig, collect_pairs, distribution_scope, train


@pytest.mark.backend_independent
def test_training_config_explains_bad_options():
    for options, message in [
        ({"model_size": "huge"}, "model_size 'huge' is unknown; use one of mt3, small, tiny"),
        ({"optimizer": "sgd"}, "optimizer 'sgd' is unknown"),
        ({"loss_normalization": "mean"}, "loss_normalization 'mean' is unknown"),
        ({"steps": 0}, "steps must be at least 1, got 0"),
        ({"batch_size": -2}, "batch_size must be at least 1, got -2"),
    ]:
        with pytest.raises(KerasMT3Error, match=message):
            TrainingConfig(**options)
    config = TrainingConfig(data="songs", steps=1001, steps_per_epoch=500)
    assert config.data == ["songs"] and config.has_data and config.epochs == 3
    assert not TrainingConfig().has_data and TrainingConfig(urmp="URMP").has_data


@pytest.mark.backend_independent
def test_training_config_has_the_data_pipelines_defaults():
    shared = {field.name for field in dataclasses.fields(TrainingDataConfig)}
    shared &= {field.name for field in dataclasses.fields(TrainingConfig)}
    assert shared >= {"batch_size", "target_length", "window_frames", "cache", "seed"}
    for name in shared - {"vocabulary"}:  # a vocabulary name here, any vocabulary there
        assert getattr(TrainingConfig(), name) == getattr(TrainingDataConfig(), name), name


@pytest.mark.backend_independent
def test_collect_pairs_trains_on_the_split_and_validates_on_the_other(tmp_path):
    songs = tmp_path / "songs"  # listing only: the files are never read here
    for split, names in (("train", ("a", "b")), ("validation", ("c",)), ("test", ("d",))):
        (songs / split).mkdir(parents=True)
        for name in names:
            (songs / split / f"{name}.wav").touch()
            (songs / split / f"{name}.mid").touch()
    train_sources, validation = collect_pairs(TrainingConfig(data=[songs], synthetic=2))
    assert sorted(train_sources) == ["songs", "synthetic"]
    assert [pair.name for pair in train_sources["songs"]] == ["songs/train/a", "songs/train/b"]
    assert len(train_sources["synthetic"]) == 2  # no splits: all of it trains
    assert [pair.name for pair in validation] == ["songs/validation/c"]
    with pytest.raises(KerasMT3Error, match="no training pairs found in split 'dev'"):
        collect_pairs(TrainingConfig(data=[songs], split="dev"))


@pytest.mark.skipif(keras.backend.backend() != "torch", reason="the torch refusal")
def test_data_parallel_under_torch_is_refused_with_what_to_do_instead():
    with pytest.raises(KerasMT3Error, match="torch.distributed"):
        distribution_scope(True)


# The tiny model on two rendered clips, one step per epoch (a checkpoint after every step).
TINY_RUN = dict(
    synthetic=2, model_size="tiny", steps_per_epoch=1, batch_size=2, target_length=32,
    window_frames=32, seed=0, verbose=0, jit_compile=False,
)


@pytest.mark.slow
def test_a_resumed_run_ends_with_the_weights_of_an_uninterrupted_one(tmp_path, caplog):
    whole, split = tmp_path / "whole", tmp_path / "split"
    result = train(TrainingConfig(output=whole, steps=3, **TINY_RUN))
    assert len(result.history.history["loss"]) == 3
    assert result.skip_log.summary() == "no pairs skipped"
    loaded = MT3Transcriber.from_preset(str(result.preset_dir))
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(loaded.backbone.logits_dense.kernel),
        keras.ops.convert_to_numpy(result.model.backbone.logits_dense.kernel),
    )
    train(TrainingConfig(output=split, steps=2, **TINY_RUN))  # stopped after step 2
    caplog.set_level(logging.INFO, logger="keras_mt3.training")
    train(TrainingConfig(output=split, steps=3, resume=True, **TINY_RUN))
    assert "epoch_0002.weights.h5 at step 2" in caplog.text
    # Weights, optimizer state and its step count (dropout is on: its random state too).
    expected = stored_arrays(whole / "checkpoints" / "epoch_0003.weights.h5")
    actual = stored_arrays(split / "checkpoints" / "epoch_0003.weights.h5")
    assert sorted(actual) == sorted(expected) and any("optimizer" in name for name in expected)
    for name, value in expected.items():
        np.testing.assert_allclose(actual[name], value, rtol=1e-5, atol=1e-7, err_msg=name)
    history = (split / "history.csv").read_text()
    assert history == (whole / "history.csv").read_text()

    # A checkpoint from other options is refused with the reason, not half loaded.
    with pytest.raises(KerasMT3Error, match="resume with the optimizer the run started with"):
        train(TrainingConfig(output=split, steps=4, resume=True, optimizer="adamw", **TINY_RUN))
