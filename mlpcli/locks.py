"""One process at a time: an exclusive lock on a lock file that names its holder's process.

POSIX has `fcntl.flock`, on the whole file. Windows has `msvcrt.locking`, of a byte range, and
its locks are mandatory: no other process may read a locked byte. `mlp runs` must read who
holds the lock, so there the lock is on one byte far past the process id written at the
file's start. On both the system drops a lock when its process ends: a process that was
killed never leaves the file locked.
"""

import contextlib
import errno
import os
import time
from collections.abc import Iterator
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None
    import msvcrt

LOCKED_BYTE = 1 << 20  # where Windows locks: past any process id (locking past the end is allowed)
HELD_ELSEWHERE = {errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES, errno.EDEADLK}  # flock's, msvcrt's


class Held(Exception):
    """The lock file is locked by another live process, `owner` (its id, or "?")."""

    def __init__(self, owner: str):
        super().__init__(owner)
        self.owner = owner


def hold(lock: Path) -> int:
    """Lock the file `lock` (created if need be) and write our process id into it; return its
    descriptor for `let_go`. Held at once if another process holds it."""
    while True:
        descriptor = os.open(lock, os.O_CREAT | os.O_RDWR, 0o644)
        if not _take(descriptor):
            owner = os.read(descriptor, 32).decode(errors="replace").strip() or "?"
            os.close(descriptor)
            raise Held(owner)
        if lock.exists() and lock.stat().st_ino == os.fstat(descriptor).st_ino:
            break  # the file at that path is the one we locked
        _release(descriptor)  # a holder that finished removed it in between: lock the new one
    os.ftruncate(descriptor, 0)
    os.write(descriptor, f"{os.getpid()}\n".encode())
    return descriptor


@contextlib.contextmanager
def waited(lock: Path, seconds: float = 30.0) -> Iterator[None]:
    """Hold the lock on the file `lock` (created if need be, and left: processes that share it
    come and go) for the block, waiting up to `seconds` while another holds it; TimeoutError
    after that."""
    descriptor = os.open(lock, os.O_CREAT | os.O_RDWR, 0o600)
    try:
        deadline = time.monotonic() + seconds
        while not _take(descriptor):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{lock} stayed locked for {seconds:g} s")
            time.sleep(0.002)
        yield
    finally:
        _release(descriptor)


def holder(lock: Path) -> int | None:
    """The process id of the live process holding `lock` (0 if it did not say), else None."""
    try:
        descriptor = os.open(lock, os.O_RDONLY)
    except OSError:
        return None
    try:
        if _take(descriptor):
            return None  # nobody holds it: a lock file left by a process that was killed
        owner = os.read(descriptor, 32).decode(errors="replace").strip()
        return int(owner) if owner.isdigit() else 0
    finally:
        _release(descriptor)


def let_go(lock: Path, descriptor: int) -> None:
    """Release the lock `hold` took, and remove its file.

    POSIX removes the file while it is still locked: removed after, it could be the file that
    another process has just locked. Windows cannot remove an open file; it removes it once
    closed, and that fails (and the file stays) if another process has opened it meanwhile."""
    removed = _remove(lock)
    _release(descriptor)
    if not removed:
        _remove(lock)


def _take(descriptor: int) -> bool:
    """Whether the exclusive lock on the open file `descriptor` was taken; False at once if
    another process holds it."""
    try:
        if fcntl is not None:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        else:
            _lock_byte(descriptor, msvcrt.LK_NBLCK)
    except OSError as e:
        if e.errno in HELD_ELSEWHERE:
            return False
        raise
    return True


def _release(descriptor: int) -> None:
    """Release a lock `_take` took (closing the file does, on POSIX), and close the file."""
    try:
        if fcntl is None:
            _lock_byte(descriptor, msvcrt.LK_UNLCK)  # Windows wants its locks undone before close
    except OSError:
        pass  # not locked by us: the close below is all there is to do
    finally:
        os.close(descriptor)


def _lock_byte(descriptor: int, mode: int) -> None:
    """msvcrt.locking of LOCKED_BYTE (it locks from the file position), then back to the start."""
    os.lseek(descriptor, LOCKED_BYTE, os.SEEK_SET)
    try:
        msvcrt.locking(descriptor, mode, 1)
    finally:
        os.lseek(descriptor, 0, os.SEEK_SET)


def _remove(path: Path) -> bool:
    try:
        path.unlink(missing_ok=True)
        return True
    except OSError:  # Windows: the file is open
        return False
