"""Fetch the book's datasets into the cache: stream, resume, retry, verify, then move into place atomically.

Only the standard library is used (``urllib``), so this works wherever Python does. The flow for one file:

1. stream into ``<file>.part``; if a ``.part`` is already there, ask for the rest with an HTTP ``Range`` header
   (a server that ignores it answers 200 with the whole file, and we start again from byte 0);
2. retry with exponential backoff when the connection fails or breaks off early;
3. check the sha256 pinned in the registry, or — for sources that publish none (the UCI zip) — check the
   content's structure strictly and remember the checksum we computed in ``manifest.json`` in the cache;
4. ``os.replace`` the finished file into place, so a reader never sees half a file.

For testing or mirrors, ``download(..., url=...)`` or the environment variable ``LLMLAB_DATASET_BASE_URL``
(a folder URL; the registry URL's file name is appended) replaces where the file comes from.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import re
import socket
import threading
import time
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from urllib.error import HTTPError, URLError
from urllib.parse import urlparse
from urllib.request import Request, urlopen

from core.datasets.registry import DatasetInfo, data_dir, get_info, path_of
from core.errors import LabError, shown

Progress = Callable[[int, int | None], None]

CHUNK_BYTES = 64 * 1024
MAX_DOWNLOAD_BYTES = 100 * 1024 * 1024  # the largest file we fetch is ~0.5 MB; anything huge is wrong
MAX_MEMBER_BYTES = 20 * 1024 * 1024  # cap on what one zip member may expand to (zip bombs)
BACKOFF_S = 0.5  # first retry waits this long, then twice as long each time (tests set it to 0)
MANIFEST = "manifest.json"

_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()
_manifest_lock = threading.Lock()


class _Unreachable(Exception):
    """The connection could not be opened (offline, DNS failure, refused, timed out)."""


class _Offline(_Unreachable):
    """The host name could not be resolved: almost surely no network, so retrying only makes the user wait."""


class _Refused(Exception):
    """The server answered with a client error (404, 403…): retrying will not help."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"HTTP {code} ({reason})")


class _Interrupted(Exception):
    """The connection opened but the transfer broke off or the server failed; worth resuming."""


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file, read in chunks so big files do not fill memory."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def read_manifest() -> dict[str, dict[str, str]]:
    """The cache's record of verified files: ``{filename: {"sha256", "url", "verified"}}`` (empty if none)."""
    try:
        data = json.loads((data_dir() / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}  # missing or unreadable: every file is checked again and re-recorded
    return data if isinstance(data, dict) else {}


def _record(filename: str, digest: str, url: str, how: str) -> None:
    with _manifest_lock:
        manifest = read_manifest()
        manifest[filename] = {"sha256": digest, "url": url, "verified": how}
        tmp = data_dir() / (MANIFEST + ".tmp")
        try:
            tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
            os.replace(tmp, data_dir() / MANIFEST)
        except OSError:
            pass  # a read-only cache (e.g. a shared mount): the file was checked now and will be again next time


def check_structure(info: DatasetInfo, path: Path) -> None:
    """Strict content check for files without a pinned checksum: ``label<TAB>text`` lines, known labels, count.

    Raises:
        LabError: naming the first line that does not fit, or the line count.
    """
    if info.kind != "classification":
        return
    try:
        lines = path.read_bytes().decode("utf-8").splitlines()
    except UnicodeDecodeError as err:
        raise LabError(f"The file {path} is not UTF-8 text (bad byte at offset {err.start}); delete it and "
                       "download it again.") from None
    if info.rows is not None and len(lines) != info.rows:
        raise LabError(f"The file {path} has {len(lines):,} lines but {info.title} has {info.rows:,}; delete it "
                       "and download it again.")
    for i, line in enumerate(lines, 1):
        label, tab, text = line.partition("\t")
        if not tab or not text.strip() or (info.labels and label not in info.labels):
            raise LabError(f"Line {i} of {path} is not '<label><TAB><text>' with a label from "
                           f"{'/'.join(info.labels)}; delete the file and download it again.")


def verify_cached(name: str) -> Path:
    """Check a downloaded file before it is used, and return its path.

    Files with a pinned sha256 must match it. Files without one (``sha256=None``) must match the checksum in the
    cache manifest; a file placed there by hand has no manifest entry yet, so its structure is checked once and
    its checksum recorded, after which any change to it is detected.

    Raises:
        LabError: the file is missing, or does not match.
    """
    info, path = get_info(name), path_of(name)
    if not path.exists():
        where = "it ships in assets/" if info.source == "builtin" else f"it goes to {path}"
        raise LabError(f"{info.title} is not downloaded yet ({where}); download it first or use a built-in "
                       "dataset.")
    if info.source == "builtin":
        return path
    digest = sha256_of(path)
    if info.sha256 is not None:
        if digest != info.sha256:
            raise LabError(f"The file {path} does not match the expected checksum of {info.title}; delete it and "
                           "download it again.")
        return path
    entry = read_manifest().get(info.filename)
    if entry is None:
        check_structure(info, path)
        _record(info.filename, digest, "placed by hand", "structure")
    elif entry.get("sha256") != digest:
        raise LabError(f"The file {path} changed since it was verified; delete it and download it again.")
    return path


def _source_url(info: DatasetInfo, url: str | None) -> str:
    if url:
        return url
    base = os.environ.get("LLMLAB_DATASET_BASE_URL")
    if base:
        return base.rstrip("/") + "/" + PurePosixPath(urlparse(info.url or "").path).name
    if not info.url:
        raise LabError(f"{info.title} has no download address; use the built-in dataset.")
    return info.url


def _fetch_once(url: str, part: Path, progress: Progress | None, timeout: float) -> None:
    """One attempt: resume ``part`` from its current size (or start it), append until the server is done."""
    start = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": "llm-scratch-lab (+https://github.com/rasbt/LLMs-from-scratch)"}
    if start:
        headers["Range"] = f"bytes={start}-"
    try:
        resp = urlopen(Request(url, headers=headers), timeout=timeout)  # scheme checked in download()
    except HTTPError as err:
        if err.code == 416:  # our partial file is not a prefix the server can continue: start over
            part.unlink(missing_ok=True)
            raise _Interrupted("range not satisfiable") from None
        if err.code >= 500 or err.code == 429:
            raise _Interrupted(f"HTTP {err.code}") from None
        raise _Refused(err.code, err.reason) from None
    except (URLError, OSError) as err:  # DNS failure, connection refused, timeout while connecting
        if isinstance(getattr(err, "reason", err), socket.gaierror):
            raise _Offline(str(err)) from None
        raise _Unreachable(str(err)) from None
    with resp:
        done = 0
        if resp.status == 206 and start:
            m = re.match(r"bytes (\d+)-\d+/(\d+|\*)", resp.headers.get("Content-Range", ""))
            if not m or int(m.group(1)) != start:  # resumed somewhere else: our bytes would not line up
                part.unlink(missing_ok=True)
                raise _Interrupted("server resumed at another offset")
            done = start
        # Any other status (200) carries the whole file, even if we asked for a range: overwrite from 0.
        length = resp.headers.get("Content-Length")
        expected = int(length) if length and length.isdigit() else None
        total = done + expected if expected is not None else None
        received = 0
        with open(part, "ab" if done else "wb") as f:
            while True:
                try:
                    chunk = resp.read(CHUNK_BYTES)
                except (OSError, http.client.HTTPException) as err:
                    raise _Interrupted(str(err)) from None
                if not chunk:
                    break
                f.write(chunk)
                received += len(chunk)
                done += len(chunk)
                if done > MAX_DOWNLOAD_BYTES:
                    f.close()
                    part.unlink(missing_ok=True)
                    raise LabError(f"The download from {urlparse(url).hostname} is larger than "
                                   f"{MAX_DOWNLOAD_BYTES >> 20} MB, far more than this dataset should be; the "
                                   "source may have changed, so nothing was kept.")
                if progress is not None:
                    progress(done, total)
    # http.client returns b"" instead of raising when the server closes early, so count the bytes ourselves.
    if expected is not None and received < expected:
        raise _Interrupted(f"connection closed after {received} of {expected} bytes")


def _fetch(url: str, part: Path, progress: Progress | None, timeout: float, retries: int) -> None:
    for attempt in range(retries + 1):
        try:
            return _fetch_once(url, part, progress, timeout)
        except (_Unreachable, _Interrupted) as err:
            if attempt == retries or isinstance(err, _Offline):
                raise
            time.sleep(BACKOFF_S * 2**attempt)


def _find_member(zf: zipfile.ZipFile, member: str) -> zipfile.ZipInfo | None:
    """The member called exactly ``member``, else one whose last path part is ``member`` (a zip with a folder).

    The archive's names are only compared, never used as paths, so names like ``../../evil`` can do no harm.
    """
    infos = [i for i in zf.infolist() if not i.is_dir()]
    for i in infos:
        if i.filename == member:
            return i
    for i in infos:
        if re.split(r"[\\/]", i.filename)[-1] == member:
            return i
    return None


def _extract_member(archive: Path, info: DatasetInfo, dest: Path) -> None:
    """Stream one named member of ``archive`` into ``dest`` (our own name), capped at MAX_MEMBER_BYTES."""
    member, tmp = info.archive_member or "", dest.with_name(dest.name + ".extract")
    limit = f"{MAX_MEMBER_BYTES >> 20} MB"
    try:
        with zipfile.ZipFile(archive) as zf:
            zinfo = _find_member(zf, member)
            if zinfo is None:
                raise LabError(f"The downloaded archive does not contain {member}; the source may have changed, "
                               "so report it and use the built-in dataset meanwhile.")
            if zinfo.file_size > MAX_MEMBER_BYTES:  # declared size: refuse before inflating anything
                raise LabError(f"The archive says {member} is {zinfo.file_size:,} bytes, more than the {limit} "
                               "limit (a zip bomb?), so nothing was extracted; report it.")
            written = 0
            with zf.open(zinfo) as src, open(tmp, "wb") as out:
                while chunk := src.read(CHUNK_BYTES):
                    written += len(chunk)
                    if written > MAX_MEMBER_BYTES:  # the declared size can lie; the stream cannot
                        raise LabError(f"{member} expands past the {limit} limit (a zip bomb?), so nothing was "
                                       "extracted; report it.")
                    out.write(chunk)
        check_structure(info, tmp)
        os.replace(tmp, dest)
    except (zipfile.BadZipFile, zlib.error, EOFError, RuntimeError, NotImplementedError):
        raise LabError("The downloaded file is not a readable zip archive; the download was corrupted or the "
                       "source changed. Try again; if it persists, report it.") from None
    finally:
        tmp.unlink(missing_ok=True)


def _lock_for(name: str) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault(name, threading.Lock())


def download(name: str, progress: Progress | None = None, timeout: float = 30, retries: int = 3,
             url: str | None = None) -> Path:
    """Download a registry dataset into the cache (once) and return the path of the verified file.

    Args:
        name: registry key, e.g. ``"the-verdict"``; built-ins need no download and return their path.
        progress: called as ``progress(bytes_so_far, total_bytes_or_None)`` after every chunk.
        timeout: seconds to wait for the connection and for each read.
        retries: extra attempts after a failed or broken-off one (waiting BACKOFF_S, 2×, 4× … in between).
        url: fetch from here instead of the registry's address (tests, mirrors).

    Returns:
        The path in :func:`data_dir` (for zips: the one extracted member, under the registry's file name).

    Raises:
        LabError: offline, server error, checksum or structure mismatch, oversize file or archive member.

    Example:
        >>> path = download("the-verdict", progress=lambda done, total: print(done, total))  # doctest: +SKIP
    """
    info, dest = get_info(name), path_of(name)
    if info.source == "builtin":
        return dest
    src = _source_url(info, url)
    if urlparse(src).scheme not in ("http", "https"):
        raise LabError(f"Downloads must use http or https, not {shown(src)}; check the address.")
    with _lock_for(name):
        if dest.is_file():
            try:
                return verify_cached(name)
            except LabError:
                pass  # a damaged or stale copy: fetch a fresh one over it
        dest.parent.mkdir(parents=True, exist_ok=True)
        part = dest.with_name(dest.name + (".zip" if info.archive_member else "") + ".part")
        host = urlparse(src).hostname
        try:
            _fetch(src, part, progress, timeout, retries)
        except _Unreachable:
            what = (f"the zip on a machine with internet, extract {info.archive_member} from it"
                    if info.archive_member else "the file on a machine with internet")
            raise LabError(f"Could not reach {host} (no internet connection?). Download {what} and place it at "
                           f"{dest}, or use the built-in dataset.") from None
        except _Refused as err:
            raise LabError(f"The server {host} answered {err} for {src}; the file may have moved, so download it "
                           f"by hand and place it at {dest}, or use the built-in dataset.") from None
        except _Interrupted:
            raise LabError(f"The download of {info.filename} from {host} kept breaking off ({retries + 1} tries); "
                           "check your connection and try again, it will resume where it stopped.") from None
        digest = sha256_of(part)
        if info.sha256 is not None and digest != info.sha256:
            part.unlink(missing_ok=True)
            raise LabError(f"The downloaded file {info.filename} does not match the expected checksum; the "
                           "download was corrupted or the source changed. Try again; if it persists, report it.")
        if info.archive_member:
            try:
                _extract_member(part, info, dest)
            finally:
                part.unlink(missing_ok=True)  # keep only what we extracted
            digest = sha256_of(dest)
        else:
            if info.sha256 is None:
                try:
                    check_structure(info, part)
                except LabError:
                    part.unlink(missing_ok=True)
                    raise
            os.replace(part, dest)
        _record(info.filename, digest, src, "sha256" if info.sha256 else "structure")
    return dest
