"""The provider's REST routes, one module per resource; `emailkit.provider.app` includes them in this order.

========================  ===========================================================
`grants`                  ``/v3/grants``, ``/v3/connect/custom``
`messages`                ``…/messages`` (send, send-batch, list, find, update)
`threads`                 ``…/threads`` (list, find)
`templates`               ``…/templates``
`webhooks`                ``/v3/webhooks``
`applications`            ``/v3/applications`` and its redirect URIs
`admin`                   ``/v3/admin/faults`` (injected faults; not in /openapi.json)
`oauth`                   the OAuth authorization server under ``/v3/connect``
`access`                  what every route starts with: the caller, the query check, the envelope
========================  ===========================================================

Each route reads the request and calls `emailkit.provider.service.Service`; none reaches the store.
"""

from __future__ import annotations

from fastapi import APIRouter

from emailkit.provider.routes import admin, applications, grants, messages, templates, threads, webhooks

__all__ = ["ROUTERS"]

#: The resources' routers in the order they are matched (a fixed path before a templated one).
ROUTERS: tuple[APIRouter, ...] = (grants.router, messages.router, threads.router, templates.router, webhooks.router,
                                  applications.router, admin.router)
