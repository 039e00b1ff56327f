"""The latency benchmark's CPU report: which group a process is counted in, and how busy the
whole machine was."""

from __future__ import annotations

import subprocess
import sys
from collections import namedtuple

import pytest

from pipelines.bench import CpuSampler, machine_load, process_group
from pipelines.stats import percentile

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(("cmdline", "group"), [
    ("/usr/bin/java -Xmx1g -cp /c/libs/* kafka.Kafka /h/kafka/server.properties", "kafka broker"),
    ("/usr/bin/java -cp /c/libs/* org.apache.kafka.connect.cli.ConnectDistributed c.properties",
     "kafka connect"),
    ("postgres: walsender debezium 127.0.0.1(40312) START_REPLICATION", "postgres walsender"),
    ("postgres: ticketing_app ticketing 127.0.0.1(40320) idle", "postgres"),
    ("/usr/lib/postgresql/15/bin/postgres -D /h/postgres/data", "postgres"),
    ("/p/.venv/bin/python -m pipelines.cli.main simulate --rate 2000 --duration 30", "simulator"),
    ("/p/.venv/bin/python -m pipelines.cli.main processor run", "processor"),
    ("/p/.venv/bin/python -m pipelines.processor.worker", "processor"),
    ("/p/.venv/bin/python /p/.venv/bin/seatflow bench latency --rate 2000", "this benchmark"),
    ("", "other"),
])
def test_processes_are_counted_in_their_group(cmdline: str, group: str) -> None:
    assert process_group(cmdline) == group


def test_the_cpu_sampler_counts_a_process_by_its_group() -> None:
    # A child that burns half a second of its own CPU time (not of wall time: a loaded machine
    # only makes it take longer), under a command line the "simulator" group matches, then
    # lives on for more than a sampling interval: a process is seen only while it lives.
    burn = "import time\nwhile time.process_time() < 0.5: pass\ntime.sleep(1.2)"
    with CpuSampler() as sampler:
        subprocess.run([sys.executable, "-c", burn, "simulate", "--rate", "1"], check=True,
                       timeout=120)
    seconds = sampler.seconds()
    assert seconds.get("simulator", 0) >= 0.4, seconds


def test_percentile_is_the_value_at_q_times_n_of_sorted_samples() -> None:
    ordered = [float(v) for v in range(1, 101)]
    assert (percentile(ordered, 0.5), percentile(ordered, 0.99), percentile(ordered, 1.0)) == (
        51.0, 100.0, 100.0)
    assert percentile([], 0.99) == 0.0


# psutil.cpu_times() on Linux: guest time is counted inside user already.
_Times = namedtuple("_Times", "user nice system idle iowait irq softirq steal guest guest_nice")


def test_machine_load_counts_idle_and_iowait_as_free_and_guest_time_once() -> None:
    before = _Times(100, 0, 50, 1000, 10, 0, 0, 0, 5, 0)
    # 60 s of the 2 cores' 100 busy (user 40 of which guest 20, system 10, steal 10), 40 free
    # (idle 30, iowait 10).
    after = _Times(140, 0, 60, 1030, 20, 0, 0, 10, 25, 0)
    load = machine_load(before, after)
    assert (load.busy_pct, load.steal_pct) == (60.0, 10.0)


def test_machine_load_of_an_empty_span_is_zero() -> None:
    same = _Times(1, 0, 1, 1, 0, 0, 0, 0, 0, 0)
    assert (machine_load(same, same).busy_pct, machine_load(same, same).steal_pct) == (0.0, 0.0)


def test_the_cpu_sampler_sees_the_machine_busy_while_a_core_spins() -> None:
    # One core of the machine spinning for most of the span: well over half of one core's share
    # was busy, whatever else runs (a loaded machine only adds to it).
    spin = "import time\nt = time.monotonic()\nwhile time.monotonic() - t < 1.5: pass"
    with CpuSampler() as sampler:
        subprocess.run([sys.executable, "-c", spin], check=True, timeout=120)
    load = sampler.machine()
    assert load.busy_pct >= 100 / load.cores * 0.6, load
