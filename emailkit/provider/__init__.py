"""The provider: a local hosted-email API shaped after Nylas v3, for the REST side of the comparison.

    from emailkit.provider import Provider
    with Provider(lab.api_url, lab.smtp_host, lab.smtp_port) as provider:
        grant = provider.create_grant("ann@example.com")

See docs/provider.md for the API and every place it differs from Nylas v3.
"""

from __future__ import annotations

from emailkit.provider.faults import Faults
from emailkit.provider.server import Provider, add_arguments, run
from emailkit.provider.store import Grant, Store
from emailkit.provider.webhooks import SIGNATURE_HEADER, WebhookReceiver, verify_signature

__all__ = ["SIGNATURE_HEADER", "Faults", "Grant", "Provider", "Store", "WebhookReceiver", "add_arguments", "run",
           "verify_signature"]
