"""`seatflow bench fans`: N fans follow one event's stream during an on-sale; commit-to-client
latency, the clients served, and serve's CPU and memory."""

from __future__ import annotations

import json
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import psutil
import requests
from tenacity import retry, retry_if_result, stop_after_delay, wait_fixed

from pipelines.bench.common import run_python
from pipelines.deploy import wait_caught_up
from pipelines.host.load import SIMULATOR_NICE
from pipelines.kafka.groups import group_members
from pipelines.processor.config import GROUP_ID
from pipelines.settings import Settings

__all__ = ["CROWD_NICE", "FansReport", "bench_fans"]

# The crowd stands in for fans' browsers on other machines; here it shares the cores with
# serve, so it runs at a lower priority (as the simulator does).
CROWD_NICE = 10


@dataclass
class FansReport:
    clients: int
    rate_target: float
    duration_s: float
    event_id: int
    crowd_nice: int
    synthetic: bool  # serve fed by a synthetic on-sale, not the pipeline
    connected: int
    served: int  # connected, no error, to the end
    errors: dict[str, int]
    caught_up: int  # clients that had read the newest frame when the crowd stopped
    behind_max: int  # changes the furthest-behind client had not read then
    probe_seat_changes_min: int
    latency_samples: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    # Of which the pipeline's: commit to serve's receipt (its staleness metric over the run);
    # None with a synthetic feed, which has no pipeline.
    serve_receipt_p50_ms: float | None
    serve_receipt_p99_ms: float | None
    serve_cpu_percent: float  # of one core, over the on-sale
    serve_rss_mb_max: float
    crowd_cpu_percent: float
    changes_fanned_out: int
    chunks_sent: int  # sends of one or more changes to a client
    notes: list[str] = field(default_factory=list)
    batch: int = 1  # the host's buyers' statements per transaction (group commit)


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _wait_ready(url: str, timeout_s: float) -> None:
    @retry(stop=stop_after_delay(timeout_s), wait=wait_fixed(0.5),
           retry=retry_if_result(lambda ok: not ok))
    def ready() -> bool:
        try:
            return requests.get(f"{url}/healthz", timeout=5).status_code == 200
        except requests.RequestException:
            return False

    ready()


def _metric(url: str, name: str) -> float:
    for line in requests.get(f"{url}/metrics", timeout=10).text.splitlines():
        if line.startswith(f"{name} "):
            return float(line.split()[1])
    return 0.0


class _Sampler:
    """CPU seconds and the largest RSS of a process, sampled every half second."""

    def __init__(self, pid: int) -> None:
        self.process = psutil.Process(pid)
        self.rss_max = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _cpu(self) -> float:
        times = self.process.cpu_times()
        return float(times.user + times.system)

    def __enter__(self) -> _Sampler:
        self.started, self.cpu0 = time.monotonic(), self._cpu()
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            try:
                self.rss_max = max(self.rss_max, self.process.memory_info().rss)
            except psutil.Error:
                return

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self.wall, self.cpu = time.monotonic() - self.started, self._cpu() - self.cpu0

    @property
    def percent(self) -> float:
        return round(100 * self.cpu / self.wall, 1) if self.wall else 0.0


def bench_fans(settings: Settings, *, clients: int = 1000, rate: float = 2000,
               duration: float = 30, probes: int = 20, event_id: int | None = None,
               url: str | None = None, crowd_nice: int = CROWD_NICE, synthetic: bool = False,
               batch: int = 1, say: Callable[[str], None] = lambda _: None) -> FansReport:
    """Start serve (unless `url` names one), connect the crowd to one event's stream, run an
    on-sale of that event at `rate` for `duration` seconds, and report. `synthetic`: serve fed
    by pipelines.serve.synthetic's on-sale instead of the pipeline (no stack needed)."""
    if not synthetic:
        if group_members(settings, GROUP_ID) == 0:
            raise RuntimeError("no processor is running (make demo, or seatflow processor run)")
        say("waiting for Debezium and the processor to have published every change so far")
        wait_caught_up(settings, timeout_s=300)
    serve = None
    if url is None or synthetic:
        port = _free_port(settings.bind_host)
        url = f"http://{settings.bind_host}:{port}"
        serve = (run_python("-m", "pipelines.serve.synthetic", "--host", settings.bind_host,
                         "--port", str(port), "--rate", str(rate), "--clients", str(clients),
                         "--duration", str(duration)) if synthetic
                 else run_python("-m", "pipelines.cli.main", "serve", "--port", str(port)))
    notes: list[str] = []
    crowd = None
    try:
        say(f"serve at {url}: reading the availability topics")
        _wait_ready(url, 300)
        serve_pid = serve.pid if serve is not None else _listening_pid(url)
        events = requests.get(f"{url}/api/events", timeout=30).json()["events"]
        if event_id is None:
            event_id = max(events, key=lambda e: e["seats"])["event_id"]
        # One client takes the snapshot; the crowd resumes from its id (a stadium's snapshot
        # is megabytes: a thousand of them would measure the snapshot, not the fan-out).
        last_event_id = _snapshot_id(url, event_id)
        say(f"{clients} clients on event {event_id}'s stream")
        crowd = run_python("-m", "pipelines.serve.fans", "--url", url, "--event", str(event_id),
                        "--clients", str(clients), "--probes", str(probes),
                        "--hold", str(duration + 10), "--last-event-id", last_event_id,
                        nice=crowd_nice, stdout=subprocess.PIPE)
        assert crowd.stdout is not None
        line = crowd.stdout.readline()
        if not line.startswith("connected"):
            raise RuntimeError(f"the crowd did not connect: {line!r}")
        fanned0 = _metric(url, "seatflow_serve_changes_fanned_out_total")
        chunks0 = _metric(url, "seatflow_serve_chunks_sent_total")
        say(f"{line.split()[1]} connected; on-sale of event {event_id} at {rate:.0f} "
            f"changes/s for {duration:.0f} s")
        crowd_process = psutil.Process(crowd.pid)
        with _Sampler(serve_pid) as served, _Sampler(crowd_process.pid) as crowding:
            if not synthetic:  # the synthetic feed began when the crowd was in
                onsale = run_python("-m", "pipelines.cli.main", "simulate", "--rate", str(rate),
                                 "--duration", str(duration), "--event", str(event_id),
                                 "--batch", str(batch), nice=SIMULATOR_NICE)
                onsale.wait(duration + 120)
            report_line = crowd.stdout.readline()
        fanned = _metric(url, "seatflow_serve_changes_fanned_out_total") - fanned0
        chunks = _metric(url, "seatflow_serve_chunks_sent_total") - chunks0
        receipt: dict[str, float | None] = {
            q: None if synthetic else round(
                1000 * _metric(url, f'seatflow_serve_staleness_seconds{{quantile="{q}"}}'), 1)
            for q in ("0.5", "0.99")}
        crowd.wait(60)
        result = json.loads(report_line)
    finally:
        for process in (crowd, serve):
            if process is not None and process.poll() is None:
                process.terminate()
                process.wait(30)
    if result["connected"] < clients:
        notes.append(f"{clients - result['connected']} clients could not connect")
    return FansReport(
        clients=clients, rate_target=rate, duration_s=duration, event_id=event_id,
        crowd_nice=crowd_nice, synthetic=synthetic,
        connected=result["connected"], served=result["served"], errors=result["errors"],
        caught_up=result["caught_up"], behind_max=result["behind_max"],
        probe_seat_changes_min=result["probe_seat_changes_min"],
        latency_samples=result["latencies"], p50_ms=result["p50_ms"], p95_ms=result["p95_ms"],
        p99_ms=result["p99_ms"], max_ms=result["max_ms"],
        serve_receipt_p50_ms=receipt["0.5"], serve_receipt_p99_ms=receipt["0.99"],
        serve_cpu_percent=served.percent,
        serve_rss_mb_max=round(served.rss_max / 2**20, 1), crowd_cpu_percent=crowding.percent,
        changes_fanned_out=int(fanned), chunks_sent=int(chunks), notes=notes, batch=batch)


def _snapshot_id(url: str, event_id: int) -> str:
    """The id of a fresh snapshot of the event's stream (its first event)."""
    with requests.get(f"{url}/api/events/{event_id}/stream", stream=True, timeout=60) as response:
        response.raise_for_status()
        for raw in response.iter_lines():
            line = raw.decode()
            if line.startswith("id:"):
                return line.partition(":")[2].strip()
    raise RuntimeError("the stream sent no snapshot")


def _listening_pid(url: str) -> int:
    """The process listening on url's port (a serve that this benchmark did not start)."""
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    for conn in psutil.net_connections("tcp"):
        if (conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr[1] == port
                and conn.pid):
            return int(conn.pid)
    raise RuntimeError(f"no process of this machine listens on port {port}")
