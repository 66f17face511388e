"""Small Streamlit building blocks every page uses: error boundary, code expander, text input, next link."""

from __future__ import annotations

import hashlib
import inspect
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from typing import Any

import streamlit as st

from core.datasets import download, get_info, is_available, list_datasets
from core.errors import LabError
from core.journey import next_page, page_info

log = logging.getLogger("llm_scratch_lab")

MAX_TEXT_CHARS = 50_000  # beyond this, pages work on a truncated copy and say so (The Verdict, 20,479, fits whole)


@contextmanager
def guard(what: str = "this step") -> Iterator[None]:
    """Show bad input as one sentence and unexpected failures without a traceback; the page keeps running.

    Example:
        with guard("tokenizing"):
            ids = tok.encode(text)
    """
    try:
        yield
    except LabError as err:
        st.error(str(err), icon=":material/error:")
    except Exception as err:  # noqa: BLE001 - the UI must never show a traceback
        log.exception("unexpected error in %s", what)
        st.error(
            f"Something unexpected went wrong while {what} ({type(err).__name__}: {err}). "
            "Try other settings; the rest of the app keeps working.",
            icon=":material/error:",
        )


def code_key(*functions: Callable, label: str = "Show the code") -> str:
    """The session key that says whether :func:`show_code`'s expander for these functions is open."""
    names = " ".join(f"{inspect.unwrap(fn).__module__}.{inspect.unwrap(fn).__qualname__}" for fn in functions)
    return "code_" + hashlib.sha256(f"{label}|{names}".encode()).hexdigest()[:12]


def show_code(*functions: Callable, label: str = "Show the code") -> None:
    """An expander with the source of the ``core`` functions that produced what the page shows.

    The source is sent only while the expander is open: highlighted code is thousands of elements in the
    browser, which every live redraw of a page (a training dashboard) would otherwise walk again.
    """
    key = code_key(*functions, label=label)
    with st.expander(label, icon=":material/code:", key=key, on_change="rerun"):
        if not st.session_state.get(key):
            st.caption("Open to read the code.")
            return
        for fn in functions:
            target = inspect.unwrap(fn)
            st.caption(f"`{target.__module__}.{target.__qualname__}`")
            st.code(inspect.getsource(target), language="python")


SCRIPT_TEXT = "script_text_"  # session key prefix: the script the page last offered (what a download would give)


def script_download(page: str, settings: dict[str, Any], container: Any = None) -> None:
    """A "Download as script" button: a Python script that reproduces what the page shows with these settings
    (:func:`core.page_scripts.page_script`)."""
    from core.page_scripts import page_script, script_name

    with guard("writing the script"):
        text = page_script(page, settings)
        st.session_state[SCRIPT_TEXT + page] = text
        (container or st).download_button(
            "Download as script", text, script_name(page), "text/x-python", icon=":material/terminal:",
            key=f"script_dl_{page}", on_click="ignore",
            help="A Python script with these settings that prints this page's figures; run it in the project "
                 "folder with python.")  # fmt: skip


def page_header(path: str, explanation: str) -> None:
    """Title, the stage's place in the book, and a two-sentence explanation."""
    info = page_info(path)
    st.title(info.title)
    st.caption(f"Stage {info.stage}" + (f" · book {info.chapter}" if info.chapter else ""))
    st.markdown(explanation)


def next_page_link(path: str) -> None:
    nxt = next_page(path)
    if nxt is not None:
        st.divider()
        st.page_link(nxt.path, label=f"Next: {nxt.title} — {nxt.summary}", icon=":material/arrow_forward:")


def uploader(label: str, **kwargs: Any) -> Any:
    """``st.file_uploader`` with the session's upload cap: the browser refuses bigger files with its own message,
    and a file that gets through anyway is refused here with one sentence (returns None)."""
    from ui.state import limits

    caps = limits()
    up = st.file_uploader(label, max_upload_size=caps.max_upload_mb if caps.demo else None, **kwargs)
    if up is not None:
        try:
            caps.check_upload(up.size, f"file ({up.name})")
        except LabError as err:
            st.error(str(err), icon=":material/block:")
            return None
    return up


def text_source(
    key: str,
    default: str,
    label: str = "Text",
    height: int = 150,
    max_chars: int = MAX_TEXT_CHARS,
) -> str:
    """A text area plus an optional .txt upload; returns the text to use (truncated with a visible note).

    Uploaded bytes must be UTF-8 text; anything else gets one clear sentence and the typed text is used instead.
    """
    text = st.text_area(label, value=default, height=height, key=f"{key}_text")
    upload = uploader("…or upload a .txt file", type=["txt", "md"], key=f"{key}_upload")
    if upload is not None:
        data = upload.getvalue()
        try:
            if b"\x00" in data[:4096]:
                raise UnicodeDecodeError("utf-8", data[:1], 0, 1, "NUL byte")
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            st.error(
                f"{upload.name} is not a UTF-8 text file (it looks binary or uses another encoding); "
                "save it as UTF-8 text and upload it again. Using the text box instead."
            )
    if len(text) > max_chars:
        st.info(
            f"The text has {len(text):,} characters; this page works on the first {max_chars:,} so it stays "
            "responsive.",
            icon=":material/content_cut:",
        )
        text = text[:max_chars]
    return text


def download_with_progress(label: str, fetch: Callable[[Callable[[int, int | None], None]], Any], *, key: str,
                           what: str = "the file") -> Any:
    """A download button; when pressed, run ``fetch(progress)`` under a progress bar and return its result.

    ``fetch`` is a ``core`` downloader that calls ``progress(done_bytes, total_bytes_or_None)``. The bar goes
    away again whether the download works or not; a failure is one sentence (via :func:`guard`) and gives None,
    as does a button that was not pressed.
    """
    if not st.button(label, key=key, icon=":material/download:"):
        return None
    slot = st.empty()
    bar = slot.progress(0.0, text="Connecting…")

    def progress(done: int, total: int | None) -> None:
        size = f"{done / 2**20:,.1f} MB" + (f" of {total / 2**20:,.1f} MB" if total else "")
        bar.progress(min(1.0, done / total) if total else 0.0, text=f"Downloading {what}… {size}")

    result = None
    with guard(f"downloading {what}"):
        try:
            result = fetch(progress)
        finally:
            slot.empty()
    return result


def dataset_source(kind: str, key: str, upload_label: str) -> tuple[str, Any]:
    """Pick a dataset of ``kind`` from :data:`core.datasets.DATASETS` or ``"upload"``; load the chosen one.

    A registry dataset is described (description, size, licence) and loaded with its own loader, or offered
    for download when it is not on this machine. Returns ``(source, data)``: ``data`` is None for ``"upload"``
    (the page draws its own uploader) and while a dataset is not downloaded.
    """
    names = {info.name: info.title for info in list_datasets(kind)} | {"upload": upload_label}
    source = st.radio("Dataset", list(names), format_func=names.get, horizontal=True, key=f"{key}_source")
    if source == "upload":
        return source, None
    info = get_info(source)
    st.caption(f"{info.description} {info.size}. Licence: {info.licence}")
    if is_available(source):
        with guard("loading the data"):
            return source, info.load()
    elif download_with_progress(f"Download {info.title}", partial(download, source), key=f"{key}_download",
                                what=info.title) is not None:
        st.rerun()
    return source, None
