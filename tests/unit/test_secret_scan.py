"""The secret scan of the key-leak tests (tests.conftest.files_containing) finds what it must."""

from __future__ import annotations

import base64
import time
from pathlib import Path

from tests.conftest import canary_key, files_containing


def test_finds_a_key_raw_and_base64_at_every_alignment_in_new_files(tmp_path: Path) -> None:
    made = time.time()
    key, other = canary_key(), canary_key()
    (tmp_path / "raw.log").write_bytes(b"x" + key.encode() + b"y")
    for shift in range(3):
        encoded = base64.b64encode(b"p" * shift + other.encode() + b"tail")
        (tmp_path / "nested").mkdir(exist_ok=True)
        (tmp_path / "nested" / f"b64-{shift}.txt").write_bytes(b"header " + encoded)
    (tmp_path / "clean.txt").write_text("nothing here")
    (tmp_path / "link").symlink_to(tmp_path / "raw.log")  # links are not followed
    assert files_containing(key, [tmp_path], changed_since=made) == [
        f"{tmp_path / 'raw.log'} (raw)"]
    assert files_containing([key, other], [tmp_path], changed_since=made) == [
        *[f"{tmp_path / 'nested' / f'b64-{shift}.txt'} (base64)" for shift in range(3)],
        f"{tmp_path / 'raw.log'} (raw)"]


def test_files_unchanged_since_before_the_key_existed_are_not_read(tmp_path: Path) -> None:
    key = canary_key()
    (tmp_path / "leak.log").write_text(key)
    # As if the key had been made after every file here last changed (ctime cannot be set back).
    assert files_containing(key, [tmp_path], changed_since=time.time() + 60) == []
    assert files_containing(key, [tmp_path], changed_since=time.time() - 60) == [
        f"{tmp_path / 'leak.log'} (raw)"]
