"""Run one agent command with a timeout; a run that hangs is killed with its whole process group.

The command starts in a new session (so in a process group of its own, with
everything it spawns). At the timeout the group gets SIGTERM, then SIGKILL
after ``kill_grace`` seconds; after a normal exit, stragglers left in the
group are killed too, so no run outlives its turn. Output goes to files, not
pipes: a grandchild that keeps a pipe open could otherwise block the harness
after the command itself has gone. POSIX only.
"""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

#: how much of the end of stderr a failure reason quotes
STDERR_TAIL = 400


@dataclass(frozen=True)
class CommandResult:
    exit_code: int | None
    timed_out: bool
    wall_seconds: float
    stderr_tail: str
    #: why the command could not even start (not found, not executable), else None
    start_error: str | None = None

    @property
    def ok(self) -> bool:
        return self.start_error is None and not self.timed_out and self.exit_code == 0


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass  # the group is already gone


def _tail(path: Path) -> str:
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - STDERR_TAIL))
            return f.read().decode("utf-8", "replace").strip()
    except OSError:
        return ""


def run_command(argv: list[str], env: dict[str, str], cwd: Path, timeout: float, kill_grace: float,
                log_dir: Path | None = None, log_name: str = "run") -> CommandResult:
    """Run ``argv`` to completion or to ``timeout`` seconds. With ``log_dir``, its stdout and stderr
    are kept there as ``<log_name>.stdout`` / ``.stderr``; otherwise they are discarded."""
    with tempfile.TemporaryDirectory(prefix="agentprom-bench-") as scratch:
        folder = log_dir if log_dir is not None else Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        out_path, err_path = folder / f"{log_name}.stdout", folder / f"{log_name}.stderr"
        started = time.monotonic()
        with out_path.open("wb") as out, err_path.open("wb") as err:
            try:
                process = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                           stderr=err, start_new_session=True)
            except OSError as exc:
                return CommandResult(None, False, 0.0, "", f"cannot start {argv[0]!r}: {exc.strerror or exc}")
            timed_out = False
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                timed_out = True
                _signal_group(process.pid, signal.SIGTERM)
                try:
                    process.wait(kill_grace)
                except subprocess.TimeoutExpired:
                    pass
            # SIGKILL whatever is left in the group: the command after the grace period, or
            # children it left behind
            _signal_group(process.pid, signal.SIGKILL)
            exit_code = process.wait()
        wall = time.monotonic() - started
        return CommandResult(exit_code, timed_out, wall, _tail(err_path))
