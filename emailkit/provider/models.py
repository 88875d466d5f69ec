"""The provider's JSON shapes (Pydantic): what requests may carry, what responses hold.

They are shaped after Nylas v3 (field names, ``{request_id, data}`` envelopes) and feed
the OpenAPI document at ``/openapi.json``. Requests are strict: JSON types must match
(``"true"`` is not a boolean) and unknown fields are refused with a 400 naming them, so a
typo never silently drops a field.
"""

from __future__ import annotations

from typing import Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "MAX_BATCH",
    "ApplicationOut",
    "AttachmentIn",
    "AttachmentOut",
    "BatchError",
    "BatchItemError",
    "BatchResponse",
    "BatchResult",
    "BatchSendRequest",
    "BrandingOut",
    "CustomAuthRequest",
    "CustomAuthSettings",
    "CustomHeader",
    "DataResponse",
    "DeleteResponse",
    "EmailName",
    "FaultsIn",
    "FaultsOut",
    "GrantCreate",
    "GrantOut",
    "HeaderOut",
    "ListResponse",
    "MessageOut",
    "RedirectUriIn",
    "RedirectUriOut",
    "RedirectUriUpdate",
    "RefusedRecipient",
    "SendRequest",
    "SentMessageOut",
    "TemplateCreate",
    "TemplateOut",
    "TemplateRef",
    "ThreadOut",
    "UpdateMessageRequest",
    "WebhookCreate",
    "WebhookCreatedOut",
    "WebhookDeleteData",
    "WebhookDeleteResponse",
    "WebhookOut",
    "WebhookUpdate",
]

T = TypeVar("T")


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, populate_by_name=True)


class EmailName(_Request):
    email: str = Field(description="The address, e.g. ann@example.com", examples=["ann@example.com"])
    name: str | None = Field(None, description="Display name")


class CustomHeader(_Request):
    name: str = Field(description="Header name, e.g. X-Campaign (not From, To, Subject, … nor threading headers)")
    value: str = Field(description="Header value, one line")


class TemplateRef(_Request):
    id: str = Field(description="ID of a template created with POST …/templates")
    variables: dict[str, object] = Field(default_factory=dict, description="Values for the template's variables")


class AttachmentIn(_Request):
    """One file, as Nylas's SDKs build it (``attach_file_request_builder`` sets ``size``)."""

    filename: str
    content_type: str = Field(description="MIME type, e.g. application/pdf")
    content: str = Field(description="The file, base64-encoded")
    size: int | None = Field(None, ge=0, description="Bytes of the decoded file; when given it must match content")
    content_id: str | None = Field(None, description="Set to reference it inline from HTML as cid:<content_id>")
    is_inline: bool | None = Field(None, description="true: an inline part (needs content_id); omitted: inline "
                                   "exactly when content_id is set")
    content_disposition: Literal["inline", "attachment"] | None = Field(
        None, description="inline or attachment; must agree with is_inline and content_id")


class SendRequest(_Request):
    """Body of ``POST /v3/grants/{grant_id}/messages/send``."""

    to: list[EmailName] = Field(default_factory=list)
    cc: list[EmailName] = Field(default_factory=list)
    bcc: list[EmailName] = Field(default_factory=list)
    reply_to: list[EmailName] = Field(default_factory=list)
    from_: list[EmailName] | None = Field(None, alias="from", description="At most one: the grant's own address "
                                          "(a display name may be set). Omitted: the grant's address.")
    subject: str | None = Field(None, description="Defaults to the template's subject, or 'Re: <parent subject>' "
                                "when replying")
    body: str | None = Field(None, description="HTML, or plain text with is_plaintext")
    is_plaintext: bool = False
    reply_to_message_id: str | None = Field(None, description="ID of the message this replies to: the provider sets "
                                            "In-Reply-To and References and the reply joins its thread")
    custom_headers: list[CustomHeader] = Field(default_factory=list)
    template: TemplateRef | None = Field(None, description="Render a stored template instead of giving body")
    attachments: list[AttachmentIn] = Field(default_factory=list)


#: Most messages one ``send-batch`` request may carry.
MAX_BATCH = 100


class BatchSendRequest(_Request):
    """Body of ``POST /v3/grants/{grant_id}/messages/send-batch``."""

    messages: list[SendRequest] = Field(min_length=1, max_length=MAX_BATCH,
                                        description=f"1 to {MAX_BATCH} messages, each as for …/messages/send")


class FaultsIn(_Request):
    """Body of ``PUT /v3/admin/faults`` (injected faults; not part of Nylas v3)."""

    status: int = Field(description="429 (rate_limit_error) or 503 (service_unavailable)")
    probability: float = Field(description="Percentage of sends to fail, 0-100 (0 turns faults off)")
    retry_after: float = Field(1.0, description="Seconds for Retry-After (sent as whole seconds, rounded up), >= 0")


class UpdateMessageRequest(_Request):
    """Body of ``PUT /v3/grants/{grant_id}/messages/{message_id}``."""

    unread: bool | None = None
    starred: bool | None = None


class TemplateCreate(_Request):
    name: str = Field(min_length=1, max_length=200)
    subject: str = Field(description="Jinja2 template of the subject")
    body: str = Field(description="Jinja2 template of the body (HTML unless is_plaintext)")
    is_plaintext: bool = False
    engine: Literal["jinja2"] = Field("jinja2", description="The only engine this provider renders")


class WebhookCreate(_Request):
    webhook_url: str = Field(description="http(s) URL that receives the POSTs (it must answer the challenge GET)")
    trigger_types: list[str] = Field(min_length=1, description="message.send_success, message.created, "
                                     "message.bounce_detected")
    description: str | None = ""
    notification_email_addresses: list[str] = Field(default_factory=list, description="Kept and returned (the "
                                                     "provider sends no e-mail about failing webhooks)")


class WebhookUpdate(_Request):
    """Body of ``PUT /v3/webhooks/{webhook_id}``: the fields to change."""

    webhook_url: str | None = None
    trigger_types: list[str] | None = Field(None, min_length=1)
    description: str | None = None
    notification_email_addresses: list[str] | None = None


class CustomAuthSettings(_Request):
    email: str = Field(description="The mailbox address")


class CustomAuthRequest(_Request):
    """Body of ``POST /v3/connect/custom`` (Nylas's custom authentication), for this provider's mailboxes."""

    provider: Literal["emailkit"] = Field(description="Always emailkit: the one provider this server stands in for")
    settings: CustomAuthSettings
    state: str | None = Field(None, max_length=256, description="Returned unchanged on the grant")
    scope: list[str] | None = Field(None, description="Ignored by Nylas for most providers; kept on the grant")


class GrantCreate(_Request):
    email: str = Field(description="The mailbox address; one grant per address")


# --------------------------------------------------------------------------- responses


class EmailNameOut(BaseModel):
    name: str
    email: str


class HeaderOut(BaseModel):
    name: str
    value: str


class AttachmentOut(BaseModel):
    id: str
    filename: str
    content_type: str
    size: int
    content_id: str | None = None
    is_inline: bool = False


class MessageOut(BaseModel):
    id: str = Field(description="The provider's message ID (Mailpit's database ID)")
    grant_id: str
    object: Literal["message"] = "message"
    thread_id: str
    message_id: str = Field(description="RFC 5322 Message-ID with angle brackets (emailkit extension)")
    subject: str
    from_: list[EmailNameOut] = Field(alias="from")
    to: list[EmailNameOut]
    cc: list[EmailNameOut]
    bcc: list[EmailNameOut]
    reply_to: list[EmailNameOut]
    date: int = Field(description="Date header, Unix seconds")
    created_at: int = Field(description="When Mailpit received it, Unix seconds")
    unread: bool
    starred: bool
    snippet: str
    body: str
    attachments: list[AttachmentOut]
    folders: list[str] = Field(description="INBOX and/or SENT, from this grant's point of view")
    headers: list[HeaderOut] | None = Field(None, description="Only with fields=include_headers")

    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)


class RefusedRecipient(BaseModel):
    email: str
    smtp_code: int
    smtp_reply: str


class SentMessageOut(MessageOut):
    refused_recipients: list[RefusedRecipient] = Field(
        default_factory=list, description="Recipients the SMTP server refused while accepting the others")


class BatchError(BaseModel):
    type: str = Field(description="provider_error (SMTP refused it), provider_unavailable (SMTP unreachable or a "
                      "4xx deferral: resend this item)")
    message: str
    field: str | None = None
    provider_error: dict[str, object] | None = Field(None, description="smtp_code, smtp_reply, recipients")


class BatchItemError(BaseModel):
    """A batch item that was not sent (the others may have been)."""

    error: BatchError
    index: int = Field(description="Position of the item in the request's messages")


BatchResult = SentMessageOut | BatchItemError


class FaultsOut(BaseModel):
    status: int
    probability: float
    retry_after: float


class ThreadOut(BaseModel):
    id: str
    grant_id: str
    object: Literal["thread"] = "thread"
    subject: str
    snippet: str
    participants: list[EmailNameOut]
    message_ids: list[str]
    draft_ids: list[str]
    folders: list[str]
    has_attachments: bool
    has_drafts: bool
    starred: bool
    unread: bool
    earliest_message_date: int
    latest_message_received_date: int | None
    latest_message_sent_date: int | None
    latest_draft_or_message: MessageOut


class TemplateOut(BaseModel):
    id: str
    grant_id: str
    object: Literal["template"] = "template"
    name: str
    subject: str
    body: str
    is_plaintext: bool
    engine: Literal["jinja2"] = "jinja2"
    created_at: int
    updated_at: int


class WebhookOut(BaseModel):
    id: str
    object: Literal["webhook"] = "webhook"
    webhook_url: str
    trigger_types: list[str]
    description: str
    notification_email_addresses: list[str]
    status: Literal["active"] = "active"
    status_updated_at: int
    created_at: int
    updated_at: int


class WebhookCreatedOut(WebhookOut):
    webhook_secret: str = Field(description="HMAC-SHA256 key of X-Nylas-Signature; shown only on create and "
                                "on rotate-secret")


class WebhookDeleteData(BaseModel):
    status: Literal["success"] = "success"


class WebhookDeleteResponse(BaseModel):
    request_id: str
    data: WebhookDeleteData


class GrantOut(BaseModel):
    id: str
    object: Literal["grant"] = "grant"
    provider: str
    grant_status: str
    email: str
    scope: list[str]
    state: str | None = None
    created_at: int
    updated_at: int


class RedirectUriIn(_Request):
    url: str = Field(description="Absolute http(s) URI without a fragment, e.g. http://127.0.0.1:8765/callback")
    platform: Literal["web"] = Field("web", description="Only web redirect URIs are served")


class RedirectUriUpdate(_Request):
    url: str | None = None
    platform: Literal["web"] | None = None


class RedirectUriOut(BaseModel):
    id: str
    url: str
    platform: str
    settings: dict[str, str] = Field(default_factory=dict)


class BrandingOut(BaseModel):
    name: str


class ApplicationOut(BaseModel):
    """``GET /v3/applications``: the application whose client_id the SDK's OAuth helpers use."""

    application_id: str = Field(description="The OAuth client_id of this application")
    organization_id: str
    region: Literal["us"] = "us"
    environment: Literal["sandbox"] = "sandbox"
    branding: BrandingOut
    callback_uris: list[RedirectUriOut]
    created_at: int
    updated_at: int


class DataResponse(BaseModel, Generic[T]):
    request_id: str
    data: T


class ListResponse(BaseModel, Generic[T]):
    request_id: str
    data: list[T]
    next_cursor: str | None = Field(None, description="Pass as page_token for the next page; null on the last")


class BatchResponse(BaseModel):
    """Answer of ``send-batch``: one result per message, in the request's order."""

    request_id: str
    data: list[BatchResult] = Field(description="The sent message, or {error, index} for one that was not sent")


class DeleteResponse(BaseModel):
    request_id: str
