"""A render queue: one worker thread per device, the latest request of each kind wins.

The viewer's connection threads only submit jobs; the worker runs them one at a time. A job submitted
under a key that already waits replaces the waiting one (a camera that moved again makes the older
frame stale), keeping its place in line so that tabs take turns.
"""

import collections
import threading
import traceback
from typing import Callable, Hashable, Optional

Job = Callable[[], None]


class RenderQueue:
    """Runs submitted jobs on one worker thread; `dropped` counts jobs replaced before they ran."""

    def __init__(self, name: str = 'render'):
        self.dropped = 0
        self._pending: 'collections.OrderedDict[Hashable, Job]' = collections.OrderedDict()
        self._cond = threading.Condition()
        self._closed = False
        self._busy = False  # a job is running
        self._thread = threading.Thread(target=self._work, name=name, daemon=True)
        self._thread.start()

    def submit(self, key: Hashable, job: Job) -> None:
        """Run `job` on the worker; a job still waiting under the same `key` is dropped."""
        with self._cond:
            if self._closed:
                raise RuntimeError('the render queue is closed')
            if key in self._pending:
                self.dropped += 1
            self._pending[key] = job
            self._cond.notify()

    def cancel(self, owner: Hashable) -> None:
        """Drop the waiting jobs whose key is `owner` or a tuple starting with it (a closed tab's jobs)."""
        with self._cond:
            for key in [k for k in self._pending if k == owner or (isinstance(k, tuple) and k[:1] == (owner,))]:
                del self._pending[key]

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no job waits or runs; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._pending and not self._busy, timeout)

    def close(self, timeout: Optional[float] = None) -> bool:
        """Drop waiting jobs and stop the worker, waiting at most `timeout` seconds (None: no bound) for a running job.

        Returns False when that job still runs: it is abandoned (the worker is a daemon thread, so it
        does not keep the process alive), as a slow frame or mesh on a CPU must not hold up Ctrl+C.
        """
        with self._cond:
            self._closed = True
            self._pending.clear()
            self._cond.notify_all()
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _work(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._pending or self._closed)
                if self._closed:
                    return
                _, job = self._pending.popitem(last=False)
                self._busy = True
            try:
                job()
            except Exception:  # pylint: disable=broad-except
                # A failing job (e.g. a tab that closed mid-render) must not stop the others.
                traceback.print_exc()
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()
