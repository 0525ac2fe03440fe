"""``[DEFAULT] use_journal = true``: what a real ``guard serve`` sends to the journal.

oslo.log's journal handler sends, beside the (redacted) message, journal
fields it reads from the record after its formatter copied the caller's
context onto it: no filter sees them. The test listens where journald does
(``/run/systemd/journal/socket``) and reads the datagrams. It needs the
systemd bindings oslo.log's handler needs (``systemd-python``, which ``make
install`` builds where libsystemd is; in CI it must be there) and that no
journald owns the socket; it is skipped otherwise.
"""

from __future__ import annotations

import os
import socket
import threading
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.pgcluster import free_port
from tests.functional.processes import guard, serving_url, stop

try:
    import systemd.journal  # noqa: F401  # what oslo.log's journal handler needs
except ImportError as error:  # make install builds it where libsystemd is (.ci/run: always)
    if os.environ.get("CI"):
        raise RuntimeError(f"systemd-python is required in CI: {error}") from error
    pytest.skip(f"systemd-python is not installed: {error}", allow_module_level=True)
SOCKET = Path("/run/systemd/journal/socket")


def _owned(path: Path) -> bool:
    """Whether a process listens on the datagram socket ``path``.

    A run killed before its clean-up leaves the socket file behind, owned by
    nobody: taken for a journald's, it made every later run skip this test.
    """
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        probe.connect(str(path))
    except ConnectionRefusedError:
        return False
    except OSError:
        return True  # not ours to judge: leave it alone
    finally:
        probe.close()
    return True


@pytest.fixture
def journal() -> Iterator[list[bytes]]:
    if SOCKET.exists():
        if _owned(SOCKET):
            pytest.skip("a journald owns the journal socket")
        SOCKET.unlink()  # left behind by a run that was killed
    try:
        SOCKET.parent.mkdir(parents=True, exist_ok=True)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        listener.bind(str(SOCKET))
    except OSError as error:
        pytest.skip(f"cannot listen on the journal socket: {error}")
    received: list[bytes] = []

    def receive() -> None:
        while True:
            try:
                received.append(listener.recv(1 << 20))
            except OSError:
                return

    threading.Thread(target=receive, daemon=True).start()
    try:
        yield received
    finally:
        listener.close()
        os.unlink(SOCKET)


def test_journal_fields_carry_no_raw_id_or_name(tmp_path: Path, journal: list[bytes]) -> None:
    home = tmp_path / "home"
    home.mkdir()
    conf = tmp_path / "guard.conf"
    conf.write_text(
        "[DEFAULT]\nuse_journal = true\nuse_stderr = false\n"
        f"[database]\nconnection = sqlite:///{tmp_path / 'journal.sqlite'}\n"
        f"[guard]\npipeline = trusted\nfingerprint_key = k\n[api]\nbind_port = {free_port()}\n"
    )
    upgrade = guard(home, "db", "upgrade", "--config-file", str(conf))
    assert upgrade.wait(timeout=120) == 0, upgrade.communicate()[1]
    tag = uuid.uuid4().hex
    user, project, user_name = tag, f"ldap-project-{tag[:6]}", f"jo.name.{tag[:6]}"
    headers = {
        "X-Identity-Status": "Confirmed",
        "X-User-Id": user,
        "X-User-Name": user_name,
        "X-Project-Id": project,
        "X-Roles": "reader",
    }
    process = guard(home, "serve", "--config-file", str(conf))
    try:
        url = serving_url(process)
        request = urllib.request.Request(f"{url}/consumers", headers=headers)
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200
            request_id = response.headers["X-Openstack-Request-Id"]
    finally:
        stop(process)
    datagrams = b"\n".join(journal).decode("utf-8", "replace")
    assert "LOGGER_NAME=guard.access" in datagrams
    assert f"REQUEST_ID={request_id}" in datagrams  # readable, as in the message
    for raw in (user, project, user_name):
        assert raw not in datagrams
