"""The viewer's page, on viser: one `ViewerSession` (controls, camera, pictures) per browser tab.

A tab's camera moves and control changes only submit a frame job to the shared `RenderQueue`; the
job reads the tab's latest camera and settings when it runs, so stale requests are dropped. Renders
are sent as the scene's background image, letterboxed to the canvas so the browser's vertical field
of view is the generator's.
"""

import dataclasses
import threading
import time
from typing import Dict, Optional

import numpy as np
import viser

from dnnlib.image_io import png_bytes
from shape_utils import ply_bytes
from viewer.render_core import OUTPUT_KINDS, RenderCore, RenderSettings, ViewCamera, letterbox, orbit_camera
from viewer.render_queue import RenderQueue
from viewer.uploads import UploadError, read_exemplar, read_latent, read_latent_file

EXEMPLAR_CHOICE = 'exemplar'  # style dropdown entry of an uploaded exemplar
NO_STYLE_CHOICE = 'none (plain EG3D)'
MESH_LEVEL = 10.0  # density iso-level of exported meshes (gen_samples.py --shape-level)
MESH_NAME = '/head_mesh'
FRAME_STOP_TIMEOUT = 2.0  # seconds a frame in flight may take to finish when the viewer stops


class ViewerSession:
    """One browser tab: its controls, its render settings, its frames."""

    def __init__(self, client: viser.ClientHandle, core: RenderCore, queue: RenderQueue):
        self.client = client
        self.core = core
        self.queue = queue
        self.settings = core.default_settings()
        self.last_image: Optional[np.ndarray] = None
        self.frames = 0  # frames shown in this tab
        self.closed = False
        self._mesh: Optional[viser.MeshHandle] = None  # the last exported mesh in this tab's scene
        self._lock = threading.RLock()  # guards settings between GUI callbacks (which may trigger each other)
        self._build_gui()
        # viser connects a tab on its first camera message and runs the camera callbacks of that
        # message before this (threaded) connect handler has registered ours, so the first frame is
        # asked for here: the camera is known by now, and a tab may send no other until it is moved.
        self.request_frame()

    # ------------------------------------------------------------------ controls

    def _build_gui(self) -> None:
        gui = self.client.gui
        core = self.core
        with gui.add_folder('Latent'):
            self.seed = gui.add_number('seed', initial_value=0, min=0, max=2 ** 32 - 1, step=1)
            self.truncation = gui.add_slider('truncation', min=0.0, max=1.0, step=0.05,
                                             initial_value=self.settings.truncation_psi)
            self.latent_upload = gui.add_upload_button('Upload latent.npy', mime_type='.npy',
                                                       hint="A latent.npy of projector.py (use its tuned network)")
            self.latent_path = gui.add_text('latent path', initial_value='', hint='A latent.npy on the server')
            self.latent_load = gui.add_button('Load latent path')
            self.latent_clear = gui.add_button('Use seed again', visible=False)
        with gui.add_folder('Style'):
            self.style = gui.add_dropdown('style', options=self._style_options(), initial_value=self._style_choice())
            self.alpha = gui.add_slider('alpha', min=0.0, max=2.0, step=0.05, initial_value=self.settings.alpha,
                                        hint='Style strength: 0 = natural, 1 = the style, above 1 exaggerates')
            self.exemplar_upload = gui.add_upload_button('Upload exemplar', mime_type='image/*',
                                                         disabled=not core.has_encoder,
                                                         hint='A style image (example-based stylisation)')
        with gui.add_folder('Render'):
            self.output = gui.add_dropdown('output', options=OUTPUT_KINDS, initial_value=self.settings.output)
            native = core.native_resolution
            self.resolution = gui.add_slider('neural rendering resolution', min=16, max=max(256, 2 * native), step=16,
                                             initial_value=native)
            self.readout = gui.add_text('render time', initial_value='waiting for the camera', disabled=True)
        with gui.add_folder('Export'):
            self.save_png = gui.add_button('Save PNG')
            self.mesh_resolution = gui.add_slider('mesh resolution', min=32, max=512, step=32, initial_value=128)
            self.export_mesh = gui.add_button('Export mesh (.ply)')
            self.show_mesh = gui.add_checkbox('show mesh in scene', initial_value=False)
        self.message = gui.add_markdown('')

        for handle in (self.seed, self.truncation, self.style, self.alpha, self.output, self.resolution):
            handle.on_update(lambda _: self._controls_changed())
        self.latent_upload.on_upload(lambda event: self._take_latent(
            lambda: read_latent(event.target.value.name, event.target.value.content, core.num_ws,
                                core.G.w_dim)))
        self.latent_load.on_click(lambda _: self._take_latent(
            lambda: read_latent_file(self.latent_path.value, core.num_ws, core.G.w_dim)))
        self.latent_clear.on_click(lambda _: self._set_latent(None))
        self.exemplar_upload.on_upload(lambda event: self._take_exemplar(event.target.value))
        self.save_png.on_click(lambda _: self._save_png())
        self.export_mesh.on_click(lambda _: self.queue.submit((self.client.client_id, 'mesh'), self._export_mesh))
        self.show_mesh.on_update(lambda _: self._show_mesh())
        self.client.camera.on_update(lambda _: self.request_frame())

    def _style_options(self):
        options = list(self.core.domain_names)
        if self.settings.exemplar is not None:
            options.append(EXEMPLAR_CHOICE)
        return options or [NO_STYLE_CHOICE]

    def _style_choice(self) -> str:
        if self.settings.exemplar is not None:
            return EXEMPLAR_CHOICE
        return self.settings.domain or NO_STYLE_CHOICE

    def _controls_changed(self) -> None:
        with self._lock:
            style = self.style.value
            self.settings = dataclasses.replace(
                self.settings, seed=int(self.seed.value), truncation_psi=float(self.truncation.value),
                domain=style if style in self.core.domain_names else None,
                exemplar=self.settings.exemplar if style == EXEMPLAR_CHOICE else None,
                alpha=float(self.alpha.value), output=self.output.value,
                neural_rendering_resolution=int(self.resolution.value))
            if style != EXEMPLAR_CHOICE and EXEMPLAR_CHOICE in self.style.options:
                self.style.options = self._style_options()  # the exemplar was dropped
        self.request_frame()

    def _take_exemplar(self, upload) -> None:
        try:
            exemplar = read_exemplar(upload.name, upload.content, self.core.device)
        except UploadError as err:
            self.show_error(str(err))
            return
        with self._lock:
            self.settings = dataclasses.replace(self.settings, exemplar=exemplar)
            self.style.options = self._style_options()
            self.style.value = EXEMPLAR_CHOICE
        self.show_info(f'Style from exemplar `{exemplar.name}`.')
        self.request_frame()

    def _take_latent(self, read) -> None:
        try:
            latent = read()
        except UploadError as err:
            self.show_error(str(err))
            return
        self._set_latent(latent)
        self.show_info(f'Latent `{latent.name}` in use (seed and truncation are ignored).')

    def _set_latent(self, latent) -> None:
        with self._lock:
            self.settings = dataclasses.replace(self.settings, latent=latent)
        for handle in (self.seed, self.truncation):
            handle.disabled = latent is not None
        self.latent_clear.visible = latent is not None
        if latent is None:
            self.show_info('')
        self.request_frame()

    def show_error(self, text: str) -> None:
        self.message.content = f'**Error:** {text}'
        self.client.add_notification('Error', text, color='red', auto_close_seconds=10)

    def show_info(self, text: str) -> None:
        self.message.content = text

    # ------------------------------------------------------------------ frames

    def request_frame(self) -> None:
        """Render the latest camera and settings soon; a frame still waiting is replaced."""
        if not self.closed:
            self.queue.submit((self.client.client_id, 'frame'), self._render_frame)

    def camera(self) -> ViewCamera:
        camera = self.client.camera
        return ViewCamera(position=tuple(camera.position), look_at=tuple(camera.look_at), fov_y=float(camera.fov))

    def _render_frame(self) -> None:
        if self.closed:
            return
        settings, camera, aspect = self.settings, self.camera(), self.client.camera.aspect
        start = time.perf_counter()
        try:
            image = self.core.render(settings, camera)
        except (ValueError, RuntimeError) as err:  # e.g. out of memory at a large neural rendering resolution
            self.show_error(f'render failed: {err}')
            return
        seconds = time.perf_counter() - start
        if self.closed:
            return
        self.last_image = image
        self.client.scene.set_background_image(letterbox(image, aspect), format='jpeg', jpeg_quality=95)
        self.frames += 1
        self.readout.value = f'{seconds * 1000:.0f} ms ({1 / seconds:.1f} frames/s), frame {self.frames}'

    def _save_png(self) -> None:
        image, settings = self.last_image, self.settings
        if image is None:
            self.show_error('nothing rendered yet; wait for the first picture')
            return
        self.client.send_file_download(f'{self._stem(settings)}_{settings.output}.png', png_bytes(image),
                                       save_immediately=True)

    def _export_mesh(self) -> None:
        settings = self.settings
        note = self.client.add_notification('Mesh', 'extracting the surface...', loading=True,
                                            with_close_button=False)
        try:
            verts, faces = self.core.mesh(settings, int(self.mesh_resolution.value), MESH_LEVEL)
        except ValueError as err:
            note.remove()
            self.show_error(f'no mesh: {err}')
            return
        note.remove()
        if self.closed:
            return
        self.client.send_file_download(f'{self._stem(settings)}.ply', ply_bytes(verts, faces), save_immediately=True)
        self._mesh = self.client.scene.add_mesh_simple(MESH_NAME, verts, faces, color=(200, 200, 200),
                                                       visible=bool(self.show_mesh.value))
        self.show_info(f'Mesh: {len(verts)} vertices, {len(faces)} faces.')

    def _show_mesh(self) -> None:
        if self._mesh is None:
            if self.show_mesh.value:
                self.show_info('Export a mesh first; it appears in the scene then.')
            return
        self._mesh.visible = bool(self.show_mesh.value)

    @staticmethod
    def _stem(settings: RenderSettings) -> str:
        source = f'latent-{settings.latent.name.rsplit(".", 1)[0]}' if settings.latent is not None \
            else f'seed{settings.seed:04d}'
        return f'{source}_alpha{settings.alpha:.2f}'

    def close(self) -> None:
        self.closed = True
        self.queue.cancel(self.client.client_id)


class ViewerApp:
    """The viser server with one `ViewerSession` per connected tab, all rendering through one queue."""

    def __init__(self, core: RenderCore, host: str = '127.0.0.1', port: int = 8080):
        self.core = core
        self.queue = RenderQueue()
        self.sessions: Dict[int, ViewerSession] = {}
        self.server = viser.ViserServer(host=host, port=port, label='PStyle-3D', verbose=False)
        self.server.scene.set_up_direction('+y')  # EG3D's world is y-up
        start = orbit_camera(core.G, 0.0, 0.0)
        self.server.initial_camera.position = start.position
        self.server.initial_camera.look_at = start.look_at
        self.server.initial_camera.up = (0.0, 1.0, 0.0)
        self.server.initial_camera.fov = start.fov_y
        self.server.on_client_connect(self._connect)
        self.server.on_client_disconnect(self._disconnect)

    @property
    def address(self) -> str:
        return f'http://{self.server.get_host()}:{self.server.get_port()}'

    def _connect(self, client: viser.ClientHandle) -> None:
        self.sessions[client.client_id] = ViewerSession(client, self.core, self.queue)

    def _disconnect(self, client: viser.ClientHandle) -> None:
        session = self.sessions.pop(client.client_id, None)
        if session is not None:
            session.close()

    def stop(self, frame_timeout: float = FRAME_STOP_TIMEOUT) -> bool:
        """Stop serving and rendering; a frame or mesh in flight gets `frame_timeout` seconds to finish.

        Returns False when it still runs then (abandoned, never shown): the process should end with
        os._exit, as Python's interpreter teardown aborts a thread that is still inside PyTorch.
        """
        for session in list(self.sessions.values()):
            session.close()  # a frame that finishes now is not sent to a server that is going away
        self.server.stop()  # bounded by viser (a few seconds)
        return self.queue.close(frame_timeout)
