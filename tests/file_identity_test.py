"""The one test of "did this file change": every way a file is replaced or rewritten shows."""

from __future__ import annotations

import os
from pathlib import Path

from exporter.file_identity import file_identity


def test_each_kind_of_change_gives_a_new_identity(tmp_path: Path) -> None:
    path = tmp_path / "ca.pem"
    path.write_text("one")
    seen = [file_identity(str(path))]
    assert seen[0] is not None
    assert file_identity(str(path)) == seen[0]  # nothing changed: the same identity
    path.write_text("one, longer")  # written in place
    seen.append(file_identity(str(path)))
    path.chmod(0o600)  # only the inode's change time moves
    seen.append(file_identity(str(path)))
    swapped = tmp_path / "new.pem"
    swapped.write_text("two, longer")  # same size, a new inode swapped in (a secret's update)
    os.replace(swapped, path)
    seen.append(file_identity(str(path)))
    assert len(set(seen)) == len(seen), seen


def test_a_missing_file_has_no_identity(tmp_path: Path) -> None:
    assert file_identity(str(tmp_path / "gone")) is None
