"""The viewer in a real browser: Debian's chromium (headless, software WebGL) driven by playwright.

One viewer on the bundled demo network serves the whole module. Set VIEWER_SCREENSHOT=path to keep
the screenshot of the first rendered page (docs/viewer.png is made that way).
"""

import io
import os
import socket
import time

import numpy as np
import PIL.Image
import pytest
import torch

import gen_utils
import legacy
from viewer.render_core import RenderCore
from viewer.ui import ViewerApp

pytestmark = pytest.mark.slow

CHROMIUM = '/usr/bin/chromium'
CHROMIUM_ARGS = ['--use-gl=angle', '--use-angle=swiftshader', '--enable-unsafe-swiftshader']
VIEWPORT = dict(width=1000, height=700)
# The picture's middle, left of the control panel (x from 0 to 660 px is the canvas).
PICTURE = (slice(200, 600), slice(200, 560))
PORTRAITS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'data', 'portraits')
TIMEOUT = 120  # seconds; a frame of the demo network takes about a second on a busy 2-core CPU

if not os.path.exists(CHROMIUM):
    pytest.skip(f'the browser tests need Debian\'s chromium at {CHROMIUM} (apt-get install chromium; .ci/run '
                f'installs it)', allow_module_level=True)
sync_api = pytest.importorskip('playwright.sync_api', reason='the browser tests need the playwright client '
                               '(pip install -r requirements.txt)')


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def wait_for(condition, what: str, timeout: float = TIMEOUT) -> None:
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            raise AssertionError(f'timed out after {timeout} s waiting for {what}')
        time.sleep(0.1)


@pytest.fixture(scope='module')
def app():
    device = torch.device('cpu')
    G = legacy.load_generator(gen_utils.resolve_network_path(None), device)
    viewer = ViewerApp(RenderCore(G, device), host='127.0.0.1', port=_free_port())
    yield viewer
    viewer.stop()


@pytest.fixture(scope='module')
def browser():
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def open_tab(app, browser):
    """A new tab on the viewer; returns (page, its session) once the first frame is shown."""
    before = set(app.sessions)
    page = browser.new_page(viewport=VIEWPORT)
    page.goto(app.address)
    wait_for(lambda: set(app.sessions) - before, 'the tab to connect')
    session = app.sessions[(set(app.sessions) - before).pop()]
    wait_for(lambda: session.frames >= 1, 'the first frame')
    settle(app, session)
    return page, session


def settle(app, session) -> None:
    """Wait until no frame is waiting or rendering, and the last one reached the page."""
    wait_for(lambda: app.queue.wait_idle(0.5), 'the render queue to empty')
    time.sleep(1.0)  # websocket delivery and the browser's repaint


def picture(page) -> np.ndarray:
    """The page's pixels (H, W, 3) int."""
    return np.asarray(PIL.Image.open(io.BytesIO(page.screenshot())).convert('RGB')).astype(int)


def wait_for_picture(page, condition, what: str) -> np.ndarray:
    """Screenshots until `condition(middle of the picture)` holds (software WebGL repaints late); returns the last."""
    shots = []
    wait_for(lambda: shots.append(picture(page)) or condition(shots[-1][PICTURE]), what)
    return shots[-1]


def changed_from(before: np.ndarray, threshold: float):
    return lambda middle: np.abs(middle - before[PICTURE]).mean() > threshold


def set_number(page, label: str, value: str) -> None:
    """Type into the number box of the control labelled `label`."""
    box = page.locator(f'xpath=//label[text()="{label}"]/ancestor::div[.//input[@inputmode="decimal"]][1]'
                       f'//input[@inputmode="decimal"]').first
    box.fill(value)
    box.press('Enter')


def test_page_shows_a_head_that_follows_the_mouse_and_alpha(app, browser):
    page, session = open_tab(app, browser)
    # A rendered head, not the empty canvas: varied colours over the middle of the picture.
    first = wait_for_picture(page, lambda middle: middle.std() > 10 and middle.mean() < 245, 'a rendered head')
    keep = os.environ.get('VIEWER_SCREENSHOT')
    if keep:  # a 256-colour PNG keeps the docs' copy small
        PIL.Image.fromarray(first.astype(np.uint8)).quantize(256).save(keep, optimize=True)
    assert 'frames/s' in page.locator('input[disabled]').last.input_value()

    # Drag to orbit: the camera moves and the picture changes.
    frames = session.frames
    position = np.array(session.client.camera.position)
    page.mouse.move(330, 350)
    page.mouse.down()
    page.mouse.move(450, 330, steps=8)
    page.mouse.up()
    wait_for(lambda: session.frames > frames, 'a frame after the drag')
    settle(app, session)
    assert np.linalg.norm(np.array(session.client.camera.position) - position) > 0.1
    wait_for_picture(page, changed_from(first, 5), 'the picture to follow the drag')

    # alpha 0 (natural) then 1 (style): the picture changes.
    set_number(page, 'alpha', '0')
    wait_for(lambda: session.settings.alpha == 0.0, 'alpha 0 to reach the server')
    settle(app, session)
    natural = picture(page)
    set_number(page, 'alpha', '1')
    wait_for(lambda: session.settings.alpha == 1.0, 'alpha 1 to reach the server')
    settle(app, session)
    wait_for_picture(page, changed_from(natural, 5), 'the picture to change from alpha 0 to 1')
    page.close()


def test_exemplar_upload_and_bad_uploads(app, browser, tmp_path):
    page, session = open_tab(app, browser)
    exemplar_input = page.locator('input[type=file][accept="image/*"]')
    latent_input = page.locator('input[type=file][accept=".npy"]')

    # Not an image: a message in the page, nothing changes.
    (tmp_path / 'notes.png').write_text('not an image')
    settings = session.settings
    exemplar_input.set_input_files(str(tmp_path / 'notes.png'))
    page.get_by_text('"notes.png" is not an image').first.wait_for(timeout=TIMEOUT * 1000)
    assert session.settings == settings

    # A latent of the wrong shape: a message naming the expected shape, nothing changes.
    np.save(tmp_path / 'latent.npy', np.zeros((1, 3, 512), dtype=np.float32))
    latent_input.set_input_files(str(tmp_path / 'latent.npy'))
    expected = f'(1, {app.core.num_ws}, 512)'
    page.get_by_text(expected).first.wait_for(timeout=TIMEOUT * 1000)
    assert session.settings == settings

    # A real art portrait as the exemplar: the style changes to it and the picture follows.
    before = picture(page)
    exemplar_input.set_input_files(os.path.join(PORTRAITS, 'art_Cartoons_00038_07.jpg'))
    wait_for(lambda: session.settings.exemplar is not None, 'the exemplar to be read')
    page.get_by_text('Style from exemplar').first.wait_for(timeout=TIMEOUT * 1000)
    assert 'art_Cartoons_00038_07.jpg' in page.get_by_text('Style from exemplar').first.inner_text()
    settle(app, session)
    wait_for_picture(page, changed_from(before, 2), 'the picture to take the exemplar style')
    page.close()


def test_tabs_are_independent_and_a_tab_closed_mid_render_disturbs_nothing(app, browser):
    page1, session1 = open_tab(app, browser)
    page2, session2 = open_tab(app, browser)
    set_number(page2, 'alpha', '0.5')
    wait_for(lambda: session2.settings.alpha == 0.5, 'tab 2 alpha')
    assert session1.settings.alpha == 1.0

    # Close tab 2 while its frame renders, then tab 1 keeps rendering.
    set_number(page2, 'alpha', '1.5')
    wait_for(lambda: session2.settings.alpha == 1.5, 'tab 2 alpha')
    page2.close()
    wait_for(lambda: session2.closed, 'the server to see tab 2 go')
    frames = session1.frames
    set_number(page1, 'alpha', '0.25')
    wait_for(lambda: session1.frames > frames and session1.settings.alpha == 0.25, 'tab 1 to render again')
    settle(app, session1)
    assert session1.client.client_id in app.sessions and session2.client.client_id not in app.sessions
    page1.close()
