"""The consumer handlers: check the request's shape, ask the repository, render JSON.

Each handler checks what HTTP carries in the contract's order (the path's
uuid, the query's parameter names, content type, size, the body's keys);
the values themselves (ids, types, limit, marker, generation) are validated
in one place, the repository, before it decides visibility (404), the
action's rule (403) and the generation (409). The path's uuid is checked
here as well because the contract puts it before the body's 415 and 413.
The repository is the only door to the rows; handlers never touch the
database or the policy engine.
"""

from __future__ import annotations

from typing import Any

import webob

from guard import exception, validation
from guard.api.environ import authenticated_context
from guard.api.jsonio import JsonResponse, json_response, read_json_object
from guard.api.query import decode_generation, parse_query
from guard.repository import KEEP, ConsumerRepository

LIST_PARAMS = frozenset({"project_id", "user_id", "consumer_type", "limit", "marker"})
DELETE_PARAMS = frozenset({"consumer_generation"})
NO_PARAMS: frozenset[str] = frozenset()
REQUIRED_BODY_KEYS = frozenset({"project_id", "user_id", "consumer_generation"})
BODY_KEYS = REQUIRED_BODY_KEYS | {"consumer_type"}


class ConsumerBody:
    """A ``PUT /consumers/{uuid}`` body with the allowed keys (values unchecked here)."""

    def __init__(self, document: dict[str, Any]) -> None:
        unknown = set(document) - BODY_KEYS
        if unknown:
            raise exception.InvalidInput(
                f"Unknown key in the request body; allowed: {', '.join(sorted(BODY_KEYS))}."
            )
        missing = REQUIRED_BODY_KEYS - set(document)
        if missing:
            raise exception.InvalidInput(f"The request body lacks: {', '.join(sorted(missing))}.")
        #: ``None`` to create; anything else is an update's expected generation.
        self.generation: Any = document["consumer_generation"]
        self.project_id: Any = document["project_id"]
        self.user_id: Any = document["user_id"]
        #: ``KEEP`` when the key is absent: an update leaves the type as it is.
        self.consumer_type: Any = document.get("consumer_type", KEEP)


class ConsumerHandlers:
    """``/consumers`` and ``/consumers/{uuid}``, one method per route and verb."""

    def __init__(self, repository: ConsumerRepository) -> None:
        self.repository = repository

    def list(self, req: webob.Request) -> JsonResponse:
        """``GET /consumers``: a page of the rows the caller may see (filtered in SQL)."""
        context = authenticated_context(req)
        params = parse_query(req, LIST_PARAMS)
        # InvalidInput for a bad value; Forbidden when the list rule can
        # allow no row for these credentials.
        page = self.repository.list(context, **params)
        return json_response(
            {
                "consumers": [consumer.to_dict() for consumer in page.consumers],
                "next_marker": page.next_marker,
            }
        )

    def show(self, req: webob.Request, uuid: str) -> JsonResponse:
        """``GET /consumers/{uuid}``: 404 alike for a missing and an invisible row."""
        context = authenticated_context(req)
        consumer_uuid = validation.normalize_uuid(uuid)
        parse_query(req, NO_PARAMS)
        return json_response(self.repository.get(context, consumer_uuid).to_dict())

    def put(self, req: webob.Request, uuid: str) -> JsonResponse:
        """``PUT /consumers/{uuid}``: create (generation null, 201) or update (200)."""
        context = authenticated_context(req)
        consumer_uuid = validation.normalize_uuid(uuid)
        parse_query(req, NO_PARAMS)
        body = ConsumerBody(read_json_object(req))
        if body.generation is None:
            consumer = self.repository.create(
                context,
                consumer_uuid,
                project_id=body.project_id,
                user_id=body.user_id,
                consumer_type=None if body.consumer_type is KEEP else body.consumer_type,
            )
            return json_response(consumer.to_dict(), status=201)
        consumer = self.repository.update(
            context,
            consumer_uuid,
            generation=body.generation,
            project_id=body.project_id,
            user_id=body.user_id,
            consumer_type=body.consumer_type,
        )
        return json_response(consumer.to_dict())

    def delete(self, req: webob.Request, uuid: str) -> webob.Response:
        """``DELETE /consumers/{uuid}[?consumer_generation=N]``: 204."""
        context = authenticated_context(req)
        consumer_uuid = validation.normalize_uuid(uuid)
        params = parse_query(req, DELETE_PARAMS)
        generation = (
            decode_generation(params["consumer_generation"])
            if "consumer_generation" in params
            else None
        )
        self.repository.delete(context, consumer_uuid, generation=generation)
        return webob.Response(status=204, content_type=None)
