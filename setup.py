"""Setuptools entry point for tools that still call ``setup.py`` (``python setup.py --version``).

Everything (metadata, version, requirements, package data) is declared in pyproject.toml; the
version ranges are read from requirements/*.txt.
"""
from setuptools import setup

setup()
