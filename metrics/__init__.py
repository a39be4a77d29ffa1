"""Quality metrics: FID / KID / PR / IS (StyleGAN3's names) and the 3-D / stylisation metrics (docs/metrics.md)."""
