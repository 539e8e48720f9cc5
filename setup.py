"""Package discovery: every package under the source folders, under the distribution's own import names.

The folders stay at the top of the repository (``gnn/``, ``encoder/``, ``server/``, the stubs in
``proto/graphfuse/``); installed, they are ``graphfuse.gnn``, ``graphfuse.encoder``, ``graphfuse.server`` and
``graphfuse.v1``. Everything else is in pyproject.toml.
"""

from setuptools import find_packages, setup

ROOMS = ("gnn", "encoder", "server")

setup(
    packages=find_packages(where="proto", include=["graphfuse", "graphfuse.*"])
    + [f"graphfuse.{package}" for package in find_packages(include=[f"{room}*" for room in ROOMS])],
    package_dir={"graphfuse": "proto/graphfuse", **{f"graphfuse.{room}": room for room in ROOMS}},
)
