"""docs/benchmark.md's tables are the rendering of docs/benchmark_h200.json,
and numbers the current code is not shown to reproduce carry the mark."""
import json
import re

import pytest

from tests.modules import REPO, load_file

table = load_file('tools/analysis_tools/benchmark_table.py')
BENCHMARK = REPO / 'docs' / 'benchmark_h200.json'
DOC = REPO / 'docs' / 'benchmark.md'


def test_doc_tables_equal_the_rendering_of_the_json():
    table.main([str(BENCHMARK), '--check', str(DOC)])


def test_check_fails_when_the_doc_differs(tmp_path):
    doc = tmp_path / 'benchmark.md'
    doc.write_text(DOC.read_text().replace('| TinyViM-S | 224 | amp | ',
                                           '| TinyViM-S | 224 | amp | 1'))
    with pytest.raises(SystemExit, match='differ from the rendering'):
        table.main([str(BENCHMARK), '--check', str(doc)])
    table.main([str(BENCHMARK), '--write', str(doc)])
    table.main([str(BENCHMARK), '--check', str(doc)])
    assert doc.read_text() == DOC.read_text()


def test_stale_columns_are_marked_and_ratios_use_the_better_official(
        tmp_path):
    data = json.loads(BENCHMARK.read_text())
    row = data['inference']['rows'][0]
    row['amp'].update(official=100, official_fused=200, mmtinyvim_eager=300,
                      mmtinyvim_api=500)
    data['stale'] = dict(columns=['mmtinyvim_api'], reason='re-measure me')
    line = [x for x in table.render(data).splitlines()
            if x.startswith(f'| {row["variant"]} |') and '| amp |' in x][0]
    cells = [c.strip() for c in line.strip('|').split('|')]
    assert cells[3:] == ['100', '200', '300', '500' + table.STALE_MARK,
                         '1.50', '2.50' + table.STALE_MARK]
    assert table.render(data).endswith(f'{table.STALE_MARK} re-measure me')
    data.pop('stale')
    assert table.STALE_MARK not in table.render(data)


def test_doc_without_markers_is_one_clear_error(tmp_path):
    doc = tmp_path / 'benchmark.md'
    doc.write_text('# no tables\n')
    with pytest.raises(SystemExit, match=re.escape('must hold the markers')):
        table.main([str(BENCHMARK), '--check', str(doc)])
