"""The decision app served by Voila, in headless Chromium, with no network beyond loopback."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

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


def test_answers_change_the_recommendation_and_a_report_downloads(offline_page, voila_app, tmp_path) -> None:
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

    # ...and it must read replies too: now some mail needs the API, so both paths.
    direction = CRITERIA.questions["direction"]
    page.locator(".ek-q-direction select").select_option(value=direction.option("read_replies").label)
    both = score({**wordpress.answers, "direction": "read_replies"})
    assert both.choice != expected.choice
    expect(result).to_have_attribute("data-choice", both.choice, timeout=15_000)
    expect(page.locator(".ek-reasons")).to_contain_text("SMTP cannot read at all")
    expect(page.locator(".ek-preset select")).to_have_value("Custom answers")

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
    assert (voila_app.reports / download.suggested_filename).read_text(encoding="utf-8") == text

    # The HTML page downloads too, and loads nothing from anywhere.
    page.get_by_role("button", name="Export HTML page").click()
    with page.expect_download() as info:
        page.locator(".ek-downloads a.ek-download-html").click()
    html = Path(info.value.path()).read_text(encoding="utf-8")
    assert f'Chosen option: "{both.title}", because ' in html
    assert not re.search(r"https?://", html)


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
