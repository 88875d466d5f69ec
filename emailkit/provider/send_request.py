"""A send request checked and built into its MIME message, before anything is sent or stored.

`build_message(grant, req, ...)` applies the provider's own rules — a template or a body, the
message replied to (its threading headers, its subject), the sender as the grant, custom headers
the provider does not set itself, attachments (base64, size, inline or not), the recipient limit —
and leaves the rest to `emailkit.message.compose`, the one MIME builder, whose refusals are
renamed to the request's field names (``sender`` → ``from[0].name``, ``to[0]`` → ``to[0].email``).
Every refusal is a 400 (or a 404 for an unknown template or parent) naming the field.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Awaitable, Callable
from email.message import EmailMessage
from typing import Any

from emailkit.errors import InvalidInput
from emailkit.message import RESERVED_HEADERS, compose
from emailkit.provider.models import SendRequest
from emailkit.provider.problems import ProviderError
from emailkit.provider.store import Grant
from emailkit.provider.templating import render
from emailkit.threads import reply_headers

__all__ = ["PROVIDER_HEADERS", "build_message"]

#: Headers the provider (or the mail transport) sets itself, which `compose` would accept
#: through ``headers=``: custom_headers may not override them either. compose refuses the
#: rest itself (From, To, Subject, Date, Content-Type, ... — `emailkit.message.RESERVED_HEADERS`).
PROVIDER_HEADERS = {
    "message-id", "in-reply-to", "references", "sender", "return-path", "received", "content-disposition",
    "resent-from", "resent-to", "resent-cc", "resent-bcc", "resent-date", "resent-message-id", "resent-sender",
    "dkim-signature",
}
#: A longer name cannot be folded onto a 78-character line with its value (compose has no limit).
_MAX_HEADER_NAME = 76


def _invalid(exc: InvalidInput, field: str | None = None) -> ProviderError:
    return ProviderError(400, "invalid_request_error", f"{field or exc.field}: {exc.problem}; {exc.fix}",
                         field=field or exc.field)


async def build_message(grant: Grant, req: SendRequest, *, template: Callable[[str, str], dict[str, Any] | None],
                        find_parent: Callable[..., Awaitable[dict[str, Any]]],
                        max_recipients: int) -> tuple[EmailMessage, list[str], bool, str]:
    """Check `req` for `grant` and build its MIME message; returns (message, recipients, is_html, body).

    `template(grant_id, template_id)` is the stored template or None; `find_parent(grant, message_id,
    field=...)` the message replied to (or a 404 naming `field`).
    """
    subject, body, is_plaintext = req.subject, req.body, req.is_plaintext
    if req.template is not None:
        if req.body is not None:
            raise ProviderError(400, "invalid_request_error",
                                "give either body or template, not both; drop body to send the template",
                                field="body")
        tpl = template(grant.id, req.template.id)
        if tpl is None:
            raise ProviderError(404, "not_found_error", f"no template {req.template.id!r} in this grant: "
                                "create it with POST …/templates", field="template.id")
        try:
            t_subject, body = render(tpl["subject"], tpl["body"], bool(tpl["is_plaintext"]), req.template.variables)
        except InvalidInput as exc:
            raise _invalid(exc) from None
        subject = subject if subject is not None else t_subject
        is_plaintext = bool(tpl["is_plaintext"])

    threading: dict[str, str] = {}
    if req.reply_to_message_id is not None:
        parent = await find_parent(grant, req.reply_to_message_id, field="reply_to_message_id")
        threading = reply_headers(json.loads(parent["headers_json"]) or {
            "Message-ID": parent["message_id"], "Subject": parent["subject"]})
        reply_subject = threading.pop("Subject")
        if subject is None:
            subject = reply_subject

    name = ""
    if req.from_ is not None:
        if len(req.from_) != 1:
            raise ProviderError(400, "invalid_request_error", "from: give exactly one sender (the grant's address)",
                                field="from")
        sender = req.from_[0]
        if sender.email.strip().casefold() != grant.email.casefold():
            raise ProviderError(400, "invalid_request_error",
                                f"from[0].email: this grant sends as {grant.email} only; omit 'from' or use that "
                                "address", field="from[0].email")
        name = sender.name or ""

    # compose() checks the names and values (syntax, reserved headers, line breaks); only
    # what is the provider's own is checked here.
    custom: dict[str, str] = {}
    for i, h in enumerate(req.custom_headers):
        field = f"custom_headers[{i}].name"
        if h.name.casefold() in PROVIDER_HEADERS:
            hint = "use reply_to_message_id" if h.name.casefold() in ("in-reply-to", "references") else \
                "the provider sets it"
            raise ProviderError(400, "invalid_request_error",
                                f"{field}: {h.name} is set by the API and cannot be overridden; {hint}",
                                field=field)
        if len(h.name) > _MAX_HEADER_NAME:
            raise ProviderError(400, "invalid_request_error", f"{field}: the header name is longer than "
                                f"{_MAX_HEADER_NAME} characters; use a shorter name", field=field)
        if h.name.casefold() in {k.casefold() for k in custom}:
            raise ProviderError(400, "invalid_request_error", f"{field}: {h.name} is given twice; give each "
                                "header once", field=field)
        custom[h.name] = h.value

    attachments = []
    for i, a in enumerate(req.attachments):
        try:
            data = base64.b64decode(a.content, validate=True)
        except (binascii.Error, ValueError):
            raise ProviderError(400, "invalid_request_error", f"attachments[{i}].content: not valid base64; "
                                "encode the file with standard base64", field=f"attachments[{i}].content") from None
        if a.size is not None and a.size != len(data):
            raise ProviderError(400, "invalid_request_error", f"attachments[{i}].size: {a.size}, but content "
                                f"decodes to {len(data)} bytes; give the file's size or omit size",
                                field=f"attachments[{i}].size")
        inline = _inline(i, a.content_id, a.is_inline, a.content_disposition)
        attachments.append((a.filename, a.content_type, data, a.content_id) if inline
                           else (a.filename, a.content_type, data))

    count = len(req.to) + len(req.cc) + len(req.bcc)
    if count > max_recipients:
        raise ProviderError(400, "invalid_request_error", f"to/cc/bcc: {count} recipients; at most "
                            f"{max_recipients} per message: split the send", field="to")

    body = body if body is not None else ""
    groups = {k: [(p.name or "", p.email) for p in getattr(req, k)] for k in ("to", "cc", "bcc", "reply_to")}
    try:
        message = compose(
            sender=(name, grant.email), to=groups["to"], cc=groups["cc"], bcc=groups["bcc"],
            reply_to=groups["reply_to"], subject=subject if subject is not None else "",
            text=body if is_plaintext else None, html=None if is_plaintext else body,
            headers={**custom, **threading}, attachments=attachments,
        )
    except InvalidInput as exc:
        raise _compose_error(exc, req) from None
    recipients = [email for k in ("to", "cc", "bcc") for _, email in groups[k]]
    return message, recipients, not is_plaintext, body


def _inline(index: int, content_id: str | None, is_inline: bool | None, disposition: str | None) -> bool:
    """Whether attachment `index` is an inline part: content_id, is_inline and content_disposition agree."""
    wanted = {True: "inline", False: "attachment", None: None}[is_inline]
    if wanted is not None and disposition is not None and wanted != disposition:
        raise ProviderError(400, "invalid_request_error", f"attachments[{index}]: is_inline is {is_inline} but "
                            f"content_disposition is {disposition!r}; give one of them, or make them agree",
                            field=f"attachments[{index}].is_inline")
    wanted = wanted or disposition
    if wanted == "inline" and not content_id:
        raise ProviderError(400, "invalid_request_error", f"attachments[{index}].content_id: an inline part "
                            "needs a content_id for the HTML to reference (cid:<content_id>); set one",
                            field=f"attachments[{index}].content_id")
    if wanted == "attachment" and content_id:
        raise ProviderError(400, "invalid_request_error", f"attachments[{index}].content_id: a content_id makes "
                            "the file an inline part, but it is marked as an attachment; drop content_id, or "
                            "set is_inline: true", field=f"attachments[{index}].content_id")
    return bool(content_id)


def _compose_error(exc: InvalidInput, req: SendRequest) -> ProviderError:
    """compose()'s refusal as the API's 400, naming the request's field."""
    if exc.field.startswith("headers."):
        name = exc.field.split(".", 1)[1]
        index = next((i for i, h in enumerate(req.custom_headers) if h.name == name), None)
        if index is not None:
            field = f"custom_headers[{index}].name"
            if name.lower() in RESERVED_HEADERS:  # compose's fix names its own argument, not the API's
                return ProviderError(400, "invalid_request_error", f"{field}: {name} is set by the API and "
                                     "cannot be overridden; set it through its own field", field=field)
            if "name" in exc.problem:  # compose says which part is wrong only in its wording
                return _invalid(exc, field)
    return _invalid(exc, _api_field(exc.field, req))


def _api_field(field: str, req: SendRequest) -> str:
    """compose()'s field names → the request's (``sender`` → ``from[0].email``, …)."""
    m = re.match(r"^(to|cc|bcc|reply_to)\[(\d+)\]$", field)
    if m:
        return f"{m.group(1)}[{m.group(2)}].email"
    if field == "sender":
        return "from[0].name"
    if field.startswith("headers."):
        name = field.split(".", 1)[1]
        for i, h in enumerate(req.custom_headers):
            if h.name == name:
                return f"custom_headers[{i}].value"
        return "reply_to_message_id"
    if field.startswith("attachments["):
        return field.replace(".data", ".content")
    if field in ("text", "html"):
        return "body"
    return field
