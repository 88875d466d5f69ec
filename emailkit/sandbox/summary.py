"""Raw RFC 5322 bytes → the fields Mailpit stores and shows (summary, full message, headers).

Two speeds: `summarize()` runs for every received message (SMTP ingest is measured, so it
parses the header block by hand and only walks MIME parts when the message is multipart);
`parse_message()` runs for `GET /api/v1/message/{ID}` and builds Mailpit's `Message` body.
Header decoding follows Go's `net/textproto` (unfolding, canonical keys) because that is
what Mailpit's `/headers` endpoint shows; MIME parsing uses the stdlib `email` package.
"""

from __future__ import annotations

import base64
import hashlib
import quopri
import re
from dataclasses import dataclass, field
from datetime import datetime
from email import message_from_bytes
from email.header import decode_header, make_header
from email.message import Message
from email.policy import compat32
from email.utils import getaddresses, parsedate_to_datetime
from html import unescape
from html.parser import HTMLParser

from emailkit.limits import HEADER_MAX_FIELDS, MIME_MAX_DEPTH
from emailkit.html_text import html_to_plain_text, strip_html

__all__ = [
    "AttachmentInfo",
    "MessageTooComplex",
    "ParsedMessage",
    "Summary",
    "address_list",
    "canonical_key",
    "check_header_count",
    "clean_search_text",
    "clean_tag",
    "find_part",
    "header_block",
    "html_to_text",
    "mime_depth",
    "parse_message",
    "snippet",
    "summarize",
    "unique_tags",
]

_FOLD = re.compile(r"\r?\n[ \t]+")
_TAG_INVALID = re.compile(r"[^a-zA-Z0-9\-\ _.@]")
_MULTI_SPACE = re.compile(r"\s+")
_VALID_TAG = re.compile(r"^[a-zA-Z0-9\-\ _.@]{1,100}$")
_PLUS = re.compile(r"^(.+?)\+(.+)@")
# Mailpit's cleanString replaces CR?LF, tab, > < " , ; ( ) with spaces and then collapses spaces; as
# every one of them ends a word either way, mapping each (and a lone CR) to a space gives the same text.
_SEARCH_JUNK = str.maketrans({c: " " for c in "\r\n\t><\",;()\ufeff"})
_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
# A header value that is only plain ASCII addr-specs (``a@example.com, b@example.com``): what
# `getaddresses` makes of it is each one with an empty name, so `address_list` splits it itself.
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~\-]+"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?"
_PLAIN = rf"{_ATEXT}(?:\.{_ATEXT})*@{_LABEL}(?:\.{_LABEL})*"
_PLAIN_LIST = re.compile(rf"[ \t]*{_PLAIN}[ \t]*(?:,[ \t]*{_PLAIN}[ \t]*)*")


class MessageTooComplex(ValueError):
    """A message past a structural limit: `limit` is ``"mime_depth"`` or ``"header_count"``.

    Permanent: the same bytes will never fit, so SMTP answers 5xx (never 4xx, which a client retries).
    """

    def __init__(self, limit: str, message: str) -> None:
        super().__init__(message)
        self.limit = limit


# --------------------------------------------------------------------------- headers


def canonical_key(key: str) -> str:
    """Go's `textproto.CanonicalMIMEHeaderKey`: ``message-id`` → ``Message-Id``."""
    if not _TOKEN.match(key):
        return key
    return "-".join(part[:1].upper() + part[1:].lower() for part in key.split("-"))


def header_block(raw: bytes) -> list[tuple[str, str]]:
    """The top-level header fields as ``(name, value)``, unfolded like Go's textproto.

    Values are raw (RFC 2047 words kept); 8-bit bytes are read as UTF-8. Lines that are
    not ``name: value`` are skipped (Go would refuse the whole message instead).
    """
    end = raw.find(b"\r\n\r\n")
    end_lf = raw.find(b"\n\n")
    if end < 0 or (0 <= end_lf < end):
        end = end_lf
    head = raw if end < 0 else raw[:end]
    if raw.startswith((b"\r\n", b"\n")):
        return []
    text = head.decode("utf-8", "replace")
    fields: list[tuple[str, str]] = []
    for line in text.split("\n"):
        line = line.rstrip("\r")
        if line[:1] in (" ", "\t"):
            if fields:
                name, value = fields[-1]
                fields[-1] = (name, f"{value} {line.strip()}" if value else line.strip())
            continue
        name, colon, value = line.partition(":")
        if not colon or not name or name != name.strip():
            continue
        fields.append((name, value.strip()))
    return fields


def check_header_count(raw: bytes, limit: int = HEADER_MAX_FIELDS, *,
                       fields: list[tuple[str, str]] | None = None) -> None:
    """Raise `MessageTooComplex` when the top-level header has more than `limit` fields.

    `fields`: `header_block(raw)` when the caller already has it (it is not parsed again).
    """
    count = len(header_block(raw) if fields is None else fields)
    if count > limit:
        raise MessageTooComplex("header_count", f"the message has {count} header fields (at most {limit})")


def _decode_words(value: str) -> str:
    if "=?" not in value:
        return value
    try:
        return str(make_header(decode_header(value)))
    except (ValueError, LookupError, UnicodeError):
        return value


def address_list(value: str) -> list[dict[str, str]]:
    """A header value → ``[{"Name": ..., "Address": ...}]`` (Go `net/mail.Address` shape)."""
    if not value:
        return []
    if _PLAIN_LIST.fullmatch(value):
        return [{"Name": "", "Address": addr.strip(" \t")} for addr in value.split(",")]
    result = []
    for name, addr in getaddresses([value]):
        if not addr and not name:
            continue
        result.append({"Name": _decode_words(name), "Address": addr})
    return result


# --------------------------------------------------------------------------- text helpers


class _TextExtractor(HTMLParser):
    _SKIP = {"script", "style", "head", "title"}
    _BLOCK = {
        "p",
        "div",
        "br",
        "tr",
        "li",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "table",
        "ul",
        "ol",
        "blockquote",
        "hr",
        "pre",
    }

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._SKIP:
            self._skip += 1
        elif tag in self._BLOCK:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIP:
            self._skip = max(0, self._skip - 1)
        elif tag in self._BLOCK:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def html_to_text(html: str, *, keep_lines: bool = False) -> str:
    """Visible text of an HTML body (scripts/styles dropped); one line unless `keep_lines`."""
    parser = _TextExtractor()
    try:
        parser.feed(html)
        parser.close()
        text = "".join(parser.parts)
    except Exception:  # malformed markup: fall back to a crude strip
        text = unescape(re.sub(r"<[^>]*>", " ", html))
    if keep_lines:
        lines = (" ".join(line.split()) for line in text.split("\n"))
        return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
    return " ".join(text.split())


def _truncate_utf8(text: str, limit: int) -> str:
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text
    return data[:limit].decode("utf-8", "ignore") + "..."


def snippet(text: str, html: str) -> str:
    """Mailpit's snippet: stripped HTML if any, else the text; whitespace collapsed, 200 bytes + '...'."""
    text, html = text.strip(), html.strip()
    if html:
        return _truncate_utf8(strip_html(html), 200)
    if text:
        return _truncate_utf8(" ".join(text.replace("\ufeff", " ").split()), 200)
    return ""


def clean_search_text(value: str) -> str:
    """Mailpit's `cleanString`: lower-case, punctuation that splits words → spaces, single spaces."""
    return " ".join(value.translate(_SEARCH_JUNK).split()).lower()


def clean_tag(tag: str) -> str:
    return _MULTI_SPACE.sub(" ", _TAG_INVALID.sub(" ", tag)).strip()


def unique_tags(tags: list[str]) -> list[str]:
    """Cleaned, valid, case-insensitively unique tags, sorted (Mailpit's `sortedUniqueTags`)."""
    seen: set[str] = set()
    result = []
    for raw in tags:
        tag = clean_tag(raw)
        if not tag or not _VALID_TAG.match(tag) or tag.lower() in seen:
            continue
        seen.add(tag.lower())
        result.append(tag)
    return sorted(result)


# --------------------------------------------------------------------------- MIME walking


@dataclass
class AttachmentInfo:
    """One attachment or inline part, as Mailpit's `Attachment` JSON."""

    part_id: str
    filename: str
    content_type: str
    content_id: str
    data: bytes

    def to_json(self) -> dict:
        return {
            "PartID": self.part_id,
            "FileName": self.filename or self.content_id,
            "ContentType": self.content_type,
            "ContentID": self.content_id,
            "Size": len(self.data),
            "Checksums": {
                "MD5": hashlib.md5(self.data).hexdigest(),  # noqa: S324 - a checksum, as Mailpit shows
                "SHA1": hashlib.sha1(self.data).hexdigest(),  # noqa: S324
                "SHA256": hashlib.sha256(self.data).hexdigest(),
            },
        }


@dataclass
class _Body:
    text: str = ""
    html: str = ""
    attachments: list[AttachmentInfo] = field(default_factory=list)
    inline: list[AttachmentInfo] = field(default_factory=list)


def _decode_part(part: Message) -> str:
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return ""
    charset = part.get_content_charset() or "utf-8"
    try:
        text = payload.decode(charset, "replace")
    except LookupError:
        text = payload.decode("utf-8", "replace")
    return text  # line endings as sent: Mailpit keeps CRLF in Text and HTML


def _walk(part: Message, part_id: str, body: _Body, related: bool, want_data: bool) -> None:
    if part.is_multipart():
        subtype = part.get_content_subtype()
        children = part.get_payload()
        assert isinstance(children, list)
        for i, child in enumerate(children, 1):
            child_id = f"{part_id}.{i}" if part_id else str(i)
            _walk(child, child_id, body, related or subtype == "related", want_data)
        return
    ctype = part.get_content_type()
    disposition = (part.get_content_disposition() or "").lower()
    filename = part.get_filename() or ""
    if filename and "=?" in filename:
        filename = _decode_words(filename)
    content_id = (part.get("Content-ID") or "").strip().strip("<>")
    if disposition != "attachment" and not filename:
        if ctype == "text/plain" and not body.text:
            body.text = _decode_part(part)
            return
        if ctype == "text/html" and not body.html:
            body.html = _decode_part(part)
            return
    if not filename and not content_id:
        return  # Mailpit lists only parts with a file name or content id
    data = part.get_payload(decode=True) if want_data else b""
    info = AttachmentInfo(part_id or "1", filename, ctype, content_id, data if isinstance(data, bytes) else b"")
    if disposition == "attachment":
        body.attachments.append(info)
    elif disposition == "inline" or related or (content_id and not filename):
        body.inline.append(info)
    else:
        body.attachments.append(info)


def _simple_body(raw: bytes, headers: dict[str, str]) -> _Body | None:
    """Fast path for a single text part (most test mail): no `email` parser needed."""
    ctype_header = headers.get("content-type", "text/plain")
    main, _, params = ctype_header.partition(";")
    main = main.strip().lower() or "text/plain"
    if main not in ("text/plain", "text/html"):
        return None
    if headers.get("content-disposition", "").lower().startswith("attachment"):
        return None
    cte = headers.get("content-transfer-encoding", "7bit").strip().lower()
    charset = "utf-8"
    match = re.search(r'charset\s*=\s*"?([^";\s]+)', params, re.I)
    if match:
        charset = match.group(1)
    split = raw.find(b"\r\n\r\n")
    split_lf = raw.find(b"\n\n")
    if split < 0 or (0 <= split_lf < split):
        payload = raw[split_lf + 2 :] if split_lf >= 0 else b""
    else:
        payload = raw[split + 4 :]
    if cte == "base64":
        try:
            payload = base64.b64decode(payload)
        except ValueError:
            return None
    elif cte == "quoted-printable":
        payload = quopri.decodestring(payload)
    elif cte not in ("7bit", "8bit", "binary", ""):
        return None
    try:
        text = payload.decode(charset, "replace")
    except LookupError:
        text = payload.decode("utf-8", "replace")
    return _Body(html=text) if main == "text/html" else _Body(text=text)


def mime_depth(msg: Message) -> int:
    """Levels of nested multipart/message parts (0 for a single part); iterative, never recursive."""
    deepest = 0
    stack = [(msg, 1 if msg.is_multipart() else 0)]
    while stack:
        part, depth = stack.pop()
        deepest = max(deepest, depth)
        if part.is_multipart():
            children = part.get_payload()
            if isinstance(children, list):
                stack.extend((child, depth + (1 if child.is_multipart() else 0)) for child in children
                             if isinstance(child, Message))
    return deepest


def _parse(raw: bytes, limit: int = MIME_MAX_DEPTH) -> Message:
    """The MIME tree of `raw`; `MessageTooComplex` past `limit` levels (Postfix's mime_nesting_limit).

    The stdlib parser recurses once per level, so a message nested ~1,000 deep raises
    RecursionError inside it: that too is a message past the limit, refused the same way.
    """
    too_deep = f"MIME parts nested deeper than {limit} levels"
    try:
        msg = message_from_bytes(raw, policy=compat32)
    except RecursionError:
        raise MessageTooComplex("mime_depth", too_deep) from None
    if mime_depth(msg) > limit:
        raise MessageTooComplex("mime_depth", too_deep)
    return msg


def _body(raw: bytes, headers: dict[str, str], *, want_data: bool) -> _Body:
    if not headers.get("content-type", "").lower().lstrip().startswith("multipart/"):
        fast = _simple_body(raw, headers)
        if fast is not None:
            return fast
    msg = _parse(raw)
    body = _Body()
    _walk(msg, "" if msg.is_multipart() else "1", body, False, want_data)
    return body


# --------------------------------------------------------------------------- results


@dataclass
class Summary:
    """What the store keeps per message (Mailpit's `mailbox` row + metadata)."""

    message_id: str
    subject: str
    from_: dict[str, str]
    to: list[dict[str, str]]
    cc: list[dict[str, str]]
    bcc: list[dict[str, str]]
    reply_to: list[dict[str, str]]
    size: int
    inline: int
    attachments: int
    snippet: str
    search_text: str
    tags: list[str]


def _first(headers: list[tuple[str, str]]) -> dict[str, str]:
    first: dict[str, str] = {}
    for name, value in headers:
        first.setdefault(name.lower(), value)
    return first


def _plus_tags(addresses: list[dict[str, str]]) -> list[str]:
    tags: list[str] = []
    for item in addresses:
        match = _PLUS.match(item.get("Address", ""))
        if match:
            tags.extend(match.group(2).split("+"))
    return tags


def summarize(raw: bytes) -> Summary:
    """Everything the store needs from a received message (fast: runs on every SMTP DATA)."""
    headers = _first(header_block(raw))
    from_list = address_list(headers.get("from", ""))
    if from_list:
        sender = from_list[0]
    else:
        sender = {"Name": _decode_words(headers.get("from", "")), "Address": ""}
    to = address_list(headers.get("to", ""))
    cc = address_list(headers.get("cc", ""))
    bcc = address_list(headers.get("bcc", ""))
    reply_to = address_list(headers.get("reply-to", ""))
    subject = _decode_words(headers.get("subject", ""))
    body = _body(raw, headers, want_data=False)
    search = " ".join(
        [
            _decode_words(headers.get("from", "")),
            subject,
            _decode_words(headers.get("to", "")),
            _decode_words(headers.get("cc", "")),
            _decode_words(headers.get("bcc", "")),
            _decode_words(headers.get("reply-to", "")),
            headers.get("return-path", ""),
            (strip_html(body.html, include_links=True) if body.html else "") or body.text,  # Mailpit's createSearchText
            *(a.filename for a in body.attachments),
        ]
    )
    x_tags = headers.get("x-tags", "")
    tags = x_tags.strip().split(",") if x_tags.strip() else []
    tags += _plus_tags(to + cc + bcc + [sender])
    return Summary(
        message_id=headers.get("message-id", "").strip().strip("<>"),
        subject=subject,
        from_=sender,
        to=to,
        cc=cc,
        bcc=bcc,
        reply_to=reply_to,
        size=len(raw),
        inline=len(body.inline),
        attachments=len(body.attachments),
        snippet=snippet(body.text, body.html),
        search_text=clean_search_text(search),
        tags=unique_tags(tags),
    )


@dataclass
class ParsedMessage:
    """The parts of Mailpit's `Message` JSON that come from the raw bytes."""

    message_id: str
    sender: dict[str, str]
    to: list[dict[str, str]]
    cc: list[dict[str, str]]
    bcc: list[dict[str, str]]
    reply_to: list[dict[str, str]]
    return_path: str
    subject: str
    list_unsubscribe: dict
    date: datetime | None
    text: str
    html: str
    inline: list[AttachmentInfo]
    attachments: list[AttachmentInfo]


def _list_unsubscribe(headers: dict[str, str]) -> dict:
    value = headers.get("list-unsubscribe", "")
    result = {"Header": value, "Links": [], "Errors": "", "HeaderPost": ""}
    if value:
        links = re.findall(r"<([^<>]+)>", value)
        result["Links"] = [link.strip() for link in links]
        if not links:
            result["Errors"] = "No valid unsubscribe links found"
        result["HeaderPost"] = headers.get("list-unsubscribe-post", "")
    return result


def parse_message(raw: bytes) -> ParsedMessage:
    """Parse a stored message for `GET /api/v1/message/{ID}`."""
    headers = _first(header_block(raw))
    from_list = address_list(headers.get("from", ""))
    sender = from_list[0] if from_list else {"Name": _decode_words(headers.get("from", "")), "Address": ""}
    body = _body(raw, headers, want_data=True)
    text = body.text
    if not text and body.html:
        text = html_to_plain_text(body.html)  # as Mailpit's parser (enmime + html2text) down-converts it
    return_path = headers.get("return-path", "").strip().strip("<>") or sender["Address"]
    try:
        date = parsedate_to_datetime(headers["date"]) if headers.get("date") else None
    except (TypeError, ValueError, IndexError):
        date = None
    return ParsedMessage(
        message_id=headers.get("message-id", "").strip().strip("<>"),
        sender=sender,
        to=address_list(headers.get("to", "")),
        cc=address_list(headers.get("cc", "")),
        bcc=address_list(headers.get("bcc", "")),
        reply_to=address_list(headers.get("reply-to", "")),
        return_path=return_path,
        subject=_decode_words(headers.get("subject", "")),
        list_unsubscribe=_list_unsubscribe(headers),
        date=date,
        text=text,
        html=body.html,
        inline=body.inline,
        attachments=body.attachments,
    )


def find_part(raw: bytes, part_id: str) -> AttachmentInfo | None:
    """The attachment or inline part with Mailpit part ID `part_id`, or None."""
    headers = _first(header_block(raw))
    body = _body(raw, headers, want_data=True)
    for info in body.inline + body.attachments:
        if info.part_id == part_id:
            return info
    return None
