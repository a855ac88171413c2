"""MovieLens downloader against a local HTTP server on 127.0.0.1 (never the internet)."""

from __future__ import annotations

import hashlib
import http.server
import io
import json
import threading
import zipfile

import pytest

from genrec.cli import main
from genrec.data import download
from genrec.data.types import DataError


def _zip(name: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:  # stored: big enough to cut in half
        rows = [
            f"{u}\t{i}\t{1 + (u * i) % 5}\t{880000000 + u * 100 + i}"
            for u in range(1, 21)
            for i in range(1, 31)
        ]
        z.writestr(f"{name}/u.data", "\n".join(rows) + "\n")
        z.writestr(
            f"{name}/u.item",
            "".join(
                f"{i}|Movie {i} (1995)|01-Jan-1995||http://x|0|1" + "|0" * 17 + "\n" for i in range(1, 31)
            ),
        )
    return buf.getvalue()


class Server:
    """Serves /NAME.zip (+ optional /NAME.zip.md5) with Range support; records what it was asked."""

    def __init__(self, files: dict[str, bytes], honour_range: bool = True):
        self.files, self.honour_range, self.requests, self.sent = files, honour_range, [], 0
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server API)
                body = outer.files.get(self.path.lstrip("/"))
                outer.requests.append((self.path, self.headers.get("Range")))
                if body is None:
                    self.send_error(404)
                    return
                rng = self.headers.get("Range")
                start = int(rng.split("=")[1].split("-")[0]) if rng and outer.honour_range else 0
                if start >= len(body) and rng:
                    self.send_response(416)
                    self.end_headers()
                    return
                self.send_response(206 if start else 200)
                if start:
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                self.send_header("Content-Length", str(len(body) - start))
                self.end_headers()
                self.wfile.write(body[start:])
                outer.sent += len(body) - start

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def fake_100k(monkeypatch):
    blob = _zip("ml-100k")
    monkeypatch.setitem(download.MD5, "ml-100k", hashlib.md5(blob).hexdigest())
    return blob


def test_download_unpack_and_prepare_by_name(tmp_path, monkeypatch, capsys, fake_100k):
    with Server({"ml-100k.zip": fake_100k}) as srv:
        monkeypatch.setenv("GENREC_MOVIELENS_URL", srv.url)
        monkeypatch.setenv("GENREC_DATA_DIR", str(tmp_path))
        assert main(["data", "prepare", "--dataset", "ml-100k"]) == 0
        assert "20 users, 30 items, 600 interactions" in capsys.readouterr().out
        record = json.loads((tmp_path / "ml-100k" / download.RECORD).read_text())
        assert record["sha256"] == hashlib.sha256(fake_100k).hexdigest()
        assert record["md5_checked_against"] == download.MD5["ml-100k"]
        assert not (tmp_path / "ml-100k.zip").exists() and (tmp_path / "ml-100k" / "u.item").exists()
        n = len(srv.requests)
        assert main(["data", "prepare", "--dataset", "ml-100k"]) == 0  # cached: no second download
        assert len(srv.requests) == n


@pytest.mark.parametrize("honour_range", [True, False])
def test_resume_from_partial_file(tmp_path, monkeypatch, fake_100k, honour_range):
    half = len(fake_100k) // 2
    (tmp_path / "ml-100k.zip.part").write_bytes(fake_100k[:half])
    with Server({"ml-100k.zip": fake_100k}, honour_range) as srv:
        monkeypatch.setenv("GENREC_MOVIELENS_URL", srv.url)
        out = download.download_movielens("ml-100k", tmp_path, progress=False)
    assert srv.requests[0] == ("/ml-100k.zip", f"bytes={half}-")
    # with Range only the missing half travels; a server that ignores Range sends all and we start over
    assert srv.sent == (len(fake_100k) - half if honour_range else len(fake_100k))
    assert (out / "u.data").read_text().count("\n") == 600


def test_checksum_mismatch_is_rejected(tmp_path, monkeypatch, fake_100k):
    monkeypatch.setitem(download.MD5, "ml-100k", "0" * 32)
    with Server({"ml-100k.zip": fake_100k}) as srv:
        monkeypatch.setenv("GENREC_MOVIELENS_URL", srv.url)
        with pytest.raises(DataError, match="does not match the published"):
            download.download_movielens("ml-100k", tmp_path, progress=False)
    assert not (tmp_path / "ml-100k").exists() and not (tmp_path / "ml-100k.zip").exists()


def test_published_md5_file_and_integrity_without_known_checksum(tmp_path, monkeypatch):
    blob = _zip("ml-32m")
    files = {"ml-32m.zip": blob, "ml-32m.zip.md5": f"{hashlib.md5(blob).hexdigest()}  ml-32m.zip\n".encode()}
    with Server(files) as srv:
        monkeypatch.setenv("GENREC_MOVIELENS_URL", srv.url)
        out = download.download_movielens("ml-32m", tmp_path, progress=False)
    record = json.loads((out / download.RECORD).read_text())
    assert record["md5_checked_against"] == hashlib.md5(blob).hexdigest()
    # no published checksum and a corrupt zip: the integrity test catches it
    bad = bytearray(_zip("ml-latest-small"))
    bad[60:70] = b"x" * 10  # inside the first member's data
    with Server({"ml-latest-small.zip": bytes(bad)}) as srv:
        monkeypatch.setenv("GENREC_MOVIELENS_URL", srv.url)
        with pytest.raises(DataError, match="corrupt|not a valid zip"):
            download.download_movielens("ml-latest-small", tmp_path, progress=False)


def test_offline_message_says_how_to_place_files(tmp_path, monkeypatch, capsys):
    with Server({}) as srv:
        dead = srv.url  # a port nobody listens on once the server is shut down
    monkeypatch.setenv("GENREC_MOVIELENS_URL", dead)
    monkeypatch.setenv("GENREC_DATA_DIR", str(tmp_path))
    assert main(["data", "prepare", "--dataset", "ml-1m"]) == 2
    err = capsys.readouterr().err
    assert "offline" in err and f"put ml-1m.zip in {tmp_path}" in err and "grouplens.org" in err


def test_zip_placed_by_hand_is_used(tmp_path, monkeypatch, fake_100k):
    (tmp_path / "ml-100k.zip").write_bytes(fake_100k)
    monkeypatch.setenv("GENREC_MOVIELENS_URL", "http://127.0.0.1:9")  # would fail if contacted
    out = download.download_movielens("ml-100k", tmp_path, progress=False)
    assert (out / "u.data").exists()
