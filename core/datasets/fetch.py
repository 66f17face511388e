"""Fetch the book's datasets into the cache: stream, resume, retry, verify, then move into place atomically.

The transfer is :func:`core.fileio.download` (standard library only, so this works wherever Python does); this
module adds the registry, the checks and the cache manifest. The flow for one file:

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

import json
import os
import re
import threading
import zipfile
import zlib
from pathlib import Path, PurePosixPath
from urllib.parse import urlparse

from core import fileio
from core.datasets.registry import DatasetInfo, data_dir, get_info, path_of
from core.errors import LabError
from core.fileio import Progress, sha256_of

__all__ = ["check_structure", "download", "read_manifest", "sha256_of", "verify_cached"]

CHUNK_BYTES = 64 * 1024
MAX_DOWNLOAD_BYTES = 100 * 1024 * 1024  # the largest file we fetch is ~0.5 MB; anything huge is wrong
MAX_MEMBER_BYTES = 20 * 1024 * 1024  # cap on what one zip member may expand to (zip bombs)
BACKOFF_S = 0.5  # first retry waits this long, then twice as long each time (tests set it to 0)
MANIFEST = "manifest.json"

_manifest_lock = threading.Lock()


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
        text = json.dumps(manifest, indent=2, sort_keys=True) + "\n"
        try:
            fileio.atomic_write_bytes(data_dir() / MANIFEST, text.encode("utf-8"))
        except LabError as err:
            if not fileio.is_write_failure(err):
                raise
            # a read-only cache (e.g. a shared mount): the file was checked now and will be again next time


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
    fileio.check_url(src)
    with fileio.lock_for(dest):
        if dest.is_file():
            try:
                return verify_cached(name)
            except LabError:
                pass  # a damaged or stale copy: fetch a fresh one over it
        if info.archive_member:
            archive = _fetch(info, src, dest.with_name(dest.name + ".zip"), progress, timeout, retries)
            try:
                _extract_member(archive, info, dest)
            finally:
                archive.unlink(missing_ok=True)  # keep only what we extracted
        else:
            verify = None if info.sha256 is not None else (lambda part: check_structure(info, part))
            _fetch(info, src, dest, progress, timeout, retries, verify)
        _record(info.filename, sha256_of(dest), src, "sha256" if info.sha256 else "structure")
    return dest


def _fetch(info: DatasetInfo, src: str, target: Path, progress: Progress | None, timeout: float, retries: int,
           verify=None) -> Path:
    """:func:`core.fileio.download` of ``src`` into ``target``, its failures said as one sentence each."""
    host, dest = urlparse(src).hostname, path_of(info.name)
    try:
        return fileio.download(src, target, sha256=info.sha256, verify=verify, progress=progress, timeout=timeout,
                               retries=retries, backoff=BACKOFF_S, chunk_bytes=CHUNK_BYTES,
                               max_bytes=MAX_DOWNLOAD_BYTES)
    except fileio.Unreachable:
        what = (f"the zip on a machine with internet, extract {info.archive_member} from it"
                if info.archive_member else "the file on a machine with internet")
        raise LabError(f"Could not reach {host} (no internet connection?). Download {what} and place it at "
                       f"{dest}, or use the built-in dataset.") from None
    except fileio.Refused as err:
        raise LabError(f"The server {host} answered {err} for {src}; the file may have moved, so download it "
                       f"by hand and place it at {dest}, or use the built-in dataset.") from None
    except fileio.Interrupted:
        raise LabError(f"The download of {info.filename} from {host} kept breaking off ({retries + 1} tries); "
                       "check your connection and try again, it will resume where it stopped.") from None
    except fileio.TooLarge:
        raise LabError(f"The download from {host} is larger than {MAX_DOWNLOAD_BYTES >> 20} MB, far more than "
                       "this dataset should be; the source may have changed, so nothing was kept.") from None
    except fileio.ChecksumMismatch:
        raise LabError(f"The downloaded file {info.filename} does not match the expected checksum; the "
                       "download was corrupted or the source changed. Try again; if it persists, report it.") \
            from None
