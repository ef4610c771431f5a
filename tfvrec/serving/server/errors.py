"""Request errors of the model server, as TF Serving reports them (gRPC codes; HTTP status for REST)."""
import grpc

DEFAULT_SIGNATURE = "serving_default"
GRPC_CODES = {code.value[0]: code for code in grpc.StatusCode}
HTTP_STATUS = {grpc.StatusCode.INVALID_ARGUMENT: 400, grpc.StatusCode.FAILED_PRECONDITION: 400,
               grpc.StatusCode.OUT_OF_RANGE: 400, grpc.StatusCode.NOT_FOUND: 404,
               grpc.StatusCode.RESOURCE_EXHAUSTED: 429, grpc.StatusCode.UNIMPLEMENTED: 501,
               grpc.StatusCode.UNAVAILABLE: 503, grpc.StatusCode.DEADLINE_EXCEEDED: 504}


# TF Serving cuts error text at about 1 KB; so do we (a gRPC status travels in a header, which a
# client caps at a few KB: a longer one would turn INVALID_ARGUMENT into RESOURCE_EXHAUSTED).
MAX_ERROR_CHARS = 1000


class ServingError(Exception):
    def __init__(self, code, message):
        message = str(message)
        if len(message) > MAX_ERROR_CHARS:
            message = f"{message[:MAX_ERROR_CHARS]}… [error text cut at {MAX_ERROR_CHARS} characters]"
        super().__init__(message)
        self.code, self.message = code, message


def invalid(message):
    return ServingError(grpc.StatusCode.INVALID_ARGUMENT, message)


def not_found(message):
    return ServingError(grpc.StatusCode.NOT_FOUND, message)


def unavailable(message):
    return ServingError(grpc.StatusCode.UNAVAILABLE, message)
