"""`python -m pipelines.processor.worker`: one processor, until SIGTERM; run by supervise_worker.

With --standby it is a warm standby: it follows the published state and takes over when a line
("go") arrives on its standard input, so that a crash of the active worker costs a fence and the
last few records instead of a start. It exits when its standard input closes (its parent is gone).

Exit codes: 0 stopped, 1 a fatal processor error, EXIT_HUNG (4) a Kafka call that blocked past
its limit (both restarted by the parent), EXIT_OFFSETS_LOST (3) when committed offsets were
trimmed away (restarting cannot help: the events need a backfill).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time

from pipelines.processor.config import OffsetsLostError, ProcessorConfig, ProcessorError
from pipelines.processor.runner import run_processor
from pipelines.processor.supervise import EXIT_OFFSETS_LOST
from pipelines.settings import Settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m {__spec__.name if __spec__ else 'worker'}")
    parser.add_argument("--batch-size", type=int, default=5000)
    parser.add_argument("--slot", type=int, default=0,
                        help="which instance of a scaled-out processor (its transactional id)")
    parser.add_argument("--standby", action="store_true",
                        help="wait warm until a line on standard input says to take over")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stdout,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx2").setLevel(logging.WARNING)  # a line per registry request
    logging.getLogger("httpx").setLevel(logging.WARNING)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    settings = Settings()
    log = logging.getLogger("seatflow.worker")
    go = threading.Event()
    threading.Thread(target=watch_parent, args=(os.getppid(), stop), daemon=True,
                     name="parent-watch").start()
    if args.standby:
        threading.Thread(target=_wait_for_go, args=(go, stop), daemon=True).start()
    last = [0.0]

    def report(batch: object) -> None:
        if time.monotonic() - last[0] >= 10:  # a line every 10 s, not every batch
            last[0] = time.monotonic()
            log.info("batch %s", batch)

    try:
        stats = run_processor(settings, should_stop=stop.is_set,
                              config=ProcessorConfig.of(settings, slot=args.slot,
                                                        batch_size=args.batch_size,
                                                        exit_when_hung=True),
                              on_batch=report, standby=go.is_set if args.standby else None)
    except OffsetsLostError as e:
        log.error("%s", e)
        return EXIT_OFFSETS_LOST
    except ProcessorError as e:
        log.error("processor failed: %s", e)
        return 1
    log.info("stopped: %s", stats)
    return 0


def watch_parent(parent: int, stop: threading.Event, *, every_s: float = 1.0) -> None:
    """Stop (gracefully) once the supervising parent is gone: an orphaned worker would go on
    publishing beside the one that replaced it, or against whatever broker comes up next."""
    while not stop.wait(every_s):
        if os.getppid() != parent:
            logging.getLogger("seatflow.worker").warning(
                "the supervising process %d is gone: stopping", parent)
            stop.set()


def _wait_for_go(go: threading.Event, stop: threading.Event) -> None:
    """A line on standard input: take over. Its end: the parent is gone, so is the standby."""
    if sys.stdin.readline():
        logging.getLogger("seatflow.worker").info("standby: taking over")
        go.set()
    else:
        stop.set()


if __name__ == "__main__":
    sys.exit(main())
