"""custom_imports=['mmtinyvim'] makes the modules buildable from all three
toolboxes, from any working directory."""
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent('''
    import torch
    from mmengine.config import Config
    cfg = Config(dict(custom_imports=dict(imports=['mmtinyvim'],
                                          allow_failed_imports=False)))
    from mmengine.utils import import_modules_from_strings
    import_modules_from_strings(**cfg.custom_imports)
    from {toolbox}.registry import MODELS
    from {toolbox}.utils import register_all_modules
    register_all_modules()
    for cfg in [dict(type='TinyViM', arch='s'),
                dict(type='MobileMamba', arch='t2')]:
        model = MODELS.build(cfg).eval()
        feats = model(torch.randn(1, 3, 64, 64))
        print(type(model).__name__, [tuple(f.shape) for f in feats])
''')


@pytest.mark.parametrize('toolbox', ['mmdet', 'mmseg', 'mmpretrain'])
def test_buildable_from_each_toolbox(toolbox, tmp_path):
    result = subprocess.run([sys.executable, '-c',
                             SCRIPT.format(toolbox=toolbox)],
                            cwd=tmp_path, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    assert lines[-2].startswith('TinyViM [(1, 48, 16, 16)')
    assert lines[-1].startswith('MobileMamba [')
