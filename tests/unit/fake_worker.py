"""A stand-in for the processor's worker in test_supervise: crashes on its first start, then
runs until SIGTERM. Each start appends a line to the file named by FAKE_WORKER_LOG."""

import os
import signal
import sys
import time

if __name__ == "__main__":
    log = os.environ["FAKE_WORKER_LOG"]
    with open(log, "a") as out:
        out.write(f"{os.getpid()}\n")
    with open(log) as f:
        starts = len(f.read().splitlines())
    if starts == 1:
        sys.exit(1)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    while True:
        time.sleep(0.1)
