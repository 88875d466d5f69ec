"""The sandbox's HTTP routes, one module per resource of Mailpit's API; `emailkit.sandbox.app` puts them together.

* `messages` — ``/api/v1/messages`` (list, read flags, delete) and ``/api/v1/search``;
* `message` — one message: ``/api/v1/message/{ID}`` and its headers, raw, parts, thumbnails, checks, release;
* `views` — ``/view/{ID}.html`` and ``.txt``;
* `send` — ``POST /api/v1/send`` (the checks and the message: `emailkit.sandbox.send_payload`);
* `tags`, `chaos` — ``/api/v1/tags``, ``/api/v1/chaos``;
* `info` — ``/api/v1/info``, ``/api/v1/webui``, ``/livez``, ``/readyz``, the spec and files under ``/api/``.

Each module has a list `routes` of module-level endpoints; an endpoint reads the store, the chaos
triggers and the size limit from ``request.app.state`` (`params.resources`). `answers` writes Mailpit's
answers (Go's JSON, its text errors), `params` reads a request (query parameters, body, ``{id}``).
"""

from __future__ import annotations

__all__: list[str] = []
