"""A ``[DEFAULT] log_file`` FIFO is never left without a writer while guard starts.

guard checks that a log FIFO has a reader by opening its write end without
waiting (a FIFO no process reads would block oslo.log's open forever). It
closed that end at once, before oslo.log opened its own: for that moment
the FIFO had no writer, and a reader that stops at the end of the file
(``cat fifo >> shipped.log``, a shipper's pipe source) took it for the end
and left; oslo.log's open then waited for a reader forever, the very hang
the check was there to prevent (half of the starts behind ``cat``). The
kernel's own account of the FIFO's opens and closes (inotify) shows the
order; then a real ``cat`` reads guard's lines. Real processes, a real FIFO.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import select
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from tests.functional.processes import run_guard

TIMEOUT = 60
IN_OPEN, IN_CLOSE_WRITE = 0x20, 0x08
_EVENT = struct.Struct("iIII")  # wd, mask, cookie, len (then the name)

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="inotify")


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)


def watch_opens_and_closes(path: Path) -> int:
    """An inotify descriptor reporting each open and each close for writing of ``path``."""
    libc = _libc()
    fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
    if fd < 0 or libc.inotify_add_watch(fd, os.fsencode(path), IN_OPEN | IN_CLOSE_WRITE) < 0:
        raise OSError(ctypes.get_errno(), "inotify")
    return fd


def events(fd: int) -> list[str]:
    """The events queued on ``fd``, in order: "open" and "close-write"."""
    found: list[str] = []
    while select.select([fd], [], [], 0)[0]:
        data = os.read(fd, 65536)
        offset = 0
        while offset < len(data):
            _wd, mask, _cookie, length = _EVENT.unpack_from(data, offset)
            offset += _EVENT.size + length
            found += ["open"] * bool(mask & IN_OPEN) + ["close-write"] * bool(
                mask & IN_CLOSE_WRITE
            )
    return found


def test_the_fifo_keeps_a_writer_from_the_check_to_oslo_logs_open(tmp_path: Path) -> None:
    fifo = tmp_path / "guard.log"
    os.mkfifo(fifo)
    conf = tmp_path / "guard.conf"
    database = tmp_path / "guard.sqlite"
    conf.write_text(
        f"[DEFAULT]\nlog_file = {fifo}\ndebug = true\n[database]\nconnection = sqlite:///{database}\n"
    )
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # a shipper that never stops reading
    watch = watch_opens_and_closes(fifo)
    try:
        result = run_guard(tmp_path, "--config-file", str(conf), "db", "upgrade")
        assert result.returncode == 0, result.stderr
        seen = events(watch)
        assert os.read(reader, 1 << 20)  # guard's log lines came through the FIFO
    finally:
        os.close(watch)
        os.close(reader)
    # guard's writers: each open +1, each close -1. Back to none only at the very end.
    writers, counts = 0, []
    for event in seen:
        writers += 1 if event == "open" else -1
        counts.append(writers)
    assert counts and counts[-1] == 0, seen
    assert 0 not in counts[:-1], f"the FIFO was left without a writer while guard started: {seen}"


def test_cat_reading_the_fifo_gets_guards_lines(tmp_path: Path) -> None:
    fifo = tmp_path / "guard.log"
    os.mkfifo(fifo)
    conf = tmp_path / "guard.conf"
    database = tmp_path / "guard.sqlite"
    conf.write_text(
        f"[DEFAULT]\nlog_file = {fifo}\ndebug = true\n[database]\nconnection = sqlite:///{database}\n"
    )
    shipped = tmp_path / "shipped.log"
    with shipped.open("wb") as out:
        cat = subprocess.Popen(["cat", str(fifo)], stdout=out)
        try:
            # cat waits in its open for a writer; guard's check must find it as a reader.
            for _ in range(3):
                result = run_guard(tmp_path, "--config-file", str(conf), "db", "upgrade")
                if "no process reads" not in result.stderr:
                    break
            assert result.returncode == 0, result.stderr
            cat.wait(timeout=TIMEOUT)  # guard's exit is the end of the file
        finally:
            cat.kill()
            cat.wait()
    assert shipped.read_bytes()
