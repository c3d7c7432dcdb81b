"""mlpcli.output: a stream whose reader went away stops writing, silently, and says so to
nobody; what reaches the descriptor before that is whole."""

import os

from mlpcli.output import Silenceable, silenceable


def test_a_closed_pipe_silences_the_stream_and_raises_nothing():
    read_end, write_end = os.pipe()
    raw = Silenceable(open(write_end, "wb", buffering=0, closefd=False))  # noqa: SIM115 (closed below)
    assert raw.write(b"epoch 1\n") == 8 and os.read(read_end, 100) == b"epoch 1\n"
    os.close(read_end)  # the reader (tee, head) is gone
    assert raw.write(b"epoch 2\n") == 8 and raw.silenced  # a write that failed: silenced
    assert raw.write(b"epoch 3\n") == 8 and not raw.isatty()
    os.close(write_end)
    assert raw.write(b"after the descriptor closed\n") == 28  # never tries again


def test_a_silenceable_text_stream_passes_text_through_until_the_pipe_closes():
    read_end, write_end = os.pipe()
    with open(write_end, "w", encoding="utf-8", closefd=False) as original:
        stream = silenceable(original, line_buffered=True)
        stream.write("MLP(784 → 10)\n")
        stream.flush()
        assert os.read(read_end, 100).decode() == "MLP(784 → 10)\n"
        os.close(read_end)
        stream.write("x" * 100_000)  # more than a pipe holds
        stream.flush()
    os.close(write_end)


def test_standard_error_passes_a_carriage_return_on_at_once():
    """A progress bar clears its line with a last \r, and the next line goes to the other
    stream: unflushed, that \r would reach the terminal after it (python -u or not)."""
    read_end, write_end = os.pipe()
    with open(write_end, "w", encoding="utf-8", closefd=False) as original:
        stream = silenceable(original, line_buffered=True)
        stream.write("\r" + " " * 20 + "\r")
        os.set_blocking(read_end, False)  # what has not reached the pipe fails the read at once
        assert os.read(read_end, 100) == b"\r" + b" " * 20 + b"\r"
    os.close(read_end)
    os.close(write_end)
