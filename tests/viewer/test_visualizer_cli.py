"""visualizer.py: it serves the page at the address it prints and stops promptly on Ctrl+C; bad options give
one clear line."""

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from typing import Tuple

import pytest
from click.testing import CliRunner

import visualizer

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.parametrize('args, message', [
    (['--host=256.1.1.1'], "Invalid value for '--host': cannot serve on \"256.1.1.1\""),
    (['--port=0'], "Invalid value for '--port': 0 is not in the range 1<=x<=65535"),
    (['--network=missing.pkl'], "Invalid value for '--network': network pickle \"missing.pkl\" does not exist"),
])
def test_bad_options_name_the_problem(args, message):
    result = CliRunner().invoke(visualizer.main, args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert 'Traceback' not in result.output


# visualizer.py with a frame that never finishes in flight (a browser tab would start one): every frame
# renders at once, again and again, in the render queue's worker, as soon as the viewer serves.
ENDLESS_FRAME_VIEWER = """
import dataclasses
import visualizer
from dnnlib import cli
from viewer.render_core import orbit_camera
from viewer.ui import ViewerApp

class ViewerRenderingForever(ViewerApp):
    def __init__(self, core, **kwargs):
        super().__init__(core, **kwargs)
        camera = orbit_camera(core.G, 0.0, 0.0)
        settings = dataclasses.replace(core.default_settings(), neural_rendering_resolution=128)
        def endless_frame():
            print('rendering', flush=True)
            while True:
                core.render(settings, camera)
        self.queue.submit('endless frame', endless_frame)

visualizer.ViewerApp = ViewerRenderingForever
cli.run(visualizer.main)
"""
STOP_TIMEOUT = 60  # seconds from Ctrl+C to exit; about 3 s on a loaded 2-core CPU
START_TIMEOUT = 600  # seconds to the awaited line; 16-19 s on a loaded 2-core CPU, more while plugins build


def start_viewer(program: list, port: int, wait_for: str) -> Tuple[subprocess.Popen, str]:
    """The viewer on `port` and its output from `wait_for` to the end of that line, once printed.

    `wait_for` may follow other text on its line (another thread's unfinished line, such as a plugin
    build's "Setting up ..."); a viewer that has not printed it within START_TIMEOUT fails the test.
    """
    # PYTHONFAULTHANDLER: a viewer that hangs prints every thread's stack when the test aborts it.
    env = dict(os.environ, OMP_NUM_THREADS='1', BROWSER='false', PYTHONFAULTHANDLER='1')
    proc = subprocess.Popen([sys.executable, *program, f'--port={port}', '--device=cpu'], cwd=REPO_ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    seen: list = []

    def read_until_found() -> None:
        for line in proc.stdout:
            seen.append(line)
            if wait_for in line:
                return

    reader = threading.Thread(target=read_until_found, daemon=True)
    reader.start()
    reader.join(START_TIMEOUT)
    if seen and wait_for in seen[-1]:
        return proc, seen[-1][seen[-1].index(wait_for):]
    proc.kill()
    reader.join()
    raise AssertionError(f'the viewer did not print "{wait_for}" within {START_TIMEOUT} s '
                         f'(exit code {proc.wait()}):\n{"".join(seen)}')


def interrupt(proc: subprocess.Popen) -> str:
    """Ctrl+C; the viewer's remaining output once it exited (the test fails if it has not within STOP_TIMEOUT)."""
    proc.send_signal(signal.SIGINT)
    try:
        # communicate() drains the output while waiting: a full pipe would block the viewer's last writes
        return proc.communicate(timeout=STOP_TIMEOUT)[0]
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGABRT)  # the fault handler prints the stacks of the hung viewer
        output = proc.communicate()[0]
        raise AssertionError(f'the viewer did not stop within {STOP_TIMEOUT} s of Ctrl+C:\n{output}') from None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def test_serves_the_page_at_the_printed_address_and_stops_on_ctrl_c():
    port = free_port()
    proc, line = start_viewer(['visualizer.py'], port, wait_for='Viewer at ')
    try:
        address = line.split()[2]
        assert address == f'http://127.0.0.1:{port}'
        with urllib.request.urlopen(address, timeout=30) as response:
            assert response.status == 200 and b'<html' in response.read()
    finally:
        output = interrupt(proc)
    assert proc.returncode == 0 and 'Viewer stopping...' in output, output


@pytest.mark.slow
def test_ctrl_c_does_not_wait_for_the_frame_in_flight():
    """Regression: Ctrl+C waited for the frame being rendered without a bound (minutes for a slow CPU frame)."""
    proc, _ = start_viewer(['-c', ENDLESS_FRAME_VIEWER], free_port(), wait_for='rendering')
    time.sleep(1)  # well into a frame
    output = interrupt(proc)  # the frame never ends: waiting for it would fail at STOP_TIMEOUT
    assert proc.returncode == 0, output  # not aborted by PyTorch at interpreter teardown
    assert 'Viewer stopping...' in output and 'the frame in flight was abandoned' in output, output
