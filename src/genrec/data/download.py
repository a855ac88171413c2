"""MovieLens downloader: official GroupLens URLs, checksum check, cache dir, resumable, offline-friendly.

`download_movielens("ml-1m", root)` fetches `https://files.grouplens.org/datasets/movielens/ml-1m.zip`
into `root/ml-1m.zip.part` (resuming with an HTTP Range request when a partial file is there), checks
the MD5 GroupLens publishes (built in for the fixed releases; `NAME.zip.md5` from the server otherwise,
and always a zip integrity test), unpacks it to `root/ml-1m/` and records URL, size and hashes in
`root/ml-1m/.genrec-download.json`. A `NAME.zip` placed in `root` by hand is used as is (checked, unpacked).
`GENREC_MOVIELENS_URL` overrides the base URL (mirrors, tests).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from genrec.data.types import DataError

BASE_URL = "https://files.grouplens.org/datasets/movielens"
# MD5 of the fixed releases (the same values GroupLens publishes as NAME.zip.md5). ml-latest(-small) are
# re-generated over time and ml-32m's is fetched from the server, so those are checked against NAME.zip.md5.
MD5: dict[str, str | None] = {
    "ml-100k": "0e33842e24a9c977be4e0107933c0723",
    "ml-1m": "c4d9eecfca2ab87c1945afe126590906",
    "ml-20m": "cd245b17a1ae2cc31bb14903e1204af3",
    "ml-25m": "6b51fb2759a8657d3bfcbfc42b592ada",
    "ml-32m": None,
    "ml-latest-small": None,
    "ml-latest": None,
}
RECORD = ".genrec-download.json"
CHUNK = 1 << 20


def base_url() -> str:
    return os.environ.get("GENREC_MOVIELENS_URL", BASE_URL).rstrip("/")


def _by_hand(name: str, root: Path, url: str) -> str:
    return (
        f"To install it by hand: on a machine with internet, download {url} (or from "
        f"https://grouplens.org/datasets/movielens/), then put {name}.zip in {root}/ or unzip it so that "
        f"{root / name}/ holds its files; or point GENREC_DATA_DIR at a folder that already has {name}/. "
        f"For your own copy anywhere else use --data PATH."
    )


def _fetch(url: str, dest: Path, progress: bool = True, timeout: float = 30.0) -> None:
    """Download `url` to `dest`, resuming from `dest.part` with an HTTP Range request."""
    part = dest.with_name(dest.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": "genrec", **({"Range": f"bytes={have}-"} if have else {})}
    req = urllib.request.Request(url, headers=headers)
    try:
        resp = urllib.request.urlopen(req, timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and have:  # nothing left to fetch: the partial file is complete
            part.replace(dest)
            return
        raise
    with resp:
        if have and resp.status != 206:  # the server ignored Range: start over
            have = 0
        length = resp.headers.get("Content-Length")
        total = (int(length) + have) if length is not None else None
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(
                total=total,
                initial=have,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=f"download {dest.name}",
                leave=False,
            )
        try:
            with open(part, "ab" if have else "wb") as f:
                while True:
                    chunk = resp.read(CHUNK)
                    if not chunk:
                        break
                    f.write(chunk)
                    if bar is not None:
                        bar.update(len(chunk))
        finally:
            if bar is not None:
                bar.close()
    got = part.stat().st_size
    if total is not None and got != total:
        raise DataError(
            f"{url}: connection closed after {got:,} of {total:,} bytes; run the same command "
            f"again to resume from {part}"
        )
    part.replace(dest)


def _hashes(path: Path) -> tuple[str, str]:
    md5, sha = hashlib.md5(), hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            md5.update(chunk)
            sha.update(chunk)
    return md5.hexdigest(), sha.hexdigest()


def _published_md5(url: str) -> str | None:
    """GroupLens serves NAME.zip.md5 beside each zip; None when there is none."""
    try:
        with urllib.request.urlopen(
            urllib.request.Request(url + ".md5", headers={"User-Agent": "genrec"}), timeout=30
        ) as r:
            text = r.read(4096).decode("ascii", "replace")
    except (urllib.error.URLError, OSError):
        return None
    token = text.split()[0] if text.split() else ""  # "md5  file" or "MD5 (file) = md5"
    token = text.rsplit("=", 1)[-1].strip() if "=" in text else token
    return token.lower() if len(token) == 32 else None


def _verify(name: str, zip_path: Path, url: str) -> dict:
    md5, sha = _hashes(zip_path)
    expected = MD5.get(name) or _published_md5(url)
    if expected is not None and md5 != expected:
        bad = zip_path.with_name(zip_path.name + ".bad")
        zip_path.replace(bad)
        raise DataError(
            f"{zip_path}: MD5 {md5} does not match the published {expected} (corrupt or changed "
            f"download; moved to {bad}). Run the command again to download it afresh."
        )
    try:
        with zipfile.ZipFile(zip_path) as z:
            broken = z.testzip()
    except zipfile.BadZipFile as e:
        raise DataError(f"{zip_path}: not a valid zip ({e}); delete it and run the command again") from None
    if broken is not None:
        raise DataError(f"{zip_path}: member {broken} is corrupt; delete the file and run the command again")
    return {
        "url": url,
        "bytes": zip_path.stat().st_size,
        "md5": md5,
        "sha256": sha,
        "md5_checked_against": expected,
        "downloaded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def _extract(zip_path: Path, target: Path) -> None:
    """Unpack into a temp folder beside `target`, then move into place (never a half-unpacked target)."""
    tmp = target.with_name(f".{target.name}.unzip{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    with zipfile.ZipFile(zip_path) as z:
        for m in z.namelist():  # no member may escape the folder (zip slip)
            if not (tmp / m).resolve().is_relative_to(tmp.resolve()):
                raise DataError(
                    f"{zip_path}: member {m!r} points outside the archive folder; refusing to unpack"
                )
        z.extractall(tmp)
    entries = [p for p in tmp.iterdir() if not p.name.startswith("__MACOSX")]
    content = entries[0] if len(entries) == 1 and entries[0].is_dir() else tmp  # zips hold one NAME/ folder
    if target.exists():
        shutil.rmtree(target)
    content.replace(target)
    shutil.rmtree(tmp, ignore_errors=True)


def download_movielens(name: str, root: Path, progress: bool = True) -> Path:
    """`root/name`, downloaded and unpacked if absent. Raises DataError with by-hand steps when offline."""
    if name not in MD5:
        raise DataError(f"unknown MovieLens release {name!r}; known: {', '.join(MD5)}")
    root = Path(root)
    target = root / name
    if target.is_dir() and any(target.iterdir()):
        return target
    url = f"{base_url()}/{name}.zip"
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DataError(f"cannot create the data folder {root} ({e.strerror}); set GENREC_DATA_DIR") from None
    zip_path = root / f"{name}.zip"
    if not zip_path.exists():
        print(f"downloading {url} -> {zip_path}", flush=True)
        try:
            _fetch(url, zip_path, progress)
        except urllib.error.HTTPError as e:
            raise DataError(f"{url}: HTTP {e.code} {e.reason}. {_by_hand(name, root, url)}") from None
        except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as e:
            reason = getattr(e, "reason", e)
            part = zip_path.with_name(zip_path.name + ".part")
            kept = f" The partial download {part} is kept; the next run resumes it." if part.exists() else ""
            raise DataError(
                f"cannot download {url} ({reason}); are you offline?{kept} {_by_hand(name, root, url)}"
            ) from None
    record = _verify(name, zip_path, url)
    _extract(zip_path, target)
    (target / RECORD).write_text(json.dumps(record, indent=1))
    zip_path.unlink()
    print(
        f"{name}: {record['bytes']:,} bytes, md5 {record['md5']}"
        f"{' (checked)' if record['md5_checked_against'] else ' (no published checksum; zip verified)'}, "
        f"unpacked to {target}",
        flush=True,
    )
    return target
