"""Face-mesh detections and toon-look statistics in the demo network's renders: seeds 0-7 x alpha {0, 1}
x yaw {0, 0.35}.

Runs MediaPipe's face mesh (the faces extra, requirements-faces.txt) on each 128 px render upscaled
to 256 px and prints, per row (alpha, yaw), how many of the seeds show a face, and the row's toon
statistics (bench.demo_checks.toon_features: HSV saturation, fraction of thin dark outline pixels,
fraction of flat pixels). With --synthetic it checks the synthetic heads themselves (heads 0-7 of
seed 0, natural look at alpha 0 and toon look at alpha 1, same cameras): the targets of both rows.

Examples:

    python -m bench.demo_face_check
    python -m bench.demo_face_check --network=/tmp/demo_fit/stage1.pkl --save=/tmp/check.png
    python -m bench.demo_face_check --synthetic
"""

import click
import numpy as np

import gen_utils
import legacy
from bench import demo_checks
from dnnlib import cli


@click.command(help=__doc__)
@click.option('--network', help='Network pickle [default: the bundled demo]', metavar='PKL', default=None,
              callback=cli.expand_path)
@click.option('--synthetic', help='Check the synthetic heads instead of a network', is_flag=True)
@click.option('--save', help='Also save the renders as one grid PNG (a row per (alpha, yaw))', metavar='PNG',
              default=None, callback=cli.expand_path)
def main(network: str, synthetic: bool, save: str) -> None:
    if synthetic:
        rows, label = demo_checks.synthetic_check_rows(), 'synthetic heads'
    else:
        path = gen_utils.resolve_network_path(network)
        rows, label = demo_checks.check_renders(legacy.load_network_pkl(path)['G_ema'].eval()), path
    counts = demo_checks.face_counts(rows)
    print(f'Face-mesh detections and toon statistics, {label}')
    print('| alpha | yaw | faces found | saturation | outline | flat |')
    print('|---|---|---|---|---|---|')
    for (alpha, yaw), n in counts.items():
        toon = demo_checks.toon_features(rows[(alpha, yaw)])
        print(f'| {alpha:g} | {yaw:g} | {n}/{len(rows[(alpha, yaw)])} | {toon["saturation"]:.3f} | '
              f'{toon["outline"]:.4f} | {toon["flat"]:.3f} |')
    if save is not None:
        grid = np.concatenate([np.concatenate(list(images), axis=1) for images in rows.values()], axis=0)
        gen_utils.save_png(grid, save)


if __name__ == '__main__':
    cli.run(main)
