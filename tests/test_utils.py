import os

import pytest

from keras_mt3.errors import OutputError
from keras_mt3.utils import (
    atomic_write,
    check_output_file,
    expand_inputs,
    expand_inputs_with_roots,
    unique_output_names,
)

pytestmark = pytest.mark.backend_independent


def test_atomic_write_replaces_only_on_success(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_write(target) as handle:
            handle.write(b"partial")
            raise RuntimeError("conversion failed")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]
    with atomic_write(target) as handle:
        handle.write(b"new")
    assert target.read_bytes() == b"new"


def test_atomic_write_uses_normal_file_permissions(tmp_path):
    mask = os.umask(0o022)
    try:
        with atomic_write(tmp_path / "a.mid") as handle:
            handle.write(b"x")
    finally:
        os.umask(mask)
    assert (tmp_path / "a.mid").stat().st_mode & 0o777 == 0o644


def test_atomic_write_under_a_file_is_a_clear_error(tmp_path):
    (tmp_path / "taken").write_text("a file")
    target = tmp_path / "taken" / "sub" / "out.mid"
    with pytest.raises(OutputError, match=f"{target}: {tmp_path / 'taken'} is a file, not a folder"):
        with atomic_write(target) as handle:
            handle.write(b"x")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]


def test_atomic_write_onto_a_folder_leaves_it_and_no_temporary_file(tmp_path):
    (tmp_path / "out.mid").mkdir()
    with pytest.raises(OutputError, match="out.mid: it is a folder"):
        with atomic_write(tmp_path / "out.mid") as handle:
            handle.write(b"x")
    assert [p.name for p in tmp_path.iterdir()] == ["out.mid"]
    assert not any((tmp_path / "out.mid").iterdir())


def test_check_output_file_creates_nothing(tmp_path):
    check_output_file(tmp_path / "new" / "deeper" / "out.json")
    assert not (tmp_path / "new").exists()
    (tmp_path / "taken").write_text("")
    with pytest.raises(OutputError, match="is a file, not a folder"):
        check_output_file(tmp_path / "taken" / "out.json")


@pytest.mark.parametrize(
    "sources, roots, expected",
    [
        # Same stem in different folders, named directly: the folders that differ are kept.
        (["a/song.wav", "b/song.wav", "song.flac"], None, ["a/song.mid", "b/song.mid", "song.mid"]),
        # Only the extension differs: it stays in the name.
        (["x/song.wav", "x/song.flac", "y.wav"], None, ["song.wav.mid", "song.flac.mid", "y.mid"]),
        # Found in a folder given: its subfolders below that folder are mirrored.
        (["in/a.wav", "in/live/a.wav"], ["in", "in"], ["a.mid", "live/a.mid"]),
        # Two folders given with the same layout: the folders' own names tell them apart.
        (["d1/x.wav", "d2/x.wav"], ["d1", "d2"], ["d1/x.mid", "d2/x.mid"]),
        # Only case differs: one file on macOS and Windows, so kept apart.
        (["p/Song.wav", "q/song.wav"], None, ["p/Song.mid", "q/song.mid"]),
        (["/abs/path/one.wav"], None, ["one.mid"]),
    ],
)
def test_unique_output_names(sources, roots, expected):
    assert [str(name) for name in unique_output_names(sources, ".mid", roots)] == expected


def test_unique_output_names_refuses_what_it_cannot_tell_apart():
    with pytest.raises(OutputError, match="would write the same output file"):
        unique_output_names(["a.wav", "./a.wav"], ".mid")


def test_expand_inputs_lists_matching_files_of_folders_once(tmp_path):
    for name in ("songs/b.wav", "songs/live/a.FLAC", "songs/notes.txt", "songs/c.mid"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).touch()
    songs, missing = tmp_path / "songs", tmp_path / "missing.wav"
    found = expand_inputs_with_roots([songs / "b.wav", songs, missing], (".wav", ".flac"))
    assert found == [(songs / "b.wav", None), (songs / "live" / "a.FLAC", songs), (missing, None)]
    assert expand_inputs([songs], (".mid",)) == [songs / "c.mid"]
