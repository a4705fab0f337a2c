"""The repository stands on its own: nothing points at a folder beside the checkout, and the
test data stay small and documented."""
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = REPO_ROOT / 'tests' / 'data'
#: Folders whose files may not point outside the repository.
SCANNED = ('tests', 'mmrisfusion', 'tools', 'configs')
#: The folder the project was developed beside, and the fixture that read it; built from
#: pieces so that this file does not name them itself.
FORBIDDEN = ('..' + '/shared', '/work' + '/shared', 'shared' + '_dir')
#: tests/data's budget (tests/data/README.md).
MAX_DATA_BYTES = 15 * 2**20


def _files(folder: Path):
    """Every file under ``folder``, caches left out."""
    return [path for path in sorted(folder.rglob('*'))
            if path.is_file() and '__pycache__' not in path.parts]


def test_nothing_names_the_folder_beside_the_checkout():
    """A user's clone has no reference folder beside it: tests, tools and code may not
    rely on one."""
    this = Path(__file__).resolve()
    hits = []
    for folder in SCANNED:
        for path in _files(REPO_ROOT / folder):
            if path.resolve() == this:
                continue
            content = path.read_bytes()
            hits += [f'{path.relative_to(REPO_ROOT)}: {word}' for word in FORBIDDEN
                     if word.encode() in content]
    assert not hits, 'point at tests/data (or a command-line argument) instead:\n' + \
        '\n'.join(hits)


def test_data_folder_is_small_and_every_file_documented():
    files = _files(DATA_DIR)
    size = sum(path.stat().st_size for path in files)
    assert size < MAX_DATA_BYTES, f'tests/data holds {size / 2**20:.1f} MiB'
    readme = (DATA_DIR / 'README.md').read_text()
    undocumented = [str(path.relative_to(DATA_DIR)) for path in files
                    if path.name not in readme and path.name != 'README.md']
    assert not undocumented, f'say in tests/data/README.md where these come from: {undocumented}'
