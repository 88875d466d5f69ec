"""The bytes Mailpit writes for a message sent through ``POST /api/v1/send``.

Mailpit builds such a message with its MIME library (enmime's builder and encoder, Go's ``mime`` and
``net/mail``), not with an SMTP client, so the stored message has that library's shape, and the
differential suite compares it with real Mailpit's byte for byte (after masking the random
boundaries and the clock). The rules, as measured and written for Python here:

* one ``text/plain`` part always (empty if no text), ``text/html`` beside it in a
  ``multipart/alternative``; inline parts in a ``multipart/related`` around that; attachments in a
  ``multipart/mixed`` around everything; boundaries ``enmime-<uuid4>``;
* headers sorted by name, names in Go's canonical form (``Message-Id``, ``Mime-Version``), values
  folded at 76 characters on spaces; a value with bytes outside printable ASCII becomes one or more
  RFC 2047 words, ``b`` when at least a fifth of its bytes need it, else ``q``;
* addresses as ``"Name" <addr>`` or ``<addr>``; ``Date`` as ``Mon, 02 Jan 2006 15:04:05 -0700``;
* a part's body is written as is (no ``Content-Transfer-Encoding``) when it is printable ASCII,
  quoted-printable when under a fifth of its bytes are not, base64 (76-character lines) otherwise;
  non-text attachments are always base64; nothing is added after the last line of a body.

Hand-written: no Python library writes MIME the way Go's enmime does, and the point is its exact shape.
"""

from __future__ import annotations

import base64
import time
import uuid
from dataclasses import dataclass, field
from urllib.parse import quote_plus

__all__ = ["SendPart", "build_message", "canonical_header_key", "format_address"]

_TSPECIALS = set('()<>@,;:\\"/[]?=')
_ATEXT_SPECIALS = set('()<>[]:;@\\,"')
_MAX_CONTENT = 75 - len("=?UTF-8?q?") - len("?=")  # Go's mime: 63
_MAX_B64_INPUT = _MAX_CONTENT // 4 * 3  # 45 bytes of input per b-word


def _needs_encoding(value: str) -> bool:
    return any((c < " " or c > "~") and c != "\t" for c in value)


def _b_words(value: str) -> str:
    data = value.encode("utf-8")
    if len(base64.b64encode(data)) <= _MAX_CONTENT:
        return f"=?utf-8?b?{base64.b64encode(data).decode()}?="
    words, current = [], b""
    for char in value:
        raw = char.encode("utf-8")
        if len(current) + len(raw) > _MAX_B64_INPUT:
            words.append(current)
            current = b""
        current += raw
    words.append(current)
    return " ".join(f"=?utf-8?b?{base64.b64encode(w).decode()}?=" for w in words)


def _q_words(value: str) -> str:
    words: list[str] = []
    current, length = [], 0
    for char in value:
        if " " <= char <= "~" and char not in "=?_":
            text, size = ("_" if char == " " else char), 1
        else:
            raw = char.encode("utf-8")
            text, size = "".join(f"={b:02X}" for b in raw), 3 * len(raw)
        if length + size > _MAX_CONTENT:
            words.append("".join(current))
            current, length = [], 0
        current.append(text)
        length += size
    words.append("".join(current))
    return " ".join(f"=?utf-8?q?{w}?=" for w in words)


def _transfer_encoding(data: bytes, *, quote_line_breaks: bool) -> str:
    """enmime's choice: ``7bit``, ``quoted-printable`` or ``base64`` (at least 20% of bytes to escape)."""
    if not data:
        return "7bit"
    threshold = 20 * len(data) // 100
    count = 0
    for byte in data:
        if (byte < 0x20 or byte > 0x7E) and byte != 0x09:
            if not quote_line_breaks and byte in (0x0D, 0x0A):
                continue
            count += 1
            if count >= threshold:
                return "base64"
    return "7bit" if count == 0 else "quoted-printable"


def _header_value(value: str) -> str:
    choice = _transfer_encoding(value.encode("utf-8"), quote_line_breaks=True)
    if choice == "base64" and _needs_encoding(value):
        return _b_words(value)
    if choice == "quoted-printable" and _needs_encoding(value):
        return _q_words(value)
    return value


def _fold(key: str, value: str) -> bytes:
    """enmime's ``Wrap(76, key, ":_", value, CRLF)``: break at the last space once a line reaches 76."""
    data = f"{key}:_{value}\r\n".encode("utf-8")
    if len(data) >= 76:
        out = bytearray()
        last_space, written, line = -1, -1, 0
        i = 0
        while i < len(data):
            line += 1
            if data[i] in (0x20, 0x09):
                last_space = i
            if line >= 76 and last_space >= 0:
                out += data[written + 1:last_space] + b"\r\n "
                written = last_space
                line = 1
                i = written + 1
                last_space = -1
            i += 1
        data = bytes(out + data[written + 1:])
    data = bytearray(data)
    data[len(key.encode()) + 1] = 0x20
    return bytes(data)


def canonical_header_key(key: str) -> str:
    """Go's `textproto.CanonicalMIMEHeaderKey`: ``x-thing`` → ``X-Thing``, ``Message-ID`` → ``Message-Id``."""
    if not key or any(not ("!" <= c <= "~") or c == ":" or c == " " for c in key):
        return key
    out, upper = [], True
    for char in key:
        out.append(char.upper() if upper else char.lower())
        upper = char == "-"
    return "".join(out)


def _is_token(value: str) -> bool:
    return bool(value) and all(" " < c < "\x7f" and c not in _TSPECIALS for c in value)


def _media_type(kind: str, params: dict[str, str]) -> str:
    """Go's `mime.FormatMediaType` (params sorted; quoted or RFC 2231 when needed); "" if unusable."""
    major, slash, sub = kind.partition("/")
    if not _is_token(major) or (slash and not _is_token(sub)):
        return ""
    out = kind.lower()
    for key in sorted(params):
        value = params[key]
        out += f"; {key.lower()}"
        if _needs_encoding(value):
            encoded = "".join(
                chr(b) if not (b <= 0x20 or b >= 0x7F or chr(b) in "*'%" or chr(b) in _TSPECIALS) else f"%{b:02X}"
                for b in value.encode("utf-8"))
            out += f"*=utf-8''{encoded}"
        elif _is_token(value):
            out += f"={value}"
        else:
            out += '="' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return out


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def format_address(name: str, address: str) -> str:
    """Go's `mail.Address.String()`: ``<addr>`` or ``"Name" <addr>`` (an encoded word for non-ASCII)."""
    local, at, domain = address.rpartition("@")
    if not at:
        local, domain = address, ""
    needs_quotes = False
    for i, char in enumerate(local):
        if (char > "~" or "!" <= char <= "~") and char not in _ATEXT_SPECIALS and char != ".":
            continue
        if char == "." and 0 < i < len(local) - 1 and local[i - 1] != ".":
            continue
        needs_quotes = True
        break
    if needs_quotes:
        local = _quote(local)
    angle = f"<{local}@{domain}>"
    if not name:
        return angle
    if all(("!" <= c <= "~") or c in " \t" for c in name):
        return f"{_quote(name)} {angle}"
    if any(c in "\"#$%&'(),.:;<>@[]^`{|}~" for c in name):
        return f"{_b_words(name)} {angle}"
    return f"{_q_words(name)} {angle}"


def sniff_content_type(data: bytes) -> str:
    """The few answers of Go's `http.DetectContentType` an attachment without a ContentType gets here."""
    signatures = [(b"\x89PNG\r\n\x1a\n", "image/png"), (b"GIF87a", "image/gif"), (b"GIF89a", "image/gif"),
                  (b"\xff\xd8\xff", "image/jpeg"), (b"%PDF-", "application/pdf"), (b"PK\x03\x04", "application/zip")]
    for magic, kind in signatures:
        if data.startswith(magic):
            return kind
    head = data[:512]
    if any(b < 0x20 and b not in (0x09, 0x0A, 0x0C, 0x0D, 0x1B) for b in head):
        return "application/octet-stream"
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return "application/octet-stream"
    return "text/plain; charset=utf-8"


@dataclass
class SendPart:
    content_type: str
    content: bytes = b""
    charset: str = ""
    filename: str = ""
    disposition: str = ""
    content_id: str = ""
    children: list[SendPart] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)

    def _encoding(self) -> str:
        if not self.content:
            return "7bit"
        text = self.content_type.lower().startswith(("text/", "multipart/"))
        if self.content_type.lower().startswith("message/"):
            return "8bit"
        if not text:
            return "base64"
        if not self.charset:
            self.charset = "utf-8"
        return _transfer_encoding(self.content, quote_line_breaks=False)

    def encode(self) -> bytes:
        headers = dict(self.headers)
        cte = self._encoding()
        if cte != "7bit":
            headers["Content-Transfer-Encoding"] = cte
        boundary = f"enmime-{uuid.uuid4()}" if self.children else ""
        if self.content_id:
            headers["Content-Id"] = "<" + quote_plus(self.content_id).replace("%40", "@") + ">"
        filename = self.filename
        choice = _transfer_encoding(filename.encode("utf-8"), quote_line_breaks=True)
        if choice == "base64":
            filename = _b_words(filename)
        elif choice == "quoted-printable":
            filename = _q_words(filename)
        params = {k: v for k, v in (("charset", self.charset), ("name", filename), ("boundary", boundary)) if v}
        headers["Content-Type"] = _media_type(self.content_type, params) or self.content_type
        if self.disposition:
            headers["Content-Disposition"] = (_media_type(self.disposition, {"filename": filename} if filename else {})
                                              or self.disposition)
        out = bytearray()
        for key in sorted(headers):
            out += _fold(key, _header_value(headers[key]))
        if not self.children or self.content:
            out += b"\r\n"
        if self.content:
            if cte == "base64":
                encoded = base64.b64encode(self.content)
                out += b"".join(encoded[i:i + 76] + b"\r\n" for i in range(0, len(encoded), 76))
            elif cte == "quoted-printable":
                out += _quoted_printable(self.content)
            else:
                out += self.content
        if not self.children:
            return bytes(out)
        for child in self.children:
            out += f"\r\n--{boundary}\r\n".encode() + child.encode()
        out += f"\r\n--{boundary}--\r\n".encode()
        return bytes(out)


def _quoted_printable(data: bytes) -> bytes:
    """Go's `mime/quotedprintable.Writer` (text mode): CRLF line ends, soft breaks before 76 columns."""
    out = bytearray()
    line = bytearray()

    def emit(chunk: bytes) -> None:
        nonlocal line
        if len(line) + len(chunk) > 75:
            out.extend(line + b"=\r\n")
            line = bytearray()
        line.extend(chunk)

    lines = data.replace(b"\r\n", b"\n").split(b"\n")
    for index, raw in enumerate(lines):
        for pos, byte in enumerate(raw):
            last = pos == len(raw) - 1
            if (0x21 <= byte <= 0x7E and byte != 0x3D) or (byte in (0x20, 0x09) and not last):
                emit(bytes([byte]))
            else:
                emit(f"={byte:02X}".encode())
        if index < len(lines) - 1:
            out.extend(line + b"\r\n")
            line = bytearray()
    out.extend(line)
    return bytes(out)


def build_message(*, from_name: str, from_email: str, to: list[tuple[str, str]], cc: list[tuple[str, str]],
                  reply_to: list[tuple[str, str]], subject: str, text: str, html: str,
                  headers: dict[str, str], attachments: list[tuple[str, str, bytes, str]],
                  date: float | None = None) -> bytes:
    """The message Mailpit's ``/api/v1/send`` stores (before its Message-ID/Return-Path/Bcc additions).

    `attachments` are ``(filename, content_type, data, content_id)``; an empty content type is
    sniffed from the data, a content id makes the part inline.
    """
    root = SendPart("text/plain", text.encode("utf-8"), charset="utf-8")
    if html:
        root = SendPart("multipart/alternative", children=[root, SendPart("text/html", html.encode("utf-8"),
                                                                          charset="utf-8")])
    inline = [a for a in attachments if a[3]]
    files = [a for a in attachments if not a[3]]
    if inline:
        root = SendPart("multipart/related", children=[root, *(
            SendPart(ctype or sniff_content_type(data), data, filename=name, disposition="inline", content_id=cid)
            for name, ctype, data, cid in inline)])
    if files:
        root = SendPart("multipart/mixed", children=[root, *(
            SendPart(ctype or sniff_content_type(data), data, filename=name, disposition="attachment")
            for name, ctype, data, _ in files)])
    stamp = time.localtime(date if date is not None else time.time())
    top = {"Mime-Version": "1.0", "From": format_address(from_name, from_email), "Subject": subject,
           "Date": time.strftime("%a, %d %b %Y %H:%M:%S %z", stamp)}
    if to:
        top["To"] = ", ".join(format_address(n, a) for n, a in to)
    if cc:
        top["Cc"] = ", ".join(format_address(n, a) for n, a in cc)
    if reply_to:
        top["Reply-To"] = ", ".join(format_address(n, a) for n, a in reply_to)
    for key, value in headers.items():
        top[canonical_header_key(key)] = value
    root.headers = top
    return root.encode()

