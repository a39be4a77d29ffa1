"""dnnlib.util.open_url: local files, a download cache served by a local HTTP server, offline errors."""

import http.server
import os
import socket
import threading
import time

import pytest
import requests

from dnnlib import util


class _CountingHandler(http.server.SimpleHTTPRequestHandler):
    """Serves the test folder and counts GET requests (to prove the cache is used)."""
    hits = []

    def do_GET(self):
        type(self).hits.append(self.path)
        if self.path == '/cut.pkl':  # promises 10240 bytes, sends 100, hangs up
            self.send_response(200)
            self.send_header('Content-Length', '10240')
            self.end_headers()
            self.wfile.write(b'x' * 100)
            self.close_connection = True
            return
        super().do_GET()

    def log_message(self, *args):
        pass


@pytest.fixture
def server(tmp_path):
    root = tmp_path / 'served'
    root.mkdir()
    (root / 'net.pkl').write_bytes(bytes(range(256)) * 40)
    _CountingHandler.hits = []
    handler = lambda *a, **kw: _CountingHandler(*a, directory=str(root), **kw)  # noqa: E731
    httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={'poll_interval': 0.05}, daemon=True)
    thread.start()
    yield f'http://127.0.0.1:{httpd.server_address[1]}', root
    httpd.shutdown()
    httpd.server_close()


def test_local_path_and_file_url(tmp_path):
    path = tmp_path / 'a b.bin'
    path.write_bytes(b'\x00\x01payload')
    with util.open_url(str(path)) as f:
        assert f.read() == b'\x00\x01payload'
    with util.open_url(path.as_uri()) as f:
        assert f.read() == b'\x00\x01payload'
    assert util.open_url(path.as_uri(), return_filename=True) == str(path)


def test_missing_local_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match='nope.pkl'):
        util.open_url(str(tmp_path / 'nope.pkl'))
    with pytest.raises(FileNotFoundError, match='nope.pkl'):
        util.open_url((tmp_path / 'nope.pkl').as_uri())


def test_unsupported_scheme():
    with pytest.raises(ValueError, match='ftp'):
        util.open_url('ftp://example.com/x.pkl')


def test_download_is_cached_atomically(server, tmp_path):
    base, root = server
    url = f'{base}/net.pkl'
    cache_dir = tmp_path / 'cache'
    expected = (root / 'net.pkl').read_bytes()
    with util.open_url(url, cache_dir=str(cache_dir), verbose=False) as f:
        assert f.read() == expected
    assert _CountingHandler.hits == ['/net.pkl']
    cached = util.url_cache_path(url, str(cache_dir))
    assert os.path.basename(cached).endswith('_net.pkl')
    assert sorted(os.listdir(cache_dir)) == [os.path.basename(cached)]  # no temp file left behind
    # Second open: served from the cache, no request reaches the server.
    assert util.open_url(url, cache_dir=str(cache_dir), return_filename=True) == cached
    assert _CountingHandler.hits == ['/net.pkl']
    # cache=False always downloads, into memory.
    assert util.open_url(url, cache_dir=str(cache_dir), cache=False, verbose=False).read() == expected
    assert len(_CountingHandler.hits) == 2


def test_http_404_names_url_and_fails_once(server, tmp_path):
    base, _ = server
    url = f'{base}/missing.pkl'
    with pytest.raises(OSError, match='missing.pkl.*404'):
        util.open_url(url, cache_dir=str(tmp_path / 'cache'), num_attempts=3)
    assert _CountingHandler.hits == ['/missing.pkl']  # a 404 is not retried


def test_offline_fails_fast_with_where_to_put_the_file(tmp_path, monkeypatch):
    with socket.socket() as sock:  # a port that nobody listens on
        sock.bind(('127.0.0.1', 0))
        port = sock.getsockname()[1]
    url = f'http://127.0.0.1:{port}/ffhq512-128.pkl'
    cache_dir = str(tmp_path / 'cache')
    calls, sleeps = [], []
    monkeypatch.setattr(time, 'sleep', sleeps.append)
    real_get = requests.get
    monkeypatch.setattr(requests, 'get', lambda *a, **kw: calls.append(kw['timeout']) or real_get(*a, **kw))
    with pytest.raises(OSError) as info:
        util.open_url(url, cache_dir=cache_dir)
    # Fast: a refused connection is tried the default two times, each with a connect timeout of
    # seconds (not requests' unbounded default), and nothing waits in between.
    assert len(calls) == 2 and all(connect <= 10 for connect, _ in calls), calls
    assert sleeps == [] and '2 attempt(s)' in str(info.value)
    message = str(info.value)
    assert url in message and util.url_cache_path(url, cache_dir) in message and 'local path' in message
    assert not os.path.exists(util.url_cache_path(url, cache_dir))


def test_cut_off_download_never_reaches_the_cache(server, tmp_path):
    base, _ = server
    url = f'{base}/cut.pkl'
    cache_dir = tmp_path / 'cache'
    with pytest.raises(OSError, match='cut.pkl'):
        util.open_url(url, cache_dir=str(cache_dir), num_attempts=1, verbose=False)
    assert not os.path.exists(util.url_cache_path(url, str(cache_dir)))
    assert os.listdir(cache_dir) == []  # no temp file left behind either


def test_atomic_output_replaces_only_when_complete(tmp_path):
    path = tmp_path / 'out.png'
    path.write_bytes(b'old')
    with pytest.raises(KeyboardInterrupt):
        with util.atomic_output(str(path)) as tmp:
            assert tmp.endswith('.png') and os.path.dirname(tmp) == str(tmp_path)
            open(tmp, 'wb').write(b'partial')
            raise KeyboardInterrupt
    assert path.read_bytes() == b'old' and os.listdir(tmp_path) == ['out.png']
    with util.atomic_output(str(path)) as tmp:
        open(tmp, 'wb').write(b'new')
    assert path.read_bytes() == b'new' and os.listdir(tmp_path) == ['out.png']
