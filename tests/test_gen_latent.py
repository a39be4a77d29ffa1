"""gen_samples.py / gen_videos.py --latent: projected latents in place of seeds, on a tiny network snapshot."""

import os

import numpy as np
import PIL.Image
import torch
from click.testing import CliRunner

import gen_samples
import gen_videos
from training import inference
from tests.gen_network import write_tiny_snapshot


def test_latent_renders_exactly_what_its_seed_renders(tmp_path):
    network = str(tmp_path / 'tiny.pkl')
    G = write_tiny_snapshot(network, domain_names=['toon'])
    c = inference.generator_camera_label(G, 0.0, 0.0, device=torch.device('cpu'))
    ws = G.mapping(inference.z_from_seed(0, G.z_dim, torch.device('cpu')), c, truncation_psi=0.7, truncation_cutoff=14)
    os.makedirs(tmp_path / 'me')
    np.save(tmp_path / 'me' / 'latent.npy', ws.numpy().astype(np.float32))  # as projector.py writes it
    common = [f'--network={network}', '--views=0:0,0.4:-0.1', '--alpha=0,1', '--device=cpu']
    by_seed = CliRunner().invoke(gen_samples.generate_images, [*common, '--seeds=0', f'--outdir={tmp_path / "a"}'])
    by_latent = CliRunner().invoke(gen_samples.generate_images, [*common, f'--latent={tmp_path / "me" / "latent.npy"}',
                                                                 f'--outdir={tmp_path / "b"}'])
    assert by_seed.exit_code == 0 and by_latent.exit_code == 0, by_latent.output
    assert 'Generating me (1/1)' in by_latent.output
    grid_seed = np.asarray(PIL.Image.open(tmp_path / 'a' / 'seed0000_toon_grid.png'))
    grid_latent = np.asarray(PIL.Image.open(tmp_path / 'b' / 'me_toon_grid.png'))
    np.testing.assert_array_equal(grid_seed, grid_latent)  # the seed-0 render seed is the latents' one
    assert os.path.isfile(tmp_path / 'b' / 'me_toon_alpha1.00_yaw+0.40_pitch-0.10.png')

    # A folder of latents drives a video grid; a latent of the wrong shape is a clear error.
    folder = tmp_path / 'latents'
    os.makedirs(folder)
    np.save(folder / 'anna.npy', ws[0].numpy())
    np.save(folder / 'ben.npy', ws.numpy())
    video = CliRunner().invoke(gen_videos.generate_videos, [
        f'--network={network}', f'--latent={folder}', '--grid=2x1', '--w-frames=2', '--device=cpu',
        f'--outdir={tmp_path / "v"}'])
    assert video.exit_code == 0, video.output
    assert ([f for f in os.listdir(tmp_path / 'v') if f.endswith('.mp4')]
            == ['anna+ben_2x1_orbit_image_toon_alpha1.00.mp4'])
    np.save(folder / 'bad.npy', np.zeros((3, 7), np.float32))
    bad = CliRunner().invoke(gen_samples.generate_images, [*common, f'--latent={folder}', f'--outdir={tmp_path / "c"}'])
    assert bad.exit_code == 2 and "Invalid value for '--latent'" in bad.output and 'got (3, 7)' in bad.output
