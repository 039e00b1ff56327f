"""The supervisord.conf the stack runs under: which programs restart after a crash, and how."""

from __future__ import annotations

import configparser
from pathlib import Path

import pytest

from pipelines.settings import Settings
from pipelines.stack.configs import RESTART, supervisord_conf
from pipelines.stack.layout import StackLayout

pytestmark = pytest.mark.unit

SERVICES = ("postgres", "controller", "kafka", "registry", "connect")


@pytest.fixture
def programs(tmp_path: Path) -> dict[str, configparser.SectionProxy]:
    settings = Settings(home=tmp_path / "home", cache_dir=tmp_path / "cache",
                        pg_app_password="a", pg_debezium_password="d", pg_registry_password="r",
                        registry_writer_password="w")
    text = supervisord_conf(settings, StackLayout.of(settings), Path("/usr/bin/java"),
                            Path("/opt/jdk25/bin/java"))
    parser = configparser.RawConfigParser()  # supervisord's own format, %% escapes left alone
    parser.read_string(text)
    return {s.removeprefix("program:"): parser[s] for s in parser.sections()
            if s.startswith("program:")}


def test_every_service_restarts_whenever_it_dies_on_its_own(programs: dict) -> None:
    for name in SERVICES:
        program = programs[name]
        # "true", not "unexpected": PostgreSQL's postmaster exits 0 after an immediate stop.
        assert program["autorestart"] == "true", name
        assert program["autostart"] == "false", name  # `up` starts them, in order


def test_a_crash_loop_backs_off_and_is_bounded(programs: dict) -> None:
    for name in (*SERVICES, "processor"):
        program = programs[name]
        # A process that dies within startsecs has not started: supervisord retries it after
        # 1, 2, 3 ... s and gives up (FATAL) after startretries tries.
        assert 1 <= int(program["startretries"]) <= 10, name
        assert int(program["startsecs"]) >= 2, name
    for name in ("controller", "kafka", "registry", "connect"):
        # A JVM's start-up failures (config, ports, storage) happen in its first seconds.
        assert int(programs[name]["startsecs"]) >= 10, name


def test_the_processor_restarts_after_a_crash_but_not_after_a_clean_exit(programs: dict) -> None:
    assert programs["processor"]["autorestart"] == "unexpected"
    assert programs["processor"]["exitcodes"] == "0"


def test_serve_runs_as_a_module_and_restarts_as_the_processor_does(programs: dict) -> None:
    assert programs["serve"]["command"].endswith(" -m pipelines.serve")
    assert programs["serve"]["autorestart"] == "unexpected"
    assert programs["serve"]["autostart"] == "false"


def test_dagster_is_not_restarted_by_supervisord(programs: dict) -> None:
    assert programs["dagster"]["autorestart"] == "false"
    assert programs["dagster"]["startretries"] == "0"


def test_deliberate_stops_are_clean(programs: dict) -> None:
    # `down` and stop_app stop through supervisord, which never restarts what it stopped; the
    # stop signals are each service's clean shutdown.
    assert programs["postgres"]["stopsignal"] == "INT"
    for name in ("controller", "kafka", "registry", "connect"):
        assert programs[name]["stopsignal"] == "TERM"


def test_every_program_has_a_restart_policy_or_none_on_purpose() -> None:
    assert set(RESTART) == {*SERVICES, "processor", "serve"}
    assert all(r.conf().count("\n") == 4 for r in RESTART.values())


def test_down_stops_each_program_before_what_it_needs(programs: dict) -> None:
    # supervisord's shutdown stops the highest priority first and waits for it: a program
    # stopped together with what it needs (Connect with the broker) waits out its stopwaitsecs.
    needs = {"connect": ("kafka", "registry", "postgres"), "registry": ("postgres",),
             "kafka": ("controller",), "processor": ("kafka", "registry"),
             "serve": ("kafka", "registry"), "dagster": ("kafka", "postgres", "connect")}
    priority = {name: int(program["priority"]) for name, program in programs.items()}
    for name, needed in needs.items():
        for other in needed:
            assert priority[name] > priority[other], (name, other)
