"""OpenAI's pretrained GPT-2 weights (book §5.5): find them on disk, download them, or take a user's file.

The book loads GPT-2's weights instead of training for weeks. Hugging Face hosts them as one safetensors file
per size (``https://huggingface.co/<repo>/resolve/main/model.safetensors``); :func:`core.checkpoint.load_hf_gpt2`
maps that layout into :class:`~core.model.GPTModel`. This module gets the file:

- :func:`find_local_gpt2` looks, without any network, in this app's data folder and in an existing Hugging Face
  cache (``~/.cache/huggingface/hub/models--openai-community--gpt2/snapshots/*/model.safetensors``);
- :func:`download_gpt2` streams it into the data folder with progress, resume (HTTP ``Range``) and retries;
- :func:`store_gpt2_upload` and :func:`resolve_gpt2_path` accept a file the user uploads or names.

**Integrity, honestly:** no sha256 is published that we could pin for these files, so a download is *not*
checked against a known checksum. What is checked is the structure: the file must be valid safetensors (its
header is validated by :func:`core.checkpoint.checkpoint_info` without reading any tensor), it must have GPT-2's
tensor names in Hugging Face's layout (``wte``, ``wpe``, ``ln_f`` and every block's ``ln_1``, ``attn.c_attn``,
``attn.c_proj``, ``ln_2``, ``mlp.c_fc``, ``mlp.c_proj``), and a file fetched from Hugging Face's own address must
have the width and depth of the size asked for. That catches truncated, HTML-error and wrong-model files, but not
deliberately altered weights. Nothing here unpickles anything.

Example:
    >>> path = find_local_gpt2("gpt2-small") or download_gpt2("gpt2-small", progress=print)  # doctest: +SKIP
    >>> model = load_hf_gpt2(path)  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import shutil
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO
from urllib.error import HTTPError, URLError
from urllib.parse import urlparse
from urllib.request import Request, urlopen

from core.checkpoint import checkpoint_info
from core.config import PRESETS
from core.datasets.registry import data_dir
from core.errors import LabError

Progress = Callable[[int, int | None], None]

#: Size name (as in :data:`core.config.PRESETS`) → Hugging Face repository.
GPT2_SIZES: dict[str, str] = {
    "gpt2-small": "openai-community/gpt2",
    "gpt2-medium": "openai-community/gpt2-medium",
    "gpt2-large": "openai-community/gpt2-large",
    "gpt2-xl": "openai-community/gpt2-xl",
}
#: Rough download sizes, for the UI (fp32 weights: 4 bytes per parameter).
GPT2_FILE_SIZES: dict[str, str] = {
    "gpt2-small": "about 0.5 GB", "gpt2-medium": "about 1.5 GB", "gpt2-large": "about 3.2 GB",
    "gpt2-xl": "about 6.4 GB",
}  # fmt: skip
_LEGACY_REPOS = {"gpt2-small": "gpt2", "gpt2-medium": "gpt2-medium", "gpt2-large": "gpt2-large", "gpt2-xl": "gpt2-xl"}
FILENAME = "model.safetensors"
CHUNK_BYTES = 1 << 20
BACKOFF_S = 0.5  # first retry waits this long, then twice as long each time (tests set it to 0)
_BLOCK_PARTS = ("ln_1.weight", "ln_1.bias", "attn.c_attn.weight", "attn.c_attn.bias", "attn.c_proj.weight",
                "attn.c_proj.bias", "ln_2.weight", "ln_2.bias", "mlp.c_fc.weight", "mlp.c_fc.bias",
                "mlp.c_proj.weight", "mlp.c_proj.bias")  # fmt: skip
_TOP = ("wte.weight", "wpe.weight", "ln_f.weight", "ln_f.bias")
_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


def _check_size(size: str) -> str:
    if size not in GPT2_SIZES:
        raise LabError(f"Unknown GPT-2 size {size!r}; choose one of {', '.join(GPT2_SIZES)}.")
    return size


def hf_url(size: str) -> str:
    """Where Hugging Face serves ``size``'s weights, e.g. ``https://huggingface.co/openai-community/gpt2/…``."""
    return f"https://huggingface.co/{GPT2_SIZES[_check_size(size)]}/resolve/main/{FILENAME}"


def local_path(size: str, dest_dir: str | os.PathLike | None = None) -> Path:
    """Where :func:`download_gpt2` keeps ``size``: ``<data dir>/gpt2/<size>/model.safetensors`` by default."""
    folder = Path(dest_dir).expanduser() if dest_dir is not None else data_dir() / "gpt2" / _check_size(size)
    return folder / FILENAME


# ------------------------------------------------------------------------------------------------ checking
def verify_gpt2_file(path: str | os.PathLike, size: str | None = None) -> dict[str, Any]:
    """Check that ``path`` is a safetensors file with GPT-2's tensor names (and ``size``'s shape, if given).

    Only the header is read. This is a structural check, not a checksum (none is published for these files).

    Args:
        path: a ``model.safetensors`` file.
        size: when given, the width and depth must be those of this GPT-2 size.

    Returns:
        ``{"path", "n_layers", "emb_dim", "vocab_size", "context_length", "n_parameters", "file_size"}``.

    Raises:
        LabError: not safetensors (or damaged), not GPT-2's layout, or another size than asked for.
    """
    from safetensors import safe_open

    path = Path(path)
    info = checkpoint_info(path)  # validates the header (sizes, offsets, dtypes) before safetensors reads it
    if info["kind"] != "hf-gpt2":
        raise LabError(f"{path.name} is a safetensors file but not GPT-2 weights in Hugging Face's layout (it "
                       "has no wte.weight); pick GPT-2's model.safetensors.")
    with safe_open(str(path), framework="pt") as f:
        names = set(f.keys())
        prefix = "transformer." if "transformer.wte.weight" in names else ""
        stripped = {n[len(prefix):] if n.startswith(prefix) else n for n in names}
        layers = sorted({int(m.group(1)) for n in stripped if (m := re.match(r"h\.(\d+)\.", n))})
        n_layers = layers[-1] + 1 if layers else 0
        needed = [*_TOP, *(f"h.{i}.{part}" for i in range(n_layers) for part in _BLOCK_PARTS)]
        missing = [n for n in needed if n not in stripped]
        if not n_layers or missing:
            what = ", ".join(missing[:3]) if missing else "any h.N block"
            raise LabError(f"{path.name} is not a complete GPT-2 checkpoint: it lacks {what}; download it again "
                           "or pick another file.")
        vocab, emb = f.get_slice(prefix + "wte.weight").get_shape()
        context = f.get_slice(prefix + "wpe.weight").get_shape()[0]
    if size is not None:
        want = PRESETS[_check_size(size)]["config"]
        if (n_layers, emb) != (want["n_layers"], want["emb_dim"]):
            raise LabError(f"{path.name} holds a GPT-2 with {n_layers} blocks of width {emb}, but {size} has "
                           f"{want['n_layers']} blocks of width {want['emb_dim']}; pick the right size.")
    return {"path": str(path), "n_layers": n_layers, "emb_dim": int(emb), "vocab_size": int(vocab),
            "context_length": int(context), "n_parameters": info["n_parameters"], "file_size": info["file_size"]}


def _usable(path: Path) -> bool:
    try:
        verify_gpt2_file(path)
    except LabError:
        return False
    return True


# ------------------------------------------------------------------------------------------------ finding
def hf_cache_dirs() -> list[Path]:
    """Hugging Face hub caches to search: ``$HF_HUB_CACHE``, ``$HUGGINGFACE_HUB_CACHE``, ``$HF_HOME/hub``, then
    ``~/.cache/huggingface/hub`` (those that exist, without repeats)."""
    candidates = [os.environ.get("HF_HUB_CACHE"), os.environ.get("HUGGINGFACE_HUB_CACHE")]
    if os.environ.get("HF_HOME"):
        candidates.append(str(Path(os.environ["HF_HOME"]) / "hub"))
    candidates.append("~/.cache/huggingface/hub")
    out: list[Path] = []
    for c in candidates:
        if c and (p := Path(c).expanduser()).is_dir() and p not in out:
            out.append(p)
    return out


def _cache_snapshots(cache: Path, repo: str) -> list[Path]:
    """``model.safetensors`` in the repo's snapshots, the one ``refs/main`` names first."""
    root = cache / f"models--{repo.replace('/', '--')}"
    files = sorted(root.glob(f"snapshots/*/{FILENAME}"))
    try:
        main = (root / "refs" / "main").read_text(encoding="utf-8").strip()
    except OSError:
        return files
    return sorted(files, key=lambda p: p.parent.name != main)


def find_local_gpt2(size: str, hf_cache: str | os.PathLike | None = None) -> Path | None:
    """A usable ``model.safetensors`` for ``size`` already on this machine, or None. Never uses the network.

    Looks in :func:`local_path` (earlier downloads) and then in Hugging Face caches (``hf_cache`` if given,
    else :func:`hf_cache_dirs`), under ``openai-community/<name>`` and the old alias ``<name>``. A file counts
    when :func:`verify_gpt2_file` accepts its layout.

    Example:
        >>> find_local_gpt2("gpt2-small")  # doctest: +SKIP
        PosixPath('/home/me/.cache/huggingface/hub/models--openai-community--gpt2/snapshots/607a…/model.safetensors')
    """
    candidates = [local_path(size)]
    caches = [Path(hf_cache).expanduser()] if hf_cache is not None else hf_cache_dirs()
    for cache in caches:
        for repo in (GPT2_SIZES[size], _LEGACY_REPOS[size]):
            candidates += _cache_snapshots(cache, repo)
    return next((p for p in candidates if p.is_file() and _usable(p)), None)


def resolve_gpt2_path(text: str | os.PathLike) -> Path:
    """A path the user typed (a file, or a folder holding ``model.safetensors``) → the checked file.

    Raises:
        LabError: empty, missing, or not GPT-2 weights.
    """
    raw = str(text).strip()
    if not raw:
        raise LabError("Give the path of a GPT-2 model.safetensors file (or the folder that holds it).")
    path = Path(raw).expanduser()
    if path.is_dir():
        path = path / FILENAME
    if not path.is_file():
        raise LabError(f"There is no file at {path}; give the full path of a GPT-2 model.safetensors file.")
    verify_gpt2_file(path)
    return path


def store_gpt2_upload(data: bytes | BinaryIO, dest_dir: str | os.PathLike | None = None) -> Path:
    """Write uploaded GPT-2 weights into the data folder and check them; returns the stored file.

    The file goes to ``<data dir>/gpt2/upload-<sha256 prefix>/model.safetensors`` (named by content, so the same
    upload twice is stored once), via a temporary file that is removed if the check fails.

    Raises:
        LabError: the bytes are not GPT-2 weights (nothing is kept), or the disk is full.
    """
    stream: Any = data
    tmp_root = Path(dest_dir).expanduser() if dest_dir is not None else data_dir() / "gpt2"
    tmp_root.mkdir(parents=True, exist_ok=True)
    tmp = tmp_root / f".upload-{os.getpid()}-{threading.get_ident()}.part"
    h = hashlib.sha256()
    try:
        with open(tmp, "wb") as out:
            if isinstance(data, bytes | bytearray | memoryview):
                h.update(data)
                out.write(data)
            else:
                while chunk := stream.read(CHUNK_BYTES):
                    h.update(chunk)
                    out.write(chunk)
        verify_gpt2_file(tmp)
        dest = tmp_root / f"upload-{h.hexdigest()[:16]}" / FILENAME
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, dest)
    except LabError as err:
        raise LabError(f"The uploaded file is not usable GPT-2 weights ({_plain(err, tmp)}); nothing was kept.") \
            from None
    except OSError as err:
        raise LabError(f"Could not store the upload in {tmp_root} ({err.strerror or err}); check the disk space.") \
            from None
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def _plain(err: LabError, tmp: Path) -> str:
    """The error message without the temporary file's name, and without its final full stop."""
    return str(err).replace(str(tmp), "the file").replace(tmp.name, "the file").rstrip(".")


# ----------------------------------------------------------------------------------------------- download
class _Unreachable(Exception):
    """The connection could not be opened (offline, DNS failure, refused, timed out)."""


class _Offline(_Unreachable):
    """The host name does not resolve: almost surely no network, so retrying only makes the user wait."""


class _Interrupted(Exception):
    """The transfer broke off or the server failed (5xx); worth resuming."""


def _lock_for(key: str) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault(key, threading.Lock())


def download_gpt2(
    size: str,
    progress: Progress | None = None,
    dest_dir: str | os.PathLike | None = None,
    *,
    url: str | None = None,
    timeout: float = 30,
    retries: int = 3,
) -> Path:
    """Download ``size``'s ``model.safetensors`` from Hugging Face (once) and return the checked file.

    The file is streamed into ``model.safetensors.part``; an interrupted download resumes from there with an
    HTTP ``Range`` request (also in a later call), each failure is retried with a growing pause, and only a file
    that passes :func:`verify_gpt2_file` is renamed into place. Because no checksum is published for these files,
    the check is structural (see the module docstring), not a sha256 comparison.

    (``core.datasets.download`` is keyed by registry name and caps files at 100 MB, so this module streams on
    its own, in the same way.)

    Args:
        size: ``"gpt2-small"``, ``"gpt2-medium"``, ``"gpt2-large"`` or ``"gpt2-xl"``.
        progress: called as ``progress(bytes_so_far, total_bytes_or_None)`` after every chunk.
        dest_dir: folder for the file (default: ``<data dir>/gpt2/<size>``).
        url: fetch from here instead (a mirror or a test server). Such a file must have GPT-2's layout but may
            be of any width and depth; from Hugging Face's address it must match ``size``.
        timeout: seconds to wait for the connection and for each read.
        retries: extra attempts after a failed or broken-off one.

    Raises:
        LabError: offline ("Could not reach huggingface.co (no internet connection?) …"), an HTTP error, not
            enough disk space, or a file that is not GPT-2 weights (nothing is kept).

    Example:
        >>> download_gpt2("gpt2-small", progress=lambda done, total: print(done, total))  # doctest: +SKIP
        PosixPath('/home/me/.cache/llm-scratch-lab/gpt2/gpt2-small/model.safetensors')
    """
    _check_size(size)
    dest = local_path(size, dest_dir)
    src = url or hf_url(size)
    if urlparse(src).scheme not in ("http", "https"):
        raise LabError(f"Downloads must use http or https, not {src!r}; check the address.")
    host = urlparse(src).hostname or src
    with _lock_for(str(dest)):
        if dest.is_file() and _usable(dest):
            return dest
        dest.parent.mkdir(parents=True, exist_ok=True)
        part = dest.with_name(FILENAME + ".part")
        try:
            _fetch(src, part, progress, timeout, retries)
        except _Unreachable:
            raise LabError(f"Could not reach {host} (no internet connection?). Download {FILENAME} on a machine "
                           "with internet and give its path here.") from None
        except _Interrupted:
            raise LabError(f"The download from {host} kept breaking off ({retries + 1} tries); check the "
                           "connection and try again: it resumes where it stopped.") from None
        try:
            verify_gpt2_file(part, size if url is None else None)
        except LabError as err:
            part.unlink(missing_ok=True)
            raise LabError(f"The file downloaded from {host} is not usable GPT-2 weights ({_plain(err, part)}); "
                           "nothing was kept. Try again, or give the path of a model.safetensors you have.") from None
        os.replace(part, dest)
    return dest


def _fetch(url: str, part: Path, progress: Progress | None, timeout: float, retries: int) -> None:
    for attempt in range(retries + 1):
        try:
            return _fetch_once(url, part, progress, timeout)
        except (_Unreachable, _Interrupted) as err:
            if attempt == retries or isinstance(err, _Offline):
                raise
            time.sleep(BACKOFF_S * 2**attempt)


def _fetch_once(url: str, part: Path, progress: Progress | None, timeout: float) -> None:
    """One attempt: continue ``part`` from its size (or start it) and append until the server is done."""
    start = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": "llm-scratch-lab (+https://github.com/rasbt/LLMs-from-scratch)"}
    if start:
        headers["Range"] = f"bytes={start}-"
    try:
        resp = urlopen(Request(url, headers=headers), timeout=timeout)  # noqa: S310 - scheme checked by caller
    except HTTPError as err:
        if err.code == 416:  # our partial file is not a prefix the server can continue: start over
            part.unlink(missing_ok=True)
            raise _Interrupted("range not satisfiable") from None
        if err.code >= 500 or err.code == 429:
            raise _Interrupted(f"HTTP {err.code}") from None
        raise LabError(f"{urlparse(url).hostname} answered HTTP {err.code} ({err.reason}) for {url}; the file may "
                       "have moved, so download it by hand and give its path here.") from None
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
        length = resp.headers.get("Content-Length")
        expected = int(length) if length and length.isdigit() else None
        total = done + expected if expected is not None else None
        if expected is not None:
            free = shutil.disk_usage(part.parent).free
            if expected > free:
                raise LabError(f"The download needs {expected / 2**30:.2f} GB but only {free / 2**30:.2f} GB is "
                               f"free in {part.parent}; free some space or choose another folder.")
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
                if progress is not None:
                    progress(done, total)
    # http.client returns b"" instead of raising when the server closes early, so count the bytes ourselves.
    if expected is not None and received < expected:
        raise _Interrupted(f"connection closed after {received} of {expected} bytes")
