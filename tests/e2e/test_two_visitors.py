"""Two strangers on one hosted demo, in two browser contexts: neither sees nor stops the other's job.

Visitor A fine-tunes a classifier; visitor B opens A's job by its URL (``?cls_run=<id>``), the way a leaked or
guessed id would be tried, and then looks at the Pretraining page's runs. B must see no results, no Stop button
and no id of A's; A, meanwhile, keeps their own results across a reload of their URL.
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
