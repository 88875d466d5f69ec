"""Mailpit's per-message extras on the sandbox: views, thumbnails, link-check, html-check, release, swagger.

Each answers as Mailpit v1.33.1 does in the lab's configuration (no relay, no demo mode), measured by
``tests/differential``; where the sandbox cannot do what Mailpit does, the answer says so:

* ``GET /view/{ID}.html`` / ``.txt`` — the HTML (``cid:`` images linked to their part URLs, meta
  refreshes removed) or the text body (`apiv1/testing.go`);
* ``GET /api/v1/message/{ID}/part/{PartID}/thumb`` — a 180×120 JPEG (Pillow): images cropped to fill,
  smaller ones padded on white, anything else a blank white image (`apiv1/thumbnails.go`);
* ``GET /api/v1/message/{ID}/link-check`` — every link of the message, as Mailpit lists them; links to
  loopback or private addresses get Mailpit's ``451 Blocked private/reserved address`` (Mailpit never
  requests them either); every other link is **not requested**: the sandbox never reaches beyond
  loopback, so it answers ``StatusCode 0`` and says so in ``Status``;
* ``GET /api/v1/message/{ID}/html-check`` — Mailpit's own error answers (no HTML, unknown ID); a
  message *with* HTML gets 501: the check needs Mailpit's caniemail database and CSS engine;
* ``POST /api/v1/message/{ID}/release`` — validates as Mailpit does, then fails as Mailpit without a
  relay does (``400 SMTP error: error connecting to :0: ...``, its words, measured);
* ``GET /api/v1/swagger.json`` — Mailpit's spec for the pinned version, when ``make mailpit`` left it
  in ``.tools/mailpit/swagger.json``; otherwise 404 saying so (the spec is not part of the project).
"""

from __future__ import annotations

import html.parser
import io
import ipaddress
import json
import os
import re
from collections.abc import Callable
from email.utils import getaddresses
from pathlib import Path
from urllib.parse import quote, urlsplit

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from emailkit.sandbox.store import Store
from emailkit.sandbox.summary import find_part, parse_message

__all__ = ["SWAGGER_PATH", "extra_routes", "link_targets", "thumbnail"]

#: Where `make mailpit` leaves the pinned Mailpit's OpenAPI spec (git-ignored, never committed).
SWAGGER_PATH = Path(__file__).resolve().parents[2] / ".tools" / "mailpit" / "swagger.json"
THUMB_SIZE = (180, 120)

Resolver = Callable[[Request], "str | Response"]


def _text(message: str, status: int = 200, ctype: str = "text/plain; charset=utf-8") -> Response:
    return Response(message.encode("utf-8"), status_code=status, headers={"Content-Type": ctype})


def _not_found() -> Response:
    return _text("404 page not found", 404, "text/plain")


def _bad(message: str) -> Response:
    return _text(message, 400, "text/plain")


def _go_json(value: object) -> bytes:
    from emailkit.sandbox.api import go_json  # the one JSON encoder (imported late: api imports us)

    return go_json(value)


# --------------------------------------------------------------------------- thumbnails


def thumbnail(data: bytes | None, content_type: str) -> bytes:
    """A 180×120 JPEG: the image cropped to fill (padded on white when smaller), else blank white."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    width, height = THUMB_SIZE
    canvas = Image.new("RGB", THUMB_SIZE, (255, 255, 255))
    if data and content_type.startswith("image/"):
        try:
            with Image.open(io.BytesIO(data)) as img:
                img = ImageOps.exif_transpose(img).convert("RGB")
                if img.width >= width and img.height >= height:
                    canvas = ImageOps.fit(img, THUMB_SIZE, Image.Resampling.LANCZOS)
                else:
                    img.thumbnail(THUMB_SIZE)
                    canvas.paste(img, ((width - img.width) // 2, (height - img.height) // 2))
        except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
            pass
    out = io.BytesIO()
    canvas.save(out, format="JPEG", quality=80)
    return out.getvalue()


def _jpeg_name(name: str) -> str:
    stem, dot, _ext = name.rpartition(".")
    stem = stem if dot else name
    return f"{stem}.jpg" if stem else "thumb.jpg"


# --------------------------------------------------------------------------- links


class _Links(html.parser.HTMLParser):
    """``a[href]``, ``link[rel=stylesheet][href]`` and ``img[src]``, in that order (Mailpit's selectors)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: dict[str, list[str]] = {"a": [], "link": [], "img": []}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if tag == "a" and "href" in values:
            self.found["a"].append(values["href"])
        elif tag == "link" and values.get("rel", "").lower() == "stylesheet" and "href" in values:
            self.found["link"].append(values["href"])
        elif tag == "img" and "src" in values:
            self.found["img"].append(values["src"])


_LINK = re.compile(r"\b(http|https)://([\-\w@:%_+'!.~#?,&/=;]+)", re.I | re.M)
_TEXT_LINK = re.compile(r"(\A|[^<]\b)((http|https)://([\-\w@:%_+'!.~#?,&/=;]+))", re.I | re.M)
_BRACKET_LINK = re.compile(r"<((http|https)://([\-\w@:%_+'!.~#?,&/=;][^>]+))>", re.I | re.M)
MAX_LINKS = 100


def link_targets(html_body: str, text_body: str) -> list[str]:
    """The unique links Mailpit's link check would test, in its order (HTML first, then text)."""
    links: list[str] = []

    def add(link: str) -> bool:
        if len(links) >= MAX_LINKS:
            return False
        if link not in links:
            links.append(link)
        return len(links) < MAX_LINKS

    parser = _Links()
    try:
        parser.feed(html_body)
        parser.close()
    except (ValueError, AssertionError):
        pass
    for kind in ("a", "link", "img"):
        for link in parser.found[kind]:
            if _LINK.search(link) and not add(link):
                return links
    for match in _TEXT_LINK.finditer(text_body):
        if not add(match.group(2)):
            return links
    for match in _BRACKET_LINK.finditer(text_body):
        if not add(match.group(1).replace("\n", "")):
            return links
    return links


def _internal(host: str) -> bool:
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        ip = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return not ip.is_global


def _check_link(link: str) -> dict:
    """What the sandbox can say about one link without any request leaving loopback."""
    host = urlsplit(link).hostname or ""
    if _internal(host):
        return {"URL": link, "StatusCode": 451, "Status": "Blocked private/reserved address"}
    return {"URL": link, "StatusCode": 0,
            "Status": "not checked: the sandbox never requests links (real Mailpit sends a HEAD request)"}


# --------------------------------------------------------------------------- HTML view

_META_REFRESH = re.compile(r"<meta\b[^>]*http-equiv\s*=\s*[\"']?refresh[\"']?[^>]*>", re.I)


def _link_inline_images(body: str, message_id: str, parts: list) -> str:
    for part in parts:
        if part.content_id:
            pattern = re.compile(r"(=[\"']?)(cid:" + re.escape(part.content_id) + r")([\"|'|\s|/|>|;])", re.I)
            url = f"/api/v1/message/{message_id}/part/{part.part_id}"
            body = pattern.sub(lambda m, url=url: m.group(1) + url + m.group(3), body)
    return body


# --------------------------------------------------------------------------- routes


def extra_routes(store: Store, resolve: Resolver) -> list[Route]:
    """The routes above, over `store`; `resolve` turns ``{id}`` (or ``latest``) into a message ID."""

    def message(request: Request) -> tuple[str, object] | Response:
        message_id = resolve(request)
        if isinstance(message_id, Response):
            return message_id
        stored = store.get(message_id, mark_read=False)
        if stored is None:
            return _not_found()
        return message_id, stored

    async def view_html(request: Request) -> Response:
        found = message(request)
        if isinstance(found, Response):
            return _text("Message not found", 404) if found.status_code == 404 and \
                request.path_params["id"] != "latest" else found
        message_id, stored = found
        parsed = parse_message(stored.raw)  # type: ignore[attr-defined]
        if not parsed.html:
            return _text("This message does not contain a HTML part", 404)
        body = _link_inline_images(parsed.html, message_id, parsed.inline + parsed.attachments)
        return _text(_META_REFRESH.sub("", body), 200, "text/html; charset=utf-8")

    async def view_text(request: Request) -> Response:
        found = message(request)
        if isinstance(found, Response):
            return _text("Message not found", 404) if found.status_code == 404 and \
                request.path_params["id"] != "latest" else found
        _, stored = found
        return _text(parse_message(stored.raw).text)  # type: ignore[attr-defined]

    async def thumb(request: Request) -> Response:
        message_id = resolve(request)
        if isinstance(message_id, Response):
            return message_id
        raw = store.raw(message_id)
        part = find_part(raw, request.path_params["part"]) if raw is not None else None
        if part is None:
            return _bad("sql: no rows in result set")
        name = _jpeg_name(part.filename or part.content_id)
        return Response(thumbnail(part.data, part.content_type),
                        headers={"Content-Type": "image/jpeg",
                                 "Content-Disposition": f'filename="{quote(name, safe="$&+:=@")}"'})

    async def link_check(request: Request) -> Response:
        found = message(request)
        if isinstance(found, Response):
            return found
        _, stored = found
        parsed = parse_message(stored.raw)  # type: ignore[attr-defined]
        links = [_check_link(link) for link in link_targets(parsed.html, parsed.text)]
        errors = sum(1 for link in links if link["StatusCode"] >= 400 or link["StatusCode"] == 0)
        return Response(_go_json({"Errors": errors, "Links": links}), headers={"Content-Type": "application/json"})

    async def html_check(request: Request) -> Response:
        found = message(request)
        if isinstance(found, Response):
            return found
        _, stored = found
        parsed = parse_message(stored.raw)  # type: ignore[attr-defined]
        if not parsed.html:
            return _bad("message does not contain HTML")
        return _text("html-check is not available on the sandbox: it needs Mailpit's caniemail database and "
                     "CSS engine; run real Mailpit ('make mailpit', then EMAILKIT_MAILBOX=mailpit)", 501)

    async def release(request: Request) -> Response:
        message_id = resolve(request)
        if isinstance(message_id, Response):
            return message_id
        if store.raw(message_id) is None:
            return _not_found()
        body = await request.body()
        if not body.strip():
            return _bad("EOF")  # Go's json.Decoder on an empty body, as Mailpit answers
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            return _bad(f"invalid JSON: {exc}")
        to = data.get("To") if isinstance(data, dict) else None
        if to is not None and not (isinstance(to, list) and all(isinstance(t, str) for t in to)):
            return _bad('invalid JSON: field "To" must be an array of strings')
        for address in to or []:
            parsed = getaddresses([address])
            if len(parsed) != 1 or "@" not in parsed[0][1]:
                return _bad(f"Invalid email address: {address}")
        if not to:
            return _bad("No valid addresses found")
        # Mailpit with no --smtp-relay-* configured dials an empty address; its answer, word for word:
        return _bad("SMTP error: error connecting to :0: dial tcp :0: connect: connection refused")

    async def file_not_found(request: Request) -> Response:
        response = _text("File not found\n", 404)
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response

    async def swagger(request: Request) -> Response:
        path = Path(os.environ.get("EMAILKIT_MAILPIT_SWAGGER", "") or SWAGGER_PATH)
        try:
            spec = path.read_bytes()
        except OSError:
            return _text(f"404 Mailpit's API spec is not on this machine ({path}): run 'make mailpit', "
                         "which puts the pinned version's swagger.json there", 404)
        return Response(spec, headers={"Content-Type": "application/json"})

    return [
        Route("/view/{id}.html", view_html, methods=["GET"]),
        Route("/view/{id}.txt", view_text, methods=["GET"]),
        Route("/api/v1/message/{id}/part/{part}/thumb", thumb, methods=["GET"]),
        Route("/api/v1/message/{id}/link-check", link_check, methods=["GET"]),
        Route("/api/v1/message/{id}/html-check", html_check, methods=["GET"]),
        Route("/api/v1/message/{id}/release", release, methods=["POST"]),
        Route("/api/v1/swagger.json", swagger, methods=["GET"]),
        # Mailpit serves its embedded files under GET /api/ (licences and the like): anything else there is
        Route("/api/{rest:path}", file_not_found, methods=["GET"]),
    ]
