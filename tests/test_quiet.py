"""Logs a user can read: no warning that is not actionable in a normal run."""
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_pkg_resources_deprecation_is_silenced_after_importing_the_package():
    # mmengine imports pkg_resources lazily (pkg:: configs, mim); setuptools
    # then warns, which the user cannot act on
    code = ('import warnings; warnings.simplefilter("default"); '
            'import mmtinyvim, pkg_resources; '
            'warnings.warn("still shown", UserWarning)')
    result = subprocess.run([sys.executable, '-c', code], cwd=REPO,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert 'pkg_resources is deprecated' not in result.stderr
    assert 'still shown' in result.stderr  # other warnings are not filtered
