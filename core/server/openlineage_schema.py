"""The OpenAPI description of `POST /api/v1/lineage`: an OpenLineage RunEvent, or an array of them.

Only the fields headwater reads are described; facets are free-form objects, as in the spec.
The endpoint itself validates with openlineage-python's models (headwater.openlineage).
"""

from __future__ import annotations

from typing import Any

_FACETS: dict[str, Any] = {"type": "object", "additionalProperties": True}

_DATASET: dict[str, Any] = {
    "type": "object",
    "required": ["namespace", "name"],
    "properties": {
        "namespace": {"type": "string", "minLength": 1, "maxLength": 1024},
        "name": {"type": "string", "minLength": 1, "maxLength": 1024},
        "facets": _FACETS,
        "inputFacets": _FACETS,
        "outputFacets": _FACETS,
    },
}

RUN_EVENT: dict[str, Any] = {
    "type": "object",
    "title": "OpenLineage RunEvent",
    "required": ["eventTime", "run", "job"],
    "properties": {
        "eventType": {"type": "string", "enum": ["START", "RUNNING", "COMPLETE", "ABORT", "FAIL", "OTHER"]},
        "eventTime": {"type": "string", "format": "date-time"},
        "producer": {"type": "string", "format": "uri"},
        "schemaURL": {"type": "string", "format": "uri"},
        "run": {
            "type": "object",
            "required": ["runId"],
            "properties": {"runId": {"type": "string", "format": "uuid"}, "facets": _FACETS},
        },
        "job": {
            "type": "object",
            "required": ["namespace", "name"],
            "properties": {
                "namespace": {"type": "string", "minLength": 1, "maxLength": 1024},
                "name": {"type": "string", "minLength": 1, "maxLength": 1024},
                "facets": _FACETS,
            },
        },
        "inputs": {"type": "array", "items": _DATASET},
        "outputs": {"type": "array", "items": _DATASET},
    },
}

REQUEST_BODY: dict[str, Any] = {
    "required": True,
    "content": {
        "application/json": {"schema": {"oneOf": [RUN_EVENT, {"type": "array", "items": RUN_EVENT, "maxItems": 1000}]}}
    },
}
