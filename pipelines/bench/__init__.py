"""Benchmarks, each with a report: one module per benchmark (`processor`, `latency`), what they
share (`common`, `changes`). `bench chaos` and `bench scale` live in pipelines/chaos/ and
pipelines/scale.py, `bench fans` in pipelines/serve/bench.py."""

from pipelines.bench.changes import (
    produce_changes,
    scratch_config,
    scratch_outputs,
    synthetic_changes,
)
from pipelines.bench.common import report_dict, run_cli
from pipelines.bench.latency import (
    CpuSampler,
    LatencyReport,
    MachineLoad,
    bench_latency,
    machine_load,
    process_group,
)
from pipelines.bench.processor import BenchReport, bench_processor, fill_state, state_memory_mb
from pipelines.host.load import SIMULATOR_NICE

__all__ = ["SIMULATOR_NICE", "BenchReport", "CpuSampler", "LatencyReport", "MachineLoad",
           "bench_latency", "bench_processor", "fill_state", "machine_load", "process_group",
           "produce_changes", "report_dict", "run_cli", "scratch_config", "scratch_outputs",
           "state_memory_mb", "synthetic_changes"]
