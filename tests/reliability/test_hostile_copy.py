"""``copy`` and ``.zip`` never write outside the destination nor read outside the source.

Hostile sources: symbolic links inside a cache directory (to a file or a folder outside it), zip
entries named ``../..`` or with absolute paths. Each is refused with an UnsafeCacheError before
anything is written, and no file appears outside the destination.
"""

from __future__ import annotations

import os
import shutil
import zipfile
from pathlib import Path

import pytest

from actstore.errors import UnsafeCacheError
from actstore.store import copy_cache, open_cache
from actstore.store.format._safety import check_key


def _files_under(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*")}


def test_symlinked_file_pointing_outside_is_refused(cache_copy: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("private key")
    chunk = next((cache_copy / "probes" / "value" / "coef" / "c").rglob("*"))
    while chunk.is_dir():
        chunk = next(chunk.iterdir())
    chunk.unlink()
    chunk.symlink_to(secret)
    before = _files_under(tmp_path)
    for dst in (tmp_path / "out.zarr", tmp_path / "out.zip"):
        with pytest.raises(UnsafeCacheError, match=r"symbolic links.*secret\.txt"):
            copy_cache(cache_copy, dst)
    assert _files_under(tmp_path) == before


def test_symlinked_folder_is_refused(cache_copy: Path, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere"
    shutil.move(cache_copy / "probes" / "value", outside)
    os.symlink(outside, cache_copy / "probes" / "value")
    with pytest.raises(UnsafeCacheError, match="probes/value ->"):
        copy_cache(cache_copy, tmp_path / "out.zarr")
    assert not (tmp_path / "out.zarr").exists()


def _zip_with(src: Path, dst: Path, extra: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(dst, "w") as zf:
        for p in sorted(src.rglob("*")):
            if p.is_file():
                zf.write(p, p.relative_to(src).as_posix())
        for name, data in extra.items():
            zf.writestr(zipfile.ZipInfo(name), data)  # ZipInfo keeps the name as given
    return dst


@pytest.mark.parametrize(
    "entry",
    [
        "probes/../../escape.txt",
        "probes/value/../../../escape.txt",
        "/ABS/escape.txt",
        "probes\\..\\..\\escape.txt",
    ],
)
def test_zip_entries_leaving_the_cache_are_refused(
    cache_copy: Path, tmp_path: Path, entry: str
) -> None:
    entry = entry.replace("/ABS", str(tmp_path))
    work = tmp_path / "work"
    work.mkdir()
    src = _zip_with(cache_copy, tmp_path / "hostile.zip", {entry: b"escaped"})
    with zipfile.ZipFile(src) as zf:
        assert entry in zf.namelist()  # the hostile name really is in the archive
    with pytest.raises(UnsafeCacheError, match="zip entry name"):
        open_cache(src)
    for dst in (work / "out.zarr", work / "out.zip"):
        with pytest.raises(UnsafeCacheError):
            copy_cache(src, dst)
    assert not list(tmp_path.rglob("escape.txt"))
    assert not list(tmp_path.parent.glob("escape.txt"))
    assert _files_under(work) == set()


def test_zip_copy_writes_only_plain_relative_entries(cache_copy: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.zip"
    copy_cache(cache_copy, out)
    with zipfile.ZipFile(out) as zf:
        names = zf.namelist()
    assert "zarr.json" in names and "probes/value/coef/zarr.json" in names
    for name in names:
        check_key(name)
    assert open_cache(out).prompt_sets == ["arith"]
