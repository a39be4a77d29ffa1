"""viewer.render_queue: one job at a time, the latest job per key wins, cancelled and failing jobs leave the rest;
closing does not wait for a slow job longer than asked."""

import threading

from viewer.render_queue import RenderQueue


def test_latest_job_per_key_wins_and_keys_take_turns():
    queue = RenderQueue()
    gate = threading.Event()
    ran = []
    queue.submit('blocker', gate.wait)  # holds the worker while the others queue up
    for i in range(5):
        queue.submit(('tab1', 'frame'), lambda i=i: ran.append(('tab1', i)))
    queue.submit(('tab2', 'frame'), lambda: ran.append(('tab2', 0)))
    queue.submit(('tab1', 'mesh'), lambda: ran.append(('tab1', 'mesh')))
    gate.set()
    assert queue.wait_idle(10)
    assert ran == [('tab1', 4), ('tab2', 0), ('tab1', 'mesh')]
    assert queue.dropped == 4
    queue.close()


def test_cancel_drops_one_owners_jobs_and_a_failing_job_does_not_stop_the_worker():
    queue = RenderQueue()
    gate = threading.Event()
    ran = []
    queue.submit('blocker', gate.wait)
    queue.submit(('closed tab', 'frame'), lambda: ran.append('closed'))
    queue.submit(('closed tab', 'mesh'), lambda: ran.append('closed mesh'))
    queue.submit(('failing tab', 'frame'), lambda: 1 / 0)
    queue.submit(('open tab', 'frame'), lambda: ran.append('open'))
    queue.cancel('closed tab')
    gate.set()
    assert queue.wait_idle(10)
    assert ran == ['open']
    queue.close()


def test_one_job_at_a_time():
    queue = RenderQueue()
    running, peak = [0], [0]
    lock = threading.Lock()

    def job():
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        threading.Event().wait(0.01)
        with lock:
            running[0] -= 1

    threads = [threading.Thread(target=lambda k=k: queue.submit(k, job)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert queue.wait_idle(10)
    assert peak[0] == 1
    queue.close()


def test_close_waits_for_a_running_job_at_most_the_timeout():
    """Regression: close() joined the worker without a bound, so Ctrl+C waited for a slow CPU frame or mesh."""
    queue = RenderQueue()
    release, started, ran = threading.Event(), threading.Event(), []
    queue.submit('slow frame', lambda: (started.set(), release.wait(60)))
    queue.submit('waiting frame', lambda: ran.append('waiting'))
    assert started.wait(10)
    # The job runs until released: close() must come back while it still runs and report it abandoned
    # (an unbounded join would block here until release.wait(60) ran out, then report True).
    assert queue.close(timeout=0.5) is False
    release.set()
    assert queue.close(timeout=10) is True  # the worker ends after its job, without running the dropped one
    assert ran == []
