"""Shim for tooling that still runs ``setup.py``; pyproject.toml is the one source of truth."""
from setuptools import setup

setup()
