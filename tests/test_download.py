"""The DAVIS downloader against a local HTTP server (no network here): resume, checksum, unpack."""

from __future__ import annotations

import functools
import hashlib
import http.server
import threading
import zipfile

import pytest

from osvos_pl import download as dl
from osvos_pl.utils.errors import DataError


class RangeHandler(http.server.SimpleHTTPRequestHandler):
    """Serves files with HTTP Range support (the stdlib handler has none)."""

    def log_message(self, *args):
        pass

    def send_head(self):
        rng = self.headers.get("Range")
        path = self.translate_path(self.path)
        if not rng:
            return super().send_head()
        data = open(path, "rb").read()
        start = int(rng.split("=")[1].split("-")[0])
        self.send_response(206)
        self.send_header("Content-Length", str(len(data) - start))
        self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.end_headers()
        import io

        return io.BytesIO(data[start:])


@pytest.fixture
def server(tmp_path):
    served = tmp_path / "www"
    served.mkdir()
    zpath = served / "DAVIS-data.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        for name in ("DAVIS/JPEGImages/480p/seq/00000.jpg", "DAVIS/Annotations/480p/seq/00000.png",
                     "DAVIS/ImageSets/480p/val.txt"):
            zf.writestr(name, b"x" * 5000)
    handler = functools.partial(RangeHandler, directory=str(served))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/DAVIS-data.zip", zpath
    httpd.shutdown()


def test_download_resumes_verifies_and_unpacks(server, tmp_path):
    url, zpath = server
    payload = zpath.read_bytes()
    root = tmp_path / "data" / "DAVIS"
    root.parent.mkdir()
    archive = root.parent / "davis2016-DAVIS-data.zip"
    # an interrupted earlier download left the first half behind
    (archive.with_name(archive.name + ".part")).write_bytes(payload[: len(payload) // 2])
    sha = hashlib.sha256(payload).hexdigest()
    assert dl.main(["davis2016", "--root", str(root), "--url", url, "--sha256", sha]) == 0
    assert archive.read_bytes() == payload
    assert (root / "JPEGImages/480p/seq/00000.jpg").is_file()
    assert (root / "ImageSets/480p/val.txt").is_file()
    assert sha in archive.with_name(archive.name + ".sha256").read_text()


def test_checksum_mismatch_is_an_error(server, tmp_path):
    url, _ = server
    with pytest.raises(DataError, match="checksum mismatch"):
        dl.download("davis2016", tmp_path / "DAVIS", url=url, sha256="0" * 64)


def test_file_url(server, tmp_path):
    _, zpath = server
    root = dl.download("davis2017", tmp_path / "D17", url=zpath.as_uri())
    assert (root / "Annotations/480p/seq/00000.png").is_file()


def test_unreachable_server_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="cannot download"):
        dl.download("davis2016", tmp_path / "D", url="http://127.0.0.1:9/none.zip")
