"""`mlp serve` against what one client on 127.0.0.1 can do to it, and against photos as phones
take them: the real server (a child process, or uvicorn in this process with its waits
shortened), raw sockets for slow and hostile clients, each bounded in time."""

import contextlib
import http.client
import io
import json
import os
import shutil
import signal
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, mlp, serving, start_serve
from PIL import Image, ImageDraw
from test_serve import drawn, get, post, raw_exchange, runs_dir, server  # noqa: F401 (fixtures)

from mlpcli import connections, serve


def photo(width: int, height: int, quality: int = 95, seed: int = 0) -> bytes:
    """A JPEG as a phone takes one: paper with grain, a 7 drawn with a thick dark pen."""
    rng = np.random.default_rng(seed)
    paper = (205 + rng.normal(0, 14, (height, width, 3))).clip(0, 255).astype(np.uint8)
    image = Image.fromarray(paper)
    pen = max(4, width // 70)
    points = [(0.36, 0.28), (0.62, 0.28), (0.5, 0.5), (0.44, 0.74)]
    ImageDraw.Draw(image).line([(x * width, y * height) for x, y in points], fill=(25, 25, 40), width=pen)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def repeated_scans(count: int) -> bytes:
    """A progressive 4000×3000 JPEG of under 2 MB whose smallest scan comes `count` times:
    each is decoded over the whole image, so it takes long to decode for its size."""
    noise = np.random.default_rng(0).integers(0, 255, (3000, 4000), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(noise).save(buffer, format="JPEG", quality=5, progressive=True)
    data = buffer.getvalue()
    starts = [i for i in range(len(data) - 1) if data[i : i + 2] == b"\xff\xda"]  # SOS markers
    ends = [_segment_end(data, start) for start in starts]
    start, end = min(zip(starts, ends), key=lambda scan: scan[1] - scan[0])
    return data[:end] + data[start:end] * (count - 1) + data[end:]


def _segment_end(data: bytes, start: int) -> int:
    """Where the scan at `start` ends: at the next marker that is neither stuffing nor a restart."""
    at = start + 2
    while True:
        at = data.index(b"\xff", at + 1)
        if data[at + 1] != 0 and not 0xD0 <= data[at + 1] <= 0xD7:
            return at


def closed_by_server(sock: socket.socket, within: float) -> bool:
    """Whether the server closes `sock` within `within` seconds (whatever it sends first)."""
    sock.settimeout(within)
    deadline = time.monotonic() + within
    try:
        while time.monotonic() < deadline:
            if sock.recv(65536) == b"":
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except TimeoutError:
        return False
    return False


def workers(pid: int) -> list[int]:
    """The worker processes `mlp serve`'s process `pid` started (Linux's /proc), or [pid] when
    it answers alone; not multiprocessing's resource tracker beside them."""
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        children = [int(child) for child in f.read().split()]
    spawned = [child for child in children if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes()]
    return spawned or [pid]


def peak_memory(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) * 1024


def address(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("http://").split(":")
    return host, int(port)


@pytest.fixture
def quick_server(runs_dir, monkeypatch):  # noqa: F811
    """The real server in this process, its waits shortened: a head within 1 s, a whole
    request within 2 s."""
    monkeypatch.setattr(connections, "HEAD_SECONDS", 1.0)
    monkeypatch.setattr(connections, "REQUEST_SECONDS", 2.0)
    sock = serve.listening_socket("127.0.0.1", 0)
    in_process = serve.server(runs_dir, "127.0.0.1")
    thread = threading.Thread(target=in_process.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not in_process.started:
        time.sleep(0.01)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    in_process.should_exit = True
    thread.join(10)


# --- clients that hold on -------------------------------------------------------------------


def test_connections_that_send_nothing_cannot_shut_others_out(quick_server, drawn):  # noqa: F811
    """uvicorn answers 503 to everyone once it holds its limit of connections; those waiting
    for a request give way to new ones instead (one process: the limit is each worker's)."""
    idle = [socket.create_connection(address(quick_server)) for _ in range(connections.LIMIT + 40)]
    try:
        started = time.monotonic()
        assert post(quick_server, drawn[0][1].read_bytes())[0] == 200
        assert time.monotonic() - started < 5
    finally:
        for sock in idle:
            sock.close()


HEAD = b"POST /api/predict?run=mnist HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100000\r\n"


@pytest.mark.parametrize(
    "sent",
    [b"", HEAD[:30], HEAD + b"\r\n" + b"\x89PNG" * 100],
    ids=["nothing", "half a head", "half a body"],
)
def test_a_slow_client_is_dropped_and_the_others_served(quick_server, drawn, sent):  # noqa: F811
    slow = socket.create_connection(address(quick_server))
    slow.sendall(sent)
    assert post(quick_server, drawn[0][1].read_bytes())[0] == 200
    assert closed_by_server(slow, within=connections.REQUEST_SECONDS + 2)
    slow.close()


def test_a_head_sent_a_byte_at_a_time_is_dropped(quick_server):
    slow = socket.create_connection(address(quick_server))
    started, closed = time.monotonic(), False
    for byte in HEAD * 10:
        try:
            slow.sendall(bytes([byte]))
        except OSError:
            closed = True
            break
        time.sleep(0.05)
        if time.monotonic() - started > connections.HEAD_SECONDS + 3:
            break
    assert closed or closed_by_server(slow, within=1)
    assert time.monotonic() - started < connections.HEAD_SECONDS + 3
    slow.close()


@pytest.mark.parametrize(
    "padding, end",
    [(4 * 2**20, b""), (100_000, b"\r\n\r\n")],
    ids=["4 MiB never ended: refused as it comes", "100 kB whole in one read"],
)
def test_a_head_over_its_cap_gets_431_and_the_server_lives_on(server, drawn, padding, end):  # noqa: F811
    head = b"GET /api/runs HTTP/1.1\r\nHost: 127.0.0.1\r\n" + b"X-Padding: " + b"a" * padding + end
    with socket.create_connection(address(server), timeout=30) as sock:
        with contextlib.suppress(OSError):  # answered and closed before the rest was sent
            sock.sendall(head)
        assert sock.recv(100).startswith(b"HTTP/1.1 431")
    assert post(server, drawn[0][1].read_bytes())[0] == 200


def test_a_client_that_reads_no_answer_is_dropped(quick_server):
    """Answers pile up in the server while a client sends requests and reads nothing."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(address(quick_server))
    sock.settimeout(5)
    with contextlib.suppress(OSError):
        sock.sendall(b"GET /app.js HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" * 3000)
    time.sleep(connections.REQUEST_SECONDS + 3)
    with pytest.raises(OSError):  # reset by the server: no send gets through
        for _ in range(3):
            sock.send(b"x")
            time.sleep(0.2)
    sock.close()


def test_an_upgrade_request_is_answered_as_any_other(server):  # noqa: F811
    host, port = address(server)
    connection = http.client.HTTPConnection(host, port, timeout=30)
    upgrade = {"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13"}
    connection.request(
        "GET", "/api/runs", headers=upgrade | {"Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}
    )
    assert connection.getresponse().status == 200


@pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="SIGHUP: POSIX")
def test_a_lost_terminal_stops_the_server(runs_dir):  # noqa: F811
    child, _ = start_serve(runs_dir)
    time.sleep(2)  # its workers started
    child.send_signal(signal.SIGHUP)
    assert child.wait(timeout=10) is not None


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="counts the server's processes in /proc")
@pytest.mark.parametrize("workers_asked", ["2", "1"])
def test_under_nohup_a_lost_terminal_leaves_the_server_and_its_workers(runs_dir, drawn, workers_asked):  # noqa: F811
    ignored = lambda: signal.signal(signal.SIGHUP, signal.SIG_IGN)  # noqa: E731 (as nohup starts it)
    child, url = start_serve(runs_dir, "--workers", workers_asked, preexec_fn=ignored, start_new_session=True)
    try:
        assert post(url, drawn[0][0].read_bytes())[0] == 200
        started = workers(child.pid)
        os.killpg(child.pid, signal.SIGHUP)  # a login shell's, to its jobs, as its terminal closes
        time.sleep(2)  # the supervisor looks at its signals every half second
        assert child.poll() is None and workers(child.pid) == started
        assert post(url, drawn[0][1].read_bytes())[0] == 200
    finally:
        child.terminate()
        child.wait(30)


@pytest.mark.skipif(os.name == "nt", reason="Ctrl-C as SIGINT")
def test_ctrl_c_stops_the_server_at_once_with_connections_half_open(runs_dir):  # noqa: F811
    child, url = start_serve(runs_dir)
    half = [socket.create_connection(address(url)) for _ in range(5)]
    for sock in half:
        sock.sendall(HEAD + b"\r\nabc")
    time.sleep(0.5)
    started = time.monotonic()
    child.send_signal(signal.SIGINT)
    code = child.wait(timeout=30)
    stderr = child.stderr.read()
    took = time.monotonic() - started
    assert code == 130 and took < 1.9, (took, stderr)  # uvicorn alone waits for them without end
    assert "stopped" in stderr and "Aborted" not in stderr and "Traceback" not in stderr
    for sock in half:
        sock.close()


# --- bodies and images ----------------------------------------------------------------------


def test_a_body_over_the_cap_reaches_urllib_as_413(server):  # noqa: F811
    """urllib sends its whole body before it reads (no Expect: 100-continue) and asks to close
    after: the server reads what it refuses, up to a bound, so the 413 arrives, not a reset."""
    for size in (serve.MAX_BODY + 1, 40 * 2**20):
        status, answer = post(server, b"\0" * size)
        assert status == 413 and "larger than 32 MB" in answer["error"]


def test_a_body_over_the_cap_gets_413_by_its_length_or_as_it_arrives(server, drawn):  # noqa: F811
    declared = (
        "POST /api/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nExpect: 100-continue\r\n"
        f"Content-Length: {serve.MAX_BODY + 1}\r\n\r\n"
    )
    assert raw_exchange(server, declared.encode(), []).startswith(b"HTTP/1.1 413")
    streamed = b"POST /api/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n"
    chunk = b"%x\r\n%s\r\n" % (2**20, b"\0" * 2**20)
    answer = raw_exchange(server, streamed, [chunk] * 33 + [b"0\r\n\r\n"])
    assert answer.startswith(b"HTTP/1.1 413") and b"larger than" in answer
    assert post(server, drawn[0][1].read_bytes())[0] == 200


def form(fields: dict[str, tuple[str | None, bytes]]) -> tuple[bytes, str]:
    """A multipart/form-data body of `fields` (name → (file name or None, content)), and its type."""
    boundary = "mlpcli-test-boundary"
    parts = []
    for name, (filename, content) in fields.items():
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        parts.append(
            f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + content + b"\r\n"
        )
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def test_a_form_upload_is_read_as_its_file(server, drawn):  # noqa: F811
    digit = drawn[0][0].read_bytes()
    body, content_type = form({"note": (None, b"hello"), "file": ("digit.png", digit)})
    status, answer = post(server, body, content_type=content_type)
    assert status == 200 and answer == post(server, digit)[1]
    body, content_type = form({"note": (None, b"hello")})
    status, answer = post(server, body, content_type=content_type)
    assert status == 400 and "holds no file" in answer["error"]
    status, answer = post(server, b"--nonsense", content_type="multipart/form-data; boundary=x")
    assert 400 <= status < 500 and answer["error"]


def test_photos_as_phones_take_them_are_read(server):  # noqa: F811
    for width, height, quality in ((4032, 3024, 95), (8160, 6120, 85)):
        body = photo(width, height, quality)
        started = time.monotonic()
        status, answer = post(server, body)
        assert status == 200 and answer["predictions"][0]["class"] == 7, (width, answer)
        assert time.monotonic() - started < 5
    status, answer = post(server, photo(9000, 6000, 50))
    assert status == 413 and answer["error"] == (
        "the image: this image is 54 MP (9000×6000 pixels); mlpcli reads up to 50 MP"
    )


def test_an_image_slow_to_decode_is_refused_without_holding_up_the_others(server, drawn):  # noqa: F811
    slow = repeated_scans(40_000)
    answers = {}
    thread = threading.Thread(target=lambda: answers.update(slow=post(server, slow)))
    started = time.monotonic()
    thread.start()
    time.sleep(0.5)
    quick = time.monotonic()
    assert post(server, drawn[0][1].read_bytes())[0] == 200
    assert time.monotonic() - quick < 2
    thread.join(60)
    status, answer = answers["slow"]
    assert status == 422 and "took more than 3 s to decode" in answer["error"]
    assert time.monotonic() - started < serve.DECODE_SECONDS + 3


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="reads the server's memory in /proc")
def test_a_long_thin_image_is_read_in_little_time_and_memory(runs_dir):  # noqa: F811
    """1 × 12,000,000 pixels in 23 KB: it once took seconds and 723 MB, most in finding the ink."""
    image = Image.new("L", (12_000_000, 1), 255)
    ImageDraw.Draw(image).line([(5_000_000, 0), (6_000_000, 0)], fill=0)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    child, url = start_serve(runs_dir)
    try:
        started = time.monotonic()
        status, answer = post(url, buffer.getvalue())
        assert status in (200, 422) and time.monotonic() - started < 3, answer
        peak = max(peak_memory(pid) for pid in workers(child.pid))
        assert peak < 400 * 2**20, f"{peak / 2**20:.0f} MB"
    finally:
        child.terminate()
        child.wait(30)


# --- hosts and the command ------------------------------------------------------------------


def test_every_loopback_address_gets_the_host_check(runs_dir):  # noqa: F811
    child, url = start_serve(runs_dir, "--host", "127.0.0.2")
    try:
        host, port = address(url)
        for named, expected in (("rebound.example", 400), ("127.0.0.2", 200), ("localhost", 200)):
            connection = http.client.HTTPConnection(host, port, timeout=30)
            connection.request("GET", "/api/runs", headers={"Host": f"{named}:{port}"})
            assert connection.getresponse().status == expected, named
    finally:
        child.terminate()
        child.wait(30)
    assert "warning" not in child.stderr.read()


def test_an_empty_host_is_refused(runs_dir):  # noqa: F811
    result = mlp("serve", runs_dir, "--host", "")
    assert result.exit_code == 2 and "name an address to listen on" in result.output


def test_open_with_no_browser_says_so(runs_dir, monkeypatch):  # noqa: F811
    monkeypatch.setenv("BROWSER", "/nonexistent/browser")
    child, url = start_serve(runs_dir, "--open")
    time.sleep(1)
    child.terminate()
    _, stderr = child.communicate(timeout=30)
    assert f"no web browser found to open: open {url}/ in one" in stderr


# --- run folders from elsewhere -------------------------------------------------------------


@pytest.fixture(scope="module")
def hostile_runs(runs_dir, tmp_path_factory):  # noqa: F811
    """Copies of a good run, each with one file made hostile, beside the good run itself."""
    folder = tmp_path_factory.mktemp("hostile") / "runs"
    good = runs_dir / "mnist"
    shutil.copytree(good, folder / "good")

    def copy(name: str) -> Path:
        shutil.copytree(good, folder / name)
        return folder / name

    for name, target in (("passwd", "/etc/passwd"), ("zero", "/dev/zero")):
        run = copy(name)
        (run / "config.yaml").unlink()
        (run / "config.yaml").symlink_to(target)
        (run / "curves.png").unlink()
        (run / "curves.png").symlink_to(target)
    fifo = copy("fifo")
    (fifo / "config.yaml").unlink()
    os.mkfifo(fifo / "config.yaml")
    deep = copy("deep")
    (deep / "metrics.json").write_text("[" * 100_000)
    (deep / "config.yaml").write_text("a: " + "[" * 5000)
    nested = copy("nested")  # parsed, but deeper than the JSON answer could be written
    (nested / "metrics.json").write_text('{"test_accuracy": 0.9, "a": ' + "[" * 900 + "]" * 900 + "}")
    outside = tmp_path_factory.mktemp("outside") / "run"  # a run elsewhere, linked into the folder
    shutil.copytree(good, outside)
    (folder / "linked").symlink_to(outside)
    loop = copy("loop")
    (loop / "weights.npz").unlink()
    (loop / "weights.npz").symlink_to(loop / "weights.npz")
    nan = copy("nan")
    arrays = dict(np.load(nan / "weights.npz", allow_pickle=False))
    np.savez(nan / "weights.npz", **(arrays | {"input_std": np.array(1e-300, arrays["input_std"].dtype)}))
    return folder


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs and links of POSIX")
def test_run_folders_from_elsewhere_are_read_as_untrusted(hostile_runs):
    with serving(hostile_runs) as url:
        started = time.monotonic()
        status, body = get(url, "/api/runs")
        assert status == 200 and time.monotonic() - started < 10
        listed = {run["run"]: run for run in json.loads(body)["runs"]}
        assert set(listed) == {"good", "passwd", "zero", "fifo", "deep", "nested", "loop", "nan"}
        assert "cannot be read" in listed["loop"]["unservable"]
        assert b"root:" not in body and "curves.png" not in listed["passwd"]["files"]
        for name in ("passwd", "zero"):
            status, one = get(url, f"/api/runs/{name}")
            assert status == 200 and json.loads(one)["config"] is None and b"root:" not in one
            status, picture = get(url, f"/api/runs/{name}/curves.png")
            assert status == 404 and b"outside the run" in picture
        assert get(url, "/api/runs/fifo")[0] == 200
        assert get(url, "/api/runs/deep")[0] == 200
        status, one = get(url, "/api/runs/nested")
        assert status == 200 and json.loads(one)["metrics"] == {}
        status, answer = post(url, (ROOT / "docs" / "seven.jpg").read_bytes(), "run=nan")
        assert status == 409 and "not finite" in answer["error"]
        assert post(url, (ROOT / "docs" / "seven.jpg").read_bytes(), "run=good")[0] == 200


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs and links of POSIX")
def test_mlp_runs_over_hostile_folders_says_what_is_wrong(hostile_runs):
    result = mlp("runs", hostile_runs)
    assert result.exit_code == 0 and "Traceback" not in result.output
    assert (
        "outside the run" in result.output
        and "FIFO" in result.output
        and "nested too deeply" in result.output
    )


def test_non_finite_outputs_are_an_error_not_nan_in_json(hostile_runs):
    result = mlp("predict", hostile_runs / "nan", ROOT / "docs" / "seven.jpg", "--json")
    assert result.exit_code == 1 and "NaN" not in result.stdout and "not finite" in result.output


def test_an_image_of_infinities_is_reported_and_the_others_read(runs_dir, tmp_path):  # noqa: F811
    values = np.zeros((40, 40), np.float32)
    values[10:30, 18:22] = np.inf
    Image.fromarray(values, "F").save(tmp_path / "infinite.tif")
    result = mlp("predict", runs_dir / "mnist", tmp_path / "infinite.tif", ROOT / "docs" / "seven.jpg")
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "infinite.tif: holds values that are not numbers" in result.output
    assert "seven.jpg: 7" in result.output


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="counts the server's processes in /proc")
def test_two_worker_processes_answer_by_default_and_one_on_request(runs_dir, drawn):  # noqa: F811
    for asked, expected in (((), 2), (("--workers", "1"), 1)):
        child, url = start_serve(runs_dir, *asked)
        try:
            answers = [post(url, path.read_bytes())[0] for path in drawn[0][:8]]
            assert answers == [200] * 8
            started = workers(child.pid)
            assert len(started) == expected and (expected > 1 or started == [child.pid])
        finally:
            child.terminate()
            child.wait(30)


def test_weights_that_fail_to_load_are_not_read_again_until_they_change(runs_dir, tmp_path, monkeypatch):  # noqa: F811
    run = tmp_path / "runs" / "broken"
    shutil.copytree(runs_dir / "mnist", run)
    (run / "weights.npz").write_bytes(b"PK\x03\x04 not a whole archive")
    loads = []
    monkeypatch.setattr(
        serve.predict,
        "load_model",
        lambda path, load=serve.predict.load_model: loads.append(path) or load(path),
    )
    catalogue = serve.Catalogue(tmp_path / "runs")
    for _ in range(3):
        assert "not a readable weights file" in catalogue.unservable(run)
    assert len(loads) == 1
    shutil.copy(runs_dir / "mnist" / "weights.npz", run / "weights.npz")
    assert catalogue.unservable(run) is None and len(loads) == 2
