"""tools/analysis_tools/benchmark_eval_fusion.py on the TNO pairs of tests/data."""
import json
import runpy
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
TOOL = REPO_ROOT / 'tools' / 'analysis_tools' / 'benchmark_eval_fusion.py'


@pytest.mark.skipif(not (REPO_ROOT / '.git').exists(), reason='needs a git checkout')
def test_times_whole_commands_against_a_revision(data_dir, tmp_path, monkeypatch, capsys):
    out = tmp_path / 'bench.json'
    monkeypatch.setattr(sys, 'argv', ['benchmark_eval_fusion.py', str(data_dir / 'ivif' / 'tno'),
                                      '--baseline', 'HEAD', '--repeat', '1',
                                      '--published-seconds', '10', '--out', str(out)])
    monkeypatch.syspath_prepend(str(TOOL.parent))
    runpy.run_path(str(TOOL), run_name='__main__')
    report = json.loads(out.read_text())
    assert report['pairs'] == 3 and report['triples_per_run'] == 6
    for variant in ('current', 'baseline'):
        assert report[variant]['wall_s'] > 0 and report[variant]['cpu_s'] > 0
    assert report['max_relative_difference'] <= 1e-9
    printed = capsys.readouterr().out
    assert 'baseline / current' in printed and 'published (10.0 s) / current' in printed
