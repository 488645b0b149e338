"""The package's import graph runs one way: ops -> models -> engine (and
utils below the models), also at run time: no function-local imports of the
package's own modules; tools only call the package, and nothing edits
``sys.path`` to reach code."""
import ast
from pathlib import Path

import pytest

from mmtinyvim.ops import _triton

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / 'mmtinyvim'
TOOLS = REPO / 'tools'
# layer -> the layers it must not import (directly or through the package
# root, which imports everything)
FORBIDDEN = {
    'ops': ('models', 'engine', 'utils', 'datasets'),
    'utils': ('models', 'engine', 'ops'),
    'models': ('engine', ),
}
# (file, imported module) -> why the import waits for the first call: the
# only function-local imports of our own modules allowed
LOCAL_IMPORT_EXCEPTIONS = {
    ('mmtinyvim/ops/_triton.py', f'mmtinyvim.ops.{family}'):
        'the Triton kernels import triton, an optional dependency, only when '
        'that backend is first used (the one lazy loader of all of them)'
    for family in _triton._IMPORTERS
}
SYS_PATH_MUTATORS = ('insert', 'append', 'extend', 'remove', 'pop', 'clear',
                     '__setitem__', '__delitem__', '__iadd__')


def module_name(node: ast.ImportFrom, path: Path) -> str:
    """The absolute module name an ImportFrom in ``path`` refers to."""
    if not node.level:
        return node.module or ''
    package = ['mmtinyvim', *path.relative_to(PACKAGE).parent.parts]
    base = package[:len(package) - node.level + 1]
    return '.'.join(base + ([node.module] if node.module else []))


def imported_modules(path: Path):
    """Absolute names of the mmtinyvim modules that ``path`` imports,
    wherever the import statement is (also inside functions)."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            module = module_name(node, path)
            yield module
            yield from (f'{module}.{alias.name}' for alias in node.names)


def function_local_imports(tree: ast.AST):
    """Import statements inside function bodies (nested ones included)."""
    for func in ast.walk(tree):
        if isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for node in ast.walk(func):
                if isinstance(node, (ast.Import, ast.ImportFrom)):
                    yield node


def is_sys_path(node) -> bool:
    return (isinstance(node, ast.Attribute) and node.attr == 'path'
            and isinstance(node.value, ast.Name) and node.value.id == 'sys')


def sys_path_edits(tree: ast.AST):
    """Line numbers where ``sys.path`` is changed (a mutating call, an
    assignment to it or an item of it, ``from sys import path``,
    ``site.addsitedir``)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func,
                                                     ast.Attribute):
            target = node.func.value
            if ((node.func.attr in SYS_PATH_MUTATORS and is_sys_path(target))
                    or (node.func.attr == 'addsitedir'
                        and isinstance(target, ast.Name)
                        and target.id == 'site')):
                yield node.lineno
        elif isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign,
                               ast.Delete)):
            targets = (node.targets if isinstance(node, (ast.Assign,
                                                         ast.Delete))
                       else [node.target])
            for t in targets:
                if is_sys_path(t) or (isinstance(t, ast.Subscript)
                                      and is_sys_path(t.value)):
                    yield node.lineno
        elif isinstance(node, ast.ImportFrom) and node.module == 'sys' and \
                any(alias.name == 'path' for alias in node.names):
            yield node.lineno


def python_files(*roots: Path):
    return sorted(p for root in roots for p in root.rglob('*.py'))


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


def test_no_function_local_imports_of_the_package():
    """An import of our own modules inside a function hides a dependency
    from the module header (and is how upward imports slip in at run
    time): every such import belongs at the top of the module."""
    bad = []
    for path in python_files(PACKAGE):
        for node in function_local_imports(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                names = [module_name(node, path)]
            else:
                names = [alias.name for alias in node.names]
            rel = path.relative_to(REPO).as_posix()
            if any(n.split('.')[0] == 'mmtinyvim'
                   and (rel, n) not in LOCAL_IMPORT_EXCEPTIONS
                   for n in names):
                bad.append(f'{path.relative_to(REPO)}:{node.lineno} imports '
                           f'{", ".join(names)} inside a function')
    assert not bad, '\n'.join(bad)


def test_nothing_edits_sys_path():
    """tools/ and the package reach code through the installed package,
    never by editing ``sys.path``."""
    bad = [f'{path.relative_to(REPO)}:{line}'
           for path in python_files(TOOLS, PACKAGE)
           for line in sys_path_edits(ast.parse(path.read_text()))]
    assert not bad, 'sys.path edited at\n' + '\n'.join(bad)


@pytest.mark.parametrize('source, found', [
    ('import sys\nsys.path.insert(0, "x")', True),
    ('import sys\nsys.path.append("x")', True),
    ('import sys\nsys.path = ["x"]', True),
    ('import sys\nsys.path[:0] = ["x"]', True),
    ('import sys\nsys.path += ["x"]', True),
    ('from sys import path', True),
    ('import site\nsite.addsitedir("x")', True),
    ('import sys\nprint(sys.path[0])', False),
])
def test_sys_path_edits_are_found(source, found):
    assert bool(list(sys_path_edits(ast.parse(source)))) == found


@pytest.mark.parametrize('source, found', [
    ('def f():\n    from . import x', True),
    ('def f():\n    from ..models import x', True),
    ('def f():\n    import mmtinyvim.engine', True),
    ('class A:\n    def f(self):\n        from .x import y', True),
    ('from . import x\ndef f():\n    import torch', False),
])
def test_function_local_package_imports_are_found(source, found):
    nodes = list(function_local_imports(ast.parse(source)))
    own = [n for n in nodes if isinstance(n, ast.ImportFrom) and n.level
           or any(a.name.startswith('mmtinyvim') for a in n.names)]
    assert bool(own) == found
