"""The hostile visitors of the load test (``bench/load_test.py --hostile K``).

A hostile session walks the pages like everyone else and, after each page, tries one probe in turn:

- *another visitor's run*: the id of the trainer's run (read from the server's runs folder, as a leaked or
  guessed id would be) in every URL parameter that names a run (``?pt_run=``, ``?cls_run=``, ``?ins_run=``,
  ``?model=run:…``), also with a forged visitor token;
- *over-cap and malformed values*: a model above the demo's caps, a 200-digit seed, a path as run id, GPT-2
  weights by path, a 10 kB visitor token, a Steps value of 10⁹ typed into the widget, a 300,000-character paste
  into the tokenizer.

A probe *leaks* when the page shows any id of the trainer's runs, or offers a control over them (an enabled Stop
training, Resume, "Use this run"), or makes a run of theirs the hostile session's active model. It *fails* on an
exception, an error box or a lost connection (one-sentence warnings are the expected answer). The Steps probe
also fails when the widget keeps a value above the demo's cap.
"""

from __future__ import annotations

import re
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

# (name, page path, URL query after the page; "{id}" = a trainer's run id, "{forged}" = a random visitor token)
URL_PROBES: list[tuple[str, str, str]] = [
    ("watch their run", "views/pretrain.py", "pt_run={id}"),
    ("their run, forged token", "views/pretrain.py", "v={forged}&pt_run={id}"),
    ("their run as the model", "views/generate.py", "model=run:{id}"),
    ("their run on Classification", "views/classify.py", "cls_run={id}"),
    ("their run on Instructions", "views/instruct.py", "ins_run={id}"),
    ("a path as run id", "views/pretrain.py", "pt_run=../../etc/passwd"),
    ("an over-cap model", "views/generate.py", "model=preset:gpt2-xl:1"),
    ("a 200-digit seed", "views/generate.py", "model=preset:tiny:" + "9" * 200),
    ("GPT-2 weights by path", "views/generate.py", "model=hf:/etc/passwd"),
    ("a 10 kB visitor token", "views/pretrain.py", "v=" + "A" * 10_000),
]
FORM_PROBES = ["over-cap Steps", "a 300,000-character paste"]
DEMO_MAX_STEPS = 2000  # core.limits.DEMO's max_steps
STEPS_RE = re.compile(r"([\d,]+) steps ≈")  # the pre-flight panel's "2,000 steps ≈ 12.3 epochs" line

# The page's text (main block and sidebar) and the controls over a run it offers, in one round trip.
JS_SEEN = """() => {
  const text = (sel) => Array.from(document.querySelectorAll(sel)).map(e => e.innerText).join('\\n');
  const buttons = Array.from(document.querySelectorAll('button')).filter(b => !b.disabled)
      .map(b => b.innerText.trim());
  return {text: text('[data-testid="stMainBlockContainer"]') + '\\n' + text('[data-testid="stSidebar"]'),
          buttons: buttons};
}"""
CONTROLS = ("Stop training", "Resume", "Continue training", "Use this run as the active model")


@dataclass
class Probe:
    n: int
    session: int
    name: str
    url: str
    seconds: float | None = None
    leaks: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    note: str = ""


def probe_names() -> list[str]:
    return [p[0] for p in URL_PROBES] + FORM_PROBES


async def _seen(page: Any) -> dict[str, Any]:
    from playwright.async_api import Error as PlaywrightError

    try:
        return await page.evaluate(JS_SEEN)
    except PlaywrightError:
        return {"text": "", "buttons": []}


def leaks_in(seen: dict[str, Any], run_ids: list[str]) -> list[str]:
    """What of the trainer's runs this page shows or offers to control (empty: nothing)."""
    out = [f"shows the id {rid}" for rid in run_ids if rid and rid in seen["text"]]
    out += [f"offers {b!r}" for b in seen["buttons"] if any(b.startswith(c) for c in CONTROLS)]
    return out


async def run_probe(page: Any, k: int, server: str, lt: Any, ts: Any, opts: Any, n: int, sid: int) -> Probe:
    """The ``k``-th probe (cycling) for this hostile session; ``lt`` is the load-test module (page helpers)."""
    names = probe_names()
    name = names[k % len(names)]
    run_ids = list(ts.run_ids)
    if name in FORM_PROBES:
        return await _form_probe(page, name, server, lt, ts, opts, n, sid)
    _, path, query = next(p for p in URL_PROBES if p[0] == name)
    target = run_ids[-1] if run_ids else "no-run-yet"
    url = lt.page_url(server, _info(lt, path)) + "?" + query.format(id=target, forged=secrets.token_urlsafe(18))
    probe = Probe(n, sid, name, url[:200])
    t0 = time.perf_counter()
    await page.goto(url, timeout=opts.visit_timeout * 1000)
    seconds, state = await lt.wait_rendered(page, _info(lt, path), t0, opts.visit_timeout, opts.quiet)
    probe.failures, _ = lt.problems(state)
    probe.seconds = round(seconds, 3)
    probe.leaks = leaks_in(await _seen(page), run_ids)
    return probe


def _info(lt: Any, path: str) -> Any:
    return next(p for p in lt.PAGES if p.path == path)


async def _form_probe(page: Any, name: str, server: str, lt: Any, ts: Any, opts: Any, n: int, sid: int) -> Probe:
    path = "views/pretrain.py" if name == "over-cap Steps" else "views/tokenizer.py"
    info = _info(lt, path)
    probe = Probe(n, sid, name, lt.page_url(server, info))
    t0 = time.perf_counter()
    await page.goto(probe.url, timeout=opts.visit_timeout * 1000)
    await lt.wait_rendered(page, info, t0, opts.visit_timeout, opts.quiet)
    if name == "over-cap Steps":
        box = page.get_by_label("Steps", exact=True)
        await box.fill("1000000000")
        await box.press("Tab")  # the browser refuses a value above the widget's max and keeps the last one
    else:
        area = page.locator("textarea").first
        await area.fill("All work and no play. " * 13_044)  # 300,012 characters
        await area.press("Control+Enter")
    t1 = time.perf_counter()
    seconds, state = await lt.wait_rendered(page, info, t1, opts.visit_timeout, opts.quiet)
    if name == "over-cap Steps":  # what the server took: the pre-flight line names the planned steps
        text = (await _seen(page))["text"]
        probe.note = "pre-flight plans " + (m.group(0) if (m := STEPS_RE.search(text)) else "?")
        if m and int(m.group(1).replace(",", "")) > DEMO_MAX_STEPS:
            probe.failures.append(f"the server planned {m.group(0)}, above the demo's cap of {DEMO_MAX_STEPS}")
    fails, _ = lt.problems(state)
    probe.failures += fails
    probe.seconds = round(seconds, 3)
    probe.leaks = leaks_in(await _seen(page), list(ts.run_ids))
    return probe


def summarize_probes(probes: list[Probe]) -> dict[str, Any]:
    """Counts for the report: probes run, cross-visitor leaks (must be 0), failures, per-probe outcome."""
    by_name: dict[str, dict[str, int]] = {}
    for p in probes:
        row = by_name.setdefault(p.name, {"runs": 0, "leaks": 0, "failures": 0})
        row["runs"] += 1
        row["leaks"] += bool(p.leaks)
        row["failures"] += bool(p.failures)
    return {
        "hostile_probes": len(probes),
        "cross_visitor_access": sum(1 for p in probes if p.leaks),
        "hostile_failures": sum(1 for p in probes if p.failures),
        "hostile_by_probe": by_name,
        "hostile_details": [vars(p) for p in probes if p.leaks or p.failures][:30],
    }
