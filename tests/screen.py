"""A real terminal: tmux (Debian's package), its window a set number of columns wide, running a
shell command; what a person would see is read back from tmux's screen, not from the bytes."""

import os
import shutil
import subprocess
import time
import uuid
from pathlib import Path

TMUX = shutil.which("tmux")
DONE = "__screen_done__"  # printed after the command, with its exit code


class Screen:
    """`command` in a tmux window of `columns` × `rows`, started in `cwd`, with a scrollback
    that keeps every line it prints."""

    def __init__(self, command: str, columns: int, cwd: Path, rows: int = 50):
        self.socket = Path("/tmp") / f"mlpcli-screen-{uuid.uuid4().hex[:12]}"  # short: sun_path
        shell = f"{command}; echo {DONE} $?; sleep 600"
        window = ["-x", str(columns), "-y", str(rows), "-c", str(cwd)]
        self._tmux(
            *("-f", "/dev/null", "start-server", ";", "set-option", "-g", "history-limit", "100000", ";"),
            *("new-session", "-d", *window, "bash", "--norc", "--noprofile", "-c", shell),
        )

    def _tmux(self, *args: str) -> str:
        env = {key: value for key, value in os.environ.items() if key != "TMUX"}
        result = subprocess.run(
            [TMUX, "-S", str(self.socket), *args], capture_output=True, text=True, env=env, timeout=30
        )
        assert result.returncode == 0, result.stderr
        return result.stdout

    def type(self, keys: str) -> None:
        """Keys as tmux names them (C-c: Ctrl-C), typed at the terminal."""
        self._tmux("send-keys", "-t", "0", keys)

    def lines(self, joined: bool = False) -> list[str]:
        """Every line of the window and its scrollback, as shown (`joined`: the lines the
        terminal wrapped joined again), trailing blanks cut."""
        text = self._tmux("capture-pane", "-p", "-S", "-", "-E", "-", *(["-J"] if joined else []))
        lines = [line.rstrip() for line in text.splitlines()]
        while lines and not lines[-1]:
            lines.pop()
        return lines

    def wait(self, timeout: float = 120) -> int:
        """The command's exit code, once it has ended."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            done = [line for line in self.lines(joined=True) if line.startswith(DONE)]
            if done:
                return int(done[0].split()[1])
            time.sleep(0.2)
        raise AssertionError("the command did not end; the screen shows:\n" + "\n".join(self.lines()))

    def close(self) -> None:
        subprocess.run([TMUX, "-S", str(self.socket), "kill-server"], capture_output=True, timeout=30)
        self.socket.unlink(missing_ok=True)
