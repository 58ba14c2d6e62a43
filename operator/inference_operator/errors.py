"""Errors the API port raises that reconcile understands (so reconcile needs no Kubernetes client)."""


class NamespaceTerminating(Exception):
    """The namespace is being deleted: nothing new can be created there, and nothing needs to be."""
