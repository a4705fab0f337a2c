"""Another git revision of this repository in a folder, to benchmark it side by side.

The benchmark tools run the code of a revision (``--baseline REV``: e.g. ``HEAD~3`` or a
branch) next to the working tree's, in one run, on the same inputs, and check that both give
the same outputs: a speed-up is then a ratio measured under the same load.
"""
import io
import subprocess
import tarfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def export_revision(rev: str, dest: str) -> Path:
    """Write the tracked files of ``rev`` into ``dest`` (``git archive``, no checkout).

    Args:
        rev (str): A revision git understands (commit, branch, ``HEAD~1``).
        dest (str): An existing, empty folder.

    Returns:
        Path: ``dest``, whose ``mmrisfusion`` and ``tools`` are those of ``rev``: run its
        tools with ``PYTHONPATH=dest``.

    Raises:
        SystemExit: When this is not a git checkout or ``rev`` is unknown.
    """
    proc = subprocess.run(['git', '-C', str(REPO_ROOT), 'archive', '--format=tar', rev],
                          capture_output=True)
    if proc.returncode != 0:
        raise SystemExit(f'cannot export revision {rev!r} of {REPO_ROOT}: '
                         f'{proc.stderr.decode(errors="replace").strip()}')
    with tarfile.open(fileobj=io.BytesIO(proc.stdout)) as archive:
        archive.extractall(dest, filter='data')
    return Path(dest)
