"""A password with an unencoded ``@``: no part of it on the operator's terminal.

SQLAlchemy's URL parser ends the password at the first ``@`` and takes the
rest of it for the host, so ``guard db`` named the database as
``mysql+pymysql://***@ss-word@127.0.0.1/guard``, the password's tail in
clear (and ``guard serve``'s start line the same way). Real processes,
against a port nothing listens on (the command fails, naming the database
first).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.functional.processes import guard

TAIL = "ss-w0rd-tail"


@pytest.mark.parametrize(
    "url",
    [
        f"mysql+pymysql://guard:p@{TAIL}@127.0.0.1:1/guard",
        f"postgresql+psycopg://guard:pa:b@{TAIL}@127.0.0.1:1/guard",
    ],
)
@pytest.mark.parametrize("action", ["upgrade", "version"])
def test_guard_db_names_the_database_without_the_passwords_tail(
    tmp_path: Path, url: str, action: str
) -> None:
    process = guard(tmp_path, "db", action, "--database", url)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 1
    assert f"guard db {action}: {url.split(':', 1)[0]}://***@127.0.0.1:1/guard" in stdout
    assert TAIL not in stdout + stderr
