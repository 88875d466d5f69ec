"""What the provider does, apart from HTTP: authorise, send, read, thread, notify.

`Service` ties the pieces together — the store, the read side (`Mailbox`), the one SMTP
session (`Outbound`), webhooks (`Dispatcher`), the rate limit and the OAuth server — and
`emailkit.provider.routes` puts HTTP in front of it: every route is one call here, and no
route reaches the store. Input is checked completely before anything is sent or stored: a
send that fails validation leaves no trace. Sends under an ``Idempotency-Key`` run at most
once per key (`Service.send_once`, `Service.send_batch_once`): a repeat gets the first
answer back, a different request under the same key a 409; the HTTP layer only passes the
header and the request's bytes along.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any, Protocol

import aiosmtplib

from emailkit.errors import InvalidInput, MailpitError, SMTPSendError
from emailkit.limits import HEADER_MAX_FIELDS
from emailkit.provider.fault_injection import Faults
from emailkit.provider.mailbox import Mailbox, attachment_parts, snippet_of
from emailkit.provider.models import BatchResponse, CustomHeader, DataResponse, SendRequest, SentMessageOut
from emailkit.provider.outbound import Outbound
from emailkit.provider.problems import ProviderError
from emailkit.provider.ratelimit import TokenBucket
from emailkit.provider.send_request import build_message
from emailkit.provider.store import Grant, MessageFilter, Store, ThreadFilter
from emailkit.provider.templating import check as check_template
from emailkit.provider.webhooks import Dispatcher, WebhookRegistry
from emailkit.smtp import SendResult
from emailkit.threads import header, message_ids, references

__all__ = ["IDEMPOTENCY_KEY_MAX", "Access", "Answer", "MessageFilter", "Service", "ThreadFilter", "TokenChecker",
           "request_hash"]

log = logging.getLogger(__name__)

#: The longest Idempotency-Key accepted (Nylas's limit).
IDEMPOTENCY_KEY_MAX = 256


class TokenChecker(Protocol):
    def verify_access_token(self, token: str) -> Any: ...


@dataclass(frozen=True)
class Access:
    """Who is calling: with the API key (any grant) or with a token for one grant."""

    grant: Grant
    via: str  # "api_key" | "token"
    scopes: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Answer:
    """A send's answer as the API gives it: HTTP `status` and JSON `body` (the envelope).

    `replayed` when it is the first answer to an Idempotency-Key, given again.
    """

    status: int
    body: bytes
    replayed: bool = False

    def json(self) -> Any:
        return json.loads(self.body)


def request_hash(request: bytes) -> str:
    """What identifies a request under an Idempotency-Key: SHA-256 of its JSON, key order ignored
    (bytes that are not JSON as they are)."""
    try:
        canonical = json.dumps(json.loads(request), sort_keys=True, separators=(",", ":")).encode()
    except (ValueError, UnicodeDecodeError):
        canonical = request
    return hashlib.sha256(canonical).hexdigest()


def _fingerprint(payload: Any, include_headers: bool) -> bytes:
    """The bytes `request_hash` takes for a send made from Python (no HTTP body to hash):
    the request's fields as given, and whether headers were asked for, as a route passes them."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":")).encode() + \
        (b"include_headers" if include_headers else b"")


def _check_header_count(headers: list[CustomHeader], field: str) -> None:
    if len(headers) > HEADER_MAX_FIELDS:  # emailkit.limits: the sandbox's and its SMTP server's limit
        raise ProviderError(400, "invalid_request_error", f"{field}: {len(headers)} headers; at most "
                            f"{HEADER_MAX_FIELDS} header fields per message", field=field)


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
        #: The application's webhooks: create (after the challenge), list, update, rotate, delete.
        self.webhooks = WebhookRegistry(store, dispatcher)

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

    async def list_messages(self, grant: Grant, filters: MessageFilter, limit: int, page_token: str | None, *,
                            include_headers: bool = False) -> tuple[list[dict[str, Any]], str | None]:
        """One page of the grant's messages, newest first (after a sync): (messages, next cursor)."""
        await self.sync(grant)
        try:
            page = self.store.list_messages(grant.id, filters, limit, page_token)
        except InvalidInput as exc:
            raise _invalid(exc) from None
        data = [await self.message_json(grant, row, include_headers=include_headers) for row in page.rows]
        return data, page.next_cursor

    async def get_message(self, grant: Grant, message_id: str, *, include_headers: bool = False) -> dict[str, Any]:
        """The grant's message `message_id` as JSON, or 404."""
        row = await self.find_message(grant, message_id)
        return await self.message_json(grant, row, include_headers=include_headers)

    async def update_message(self, grant: Grant, message_id: str, *, unread: bool | None = None,
                             starred: bool | None = None) -> dict[str, Any]:
        """Mark the grant's message read/unread, starred (for this grant only); its JSON after."""
        await self.find_message(grant, message_id)
        self.store.set_flags(grant.id, message_id, unread=unread, starred=starred)
        row = self.store.message(grant.id, message_id)
        assert row is not None
        return await self.message_json(grant, row)

    async def list_threads(self, grant: Grant, filters: ThreadFilter, limit: int,
                           page_token: str | None) -> tuple[list[dict[str, Any]], str | None]:
        """One page of the grant's threads, latest activity first (after a sync): (threads, next cursor)."""
        await self.sync(grant)
        try:
            ids, cursor = self.store.list_threads(grant.id, filters, limit, page_token)
        except InvalidInput as exc:
            raise _invalid(exc) from None
        threads = [t for t in [await self.thread_json(grant, i) for i in ids] if t is not None]
        return threads, cursor

    async def get_thread(self, grant: Grant, thread_id: str) -> dict[str, Any]:
        """The grant's thread `thread_id` as JSON (syncing once if it is not known yet), or 404."""
        thread = await self.thread_json(grant, thread_id)
        if thread is None:
            await self.sync(grant)
            thread = await self.thread_json(grant, thread_id)
        if thread is None:
            raise ProviderError(404, "not_found_error", f"no thread {thread_id!r} in grant {grant.email}: "
                                "list them with GET …/threads", field="thread_id")
        return thread

    # ------------------------------------------------------------------ sending

    async def build(self, grant: Grant, req: SendRequest) -> tuple[EmailMessage, list[str], bool, str]:
        """Check the request and build the MIME message (`emailkit.provider.send_request`); returns
        (message, recipients, is_html, body). Nothing is sent or stored."""
        return await build_message(grant, req, template=self.store.template, find_parent=self.find_message,
                                   max_recipients=self.max_recipients)

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

    # ------------------------------------------------------------------ sends under an Idempotency-Key

    async def send_once(self, grant: Grant, req: SendRequest, request_id: str, *, include_headers: bool = False,
                        idempotency_key: str | None = None, request: bytes | None = None) -> Answer:
        """`send` under `idempotency_key` (see `idempotent`): the answer (200, or the 422 of a refusal
        after SMTP was tried, which is replayed too) as the API gives it.

        `request` is what identifies the send for the key: the HTTP body as received (and the
        ``fields`` parameter); from Python, leave it out and the request's fields are used.
        """
        _check_header_count(req.custom_headers, "custom_headers")

        async def run() -> Answer:
            try:
                data = await self.send(grant, req, request_id, include_headers=include_headers)
            except ProviderError as exc:
                if exc.status != 422:  # only answers given after SMTP was tried are replayed
                    raise
                return Answer(exc.status, json.dumps(exc.body(request_id), separators=(",", ":")).encode())
            out = DataResponse[SentMessageOut].model_validate({"request_id": request_id, "data": data})
            return Answer(200, out.model_dump_json(by_alias=True).encode())

        if request is None:
            request = _fingerprint(req.model_dump(mode="json", by_alias=True, exclude_unset=True), include_headers)
        return await self.idempotent(grant, idempotency_key, request, run)

    async def send_batch_once(self, grant: Grant, reqs: list[SendRequest], request_id: str, *,
                              include_headers: bool = False, idempotency_key: str | None = None,
                              request: bytes | None = None) -> Answer:
        """`send_batch` under `idempotency_key`, as `send_once`."""
        for i, item in enumerate(reqs):
            _check_header_count(item.custom_headers, f"messages[{i}].custom_headers")

        async def run() -> Answer:
            data = await self.send_batch(grant, reqs, request_id, include_headers=include_headers)
            out = BatchResponse.model_validate({"request_id": request_id, "data": data})
            return Answer(200, out.model_dump_json(by_alias=True).encode())

        if request is None:
            payload = {"messages": [r.model_dump(mode="json", by_alias=True, exclude_unset=True) for r in reqs]}
            request = _fingerprint(payload, include_headers)
        return await self.idempotent(grant, idempotency_key, request, run)

    async def idempotent(self, grant: Grant, key: str | None, request: bytes,
                         run: Callable[[], Awaitable[Answer]]) -> Answer:
        """Run a send at most once per (grant, `key`) within `idempotency_ttl` (docs/provider.md, Idempotency).

        Without a key it just runs. The first answer is kept and given again (``replayed``) to a
        request with the same key and the same `request` bytes (`request_hash`); the same key with
        another request is a 409 ``invalid_idempotent_request``, and while the first still runs a 409
        ``concurrent_idempotent_request``. Errors `run` raises are answered but not kept, so a retry
        with the same key runs again.
        """
        if key is None:
            return await run()
        if not key.strip() or len(key) > IDEMPOTENCY_KEY_MAX:
            raise ProviderError(400, "invalid_idempotency_key",
                                f"Idempotency-Key must be 1 to {IDEMPOTENCY_KEY_MAX} characters; use a UUID per "
                                "logical send", field="Idempotency-Key")
        digest = request_hash(request)
        cached = self.store.idempotent(grant.id, key, self.idempotency_ttl)
        if cached is not None:
            if cached["request_hash"] != digest:
                raise ProviderError(409, "invalid_idempotent_request",
                                    "this Idempotency-Key was used with a different request; use a new key for a "
                                    "new send", field="Idempotency-Key")
            return Answer(cached["status"], bytes(cached["body"]), replayed=True)
        slot = (grant.id, key)
        if slot in self.inflight:
            raise ProviderError(409, "concurrent_idempotent_request",
                                "a request with this Idempotency-Key is still running; wait for it, then retry",
                                field="Idempotency-Key")
        self.inflight.add(slot)
        try:
            answer = await run()
            self.store.remember(grant.id, key, digest, answer.status, answer.body)
        finally:
            self.inflight.discard(slot)
        return answer

    # ------------------------------------------------------------------ grants

    def create_grant(self, email: str, *, field: str = "email") -> Grant:
        """The grant for mailbox `email` (the same grant for the same address), or a 400 naming `field`."""
        try:
            return self.store.create_grant(email)
        except InvalidInput as exc:
            raise ProviderError(400, "invalid_request_error", f"{field}: {exc.problem}; {exc.fix}",
                                field=field) from None

    def list_grants(self, *, limit: int = 200, offset: int = 0, email: str | None = None,
                    provider: str | None = None, grant_status: str | None = None) -> list[dict[str, Any]]:
        """The grants as JSON, filtered, from `offset`, at most `limit`."""
        grants = [g.to_json() for g in self.store.grants()]
        if email is not None:
            grants = [g for g in grants if g["email"].casefold() == email.strip().casefold()]
        if provider is not None:
            grants = [g for g in grants if g["provider"] == provider]
        if grant_status is not None:
            grants = [g for g in grants if g["grant_status"] == grant_status]
        return grants[offset:offset + limit]

    # ------------------------------------------------------------------ templates

    @staticmethod
    def _template_json(row: dict[str, Any]) -> dict[str, Any]:
        return {"id": row["id"], "grant_id": row["grant_id"], "object": "template", "name": row["name"],
                "subject": row["subject"], "body": row["body"], "is_plaintext": bool(row["is_plaintext"]),
                "engine": "jinja2", "created_at": int(row["created_at"]), "updated_at": int(row["updated_at"])}

    def create_template(self, grant: Grant, *, name: str, subject: str | None, body: str,
                        is_plaintext: bool) -> dict[str, Any]:
        """Store a Jinja2 template (checked first: a 400 naming the field); its JSON."""
        try:
            check_template(subject, body, is_plaintext)
        except InvalidInput as exc:
            raise _invalid(exc) from None
        return self._template_json(self.store.create_template(grant.id, name, subject, body, is_plaintext))

    def list_templates(self, grant: Grant) -> list[dict[str, Any]]:
        return [self._template_json(r) for r in self.store.templates(grant.id)]

    def get_template(self, grant: Grant, template_id: str) -> dict[str, Any]:
        row = self.store.template(grant.id, template_id)
        if row is None:
            raise ProviderError(404, "not_found_error", f"no template {template_id!r} in this grant",
                                field="template_id")
        return self._template_json(row)

    def delete_template(self, grant: Grant, template_id: str) -> None:
        if not self.store.delete_template(grant.id, template_id):
            raise ProviderError(404, "not_found_error", f"no template {template_id!r} in this grant",
                                field="template_id")

    # ------------------------------------------------------------------ the application and its redirect URIs

    def _application_server(self) -> Any:
        if not hasattr(self.oauth, "application"):
            raise ProviderError(404, "not_found_error", "this provider runs without its OAuth server, so it has no "
                                "application or redirect URIs; start it with emailkit.provider.Provider")
        return self.oauth

    @staticmethod
    def _redirect_json(entry: dict[str, Any]) -> dict[str, Any]:
        return {"id": entry["id"], "url": entry["url"], "platform": "web", "settings": {}}

    def _redirect_entry(self, redirect_uri_id: str) -> dict[str, Any]:
        found = next((e for e in self._application_server().redirect_uris() if e["id"] == redirect_uri_id), None)
        if found is None:
            raise ProviderError(404, "not_found_error", f"no redirect URI {redirect_uri_id!r}: list them with GET "
                                "/v3/applications/redirect-uris", field="redirect_uri_id")
        return found

    def application(self) -> dict[str, Any]:
        """This application: its client_id (application_id) and redirect URIs."""
        server = self._application_server()
        client = server.application()
        return {"application_id": client.client_id, "organization_id": "emailkit",
                "region": "us", "environment": "sandbox", "branding": {"name": client.name},
                "callback_uris": [self._redirect_json(e) for e in server.redirect_uris()],
                "created_at": int(server.application_created_at()),
                "updated_at": int(server.application_created_at())}

    def list_redirect_uris(self) -> list[dict[str, Any]]:
        return [self._redirect_json(e) for e in self._application_server().redirect_uris()]

    def get_redirect_uri(self, redirect_uri_id: str) -> dict[str, Any]:
        return self._redirect_json(self._redirect_entry(redirect_uri_id))

    def add_redirect_uri(self, url: str) -> dict[str, Any]:
        """Allow `url` for the application's OAuth flow (a 400 naming ``url`` when it cannot be)."""
        try:
            entry = self._application_server().add_redirect_uri(url)
        except InvalidInput as exc:
            raise _invalid(exc, "url") from None
        return self._redirect_json(entry)

    def update_redirect_uri(self, redirect_uri_id: str, *, url: str | None = None) -> dict[str, Any]:
        entry = self._redirect_entry(redirect_uri_id)
        if url is not None and url != entry["url"]:
            try:
                entry = self._application_server().replace_redirect_uri(entry["url"], url)
            except InvalidInput as exc:
                raise _invalid(exc, "url") from None
        return self._redirect_json(entry)

    def remove_redirect_uri(self, redirect_uri_id: str) -> None:
        entry = self._redirect_entry(redirect_uri_id)
        self._application_server().remove_redirect_uri(entry["url"])

    # ------------------------------------------------------------------ injected faults

    def set_faults(self, *, status: int, probability: float, retry_after: float) -> Faults:
        """Answer `probability` % of sends with `status` from now on (a 400 naming the field when invalid)."""
        try:
            self.faults = Faults(status=status, probability=probability, retry_after=retry_after)
        except InvalidInput as exc:
            raise _invalid(exc) from None
        return self.faults

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
