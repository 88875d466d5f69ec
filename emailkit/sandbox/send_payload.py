"""The JSON body of ``POST /api/v1/send`` checked as Mailpit checks it, and made into the message Mailpit stores.

`prepare_send(payload)` takes the decoded JSON object (keys in any case, as Go matches them) and
returns an `OutgoingMessage`: the bytes Mailpit's MIME builder writes (`send_builder.build_message`),
the envelope sender and the recipients. It knows no HTTP, so it is tested without a server
(tests/unit/test_send_payload.py); the route (`emailkit.sandbox.routes.send`) stores the result.

Every refusal is a `FieldError` in Mailpit's words, naming the field (``invalid To address: x``,
``cannot overwrite header: "Subject"``, ``invalid JSON: field "Attachments[0].Content" must be a
string``), and ``.field`` says which one. Two checks are the project's own: every field goes through
`emailkit.message.compose` (the one place input is checked; CR/LF in a header, a bad address), and at
most `emailkit.limits.RECIPIENTS_MAX` recipients (SMTP's RCPT limit, and the provider's).
"""

from __future__ import annotations

import base64
import binascii
import mimetypes
from collections.abc import Mapping
from dataclasses import dataclass
from email import errors
from email.headerregistry import Address
from email.utils import getaddresses
from typing import Any

from emailkit.errors import InvalidInput
from emailkit.limits import HEADER_MAX_FIELDS, RECIPIENTS_MAX
from emailkit.message import compose, parse_address
from emailkit.sandbox.json_input import FieldError, fold, str_list, string, type_error
from emailkit.sandbox.send_builder import build_message
from emailkit.sandbox.store import new_id

__all__ = ["SEND_FIELDS", "OutgoingMessage", "prepare_send"]

#: The fields of Mailpit's send request (`apiv1.SendRequest`), in its order.
SEND_FIELDS = ("From", "To", "Cc", "Bcc", "ReplyTo", "Subject", "Text", "HTML", "Attachments", "Tags", "Headers")
_RESTRICTED_HEADERS = ("To", "From", "Cc", "Bcc", "Reply-To", "Date", "Subject", "Content-Type", "Mime-Version")


@dataclass(frozen=True)
class OutgoingMessage:
    """What ``/api/v1/send`` stores: the message's bytes, the envelope sender, every recipient (To, Cc, Bcc)."""

    raw: bytes
    sender: str
    recipients: list[str]


def prepare_send(payload: Mapping[str, Any]) -> OutgoingMessage:
    """`payload` (Mailpit's send request, decoded) checked and written as Mailpit writes it; `FieldError` if not."""
    data = fold(payload, SEND_FIELDS)
    from_name, from_email, quoted_from = _sender(data.get("From"))
    to = _addresses(data, "To", "To")
    cc = _addresses(data, "Cc", "Cc")
    bcc = _addresses(data, "Bcc", "Bcc")
    reply_to = _addresses(data, "ReplyTo", "Reply-To")
    headers, message_id = _headers(data)
    files, parts = _attachments(data.get("Attachments"))
    text = string(data.get("Text"), "Text")
    html = string(data.get("HTML"), "HTML")
    subject = string(data.get("Subject"), "Subject")  # checked before compose(): a FieldError is a ValueError
    try:
        message = compose(
            sender=(from_name, from_email if quoted_from is None else "quoted-local-part@sender.invalid"),
            to=to,
            cc=cc,
            bcc=bcc,
            reply_to=reply_to,
            subject=subject,
            text=text if (text or not html) else None,
            html=html or None,
            headers=headers,
            message_id=message_id if message_id is not None else f"<{new_id()}@mailpit>",
            attachments=files,
        )
        message.as_bytes(policy=message.policy)  # compose() checked every field: now write it as Mailpit does
        sent_headers = dict(headers) if message_id is None else {**headers, "Message-ID": message_id}
        raw = build_message(
            from_name=from_name,
            from_email=from_email if quoted_from is None else f"{quoted_from.username}@{quoted_from.domain}",
            to=to, cc=cc, reply_to=reply_to, subject=subject,
            text=text, html=html, headers=sent_headers, attachments=parts,
        )
    except InvalidInput as exc:
        raise FieldError(str(exc), exc.field) from None
    except ValueError as exc:
        # The email package refuses what compose() let through, e.g. U+0085/U+2028 (line
        # breaks to Python) in a header value: the caller's input, so 400 rather than 500.
        raise FieldError(f"invalid message: {exc}") from None
    recipients = [email for _, email in to + cc + bcc]
    if len(recipients) > RECIPIENTS_MAX:
        raise FieldError(f"too many recipients: {len(recipients)} in To, Cc and Bcc (at most {RECIPIENTS_MAX} "
                         "per message; send several messages)", "To")
    return OutgoingMessage(raw, from_email, recipients)


def _sender(value: Any) -> tuple[str, str, Address | None]:
    """From.Name, From.Email as the address Mailpit keeps, and the address when its local part is quoted."""
    if value is not None and not isinstance(value, dict):
        raise type_error("From", 'an object {"Email": ..., "Name": ...}')
    sender = fold(value or {}, ("Email", "Name"))
    from_email = string(sender.get("Email"), "From.Email")
    from_name = string(sender.get("Name"), "From.Name")
    try:
        # also takes "Name <a@b.c>", as Mailpit does, and like Mailpit keeps only the address (the
        # name comes from From.Name alone)
        _, from_email = parse_address(from_email, "From")
    except InvalidInput:
        # Mailpit parses From.Email as an address list entry: "API <api@example.com>" is accepted
        parsed_from = getaddresses([from_email]) if "<" in from_email else []
        if len(parsed_from) == 1 and "@" in parsed_from[0][1]:
            return from_name, parsed_from[0][1], None
        # and a quoted local part with spaces ("odd user"@example.com), which the project's own
        # address check refuses: the message is composed around it (see prepare_send)
        quoted_from = _quoted_address(from_email)
        if quoted_from is None:
            raise FieldError(f"invalid From address: {from_email}", "From.Email") from None
        return from_name, from_email, quoted_from
    return from_name, from_email, None


def _addresses(data: Mapping[str, Any], key: str, label: str) -> list[tuple[str, str]]:
    """To, Cc, ReplyTo: objects ``{"Email", "Name"}``; Bcc: plain strings (Mailpit's shapes)."""
    items = data.get(key)
    if items is None:
        return []
    if not isinstance(items, list):
        raise type_error(key, "an array")
    result = []
    for i, item in enumerate(items):
        if key == "Bcc":
            email, name = string(item, f"{key}[{i}]"), ""
        else:
            if not isinstance(item, dict):
                raise type_error(f"{key}[{i}]", 'an object {"Email": ..., "Name": ...}')
            folded = fold(item, ("Email", "Name"))
            email = string(folded.get("Email"), f"{key}[{i}].Email")
            name = string(folded.get("Name"), f"{key}[{i}].Name")
        try:
            parse_address(email, f"{key}[{i}]")
        except InvalidInput:
            raise FieldError(f"invalid {label} address: {email}", f"{key}[{i}]") from None
        result.append((name, email))
    return result


def _headers(data: Mapping[str, Any]) -> tuple[dict[str, str], str | None]:
    """The extra headers (X-Tags from Tags first) and a Message-ID given among them."""
    restricted = list(_RESTRICTED_HEADERS)
    headers_in = data.get("Headers") or {}
    if not isinstance(headers_in, dict):
        raise type_error("Headers", 'an object {"Name": "value"}')
    if len(headers_in) > HEADER_MAX_FIELDS:
        raise FieldError(f"too many headers: {len(headers_in)} in Headers (at most {HEADER_MAX_FIELDS} header "
                         "fields per message)", "Headers")
    headers: dict[str, str] = {}
    tags = str_list(data.get("Tags"), "Tags")
    if tags:
        headers["X-Tags"] = ", ".join(tags)
        restricted.append("X-Tags")
    lowered = {h.lower() for h in restricted}
    message_id = None
    for key, value in headers_in.items():
        if key.lower() in lowered:
            raise FieldError(f'cannot overwrite header: "{key}"', f"Headers.{key}")
        value = string(value, f"Headers.{key}")
        if key.lower() == "message-id":
            message_id = value
        else:
            headers[key] = value
    return headers, message_id


def _attachments(value: Any) -> tuple[list[tuple[Any, ...]], list[tuple[str, str, bytes, str]]]:
    """The attachments for compose() (a type guessed when missing) and as given, for Mailpit's builder."""
    files: list[tuple[Any, ...]] = []
    parts: list[tuple[str, str, bytes, str]] = []  # as given: Mailpit's builder sniffs a missing type
    raw_attachments = value or []
    if not isinstance(raw_attachments, list):
        raise type_error("Attachments", "an array")
    for i, item in enumerate(raw_attachments):
        if not isinstance(item, dict):
            raise type_error(f"Attachments[{i}]", "an object")
        att = fold(item, ("Content", "Filename", "ContentType", "ContentID"))
        filename = string(att.get("Filename"), f"Attachments[{i}].Filename")
        content = string(att.get("Content"), f"Attachments[{i}].Content").split(",")[-1]
        try:
            payload = base64.b64decode(content, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise FieldError(f'error decoding base64 attachment "{filename}": {exc}',
                             f"Attachments[{i}].Content") from None
        given_type = string(att.get("ContentType"), f"Attachments[{i}].ContentType")
        ctype = given_type or mimetypes.guess_type(filename)[0] or "application/octet-stream"
        cid = string(att.get("ContentID"), f"Attachments[{i}].ContentID")
        files.append((filename, ctype, payload, cid) if cid else (filename, ctype, payload))
        parts.append((filename, given_type, payload, cid))
    return files, parts


def _quoted_address(value: str) -> Address | None:
    """`value` as an addr-spec with a quoted local part (``"odd user"@example.com``), else None."""
    if not value.startswith('"'):
        return None
    try:
        address = Address(addr_spec=value)
    except (ValueError, IndexError, errors.HeaderParseError):
        return None
    return address if address.username and address.domain else None
