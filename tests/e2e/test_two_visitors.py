"""Two strangers on one hosted demo, in two browser contexts: neither sees nor stops the other's job.

On each job page (Classification, Instructions, Pretraining) visitor A runs a short job; visitor B opens A's job
by its URL (``?cls_run=`` / ``?ins_run=`` / ``?pt_run=<id>``), the way a leaked or guessed id would be tried,
tries A's run as the active model (``?model=run:<id>``) and looks at the Pretraining page's runs. B must see no
results, no Stop, Resume or "Use this run" control and no id of A's; A keeps their own results across a reload of
their URL.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlparse

import pytest

from tests.e2e.conftest import app_server, wait_for_app


@pytest.fixture(scope="module")
def demo_server(tmp_path_factory):
    with app_server(tmp_path_factory.mktemp("two-visitors"), LLMLAB_DEMO="1") as url:
        yield url


def _context(browser):
    return browser.new_context(viewport={"width": 1400, "height": 1000})


def _open(page, url: str) -> None:
    page.goto(url)
    wait_for_app(page, timeout_s=120)


def test_a_visitor_cannot_see_or_stop_another_visitors_job(browser, demo_server):
    alice_ctx, bob_ctx = _context(browser), _context(browser)
    try:
        alice, bob = alice_ctx.new_page(), bob_ctx.new_page()
        _open(alice, demo_server + "/classify")
        box = alice.get_by_label("Max steps (0 = whole epochs)", exact=True)
        box.fill("3")
        box.press("Tab")
        wait_for_app(alice)
        alice.get_by_role("button", name="Start", exact=True).click()
        alice.get_by_text(re.compile("Test accuracy")).first.wait_for(timeout=120_000)
        alice.wait_for_url(re.compile(r"cls_run="), timeout=30_000)
        query = parse_qs(urlparse(alice.url).query)
        run_id, alice_token = query["cls_run"][0], query["v"][0]

        _open(bob, f"{demo_server}/classify?cls_run={run_id}")  # Bob tries Alice's id
        body = bob.locator('[data-testid="stMainBlockContainer"]').inner_text()
        assert "Test accuracy" not in body and run_id not in body
        assert bob.get_by_role("button", name="Stop training").count() == 0 or \
            bob.get_by_role("button", name="Stop training").is_disabled()
        assert parse_qs(urlparse(bob.url).query)["v"][0] != alice_token
        _open(bob, demo_server + "/pretrain")
        assert run_id not in bob.locator('[data-testid="stMainBlockContainer"]').inner_text()

        _open(alice, f"{demo_server}/classify?v={alice_token}&cls_run={run_id}")  # Alice reloads her link
        alice.get_by_text(re.compile("Test accuracy")).first.wait_for(timeout=60_000)
    finally:
        alice_ctx.close()
        bob_ctx.close()


def _main_text(page) -> str:
    return page.locator('[data-testid="stMainBlockContainer"]').inner_text()


def _fill(page, label: str, value: str) -> None:
    box = page.get_by_label(label, exact=True)
    box.fill(value)
    box.press("Tab")
    wait_for_app(page)


def _bob_finds_nothing(bob, server: str, run_id: str, url: str) -> None:
    """Bob, with the id but not the owner's token: the job page, the run as a model, the runs list."""
    _open(bob, url)
    assert run_id not in _main_text(bob)
    stop = bob.get_by_role("button", name="Stop training")
    assert stop.count() == 0 or stop.is_disabled()  # Bob's own, idle panel at most
    assert bob.get_by_role("button", name="Use this run as the active model").count() == 0
    for control in ("Resume", "Continue training", "Download the checkpoint", "Download the responses"):
        assert bob.get_by_role("button", name=re.compile(control)).count() == 0, control
    _open(bob, f"{server}/generate?model=run:{run_id}")
    sidebar = bob.locator('[data-testid="stSidebar"]').inner_text()
    assert "tiny preset" in sidebar and "no such trained run" in sidebar and run_id not in sidebar
    _open(bob, server + "/pretrain")
    assert run_id not in _main_text(bob)


def test_instructions_and_pretraining_runs_stay_their_owners(browser, demo_server):
    alice_ctx, bob_ctx = _context(browser), _context(browser)
    try:
        alice, bob = alice_ctx.new_page(), bob_ctx.new_page()
        _open(alice, demo_server + "/instruct")
        _fill(alice, "Max steps (0 = whole epochs)", "2")
        _fill(alice, "Test examples to answer", "1")
        _fill(alice, "Max new tokens per answer", "4")
        alice.get_by_role("button", name="Start", exact=True).click()
        alice.get_by_text(re.compile("Before and after fine-tuning")).first.wait_for(timeout=120_000)
        alice.wait_for_url(re.compile(r"ins_run="), timeout=30_000)
        query = parse_qs(urlparse(alice.url).query)
        ins_id, token = query["ins_run"][0], query["v"][0]
        _open(bob, f"{demo_server}/instruct?ins_run={ins_id}")
        assert "Before and after" not in _main_text(bob)
        _bob_finds_nothing(bob, demo_server, ins_id, f"{demo_server}/instruct?ins_run={ins_id}")

        _open(alice, f"{demo_server}/pretrain?v={token}")
        _fill(alice, "Steps", "3")
        alice.get_by_role("button", name="Start training").click()
        alice.get_by_text(re.compile(r"Step 3 of 3 · finished")).first.wait_for(timeout=120_000)
        alice.wait_for_url(re.compile(r"pt_run="), timeout=30_000)
        pt_id = parse_qs(urlparse(alice.url).query)["pt_run"][0]
        _bob_finds_nothing(bob, demo_server, pt_id, f"{demo_server}/pretrain?pt_run={pt_id}")

        _open(alice, f"{demo_server}/pretrain?v={token}&pt_run={pt_id}")  # Alice's reload keeps her run
        alice.get_by_role("button", name="Use this run as the active model").click()
        wait_for_app(alice)
        alice.wait_for_url(re.compile(r"model=run"), timeout=30_000)
        _open(alice, f"{demo_server}/generate?v={token}")  # a new tab with her link: the model is still hers
        assert pt_id in alice.locator('[data-testid="stSidebar"]').inner_text()
    finally:
        alice_ctx.close()
        bob_ctx.close()
