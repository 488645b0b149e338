import pytest
from mmengine.registry import DefaultScope


@pytest.fixture(autouse=True)
def fresh_default_scope():
    """Every test starts without a current default scope, as a fresh process
    would: a Runner built by an earlier test leaves its scope (mmdet, mmseg,
    ...) current, and registries then look types up in that scope."""
    DefaultScope._instance_dict.clear()
    yield
