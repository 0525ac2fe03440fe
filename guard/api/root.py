"""``GET /``: the version document, answered to anyone."""

from __future__ import annotations

import webob

from guard.api.jsonio import JsonResponse, json_response

VERSION_DOCUMENT = {
    "versions": [
        {
            "id": "v1.0",
            "status": "CURRENT",
            "links": [{"rel": "self", "href": "/"}],
        }
    ]
}


def version_document(req: webob.Request) -> JsonResponse:
    """The API's versions, for clients that discover before they call."""
    return json_response(VERSION_DOCUMENT)
