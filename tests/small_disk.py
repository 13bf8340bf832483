"""A real, tiny file system for disk-full tests: a tmpfs that fills up after a few hundred KiB.

As root the test mounts it itself. Where plain ``mount`` is refused, the program under test runs
inside an unprivileged user and mount namespace (``unshare -Urm``) that mounts the tmpfs over the
same directory first; the test then reaches that file system through ``/proc/PID/root``. When
neither works the test is skipped, with both refusals as the reason.
"""

from __future__ import annotations

import errno
import shutil
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

# sh -c SCRIPT MOUNTPOINT PROGRAM ARGS...: mount, then become the program (same pid)
_MOUNT_THEN_EXEC = 'mount -t tmpfs -o "size=$1" tmpfs "$0" && shift && exec "$@"'


@dataclass
class SmallDisk:
    mountpoint: Path
    #: put in front of the command of the process that must see the small disk
    command_prefix: list[str]
    #: where this test process sees the mountpoint of the process with the given pid
    visible: Callable[[int], Path]


def _mount(argv: list[str]) -> subprocess.CompletedProcess | None:
    if shutil.which(argv[0]) is None:
        return None
    return subprocess.run(argv, capture_output=True, text=True, timeout=30)


@contextmanager
def small_disk(mountpoint: Path, size: str = "256k") -> Iterator[SmallDisk]:
    mountpoint.mkdir(parents=True, exist_ok=True)
    plain = _mount(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mountpoint)])
    if plain is not None and plain.returncode == 0:
        try:
            yield SmallDisk(mountpoint, [], lambda _pid: mountpoint)
        finally:
            subprocess.run(["umount", "-l", str(mountpoint)], capture_output=True, timeout=30)
        return
    prefix = ["unshare", "-Urm", "sh", "-c", _MOUNT_THEN_EXEC, str(mountpoint), size]
    probe = _mount([*prefix, "true"])
    if probe is None or probe.returncode != 0:
        pytest.skip(
            "cannot mount a small tmpfs: mount said "
            f"{plain.stderr.strip() if plain else 'not installed'!r}; unshare -Urm said "
            f"{probe.stderr.strip() if probe else 'not installed'!r}"
        )
    yield SmallDisk(mountpoint, prefix, lambda pid: Path(f"/proc/{pid}/root") / mountpoint.relative_to("/"))


def fill(directory: Path) -> Path:
    """Write a file until the file system is full; return it (delete it to free the space)."""
    filler = directory / "filler"
    block = b"\0" * 65536
    with open(filler, "wb", buffering=0) as handle:
        try:
            while True:
                handle.write(block)
        except OSError as error:
            assert error.errno == errno.ENOSPC, error
    return filler
