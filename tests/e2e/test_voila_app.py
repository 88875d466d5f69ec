"""The app-only page (`make app`) in headless Chromium: only the app, nothing exported on load, no
request beyond 127.0.0.1, answers, presets, exports and downloads, and closed tabs' kernels culled."""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

import psutil
import pytest
from playwright.sync_api import expect

from emailkit.decide import load_criteria, score

pytestmark = pytest.mark.e2e
CRITERIA = load_criteria()
RENDER_TIMEOUT = 90_000  # the first page load starts a kernel and runs the notebook


def test_chromium_is_installed() -> None:
    # Fails (never skips) without Chromium, saying how to install it.
    if not (shutil.which("chromium") or shutil.which("chromium-browser")):
        pytest.fail("Chromium is not installed: run `apt-get install -y chromium` (Debian/Ubuntu; or `make chromium`)")


def shown_choice(page) -> str:
    return page.locator(".ek-result [data-choice]").get_attribute("data-choice")


def _kernels(pid: int) -> list[psutil.Process]:
    """The ipykernel processes under `make app` (its voila's children)."""
    try:
        children = psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    found = []
    for child in children:
        try:
            if "ipykernel_launcher" in " ".join(child.cmdline()):
                found.append(child)
        except psutil.NoSuchProcess:
            continue
    return found


def test_the_page_is_the_app_and_nothing_else(offline_page, offline, voila_app) -> None:
    page = offline_page
    page.goto(voila_app.url)
    expect(page.locator(".ek-result [data-choice]")).to_be_visible(timeout=RENDER_TIMEOUT)
    page.wait_for_load_state("networkidle")
    # Every visible word on the page belongs to the app: no notebook prose, tables or code around it.
    outside = page.evaluate("""() => {
        const app = document.querySelector('.ek-app');
        const cells = document.querySelector('#rendered_cells') || document.body;
        const walker = document.createTreeWalker(cells, NodeFilter.SHOW_TEXT);
        const stray = [];
        for (let n = walker.nextNode(); n; n = walker.nextNode()) {
            const text = n.textContent.trim();
            const el = n.parentElement;
            if (!text || app.contains(n) || el.closest('style, script')) continue;
            if (el.offsetParent === null && getComputedStyle(el).position !== 'fixed') continue;  // hidden
            stray.push(text);
        }
        return stray;
    }""")
    assert outside == [], f"text outside the app: {outside}"
    assert page.locator(".ek-app").count() == 1
    assert page.locator(".jp-InputArea:visible, .jp-MarkdownOutput:visible, table.dataframe").count() == 0
    # Nothing was exported just by opening the page.
    assert not voila_app.reports.exists() or not any(voila_app.reports.iterdir())
    # No request left the machine (fonts, icons, scripts: all served by Voila or bundled).
    assert offline.leaked == []


def test_answers_a_preset_export_and_download(offline_page, offline, voila_app) -> None:
    page = offline_page
    page.goto(voila_app.url)
    result = page.locator(".ek-result [data-choice]")
    expect(result).to_be_visible(timeout=RENDER_TIMEOUT)
    assert shown_choice(page) == score({}).choice

    # A preset from the articles: WordPress sends over SMTP.
    wordpress = CRITERIA.presets["wordpress"]
    page.locator(".ek-preset select").select_option(value=wordpress.label)
    expected = score(wordpress.answers)
    expect(result).to_have_attribute("data-choice", expected.choice, timeout=15_000)
    expect(page.locator(".ek-chart .ek-score-smtp")).to_have_text(str(expected.smtp_score))
    expect(page.locator(".ek-chart")).not_to_contain_text("API minus SMTP")

    # ...and it must read replies too: now some mail needs the API, so both paths.
    direction = CRITERIA.questions["direction"]
    page.locator(".ek-q-direction select").select_option(value=direction.option("read_replies").label)
    both = score({**wordpress.answers, "direction": "read_replies"})
    assert both.choice != expected.choice
    expect(result).to_have_attribute("data-choice", both.choice, timeout=15_000)
    expect(page.locator(".ek-reasons")).to_contain_text("SMTP cannot read at all")
    expect(page.locator(".ek-preset select")).to_have_value("Custom answers")
    expect(page.locator(".ek-architecture")).not_to_contain_text("Both paths →")

    # Export the decision record and download it.
    page.get_by_role("button", name="Export Markdown (ADR)").click()
    link = page.locator(".ek-downloads a.ek-download-md")
    expect(link).to_be_visible(timeout=15_000)
    with page.expect_download() as info:
        link.click()
    download = info.value
    text = Path(download.path()).read_text(encoding="utf-8")
    assert download.suggested_filename == "email-decision-our-service.md"
    assert f'Chosen option: "{both.title}", because ' in text
    for heading in ("## Context and Problem Statement", "## Decision Drivers", "## Considered Options",
                    "## Decision Outcome", "### Consequences", "## Pros and Cons of the Options",
                    "## More Information"):
        assert heading in text
    assert "No measured evidence has been recorded yet" in text  # the server's evidence folder is empty
    saved = voila_app.reports / download.suggested_filename
    assert saved.read_text(encoding="utf-8") == text

    # The HTML page downloads too, and loads nothing from anywhere; the status lists both files in full.
    page.get_by_role("button", name="Export HTML page").click()
    with page.expect_download() as info:
        page.locator(".ek-downloads a.ek-download-html").click()
    html = Path(info.value.path()).read_text(encoding="utf-8")
    assert f'Chosen option: "{both.title}", because ' in html
    assert not re.search(r"https?://", html)
    status = page.locator(".ek-status")
    expect(status).to_contain_text(str(saved.resolve()))
    expect(status).to_contain_text(str(saved.with_suffix(".html").resolve()))
    assert offline.leaked == []


def test_the_result_stays_in_view_while_the_last_questions_are_answered(offline_page, voila_app) -> None:
    page = offline_page
    page.set_viewport_size({"width": 1280, "height": 800})
    page.goto(voila_app.url)
    expect(page.locator(".ek-result [data-choice]")).to_be_visible(timeout=RENDER_TIMEOUT)
    last = list(CRITERIA.questions)[-1]
    question = page.locator(f".ek-q-{last} select")
    question.scroll_into_view_if_needed()
    other = next(o for o in CRITERIA.questions[last].options if o.value != CRITERIA.questions[last].default)
    question.select_option(value=other.label)
    expect(page.locator(".ek-result [data-choice]")).to_have_attribute(
        "data-choice", score({last: other.value}).choice, timeout=15_000)
    top = page.locator(".ek-preset").bounding_box()
    assert top is not None and top["y"] < 0, "the page did not scroll: the test proves nothing"
    box = page.locator(".ek-result").bounding_box()
    assert box is not None and 0 <= box["y"] < 800, f"the result scrolled out of view: {box}"


def test_the_page_explains_each_reason_and_what_would_flip_it(offline_page, voila_app) -> None:
    page = offline_page
    page.goto(voila_app.url)
    expect(page.locator(".ek-result [data-choice]")).to_be_visible(timeout=RENDER_TIMEOUT)
    page.locator(".ek-q-hosting select").select_option(
        value=CRITERIA.questions["hosting"].option("serverless").label)
    rec = score({"hosting": "serverless"})
    expect(page.locator(".ek-result")).to_contain_text("serverless", timeout=15_000)
    expect(page.locator(".ek-reasons tr.ek-reason")).to_have_count(len(rec.reasons))
    expect(page.locator(".ek-flips tr.ek-flip")).to_have_count(len(rec.sensitivity))
    expect(page.locator(".ek-architecture")).to_contain_text("REST email API")


def test_a_closed_tabs_kernel_is_culled(browser, voila_app) -> None:
    context = browser.new_context()
    page = context.new_page()
    before = {k.pid for k in _kernels(voila_app.pid)}
    page.goto(voila_app.url)
    expect(page.locator(".ek-result [data-choice]")).to_be_visible(timeout=RENDER_TIMEOUT)
    mine = {k.pid for k in _kernels(voila_app.pid)} - before
    assert mine, "opening the page started no kernel"
    context.close()  # the reader closes the tab
    deadline = time.monotonic() + voila_app.cull_idle + 30
    while time.monotonic() < deadline:
        if not mine & {k.pid for k in _kernels(voila_app.pid)}:
            return
        time.sleep(0.5)
    pytest.fail(f"the closed tab's kernel {sorted(mine)} was still running {voila_app.cull_idle + 30} s later")
