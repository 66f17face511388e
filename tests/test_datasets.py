"""core.datasets: registry, downloader (against a real local HTTP server), zip safety, loaders, splits, uploads."""

from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import random
import shutil
import socket
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pandas as pd
import pytest

import core.datasets.fetch as dl
from core.datasets import (
    DATASETS,
    DatasetInfo,
    balance,
    data_dir,
    download,
    is_available,
    label_mapping,
    load_classification,
    load_corpus,
    load_instructions,
    parse_instruction_upload,
    parse_table_upload,
    parse_text_upload,
    path_of,
    read_manifest,
    split,
    split_instructions,
)
from core.errors import LabError
from tests.conftest import ROOT, SHARED_DATA

FIXTURES = Path(__file__).parent / "fixtures"
PAYLOAD = random.Random(0).randbytes(200_000)  # several 64 KB chunks, so progress is reported more than once


def _shared(name: str) -> Path:
    path = SHARED_DATA / name
    if not path.is_file():
        pytest.skip(f"{path} not present")
    return path


# ------------------------------------------------------------------------------------------ a local server
class Server:
    """Serves ``files`` from 127.0.0.1; ``modes[name]`` is a queue of behaviours, one per request, then "ok".

    Modes: "ok" (honours Range with 206), "truncate" (promises the full length, sends half, hangs up),
    "corrupt" (one byte flipped), "ignore-range" (always 200 with the whole file), "500".
    """

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.modes: dict[str, list[str]] = {}
        self.log: list[dict] = []
        state = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # keep pytest output clean
                pass

            def do_GET(self) -> None:
                name = self.path.lstrip("/")
                body, rng = state.files.get(name), self.headers.get("Range")
                queue = state.modes.get(name, [])
                mode = queue.pop(0) if queue else "ok"
                entry = {"name": name, "range": rng, "mode": mode, "status": None, "sent": 0}
                state.log.append(entry)
                if body is None or mode == "500":
                    entry["status"] = 404 if body is None else 500
                    self.send_error(entry["status"])
                    return
                start = int(rng.split("=")[1].rstrip("-")) if rng and mode != "ignore-range" else 0
                if mode == "corrupt":
                    body = bytes([body[0] ^ 0xFF]) + body[1:]
                part = body[start:]
                entry["status"] = 206 if start else 200
                self.send_response(entry["status"])
                self.send_header("Content-Length", str(len(part)))
                if start:
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                self.end_headers()
                sent = part[: len(part) // 2] if mode == "truncate" else part
                entry["sent"] = len(sent)  # before writing: the client may finish before this thread resumes
                self.wfile.write(sent)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()

    def url(self, name: str) -> str:
        return f"{self.base}/{name}"


@pytest.fixture
def server():
    srv = Server()
    yield srv
    srv.httpd.shutdown()
    srv.httpd.server_close()


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    """An empty download cache, and no waiting between retries."""
    path = tmp_path / "cache"
    monkeypatch.setenv("LLMLAB_DATA_DIR", str(path))
    monkeypatch.delenv("LLMLAB_DATASET_BASE_URL", raising=False)
    monkeypatch.setattr(dl, "BACKOFF_S", 0.0)
    return path


@pytest.fixture
def blob(monkeypatch) -> str:
    """A registry entry for PAYLOAD with its sha256 pinned."""
    info = DatasetInfo(name="fixture-blob", title="Fixture blob", kind="corpus", description="test",
                       source="download", filename="blob.bin", licence="test", size="200 KB", loader="load_corpus",
                       url="https://example.invalid/files/blob.bin", sha256=hashlib.sha256(PAYLOAD).hexdigest())
    monkeypatch.setitem(DATASETS, info.name, info)
    return info.name


def _files(path: Path) -> list[str]:
    return sorted(p.name for p in path.iterdir()) if path.exists() else []


# ----------------------------------------------------------------------------------------------- download
def test_download_streams_verifies_and_reports_progress(cache, server, blob):
    server.files["blob.bin"] = PAYLOAD
    calls: list[tuple[int, int | None]] = []
    path = download(blob, progress=lambda done, total: calls.append((done, total)), url=server.url("blob.bin"))
    assert path == cache / "blob.bin"
    assert path.read_bytes() == PAYLOAD
    assert _files(cache) == ["blob.bin", "manifest.json"]  # no .part left behind
    assert len(calls) > 1
    assert all(b[0] > a[0] for a, b in zip(calls, calls[1:]))
    assert calls[-1] == (len(PAYLOAD), len(PAYLOAD))
    assert read_manifest()["blob.bin"]["sha256"] == hashlib.sha256(PAYLOAD).hexdigest()
    assert is_available(blob)
    assert download(blob, url=server.url("blob.bin")) == path
    assert len(server.log) == 1  # the second call found the verified file and fetched nothing


def test_truncated_transfer_resumes_with_range(cache, server, blob):
    server.files["blob.bin"] = PAYLOAD
    server.modes["blob.bin"] = ["truncate"]
    path = download(blob, url=server.url("blob.bin"))
    assert path.read_bytes() == PAYLOAD
    first, second = server.log
    assert first["range"] is None
    assert second["range"] == f"bytes={len(PAYLOAD) // 2}-"
    assert second["status"] == 206
    assert first["sent"] + second["sent"] == len(PAYLOAD)  # resumed: no byte was sent twice


def test_transfer_that_keeps_breaking_off_raises(cache, server, blob):
    server.files["blob.bin"] = PAYLOAD
    server.modes["blob.bin"] = ["truncate"] * 10
    with pytest.raises(LabError, match="kept breaking off"):
        download(blob, url=server.url("blob.bin"), retries=2)
    assert len(server.log) == 3
    assert not (cache / "blob.bin").exists()


def test_server_ignoring_range_restarts_from_zero(cache, server, blob):
    server.files["blob.bin"] = PAYLOAD
    server.modes["blob.bin"] = ["truncate", "ignore-range"]
    path = download(blob, url=server.url("blob.bin"))
    assert path.read_bytes() == PAYLOAD  # not the first half twice
    assert server.log[1]["range"] is not None
    assert server.log[1]["status"] == 200


def test_server_error_is_retried(cache, server, blob):
    server.files["blob.bin"] = PAYLOAD
    server.modes["blob.bin"] = ["500"]
    assert download(blob, url=server.url("blob.bin")).read_bytes() == PAYLOAD
    assert [e["status"] for e in server.log] == [500, 200]


def test_corrupted_download_fails_checksum_and_leaves_nothing(cache, server, blob):
    server.files["blob.bin"] = PAYLOAD
    server.modes["blob.bin"] = ["corrupt"]
    with pytest.raises(LabError, match="does not match the expected checksum"):
        download(blob, url=server.url("blob.bin"))
    assert _files(cache) == []


def test_connection_refused_is_an_offline_error(cache, blob):
    with socket.socket() as s:  # a port that was free a moment ago and has nobody listening now
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(LabError, match=r"Could not reach 127\.0\.0\.1 \(no internet connection\?\)") as err:
        download(blob, url=f"http://127.0.0.1:{port}/blob.bin", retries=1, timeout=5)
    assert str(cache / "blob.bin") in str(err.value)
    assert "built-in dataset" in str(err.value)


def test_dns_failure_is_offline_and_not_retried(cache, monkeypatch):
    lookups = []

    def no_dns(*args, **kwargs):
        lookups.append(args[0])
        raise socket.gaierror(-3, "Temporary failure in name resolution")

    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    with pytest.raises(LabError, match=r"^Could not reach raw\.githubusercontent\.com \(no internet connection\?\)\. "
                       r"Download the file on a machine with internet and place it at .*the-verdict\.txt, or use "
                       r"the built-in dataset\.$"):
        download("the-verdict")
    assert lookups == ["raw.githubusercontent.com"]
    with pytest.raises(LabError, match="extract SMSSpamCollection from it and place it at"):
        download("sms-spam")


def test_missing_file_and_bad_scheme_are_clear(cache, server, blob):
    with pytest.raises(LabError, match="HTTP 404"):
        download(blob, url=server.url("nothing-here"))
    assert len(server.log) == 1  # a 404 is not retried
    with pytest.raises(LabError, match="http or https"):
        download(blob, url="file:///etc/passwd")


def test_base_url_environment_override(cache, server, blob, monkeypatch):
    server.files["blob.bin"] = PAYLOAD
    monkeypatch.setenv("LLMLAB_DATASET_BASE_URL", server.base + "/")
    assert download(blob).read_bytes() == PAYLOAD
    assert server.log[0]["name"] == "blob.bin"


def test_the_verdict_through_the_downloader(cache, server):
    server.files["the-verdict.txt"] = _shared("the-verdict.txt").read_bytes()
    path = download("the-verdict", url=server.url("the-verdict.txt"))
    assert path == path_of("the-verdict")
    assert len(load_corpus("the-verdict")) == 20_479


# ---------------------------------------------------------------------------------------------------- zips
def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


MESSAGES = b"ham\tSee you at 6\nspam\tYou won a prize, call now\nham\tThanks!\n"


@pytest.fixture
def zipped(monkeypatch) -> str:
    """A registry entry shaped like "sms-spam": a zip with no pinned checksum, verified by structure."""
    info = DatasetInfo(name="fixture-zip", title="Fixture messages", kind="classification", description="test",
                       source="download", filename="messages.tsv", licence="test", size="3 rows",
                       loader="load_classification", url="https://example.invalid/messages.zip",
                       archive_member="SMSSpamCollection", rows=3, labels=("ham", "spam"))
    monkeypatch.setitem(DATASETS, info.name, info)
    return info.name


def test_zip_member_is_extracted_and_traversal_names_ignored(cache, server, zipped):
    evil = (cache / ".." / ".." / "evil").resolve()
    server.files["m.zip"] = _zip({"readme": b"about", "../../evil": b"boom", "SMSSpamCollection": MESSAGES})
    path = download(zipped, url=server.url("m.zip"))
    assert path.read_bytes() == MESSAGES
    assert _files(cache) == ["manifest.json", "messages.tsv"]  # the zip itself is not kept
    assert not evil.exists()
    assert read_manifest()["messages.tsv"]["verified"] == "structure"
    df = load_classification(zipped)
    assert df["label"].tolist() == ["ham", "spam", "ham"]
    path.write_bytes(MESSAGES.replace(b"6", b"7"))  # tampering is caught by the recorded checksum
    with pytest.raises(LabError, match="changed since it was verified"):
        load_classification(zipped)


def test_zip_with_only_a_traversal_member_writes_nothing(cache, server, zipped):
    evil = (cache / ".." / ".." / "evil").resolve()
    server.files["m.zip"] = _zip({"../../evil": MESSAGES})
    with pytest.raises(LabError, match="does not contain SMSSpamCollection"):
        download(zipped, url=server.url("m.zip"))
    assert not evil.exists()
    assert _files(cache) == []


def test_zip_bomb_is_refused(cache, server, zipped):
    server.files["bomb.zip"] = bomb = _zip({"SMSSpamCollection": bytes(50 * 2**20)})
    assert len(bomb) < 100_000  # 50 MB of zeros squeezed into a few dozen KB
    with pytest.raises(LabError, match="zip bomb"):
        download(zipped, url=server.url("bomb.zip"))
    assert _files(cache) == []


def test_zip_member_lying_about_its_size_is_refused(cache, server, zipped, monkeypatch):
    monkeypatch.setattr(dl, "MAX_MEMBER_BYTES", 2**20)
    data = bytearray(_zip({"SMSSpamCollection": bytes(5 * 2**20)}))
    central = data.rindex(b"PK\x01\x02")  # central directory entry: uncompressed size at offset 24
    data[central + 24:central + 28] = (100).to_bytes(4, "little")
    server.files["liar.zip"] = bytes(data)
    with pytest.raises(LabError, match="zip bomb|not a readable zip"):
        download(zipped, url=server.url("liar.zip"))
    assert _files(cache) == []


@pytest.mark.parametrize("payload, match", [
    (_zip({"SMSSpamCollection": MESSAGES.replace(b"spam\t", b"junk\t")}), "Line 2"),
    (_zip({"SMSSpamCollection": MESSAGES + b"ham\tone too many\n"}), "has 4 lines"),
    (b"this is not a zip", "not a readable zip"),
])
def test_bad_archives_are_rejected(cache, server, zipped, payload, match):
    server.files["m.zip"] = payload
    with pytest.raises(LabError, match=match):
        download(zipped, url=server.url("m.zip"))
    assert _files(cache) == []


def test_sms_spam_zip_end_to_end(cache, server):
    server.files["sms.zip"] = _zip({"SMSSpamCollection": _shared("SMSSpamCollection.tsv").read_bytes()})
    download("sms-spam", url=server.url("sms.zip"))
    assert load_classification("sms-spam")["label"].value_counts().to_dict() == {"ham": 4825, "spam": 747}


# ------------------------------------------------------------------------------- the book's real data files
def _place(cache: Path, name: str, filename: str) -> None:
    cache.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(_shared(name), cache / filename)


def test_sms_spam_as_the_book(cache):
    _place(cache, "SMSSpamCollection.tsv", DATASETS["sms-spam"].filename)
    df = load_classification("sms-spam")
    assert list(df.columns) == ["text", "label"]
    assert len(df) == 5572
    assert df["label"].value_counts().to_dict() == {"ham": 4825, "spam": 747}
    balanced = balance(df)
    assert balanced["label"].value_counts().to_dict() == {"ham": 747, "spam": 747}
    train, val, test = split(balanced)
    assert (len(train), len(val), len(test)) == (1045, 149, 300)
    assert label_mapping(df) == {"ham": 0, "spam": 1}
    assert read_manifest()["SMSSpamCollection.tsv"]["sha256"].startswith("7d039a24")  # placed by hand: recorded


def test_book_instructions_and_split(cache):
    _place(cache, "instruction-data.json", "instruction-data.json")
    data = load_instructions("book-instructions")
    assert len(data) == 1100
    train, val, test = split_instructions(data)
    assert (len(train), len(val), len(test)) == (935, 55, 110)
    assert test[0] == data[935]  # the book takes test right after train and leaves the rest for validation


def test_the_verdict_from_the_cache(cache):
    _place(cache, "the-verdict.txt", "the-verdict.txt")
    text = load_corpus("the-verdict")
    assert len(text) == 20_479
    assert text.startswith("I HAD always thought Jack Gisburn")


def test_cached_file_with_a_wrong_checksum_is_refused(cache):
    cache.mkdir(parents=True)
    (cache / "the-verdict.txt").write_text("not the verdict", encoding="utf-8")
    with pytest.raises(LabError, match="does not match the expected checksum"):
        load_corpus("the-verdict")


def test_missing_download_says_so(cache):
    assert not is_available("the-verdict")
    with pytest.raises(LabError, match="not downloaded yet"):
        load_corpus("the-verdict")


# ------------------------------------------------------------------------------------------------ built-ins
def test_builtin_corpus():
    files = sorted((ROOT / "assets" / "corpus").glob("*.txt"))
    assert 650_000 <= sum(f.stat().st_size for f in files) <= 750_000
    for f in files:  # pure prose: each file opens with a title line, no header or metadata
        title = f.read_text(encoding="utf-8").split("\n")[0]
        assert 0 < len(title) < 40 and title[-1] not in ".:#"
    text = load_corpus("builtin-corpus")
    assert len(text) == sum(len(f.read_text(encoding="utf-8").strip()) for f in files) + 2 * (len(files) - 1)
    assert files[-1].name == "very_short_stories.txt"  # last, so the 10 % validation tail is stories
    assert text.startswith(files[0].read_text(encoding="utf-8").split("\n")[0])
    assert is_available("builtin-corpus")


def test_builtin_spam():
    df = load_classification("builtin-spam")
    assert len(df) >= 300
    assert DATASETS["builtin-spam"].size == f"{len(df)} messages"
    assert set(df["label"]) == {"ham", "spam"}
    assert 0.3 <= (df["label"] == "spam").mean() <= 0.5
    assert not df["text"].duplicated().any()
    assert (df["text"].str.strip() != "").all()


def test_builtin_instructions():
    data = load_instructions("builtin-instructions")
    assert len(data) >= 300
    assert DATASETS["builtin-instructions"].size == f"{len(data)} records"
    assert all(isinstance(r[k], str) for r in data for k in ("instruction", "input", "output"))
    assert all(r["output"].strip() for r in data)
    assert len({r["instruction"] + r["input"] for r in data}) == len(data)  # no question asked twice


def test_make_builtin_regenerates_identical_files(tmp_path):
    spec = importlib.util.spec_from_file_location("make_builtin", ROOT / "assets" / "datasets" / "make_builtin.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for path in module.main(tmp_path):
        assert path.read_bytes() == (ROOT / "assets" / "datasets" / path.name).read_bytes()


def test_make_stories_regenerates_the_committed_corpus_part(tmp_path):
    spec = importlib.util.spec_from_file_location("make_stories", ROOT / "assets" / "datasets" / "make_stories.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = module.main(tmp_path / "stories.txt")
    assert out.read_bytes() == (ROOT / "assets" / "corpus" / "very_short_stories.txt").read_bytes()
    stories = out.read_text(encoding="utf-8").split("\n\n")[1:]
    assert len(stories) == module.N_STORIES and len(set(stories)) > 0.9 * len(stories)  # few exact repeats


# ------------------------------------------------------------------------------------------------ registry
def test_registry_entries_are_coherent(cache, monkeypatch):
    for name, info in DATASETS.items():
        assert info.name == name
        if info.source == "builtin":
            assert is_available(name)
            assert info.load() is not None
        else:
            assert info.url.startswith("https://")
            assert info.sha256 is not None or info.archive_member is not None  # unpinned only where we check
            assert path_of(name) == cache / info.filename
    monkeypatch.delenv("LLMLAB_DATA_DIR")
    assert data_dir() == Path.home() / ".cache" / "llm-scratch-lab"


def test_unknown_names_and_wrong_kinds(tmp_path):
    with pytest.raises(LabError, match="no dataset called 'nope'"):
        load_classification("nope")
    with pytest.raises(LabError, match="not a corpus one"):
        load_corpus("builtin-spam")
    with pytest.raises(LabError, match="neither a corpus name"):
        load_corpus(str(tmp_path / "missing.txt"))
    own = tmp_path / "mine.txt"
    own.write_bytes(b"\xef\xbb\xbfmy own\r\ntext")
    assert load_corpus(own) == "my own\ntext"


@pytest.mark.parametrize("bad", [42, None, b"corpus.txt", 1.5, ["the-verdict"]])
def test_load_corpus_refuses_what_is_not_a_name_or_path(bad):
    with pytest.raises(LabError, match="needs a corpus name or the path of a text file"):
        load_corpus(bad)


def test_names_are_echoed_short(tmp_path):
    for call in (lambda: load_corpus("x" * 10**6), lambda: load_corpus("~no-such-user-llmlab/c.txt"),
                 lambda: load_classification("y" * 10**6), lambda: load_corpus("z" * 5000)):
        with pytest.raises(LabError) as info:
            call()
        assert len(str(info.value)) < 250, str(info.value)[:300]


def test_split_and_balance_validate_and_label_mapping_sorts():
    df = pd.DataFrame({"text": list("abcdef"), "label": ["x"] * 6})
    with pytest.raises(LabError, match="two different labels"):
        balance(df)
    with pytest.raises(LabError, match="fractions"):
        split(df, train_frac=0.9, val_frac=0.2)
    with pytest.raises(LabError, match="'text' and 'label'"):
        split(pd.DataFrame({"a": [1]}))
    assert label_mapping(["10", "2", "1"]) == {"1": 0, "2": 1, "10": 2}
    assert label_mapping(["spam", "ham"]) == {"ham": 0, "spam": 1}


# ------------------------------------------------------------------------------------------- text uploads
def test_text_upload_accepts_utf8_with_bom():
    assert parse_text_upload("\ufeffcafé\r\nline".encode(), "a.txt") == "café\nline"


@pytest.mark.parametrize("data, match", [
    (b"hello \xff world", r"not valid UTF-8 \(the first bad byte is at offset 6\).*save it as UTF-8"),
    (b"abc\x00def", "looks like a binary file"),
    (b"", "is empty"),
    (b" \n\t \n", "only blank space"),
    (b"%PDF-1.7 ...", "looks like a PDF"),
    ("hello".encode("utf-16"), "UTF-16"),
    (b"x" * 2000, r"is 2 KB, more than the 1,000 bytes limit"),
])
def test_text_upload_errors(data, match):
    with pytest.raises(LabError, match=match):
        parse_text_upload(data, "notes.txt", max_bytes=1000)


# ------------------------------------------------------------------------------------------ table uploads
def test_table_upload_guesses_columns_and_keeps_formulas_as_text():
    df, info = parse_table_upload((FIXTURES / "upload_messages.csv").read_bytes(), "upload_messages.csv")
    assert list(df.columns) == ["text", "label"]
    assert (info["text_col"], info["label_col"], info["guessed"]) == ("message", "category", ["text", "label"])
    assert info["dropped_empty"] == 1
    assert info["rows"] == len(df) == 6
    assert df["text"].tolist()[:3] == ["Dinner at 7, bring the salad", '=HYPERLINK("http://win.example")',
                                       "+44 7700 900123 call now to claim"]
    assert df["text"].tolist()[3:5] == ["-5 degrees tonight so wrap up warm", "@Sam see you at the gym"]
    assert info["label_counts"] == {"ham": 4, "spam": 2}
    assert label_mapping(df) == {"ham": 0, "spam": 1}


def test_table_upload_delimiters_and_explicit_columns():
    df, info = parse_table_upload(b"kind\tsms\nham\thi there\nspam\twin cash now\n", "m.tsv")
    assert info["delimiter"] == "\t" and df["text"].tolist() == ["hi there", "win cash now"]
    df, info = parse_table_upload(b"a;b\nfirst long words here;p\nsecond long words;n\n", "m.csv")
    assert info["delimiter"] == ";" and (info["text_col"], info["label_col"]) == ("a", "b")
    df, info = parse_table_upload(b"x,y\nlong text one,0\nlong text two,1\n", "m.csv", text_col="x", label_col="y")
    assert info["guessed"] == [] and df["label"].tolist() == ["0", "1"]


@pytest.mark.parametrize("data, kwargs, match", [
    (b"text,label\nhi,ham\n", {"text_col": "body"}, "no column 'body'"),
    (b"text,label\nhi,ham\n", {"text_col": "text", "label_col": "text"}, "both the text and the label"),
    (b"text\nhello\n", {}, "only one column"),
    (b"a,b\n1,2\n3,4\n", {}, "no text column"),
    (b"text,id,code\n" + b"".join(b"hi,%d,q%d\n" % (i, i) for i in range(25)), {}, "no label column"),
    (b"text,label\nhi,ham\nho,ham\n", {}, "has the label 'ham'"),
    (b"text,label\nhi,0.5\nho,1.5\n", {}, "decimal numbers"),
    (b"text,label\nhi,1.0\nho,0.0\n", {}, "decimal numbers"),
    (b"text,label\nhi,1\nho,spam\n", {}, "mixes numbers and words"),
    (b"text,label\nhi,ham\nho,\n", {}, "Line 3 .* has text but no label"),
    (b"text,label\nhi,ham\nho,NaN\n", {}, "has text but no label"),
    (b"text,label\nhi,ham,extra\n", {}, "Line 2 .* has 3 cell\\(s\\) but the header has 2"),
    (b"text,\nhi,ham\n", {}, "Column 2 .* has no name"),
    (b"text,text\nhi,ham\n", {}, "repeats a name"),
    (b"text,label\n", {}, "no data rows"),
    (b"text,label\n" + b"hi,ham\n" * 11, {"max_rows": 10}, "more than 10 rows"),
    (b"text,label\n" + b"x,y\n" * 30, {"max_bytes": 100}, "limit"),
    (b'text,label\n"unclosed,ham\n', {}, r"Line 2 .* has 1 cell\(s\)"),
])
def test_table_upload_errors(data, kwargs, match):
    with pytest.raises(LabError, match=match):
        parse_table_upload(data, "t.csv", **kwargs)


def test_table_upload_rejects_too_many_labels():
    rows = "".join(f"text number {i},L{i}\n" for i in range(25))
    with pytest.raises(LabError, match="25 different labels"):
        parse_table_upload(("text,label\n" + rows).encode(), "t.csv")


# ---------------------------------------------------------------------------------- instruction uploads
def test_instruction_upload_json_and_jsonl():
    recs = [{"instruction": "Say hi.", "input": "", "output": "Hi!"}, {"instruction": "Add.", "input": "1 and 2",
                                                                        "output": "3", "id": 7}]
    data, info = parse_instruction_upload(json.dumps(recs).encode(), "d.json")
    assert data == [{k: r[k] for k in ("instruction", "input", "output")} for r in recs]
    assert info == {"records": 2, "format": "json", "with_input": 1, "ignored_keys": ["id"]}
    data, info = parse_instruction_upload((FIXTURES / "upload_instructions.jsonl").read_bytes(), "d.jsonl")
    assert data[1] == {"instruction": "What is the capital of Peru?", "input": "", "output": "Lima"}
    assert info["format"] == "jsonl" and info["ignored_keys"] == ["note"]


@pytest.mark.parametrize("data, name, match", [
    (b'{"instruction": "x", "output": "y"}', "d.json", "holds a single object instead of a list"),
    (b'[{"instruction": "x", "output": "y"}, "oops"]', "d.json", "Record 1 .* is a string, not an object"),
    (b'[{"output": "y"}]', "d.json", "Record 0 .* has no 'instruction' field"),
    (b'[{"instruction": "x"}, {"instruction": "x", "output": "y"}]', "d.json", "Record 0 .* no 'output'"),
    (b'[{"instruction": "x", "output": 3}]', "d.json", "has a number in 'output'"),
    (b'[{"instruction": "x", "input": ["a"], "output": "y"}]', "d.json", "has a list in 'input'"),
    (b'[{"instruction": "x", "output": "  "}]', "d.json", "empty 'output'"),
    (b"[]", "d.json", "contains no records"),
    (b"[" * 100_000 + b"]" * 100_000, "d.json", "nested far too deeply"),
    (b'[{"instruction": "x",, "output": "y"}]', "d.json", r"not readable JSON \(.* line 1, column"),
    (b'{"instruction": "x", "output": "y"}\n{"instruction": \n', "d.jsonl", "Line 2 of d.jsonl is not readable JSON"),
    (b'{"instruction": "x", "output": "y"}\n[1]\n', "d.jsonl", "record on line 2 .* is a list, not an object"),
    (b'[{"instruction": ' + b"7" * 5000 + b', "output": "y"}]', "d.json", "more than 4,300 digits"),
    (b'{"instruction": "x", "output": "y"}\n{"step": ' + b"7" * 5000 + b"}\n", "d.jsonl",
     "Line 2 of d.jsonl is not readable JSON .*4,300 digits"),
    (b'{"a":' * 100_000 + b"1" + b"}" * 100_000, "d.jsonl", "Line 1 of d.jsonl .*nested far too deeply"),
    (b'[{"instruction": "x", "output": "y"}]' + b" " * 200, "d.json", "limit"),
])
def test_instruction_upload_errors(data, name, match):
    with pytest.raises(LabError, match=match):
        parse_instruction_upload(data, name, max_bytes=None if len(data) > 300 else 100)


def test_instruction_upload_record_cap():
    data = json.dumps([{"instruction": "x", "output": "y"}] * 3).encode()
    with pytest.raises(LabError, match="more than 2"):
        parse_instruction_upload(data, "d.json", max_records=2)
