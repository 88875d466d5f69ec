"""Building MIME messages with the stdlib `email` package: the one place input is checked.

`compose()` turns plain Python values into an `email.message.EmailMessage` ready for SMTP
(`aiosmtplib.send_message`) or for storing; `parse_address()` checks one address.
Every problem raises `emailkit.errors.InvalidInput` naming the field (`to[1]`, `subject`,
`headers.X-Foo`, `attachments[0].filename`, ...) and saying how to fix it.

>>> msg = compose(sender="Ann <ann@example.com>", to=["bob@example.com"], subject="Hi", text="Hello")
>>> msg["To"], msg["Subject"], msg.get_content_type()
('bob@example.com', 'Hi', 'text/plain')
>>> parse_address(("Bob", "bob@example.com"), "to[0]")
('Bob', 'bob@example.com')
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from email import policy as email_policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, formatdate, make_msgid, parsedate_to_datetime
from typing import TypeAlias, cast

from emailkit.errors import InvalidInput

__all__ = [
    "AddressInput",
    "Attachment",
    "RESERVED_HEADERS",
    "compose",
    "format_address",
    "parse_address",
]

#: An address as callers give it: ``"a@b.c"``, ``"Name <a@b.c>"`` or ``(name, address)``.
AddressInput: TypeAlias = str | tuple[str, str]
#: ``(filename, content_type, data)`` or ``(filename, content_type, data, content_id)``.
Attachment: TypeAlias = tuple[str, str, bytes] | tuple[str, str, bytes, str]

#: Headers set through their own argument, never through ``headers=`` (lower-case keys).
RESERVED_HEADERS: dict[str, str] = {
    "to": "to=",
    "from": "sender=",
    "cc": "cc=",
    "bcc": "bcc=",
    "reply-to": "reply_to=",
    "date": "date=",
    "subject": "subject=",
    "content-type": "text=/html=/attachments=",
    "mime-version": "nothing (it is always 1.0)",
    "content-transfer-encoding": "nothing (the encoding is chosen per part)",
}

# CR, LF and the Unicode line breaks (NEL, LINE/PARAGRAPH SEPARATOR) that str.splitlines() and
# some mail software also treat as line ends: any of them in a header value is header injection.
_CRLF = re.compile("[\r\n\x85\u2028\u2029]")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_HEADER_NAME = re.compile(r"^[\x21-\x39\x3b-\x7e]+$")  # printable ASCII except ':'
_ANGLE = re.compile(r"^(?P<name>.*?)\s*<(?P<addr>[^<>]*)>\s*$", re.S)
# RFC 5322 atext plus '.', and any non-ASCII character (RFC 6531 internationalised mail).
_LOCAL_ATOM = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~\-\u0080-\U0010ffff]+$")
_DOMAIN_LABEL = re.compile(
    r"^[A-Za-z0-9\u0080-\U0010ffff]([A-Za-z0-9\-\u0080-\U0010ffff]*[A-Za-z0-9\u0080-\U0010ffff])?$"
)
# A plain ASCII ``user@example.com``: dot-atom local part, LDH labels. Everything `parse_address` checks
# holds for it, so it is answered without the general checks (the sandbox checks every recipient).
_LDH = r"[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?"
_PLAIN_ADDR = re.compile(
    r"(?P<local>[A-Za-z0-9!#$%&'*+/=?^_`{|}~\-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~\-]+)*)"
    rf"@(?P<domain>{_LDH}(?:\.{_LDH})*)"
)
_CONTENT_TYPE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9!#$&^_.+\-]*/[A-Za-z0-9][A-Za-z0-9!#$&^_.+\-]*$")

_ADDRESS_FIX = 'write it as "user@example.com", "Name <user@example.com>" or ("Name", "user@example.com")'
_LINEBREAK_FIX = "remove the line break (CR/LF); long header values are folded automatically"


def _check_line(value: object, field: str, *, what: str = "value") -> str:
    if not isinstance(value, str):
        raise InvalidInput(field, f"must be a string, not {type(value).__name__}", fix=f"pass the {what} as str")
    if _CRLF.search(value):
        raise InvalidInput(field, "contains CR or LF or another line break (header injection)", fix=_LINEBREAK_FIX)
    if _CONTROL.search(value):
        raise InvalidInput(field, "contains a control character", fix="remove control characters")
    return value


def _check_addr_spec(addr: str, field: str) -> str:
    addr = addr.strip()
    if not addr:
        raise InvalidInput(field, "address is empty", fix=_ADDRESS_FIX)
    if any(c.isspace() for c in addr):
        raise InvalidInput(field, f"address {addr!r} contains spaces", fix=_ADDRESS_FIX)
    local, at, domain = addr.rpartition("@")
    if not at or not local or not domain:
        raise InvalidInput(field, f"address {addr!r} has no user@domain form", fix=_ADDRESS_FIX)
    if local.startswith('"') and local.endswith('"') and len(local) >= 2:
        if '"' in local[1:-1].replace('\\"', ""):
            raise InvalidInput(field, f"address {addr!r} has a malformed quoted local part", fix=_ADDRESS_FIX)
    else:
        atoms = local.split(".")
        if any(not a or not _LOCAL_ATOM.match(a) for a in atoms):
            raise InvalidInput(field, f"address {addr!r} has an invalid local part", fix=_ADDRESS_FIX)
    if domain.startswith("[") and domain.endswith("]"):
        if not re.fullmatch(r"\[[A-Za-z0-9:.\-]+\]", domain):
            raise InvalidInput(field, f"address {addr!r} has an invalid domain literal", fix=_ADDRESS_FIX)
    elif any(not _DOMAIN_LABEL.match(label) for label in domain.split(".")):
        raise InvalidInput(field, f"address {addr!r} has an invalid domain", fix=_ADDRESS_FIX)
    if len(local) > 64 or len(domain) > 255:
        raise InvalidInput(field, f"address {addr!r} is too long (RFC 5321 §4.5.3.1)", fix="use a shorter address")
    return addr


def parse_address(value: AddressInput, field: str) -> tuple[str, str]:
    """Check one address and return ``(name, address)``; raise `InvalidInput` naming `field`."""
    if type(value) is str:
        plain = _PLAIN_ADDR.fullmatch(value)
        if plain is not None and len(plain.group("local")) <= 64 and len(plain.group("domain")) <= 255:
            return "", value
    if isinstance(value, tuple):
        if len(value) != 2 or not all(isinstance(v, str) for v in value):
            raise InvalidInput(field, "a tuple address must be (name, address), both str", fix=_ADDRESS_FIX)
        name, addr = value
        _check_line(name, field, what="display name")
        _check_line(addr, field, what="address")
        return name.strip(), _check_addr_spec(addr, field)
    if not isinstance(value, str):
        raise InvalidInput(field, f"must be an address string, not {type(value).__name__}", fix=_ADDRESS_FIX)
    _check_line(value, field, what="address")
    text = value.strip()
    if not text:
        raise InvalidInput(field, "address is empty", fix=_ADDRESS_FIX)
    match = _ANGLE.match(text)
    if match:
        name = match.group("name").strip()
        if len(name) >= 2 and name[0] == name[-1] == '"':
            name = name[1:-1].replace('\\"', '"').replace("\\\\", "\\")
        return name, _check_addr_spec(match.group("addr"), field)
    if "<" in text or ">" in text:
        raise InvalidInput(field, f"address {text!r} has unbalanced angle brackets", fix=_ADDRESS_FIX)
    return "", _check_addr_spec(text, field)


def format_address(name: str, address: str) -> str:
    """``Name <a@b.c>`` (quoted/encoded as needed) or the bare address when there is no name."""
    return str(_to_header_address(name, address, "address"))


def _to_header_address(name: str, address: str, field: str) -> Address:
    local, _, domain = address.rpartition("@")
    try:
        return Address(display_name=name, username=local.strip('"') if local.startswith('"') else local, domain=domain)
    except (ValueError, IndexError) as exc:  # headerregistry re-parses; belt and braces
        raise InvalidInput(field, f"address {address!r} is not valid: {exc}", fix=_ADDRESS_FIX) from None


def _address_list(value: AddressInput | Iterable[AddressInput] | None, field: str) -> list[tuple[str, str]]:
    if value is None:
        return []
    if isinstance(value, str):
        return [parse_address(value, f"{field}[0]")]
    if (
        isinstance(value, tuple)
        and len(value) == 2
        and all(isinstance(v, str) for v in value)
        and "@" in value[1]
        and "@" not in value[0]
    ):
        return [parse_address((str(value[0]), str(value[1])), f"{field}[0]")]  # one (name, address) pair
    if isinstance(value, Mapping) or not isinstance(value, Iterable):
        raise InvalidInput(
            field, f"must be an address or a list of addresses, not {type(value).__name__}", fix=_ADDRESS_FIX
        )
    return [parse_address(item, f"{field}[{i}]") for i, item in enumerate(value)]


def _normalise_message_id(value: str, field: str) -> str:
    _check_line(value, field, what="Message-ID")
    inner = value.strip()
    if inner.startswith("<") and inner.endswith(">"):
        inner = inner[1:-1]
    if not inner or any(c.isspace() or c in "<>" for c in inner) or "@" not in inner:
        raise InvalidInput(
            field,
            f"{value!r} is not a Message-ID",
            fix='use the form "<unique@domain>" (email.utils.make_msgid() makes one)',
        )
    return f"<{inner}>"


def _format_date(value: datetime | str, field: str) -> str:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.astimezone()
        return format_datetime(value)
    _check_line(value, field, what="date")
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        parsed = None
    if parsed is None:
        raise InvalidInput(
            field,
            f"{value!r} is not an RFC 5322 date",
            fix="pass a datetime, or a string like 'Mon, 20 Jul 2026 16:16:47 +1200'",
        )
    return value.strip()


def _check_attachment(item: object, field: str) -> tuple[str, str, str, bytes, str | None]:
    if not isinstance(item, (tuple, list)) or len(item) not in (3, 4):
        raise InvalidInput(field, "must be (filename, content_type, data[, content_id])", fix="pass a 3- or 4-tuple")
    filename, content_type, data = item[0], item[1], item[2]
    content_id = item[3] if len(item) == 4 else None
    _check_line(filename, f"{field}.filename", what="filename")
    if not filename.strip():
        raise InvalidInput(f"{field}.filename", "is empty", fix="give the attachment a file name")
    _check_line(content_type, f"{field}.content_type", what="content type")
    if not _CONTENT_TYPE.match(content_type.strip()):
        raise InvalidInput(
            f"{field}.content_type",
            f"{content_type!r} is not a MIME type",
            fix='use "type/subtype", e.g. "application/pdf"',
        )
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise InvalidInput(
            f"{field}.data",
            f"must be bytes, not {type(data).__name__}",
            fix="read the file in binary mode ('rb') or .encode() text",
        )
    if content_id is not None:
        _check_line(content_id, f"{field}.content_id", what="content id")
        content_id = content_id.strip().strip("<>")
        if not content_id or any(c.isspace() for c in content_id):
            raise InvalidInput(f"{field}.content_id", "is empty or contains spaces", fix='use a token such as "logo"')
    maintype, _, subtype = content_type.strip().lower().partition("/")
    return filename.strip(), maintype, subtype, bytes(data), content_id


def compose(
    *,
    sender: AddressInput,
    to: AddressInput | Sequence[AddressInput] | None,
    subject: str,
    text: str | None = None,
    html: str | None = None,
    cc: AddressInput | Sequence[AddressInput] | None = (),
    bcc: AddressInput | Sequence[AddressInput] | None = (),
    reply_to: AddressInput | Sequence[AddressInput] | None = (),
    headers: Mapping[str, str] | None = None,
    message_id: str | None = None,
    date: datetime | str | None = None,
    attachments: Sequence[Attachment] = (),
) -> EmailMessage:
    """Build a checked `EmailMessage` (text and/or HTML, attachments, Message-ID and Date set).

    Inline attachments (those with a content_id) go into a multipart/related beside the HTML.
    A ``Message-ID`` in `headers` is used as `message_id`. Raises `InvalidInput` on bad input.
    """
    from_name, from_addr = parse_address(sender, "sender")
    to_list = _address_list(to, "to")
    cc_list = _address_list(cc, "cc")
    bcc_list = _address_list(bcc, "bcc")
    reply_list = _address_list(reply_to, "reply_to")
    if not (to_list or cc_list or bcc_list):
        raise InvalidInput("to", "no recipient given", fix="give at least one address in to=, cc= or bcc=")
    _check_line(subject, "subject", what="subject")
    if text is not None and not isinstance(text, str):
        raise InvalidInput("text", f"must be str, not {type(text).__name__}", fix="pass the plain-text body as str")
    if html is not None and not isinstance(html, str):
        raise InvalidInput("html", f"must be str, not {type(html).__name__}", fix="pass the HTML body as str")

    extra: list[tuple[str, str]] = []
    if headers is not None:
        if not isinstance(headers, Mapping):
            raise InvalidInput(
                "headers",
                f"must be a mapping, not {type(headers).__name__}",
                fix='pass a dict like {"X-Campaign": "spring"}',
            )
        for name, value in headers.items():
            field = f"headers.{name}"
            if not isinstance(name, str) or not _HEADER_NAME.match(name):
                raise InvalidInput(
                    field,
                    "is not a valid header name",
                    fix="use printable ASCII without spaces or ':' (e.g. X-Campaign)",
                )
            reserved = RESERVED_HEADERS.get(name.lower())
            if reserved:
                raise InvalidInput(field, "may not be set through headers=", fix=f"use {reserved} instead")
            _check_line(value, field, what="header value")
            if name.lower() == "message-id":
                if message_id is not None:
                    raise InvalidInput(
                        field, "given twice (message_id= and headers=)", fix="pass it once, as message_id="
                    )
                message_id = value
                continue
            extra.append((name, value))

    files = [_check_attachment(item, f"attachments[{i}]") for i, item in enumerate(attachments)]

    msgid = (
        _normalise_message_id(message_id, "message_id")
        if message_id is not None
        else make_msgid(domain=from_addr.rpartition("@")[2])
    )
    date_text = _format_date(date, "date") if date is not None else formatdate(localtime=True)

    every = [from_addr] + [a for _, a in to_list + cc_list + bcc_list + reply_list]
    smtputf8 = any(not a.isascii() for a in every)
    msg = EmailMessage(policy=email_policy.SMTPUTF8 if smtputf8 else email_policy.SMTP)
    msg["From"] = _to_header_address(from_name, from_addr, "sender")
    for header, items, field in (
        ("To", to_list, "to"),
        ("Cc", cc_list, "cc"),
        ("Bcc", bcc_list, "bcc"),
        ("Reply-To", reply_list, "reply_to"),
    ):
        if items:
            msg[header] = [_to_header_address(n, a, f"{field}[{i}]") for i, (n, a) in enumerate(items)]
    msg["Subject"] = subject
    msg["Date"] = date_text
    msg["Message-ID"] = msgid
    for name, value in extra:
        msg[name] = value

    inline = [f for f in files if f[4] is not None]
    regular = [f for f in files if f[4] is None]
    html_part: EmailMessage | None
    if html is not None and text is not None:
        msg.set_content(text)
        msg.add_alternative(html, subtype="html")
        html_part = cast(EmailMessage, msg.get_payload(1))
    elif html is not None:
        msg.set_content(html, subtype="html")
        html_part = msg
    else:
        msg.set_content(text or "")
        html_part = None
    for filename, maintype, subtype, data, cid in inline:
        if html_part is not None:
            html_part.add_related(data, maintype, subtype, cid=f"<{cid}>", filename=filename, disposition="inline")
        else:
            msg.add_attachment(data, maintype, subtype, cid=f"<{cid}>", filename=filename, disposition="inline")
    for filename, maintype, subtype, data, _ in regular:
        msg.add_attachment(data, maintype, subtype, filename=filename)
    return msg
