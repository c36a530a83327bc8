"""Typed exceptions, one per gRPC status code, all derived from GemserveError."""
from typing import Dict, Optional, Type

import grpc


class GemserveError(Exception):
    """A call that ended with a non-OK gRPC status.

    code: the grpc.StatusCode; message: the server's message (details); rpc: the method
    ("Classify", "Generate", ...)."""

    def __init__(self, code: grpc.StatusCode, message: str, rpc: str = ""):
        self.code = code
        self.message = message
        self.rpc = rpc
        where = f"{rpc}: " if rpc else ""
        super().__init__(f"{where}{code.name}: {message}")


class Cancelled(GemserveError):
    pass


class Unknown(GemserveError):
    pass


class InvalidArgument(GemserveError):
    """Bad input; the message names the field."""


class DeadlineExceeded(GemserveError):
    pass


class NotFound(GemserveError):
    """Unknown model or variant, or an unknown or expired request id (Feedback)."""


class AlreadyExists(GemserveError):
    """Feedback for a request id that already has feedback."""


class PermissionDenied(GemserveError):
    pass


class ResourceExhausted(GemserveError):
    """Queue full or a limit (prompt tokens, KV positions, message size) reached."""


class FailedPrecondition(GemserveError):
    pass


class Aborted(GemserveError):
    pass


class OutOfRange(GemserveError):
    pass


class Unimplemented(GemserveError):
    pass


class Internal(GemserveError):
    pass


class Unavailable(GemserveError):
    """Server unreachable, model not loaded, or the server shutting down."""


class DataLoss(GemserveError):
    pass


class Unauthenticated(GemserveError):
    """Missing or wrong bearer token (auth.admin_token_file / inference_token_file)."""


ERRORS: Dict[grpc.StatusCode, Type[GemserveError]] = {
    grpc.StatusCode.CANCELLED: Cancelled,
    grpc.StatusCode.UNKNOWN: Unknown,
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceeded,
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.ALREADY_EXISTS: AlreadyExists,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDenied,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhausted,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPrecondition,
    grpc.StatusCode.ABORTED: Aborted,
    grpc.StatusCode.OUT_OF_RANGE: OutOfRange,
    grpc.StatusCode.UNIMPLEMENTED: Unimplemented,
    grpc.StatusCode.INTERNAL: Internal,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.DATA_LOSS: DataLoss,
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
}


def from_rpc_error(error: grpc.RpcError, rpc: str = "") -> GemserveError:
    """The typed exception for a grpc.RpcError raised by a call (its code and details)."""
    code: Optional[grpc.StatusCode] = error.code() if hasattr(error, "code") else None
    message = error.details() if hasattr(error, "details") else str(error)
    if code is None:
        code = grpc.StatusCode.UNKNOWN
    return ERRORS.get(code, GemserveError)(code, message or "", rpc)
