"""Generic dataset: a folder of `x.wav` (or .flac, .mp3, ...) files, each beside `x.mid`.

Audio and MIDI files are paired by their path without the extension. A file without a partner
still becomes a pair, so that training reports it (missing MIDI / missing audio) instead of
silently ignoring it. If the folder's top level holds `train/`, `validation/` or `test/`
sub-folders, the pairs under them get that split.
"""

import pathlib

from keras_mt3.constants import MIDI_EXTENSIONS
from keras_mt3.data.pairs import TranscriptionPair
from keras_mt3.errors import KerasMT3Error
from keras_mt3.preprocessing.audio_io import AUDIO_EXTENSIONS
SPLIT_FOLDERS = {
    "train": "train",
    "validation": "validation",
    "valid": "validation",
    "test": "test",
}


def folder_pairs(root, dataset=None, recursive=True):
    """Pairs of every audio/MIDI file under `root`, sorted by path.

    Args:
        root: the folder.
        dataset: the pairs' dataset name (default: the folder's name).
        recursive: also search sub-folders.
    """
    root = pathlib.Path(root).expanduser()
    if not root.is_dir():
        raise KerasMT3Error(f"dataset folder {root} does not exist or is not a folder")
    dataset = dataset or root.name
    files = root.rglob("*") if recursive else root.glob("*")
    audio, midi = {}, {}
    for path in files:
        suffix = path.suffix.lower()
        if not path.is_file() or path.name.startswith("."):
            continue
        if suffix in AUDIO_EXTENSIONS:
            audio.setdefault(path.with_suffix(""), path)
        elif suffix in MIDI_EXTENSIONS:
            midi.setdefault(path.with_suffix(""), path)
    pairs = []
    for stem in sorted(set(audio) | set(midi)):
        relative = stem.relative_to(root)
        pairs.append(
            TranscriptionPair(
                name=f"{dataset}/{relative.as_posix()}",
                audio=audio.get(stem, stem.with_suffix(".wav")),
                notes=midi.get(stem, stem.with_suffix(".mid")),
                dataset=dataset,
                split=_split_of(relative),
            )
        )
    return pairs


def _split_of(relative):
    if len(relative.parts) < 2:
        return None
    return SPLIT_FOLDERS.get(relative.parts[0].lower())
