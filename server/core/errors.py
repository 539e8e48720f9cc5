"""Errors the service layer raises for its callers; the transport maps each to its status code."""


class ServiceError(Exception):
    """An error the caller can act on."""


class InvalidArgument(ServiceError, ValueError):
    """A request field is wrong; the message names it."""


class NotFound(ServiceError, LookupError):
    """The graph, entity or relation asked for does not exist."""


class AlreadyExists(ServiceError):
    """The graph to create exists already."""


class Unavailable(ServiceError):
    """Not ready yet, or shutting down: retry later or elsewhere."""


class ResourceExhausted(ServiceError):
    """Over capacity: retry later."""


class Unauthenticated(ServiceError):
    """No valid credentials."""


class PermissionDenied(ServiceError):
    """The caller's token may not do this."""
