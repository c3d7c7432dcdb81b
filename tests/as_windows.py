"""`python tests/as_windows.py ARGS…` is `mlp ARGS…` in a Python that lacks what Windows lacks.

The modules only POSIX has cannot be imported, SIGHUP, os.sched_getaffinity and os.sysconf are
gone, and `msvcrt` stands in for Windows' own: its `locking` takes and releases an exclusive
lock at once or fails with EACCES, as the C runtime's does (here by flock, so over the whole
file and advisory: it cannot show that Windows keeps other processes from reading a locked
byte). It records the file position each lock was taken at, for the tests to see where
Windows would lock.
"""

import errno
import fcntl as posix_fcntl
import os
import signal
import subprocess  # noqa: F401  (before msvcrt exists: it takes msvcrt's presence for Windows)
import sys
import types

POSIX_ONLY = ("fcntl", "termios", "tty", "pty", "resource", "pwd", "grp", "syslog", "curses", "readline")
LOCK_POSITIONS = os.environ.get("MLPCLI_TEST_LOCK_POSITIONS")  # a file to record them in


def locking(descriptor: int, mode: int, nbytes: int) -> None:
    if mode == msvcrt.LK_UNLCK:
        posix_fcntl.flock(descriptor, posix_fcntl.LOCK_UN)
        return
    try:
        posix_fcntl.flock(descriptor, posix_fcntl.LOCK_EX | posix_fcntl.LOCK_NB)
    except BlockingIOError:
        raise OSError(errno.EACCES, "Permission denied") from None
    if LOCK_POSITIONS:
        with open(LOCK_POSITIONS, "a", encoding="utf-8") as f:
            f.write(f"{os.lseek(descriptor, 0, os.SEEK_CUR)} {nbytes}\n")


msvcrt = types.ModuleType("msvcrt")
msvcrt.LK_UNLCK, msvcrt.LK_LOCK, msvcrt.LK_NBLCK = 0, 1, 2
msvcrt.locking = locking


def become_windows() -> None:
    for name in POSIX_ONLY:
        sys.modules[name] = None  # import raises ImportError
    sys.modules["msvcrt"] = msvcrt
    del signal.SIGHUP
    del os.sched_getaffinity
    del os.sysconf


if __name__ == "__main__":
    become_windows()
    from mlpcli.cli import entry_point

    sys.argv[0] = "mlp"
    entry_point()
