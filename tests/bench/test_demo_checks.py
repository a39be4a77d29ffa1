"""bench/demo_checks.py: the toon-look statistics of the demo's face check."""

import numpy as np
import pytest

from bench import demo_checks


def test_toon_features_on_hand_made_images():
    size = 32
    grey = np.full((1, size, size, 3), 128, dtype=np.uint8)
    assert demo_checks.toon_features(grey) == dict(saturation=0.0, outline=0.0, flat=1.0)
    red = np.zeros((1, size, size, 3), dtype=np.uint8)
    red[..., 0] = 200
    assert demo_checks.toon_features(red)['saturation'] == 1.0
    # A one-pixel dark line on white: every line pixel of the 2-px-inset crop is an outline pixel, and
    # the 3x3 windows that touch it are not flat.
    lined = np.full((1, size, size, 3), 255, dtype=np.uint8)
    lined[:, :, 10] = 40
    features = demo_checks.toon_features(lined)
    assert features['outline'] == pytest.approx(1 / (size - 4))
    assert features['flat'] == pytest.approx(1 - 3 / (size - 2))


def test_toon_features_tell_the_synthetic_looks_apart():
    rows = demo_checks.synthetic_check_rows(yaws=(0.0,))
    natural, toon = (demo_checks.toon_features(rows[(alpha, 0.0)]) for alpha in (0.0, 1.0))
    assert toon['outline'] > 10 * natural['outline']
    assert toon['flat'] > natural['flat'] + 0.15
    assert toon['saturation'] > natural['saturation'] + 0.05
