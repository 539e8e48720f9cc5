"""The ``graphfuse`` command line: ``serve`` runs the server; every other command is a client of it."""

from graphfuse.server.cli.commands import main

__all__ = ["main"]
