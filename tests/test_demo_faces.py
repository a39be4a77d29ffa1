"""Faces in the demo: MediaPipe's face mesh finds them in the synthetic heads the demo source is fitted
to and in the bundled demo network's renders, natural and stylised, frontal and turned. Needs the faces
extra, so it runs in the faces test environment (.ci/run). Numbers: docs/demo_network.md."""

import importlib.util
import os

import pytest

import gen_utils
import legacy
from bench import demo_checks

pytestmark = pytest.mark.skipif(importlib.util.find_spec('mediapipe') is None,
                                reason='optional face tools not installed: pip install -r requirements-faces.txt')

# Faces to be found out of the 8 seeds in every row (alpha, yaw) of demo_checks.check_renders.
MIN_FACES_PER_ROW = 6


def test_face_mesh_finds_the_synthetic_training_faces():
    """The check's detector sees the faces the demo is fitted to (frontal: 8/8 natural, 7/8 toon)."""
    found = demo_checks.face_counts(demo_checks.synthetic_check_rows(yaws=(0.0,)))
    assert found == {(0.0, 0.0): 8, (1.0, 0.0): 7}, found


def test_face_mesh_finds_faces_in_every_row_of_the_demo_renders():
    G = legacy.load_network_pkl(os.path.join(gen_utils.REPO_ROOT, gen_utils.DEMO_NETWORK))['G_ema'].eval()
    found = demo_checks.face_counts(demo_checks.check_renders(G))
    assert set(found) == {(a, y) for a in demo_checks.CHECK_ALPHAS for y in demo_checks.CHECK_YAWS}
    assert all(n >= MIN_FACES_PER_ROW for n in found.values()), found
