"""File I/O the whole lab shares: atomic writes and one resumable downloader.

**Atomic writes.** A file is written under a temporary name in its own folder (``.<name>.<12 hex>.tmp``), flushed
to disk, then renamed over the real name with :func:`os.replace`, and the folder is fsynced so the rename itself
survives a power cut. A crash, a full disk or a ``SIGKILL`` mid-write therefore leaves the previous file intact and
at worst a temporary file that :mod:`core.runs` recognises by its name and removes.

**Downloads.** :func:`download` streams a URL into ``<dest>.part``; an interrupted transfer continues from there
with an HTTP ``Range`` request (also in a later call), failures are retried with a doubling pause, a host name
that does not resolve (no network) fails at once, and only a file that passes the checks (``sha256``, the
caller's ``verify``) is renamed into place. One lock per target keeps two threads from writing the same ``.part``.
The failures come back as the exceptions below, so each caller can say what to do in its own words.

Example:
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     atomic_write_json(Path(folder) / "state.json", {"step": 3})
    ...     (Path(folder) / "state.json").read_text()
    '{\\n "step": 3\\n}\\n'
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import re
import shutil
import socket
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.error import HTTPError, URLError
from urllib.parse import urlparse
from urllib.request import Request, urlopen

from core.errors import LabError, shown

Progress = Callable[[int, int | None], None]

CHUNK_BYTES = 1 << 20
USER_AGENT = "llm-scratch-lab (+https://github.com/rasbt/LLMs-from-scratch)"
_locks: dict[str, threading.RLock] = {}
_locks_guard = threading.Lock()


# ------------------------------------------------------------------------------------------- atomic writes
def atomic_write(path: Path, write: Callable[[Path], Any]) -> None:
    """Run ``write(tmp)`` on a temporary file beside ``path``, fsync it, then rename it over ``path``.

    The temporary file is ``.<path.name>.<12 hex digits>.tmp`` in the same folder (so the rename stays on one
    file system, which makes it atomic); it is removed whatever happens. Exceptions other than ``OSError``
    (e.g. a serialiser refusing its input) propagate unchanged, after that clean-up.

    Args:
        path: the file to (re)place; missing parent folders are created.
        write: writes the whole content to the path it is given.

    Raises:
        LabError: ``"Could not write <path> (<reason>); check the disk space and permissions."``, caused by the
            ``OSError`` (see :func:`is_write_failure`).
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)  # inside the try: a file in the way is an OSError too
        write(tmp)
        with open(tmp, "r+b") as f:  # on disk before the rename makes it the real file
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except Exception as err:  # noqa: BLE001 - re-raised unless it is a disk refusing the write
        refused = as_os_error(err)
        if refused is None:
            raise
        why = refused.strerror or refused
        raise LabError(f"Could not write {path} ({why}); check the disk space and permissions.") from refused
    finally:
        try:
            tmp.unlink(missing_ok=True)  # after a successful replace it is already gone
        except OSError:  # the folder itself is gone or is now a file: there is no temporary file to remove
            pass
    fsync_dir(path.parent)


def as_os_error(err: BaseException) -> OSError | None:
    """``err`` as the OSError it is or wraps (a library's "I/O error: No space left on device (os error 28)"
    becomes ``OSError(28, …)``), or None when it is not about the disk. Any library's write failure (ENOSPC,
    EFBIG, EROFS…) then reads the same to the caller.

    Example:
        >>> as_os_error(RuntimeError("I/O error: File too large (os error 27)")).errno
        27
    """
    if isinstance(err, OSError):
        return err
    match = re.search(r"\(os error (\d{1,4})\)", str(err)[:2000])
    if match is None:
        return None
    code = int(match[1])
    return OSError(code, os.strerror(code))


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file in the same folder, fsync, then rename over it."""
    atomic_write(path, lambda tmp: tmp.write_bytes(data))


def atomic_write_json(path: Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON (``indent=1``, no NaN), atomically (see :func:`atomic_write_bytes`)."""
    atomic_write_bytes(path, (json.dumps(obj, indent=1, allow_nan=False) + "\n").encode("utf-8"))


def fsync_dir(folder: Path) -> None:
    """Persist renames inside ``folder`` (a no-op where folders can't be opened, e.g. Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def is_write_failure(err: BaseException) -> bool:
    """True for the LabError a file write raises when the disk refuses it (full, read-only, a file in the way).

    Example:
        >>> is_write_failure(LabError("x")), is_write_failure(ValueError())
        (False, False)
    """
    return isinstance(err, LabError) and isinstance(err.__cause__, OSError)


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file, read in chunks so big files do not fill memory."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


# --------------------------------------------------------------------------------------------- downloads
class Unreachable(Exception):
    """The connection could not be opened (offline, DNS failure, refused, timed out)."""


class Offline(Unreachable):
    """The host name does not resolve: almost surely no network, so retrying only makes the user wait."""


class Refused(Exception):
    """The server answered with a client error (404, 403 …): retrying will not help."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"HTTP {code} ({reason})")
        self.code, self.reason = code, reason


class Interrupted(Exception):
    """The transfer broke off or the server failed (5xx, 429); worth resuming."""


class TooLarge(Exception):
    """The server sent more than ``max_bytes``; the partial file was deleted."""


class ChecksumMismatch(Exception):
    """The finished file's sha256 is not the expected one; the partial file was deleted."""


def lock_for(target: str | os.PathLike) -> threading.RLock:
    """The lock of one download target (re-entrant, so a caller may hold it around :func:`download`)."""
    with _locks_guard:
        return _locks.setdefault(str(target), threading.RLock())


def part_path(dest: Path) -> Path:
    """Where :func:`download` keeps the unfinished bytes of ``dest``: ``<dest>.part``."""
    return dest.with_name(dest.name + ".part")


def check_url(url: str) -> str:
    """The host name of an ``http``/``https`` URL; anything else (``file://``, ``ftp://`` …) is refused.

    Example:
        >>> check_url("https://huggingface.co/openai-community/gpt2")
        'huggingface.co'
    """
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https"):
        raise LabError(f"Downloads must use http or https, not {shown(url)}; check the address.")
    return parsed.hostname or url


def download(
    url: str,
    dest: Path,
    *,
    sha256: str | None = None,
    verify: Callable[[Path], None] | None = None,
    reuse: Callable[[Path], bool] | None = None,
    progress: Progress | None = None,
    timeout: float = 30,
    retries: int = 3,
    backoff: float = 0.5,
    chunk_bytes: int = CHUNK_BYTES,
    max_bytes: int | None = None,
) -> Path:
    """Fetch ``url`` into ``dest`` (once), resuming ``<dest>.part``, and return ``dest``.

    Args:
        url: an ``http``/``https`` address (checked by :func:`check_url`).
        dest: the final file; its folder is created.
        sha256: when given, the finished file must have this hex digest.
        verify: called with the finished ``.part`` file; whatever it raises propagates, the file deleted.
        reuse: when ``dest`` exists and ``reuse(dest)`` is true, nothing is fetched.
        progress: called as ``progress(bytes_so_far, total_bytes_or_None)`` after every chunk.
        timeout: seconds to wait for the connection and for each read.
        retries: extra attempts after a failed or broken-off one (waiting ``backoff``, 2×, 4× … in between).
        backoff: the first pause, in seconds.
        chunk_bytes: bytes read per step (and so how often ``progress`` is called).
        max_bytes: refuse a transfer that grows past this many bytes.

    Raises:
        Offline, Unreachable: no connection (an ``Offline`` host name is not retried).
        Refused: an HTTP client error (not retried). Interrupted: still broken after every retry.
        TooLarge, ChecksumMismatch: the file was deleted. LabError: a bad URL, or too little disk space.
    """
    check_url(url)
    with lock_for(dest):
        if reuse is not None and dest.is_file() and reuse(dest):
            return dest
        dest.parent.mkdir(parents=True, exist_ok=True)
        part = part_path(dest)
        for attempt in range(retries + 1):
            if _attempt(lambda: _fetch_once(url, part, progress, timeout, chunk_bytes, max_bytes), attempt, retries,
                        backoff):
                break
        try:
            if sha256 is not None and sha256_of(part) != sha256:
                raise ChecksumMismatch(f"sha256 of {dest.name} differs")
            if verify is not None:
                verify(part)
        except BaseException:
            part.unlink(missing_ok=True)
            raise
        os.replace(part, dest)
    return dest


def _attempt(fetch: Callable[[], None], attempt: int, retries: int, backoff: float) -> bool:
    """Run one try; True when it finished, False after a retryable failure (and the pause before the next)."""
    try:
        fetch()
    except (Unreachable, Interrupted) as err:
        if attempt == retries or isinstance(err, Offline):
            raise
        time.sleep(backoff * 2**attempt)
        return False
    return True


def _open(url: str, part: Path, timeout: float) -> tuple[http.client.HTTPResponse, int]:
    """Open ``url``, asking for the bytes after those already in ``part``; ``(response, bytes kept)``."""
    start = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": USER_AGENT}
    if start:
        headers["Range"] = f"bytes={start}-"
    try:
        resp = urlopen(Request(url, headers=headers), timeout=timeout)  # noqa: S310 - scheme checked by check_url
    except HTTPError as err:
        if err.code == 416:  # our partial file is not a prefix the server can continue: start over
            part.unlink(missing_ok=True)
            raise Interrupted("range not satisfiable") from None
        if err.code >= 500 or err.code == 429:
            raise Interrupted(f"HTTP {err.code}") from None
        raise Refused(err.code, err.reason) from None
    except (URLError, OSError) as err:  # DNS failure, connection refused, timeout while connecting
        if isinstance(getattr(err, "reason", err), socket.gaierror):
            raise Offline(str(err)) from None
        raise Unreachable(str(err)) from None
    if resp.status == 206 and start:
        m = re.match(r"bytes (\d+)-\d+/(\d+|\*)", resp.headers.get("Content-Range", ""))
        if not m or int(m.group(1)) != start:  # resumed somewhere else: our bytes would not line up
            resp.close()
            part.unlink(missing_ok=True)
            raise Interrupted("server resumed at another offset")
        return resp, start
    return resp, 0  # any other status (200) carries the whole file, even if we asked for a range


def _check_space(expected: int | None, folder: Path) -> None:
    if expected is not None and expected > (free := shutil.disk_usage(folder).free):
        raise LabError(f"The download needs {expected / 2**30:.2f} GB but only {free / 2**30:.2f} GB is "
                       f"free in {folder}; free some space or choose another folder.")


def _fetch_once(url: str, part: Path, progress: Progress | None, timeout: float, chunk_bytes: int,
                max_bytes: int | None) -> None:
    """One attempt: continue ``part`` from its size (or start it) and append until the server is done."""
    resp, done = _open(url, part, timeout)
    with resp:
        length = resp.headers.get("Content-Length")
        expected = int(length) if length and length.isdigit() else None
        total = done + expected if expected is not None else None
        _check_space(expected, part.parent)
        received = 0
        with open(part, "ab" if done else "wb") as f:
            while True:
                try:
                    chunk = resp.read(chunk_bytes)
                except (OSError, http.client.HTTPException) as err:
                    raise Interrupted(str(err)) from None
                if not chunk:
                    break
                f.write(chunk)
                received += len(chunk)
                done += len(chunk)
                if max_bytes is not None and done > max_bytes:
                    f.close()
                    part.unlink(missing_ok=True)
                    raise TooLarge(f"more than {max_bytes} bytes")
                if progress is not None:
                    progress(done, total)
    # http.client returns b"" instead of raising when the server closes early, so count the bytes ourselves.
    if expected is not None and received < expected:
        raise Interrupted(f"connection closed after {received} of {expected} bytes")
