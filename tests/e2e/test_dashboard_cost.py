"""A short variant of bench/dashboard_cpu.py: what an open, polling dashboard costs the server that trains.

A tiny run trains in the app's server while chromium keeps the Pretraining page open for 12 s, then for 12 s on
the Start page. The server's own work besides training (page and fragment reruns) must stay small while the
dashboard polls: with Streamlit's default full garbage collection after every script run it was ~0.10 of a core
(each poll held the GIL ~0.1 s and stalled the training thread), with ``runner.postScriptGC = false`` ~0.01.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from bench.dashboard_cpu import measure


def test_an_open_dashboard_costs_the_server_little_besides_training():
    # Its own thread: the session's sync Playwright (the other browser tests' fixtures) holds this thread's loop.
    with ThreadPoolExecutor(1) as pool:
        got = pool.submit(measure, 12.0, preset="tiny").result(timeout=300)
    other = got["open"]["server: everything else"]
    assert other < 0.03, f"the server's own work while the dashboard polls: {other:.3f} cores"
    assert got["open"]["chromium"] > got["away"]["chromium"], got  # the open tab really polled
    assert got["away"]["server: training threads"] > 0.5, got  # and the run trained throughout
