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

Offline, :func:`add_local_copy` puts a file fetched elsewhere (or the UCI zip) into the cache with exactly the same
checks, and records it in the manifest the same way.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import threading
import zipfile
import zlib
from pathlib import Path, PurePosixPath
from urllib.parse import urlparse

from core import fileio
from core.datasets.registry import DatasetInfo, data_dir, get_info, path_of
from core.errors import LabError, shown
from core.fileio import Progress, sha256_of

__all__ = ["DatasetUnreachable", "add_local_copy", "check_structure", "download", "read_manifest", "sha256_of",
           "verify_cached"]

CHUNK_BYTES = 64 * 1024
MAX_DOWNLOAD_BYTES = 100 * 1024 * 1024  # the largest file we fetch is ~0.5 MB; anything huge is wrong
MAX_MEMBER_BYTES = 20 * 1024 * 1024  # cap on what one zip member may expand to (zip bombs)
BACKOFF_S = 0.5  # first retry waits this long, then twice as long each time (tests set it to 0)
MANIFEST = "manifest.json"

REFETCH = "delete it and download it again"  # what check_structure tells a user to do about a bad download

_manifest_lock = threading.Lock()


class DatasetUnreachable(LabError):
    """:func:`download` could not reach the host (no network); ``host`` and ``url`` say what was tried."""

    def __init__(self, message: str, host: str, url: str) -> None:
        super().__init__(message)
        self.host, self.url = host, url


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


def check_structure(info: DatasetInfo, path: Path, *, shown_as: str | None = None, advice: str = REFETCH) -> None:
    """Strict content check for files without a pinned checksum: ``label<TAB>text`` lines, known labels, count.

    Args:
        shown_as: how the messages name the file (default: ``path``), e.g. the user's file it was copied from.
        advice: what the messages tell the user to do (default: delete it and download it again).

    Raises:
        LabError: naming the first line that does not fit, or the line count.
    """
    if info.kind != "classification":
        return
    where = shown_as or str(path)
    try:
        lines = path.read_bytes().decode("utf-8").splitlines()
    except UnicodeDecodeError as err:
        raise LabError(f"The file {where} is not UTF-8 text (bad byte at offset {err.start}); {advice}.") from None
    if info.rows is not None and len(lines) != info.rows:
        raise LabError(f"The file {where} has {len(lines):,} lines but {info.title} has {info.rows:,}; {advice}.")
    for i, line in enumerate(lines, 1):
        label, tab, text = line.partition("\t")
        if not tab or not text.strip() or (info.labels and label not in info.labels):
            raise LabError(f"Line {i} of {where} is not '<label><TAB><text>' with a label from "
                           f"{'/'.join(info.labels)}; {advice}.")


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


def _extract_member(archive: Path, info: DatasetInfo, dest: Path, origin: Path | None = None) -> None:
    """Stream one named member of ``archive`` into ``dest`` (our own name), capped at MAX_MEMBER_BYTES.

    ``origin``: the user's own zip (see :func:`add_local_copy`), named in the messages instead of "the download".
    """
    member, tmp = info.archive_member or "", dest.with_name(dest.name + ".extract")
    limit = f"{MAX_MEMBER_BYTES >> 20} MB"
    what = f"The zip {origin}" if origin else "The downloaded archive"
    shown_as, advice = (f"{member} in {origin}", _local_advice(info)) if origin else (None, REFETCH)
    try:
        with zipfile.ZipFile(archive) as zf:
            zinfo = _find_member(zf, member)
            if zinfo is None:
                fix = _local_advice(info) if origin else ("the source may have changed, so report it and use the "
                                                          "built-in dataset meanwhile")
                raise LabError(f"{what} does not contain {member}; {fix}.")
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
        check_structure(info, tmp, shown_as=shown_as, advice=advice)
        os.replace(tmp, dest)
    except (zipfile.BadZipFile, zlib.error, EOFError, RuntimeError, NotImplementedError):
        if origin:
            raise LabError(f"{origin} is not a readable zip archive (damaged or password-protected); unpack it "
                           f"and add the {member} file inside instead.") from None
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
        raise DatasetUnreachable(f"Could not reach {host} (no internet connection?). Download {what} and place "
                                 f"it at {dest}, or use the built-in dataset.", host or src, src) from None
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


# ------------------------------------------------------------------------------------ a copy from elsewhere
def _local_advice(info: DatasetInfo) -> str:
    """What to tell a user whose own copy of ``info`` failed a check."""
    if info.archive_member:
        return f"check that it is the zip from {info.url} or the {info.archive_member} file inside it"
    return f"check that it is the raw file from {info.url}, not a web page or another file"


def _readable_source(source: str | os.PathLike) -> Path:
    """``source`` as a path to an existing regular file of at most MAX_DOWNLOAD_BYTES; one sentence otherwise."""
    try:
        path = Path(source).expanduser().resolve()
        is_dir, is_file = path.is_dir(), path.is_file()
        size = path.stat().st_size if is_file else 0
    except (OSError, RuntimeError, ValueError):
        is_dir = is_file = False
    if is_dir:
        raise LabError(f"{source} is a folder, not a file; give the path of the data file itself.")
    if not is_file:
        raise LabError(f"There is no file at {shown(os.fspath(source))}; check the path.")
    if size > MAX_DOWNLOAD_BYTES:
        raise LabError(f"{source} is {size:,} bytes, far larger than any of the lab's datasets; check the path.")
    return path


def _looks_like_html(path: Path) -> bool:
    with open(path, "rb") as f:
        head = f.read(512).lstrip().lower()
    return head.startswith((b"<!doctype html", b"<html", b"<?xml", b"<head"))


def _check_copy(info: DatasetInfo, copy: Path, src: Path) -> None:
    """The checks :func:`download` makes, on ``copy`` (the bytes of the user's file ``src``)."""
    if _looks_like_html(copy):
        raise LabError(f"{src} is a web page (HTML), not {info.title}; open {info.url} and save the raw file, "
                       "not the page around it.")
    if info.sha256 is not None:
        digest = sha256_of(copy)
        if digest != info.sha256:
            raise LabError(f"{src} has the sha256 {digest[:12]}…, not the {info.sha256[:12]}… of {info.title}; "
                           f"{_local_advice(info)}.")
    else:
        check_structure(info, copy, shown_as=str(src), advice=_local_advice(info))


def add_local_copy(name: str, source: str | os.PathLike) -> Path:
    """Copy a file the user already has into the cache under the registry's name, checked as a download is.

    For offline machines: the file was fetched elsewhere (``the-verdict.txt``), or is the archive the source
    serves (the UCI ``sms+spam+collection.zip``, whose one member is extracted as :func:`download` does). The
    sha256 pinned in the registry must match, else the content's structure is checked; only then is the file
    moved into place (atomically, replacing any earlier copy) and recorded in the manifest.

    Returns:
        The path in :func:`data_dir` it was written to.

    Raises:
        LabError: a built-in dataset, no such file, a folder, a web page, a wrong checksum or structure.

    Example:
        >>> add_local_copy("the-verdict", "~/Downloads/the-verdict.txt")  # doctest: +SKIP
        PosixPath('/home/me/.cache/llm-scratch-lab/the-verdict.txt')
    """
    info, dest = get_info(name), path_of(name)
    if info.source == "builtin":
        raise LabError(f"{info.title} ships with the lab in assets/; there is nothing to add.")
    src = _readable_source(source)
    with fileio.lock_for(dest):
        tmp = dest.with_name(dest.name + ".add")
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            if info.archive_member and zipfile.is_zipfile(src):
                _extract_member(src, info, dest, origin=src)
            else:
                shutil.copyfile(src, tmp)
                _check_copy(info, tmp, src)
                os.replace(tmp, dest)
        except OSError as err:
            raise LabError(f"Could not copy {src} to {dest} ({err.strerror or err}); check the permissions and "
                           "the disk space.") from None
        finally:
            with contextlib.suppress(OSError):  # also when the data folder could not be made
                tmp.unlink(missing_ok=True)
        _record(info.filename, sha256_of(dest), f"copied from {src}", "sha256" if info.sha256 else "structure")
    return dest
