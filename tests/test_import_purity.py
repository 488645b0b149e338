"""Importing the package only registers: mmengine's Runner and checkpoint
loaders, torch's serialization, the warning filters, the loggers and every
class outside the package are the same objects before and after, in a
fresh process (whatever mmengine stack is installed)."""
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

SNAPSHOT = textwrap.dedent('''
    import gc, json, logging, sys, warnings
    import torch
    import torch.nn as nn
    import torch.serialization
    from torch import _weights_only_unpickler as unpickler
    from mmengine.runner import Runner
    from mmengine.runner.checkpoint import CheckpointLoader

    def functions(module):
        return {name: id(value) for name, value in vars(module).items()
                if callable(value)}

    def classes_outside():
        # every class loaded so far, outside mmtinyvim: its own attributes
        seen = {}
        for cls in gc.get_objects():
            if not isinstance(cls, type):
                continue
            module = getattr(cls, '__module__', None) or ''
            if not isinstance(module, str) or module.startswith(
                    ('mmtinyvim', '_frozen_importlib')):  # import caches
                continue
            try:
                attrs = dict(vars(cls))
            except TypeError:
                continue
            name = f'{module}.{cls.__qualname__}@{id(cls)}'
            seen[name] = {k: id(v) for k, v in attrs.items()
                          if not k.startswith('__') or k in (
                              '__call__', '__init__', '__new__',
                              '__getattr__', '__setattr__')}
        return seen

    def loggers():
        names = ['', 'mmengine', 'py.warnings']
        return {n: [repr(f) for f in logging.getLogger(n).filters] +
                [repr(h) for h in logging.getLogger(n).handlers] +
                [logging.getLogger(n).level] for n in names}

    def snapshot():
        return dict(
            runner={k: id(v) for k, v in vars(Runner).items()},
            schemes={k: id(v) for k, v in CheckpointLoader._schemes.items()},
            serialization=functions(torch.serialization),
            unpickler=functions(unpickler),
            safe_globals=sorted(map(repr, torch.serialization.get_safe_globals())),
            torch_load=id(torch.load),
            warnings=[repr(f) for f in warnings.filters],
            loggers=loggers(),
            module_call=id(nn.Module.__call__),
            classes=classes_outside())

    import importlib
    # what the package imports from other libraries (toolboxes, scipy...)
    # is imported first: their own import-time filters are not ours
    # the libraries come on stdin: their list can exceed the argv limit
    for name in json.loads(sys.stdin.read()):
        try:
            importlib.import_module(name)
        except Exception:
            pass
    before = snapshot()
    for name in sys.argv[1:]:
        importlib.import_module(name)
    after = snapshot()
    changed = {}
    for key in before:
        if key == 'classes':
            # classes first loaded by the import have no "before"
            diff = sorted(n for n in before[key] if n in after[key]
                          and before[key][n] != after[key][n])
        elif key in ('serialization', 'unpickler', 'runner', 'schemes'):
            diff = sorted(n for n in set(before[key]) | set(after[key])
                          if before[key].get(n) != after[key].get(n))
        else:
            diff = [] if before[key] == after[key] else [
                'before: ' + repr(before[key])[:300],
                'after: ' + repr(after[key])[:300]]
        if diff:
            changed[key] = diff[:10]
    print(json.dumps(changed))
''')

MODULES = ['mmtinyvim', 'mmtinyvim.models', 'mmtinyvim.engine',
           'mmtinyvim.utils', 'mmtinyvim.datasets.coco',
           'mmtinyvim.datasets.ade', 'mmtinyvim.datasets.imagenet']


LIST_IMPORTS = textwrap.dedent('''
    import importlib, json, sys
    before = set(sys.modules)
    for name in sys.argv[1:]:
        importlib.import_module(name)
    print(json.dumps(sorted(
        n for n in set(sys.modules) - before
        if not n.startswith(('mmtinyvim', 'tests')))))
''')


def changes_of_importing(*modules):
    """What importing ``modules`` changes, after the libraries they import
    are imported (each a fresh process)."""
    listed = subprocess.run(
        [sys.executable, '-c', LIST_IMPORTS, *modules], cwd=REPO,
        capture_output=True, text=True, timeout=300)
    assert listed.returncode == 0, listed.stderr[-3000:]
    others = listed.stdout.strip().splitlines()[-1]
    result = subprocess.run(
        [sys.executable, '-c', SNAPSHOT, *modules], cwd=REPO, input=others,
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize('module', MODULES)
def test_importing_changes_nothing_outside_the_package(module):
    assert changes_of_importing(module) == {}


def test_the_snapshot_sees_the_patches_an_import_could_make():
    """What the comparison catches: a module that wraps Runner.train,
    re-registers a loader, replaces a torch function, adds a warning
    filter, a logger filter or overrides a class's method."""
    patcher = REPO / 'tests' / '_purity_patcher.py'
    patcher.write_text(textwrap.dedent('''
        import logging, warnings
        import torch.nn as nn
        import torch.serialization
        from mmengine.runner import Runner
        from mmengine.runner.checkpoint import CheckpointLoader
        Runner.train = lambda self: None
        CheckpointLoader.register_scheme('', lambda f, m: None, force=True)
        torch.serialization.get_safe_globals = lambda: []
        warnings.filterwarnings('ignore', message='x')
        logging.getLogger('mmengine').addFilter(logging.Filter('y'))
        nn.Module.__call__ = nn.Module._call_impl
        nn.Linear.extra_repr = lambda self: ''
    '''))
    try:
        changed = changes_of_importing('tests._purity_patcher')
    finally:
        patcher.unlink()
    assert changed['runner'] == ['train']
    assert changed['schemes'] == ['']
    assert changed['serialization'] == ['get_safe_globals']
    assert set(changed) >= {'warnings', 'loggers', 'module_call', 'classes'}
    assert any(name.startswith('torch.nn.modules.linear.Linear@')
               for name in changed['classes'])
