"""Convert a folder or zip of images into an EG3D-format dataset (see docs/datasets.md).

Output: `00000/img00000000.png`, ... (RGB, square, one resolution) and `dataset.json` with one
25-number camera label per image: {"labels": [["00000/img00000000.png", [cam2world 16, intrinsics 9]], ...]}.
"""

import csv
import functools
import json
import os
import shutil
import sys
import tempfile
import zipfile
from typing import Callable, Dict, List, Optional, Tuple

import click
import numpy as np
import PIL.Image
from tqdm import tqdm

from camera_utils import checked_camera_labels, dataset_labels_from_json, read_dataset_labels, xflip_camera_label
from dataset_preprocessing import face_pose
from dataset_preprocessing.face_landmarks import FaceMeshDetector, FaceToolsMissing
from dnnlib import cli, image_io

TRANSFORMS = ('none', 'center-crop', 'center-crop-wide')


def open_image_source(source: str) -> Tuple[List[str], Callable[[str], np.ndarray]]:
    """(sorted relative image paths with '/' separators, loader name -> (H, W, 3) uint8 RGB) of a folder or zip.

    Images are read by `dnnlib.image_io.read_image` (16-bit and float scaled, EXIF orientation applied,
    transparent pixels composited over white); an unreadable one raises ImageReadError (a ValueError).
    """
    if os.path.isdir(source):
        return image_io.list_images(source), lambda name: image_io.read_image(os.path.join(source, name), name=name)
    if os.path.isfile(source) and source.lower().endswith('.zip'):
        try:
            archive = zipfile.ZipFile(source)
        except zipfile.BadZipFile as err:
            raise click.ClickException(f'--source {source} is not a valid zip file ({err})')
        names = sorted(n for n in archive.namelist() if image_io.is_image_file(n))
        return names, lambda name: image_io.read_image(archive.read(name), name=name)
    raise click.ClickException(f'--source must be a folder or a .zip file: {source}')


def load_label_file(path: str) -> Dict[str, np.ndarray]:
    """Camera labels by source image path from a .json (EG3D's dataset.json, or {name: [25]}) or .csv file.

    CSV rows: image path, then 25 numbers (a header row is allowed).
    """
    try:
        if path.lower().endswith('.json'):
            with open(path, 'rb') as f:
                data = json.load(f)
            if isinstance(data, dict) and 'labels' in data:
                labels = dataset_labels_from_json(data, 'the file') or {}
            elif isinstance(data, dict):
                labels = {str(k).replace('\\', '/'): v for k, v in data.items()}
            else:
                raise ValueError('expected {"labels": [[name, [25 numbers]], ...]} or {name: [25 numbers]}')
        elif path.lower().endswith('.csv'):
            with open(path, newline='') as f:
                rows = [row for row in csv.reader(f) if row]
            if rows:
                try:
                    float(rows[0][-1])
                except ValueError:
                    rows = rows[1:]  # header
            labels = {row[0].replace('\\', '/'): [float(v) for v in row[1:]] for row in rows}
        else:
            raise ValueError('the label file must end in .json or .csv')
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise click.ClickException(f'--labels {path}: {err}')
    return _checked_labels(labels, f'--labels {path}')


def _checked_labels(labels: Dict[str, object], where: str) -> Dict[str, np.ndarray]:
    """The labels as (25,) float32 arrays, after the checks of camera_utils.check_camera_label."""
    try:
        return checked_camera_labels(labels, where)
    except ValueError as err:
        raise click.ClickException(str(err))


def transform_image(rgb: np.ndarray, transform: str, resolution: Optional[int]) -> np.ndarray:
    """(R, R, 3) uint8 of an (H, W, 3) uint8 image: optional centre crop (as StyleGAN's dataset_tool), then resize."""
    image = PIL.Image.fromarray(rgb)
    width, height = image.size
    if transform == 'center-crop':
        side = min(width, height)
        image = image.crop(((width - side) // 2, (height - side) // 2, (width + side) // 2, (height + side) // 2))
    elif transform == 'center-crop-wide':
        # Keep the full width: crop to a 2:1 band, then pad it to a square with black bars.
        band = min(height, width // 2)
        image = image.crop((0, (height - band) // 2, width, (height + band) // 2))
        canvas = PIL.Image.new('RGB', (width, width))
        canvas.paste(image, (0, (width - band) // 2))
        image = canvas
    elif image.size[0] != image.size[1]:
        raise ValueError(f'image is {width}x{height}, not square; use --transform=center-crop or --estimate-cameras')
    if resolution is not None and image.size != (resolution, resolution):
        image = image.resize((resolution, resolution), PIL.Image.LANCZOS)
    return np.asarray(image)


class DatasetWriter:
    """Writes images and dataset.json into a .zip or a folder under a temporary name.

    `commit()` moves the complete dataset to `dest` (replacing an old one); `discard()` removes the
    partial one. Until `commit()`, an existing `dest` is untouched.
    """

    def __init__(self, dest: str):
        self._dest = os.path.abspath(dest)
        folder, name = os.path.split(self._dest)
        os.makedirs(folder, exist_ok=True)
        if dest.lower().endswith('.zip'):
            fd, self._tmp = tempfile.mkstemp(prefix=f'.{name}.', suffix='.tmp', dir=folder)
            os.close(fd)
            os.chmod(self._tmp, 0o644)
            self._zip = zipfile.ZipFile(self._tmp, 'w', compression=zipfile.ZIP_STORED)
        else:
            self._tmp = tempfile.mkdtemp(prefix=f'.{name}.', suffix='.tmp', dir=folder)
            os.chmod(self._tmp, 0o755)
            self._zip = None

    def write(self, name: str, data: bytes) -> None:
        if self._zip is not None:
            self._zip.writestr(name, data)
            return
        path = os.path.join(self._tmp, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, 'wb') as f:
            f.write(data)

    def commit(self) -> None:
        """Put the complete dataset at `dest`; an old one is removed only after that succeeded."""
        if self._zip is not None:
            self._zip.close()
            os.replace(self._tmp, self._dest)
            return
        old = None
        if os.path.lexists(self._dest):
            old = tempfile.mkdtemp(prefix=f'.{os.path.basename(self._dest)}.', suffix='.old',
                                   dir=os.path.dirname(self._dest))
            old = os.path.join(old, 'dataset')
            os.rename(self._dest, old)
        os.rename(self._tmp, self._dest)
        if old is not None:
            shutil.rmtree(os.path.dirname(old))

    def discard(self) -> None:
        """Remove the partial dataset (after an error or an interrupt)."""
        if self._zip is not None:
            self._zip.close()
            os.remove(self._tmp)
        else:
            shutil.rmtree(self._tmp, ignore_errors=True)


def check_dest(dest: str, sources: List[Optional[str]], overwrite: bool) -> None:
    """--dest may be written: not an input, and new unless --overwrite (which replaces only a dataset)."""
    cli.check_not_a_source(dest, '--dest', sources)
    cli.check_writable_folder(os.path.dirname(os.path.abspath(dest)), '--dest')
    if not os.path.lexists(dest):
        return
    if not overwrite:
        raise click.ClickException(f'--dest {dest} already exists; pass --overwrite to replace it')
    if dest.lower().endswith('.zip') and not os.path.isfile(dest):
        raise click.ClickException(f'--dest {dest} is a folder, not a zip file; choose another --dest')
    if not dest.lower().endswith('.zip') and not os.path.isfile(os.path.join(dest, 'dataset.json')):
        # --overwrite replaces an earlier output, never a folder of other files.
        raise click.ClickException(f'--dest {dest} exists and is not a dataset folder (no dataset.json); '
                                   f'choose a new --dest')


@functools.lru_cache(maxsize=1)
def _face_detector():
    try:
        return FaceMeshDetector()
    except FaceToolsMissing as err:
        raise click.ClickException(str(err))


def _parse_resolution(_ctx, _param, value: Optional[str]) -> Optional[int]:
    if value is None:
        return None
    parts = value.lower().split('x')
    if not all(p.isdigit() for p in parts) or len(parts) > 2 or len(set(parts)) != 1 or int(parts[0]) < 1:
        raise click.BadParameter(f'expected a square size such as 512 or 512x512, got "{value}"')
    return int(parts[0])


@click.command()
@click.option('--source', help='Folder or zip of input images', metavar='PATH', required=True,
              callback=cli.expand_path)
@click.option('--dest', help='Output .zip (or folder)', metavar='PATH', required=True, callback=cli.expand_path)
@click.option('--max-images', help='Use at most this many input images', metavar='INT', type=click.IntRange(min=1))
@click.option('--resolution', help='Output size, e.g. 512 or 512x512 [default: input size]', metavar='SIZE',
              callback=_parse_resolution)
@click.option('--transform', help='Crop before resizing (ignored with --estimate-cameras)',
              type=click.Choice(TRANSFORMS), default='none', show_default=True)
@click.option('--labels', help='Camera labels: a .json (dataset.json format) or .csv file', metavar='FILE',
              callback=cli.expand_path)
@click.option('--estimate-cameras', help='Detect each face, crop it as EG3D does and estimate its camera',
              is_flag=True)
@click.option('--multiple-faces', help='With --estimate-cameras: skip images with several faces, or use the largest',
              type=click.Choice(['skip', 'largest']), default='skip', show_default=True)
@click.option('--mirror', help='Add a mirrored copy of every image (with the mirrored camera label)', is_flag=True)
@click.option('--dry-run', help='Print what would be written and stop', is_flag=True)
@click.option('--overwrite', help='Replace an existing --dest (a dataset zip or folder, never an input)',
              is_flag=True)
def convert_dataset(source: str, dest: str, max_images: Optional[int], resolution: Optional[int], transform: str,
                    labels: Optional[str], estimate_cameras: bool, multiple_faces: str, mirror: bool,
                    dry_run: bool, overwrite: bool) -> None:
    """Convert a folder or zip of images into an EG3D-format dataset zip with camera labels.

    Labels come from --labels, from a dataset.json inside --source, or from --estimate-cameras
    (needs the optional face tools: pip install -r requirements-faces.txt). Images that fail
    (no face, several faces, unreadable) are skipped and listed at the end.

    Examples:

    \b
    # Portraits of a new style, faces detected, cropped and labelled, plus mirrored copies:
    python dataset_tool.py --source=~/pixar-raw --dest=~/datasets/pixar512.zip \\
        --resolution=512 --estimate-cameras --mirror

    \b
    # Already-cropped square images with labels in a CSV file (name, then 25 numbers per row):
    python dataset_tool.py --source=~/crops --dest=~/datasets/crops256.zip --resolution=256 --labels=~/cams.csv

    \b
    # Re-encode an EG3D dataset at 128x128 (its dataset.json labels are kept), check first:
    python dataset_tool.py --source=~/datasets/ffhq512.zip --dest=~/datasets/ffhq128.zip --resolution=128 --dry-run
    """
    check_dest(dest, [source, labels], overwrite)
    names, load = open_image_source(source)
    if not names:
        raise click.ClickException(f'no images found in --source {source}')
    names = names[:max_images]
    if labels is not None and estimate_cameras:
        raise click.ClickException('give either --labels or --estimate-cameras, not both')
    label_map, label_origin = None, 'none (the dataset will have no labels)'
    if labels is not None:
        label_map, label_origin = load_label_file(labels), labels
    elif estimate_cameras:
        label_origin = 'estimated from face landmarks'
        _face_detector()  # fail now, with the install hint, if the face tools are missing
    else:
        label_map = _source_labels(source)
        label_origin = 'dataset.json of --source' if label_map is not None else label_origin
    if label_map is not None:
        missing = [n for n in names if n not in label_map]
        if missing:
            raise click.ClickException(f'{len(missing)} image(s) have no label in {label_origin}: {missing[:5]}')
        if transform != 'none':
            # Normalised intrinsics survive a resize of a square image, not a crop.
            raise click.ClickException(f'--transform={transform} would invalidate the camera labels; '
                                       f'labelled images must already be square crops')

    outputs = len(names) * (2 if mirror else 1)
    click.echo(f'{len(names)} source images from {source}; labels: {label_origin}; '
               f'resolution: {resolution or "as input"}; {outputs} images -> {dest}')
    if dry_run:
        return

    writer = DatasetWriter(dest)
    try:
        written, skipped = _write_images(writer, names, load, label_map, transform, resolution, estimate_cameras,
                                         multiple_faces, mirror)
        for line in skipped:
            click.echo(f'skipped {line}', err=True)
        if written == 0:
            raise click.ClickException(f'every image was skipped (reasons above); nothing was written'
                                       f'{" and the old --dest is unchanged" if os.path.lexists(dest) else ""}')
        writer.commit()
    except BaseException:
        writer.discard()
        raise
    click.echo(f'wrote {written} images to {dest}; skipped {len(skipped)}')


def _write_images(writer: DatasetWriter, names: List[str], load: Callable[[str], np.ndarray],
                  label_map: Optional[Dict[str, List[float]]], transform: str, resolution: Optional[int],
                  estimate_cameras: bool, multiple_faces: str, mirror: bool) -> Tuple[int, List[str]]:
    """Write the images and dataset.json; returns (#images written, 'name: reason' per skipped image)."""
    out_labels, skipped, index, size = [], [], 0, None
    for name in tqdm(names, desc='dataset_tool', unit='img', file=sys.stderr):
        try:
            image, label = _prepare(load(name), transform, resolution, estimate_cameras, multiple_faces,
                                    None if label_map is None else np.asarray(label_map[name], dtype=np.float32))
        except (OSError, ValueError) as err:
            skipped.append(f'{name}: {err}')
            continue
        if size is None:
            size = image.shape
        elif image.shape != size:
            raise click.ClickException(f'"{name}" becomes {image.shape[1]}x{image.shape[0]} but earlier images '
                                       f'{size[1]}x{size[0]}: a dataset has one resolution; pass --resolution')
        idx_str = f'{index:08d}'
        copies = [(f'{idx_str[:5]}/img{idx_str}.png', image, label)]
        if mirror:
            copies.append((f'{idx_str[:5]}/img{idx_str}_mirror.png', image[:, ::-1],
                           None if label is None else xflip_camera_label(label)))
        for out_name, out_image, out_label in copies:
            writer.write(out_name, image_io.png_bytes(np.ascontiguousarray(out_image), compress_level=0))
            if out_label is not None:
                out_labels.append([out_name, [float(v) for v in out_label]])
        index += 1
    has_labels = label_map is not None or estimate_cameras
    writer.write('dataset.json', json.dumps({'labels': out_labels if has_labels else None}).encode())
    return index * (2 if mirror else 1), skipped


def _prepare(rgb: np.ndarray, transform: str, resolution: Optional[int], estimate_cameras: bool,
             multiple_faces: str, label: Optional[np.ndarray]) -> Tuple[np.ndarray, Optional[np.ndarray]]:
    """(image (R, R, 3) uint8, label (25,) float32 or None) of one source image (H, W, 3) uint8."""
    if not estimate_cameras:
        return transform_image(rgb, transform, resolution), label
    landmarks, pose = face_pose.estimate_pose(rgb, _face_detector(),
                                              multiple_faces='largest' if multiple_faces == 'largest' else 'error')
    return face_pose.align_face(rgb, landmarks, pose, resolution)


def _source_labels(source: str) -> Optional[Dict[str, np.ndarray]]:
    """Labels of an EG3D-format --source (its dataset.json), or None if it has none."""
    where = f'dataset.json of --source {source}'
    try:
        if os.path.isdir(source):
            path = os.path.join(source, 'dataset.json')
            if not os.path.isfile(path):
                return None
            with open(path, 'rb') as f:
                labels = read_dataset_labels(f, where)
        else:
            with zipfile.ZipFile(source) as archive:
                if 'dataset.json' not in archive.namelist():
                    return None
                with archive.open('dataset.json') as f:
                    labels = read_dataset_labels(f, where)
    except ValueError as err:
        raise click.ClickException(str(err))
    return None if labels is None else _checked_labels(labels, where)


if __name__ == '__main__':
    cli.run(convert_dataset)
