"""Requests as a client's JSON body reaches an endpoint in-process (``{"image": "<base64>", ...}``)."""

from __future__ import annotations

import base64
import json

from convscope.envelope import Payload


def json_payload(**doc) -> Payload:
    """``doc`` as a JSON body; an ``image`` given as bytes goes as base64, as clients send it."""
    if isinstance(doc.get("image"), bytes):
        doc["image"] = base64.b64encode(doc["image"]).decode()
    return Payload({"body": json.dumps(doc).encode()}, {"body": "application/json"})


def one(endpoint, payload: Payload):
    """The outcome of a batch of one: the result object, or the ServiceError."""
    (outcome,) = endpoint.handle([payload])
    return outcome
