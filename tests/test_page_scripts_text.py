""""Download as script" on the Tokenizer and Sampling pages: the script prints the page's numbers."""

from __future__ import annotations

import pytest

from core.errors import LabError
from core.page_scripts import lit, page_script, parse_printed
from tests.script_check import assert_script_matches_page, open_page, run_script

TOKENIZER_FIGURES = ["Characters", "Tokens", "Characters per token", "Vocabulary size"]
SAMPLING_FIGURES = ["Tokens", "Windows", "Overlap (tokens)", "Gap (tokens)", "Unused at end (tokens)"]


def test_tokenizer_default_gpt2(tmp_path):
    at = open_page("views/tokenizer.py")
    printed = assert_script_matches_page(at, "tokenizer", tmp_path, TOKENIZER_FIGURES)
    assert printed["Round trip"] == "exact"


@pytest.mark.parametrize("name", ["simple-v2", "char"])
def test_tokenizer_text_built_vocabularies(name, tmp_path):
    at = open_page("views/tokenizer.py")
    at.selectbox(key="tok_name").set_value(name).run()
    if name == "simple-v2":
        at.radio(key="tok_vocab_source").set_value("the built-in corpus").run()
    assert_script_matches_page(at, "tokenizer", tmp_path, TOKENIZER_FIGURES)


def test_tokenizer_trained_bpe(tmp_path):
    at = open_page("views/tokenizer.py")
    at.selectbox(key="tok_name").set_value("bpe").run()
    at.slider(key="tok_bpe_size").set_value(300).run()
    at.button(key="tok_bpe_train").click().run()
    at.radio(key="tok_vocab_source").set_value("the built-in corpus").run()  # after training: does not count
    printed = assert_script_matches_page(at, "tokenizer", tmp_path, TOKENIZER_FIGURES)
    assert printed["Vocabulary size"] == "300"


def test_sampling_builtin_corpus_and_own_text(tmp_path):
    at = open_page("views/sampling.py")
    printed = assert_script_matches_page(at, "sampling", tmp_path, SAMPLING_FIGURES)
    assert printed["Batch shape"] == "(8, 4)"
    at.radio(key="smp_source").set_value("Your own text (type or upload)").run()
    at.slider(key="smp_len").set_value(6).run()
    at.slider(key="smp_stride").set_value(9).run()
    printed = assert_script_matches_page(at, "sampling", tmp_path, SAMPLING_FIGURES)
    assert printed["Gap (tokens)"] == "2"


def test_settings_become_literals_never_code():
    hostile = 'x"""; import os; os.system("echo pwned"); """'
    script = page_script("tokenizer", {"name": "gpt2", "text": hostile, "allow_endoftext": False})
    namespace: dict = {}
    exec(compile(script.split("from core.tokenizers", 1)[0], "s", "exec"), namespace)  # the settings part only
    assert namespace["TEXT"] == hostile
    with pytest.raises(LabError, match="cannot be written"):
        lit(object())
    with pytest.raises(LabError, match="no script for a page"):
        page_script("nope", {})
    with pytest.raises(LabError, match="needs the setting 'stride'"):
        page_script("sampling", {"source": "text", "text": "a b", "max_length": 2, "batch_size": 1})
    assert parse_printed("Tokens: 12\nnoise\nWindows: 3\n") == {"Tokens": "12", "Windows": "3"}


def test_a_script_run_outside_the_project_says_what_to_do(tmp_path):
    import subprocess
    import sys

    path = tmp_path / "s.py"
    path.write_text(page_script("sampling", {"source": "text", "text": "a b c d", "max_length": 1, "stride": 1,
                                             "batch_size": 1}))
    env = {"PATH": "/usr/bin:/bin", "PYTHONNOUSERSITE": "1"}
    done = subprocess.run([sys.executable, "-S", str(path)], cwd=tmp_path, capture_output=True, text=True, env=env)
    assert done.returncode == 1 and "needs LLM Scratch Lab's core package" in done.stderr, done.stderr
    assert run_script(path.read_text(), tmp_path)["Windows"] == "3"
