"""The package's import graph runs one way: ops -> models -> engine (and
utils below the models); tools only call the package."""
import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / 'mmtinyvim'
# layer -> the layers it must not import (directly or through the package
# root, which imports everything)
FORBIDDEN = {
    'ops': ('models', 'engine', 'utils', 'datasets'),
    'utils': ('models', 'engine', 'ops'),
    'models': ('engine', ),
}


def imported_modules(path: Path):
    """Absolute names of the mmtinyvim modules that ``path`` imports,
    wherever the import statement is (also inside functions)."""
    package = ['mmtinyvim', *path.relative_to(PACKAGE).parent.parts]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - node.level + 1]
                module = '.'.join(base + ([node.module] if node.module
                                          else []))
            else:
                module = node.module or ''
            yield module
            yield from (f'{module}.{alias.name}' for alias in node.names)


@pytest.mark.parametrize('layer', sorted(FORBIDDEN))
def test_imports_run_one_way(layer):
    bad = []
    for path in sorted((PACKAGE / layer).rglob('*.py')):
        for module in imported_modules(path):
            parts = module.split('.')
            if parts[0] != 'mmtinyvim':
                continue
            if len(parts) == 1 or parts[1] in FORBIDDEN[layer]:
                bad.append(f'{path.relative_to(PACKAGE)} imports {module}')
    assert not bad, '\n'.join(bad)


def test_tools_do_not_edit_sys_path_to_reach_package_code():
    tools = PACKAGE.parent / 'tools'
    offenders = [str(p.relative_to(tools)) for p in tools.rglob('*.py')
                 if 'model_converters' in p.parts
                 and 'sys.path.insert' in p.read_text()]
    assert not offenders, offenders
