"""Interactive 3-D viewer in the browser: orbit a generated head, change style strength, domains, exemplars, latents."""

import os
import signal
import socket
import sys
from typing import Optional

import click
import torch

import gen_utils
import legacy
from dnnlib import cli
from viewer.render_core import RenderCore
from viewer.ui import ViewerApp

# ----------------------------------------------------------------------------


def check_host(host: str) -> None:
    """Refuse an address this machine cannot serve on (viser would keep retrying it)."""
    try:
        with socket.socket(socket.AF_INET6 if ':' in host else socket.AF_INET) as probe:
            probe.bind((host, 0))
    except (OSError, OverflowError) as err:
        raise click.BadParameter(f'cannot serve on "{host}" ({err}); use 127.0.0.1 (then an SSH tunnel) or an '
                                 f'address of this machine', param_hint="'--host'") from err


@click.command()
@click.option('--network', help='Network pickle (path or URL)  [default: the bundled demo network]', metavar='PATH')
@click.option('--host', help='Address to serve on (0.0.0.0 = every interface of this machine)', metavar='ADDRESS',
              default='127.0.0.1', show_default=True)
@click.option('--port', type=click.IntRange(min=1, max=65535), help='Port to serve on (the next free one if taken)',
              default=8080, show_default=True, metavar='PORT')
@click.option('--ray-chunk', type=click.IntRange(min=1), default=65536, show_default=True, metavar='INT',
              help='Rays rendered at once (bounds memory)')
@click.option('--threads', type=click.IntRange(min=1), default=1, show_default=True, metavar='INT',
              help='CPU threads of PyTorch (small frames render fastest on one; see docs/viewer.md)')
@click.option('--device', 'device_name', type=click.Choice(['auto', 'cpu', 'cuda']), default='auto',
              show_default=True, help='Where to render')
def main(network: Optional[str], host: str, port: int, ray_chunk: int, threads: int, device_name: str):
    """Serve the interactive viewer: open the printed address in a browser (it never opens one itself).

    Drag to orbit, scroll to zoom; the panel sets seed, truncation, style domain, `alpha` (style
    strength), an exemplar image, a latent.npy from projector.py, the output kind and the neural
    rendering resolution, and saves PNGs and meshes. Without --network the bundled demo network is used.

    Examples:

    \b
    # The bundled demo network at http://127.0.0.1:8080
    python visualizer.py

    \b
    # A trained style network on a GPU server; view it from a laptop through an SSH tunnel
    # (on the laptop: ssh -N -L 8080:127.0.0.1:8080 user@gpu-server, then open http://127.0.0.1:8080).
    python visualizer.py --network=pixar.pkl --port=8080

    \b
    # A projected photo: load its latent.npy in the page, with projector.py's tuned network.
    python visualizer.py --network=out/network-pti.pkl
    """
    check_host(host)
    torch.set_num_threads(threads)
    network_path = gen_utils.resolve_network_path(network)
    device = gen_utils.select_device(device_name)
    G = legacy.load_generator(network_path, device)
    G.rendering_kwargs['ray_chunk_size'] = ray_chunk

    app = ViewerApp(RenderCore(G, device), host=host, port=port)
    print(f'Viewer at {app.address} (open it in a browser; Ctrl+C stops it)', flush=True)
    try:
        app.server.sleep_forever()
    except KeyboardInterrupt:  # Ctrl+C, or SIGTERM through cli.run
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, signal.SIG_DFL)  # a second Ctrl+C or SIGTERM ends the process at once
        print('Viewer stopping...', file=sys.stderr, flush=True)
    finally:
        finished = app.stop()
    if not finished:
        print('Viewer stopped; the frame in flight was abandoned', file=sys.stderr, flush=True)
        sys.stdout.flush()
        os._exit(0)  # skips the interpreter teardown, which would abort the render thread inside PyTorch

# ----------------------------------------------------------------------------


if __name__ == '__main__':
    cli.run(main)
