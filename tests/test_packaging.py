"""Packaging: the metadata reads the version ranges from requirements/, setup.py defers to
pyproject.toml, and the import-time version check warns (never fails) outside the ranges."""
import subprocess
import sys
import warnings
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement

import mmrisfusion

REPO_ROOT = Path(__file__).resolve().parents[1]


def requirement_lines(name: str) -> list:
    lines = (REPO_ROOT / 'requirements' / name).read_text().splitlines()
    return [line for line in lines if line.strip() and not line.startswith('#')]


def test_metadata_requirements_come_from_the_requirements_files():
    """One place for the ranges: the installed metadata equals requirements/*.txt."""
    installed = {(req.name, str(req.specifier), str(req.marker or ''))
                 for req in map(Requirement, metadata.requires('mmrisfusion'))}
    for file_name, extra in (('runtime.txt', ''), ('mminstall.txt', 'mim'),
                             ('optional.txt', 'optional'), ('tests.txt', 'tests'),
                             ('web.txt', 'web'), ('deploy.txt', 'deploy'),
                             ('optional.txt', 'all'), ('tests.txt', 'all'), ('web.txt', 'all'),
                             ('deploy.txt', 'all')):
        for line in requirement_lines(file_name):
            req = Requirement(line)
            marker = f'extra == "{extra}"' if extra else ''
            assert (req.name, str(req.specifier), marker) in installed, (file_name, line)


def test_lock_pins_satisfy_the_ranges():
    """The tested stack (requirements/lock.txt) lies inside the declared ranges."""
    pins = {}
    for line in requirement_lines('lock.txt'):
        req = Requirement(line)
        pins[req.name.lower().replace('_', '-')] = next(iter(req.specifier)).version
    for file_name in ('runtime.txt', 'tests.txt', 'web.txt', 'deploy.txt'):
        for line in requirement_lines(file_name):
            req = Requirement(line)
            version = pins.get(req.name.lower().replace('_', '-'))
            assert version is not None, f'{req.name} ({file_name}) is not pinned in lock.txt'
            assert req.specifier.contains(version, prereleases=True), (req, version)


def test_setup_py_defers_to_pyproject():
    out = subprocess.run([sys.executable, 'setup.py', '--version'], cwd=REPO_ROOT,
                         capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == mmrisfusion.__version__


@pytest.mark.parametrize('installed,expected', [('2.1.0', None), ('2.2.0', 'tested with mmcv'),
                                                (None, 'needs mmcv, which is not installed')])
def test_version_check_warns_outside_the_range(monkeypatch, installed, expected):
    real_version = metadata.version

    def fake_version(name):
        if name != 'mmcv':
            return real_version(name)
        if installed is None:
            raise metadata.PackageNotFoundError(name)
        return installed

    monkeypatch.setattr(metadata, 'version', fake_version)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        mmrisfusion._check_versions()
    messages = [str(w.message) for w in caught if 'mmcv' in str(w.message)]
    if expected is None:
        assert messages == []
    else:
        assert len(messages) == 1 and expected in messages[0], messages
