"""The demo network's depth table (docs/demo_network.md): natural and stylised depth error against the
synthetic heads' ground truth, stylised-vs-natural depth, and the image change alpha 0 -> 1.

Views as fit_source.py renders them (training.source_fit.render_views): heads 0..N-1 of seed 0, each
from its dataset camera plus random views.

Examples:

    python -m bench.demo_depth_check
    python -m bench.demo_depth_check --network=/tmp/demo_style/final.pkl --heads=8 --views=8 --trunc=0.7
"""

import click

import gen_utils
import legacy
from bench import demo_checks
from dnnlib import cli
from training.source_fit import render_views


@click.command(help=__doc__)
@click.option('--network', help='Network pickle [default: the bundled demo]', metavar='PKL', default=None,
              callback=cli.expand_path)
@click.option('--heads', help='Heads 0..N-1', type=click.IntRange(min=1), default=4, show_default=True)
@click.option('--views', 'views_per_head', help='Views per head', type=click.IntRange(min=1), default=4,
              show_default=True)
@click.option('--trunc', 'truncation_psi', help='Truncation of the heads\' latents towards w_avg',
              type=cli.FiniteFloat(min=0, max=1), default=1.0, show_default=True)
def main(network: str, heads: int, views_per_head: int, truncation_psi: float) -> None:
    path = gen_utils.resolve_network_path(network)
    G = legacy.load_network_pkl(path)['G_ema'].eval()
    views = render_views(heads, views_per_head, G.img_resolution, seed=0)
    row = demo_checks.depth_table(G, views, truncation_psi)
    print(f'{path}: heads 0-{heads - 1} x {views_per_head} views, truncation {truncation_psi:g}')
    print('| natural depth error | stylised depth error | stylised vs natural depth | image change alpha 0 -> 1 |')
    print('|---|---|---|---|')
    print(f'| {row["natural"]:.3f} | {row["stylised"]:.3f} | {row["stylised_vs_natural"]:.3f} | '
          f'{row["image_change"]:.2f} |')


if __name__ == '__main__':
    cli.run(main)
