"""The tf.data training pipeline: (audio, notes) pairs -> batches for `model.fit`.

Per pair visit a `ClipStore` supplies the loaded clip; a random frame window is cut from it
(any 8 ms offset, MT3's `select_random_chunk`), its targets are read off the encoded notes
(tie section, program granularity, EOS) and padded to a fixed length. Batches then get the
log-mel spectrogram in TensorFlow ops (`tf_log_mel`, identical to the model's inference
frontend) and the decoder inputs (targets shifted right behind a 0 BOS):

    x = {"encoder_inputs": [B, frames, 512] float32, "decoder_token_ids": [B, L] int32}
    y = targets [B, L] int32 (0 = padding, not scored by `MT3Loss`)

The Python parts run inside `tf.numpy_function`, so the pipeline is plain tf.data and feeds
`fit` under any Keras backend.
"""

import dataclasses
from typing import Any, Optional

import numpy as np
import tensorflow as tf

from keras_mt3.codec.vocabulary import PROGRAM_GRANULARITIES, get_vocabulary
from keras_mt3.constants import HOP_LENGTH, MAX_DECODE_LENGTH
from keras_mt3.data import loading
from keras_mt3.data.clip_store import TRIM_AS_MT3, ClipStore, check_trim_overlaps
from keras_mt3.data.mixture import MT3_MIXING_TEMPERATURE, mixture_rates
from keras_mt3.data.skip_log import SkipLog
from keras_mt3.data.window_examples import window_example
from keras_mt3.data.windows import consecutive_windows, random_window
from keras_mt3.errors import KerasMT3Error
from keras_mt3.tf_ops.log_mel_spectrogram import tf_log_mel

AUTOTUNE = tf.data.AUTOTUNE
RANDOM_WINDOWS = "random"
CONSECUTIVE_WINDOWS = "consecutive"


@dataclasses.dataclass(frozen=True)
class TrainingDataConfig:
    """How training examples are cut, encoded and batched.

    Attributes:
        vocabulary: vocabulary name or `VocabularyConfig` of the targets (default `"mt3"`).
        program_granularity: `"flat"`, `"midi_class"` or `"full"`; None keeps the vocabulary's.
        window_frames: frames per example (default: the vocabulary's `input_frames`, 256 for
            mt3, i.e. 2.048 s).
        target_length: targets are padded (or cut) to this many tokens (MT3: 1024).
        batch_size: examples per batch.
        edge_windows: also draw windows hanging over a clip's start or end (clipped, shorter),
            as MT3 does; False draws only full windows.
        windows_per_visit: windows cut each time a clip is visited (more than 1 amortizes
            loading when nothing is cached).
        shuffle_buffer: windows shuffled after cutting (0 or 1: no extra shuffle; visits are
            already in random order).
        cache: `"memory"`, a directory for an on-disk cache, or None (see `ClipStore`).
        mixing_temperature: T of the dataset mixture (rate ∝ size ** (1 / T)).
        max_midi_overrun_seconds: skip pairs whose notes run longer past the audio's end.
        trim_overlaps: `"mt3"` (default) trims overlapping repeats of a note where MT3 does
            (Slakh training tracks); `"all"` trims every dataset (see `ClipStore`).
        stale_final_ties: True (default, MT3): windows starting after a clip's last event get
            MT3's stale tie section; False: the notes actually sounding (see `ClipStore`).
        num_parallel_calls: clips loaded / windows cut in parallel (AUTOTUNE by default).
        seed: makes the window stream reproducible (None: different every run).
    """

    vocabulary: Any = "mt3"
    program_granularity: Optional[str] = None
    window_frames: Optional[int] = None
    target_length: int = MAX_DECODE_LENGTH
    batch_size: int = 8
    edge_windows: bool = True
    windows_per_visit: int = 1
    shuffle_buffer: int = 64
    cache: Any = "memory"
    mixing_temperature: float = MT3_MIXING_TEMPERATURE
    max_midi_overrun_seconds: float = loading.DEFAULT_MAX_MIDI_OVERRUN_SECONDS
    trim_overlaps: str = TRIM_AS_MT3
    stale_final_ties: bool = True
    num_parallel_calls: int = AUTOTUNE
    seed: Optional[int] = None

    def __post_init__(self):
        granularity = self.program_granularity
        if granularity is not None and granularity not in PROGRAM_GRANULARITIES:
            raise KerasMT3Error(
                f"program_granularity {granularity!r} is unknown; use one of "
                f"{sorted(PROGRAM_GRANULARITIES)}"
            )
        check_trim_overlaps(self.trim_overlaps)
        for name in ("target_length", "batch_size", "windows_per_visit"):
            if getattr(self, name) < 1:
                raise KerasMT3Error(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.window_frames is not None and self.window_frames < 1:
            raise KerasMT3Error(f"window_frames must be at least 1, got {self.window_frames}")

    @property
    def target_vocabulary(self):
        """The vocabulary targets are written in, with `program_granularity` applied."""
        vocabulary = get_vocabulary(self.vocabulary)
        if self.program_granularity in (None, vocabulary.program_granularity):
            return vocabulary
        return dataclasses.replace(vocabulary, program_granularity=self.program_granularity)

    @property
    def frames(self):
        return self.window_frames or self.target_vocabulary.input_frames


def window_dataset(pairs, config, *, windows=RANDOM_WINDOWS, skip_log=None, store=None, seed=None):
    """Unbatched windows of `pairs` as a tf.data.Dataset of dicts.

    Keys: `samples` [frames * 128] float32, `num_frames` int32, `targets` [target_length]
    int32, `start_frame` int32 and `pair_index` int64 (into `pairs`).

    `windows="random"`: an endless stream; every pass visits each pair once in a new random
    order and cuts `windows_per_visit` random windows. `windows="consecutive"`: each pair once,
    in order, cut into back-to-back windows as at inference (for validation). Skipped pairs
    yield nothing and are counted in `skip_log`.
    """
    if windows not in (RANDOM_WINDOWS, CONSECUTIVE_WINDOWS):
        raise KerasMT3Error(f"windows must be {RANDOM_WINDOWS!r} or {CONSECUTIVE_WINDOWS!r}")
    pairs = list(pairs)
    if not pairs:
        raise KerasMT3Error("no training pairs given; check the dataset path and split")
    if store is None:
        store = ClipStore(
            pairs,
            config.target_vocabulary,
            cache=config.cache,
            skip_log=skip_log,
            max_midi_overrun_seconds=config.max_midi_overrun_seconds,
            trim_overlaps=config.trim_overlaps,
            stale_final_ties=config.stale_final_ties,
        )
    seed = config.seed if seed is None else seed
    cut = _window_cutter(store, config, windows)

    if windows == RANDOM_WINDOWS:
        indices = _shuffled_passes(len(pairs), seed)
    else:
        indices = tf.data.Dataset.range(len(pairs))
    # Seeded, every iteration of the dataset yields the same stream: Keras reads one batch
    # to build the model before training starts again from a fresh iterator, and a resumed
    # run relies on the stream continuing where it stopped.
    element_seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=seed is None)
    output_types = (tf.float32, tf.int32, tf.int32, tf.int32, tf.int64)
    dataset = tf.data.Dataset.zip(indices, element_seeds).map(
        lambda index, element_seed: tf.numpy_function(
            cut, [index, element_seed], output_types, stateful=False
        ),
        num_parallel_calls=config.num_parallel_calls,
        deterministic=seed is not None or windows == CONSECUTIVE_WINDOWS,
    )
    dataset = dataset.map(_as_window_dict(config.frames, config.target_length)).unbatch()
    if windows == RANDOM_WINDOWS and config.shuffle_buffer > 1:
        dataset = dataset.shuffle(
            config.shuffle_buffer, seed=seed, reshuffle_each_iteration=seed is None
        )
    return dataset


def training_dataset(sources, config, *, skip_log=None, sizes=None, start_batch=0):
    """Endless batches `(x, y)` of random windows for `model.fit` (give it `steps_per_epoch`).

    Args:
        sources: a list of `TranscriptionPair`, or `{dataset name: list of pairs}` to train on
            a temperature-weighted mixture (`config.mixing_temperature`).
        config: a `TrainingDataConfig`.
        skip_log: a `SkipLog` that counts skipped pairs (read it during or after training).
        sizes: `{dataset name: size}` for the mixture rates (default: number of pairs).
        start_batch: index of the first batch given (to resume a seeded run where it stopped;
            the skipped windows are still cut, but get no log-mel).
    """
    skip_log = SkipLog() if skip_log is None else skip_log
    if isinstance(sources, dict):
        names = [name for name, pairs in sources.items() if pairs]
        if not names:
            raise KerasMT3Error("every dataset of the mixture is empty; check paths and splits")
        rates = mixture_rates(
            {name: (sizes or {}).get(name, len(sources[name])) for name in names},
            config.mixing_temperature,
        )
        streams = [
            window_dataset(sources[name], config, skip_log=skip_log, seed=_offset(config.seed, i))
            for i, name in enumerate(names)
        ]
        windows = tf.data.Dataset.sample_from_datasets(
            streams,
            weights=[rates[name] for name in names],
            seed=config.seed,
            rerandomize_each_iteration=config.seed is None,
        )
    else:
        windows = window_dataset(sources, config, skip_log=skip_log)
    windows = windows.skip(start_batch * config.batch_size)
    return batch_for_model(windows, config.batch_size, drop_remainder=True)


def evaluation_dataset(pairs, config, *, skip_log=None):
    """Finite batches `(x, y)`: every pair cut into consecutive windows once (for validation)."""
    windows = window_dataset(pairs, config, windows=CONSECUTIVE_WINDOWS, skip_log=skip_log)
    return batch_for_model(windows, config.batch_size, drop_remainder=False)


def batch_for_model(windows, batch_size, drop_remainder=True):
    """Batches window dicts and maps them to `(x, y)` for `fit` / `evaluate`."""
    batches = windows.batch(batch_size, drop_remainder=drop_remainder)
    return batches.map(to_model_inputs, num_parallel_calls=AUTOTUNE).prefetch(AUTOTUNE)


def to_model_inputs(batch):
    """A batch of window dicts -> `({"encoder_inputs", "decoder_token_ids"}, targets)`."""
    targets = batch["targets"]
    decoder_token_ids = tf.pad(targets[:, :-1], [[0, 0], [1, 0]])  # shift right, 0 = BOS
    inputs = {
        "encoder_inputs": tf_log_mel(batch["samples"], batch["num_frames"]),
        "decoder_token_ids": decoder_token_ids,
    }
    return inputs, targets


def _shuffled_passes(count, seed):
    """Endless visits of `range(count)`, every pass in a new random order. Seeded, pass k's
    order depends on `(seed, k)` alone, however often the dataset was iterated before."""
    if seed is None:
        return tf.data.Dataset.range(count).shuffle(count, reshuffle_each_iteration=True).repeat()
    visits = tf.range(count, dtype=tf.int64)
    return (
        tf.data.Dataset.counter()
        .map(lambda k: tf.random.experimental.stateless_shuffle(visits, seed=[seed, k]))
        .unbatch()
    )


def _window_cutter(store, config, windows):
    frames, target_length = config.frames, config.target_length
    empty = (
        np.zeros((0, frames * HOP_LENGTH), np.float32),
        np.zeros((0,), np.int32),
        np.zeros((0, target_length), np.int32),
        np.zeros((0,), np.int32),
        np.zeros((0,), np.int64),
    )

    def cut(index, element_seed):
        index = int(index)
        clip = store.get(index)
        if clip is None:
            return empty
        if windows == RANDOM_WINDOWS:
            rng = np.random.default_rng(int(element_seed) % 2**64)
            ranges = [
                random_window(clip.num_frames, frames, rng, config.edge_windows)
                for _ in range(config.windows_per_visit)
            ]
        else:
            ranges = consecutive_windows(clip.num_frames, frames)
        examples = [
            window_example(clip, start, end, frames, target_length) for start, end in ranges
        ]
        return (
            np.stack([example.samples for example in examples]),
            np.array([example.num_frames for example in examples], np.int32),
            np.stack([example.targets for example in examples]),
            np.array([example.start_frame for example in examples], np.int32),
            np.full(len(examples), index, np.int64),
        )

    return cut


def _as_window_dict(frames, target_length):
    def as_dict(samples, num_frames, targets, start_frame, pair_index):
        return {
            "samples": tf.ensure_shape(samples, [None, frames * HOP_LENGTH]),
            "num_frames": tf.ensure_shape(num_frames, [None]),
            "targets": tf.ensure_shape(targets, [None, target_length]),
            "start_frame": tf.ensure_shape(start_frame, [None]),
            "pair_index": tf.ensure_shape(pair_index, [None]),
        }

    return as_dict


def _offset(seed, offset):
    return None if seed is None else seed + offset
