"""`ClipStore`: each pair loaded, checked and tokenized once, then served from a cache.

Decoding and resampling audio and encoding a whole NoteSequence are the slow parts of making a
training window; cutting a window out of an already encoded clip is cheap. The store therefore
keeps, per pair, the 16 kHz audio and the `EncodedNoteSequence`:

- `cache="memory"` (default): in RAM, for datasets that fit (the synthetic and small sets).
- `cache=<directory>`: on disk, the audio as a `.npy` that is memory-mapped (a random window
  reads only its own 32 KiB), the events as a small `.npz`. Shared between runs and processes;
  entries are keyed by file paths, sizes and modification times, the notes and the vocabulary.
- `cache=None`: nothing is kept; every visit reloads the files.

Pairs that cannot be used are recorded in the `SkipLog` once and never retried (on disk too).

By default the targets are MT3's own: overlapping repeats of a note are trimmed only where MT3
trims them (pairs with `trim_overlaps` set: Slakh training tracks), and tie sections after a
clip's last event keep MT3's stale state. `trim_overlaps="all"` and `stale_final_ties=False`
remove both quirks, for models that need not match the released checkpoint's training data.
"""

import dataclasses
import hashlib
import json
import os
import pathlib
import threading
from typing import NamedTuple

import numpy as np
from note_seq.protobuf import music_pb2

from keras_mt3.codec.tokenize import EncodedNoteSequence, encode_note_sequence
from keras_mt3.codec.vocabulary import get_vocabulary
from keras_mt3.data import loading
from keras_mt3.data.skip_log import SkipLog
from keras_mt3.data.windows import clip_frame_count, frame_times
from keras_mt3.errors import KerasMT3Error
from keras_mt3.utils import atomic_write

# 2: targets as MT3's by default (trimming per dataset, stale final tie sections).
CACHE_FORMAT_VERSION = 2
# `trim_overlaps` values: trim where the pair says MT3 trims, or every pair.
TRIM_AS_MT3 = "mt3"
TRIM_ALL = "all"
TRIM_OVERLAPS = (TRIM_AS_MT3, TRIM_ALL)
_ENCODED_ARRAYS = (
    "events",
    "event_start_indices",
    "event_end_indices",
    "state_events",
    "state_event_indices",
)


class NoUsablePairsError(KerasMT3Error):
    """Every pair of a dataset was skipped, so it cannot produce a single training window."""


class TrainingClip(NamedTuple):
    name: str
    audio: np.ndarray  # 1-D float32 at 16 kHz (possibly memory-mapped)
    encoded: EncodedNoteSequence

    @property
    def num_frames(self):
        return self.encoded.num_frames


class ClipStore:
    """Loads `pairs[i]` on demand as a `TrainingClip` (or None if it must be skipped).

    Args:
        pairs: a sequence of `TranscriptionPair`.
        vocabulary: the vocabulary the targets are encoded with.
        cache: `"memory"`, a directory, or None (see the module docstring).
        skip_log: where skipped pairs are recorded (a new `SkipLog` by default).
        max_midi_overrun_seconds: how far notes may run past the end of the audio.
        trim_overlaps: `"mt3"` trims overlapping repeats of a note only in pairs whose
            `trim_overlaps` is set (MT3's choice: Slakh training data); `"all"` trims every
            pair, so that no target holds repeats its decoding would merge.
        stale_final_ties: MT3's tie sections after a clip's last event (see
            `encode_note_sequence`); False names the notes actually sounding there.
    """

    def __init__(
        self,
        pairs,
        vocabulary,
        cache="memory",
        skip_log=None,
        max_midi_overrun_seconds=loading.DEFAULT_MAX_MIDI_OVERRUN_SECONDS,
        trim_overlaps=TRIM_AS_MT3,
        stale_final_ties=True,
    ):
        check_trim_overlaps(trim_overlaps)
        self.pairs = list(pairs)
        self.trim_overlaps = trim_overlaps
        self.stale_final_ties = bool(stale_final_ties)
        self.vocabulary = get_vocabulary(vocabulary)
        self.skip_log = SkipLog() if skip_log is None else skip_log
        self.max_midi_overrun_seconds = float(max_midi_overrun_seconds)
        self.cache_dir = None
        if cache not in (None, "memory"):
            self.cache_dir = pathlib.Path(cache).expanduser()
            self.cache_dir.mkdir(parents=True, exist_ok=True)
        self._keep_in_memory = cache is not None
        self._clips = {}
        self._failed = set()
        self._lock = threading.Lock()

    def __len__(self):
        return len(self.pairs)

    @property
    def num_failed(self):
        with self._lock:
            return len(self._failed)

    def get(self, index):
        """The clip of pair `index`, or None when that pair is skipped. Never raises for a bad
        pair; raises `NoUsablePairsError` once every pair has been skipped."""
        with self._lock:
            if index in self._clips:
                return self._clips[index]
            failed = index in self._failed
        if failed:
            return None
        pair = self.pairs[index]
        try:
            clip = self._load(pair)
        except loading.DataPairError as error:
            self._fail(index, pair, error.reason, error.details)
            return None
        except Exception as error:  # a long run must survive any one broken file
            self._fail(index, pair, loading.UNEXPECTED_ERROR, f"{type(error).__name__}: {error}")
            return None
        if self._keep_in_memory:
            with self._lock:
                self._clips[index] = clip
        return clip

    def _fail(self, index, pair, reason, details):
        self.skip_log.record(pair.name, reason, details)
        with self._lock:
            self._failed.add(index)
            all_failed = len(self._failed) == len(self.pairs)
        if all_failed:
            raise NoUsablePairsError(
                f"all {len(self.pairs)} pairs of this dataset were skipped "
                f"({self.skip_log.summary()}); check the dataset paths and files"
            )

    def _load(self, pair):
        key = self._cache_key(pair) if self.cache_dir is not None else None
        if key is not None:
            cached = self._read_cache(pair.name, key)
            if cached is not None:
                return cached
        try:
            audio, note_sequence = loading.load_pair(
                pair,
                self.max_midi_overrun_seconds,
                trim_overlaps=True if self.trim_overlaps == TRIM_ALL else None,
            )
            encoded = self._encode(note_sequence, audio)
        except loading.DataPairError as error:
            if key is not None:
                self._write_skip(key, error)
            raise
        clip = TrainingClip(pair.name, audio, encoded)
        if key is not None:
            self._write_cache(key, clip)
            return self._read_cache(pair.name, key) or clip
        return clip

    def _encode(self, note_sequence, audio):
        try:
            return encode_note_sequence(
                note_sequence,
                frame_times(clip_frame_count(audio)),
                self.vocabulary,
                stale_final_ties=self.stale_final_ties,
            )
        except KerasMT3Error as error:
            raise loading.DataPairError(loading.UNENCODABLE_NOTES, str(error)) from None

    # ---- disk cache ---------------------------------------------------------------------

    def _cache_key(self, pair):
        fingerprint = {
            "version": CACHE_FORMAT_VERSION,
            "name": pair.name,
            "audio": _fingerprint(pair.audio),
            "sample_rate": pair.sample_rate,
            "notes": _fingerprint(pair.notes),
            "cache_token": pair.cache_token,
            "vocabulary": dataclasses.asdict(self.vocabulary),
            "max_midi_overrun_seconds": self.max_midi_overrun_seconds,
            "trim_overlaps": pair.trim_overlaps or self.trim_overlaps == TRIM_ALL,
            "stale_final_ties": self.stale_final_ties,
        }
        encoded = json.dumps(fingerprint, sort_keys=True, default=str).encode()
        return hashlib.sha256(encoded).hexdigest()[:32]

    def _paths(self, key):
        base = self.cache_dir / key
        return (
            base.with_suffix(".audio.npy"),
            base.with_suffix(".events.npz"),
            base.with_suffix(".skip.json"),
        )

    def _read_cache(self, name, key):
        audio_path, events_path, skip_path = self._paths(key)
        if skip_path.is_file():
            skipped = json.loads(skip_path.read_text())
            raise loading.DataPairError(skipped["reason"], skipped["details"] + " (cached)")
        if not (audio_path.is_file() and events_path.is_file()):
            return None
        try:
            audio = np.load(audio_path, mmap_mode="r")
            with np.load(events_path) as stored:
                arrays = {field: stored[field] for field in _ENCODED_ARRAYS}
        except (OSError, ValueError, KeyError):
            return None  # a damaged entry is rebuilt
        return TrainingClip(name, audio, EncodedNoteSequence(**arrays, vocabulary=self.vocabulary))

    def _write_cache(self, key, clip):
        audio_path, events_path, _ = self._paths(key)
        arrays = {field: getattr(clip.encoded, field) for field in _ENCODED_ARRAYS}
        with atomic_write(events_path) as handle:
            np.savez(handle, **arrays)
        with atomic_write(audio_path) as handle:
            np.save(handle, np.asarray(clip.audio, np.float32))

    def _write_skip(self, key, error):
        _, _, skip_path = self._paths(key)
        with atomic_write(skip_path, "w") as handle:
            json.dump({"reason": error.reason, "details": error.details}, handle)


def check_trim_overlaps(value):
    if value not in TRIM_OVERLAPS:
        raise KerasMT3Error(f"trim_overlaps must be one of {TRIM_OVERLAPS}, got {value!r}")


def _fingerprint(source):
    """What identifies a pair's audio or notes for the disk cache."""
    if isinstance(source, (str, os.PathLike)):
        path = pathlib.Path(source).expanduser().resolve()
        try:
            stat = path.stat()
        except OSError:
            return [str(path), None, None]
        return [str(path), stat.st_size, stat.st_mtime_ns]
    if isinstance(source, np.ndarray):
        return hashlib.sha256(np.ascontiguousarray(source).tobytes()).hexdigest()
    if isinstance(source, music_pb2.NoteSequence):
        return hashlib.sha256(source.SerializeToString(deterministic=True)).hexdigest()
    return None  # a callable: identified by the pair's name and cache_token
