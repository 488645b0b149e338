import pytest
from mmengine.registry import DefaultScope


@pytest.fixture(autouse=True)
def fresh_default_scope():
    """Every test starts without a current default scope, as a fresh process
    would: a Runner built by an earlier test leaves its scope (mmdet, mmseg,
    ...) current, and registries then look types up in that scope."""
    DefaultScope._instance_dict.clear()
    yield


@pytest.fixture
def logged_warnings():
    """The warnings logged through mmengine's current logger during the
    test (``print_log(logger='current')``, the optimizer builder, the
    registries)."""
    import logging

    from mmengine.logging import MMLogger

    class Collect(logging.Handler):
        def __init__(self):
            super().__init__(logging.WARNING)
            self.messages = []

        def emit(self, record):
            self.messages.append(record.getMessage())

    logger = MMLogger.get_current_instance()
    handler = Collect()
    logger.addHandler(handler)
    yield handler.messages
    logger.removeHandler(handler)
