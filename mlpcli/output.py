"""Standard output and error that a closed pipe or a hung-up terminal only silences; which
signals a terminal's loss sends, and whether this process was told to ignore them.

`mlp train ... | tee log` and Ctrl-C: the terminal signals the whole process group, `tee`
may die first, and the next write to its pipe fails (BrokenPipeError; EIO on a terminal that
closed). Raised from wherever mlp happened to be writing, that error would unwind training
before it saves. So the command line's streams write through `Silenceable`: the first write
that fails turns that stream off, and the work goes on without its output.
"""

import contextlib
import io
import os
import signal
import sys
from collections.abc import Callable

Echo = Callable[[str], None]  # how library code reports a line (the CLI's say, a sweep's indent)
SIGHUP = getattr(signal, "SIGHUP", None)  # the terminal closed (Windows has none)


def ignored_on_entry(signum: int | None) -> bool:
    """Whether the signal `signum` is ignored as the process found it, and so must stay ignored,
    as Unix programs and Python's own Ctrl-C handler keep it: nohup's SIGHUP, a script's `&`
    job's SIGINT, are not meant for it. Ask before setting a handler of one's own."""
    return signum is not None and signal.getsignal(signum) is signal.SIG_IGN


class Silenceable(io.RawIOBase):
    """The writes to the raw file `raw`, until one fails; from then on, nothing."""

    def __init__(self, raw: io.RawIOBase):
        self.raw, self.silenced = raw, False

    def writable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self.raw.fileno()

    def isatty(self) -> bool:
        return not self.silenced and self.raw.isatty()

    def write(self, data) -> int:
        if not self.silenced:
            try:
                return self.raw.write(data)
            except OSError:  # a closed pipe, a hung-up terminal, a full disk: output stops
                self.silenced = True
        return len(data)


def silenceable(stream: io.TextIOWrapper, line_buffered: bool = False) -> io.TextIOWrapper:
    """A text stream like `stream`, writing through Silenceable to the raw file beneath it (on
    a Windows console that is the console's own writer, which takes UTF-8). A character its
    encoding lacks (a Windows pipe's code page has no →) is written as ?, not raised.
    `line_buffered`: each line, and each carriage return, is flushed as it is written (a
    progress bar's last \r, which clears it, must reach the terminal before the next line
    written to the other stream)."""
    raw = getattr(stream.buffer, "raw", stream.buffer)  # with python -u, the buffer is the raw file
    return io.TextIOWrapper(
        io.BufferedWriter(Silenceable(raw)),
        encoding=stream.encoding,
        errors="replace" if stream.errors == "strict" else stream.errors,
        line_buffering=line_buffered or stream.line_buffering,
        write_through=line_buffered,
    )


def install() -> None:
    """Make sys.stdout and sys.stderr silenceable, when they are real file descriptors; standard
    error flushed at each line and carriage return (Python's own is line-buffered, or with
    python -u not buffered at all)."""
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        try:
            stream.flush()
            setattr(sys, name, silenceable(stream, line_buffered=name == "stderr"))
        except (AttributeError, OSError, ValueError):  # no descriptor (an embedding host): as it is
            pass


def columns(stream) -> int | None:
    """The width of the terminal `stream` writes to; None when it writes elsewhere, or the
    terminal does not say (a pseudo-terminal whose size was never set has 0 columns)."""
    try:
        return (os.get_terminal_size(stream.fileno()).columns or None) if stream.isatty() else None
    except (AttributeError, OSError, ValueError):  # no descriptor (a test's stream, an embedding host)
        return None


def write_now(message: str) -> None:
    """Write `message` to standard error at once, from a signal handler too (one unbuffered
    write, so it never lands inside a buffered write under way); a failure is ignored."""
    with contextlib.suppress(OSError):
        os.write(2, message.encode())
