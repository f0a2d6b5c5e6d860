"""The (audio, MIDI) pairs a run trains and validates on, from the datasets it names."""

from __future__ import annotations

from typing import TYPE_CHECKING

from keras_mt3.errors import KerasMT3Error
from keras_mt3.training.config import TrainingConfig

if TYPE_CHECKING:
    from keras_mt3.data.pairs import TranscriptionPair

# The rendered clips of `TrainingConfig.synthetic`: a mix of instruments and drums, enough
# for a smoke test of the whole run.
SYNTHETIC_CLIP = dict(
    duration=8.0,
    programs=(0, 24, 33, 40, 73),
    drum_pitches=(36, 38, 42),
    drum_hits_per_second=1.0,
)


def collect_pairs(
    config: TrainingConfig,
) -> tuple[dict[str, list[TranscriptionPair]], list[TranscriptionPair]]:
    """`({dataset: training pairs}, validation pairs)` from the datasets `config` names.

    Raises:
        KerasMT3Error: no pair falls in `config.split`.
    """
    from keras_mt3.data import guitarset, maestro, slakh, urmp
    from keras_mt3.data.folder_dataset import folder_pairs
    from keras_mt3.data.synthetic import synthetic_pairs

    listed = {}
    for folder in config.data:
        pairs = folder_pairs(folder)
        listed.setdefault(pairs[0].dataset if pairs else str(folder), []).extend(pairs)
    readers = {
        "maestro": maestro.maestro_pairs,
        "slakh": slakh.slakh_pairs,
        "guitarset": guitarset.guitarset_pairs,
        "urmp": urmp.urmp_pairs,
    }
    for name, reader in readers.items():
        if getattr(config, name):
            listed[name] = reader(getattr(config, name))
    if config.synthetic:
        listed["synthetic"] = synthetic_pairs(
            config.synthetic, seed=config.seed or 0, **SYNTHETIC_CLIP
        )
    train, validation = {}, []
    for name, pairs in listed.items():
        # Datasets without splits train on everything.
        has_splits = any(pair.split for pair in pairs)
        train[name] = [p for p in pairs if not has_splits or p.split == config.split]
        validation += [p for p in pairs if has_splits and p.split == config.validation_split]
    train = {name: pairs for name, pairs in train.items() if pairs}
    if not train:
        raise KerasMT3Error(
            f"no training pairs found in split {config.split!r}; check the dataset folders "
            "and the split"
        )
    return train, validation
