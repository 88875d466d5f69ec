"""The provider: a local hosted-email API shaped after Nylas v3, for the REST side of the comparison.

    from emailkit.provider import Provider
    with Provider(lab.api_url, lab.smtp_host, lab.smtp_port) as provider:
        grant = provider.create_grant("ann@example.com")

See docs/provider.md for the API and every place it differs from Nylas v3. The rooms: `provider`
(the `Provider` object: start, serve, close), `cli` (`emailkit provider`), `app` (the FastAPI app:
middleware in `middleware`, error handlers, routers), `routes/` (one module per resource, each
route one call to the service), `service` (authorise, send under an Idempotency-Key, read, thread,
templates, the application), `send_request` (a send checked and built into MIME), `addresses`
(address-list filters), `store` (SQLite), `mailbox` (the read side from Mailpit), `outbound` (the
one SMTP session), `webhooks` (signing, deliveries, the registry, a receiver), `oauth` (the
authorization server), `problems` (the error envelope), `fault_injection` (injected 429/503s).
"""

from __future__ import annotations

from emailkit.provider.fault_injection import Faults
from emailkit.provider.provider import Provider
from emailkit.provider.store import Grant, Store
from emailkit.provider.webhooks import SIGNATURE_HEADER, WebhookReceiver, verify_signature

__all__ = ["SIGNATURE_HEADER", "Faults", "Grant", "Provider", "Store", "WebhookReceiver", "verify_signature"]
