"""What Mailpit derives from a stored message for a browser: the HTML view, thumbnails, the links it checks.

No HTTP here (the routes are `emailkit.sandbox.routes.message` and `.views`); each rule as Mailpit
v1.33.1 has it, measured by ``tests/differential``:

* `html_view` — the HTML body with ``cid:`` images linked to their part URLs and meta refreshes
  removed (`apiv1/testing.go`);
* `thumbnail` — a 180×120 JPEG (Pillow): images cropped to fill, smaller ones padded on white,
  anything else a blank white image (`apiv1/thumbnails.go`); `thumbnail_name` its file name;
* `link_targets` — every link of the message, in the order Mailpit's link check lists them;
  `check_link` what the sandbox can say about one: loopback or private addresses get Mailpit's
  ``451 Blocked private/reserved address`` (Mailpit never requests them either); every other link is
  **not requested** (the sandbox never reaches beyond loopback): ``StatusCode 0``, and ``Status`` says so.
"""

from __future__ import annotations

import functools
import html.parser
import io
import ipaddress
import re
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from emailkit.sandbox.summary import AttachmentInfo

__all__ = ["MAX_LINKS", "THUMB_SIZE", "check_link", "html_view", "link_targets", "thumbnail", "thumbnail_name"]

THUMB_SIZE = (180, 120)


# --------------------------------------------------------------------------- thumbnails


def thumbnail(data: bytes | None, content_type: str) -> bytes:
    """A 180×120 JPEG: the image cropped to fill (padded on white when smaller), else blank white."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    width, height = THUMB_SIZE
    canvas = Image.new("RGB", THUMB_SIZE, (255, 255, 255))
    if data and content_type.startswith("image/"):
        try:
            with Image.open(io.BytesIO(data)) as opened:
                img = ImageOps.exif_transpose(opened).convert("RGB")
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


def thumbnail_name(name: str) -> str:
    """The thumbnail's file name: the part's, with ``.jpg`` for its extension (``thumb.jpg`` without one)."""
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


def check_link(link: str) -> dict[str, Any]:
    """What the sandbox can say about one link without any request leaving loopback."""
    host = urlsplit(link).hostname or ""
    if _internal(host):
        return {"URL": link, "StatusCode": 451, "Status": "Blocked private/reserved address"}
    return {"URL": link, "StatusCode": 0,
            "Status": "not checked: the sandbox never requests links (real Mailpit sends a HEAD request)"}


# --------------------------------------------------------------------------- HTML view

_META_REFRESH = re.compile(r"<meta\b[^>]*http-equiv\s*=\s*[\"']?refresh[\"']?[^>]*>", re.I)


def html_view(body: str, message_id: str, parts: Sequence[AttachmentInfo]) -> str:
    """``/view/{ID}.html``: `body`, each ``cid:`` reference to one of `parts` linked to its part URL, no meta refresh."""
    for part in parts:
        if part.content_id:
            pattern = re.compile(r"(=[\"']?)(cid:" + re.escape(part.content_id) + r")([\"|'|\s|/|>|;])", re.I)
            url = f"/api/v1/message/{message_id}/part/{part.part_id}"
            body = pattern.sub(functools.partial(_linked, url), body)
    return _META_REFRESH.sub("", body)


def _linked(url: str, match: re.Match[str]) -> str:
    return match.group(1) + url + match.group(3)
