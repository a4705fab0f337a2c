"""Every module of the package imports on its own."""
import importlib
import pkgutil

import pytest

import mmrisfusion

MODULES = sorted(info.name for info in pkgutil.walk_packages(mmrisfusion.__path__, 'mmrisfusion.'))


def test_modules_found():
    assert len(MODULES) > 10, f'too few modules found: {MODULES}'


@pytest.mark.parametrize('name', MODULES)
def test_import(name):
    importlib.import_module(name)
