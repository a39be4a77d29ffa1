"""3-D face landmarks from MediaPipe's face mesh (an optional extra: see requirements-faces.txt).

MediaPipe 0.10.21 ships its face detector and 468-point face-mesh models inside the wheel, so this
runs offline. Landmarks come back in pixels of the input image, OpenCV camera axes: x right,
y down, z away from the viewer (z has the same scale as x; MediaPipe normalises it by the width).
"""

from typing import List

import numpy as np
import PIL.Image

INSTALL_HINT = ('face landmarks need the optional face tools: pip install -r requirements-faces.txt '
                '(mediapipe==0.10.21 with numpy<2, so preferably in a separate venv; see docs/datasets.md)')

# MediaPipe's face detector finds stylised faces (anime, cartoons) more reliably on small inputs;
# the mesh model itself runs on a 192x192 face crop, so detecting on a 256 px copy loses nothing.
DETECT_SIZE = 256


class FaceToolsMissing(ImportError):
    """The optional face-landmark package is not installed."""


class NoFaceFound(ValueError):
    """No face was detected in the image."""


class MultipleFacesFound(ValueError):
    """More than one face was detected where one was required."""


class FaceMeshDetector:
    """Finds faces and their 468 3-D landmarks; `detector(image)` -> list of (468, 3) float64 arrays.

    image: (H, W, 3) uint8 RGB. Faces are sorted by size (largest first); an empty list if none.
    """

    def __init__(self, max_faces: int = 4, min_confidence: float = 0.5):
        try:
            import mediapipe  # the optional face tools (requirements-faces.txt): imported when used
            face_mesh = mediapipe.solutions.face_mesh
        except (ImportError, AttributeError) as err:
            raise FaceToolsMissing(f'{INSTALL_HINT} ({type(err).__name__}: {err})') from err
        self._mesh = face_mesh.FaceMesh(static_image_mode=True, max_num_faces=max_faces,
                                        refine_landmarks=False, min_detection_confidence=min_confidence)

    def __call__(self, image: np.ndarray) -> List[np.ndarray]:
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f'image must be (H, W, 3) uint8 RGB, got {image.dtype} {image.shape}')
        height, width = image.shape[:2]
        scale = DETECT_SIZE / max(height, width)
        small = PIL.Image.fromarray(image).resize((max(1, round(width * scale)), max(1, round(height * scale))),
                                                  PIL.Image.LANCZOS)
        result = self._mesh.process(np.asarray(small))
        faces = []
        for face in result.multi_face_landmarks or []:
            normalised = np.array([[p.x, p.y, p.z] for p in face.landmark], dtype=np.float64)
            faces.append(normalised * np.array([width, height, width]))  # MediaPipe scales z like x
        return sorted(faces, key=lambda f: -np.ptp(f[:, 0]) * np.ptp(f[:, 1]))

    def close(self) -> None:
        self._mesh.close()
