"""OpenAI's pretrained GPT-2 weights (book §5.5): find them on disk, download them, or take a user's file.

The book loads GPT-2's weights instead of training for weeks. Hugging Face hosts them as one safetensors file
per size (``https://huggingface.co/<repo>/resolve/main/model.safetensors``); :func:`core.checkpoint.load_hf_gpt2`
maps that layout into :class:`~core.model.GPTModel`. This module gets the file:

- :func:`find_local_gpt2` looks, without any network, in this app's data folder and in an existing Hugging Face
  cache (``~/.cache/huggingface/hub/models--openai-community--gpt2/snapshots/*/model.safetensors``);
- :func:`download_gpt2` streams it into the data folder with progress, resume (HTTP ``Range``) and retries
  (:func:`core.fileio.download`);
- :func:`store_gpt2_upload` and :func:`resolve_gpt2_path` accept a file the user uploads or names.

**Integrity, honestly:** no sha256 is published that we could pin for these files, so a download is *not*
checked against a known checksum. What is checked (by :func:`core.hf_gpt2.verify_gpt2_file`) is the structure:
the file must be valid safetensors (its header is validated without reading any tensor), it must have GPT-2's
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
import os
import threading
from pathlib import Path
from typing import Any, BinaryIO

from core import fileio
from core.datasets.registry import data_dir
from core.errors import LabError
from core.fileio import Progress
from core.hf_gpt2 import GPT2_SIZES, check_gpt2_size, verify_gpt2_file

__all__ = ["GPT2_FILE_SIZES", "GPT2_SIZES", "download_gpt2", "find_local_gpt2", "hf_cache_dirs", "hf_url",
           "local_path", "resolve_gpt2_path", "store_gpt2_upload", "verify_gpt2_file"]

#: Rough download sizes, for the UI (fp32 weights: 4 bytes per parameter).
GPT2_FILE_SIZES: dict[str, str] = {
    "gpt2-small": "about 0.5 GB", "gpt2-medium": "about 1.5 GB", "gpt2-large": "about 3.2 GB",
    "gpt2-xl": "about 6.4 GB",
}  # fmt: skip
_LEGACY_REPOS = {"gpt2-small": "gpt2", "gpt2-medium": "gpt2-medium", "gpt2-large": "gpt2-large", "gpt2-xl": "gpt2-xl"}
FILENAME = "model.safetensors"
CHUNK_BYTES = 1 << 20
BACKOFF_S = 0.5  # first retry waits this long, then twice as long each time (tests set it to 0)


def hf_url(size: str) -> str:
    """Where Hugging Face serves ``size``'s weights, e.g. ``https://huggingface.co/openai-community/gpt2/…``."""
    return f"https://huggingface.co/{GPT2_SIZES[check_gpt2_size(size)]}/resolve/main/{FILENAME}"


def local_path(size: str, dest_dir: str | os.PathLike | None = None) -> Path:
    """Where :func:`download_gpt2` keeps ``size``: ``<data dir>/gpt2/<size>/model.safetensors`` by default."""
    folder = Path(dest_dir).expanduser() if dest_dir is not None else data_dir() / "gpt2" / check_gpt2_size(size)
    return folder / FILENAME


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

    The transfer is :func:`core.fileio.download`: streamed into ``model.safetensors.part``, an interrupted
    download resumes from there with an HTTP ``Range`` request (also in a later call), each failure is retried
    with a growing pause, and only a file that passes :func:`verify_gpt2_file` is renamed into place. Because no
    checksum is published for these files, the check is structural (see the module docstring), not a sha256.

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
    check_gpt2_size(size)
    dest = local_path(size, dest_dir)
    src = url or hf_url(size)
    host = fileio.check_url(src)
    try:
        return fileio.download(src, dest, verify=lambda part: _verify_download(part, size if url is None else None,
                                                                               host),
                               reuse=_usable, progress=progress, timeout=timeout, retries=retries,
                               backoff=BACKOFF_S, chunk_bytes=CHUNK_BYTES)
    except fileio.Unreachable:
        raise LabError(f"Could not reach {host} (no internet connection?). Download {FILENAME} on a machine "
                       "with internet and give its path here.") from None
    except fileio.Refused as err:
        raise LabError(f"{host} answered HTTP {err.code} ({err.reason}) for {src}; the file may have moved, so "
                       "download it by hand and give its path here.") from None
    except fileio.Interrupted:
        raise LabError(f"The download from {host} kept breaking off ({retries + 1} tries); check the "
                       "connection and try again: it resumes where it stopped.") from None


def _verify_download(part: Path, size: str | None, host: str) -> None:
    """:func:`verify_gpt2_file` on the finished ``.part``, its failure said about the download."""
    try:
        verify_gpt2_file(part, size)
    except LabError as err:
        raise LabError(f"The file downloaded from {host} is not usable GPT-2 weights ({_plain(err, part)}); "
                       "nothing was kept. Try again, or give the path of a model.safetensors you have.") from None
