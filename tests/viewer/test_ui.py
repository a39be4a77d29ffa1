"""viewer.ui.ViewerSession without a browser: a stand-in viser client and render core."""

from unittest import mock

import numpy as np

from viewer.render_core import RenderSettings
from viewer.render_queue import RenderQueue
from viewer.ui import ViewerSession


def stand_in_core(picture: np.ndarray):
    core = mock.MagicMock()
    core.default_settings.return_value = RenderSettings(domain='toon')
    core.domain_names = ['toon']
    core.native_resolution = 32
    core.render.return_value = picture
    return core


def test_a_tab_gets_its_first_frame_without_another_camera_message():
    # viser connects a tab on its first camera message and dispatches that message's camera callbacks
    # before the connect handler has registered the session's: a tab whose camera then stays still
    # sent no frame request at all (CI: 'timed out after 120 s waiting for the first frame').
    picture = np.full((32, 32, 3), 7, dtype=np.uint8)
    core = stand_in_core(picture)
    client = mock.MagicMock()
    client.client_id = 1
    client.camera = mock.MagicMock(position=(0.0, 0.0, 2.7), look_at=(0.0, 0.0, 0.0), fov=0.33, aspect=2.0)
    queue = RenderQueue()
    try:
        session = ViewerSession(client, core, queue)
        assert queue.wait_idle(10)
    finally:
        queue.close()
    assert session.frames == 1
    [(settings, camera), _] = core.render.call_args
    assert settings == RenderSettings(domain='toon')
    assert camera.position == (0.0, 0.0, 2.7) and camera.fov_y == 0.33
    [(background,), kwargs] = client.scene.set_background_image.call_args
    assert background.shape == (32, 64, 3)  # letterboxed to the canvas' aspect 2
    assert (background[:, 16:48] == 7).all() and (background[:, :16] == 0).all()
    client.camera.on_update.assert_called_once()  # later camera moves still ask for frames
