"""``/api/v1/tags``: the tags in use, tagging messages, renaming and deleting a tag (Mailpit's rules: `Store`)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from emailkit.sandbox.json_input import str_list, string
from emailkit.sandbox.routes.answers import BadRequest, handler, json_response, ok
from emailkit.sandbox.routes.params import json_body, resources

__all__ = ["delete_tag", "get_tags", "rename_tag", "routes", "set_tags"]


@handler
async def get_tags(request: Request) -> Response:
    """``GET /api/v1/tags``: every tag in use, sorted."""
    return json_response(resources(request).store.tags())


@handler
async def set_tags(request: Request) -> Response:
    """``PUT /api/v1/tags`` ``{"IDs": [...], "Tags": [...]}``: those messages get exactly those tags."""
    data = await json_body(request, ("Tags", "IDs"))
    resources(request).store.set_tags(str_list(data.get("IDs"), "IDs"), str_list(data.get("Tags"), "Tags"))
    return ok()


@handler
async def rename_tag(request: Request) -> Response:
    """``PUT /api/v1/tags/{tag}`` ``{"Name": "new"}``."""
    data = await json_body(request, ("Name",))
    try:
        resources(request).store.rename_tag(request.path_params["tag"], string(data.get("Name"), "Name"))
    except (LookupError, ValueError) as exc:
        raise BadRequest(str(exc)) from None
    return ok()


@handler
async def delete_tag(request: Request) -> Response:
    """``DELETE /api/v1/tags/{tag}``: removed from every message."""
    try:
        resources(request).store.delete_tag(request.path_params["tag"])
    except LookupError as exc:
        raise BadRequest(str(exc)) from None
    return ok()


routes = [
    Route("/api/v1/tags", get_tags, methods=["GET"]),
    Route("/api/v1/tags", set_tags, methods=["PUT"]),
    Route("/api/v1/tags/{tag}", rename_tag, methods=["PUT"]),
    Route("/api/v1/tags/{tag}", delete_tag, methods=["DELETE"]),
]
