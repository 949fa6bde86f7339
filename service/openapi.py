"""The request bodies the OpenAPI schema documents.

Bodies are read by the routes themselves (see service.requests), so FastAPI cannot see their
models: they are declared here, from the same pydantic models that validate them, and added to
the schema's components.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

from redialer.campaign import CampaignSpec
from redialer.recipients import Recipient
from service.api_models import OptOutIn
from service.call_models import SingleCallIn

_BODIES: dict[str, type[BaseModel]] = {
    "CampaignSpec": CampaignSpec,
    "OptOutIn": OptOutIn,
    "SingleCallIn": SingleCallIn,
    "Recipient": Recipient,
}
_REF = "#/components/schemas/{model}"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": _REF.format(model=name)}


def body_schema(name: str) -> dict[str, Any]:
    """`openapi_extra` for a route whose JSON body is the model `name`."""
    assert name in _BODIES, name
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": _ref(name)}},
        }
    }


def csv_or_json_body() -> dict[str, Any]:
    recipients = {"type": "array", "items": _ref("Recipient")}
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "anyOf": [
                            recipients,
                            {
                                "type": "object",
                                "properties": {"recipients": recipients},
                                "required": ["recipients"],
                                "additionalProperties": False,
                            },
                        ]
                    }
                },
                "text/csv": {"schema": {"type": "string"}},
            },
        }
    }


def install_schema(app: FastAPI) -> None:
    """The generated schema plus the bodies' models (and the models they use)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title,
            version=app.version,
            description=app.description,
            routes=app.routes,
        )
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for name, model in _BODIES.items():
            found = model.model_json_schema(ref_template=_REF)
            for sub, definition in found.pop("$defs", {}).items():
                components.setdefault(sub, definition)
            components[name] = found
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
