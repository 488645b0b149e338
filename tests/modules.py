"""Python files that are not in a package (the scripts under tools/, the
golden data's weight generator), loaded as modules by the tests."""
import importlib.util
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def load_file(path, name=None):
    """The module of the Python file ``path`` (absolute, or relative to the
    repository), named ``name`` (default: the file's stem)."""
    path = REPO / path
    spec = importlib.util.spec_from_file_location(name or path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
