"""Small generic helpers: attribute dicts, building objects from dotted names, opening URLs, atomic outputs."""

import contextlib
import hashlib
import importlib
import io
import os
import re
import tempfile
import urllib.parse
import urllib.request
from typing import Any, Iterator, Optional

from tqdm import tqdm


class EasyDict(dict):
    """A dict whose keys can also be read and written as attributes (`cfg.lr` == `cfg['lr']`)."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value

    def __delattr__(self, name: str) -> None:
        del self[name]


def make_cache_dir_path(*paths: str) -> str:
    """Folder for downloaded and built files: $PSTYLE3D_CACHE_DIR, else ~/.cache/pstyle3d."""
    root = os.environ.get('PSTYLE3D_CACHE_DIR') or os.path.join(os.path.expanduser('~'), '.cache', 'pstyle3d')
    return os.path.join(root, *paths)


def get_obj_by_name(name: str) -> Any:
    """Resolve a dotted name such as 'training.triplane.TriPlaneGenerator' to the object it names."""
    module_name, _, attr = name.rpartition('.')
    if not module_name:
        raise ValueError(f'expected a dotted name such as "package.module.Class", got "{name}"')
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise ImportError(f'cannot resolve "{name}": module "{module_name}" does not import ({err})') from err
    try:
        return getattr(module, attr)
    except AttributeError:
        raise AttributeError(f'cannot resolve "{name}": module "{module_name}" has no "{attr}"') from None


def construct_class_by_name(*args, class_name: str, **kwargs) -> Any:
    """Build an instance of the class named by a dotted string, e.g. from a config dict."""
    cls = get_obj_by_name(class_name)
    if not callable(cls):
        raise TypeError(f'"{class_name}" is not callable')
    return cls(*args, **kwargs)


# ---------------------------------------------------------------------------------------------
# Opening files by path or URL.

_CONNECT_TIMEOUT_S = 5.0    # An offline machine should fail within seconds, not minutes.
_READ_TIMEOUT_S = 60.0      # Large checkpoints stream slowly; only stalls this long are errors.
_PROGRESS_MIN_BYTES = 1 << 20  # Show a progress bar only for files of at least 1 MiB.


def is_url(obj: Any) -> bool:
    """True for strings of the form `scheme://...` (http, https, file)."""
    return isinstance(obj, str) and '://' in obj


def url_cache_path(url: str, cache_dir: Optional[str] = None) -> str:
    """Where `open_url` keeps (or looks for) the downloaded copy of `url`: `<md5(url)>_<basename>`."""
    if cache_dir is None:
        cache_dir = make_cache_dir_path('downloads')
    url_md5 = hashlib.md5(url.encode('utf-8')).hexdigest()
    basename = os.path.basename(urllib.parse.urlparse(url).path)
    safe_name = re.sub(r'[^A-Za-z0-9_.+-]', '_', basename)[:128]
    return os.path.join(cache_dir, f'{url_md5}_{safe_name}' if safe_name else url_md5)


def open_url(url: str, cache_dir: Optional[str] = None, num_attempts: int = 2, verbose: bool = True,
             return_filename: bool = False, cache: bool = True) -> Any:
    """Open a local path, a `file://` URL or an `http(s)://` URL as a binary file object.

    http(s) downloads are cached in `cache_dir` (default: `make_cache_dir_path('downloads')`) under
    `url_cache_path(url)`, so each URL is fetched once. With `return_filename=True` the local file
    name is returned instead of an open file (requires a local file or `cache=True`).
    Raises FileNotFoundError for a missing local file and OSError (naming the URL and the cache
    path where the file can be put by hand) when a download fails.
    """
    if not isinstance(url, str) or not url:
        raise ValueError(f'expected a file path or a URL string, got {url!r}')
    if num_attempts < 1:
        raise ValueError(f'num_attempts must be >= 1, got {num_attempts}')

    scheme = urllib.parse.urlparse(url).scheme if is_url(url) else ''
    if scheme in ('', 'file'):
        path = urllib.request.url2pathname(urllib.parse.urlparse(url).path) if scheme == 'file' else url
        if not os.path.isfile(path):
            raise FileNotFoundError(f'no such file: "{path}"' + (f' (from URL {url})' if scheme else ''))
        return path if return_filename else open(path, 'rb')
    if scheme not in ('http', 'https'):
        raise ValueError(f'unsupported URL scheme "{scheme}" in {url}: use a local path, file://, http:// or https://')
    if return_filename and not cache:
        raise ValueError('return_filename=True needs cache=True for http(s) URLs (the download must live in a file)')

    cache_file = url_cache_path(url, cache_dir)
    if cache and os.path.isfile(cache_file):
        return cache_file if return_filename else open(cache_file, 'rb')

    if cache:
        os.makedirs(os.path.dirname(cache_file), exist_ok=True)
        _download(url, cache_file, num_attempts, verbose)
        return cache_file if return_filename else open(cache_file, 'rb')
    buf = io.BytesIO()
    _download(url, None, num_attempts, verbose, sink=buf, hint_path=cache_file)
    buf.seek(0)
    return buf


def _download(url: str, dest: Optional[str], num_attempts: int, verbose: bool,
              sink: Optional[io.BytesIO] = None, hint_path: Optional[str] = None) -> None:
    """Fetch `url` into file `dest` (atomically: temp file + os.replace) or into `sink`."""
    import requests  # Imported here: only downloads need it.
    last_error: Optional[BaseException] = None
    for _ in range(num_attempts):
        try:
            with requests.get(url, stream=True, timeout=(_CONNECT_TIMEOUT_S, _READ_TIMEOUT_S)) as res:
                if 400 <= res.status_code < 500:
                    last_error = OSError(f'HTTP {res.status_code} {res.reason}')
                    break  # Client errors do not go away by retrying.
                res.raise_for_status()
                total = int(res.headers.get('Content-Length') or 0)
                if dest is None:
                    _copy_stream(res, sink, total, verbose, url)
                else:
                    with atomic_output(dest) as tmp_path, open(tmp_path, 'wb') as f:
                        _copy_stream(res, f, total, verbose, url)
                return
        except (requests.RequestException, OSError) as err:
            last_error = err
    where = dest if dest is not None else hint_path
    raise OSError(f'could not download {url} ({num_attempts} attempt(s); last error: {last_error}). '
                  f'If this machine is offline, fetch the file elsewhere and pass its local path instead of '
                  f'the URL, or put it at "{where}" where it will be found from now on.') from last_error


def _copy_stream(res: Any, f: Any, total: int, verbose: bool, url: str) -> None:
    """Copy the body of a streamed response into `f`, with a tqdm bar for big files."""
    show = verbose and (total == 0 or total >= _PROGRESS_MIN_BYTES)
    received = 0
    with tqdm(total=total or None, unit='B', unit_scale=True, desc=f'Downloading {url}', disable=not show) as bar:
        for chunk in res.iter_content(chunk_size=1 << 16):
            f.write(chunk)
            received += len(chunk)
            bar.update(len(chunk))
    if total and received != total:  # a dropped connection ends the stream early without an error
        raise OSError(f'the download was cut off after {received} of {total} bytes')


@contextlib.contextmanager
def atomic_output(path: str) -> Iterator[str]:
    """Yield a temporary path next to `path`; rename it to `path` when the block completes.

    Readers see the old file or the complete new one, never a partial file under the final name; if
    the block raises, the temporary file is removed and `path` is untouched. The temporary name
    keeps `path`'s extension, so writers that pick a format from it (imageio, PIL) still work.
    """
    folder, name = os.path.split(os.path.abspath(path))
    stem, ext = os.path.splitext(name)
    fd, tmp_path = tempfile.mkstemp(prefix=f'.{stem}.', suffix=f'.tmp{ext}', dir=folder)
    os.close(fd)
    os.chmod(tmp_path, 0o644)  # mkstemp makes 0600; outputs are ordinary shareable files
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except BaseException:
        if os.path.lexists(tmp_path):
            os.unlink(tmp_path)
        raise
