"""Real photos into the generator: W / W+ projection and pivotal tuning (projector.py is the CLI)."""
