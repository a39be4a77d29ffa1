"""The browser viewer (visualizer.py): a render core (render_core) and its viser UI (ui), joined by a render queue."""
