"""The server itself: ``/api/v1/info``, ``/api/v1/webui``, ``/livez``, ``/readyz``, the spec, files under ``/api/``.

* ``GET /api/v1/swagger.json`` — Mailpit's spec for the pinned version, when ``make mailpit`` left it
  in ``.tools/mailpit/swagger.json``; otherwise 404 saying so (the spec is not part of the project);
* `fallback_routes` come after every other route: Mailpit serves its embedded files under ``GET /api/``
  (licences and the like), so any other ``GET /api/...`` is ``File not found``; ``OPTIONS /api/v1/...``
  is the CORS preflight (`emailkit.sandbox.cors`).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from emailkit.mailpit import MAILPIT_VERSION
from emailkit.sandbox.cors import preflight
from emailkit.sandbox.routes.answers import handler, json_response, text
from emailkit.sandbox.routes.params import resources

__all__ = ["MAILPIT_VERSION", "SWAGGER_PATH", "VERSION", "fallback_routes", "file_not_found", "info", "livez",
           "readyz", "routes", "swagger", "webui"]

#: What `GET /api/v1/info` reports as `Version`: the Mailpit release imitated, marked as the emailkit stand-in.
VERSION = f"{MAILPIT_VERSION}-emailkit-sandbox"
#: Where `make mailpit` leaves the pinned Mailpit's OpenAPI spec (git-ignored, never committed).
SWAGGER_PATH = Path(__file__).resolve().parents[3] / ".tools" / "mailpit" / "swagger.json"


@handler
async def info(request: Request) -> Response:
    """Mailpit's `AppInformation`: version, database, counts, runtime statistics."""
    store = resources(request).store
    counts = store.counts()
    stats = store.stats
    return json_response(
        {
            "Version": VERSION,
            "LatestVersion": "disabled",
            "Database": str(store.path),
            "DatabaseSize": store.size_bytes(),
            "Messages": counts.total,
            "Unread": counts.unread,
            "Tags": store.tag_counts(),
            "RuntimeStats": {
                "Uptime": int(time.time() - stats.started),
                "Memory": _memory_bytes(),
                "MessagesDeleted": stats.messages_deleted,
                "SMTPAccepted": stats.smtp_accepted,
                "SMTPAcceptedSize": stats.smtp_accepted_size,
                "SMTPRejected": stats.smtp_rejected,
                "SMTPIgnored": stats.smtp_ignored,
            },
        }
    )


@handler
async def webui(request: Request) -> Response:
    """Mailpit's web UI configuration: no relay, no label, chaos as configured."""
    return json_response(
        {
            "Label": "",  # as the lab's Mailpit, started without --label
            "MessageRelay": {
                "Enabled": False,
                "SMTPServer": "",
                "ReturnPath": "",
                "AllowedRecipients": "",
                "BlockedRecipients": "",
                "OverrideFrom": "",
                "PreserveMessageIDs": False,
                "RecipientAllowlist": "",
            },
            "SpamAssassin": False,
            "Rspamd": False,
            "ChaosEnabled": resources(request).chaos.enabled,
            "DuplicatesIgnored": False,
            "HideDeleteAllButton": False,
        }
    )


@handler
async def livez(request: Request) -> Response:
    """``ok`` while the server answers."""
    return text("ok")


@handler
async def readyz(request: Request) -> Response:
    """``ok`` while the database answers, else 503."""
    return text("ok") if resources(request).store.ping() else text("database not ready", 503)


@handler
async def swagger(request: Request) -> Response:
    """The pinned Mailpit's OpenAPI spec, when this machine has it (``EMAILKIT_MAILPIT_SWAGGER`` overrides the path)."""
    path = Path(os.environ.get("EMAILKIT_MAILPIT_SWAGGER", "") or SWAGGER_PATH)
    try:
        spec = path.read_bytes()
    except OSError:
        return text(f"404 Mailpit's API spec is not on this machine ({path}): run 'make mailpit', "
                    "which puts the pinned version's swagger.json there", 404, "text/plain; charset=utf-8")
    return Response(spec, headers={"Content-Type": "application/json"})


@handler
async def file_not_found(request: Request) -> Response:
    """Any other ``GET /api/...``: Mailpit's embedded-file server finds no such file."""
    response = text("File not found\n", 404, "text/plain; charset=utf-8")
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def _memory_bytes() -> int:
    try:
        with open("/proc/self/statm", encoding="ascii") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        import resource

        return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


routes = [
    Route("/api/v1/info", info, methods=["GET"]),
    Route("/api/v1/webui", webui, methods=["GET"]),
    Route("/livez", livez, methods=["GET"]),
    Route("/readyz", readyz, methods=["GET"]),
    Route("/api/v1/swagger.json", swagger, methods=["GET"]),
]

#: After every other route: they match whatever the routes before them did not.
fallback_routes = [
    Route("/api/{rest:path}", file_not_found, methods=["GET"]),
    Route("/api/v1/{rest:path}", preflight, methods=["OPTIONS"]),  # CORS preflight, as Mailpit
]
