"""What the provider does, apart from HTTP: authorise, send, read, thread, notify.

`Service` ties the pieces together — the store, the read side (`Mailbox`), the one SMTP
session (`Outbound`), webhooks (`Dispatcher`), the rate limit and the OAuth server — and
`emailkit.provider.app` puts HTTP in front of it. Input is checked completely before
anything is sent or stored: a send that fails validation leaves no trace.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import json
import logging
import math
import re
import time
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any, Protocol

import aiosmtplib

from emailkit.errors import InvalidInput, MailpitError, SMTPSendError
from emailkit.message import RESERVED_HEADERS, compose
from emailkit.provider.problems import ProviderError
from emailkit.provider.fault_injection import Faults
from emailkit.provider.mailbox import Mailbox, attachment_parts, snippet_of
from emailkit.provider.models import SendRequest
from emailkit.provider.outbound import Outbound
from emailkit.provider.ratelimit import TokenBucket
from emailkit.provider.store import Grant, Store
from emailkit.provider.templating import render
from emailkit.provider.webhooks import Dispatcher
from emailkit.smtp import SendResult
from emailkit.threads import header, message_ids, references, reply_headers

__all__ = ["Access", "Service", "TokenChecker"]

log = logging.getLogger(__name__)

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


class TokenChecker(Protocol):
    def verify_access_token(self, token: str) -> Any: ...


@dataclass(frozen=True)
class Access:
    """Who is calling: with the API key (any grant) or with a token for one grant."""

    grant: Grant
    via: str  # "api_key" | "token"
    scopes: frozenset[str] = frozenset()


def _unauthorized(message: str, *, error: str | None = None) -> ProviderError:
    challenge = 'Bearer realm="emailkit"' + (f', error="{error}"' if error else "")
    return ProviderError(401, "unauthorized", message, headers={"WWW-Authenticate": challenge})


def _invalid(exc: InvalidInput, field: str | None = None) -> ProviderError:
    return ProviderError(400, "invalid_request_error", f"{field or exc.field}: {exc.problem}; {exc.fix}",
                         field=field or exc.field)


class Service:
    """The provider's logic; one per `Provider`, used on its event loop."""

    def __init__(self, *, store: Store, mailbox: Mailbox, outbound: Outbound, dispatcher: Dispatcher,
                 limiter: TokenBucket, oauth: TokenChecker | None, api_key: str,
                 max_recipients: int = 100, idempotency_ttl: float = 3600.0,
                 poll_interval: float | None = 1.0, faults: Faults | None = None) -> None:
        self.store = store
        self.mailbox = mailbox
        self.outbound = outbound
        self.dispatcher = dispatcher
        self.limiter = limiter
        self.oauth = oauth
        self.api_key = api_key
        self.max_recipients = max_recipients
        self.idempotency_ttl = idempotency_ttl
        self.poll_interval = poll_interval
        self.inflight: set[tuple[str, str]] = set()
        #: Injected faults for sends (see emailkit.provider.fault_injection); off by default.
        self.faults = faults or Faults()
        #: Sends answered with an injected fault so far.
        self.faults_injected = 0
        self._poller: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ who may do what

    def is_api_key(self, token: str) -> bool:
        return hmac.compare_digest(token.encode("utf-8", "replace"), self.api_key.encode("utf-8"))

    def require_api_key(self, token: str | None) -> None:
        """Application-level endpoints (webhooks, grants) take the API key only."""
        if not token:
            raise _unauthorized("send the provider's API key as 'Authorization: Bearer <API key>'")
        if self.is_api_key(token):
            return
        if self.oauth is not None and self.oauth.verify_access_token(token) is not None:
            raise ProviderError(403, "forbidden",
                                "this endpoint needs the application's API key; a grant's access token cannot use it")
        raise _unauthorized("the credentials are not valid: use the provider's API key", error="invalid_token")

    def authorize(self, token: str | None, grant_ref: str, scope: str) -> Access:
        """Resolve the path's grant for these credentials, or raise 401/403/404/429."""
        if not token:
            raise _unauthorized("send 'Authorization: Bearer <API key or access token>'")
        if self.is_api_key(token):
            if grant_ref == "me":
                raise ProviderError(400, "invalid_request_error",
                                    "grant_id 'me' works with an access token; with the API key name the grant "
                                    "by its ID or email address", field="grant_id")
            grant = self.store.grant(grant_ref)
            if grant is None:
                raise ProviderError(404, "not_found_error",
                                    f"no grant {grant_ref!r}: create it with POST /v3/grants (or Provider.create_grant)",
                                    field="grant_id")
            access = Access(grant, "api_key")
        else:
            info = self.oauth.verify_access_token(token) if self.oauth is not None else None
            if info is None:
                raise _unauthorized("the access token is unknown, expired or revoked: refresh it or sign in again",
                                    error="invalid_token")
            grant = self.store.grant(info.grant_id)
            if grant is None:
                raise _unauthorized("the token's grant no longer exists", error="invalid_token")
            if grant_ref not in ("me", grant.id) and grant_ref.casefold() != grant.email.casefold():
                raise ProviderError(403, "forbidden", "this access token belongs to another grant; use grant_id 'me' "
                                    "or the token's own grant", field="grant_id")
            if scope not in info.scopes:
                raise ProviderError(
                    403, "insufficient_scope",
                    f"the access token lacks the {scope!r} scope; ask for it in the authorization request",
                    headers={"WWW-Authenticate": f'Bearer realm="emailkit", error="insufficient_scope", scope="{scope}"'})
            access = Access(grant, "token", frozenset(info.scopes))
        wait = self.limiter.take(access.grant.id)
        if wait > 0:
            seconds = max(1, math.ceil(wait))
            raise ProviderError(429, "rate_limit_error",
                                f"rate limit of {self.limiter.rate:g} requests/s for this grant exceeded; "
                                f"retry after {seconds} s",
                                headers={"Retry-After": str(seconds), "X-RateLimit-Limit": f"{self.limiter.rate:g}"})
        return access

    def inject_fault(self) -> None:
        """Raise the injected fault for this send, at the configured probability (nothing is sent)."""
        error = self.faults.roll()
        if error is not None:
            self.faults_injected += 1
            raise error

    # ------------------------------------------------------------------ reading

    async def sync(self, grant: Grant) -> None:
        """Index new mail for `grant` from Mailpit and announce what arrived (message.created)."""
        try:
            arrived = await self.mailbox.sync(grant)
        except MailpitError as exc:
            raise ProviderError(503, "provider_unavailable",
                                f"Mailpit did not answer as expected: {exc.message}; retry later",
                                headers={"Retry-After": "1"}) from exc
        if arrived and self.store.webhooks("message.created"):
            for mid in arrived:
                row = self.store.message(grant.id, mid)
                if row is not None:
                    self.dispatcher.emit("message.created", grant.id, await self.message_json(grant, row))

    async def message_json(self, grant: Grant, row: dict[str, Any], *, include_headers: bool = False,
                           body: dict[str, Any] | None = None) -> dict[str, Any]:
        """A Nylas-shaped message object, as `grant` sees it."""
        if body is None:
            try:
                body = await self.mailbox.body(row["id"])
            except MailpitError as exc:
                raise ProviderError(503, "provider_unavailable", f"could not read the message body from Mailpit: "
                                    f"{exc.message}", headers={"Retry-After": "1"}) from exc
        bcc = json.loads(row["bcc_json"])
        if not row["sent"]:  # recipients do not see the Bcc list (only themselves, if they were Bcc'd)
            bcc = [b for b in bcc if b["email"].casefold() == grant.email.casefold()]
        folders = (["SENT"] if row["sent"] else []) + (["INBOX"] if row["received"] else [])
        out: dict[str, Any] = {
            "id": row["id"],
            "grant_id": grant.id,
            "object": "message",
            "thread_id": row["thread_id"],
            "message_id": row["message_id"],
            "subject": row["subject"],
            "from": json.loads(row["from_json"]),
            "to": json.loads(row["to_json"]),
            "cc": json.loads(row["cc_json"]),
            "bcc": bcc,
            "reply_to": json.loads(row["reply_to_json"]),
            "date": int(row["date"]),
            "created_at": int(row["created"]),
            "unread": bool(row["unread"]),
            "starred": bool(row["starred"]),
            "snippet": row["snippet"],
            "body": body["body"],
            "attachments": body["attachments"],
            "folders": folders,
        }
        if include_headers:
            headers = json.loads(row["headers_json"])
            out["headers"] = [{"name": k, "value": v} for k, values in headers.items()
                              for v in (values if isinstance(values, list) else [values])]
        return out

    async def thread_json(self, grant: Grant, thread_id: str) -> dict[str, Any] | None:
        rows = self.store.thread_messages(grant.id, thread_id)
        if not rows:
            return None
        participants: dict[str, dict[str, str]] = {}
        for r in rows:
            for key in ("from_json", "to_json", "cc_json"):
                for person in json.loads(r[key]):
                    participants.setdefault(person["email"].casefold(), person)
        latest = rows[-1]
        received = [r["created"] for r in rows if r["received"]]
        sent = [r["created"] for r in rows if r["sent"]]
        return {
            "id": thread_id,
            "grant_id": grant.id,
            "object": "thread",
            "subject": rows[0]["subject"],
            "snippet": latest["snippet"],
            "participants": list(participants.values()),
            "message_ids": [r["id"] for r in rows],
            "draft_ids": [],
            "folders": sorted({f for r in rows for f in (["SENT"] if r["sent"] else []) + (["INBOX"] if r["received"] else [])}),
            "has_attachments": any(r["attachments"] for r in rows),
            "has_drafts": False,
            "starred": any(r["starred"] for r in rows),
            "unread": any(r["unread"] for r in rows),
            "earliest_message_date": int(rows[0]["date"]),
            "latest_message_received_date": int(max(received)) if received else None,
            "latest_message_sent_date": int(max(sent)) if sent else None,
            "latest_draft_or_message": await self.message_json(grant, latest),
        }

    async def find_message(self, grant: Grant, message_id: str, field: str = "message_id") -> dict[str, Any]:
        """The grant's message `message_id` (syncing once if it is not indexed yet), or 404."""
        row = self.store.message(grant.id, message_id)
        if row is None:
            await self.sync(grant)
            row = self.store.message(grant.id, message_id)
        if row is None:
            raise ProviderError(404, "not_found_error",
                                f"no message {message_id!r} in grant {grant.email}: list them with GET …/messages",
                                field=field)
        return row

    # ------------------------------------------------------------------ sending

    async def build(self, grant: Grant, req: SendRequest) -> tuple[EmailMessage, list[str], bool, str]:
        """Check the request and build the MIME message; returns (message, recipients, is_html, body)."""
        subject, body, is_plaintext = req.subject, req.body, req.is_plaintext
        if req.template is not None:
            if req.body is not None:
                raise ProviderError(400, "invalid_request_error",
                                    "give either body or template, not both; drop body to send the template",
                                    field="body")
            tpl = self.store.template(grant.id, req.template.id)
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
            parent = await self.find_message(grant, req.reply_to_message_id, field="reply_to_message_id")
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
            inline = self._inline(i, a.content_id, a.is_inline, a.content_disposition)
            attachments.append((a.filename, a.content_type, data, a.content_id) if inline
                               else (a.filename, a.content_type, data))

        count = len(req.to) + len(req.cc) + len(req.bcc)
        if count > self.max_recipients:
            raise ProviderError(400, "invalid_request_error", f"to/cc/bcc: {count} recipients; at most "
                                f"{self.max_recipients} per message: split the send", field="to")

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
            raise self._compose_error(exc, req) from None
        recipients = [email for k in ("to", "cc", "bcc") for _, email in groups[k]]
        return message, recipients, not is_plaintext, body

    @staticmethod
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

    @classmethod
    def _compose_error(cls, exc: InvalidInput, req: SendRequest) -> ProviderError:
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
        return _invalid(exc, cls._api_field(exc.field, req))

    @staticmethod
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

    async def send(self, grant: Grant, req: SendRequest, request_id: str, *,
                   include_headers: bool = False) -> dict[str, Any]:
        """Check, build, deliver over SMTP, index, announce; returns the sent message's JSON."""
        message, recipients, is_html, body = await self.build(grant, req)
        try:
            result = await self.outbound.send(message, sender=grant.email, recipients=recipients)
        except SMTPSendError as exc:
            raise self._smtp_failure(grant, exc, message) from None
        return await self._sent(grant, message, recipients, is_html, body, result, request_id,
                                include_headers=include_headers)

    async def send_batch(self, grant: Grant, reqs: list[SendRequest], request_id: str, *,
                         include_headers: bool = False) -> list[dict[str, Any]]:
        """Check every item, then send them one after another on the shared SMTP session.

        Returns one result per item, in order: the sent message's JSON, or ``{error, index}``.
        An item that fails the checks refuses the whole batch (its status, ``messages[i].…``
        field) before anything is sent; when no item could be sent because SMTP was
        unreachable or deferred them all, the whole batch is a 503 (nothing sent: retry it).
        """
        built: list[tuple[EmailMessage, list[str], bool, str]] = []
        for i, req in enumerate(reqs):
            try:
                built.append(await self.build(grant, req))
            except ProviderError as exc:
                if exc.status >= 500:  # Mailpit unreachable while checking: nothing was sent
                    raise
                raise ProviderError(exc.status, exc.type, f"messages[{i}]: {exc.message}; nothing in the batch was "
                                    "sent", field=f"messages[{i}]" + (f".{exc.field}" if exc.field else ""),
                                    headers=exc.headers, provider_error=exc.provider_error) from None
        results: list[dict[str, Any]] = []
        deferred: list[ProviderError] = []  # SMTP-level temporary failures: those items were not sent
        unreachable: ProviderError | None = None
        for i, (message, recipients, is_html, body) in enumerate(built):
            if unreachable is not None:  # do not knock on a closed door once per item
                results.append(self._item_error(i, unreachable))
                deferred.append(unreachable)
                continue
            try:
                result = await self.outbound.send(message, sender=grant.email, recipients=recipients)
            except SMTPSendError as exc:
                error = self._smtp_failure(grant, exc, message)
                if error.status == 503:
                    deferred.append(error)
                    if exc.code is None:
                        unreachable = error
                results.append(self._item_error(i, error))
                continue
            try:
                results.append(await self._sent(grant, message, recipients, is_html, body, result, request_id,
                                                include_headers=include_headers))
            except ProviderError as error:  # accepted by SMTP but not found in Mailpit
                results.append(self._item_error(i, error))
        if len(deferred) == len(built):
            first = deferred[0]
            raise ProviderError(503, "provider_unavailable", f"none of the {len(built)} messages could be sent "
                                f"({first.message}); nothing was sent: retry the batch", headers=first.headers,
                                provider_error=first.provider_error)
        return results

    @staticmethod
    def _item_error(index: int, error: ProviderError) -> dict[str, Any]:
        return {"error": error.body("")["error"], "index": index}

    async def _sent(self, grant: Grant, message: EmailMessage, recipients: list[str], is_html: bool, body: str,
                    result: SendResult, request_id: str, *, include_headers: bool) -> dict[str, Any]:
        """Index a message SMTP accepted, announce it (message.send_success, message.bounce_detected); its JSON."""
        mid = result.queued_as or await self._find_queued(result.message_id)
        refused: list[dict[str, Any]] = [{"email": r, "smtp_code": c, "smtp_reply": t}
                                         for r, (c, t) in result.refused.items()]
        headers: dict[str, list[str]] = {}
        for k, v in message.items():
            headers.setdefault(k, []).append(str(v))
        people = {k: [{"name": n, "email": e} for n, e in self._addresses(message, k)]
                  for k in ("From", "To", "Cc", "Bcc", "Reply-To")}
        now = time.time()
        self.store.add_message({
            "id": mid,
            "message_id": result.message_id,
            "subject": str(message["Subject"] or ""),
            "from": people["From"], "to": people["To"], "cc": people["Cc"], "bcc": people["Bcc"],
            "reply_to": people["Reply-To"],
            "created": now,
            "date": now,
            "snippet": snippet_of(body, is_html=is_html),
            "size": len(message.as_bytes()),
            "attachments": sum(1 for _ in message.iter_attachments()),  # as Mailpit counts: not inline parts
            "in_reply_to": " ".join(message_ids(header(headers, "In-Reply-To"))),
            "references": references(headers),
            "headers": headers,
        })
        own = grant.email.casefold()
        self.store.link(grant.id, mid, visible=True, sent=True,
                        received=any(r.casefold() == own for r in recipients))
        attachments = [{"id": f"{mid}.{n}", "filename": a.get_filename() or f"part{n}",
                        "content_type": a.get_content_type(),
                        "size": len(a.get_payload(decode=True) or b""),
                        "content_id": (a.get("Content-ID") or "").strip("<> ") or None,
                        "is_inline": a.get_content_disposition() == "inline"}
                       for n, a in enumerate(attachment_parts(message))]
        cached = {"body": body, "is_html": is_html, "attachments": attachments}
        self.store.put_body(mid, body, is_html, attachments)
        self.store.record_sent(id=mid, grant_id=grant.id, request_id=request_id, message_id=result.message_id,
                               smtp_code=result.code, smtp_reply=result.reply, refused=result.refused)
        row = self.store.message(grant.id, mid)
        assert row is not None
        out = await self.message_json(grant, row, include_headers=include_headers, body=cached)
        self.dispatcher.emit("message.send_success", grant.id, out)
        bounced = [r for r in refused if 500 <= r["smtp_code"] < 600]
        if bounced:
            self.dispatcher.emit("message.bounce_detected", grant.id, self._bounce(mid, result.message_id, bounced))
        return {**out, "refused_recipients": refused}

    @staticmethod
    def _addresses(message: EmailMessage, name: str) -> list[tuple[str, str]]:
        value = message[name]
        if value is None:
            return []
        return [(a.display_name, a.addr_spec) for a in value.addresses]  # type: ignore[attr-defined]

    async def _find_queued(self, rfc_message_id: str) -> str:
        """The Mailpit ID of a message whose DATA reply did not name it (not Mailpit's wording)."""
        try:
            ids = await self.mailbox.mailpit.stored_ids(rfc_message_id)
        except MailpitError as exc:
            raise ProviderError(503, "provider_unavailable", f"the SMTP server accepted the message but Mailpit "
                                f"could not be asked for it ({exc.message}); retry later",
                                headers={"Retry-After": "1"}) from exc
        if ids:
            return ids[0]
        raise ProviderError(503, "provider_unavailable", "the SMTP server accepted the message but Mailpit does not "
                            "show it; check that the provider's --smtp and --mailpit point at the same Mailpit",
                            headers={"Retry-After": "1"})

    @staticmethod
    def _bounce(mid: str | None, rfc_id: str, bounced: list[dict[str, Any]]) -> dict[str, Any]:
        return {"object": "bounce", "id": mid, "message_id": rfc_id, "bounce_type": "hard",
                "bounced_recipients": bounced}

    def _smtp_failure(self, grant: Grant, exc: SMTPSendError, message: EmailMessage) -> ProviderError:
        rfc_id = str(message["Message-ID"] or "")
        cause = exc.__cause__
        if isinstance(cause, aiosmtplib.SMTPRecipientsRefused):
            refused: list[dict[str, Any]] = [{"email": r.recipient, "smtp_code": r.code, "smtp_reply": r.message}
                                             for r in cause.recipients]
            bounced = [r for r in refused if 500 <= r["smtp_code"] < 600]
            if bounced:
                self.dispatcher.emit("message.bounce_detected", grant.id, self._bounce(None, rfc_id, bounced))
            detail = {"smtp_code": exc.code, "smtp_reply": exc.reply, "recipients": refused}
            if bounced:
                return ProviderError(422, "provider_error", f"the SMTP server refused every recipient "
                                     f"({exc.code} {exc.reply}); nothing was sent: correct the addresses",
                                     provider_error=detail)
            return ProviderError(503, "provider_unavailable", f"the SMTP server deferred every recipient "
                                 f"({exc.code} {exc.reply}); retry later", provider_error=detail,
                                 headers={"Retry-After": "5"})
        if exc.code is None:
            return ProviderError(503, "provider_unavailable", f"the SMTP server at {self.outbound.host}:"
                                 f"{self.outbound.port} could not complete the send ({exc.message}); retry later",
                                 headers={"Retry-After": "5"})
        detail = {"smtp_code": exc.code, "smtp_reply": exc.reply}
        if 400 <= exc.code < 500:
            return ProviderError(503, "provider_unavailable", f"the SMTP server deferred the message ({exc.code} "
                                 f"{exc.reply}); retry later", provider_error=detail, headers={"Retry-After": "5"})
        return ProviderError(422, "provider_error", f"the SMTP server refused the message ({exc.code} {exc.reply}); "
                             f"{exc.fix or 'do not retry it unchanged'}", provider_error=detail)

    # ------------------------------------------------------------------ background

    def start_polling(self) -> None:
        if self.poll_interval and self._poller is None:
            self._poller = asyncio.get_running_loop().create_task(self._poll())

    async def _poll(self) -> None:
        """Look for inbound mail while a webhook wants message.created (see docs/provider.md)."""
        assert self.poll_interval
        while True:
            await asyncio.sleep(self.poll_interval)
            if not self.store.webhooks("message.created"):
                continue
            for grant in self.store.grants():
                try:
                    await self.sync(grant)
                except ProviderError as exc:
                    log.warning("polling Mailpit for %s failed: %s", grant.email, exc.message)
                except Exception:  # noqa: BLE001 - keep polling; the log has the details
                    log.exception("polling Mailpit for %s failed", grant.email)

    async def aclose(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            await asyncio.gather(self._poller, return_exceptions=True)
            self._poller = None
        await self.dispatcher.aclose()
        await self.outbound.close()
        await self.mailbox.mailpit.aclose()
