import os

import pytest

from keras_mt3.utils import atomic_write

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
