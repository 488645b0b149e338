"""Progress bars for the long-running tools: mmengine's ``ProgressBar`` on
stderr (stdout keeps the tools' results: tables, JSON lines)."""
import sys
from typing import Iterable, Iterator, Sequence, TypeVar

from mmengine.utils import ProgressBar

T = TypeVar('T')


def track(items: Sequence[T], description: str = '',
          file=None) -> Iterator[T]:
    """Yield ``items``, advancing a bar on ``file`` (stderr) after each one
    is done; no bar for fewer than two items."""
    items = list(items)
    file = file or sys.stderr
    if len(items) < 2:
        yield from items
        return
    if description:
        file.write(f'{description}\n')
    bar = ProgressBar(len(items), file=file)
    for item in items:
        yield item
        bar.update()
    file.write('\n')
    file.flush()


class Steps:
    """A bar over the named steps of one job (load, check, convert,
    save...): ``steps.done()`` after each."""

    def __init__(self, count: int, description: str = '', file=None):
        self.file = file or sys.stderr
        if description:
            self.file.write(f'{description}\n')
        self.bar = ProgressBar(count, file=self.file)
        self.left = count

    def done(self):
        self.bar.update()
        self.left -= 1
        if self.left == 0:
            self.file.write('\n')
            self.file.flush()
