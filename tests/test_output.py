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
        stream = silenceable(original, write_through=True)
        stream.write("MLP(784 → 10)\n")
        stream.flush()
        assert os.read(read_end, 100).decode() == "MLP(784 → 10)\n"
        os.close(read_end)
        stream.write("x" * 100_000)  # more than a pipe holds
        stream.flush()
    os.close(write_end)
