"""A stand-in for the processor's worker in test_supervise. Each start appends "<pid> <role>" to
the file named by FAKE_WORKER_LOG. The first active worker crashes once FAKE_WORKER_STANDBYS
(default 1) standbys have started; a standby waits for its line on standard input, logs
"<pid> go" and runs on, or with FAKE_FIRST_TAKER_CRASHES set the first to take over crashes at
once; every other worker runs until SIGTERM."""

import os
import signal
import sys
import time


def _lines(log: str) -> list[str]:
    with open(log) as f:
        return f.read().splitlines()


if __name__ == "__main__":
    log = os.environ["FAKE_WORKER_LOG"]
    standby = "--standby" in sys.argv
    with open(log, "a") as out:
        out.write(f"{os.getpid()} {'standby' if standby else 'active'}\n")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    if standby:
        if not sys.stdin.readline():
            sys.exit(0)  # the parent is gone
        with open(log, "a") as out:
            out.write(f"{os.getpid()} go\n")
        first_taker = sum(line.endswith(" go") for line in _lines(log)) == 1
        if first_taker and os.environ.get("FAKE_FIRST_TAKER_CRASHES"):
            sys.exit(1)
    elif next(line for line in _lines(log) if line.endswith(" active")) == f"{os.getpid()} active":
        # The first active worker (a standby started after it may have written its line first:
        # under load, interpreters start in no set order).
        standbys = int(os.environ.get("FAKE_WORKER_STANDBYS", "1"))
        while sum(line.endswith(" standby") for line in _lines(log)) < standbys:
            time.sleep(0.05)
        sys.exit(1)
    while True:
        time.sleep(0.1)
