"""One error hierarchy: the same class for the same failure, whichever transport saw it."""

from __future__ import annotations

import pytest

from convscope_client import errors as e


@pytest.mark.parametrize("status, type_, grpc_code, cls", [
    (400, "InvalidImage", "INVALID_ARGUMENT", e.InvalidArgument),
    (400, "BadRequest", "INVALID_ARGUMENT", e.InvalidArgument),
    (415, "UnsupportedMediaType", "INVALID_ARGUMENT", e.InvalidArgument),
    (404, "ModelNotFoundException", "NOT_FOUND", e.NotFound),
    (404, "NotFound", "NOT_FOUND", e.NotFound),
    (400, "InvalidKeyException", "UNAUTHENTICATED", e.Unauthenticated),
    (413, "PayloadTooLarge", "RESOURCE_EXHAUSTED", e.ResourceExhausted),
    (503, "IndexUnavailable", "UNAVAILABLE", e.Unavailable),
    (503, "ServiceUnavailableException", "UNAVAILABLE", e.Unavailable),
    (500, "InternalError", "INTERNAL", e.InternalError),
    (405, "MethodNotAllowedException", "UNIMPLEMENTED", e.Unimplemented),
])
def test_same_class_over_both_transports(status, type_, grpc_code, cls):
    over_rest = e.from_http(status, {"code": status, "type": type_, "message": "m"})
    over_grpc = e.from_grpc(grpc_code, "m", {e.TYPE_KEY: type_, e.CODE_KEY: str(status)})
    assert type(over_rest) is type(over_grpc) is cls
    for error in (over_rest, over_grpc):
        assert (error.status, error.type, error.message) == (status, type_, "m")
    assert over_rest.grpc_code is None and over_grpc.grpc_code == grpc_code
    assert over_rest.retryable == over_grpc.retryable == (status == 503)


def test_a_rest_answer_that_is_not_json():
    error = e.from_http(502, None, "<html>bad gateway</html>")
    assert isinstance(error, e.Unavailable) and error.type == "BadGateway"
    assert error.message == "<html>bad gateway</html>" and not error.retryable


def test_the_type_is_not_repeated_in_the_message():
    error = e.from_grpc("INVALID_ARGUMENT", "InvalidImage: cannot identify image file",
                        {e.TYPE_KEY: "InvalidImage", e.CODE_KEY: "400"})
    assert error.message == "cannot identify image file"


def test_a_grpc_status_without_the_gateways_metadata():
    error = e.from_grpc("DEADLINE_EXCEEDED", "Deadline Exceeded", {})
    assert isinstance(error, e.DeadlineExceeded) and not error.retryable
    assert (error.status, error.type, error.grpc_code) == (504, "DeadlineExceeded", "DEADLINE_EXCEEDED")
    unknown = e.from_grpc("DATA_LOSS", None, {})
    assert isinstance(unknown, e.InternalError) and unknown.status == 500 and unknown.message == "DATA_LOSS"


def test_str_names_type_status_and_message():
    error = e.make_error(400, "InvalidImage", "not an image")
    assert str(error) == "InvalidImage (400): not an image" and isinstance(error, e.ConvScopeError)
