"""Mailpit's extras a browser or test tool relies on — CORS, the preflight, 405s, views, thumbnails,
link-check, html-check, release, the spec — on both backends (the `mailbox` fixture), plus what only
the sandbox can be asked (no request ever leaves loopback; the spec file missing).
"""

from __future__ import annotations

import base64
import io
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import httpx
import pytest
from PIL import Image

from emailkit.sandbox import Sandbox


def _png(size: tuple[int, int], colour: tuple[int, int, int] = (200, 30, 60)) -> str:
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, format="PNG")
    return base64.b64encode(out.getvalue()).decode()


def send(api: httpx.Client, **payload: object) -> str:
    body = {"From": {"Email": "ann@example.com"}, "To": [{"Email": "bob@example.com"}], "Subject": "extras"}
    reply = api.post("/api/v1/send", json={**body, **payload})
    assert reply.status_code == 200, reply.text
    return str(reply.json()["ID"])


def test_cors_same_origin_and_no_origin_pass_another_origin_is_refused(api: httpx.Client) -> None:
    plain = api.get("/api/v1/messages")
    assert plain.status_code == 200 and plain.headers["access-control-allow-origin"] == ""
    own = str(api.base_url).rstrip("/")
    same = api.get("/api/v1/messages", headers={"Origin": own})
    assert (same.status_code, same.headers["access-control-allow-origin"]) == (200, own)
    assert same.headers["access-control-allow-methods"] == "GET, POST, DELETE, PUT, OPTIONS"
    other = api.get("/api/v1/messages", headers={"Origin": "http://evil.example"})
    assert (other.status_code, other.text) == (403, "Blocked due to CORS violation\n")
    assert api.get("/livez", headers={"Origin": "http://evil.example"}).status_code == 200  # not an API path


def test_preflight_and_405_allow_every_method(api: httpx.Client) -> None:
    preflight = api.options("/api/v1/messages")
    assert (preflight.status_code, preflight.text, preflight.headers["content-type"]) == (200, "", "text/plain")
    wrong = api.patch("/api/v1/messages")
    assert (wrong.status_code, wrong.headers["allow"]) == (405, "DELETE, GET, HEAD, OPTIONS, PUT")
    assert api.request("OPTIONS", "/livez").headers["allow"] == "GET, HEAD"


def test_views_link_inline_images_and_give_the_text(api: httpx.Client) -> None:
    message_id = send(api, Text="plain words", HTML='<p>hi <img src="cid:logo"></p>',
                      Attachments=[{"Content": _png((10, 10)), "Filename": "logo.png", "ContentID": "logo"}])
    inline = api.get(f"/api/v1/message/{message_id}").json()["Inline"][0]
    page = api.get(f"/view/{message_id}.html")
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert f'src="/api/v1/message/{message_id}/part/{inline["PartID"]}"' in page.text
    assert api.get(f"/view/{message_id}.txt").text == "plain words"
    assert (api.get("/view/nope.txt").status_code, api.get("/view/nope.txt").text) == (404, "Message not found")


@pytest.mark.parametrize(("size", "corner"), [((400, 300), (200, 30, 60)), ((20, 20), (255, 255, 255))])
def test_thumbnails_are_180_by_120_jpegs(api: httpx.Client, size: tuple[int, int], corner: tuple) -> None:
    message_id = send(api, Text="x", Attachments=[{"Content": _png(size), "Filename": "pic.png"}])
    part = api.get(f"/api/v1/message/{message_id}").json()["Attachments"][0]["PartID"]
    thumb = api.get(f"/api/v1/message/{message_id}/part/{part}/thumb")
    assert thumb.headers["content-disposition"] == 'filename="pic.jpg"'
    with Image.open(io.BytesIO(thumb.content)) as img:
        assert (img.format, img.size) == ("JPEG", (180, 120))
        assert all(abs(a - b) < 40 for a, b in zip(img.convert("RGB").getpixel((0, 0)), corner))  # fill or pad


def test_html_check_release_and_link_check_answers(api: httpx.Client) -> None:
    text_only = send(api, Text="no html here, see http://127.0.0.1:9/x")
    check = api.get(f"/api/v1/message/{text_only}/html-check")
    assert (check.status_code, check.text) == (400, "message does not contain HTML")
    links = api.get(f"/api/v1/message/{text_only}/link-check").json()
    assert links == {"Errors": 1, "Links": [{"URL": "http://127.0.0.1:9/x", "StatusCode": 451,
                                             "Status": "Blocked private/reserved address"}]}
    release = api.post(f"/api/v1/message/{text_only}/release", json={"To": ["bad"]})
    assert (release.status_code, release.text) == (400, "Invalid email address: bad")
    relay = api.post(f"/api/v1/message/{text_only}/release", json={"To": ["ok@example.com"]})
    assert relay.status_code == 400 and relay.text.startswith("SMTP error: ")  # no relay configured


# --------------------------------------------------------------------------- the sandbox alone


class _Recorder(BaseHTTPRequestHandler):
    seen: list[str] = []

    def do_HEAD(self) -> None:  # noqa: N802 - http.server's name
        self.seen.append(self.path)
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture()
def web_server() -> Iterator[str]:
    server = HTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_sandbox_link_check_never_sends_a_request(sandbox_factory: Callable[..., Sandbox], web_server: str) -> None:
    box = sandbox_factory()
    with httpx.Client(base_url=box.api_url) as api:
        message_id = send(api, HTML=f'<a href="{web_server}/page">local</a> <a href="https://example.com/">far</a>')
        result = api.get(f"/api/v1/message/{message_id}/link-check").json()
    assert [(link["URL"], link["StatusCode"]) for link in result["Links"]] == [
        (f"{web_server}/page", 451), ("https://example.com/", 0)]
    assert "not checked" in result["Links"][1]["Status"] and result["Errors"] == 2
    assert _Recorder.seen == []  # not even the loopback server heard a HEAD


def test_sandbox_swagger_is_served_only_when_present(sandbox_factory: Callable[..., Sandbox], tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    box = sandbox_factory()
    monkeypatch.setenv("EMAILKIT_MAILPIT_SWAGGER", str(tmp_path / "absent.json"))
    missing = httpx.get(box.api_url + "/api/v1/swagger.json")
    assert missing.status_code == 404 and "make mailpit" in missing.text
    spec = tmp_path / "swagger.json"
    spec.write_text('{"swagger": "2.0"}')
    monkeypatch.setenv("EMAILKIT_MAILPIT_SWAGGER", str(spec))
    found = httpx.get(box.api_url + "/api/v1/swagger.json")
    assert (found.status_code, found.json(), found.headers["content-type"]) == (200, {"swagger": "2.0"},
                                                                                 "application/json")


def test_sandbox_html_check_says_why_it_cannot(sandbox_factory: Callable[..., Sandbox]) -> None:
    box = sandbox_factory()
    with httpx.Client(base_url=box.api_url) as api:
        message_id = send(api, HTML="<p>hi</p>")
        check = api.get(f"/api/v1/message/{message_id}/html-check")
    assert check.status_code == 501 and "caniemail" in check.text and "make mailpit" in check.text
