"""The Pretraining dashboard updates by itself in a real browser: the st.fragment(run_every=1 s) polls the job.

Opens the app at "/", clicks to Pretraining, starts a small tiny-preset run and reads the progress text for up
to ~30 s without reloading: it must change at least twice. Then Stop, and the page must say the run stopped.
"""

from __future__ import annotations

import time

from tests.e2e.conftest import screenshot, wait_for_app


def _set_number(page, label: str, value: int) -> None:
    box = page.get_by_label(label, exact=True)
    box.fill(str(value))
    box.press("Tab")
    wait_for_app(page)


def test_dashboard_updates_live_and_stops(server, page):
    page.goto(server + "/")
    wait_for_app(page)
    page.get_by_role("link", name="Pretraining").first.click()
    wait_for_app(page)
    assert page.locator("h1").first.inner_text().strip() == "Pretraining"

    _set_number(page, "Steps", 300)
    _set_number(page, "Batch size", 1)
    page.get_by_role("button", name="Start training").click()

    progress = page.locator('[data-testid="stProgress"]').first
    progress.wait_for(timeout=60_000)
    seen: list[str] = []
    deadline = time.time() + 30
    while time.time() < deadline:
        text = progress.inner_text().strip()
        if not seen or text != seen[-1]:
            seen.append(text)
        if len(seen) >= 3 and time.time() > deadline - 20:  # watched for at least ~10 s and saw 2+ changes
            break
        time.sleep(1.0)
    assert len(seen) >= 3, f"the progress text changed fewer than twice without a reload: {seen}"
    assert all(t.startswith("Step ") for t in seen), seen
    page.get_by_text("Samples during training").first.scroll_into_view_if_needed()
    screenshot(page, "pretrain_live")

    page.get_by_role("button", name="Stop training", exact=True).click()
    page.get_by_text("Stopped at step").first.wait_for(timeout=60_000)
    assert page.locator('[data-testid="stException"]').count() == 0
    assert page.locator('[data-testid="stAlertContentError"]').count() == 0
