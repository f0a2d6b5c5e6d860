"""MAESTRO (piano performances with aligned MIDI): pairs from the dataset's metadata file.

The root holds `maestro-v*.csv` or `maestro-v*.json` (v1 JSON is a list of records, v2/v3
JSON maps each column to `{row: value}`), with the columns `split`, `midi_filename` and
`audio_filename` relative to the root. Every note is piano (program 0), as in MT3.
"""

import csv
import json
import pathlib

from keras_mt3.data.pairs import TranscriptionPair
from keras_mt3.errors import KerasMT3Error

DATASET = "maestro"
REQUIRED_COLUMNS = ("split", "midi_filename", "audio_filename")


def maestro_pairs(root, split=None, metadata_file=None):
    """Pairs of a MAESTRO folder, optionally of one split (`train`, `validation`, `test`)."""
    root = pathlib.Path(root).expanduser()
    metadata_path = pathlib.Path(metadata_file) if metadata_file else _find_metadata(root)
    rows = read_maestro_metadata(metadata_path)
    pairs = []
    for row in rows:
        if split is not None and row["split"] != split:
            continue
        name = pathlib.PurePosixPath(row["audio_filename"]).with_suffix("").as_posix()
        pairs.append(
            TranscriptionPair(
                name=f"{DATASET}/{name}",
                audio=root / row["audio_filename"],
                notes=root / row["midi_filename"],
                dataset=DATASET,
                split=row["split"],
            )
        )
    return pairs


def read_maestro_metadata(path):
    """The rows (dicts with at least `REQUIRED_COLUMNS`) of a MAESTRO CSV or JSON file."""
    path = pathlib.Path(path)
    try:
        text = path.read_text(encoding="utf-8")
        if path.suffix.lower() == ".csv":
            rows = list(csv.DictReader(text.splitlines()))
        else:
            rows = _json_rows(json.loads(text))
    except (OSError, ValueError, UnicodeDecodeError) as error:
        raise KerasMT3Error(f"cannot read MAESTRO metadata {path}: {error}") from None
    for index, row in enumerate(rows):
        missing = [column for column in REQUIRED_COLUMNS if not row.get(column)]
        if missing:
            raise KerasMT3Error(
                f"row {index} of {path} lacks {', '.join(missing)}; is this a MAESTRO metadata "
                "file?"
            )
    return rows


def _json_rows(data):
    if isinstance(data, list):
        return data
    if isinstance(data, dict) and all(isinstance(column, dict) for column in data.values()):
        keys = sorted({key for column in data.values() for key in column}, key=_row_order)
        return [{name: column.get(key) for name, column in data.items()} for key in keys]
    raise ValueError("expected a list of rows or a {column: {row: value}} table")


def _row_order(key):
    return (0, int(key), "") if str(key).isdigit() else (1, 0, str(key))


def _find_metadata(root):
    if not root.is_dir():
        raise KerasMT3Error(f"MAESTRO folder {root} does not exist")
    # The CSV if there is one; of several versions, the newest.
    candidates = sorted(root.glob("maestro-v*.csv")) or sorted(root.glob("maestro-v*.json"))
    if not candidates:
        raise KerasMT3Error(
            f"no maestro-v*.csv or maestro-v*.json in {root}; point to the unpacked MAESTRO "
            "folder or pass metadata_file="
        )
    return candidates[-1]
