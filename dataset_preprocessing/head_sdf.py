"""Procedural head shapes as signed distance functions (SDFs), in EG3D's world frame.

World frame (the one of `camera_utils.py`): y up, the face looks along +z, the head fits inside the
unit cube around the origin (EG3D's `box_warp=1`), the face surface passes near the camera pivot
(0, 0, 0.2). Lengths are world units. A head is a smooth union of ellipsoids (skull, jaw, nose,
ears, lips, neck) plus a hair cap and two eyeballs; a `HeadShape` holds the random proportions.
Every part is left-right symmetric except the hair fringe (`hair_part`), so mirroring a head is
negating one number (`HeadShape.mirrored`).
"""

import dataclasses
from typing import Dict, Tuple

import numpy as np

# Material ids of the surface parts.
BACKGROUND, SKIN, HAIR, EYE_WHITE, IRIS, PUPIL, LIPS = range(7)

# Sharpness of the smooth union between skin parts (world units).
_BLEND = 0.04


@dataclasses.dataclass(frozen=True)
class HeadShape:
    """Proportions of one head; ranges are those `sample` draws from."""
    head_width: float = 1.0     # [0.9, 1.1] skull scale along x.
    head_height: float = 1.0    # [0.92, 1.08] along y.
    head_depth: float = 1.0     # [0.92, 1.08] along z.
    jaw_width: float = 1.0      # [0.8, 1.15]
    chin_drop: float = 0.0      # [-0.02, 0.03] chin lowered by this much.
    nose_length: float = 1.0    # [0.7, 1.3] how far the nose sticks out.
    nose_width: float = 1.0     # [0.8, 1.2]
    ear_size: float = 1.0       # [0.8, 1.25]
    eye_spacing: float = 0.08   # [0.07, 0.09] half the distance between the eye centres.
    eye_radius: float = 0.032   # [0.027, 0.038]
    mouth_width: float = 1.0    # [0.8, 1.25]
    hair_volume: float = 1.06   # [1.03, 1.1] hair cap size relative to the skull.
    hairline: float = 0.12      # [0.08, 0.16] height of the hairline above the eyes.
    hair_part: float = 0.0      # [-0.08, 0.08] sideways offset of the fringe (the only asymmetry).

    @staticmethod
    def sample(rng: np.random.Generator) -> 'HeadShape':
        """A random head; draws exactly 14 uniforms from `rng`, in field order."""
        ranges = [(0.9, 1.1), (0.92, 1.08), (0.92, 1.08), (0.8, 1.15), (-0.02, 0.03), (0.7, 1.3), (0.8, 1.2),
                  (0.8, 1.25), (0.07, 0.09), (0.027, 0.038), (0.8, 1.25), (1.03, 1.1), (0.08, 0.16), (-0.08, 0.08)]
        values = rng.uniform([lo for lo, _ in ranges], [hi for _, hi in ranges])
        return HeadShape(*(float(v) for v in values))

    def mirrored(self) -> 'HeadShape':
        """The head mirrored about the x = 0 plane."""
        return dataclasses.replace(self, hair_part=-self.hair_part)


def _ellipsoid(p: np.ndarray, center: Tuple[float, float, float], radii: Tuple[float, float, float]) -> np.ndarray:
    """Approximate signed distance (M,) of points p (M, 3) to an ellipsoid (exact on the surface)."""
    q = (p - np.asarray(center)) / np.asarray(radii)
    k0 = np.sqrt(np.einsum('ij,ij->i', q, q))
    q = q / np.asarray(radii)
    k1 = np.sqrt(np.einsum('ij,ij->i', q, q))
    return k0 * (k0 - 1) / np.maximum(k1, 1e-9)


def _smooth_min(a: np.ndarray, b: np.ndarray, k: float) -> np.ndarray:
    """Polynomial smooth minimum: blends two SDFs over a band of width k."""
    h = np.clip(0.5 + 0.5 * (b - a) / k, 0, 1)
    return b + (a - b) * h - k * h * (1 - h)


class HeadSDF:
    """The signed distance field of one `HeadShape`, split into named parts for material lookup."""

    def __init__(self, shape: HeadShape):
        s = shape
        self.shape = s
        self.skull = ((0.0, 0.04, 0.0), (0.2 * s.head_width, 0.26 * s.head_height, 0.24 * s.head_depth))
        self.jaw = ((0.0, -0.1 - s.chin_drop, 0.05), (0.15 * s.jaw_width, 0.16, 0.17))
        self.nose = ((0.0, -0.02, 0.22 + 0.03 * s.nose_length), (0.035 * s.nose_width, 0.07, 0.05 * s.nose_length))
        ear = (0.03, 0.065 * s.ear_size, 0.045 * s.ear_size)
        self.ears = [((x * 0.19 * s.head_width, 0.0, -0.02), ear) for x in (-1, 1)]
        self.lips = ((0.0, -0.115 - 0.5 * s.chin_drop, 0.2), (0.05 * s.mouth_width, 0.016, 0.03))
        self.neck = ((0.0, -0.38, -0.04), (0.1, 0.2, 0.1))
        eye_y, eye_z = 0.05, 0.2 * s.head_depth
        self.eyes = [((x * s.eye_spacing, eye_y, eye_z), s.eye_radius) for x in (-1, 1)]
        self.eye_y = eye_y
        self.hair_cap = (self.skull[0], tuple(r * s.hair_volume for r in self.skull[1]))
        self.fringe = ((s.hair_part, eye_y + s.hairline + 0.03, 0.17), (0.12, 0.05, 0.08))

    def parts(self, p: np.ndarray) -> Dict[str, np.ndarray]:
        """Signed distances (M,) of points p (M, 3) to each part: skin, lips, hair, eyes."""
        skin = _ellipsoid(p, *self.skull)
        for part in (self.jaw, self.nose, *self.ears, self.neck):
            skin = _smooth_min(skin, _ellipsoid(p, *part), _BLEND)
        lips = _ellipsoid(p, *self.lips)

        # Hair: the enlarged skull above a plane through the hairline, tilted so it reaches lower at the back.
        normal = np.array([0.0, 1.0, -0.8]) / np.sqrt(1.64)
        hairline_point = np.array([0.0, self.eye_y + self.shape.hairline, 0.2])
        above = (p - hairline_point) @ normal
        hair = np.maximum(_ellipsoid(p, *self.hair_cap), -above)
        hair = np.minimum(hair, _ellipsoid(p, *self.fringe))

        eyes = np.minimum(*(np.linalg.norm(p - np.asarray(c), axis=-1) - r for c, r in self.eyes))
        return {'skin': skin, 'lips': lips, 'hair': hair, 'eyes': eyes}

    def __call__(self, p: np.ndarray) -> np.ndarray:
        """Signed distance (M,) of points p (M, 3); negative inside the head."""
        d = self.parts(p)
        return np.minimum(np.minimum(_smooth_min(d['skin'], d['lips'], 0.01), d['hair']), d['eyes'])

    def normals(self, p: np.ndarray, eps: float = 1e-4) -> np.ndarray:
        """Unit outward normals (M, 3) at points p (M, 3), from central differences of the SDF."""
        grad = np.stack([self(p + e) - self(p - e) for e in np.eye(3) * eps], axis=-1)
        return grad / np.maximum(np.linalg.norm(grad, axis=-1, keepdims=True), 1e-12)

    def materials(self, p: np.ndarray) -> np.ndarray:
        """Material id (M,) int64 of surface points p (M, 3): the part nearest to each point."""
        d = self.parts(p)
        names = ['skin', 'lips', 'hair', 'eyes']
        part = np.argmin(np.stack([d[n] for n in names], axis=-1), axis=-1)
        material = np.array([SKIN, LIPS, HAIR, EYE_WHITE])[part]

        # Iris and pupil: the front cap of each eyeball (the eyes look along +z).
        for center, radius in self.eyes:
            front = (p[:, 2] - center[2]) / radius
            near = np.linalg.norm(p - np.asarray(center), axis=-1) < radius * 1.2
            on_eye = near & (material == EYE_WHITE)
            material[on_eye & (front > 0.7)] = IRIS
            material[on_eye & (front > 0.92)] = PUPIL
        return material
