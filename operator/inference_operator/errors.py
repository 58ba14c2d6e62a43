"""Errors the API port raises that reconcile understands (so reconcile needs no Kubernetes client)."""


class ApiError(Exception):
    """A non-2xx answer of the API server, with its status and message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status, self.message = status, message


class NamespaceTerminating(Exception):
    """The namespace is being deleted: nothing new can be created there, and nothing needs to be."""
