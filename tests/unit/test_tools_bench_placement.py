"""The Placement benchmark's own logic: options, data, ratios (Placement itself not needed)."""

from __future__ import annotations

import configparser
import sys
import uuid
from importlib.metadata import version
from pathlib import Path

import pytest

from guard.tools.bench import placement, placementsetup
from guard.tools.bench.httpload import Sample


def test_the_defaults_are_the_issues_setup() -> None:
    options = placement.parse_args([])
    assert options.connections == (8, 1)
    assert (options.rounds, options.seconds) == (5, 4.0)
    assert options.postgresql and not options.sqlite
    assert options.placement_venv == Path(".venv-placement")


def test_options_from_the_command_line() -> None:
    options = placement.parse_args(
        ["--connections", "4,2,1", "--rounds", "3", "--seconds", "2.5", "--sqlite"]
    )
    assert (options.connections, options.rounds, options.seconds) == ((4, 2, 1), 3, 2.5)
    assert options.postgresql and options.sqlite
    quick = placement.parse_args(["--quick", "--sqlite-only", "--placement-venv", "/opt/p"])
    assert (quick.rounds, quick.seconds) == (2, 1.5)
    assert not quick.postgresql and quick.sqlite
    assert quick.placement_venv == Path("/opt/p")


@pytest.mark.parametrize(
    "argv",
    [
        ["--connections", "8,x"],
        ["--connections", "0"],
        ["--connections", ""],
        ["--rounds", "0"],
        ["--seconds", "-1"],
    ],
)
def test_bad_options_are_refused(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        placement.parse_args(argv)
    assert stopped.value.code == 2
    assert "error:" in capsys.readouterr().err


def test_both_services_get_the_same_thousand_consumers_on_every_run() -> None:
    uuids = placementsetup.consumer_uuids()
    assert uuids == placementsetup.consumer_uuids()
    assert len(set(uuids)) == placementsetup.CONSUMERS == 1000
    assert all(str(uuid.UUID(u)) == u and uuid.UUID(u).version == 4 for u in uuids)
    owners = {placementsetup.owner(i) for i in range(len(uuids))}
    assert len(owners) == placementsetup.PROJECTS


def test_placement_gets_its_database_and_no_keystone() -> None:
    url = "postgresql+psycopg://postgres@127.0.0.1:5432/placement_x"
    parser = configparser.ConfigParser()
    parser.read_string(placementsetup.placement_conf(placementsetup.placement_url(url)))
    assert parser["placement_database"]["connection"] == (
        "postgresql+psycopg2://postgres@127.0.0.1:5432/placement_x"
    )
    assert parser["api"]["auth_strategy"] == "noauth2"
    assert placementsetup.placement_url("sqlite:////tmp/p.sqlite") == "sqlite:////tmp/p.sqlite"


def _samples(rates: list[float], cpu: list[float | None]) -> list[Sample]:
    return [
        Sample(
            ok=int(r * 2),
            seconds=2.0,
            errors={},
            cpu=None if c is None else {"server": c * 0.75, "database": c * 0.25},
        )
        for r, c in zip(rates, cpu, strict=True)
    ]


def test_the_ratio_is_of_the_best_rates_and_each_round_is_shown() -> None:
    guard = _samples([900.0, 1000.0], [1.8, 1.6])
    theirs = _samples([200.0, 180.0], [2.0, 1.8])
    wall, cpu = placement.compare((guard, theirs), "PostgreSQL", 8)
    assert wall.ratio == pytest.approx(1000 / 200)
    assert wall.round_ratios == pytest.approx((900 / 200, 1000 / 180))
    assert wall.goal == ">= 5x" and "8 connections" in wall.name
    # Requests per CPU second: 1800/1.8 = 1000 and 2000/1.6 = 1250 against 200 and 200.
    assert cpu.ratio == pytest.approx(1250 / 200)
    assert cpu.round_ratios == pytest.approx((1000 / 200, 1250 / 200))
    text = placement.describe([wall, cpu], (guard, theirs))
    assert "round 2: guard 1,000.0/s, Placement 180.0/s, ratio 5.56" in text
    assert f"[median round ratio {(4.5 + 1000 / 180) / 2:.2f}]" in text.splitlines()[0]
    # 1.6 s of CPU for 2,000 answers: 800 us each, 600 in the server and 200 in the database.
    assert "CPU per request: guard 800 us (server 600 + database 200)" in text


def test_without_cpu_readings_only_the_rates_are_compared() -> None:
    results = placement.compare((_samples([10.0], [None]), _samples([5.0], [None])), "SQLite", 1)
    assert [r.ratio for r in results] == [2.0]
    assert "1 connection" in results[0].name and "connections" not in results[0].name
    assert results[0].goal == "for information"
    sqlite = [Sample(ok=500, seconds=1.0, errors={}, cpu={"server": 0.4})]
    text = placement.describe(placement.compare((sqlite, sqlite), "SQLite", 1), (sqlite, sqlite))
    assert "CPU per request: guard 800 us, Placement 800 us" in text


def test_errors_are_shown_per_side() -> None:
    guard = [Sample(ok=10, seconds=1.0, errors={})]
    theirs = [Sample(ok=5, seconds=1.0, errors={"500": 3, "RemoteDisconnected": 1})]
    results = placement.compare((guard, theirs), "SQLite", 1)
    text = placement.describe(results, (guard, theirs))
    assert "Placement errors: {'500': 3, 'RemoteDisconnected': 1}" in text
    assert "guard errors" not in text


def test_a_missing_placement_says_how_to_install_it(tmp_path: Path) -> None:
    problem = placementsetup.check_installed(tmp_path)
    assert problem is not None and "make bench-placement" in problem
    assert placement.main(["--placement-venv", str(tmp_path)]) == 2


def test_a_venv_without_placement_16_is_refused_by_its_versions(tmp_path: Path) -> None:
    (tmp_path / "bin").mkdir()
    for name in ("placement-manage", "gunicorn"):
        (tmp_path / "bin" / name).touch()
    (tmp_path / "bin" / "python").symlink_to(sys.executable)  # guard's: no Placement in it
    problem = placementsetup.check_installed(tmp_path)
    assert problem is not None and "reinstalls it" in problem and "16.0.0" in problem
    python = Path(sys.executable)
    assert placementsetup.installed_versions(python, ["gunicorn"]) == {
        "gunicorn": version("gunicorn")
    }
    assert placementsetup.installed_versions(python, ["gunicorn", "openstack-placement"]) == {}
