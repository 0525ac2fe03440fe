"""A mistyped option in guard's api-paste.ini sections stops the pipeline's load.

PasteDeploy hands a filter its section's keys and the factory read the two it
knows: ``require_authtokn = true`` (a typo) left main's check that authtoken
stands in front of guard off, and ``config_flie`` read oslo.config's default
search instead of the operator's guard.conf, both without a word.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from paste.deploy import loadapp

from tests.functional.test_paste import PASTE_INI, write_guard_conf

pytestmark = pytest.mark.usefixtures("isolated_install")


@pytest.mark.parametrize(
    ("shipped", "typo", "name", "word"),
    [
        (
            "require_authtoken = true",
            "require_authtokn = true",
            "main",
            "the guard filter does not take require_authtokn",
        ),
        (
            "paste.filter_factory = guard.middleware:filter_factory\n\n[app:consumers]",
            "paste.filter_factory = guard.middleware:filter_factory\nconfig_flie = x\n\n"
            "[app:consumers]",
            "trusted",
            "the guard filter does not take config_flie",
        ),
        (
            "paste.app_factory = guard.deploy:app_factory",
            "paste.app_factory = guard.deploy:app_factory\nconfig_flie = x",
            "trusted",
            "the consumers app does not take config_flie",
        ),
    ],
)
def test_a_mistyped_filter_option_is_refused(
    tmp_path: Path, sqlite_url: str, shipped: str, typo: str, name: str, word: str
) -> None:
    text = PASTE_INI.read_text()
    assert shipped in text
    ini = tmp_path / "api-paste.ini"
    ini.write_text(text.replace(shipped, typo))
    config = write_guard_conf(tmp_path, sqlite_url)
    with pytest.raises(ValueError, match=word):
        loadapp(f"config:{ini}", name=name, global_conf={"config_file": str(config)})
