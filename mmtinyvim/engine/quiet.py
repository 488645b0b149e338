"""Logs a user can read: the third-party warnings of a normal run that no
setting of ours or the user's can avoid, silenced one message at a time,
for one run of our tools only (:func:`quiet_run`, :func:`quiet_logger`);
importing the package changes no warning filter and no logger.

Each filter below names one message of one module; every other warning,
from these modules too, is shown as before. The warnings that *could* be
avoided are avoided at their source instead.

* setuptools (< 81, pinned because mmengine's package lookups for
  ``pkg::`` configs and mim need it) warns on every import of
  ``pkg_resources``; the user can do nothing about it.
* mmseg 1.2 ``BaseDecodeHead`` builds its losses with mmseg's own deprecated
  ``build_loss`` (``mmseg/models/builder.py``), whose warning asks mmseg's
  code, not the config, to change.
* mmseg's ``CrossEntropyLoss`` warns on every construction with
  ``avg_non_ignore=False`` and ``reduction='mean'``, also when the config
  sets ``avg_non_ignore=False`` explicitly. The shipped configs keep False on
  purpose: it is the official recipes' loss (mmseg 0.x's default), so
  changing it would change the training.
* mmseg's ``SegVisualizationHook`` warns whenever ``draw=False``, its
  default, as in mmseg's own runtime config. The hook must stay in
  ``default_hooks`` with ``draw=False``: ``tools/test.py --show-dir``
  (ours and mmseg's) switches it on, and a drawing hook would write
  pictures during every validation.
* mmengine's ``save_checkpoint`` logs the ``FileClient`` and
  ``HardDiskBackend`` deprecations on every checkpoint save, and
  ``CheckpointHook.before_train`` once (see ``_LOGGED``).
* mmengine's ``BaseMetric`` logs "The prefix is not set in metric class
  IoUMetric." because mmseg's ``IoUMetric`` has no ``default_prefix``;
  setting one would rename ``mIoU`` (etc.) in the logs and for
  ``save_best``, and ``prefix=''`` still logs it.

The logged lines are dropped from the runner's logger
(:func:`quiet_logger`), by exact message.
"""
import contextlib
import logging
import warnings

_WARNINGS = (  # (message regex, module regex)
    (r'pkg_resources is deprecated as an API', r''),
    (r'``build_loss`` would be deprecated soon', r'mmseg\.models\.builder'),
    (r'Default ``avg_non_ignore`` is False',
     r'mmseg\.models\.losses\.cross_entropy_loss'),
    (r'The draw is False, it means that the hook for visualization',
     r'mmseg\.engine\.hooks\.visualization_hook'),
)
_LOGGED = (
    'The prefix is not set in metric class IoUMetric.',
    # mmengine.runner.checkpoint.save_checkpoint, which Runner.save_checkpoint
    # calls on every save, and CheckpointHook.before_train build a FileClient
    # (a HardDiskBackend on local disk) even without file_client_args, then
    # use get_file_backend's backend; only re-implementing them would avoid
    # it. A config that does set the deprecated file_client_args
    # still gets mmengine's own '"file_client_args" will be deprecated'.
    '"FileClient" will be deprecated in future. Please use io functions in '
    'https://mmengine.readthedocs.io/en/latest/api/fileio.html#file-io',
    '"HardDiskBackend" is the alias of "LocalBackend" and the former will be '
    'deprecated in future.',
)


def add_warning_filters() -> None:
    """Add the filters to ``warnings.filters`` (callers scope them, see
    :func:`quiet_run`)."""
    for message, module in _WARNINGS:
        warnings.filterwarnings('ignore', message=message,
                                category=UserWarning, module=module)


class UnactionableRecordFilter(logging.Filter):
    """Drops the log records listed in ``_LOGGED`` (exact messages)."""

    def filter(self, record):
        return record.getMessage() not in _LOGGED


_RECORD_FILTER = UnactionableRecordFilter()


@contextlib.contextmanager
def quiet_run():
    """The unactionable warnings silenced inside the ``with`` block only
    (``warnings.catch_warnings``: the filters are as before afterwards).
    Our ``tools/train.py`` and ``tools/test.py`` run inside one."""
    with warnings.catch_warnings():
        add_warning_filters()
        yield


def quiet_logger(logger: logging.Logger) -> logging.Logger:
    """Drop the unactionable records (``_LOGGED``) from ``logger``, the
    runner's own logger (mmengine's "current" logger, which ``print_log``
    of the metrics uses); returns it. Idempotent."""
    if _RECORD_FILTER not in logger.filters:
        logger.addFilter(_RECORD_FILTER)
    return logger
