"""One error hierarchy for the whole service.

Every error a client can cause is a ``ServiceError`` subclass carrying its HTTP status; the
transports map that status once (REST as is, gRPC through its own table). Bad input is never
an ``assert`` and never a bare ``ValueError`` escaping to the runtime.
"""

from __future__ import annotations


class ServiceError(Exception):
    """Base class: an error with an HTTP status, a stable type name and a message for humans."""

    status: int = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    @property
    def type(self) -> str:
        return type(self).__name__

    def to_dict(self) -> dict:
        """The wire form of API.md: ``{"code": int, "type": str, "message": str}``."""
        return {"code": self.status, "type": self.type, "message": self.message}


class BadRequest(ServiceError):
    """The request is malformed: bad JSON, bad base64, an unknown or out-of-range parameter."""

    status = 400


class InvalidImage(BadRequest):
    """The bytes are not a decodable image of an accepted format (corrupt, truncated, text)."""


class NotFound(ServiceError):
    """A named thing (model, layer, index entry) does not exist."""

    status = 404


class PayloadTooLarge(ServiceError):
    """The body or the image is larger than the configured limits (bytes, pixels, side)."""

    status = 413


class UnsupportedMediaType(ServiceError):
    """The content type or the image format is not on the allow-list."""

    status = 415


class SpecError(ServiceError):
    """A model spec or its weights are invalid. Raised at archive or load time, not per request."""

    status = 500


class InternalError(ServiceError):
    """A bug or an outage on our side; the message says what failed, never the traceback."""

    status = 500


class IndexCorrupt(ServiceError):
    """A feature index's files fail their checksums or disagree with each other. The index is
    refused, loudly, rather than served with wrong ids; the message names the file."""

    status = 500


class IndexUnavailable(ServiceError):
    """The index cannot take the request now: another process owns it, its disk is full, or
    its backend (Milvus) is unreachable. Acknowledged data is untouched."""

    status = 503
