# Copyright (c) cribo-mm contributors. All rights reserved.
"""Progress reporting that suits the output: a bar on a terminal, lines
otherwise.

mmengine's ``ProgressBar`` redraws one line with carriage returns; piped
into a file (``make demo | tee log``) that becomes one long line of
garbage. :func:`make_progress` therefore draws the bar only when the
stream is a terminal and otherwise prints a plain line at every tenth of
the work (and at the end).
"""
import sys
import time
from typing import Optional, TextIO

__all__ = ['NullProgress', 'LineProgress', 'BarProgress', 'make_progress',
           'stream_is_terminal']


def stream_is_terminal(stream: Optional[TextIO] = None) -> bool:
    """Whether ``stream`` (default: ``sys.stdout``) is an interactive
    terminal.

    Args:
        stream (TextIO, optional): The stream. Defaults to ``sys.stdout``.

    Returns:
        bool: True for a terminal, False for files, pipes or closed streams.
    """
    stream = sys.stdout if stream is None else stream
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or closed
        return False


def _format_seconds(seconds: float) -> str:
    seconds = int(round(max(0., seconds)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return (f'{hours}:{minutes:02d}:{secs:02d}' if hours else
            f'{minutes}:{secs:02d}')


class NullProgress:
    """Progress object that does nothing."""

    def update(self, num_tasks: int = 1) -> None:
        """Ignore an update."""

    def close(self) -> None:
        """Nothing to close."""


class LineProgress:
    """Line-based progress for non-terminal output: one line per tenth of
    the work, then a final line; never a carriage return.

    Args:
        total (int): Number of tasks.
        title (str, optional): Prefix of every line.
        stream (TextIO, optional): Output. Defaults to ``sys.stdout``.
        steps (int): Lines before the end (every ``1/steps`` of the work).
            Defaults to 10.
    """

    def __init__(self,
                 total: int,
                 title: Optional[str] = None,
                 stream: Optional[TextIO] = None,
                 steps: int = 10) -> None:
        self.total = max(int(total), 0)
        self.title = title or 'progress'
        self.stream = stream
        self.steps = max(int(steps), 1)
        self.done = 0
        self._next_step = 1
        self._start = time.monotonic()
        self._closed = False

    def _write(self, text: str) -> None:
        stream = sys.stdout if self.stream is None else self.stream
        stream.write(text + '\n')
        stream.flush()

    def _line(self) -> str:
        elapsed = time.monotonic() - self._start
        if not self.total:
            return (f'{self.title}: {self.done} done, '
                    f'{_format_seconds(elapsed)}')
        share = min(self.done / self.total, 1.)
        text = (f'{self.title}: {self.done}/{self.total} '
                f'({100 * share:.0f}%), elapsed {_format_seconds(elapsed)}')
        if 0 < self.done < self.total:
            eta = elapsed / self.done * (self.total - self.done)
            text += f', ETA {_format_seconds(eta)}'
        return text

    def update(self, num_tasks: int = 1) -> None:
        """Advance by ``num_tasks``; print a line when a tenth is crossed.

        Args:
            num_tasks (int): Tasks just finished. Defaults to 1.
        """
        self.done += int(num_tasks)
        if not self.total or self.done >= self.total:
            return  # the final line is printed by close()
        crossed = False
        while (self._next_step < self.steps and self.done * self.steps
               >= self._next_step * self.total):
            self._next_step += 1
            crossed = True
        if crossed:
            self._write(self._line())

    def close(self) -> None:
        """Print the final line (once)."""
        if not self._closed:
            self._closed = True
            self._write(self._line())


class BarProgress:
    """mmengine ``ProgressBar`` (terminal) with a title and a closing
    newline.

    Args:
        total (int): Number of tasks.
        title (str, optional): Line printed above the bar.
        stream (TextIO, optional): Output. Defaults to ``sys.stdout``.
    """

    def __init__(self,
                 total: int,
                 title: Optional[str] = None,
                 stream: Optional[TextIO] = None) -> None:
        from mmengine.utils import ProgressBar
        self.stream = sys.stdout if stream is None else stream
        if title:
            self.stream.write(title + '\n')
            self.stream.flush()
        self._bar = ProgressBar(max(int(total), 1), file=self.stream)
        self._closed = False

    def update(self, num_tasks: int = 1) -> None:
        """Advance by ``num_tasks``."""
        self._bar.update(num_tasks)

    def close(self) -> None:
        """End the bar's line."""
        if not self._closed:
            self._closed = True
            self.stream.write('\n')
            self.stream.flush()


def make_progress(total: int,
                  enabled: bool = True,
                  title: Optional[str] = None,
                  stream: Optional[TextIO] = None):
    """Progress over ``total`` tasks, suited to the output.

    Args:
        total (int): Number of tasks.
        enabled (bool): When False, a silent object is returned.
            Defaults to True.
        title (str, optional): Title of the bar / prefix of the lines.
        stream (TextIO, optional): Output. Defaults to ``sys.stdout``.

    Returns:
        NullProgress | BarProgress | LineProgress: An object with
        ``update(num_tasks=1)`` and ``close()``: a bar on a terminal, a
        :class:`LineProgress` otherwise.
    """
    if not enabled:
        return NullProgress()
    if stream_is_terminal(stream):
        try:
            return BarProgress(total, title, stream)
        except ImportError:  # mmengine missing: plain lines
            pass
    return LineProgress(total, title, stream)
