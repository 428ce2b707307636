"""The application thread pool used when threads > 0.

Theory of operation: N daemon threads take jobs from one SimpleQueue (a C-level queue, cheaper than
concurrent.futures: no Future per request). A job is (function, args). The event loop submits one job
per request; the job runs the exchange with blocking, timeout-bounded socket I/O and hands the
connection back to the loop when done. `shutdown()` queues one stop marker per thread and joins them
within a time budget.
"""

import logging
import queue
import threading
import time

__all__ = ["WorkerPool"]

log = logging.getLogger("fastwsgi.error")


class WorkerPool:
    def __init__(self, size: int):
        self.jobs = queue.SimpleQueue()
        self.threads = [threading.Thread(target=self._work, name=f"fastwsgi-app-{i}", daemon=True)
                        for i in range(size)]
        for thread in self.threads:
            thread.start()

    def submit(self, function, *args) -> None:
        self.jobs.put((function, args))

    def _work(self) -> None:
        get = self.jobs.get
        while True:
            job = get()
            if job is None:
                return
            function, args = job
            try:
                function(*args)
            except BaseException:  # a job must never kill its thread
                log.exception("Unexpected error in an application thread")

    def shutdown(self, timeout: float = 5.0) -> None:
        for _ in self.threads:
            self.jobs.put(None)
        deadline = time.monotonic() + timeout
        for thread in self.threads:
            thread.join(max(0.0, deadline - time.monotonic()))
