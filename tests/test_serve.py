"""`mlp serve` against the real server on 127.0.0.1 (the `mlp serve` command in a child
process): drawn real MNIST digits read as `mlp predict` reads them, the gradient is the
network's own, bad bodies get a 4xx and the server lives on, nothing but the listed runs'
files can be fetched, concurrent clients agree, and nothing is written."""

import http.client
import io
import json
import shutil
import socket
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path

import browser as browser_tools
import numpy as np
import pytest
from conftest import MLP_COMMAND, ROOT, TINY, closed_port, mlp, require, serving, start_serve, write_idx_dir
from PIL import Image
from test_predict import as_drawn

from mlpcli import serve
from mlpcli.artifacts import load_weights
from mlpcli.data import DataConfig, load_split


@pytest.fixture(scope="module")
def runs_dir(mnist_dir, tmp_path_factory):
    """A folder of runs: a small net trained on the real MNIST (and evaluated), and one on
    8×8 synthetic digits, whose weights do not take 28×28 images."""
    folder = tmp_path_factory.mktemp("serve") / "runs"
    sets = ["data.source=idx", f"data.dir={mnist_dir}", "model.hidden=[256]", "train.epochs=3"]
    result = mlp("train", "--out", folder / "mnist", *[a for s in sets for a in ("--set", s)])
    assert result.exit_code == 0, result.output
    assert mlp("eval", folder / "mnist").exit_code == 0
    idx = write_idx_dir(folder.parent / "idx")
    tiny = mlp("train", "--config", TINY, "--set", f"data.dir={idx}", "--out", folder / "tiny")
    assert tiny.exit_code == 0, tiny.output
    for name in ("secret.txt", "config.yaml"):  # beside the runs: a traversal would find them
        (folder.parent / name).write_text("not to be served")
    return folder


@pytest.fixture(scope="module")
def server(runs_dir):
    with serving(runs_dir) as url:
        yield url


def post(
    url: str, body: bytes, query: str = "run=mnist&top=10", content_type: str | None = None
) -> tuple[int, dict]:
    headers = {"Content-Type": content_type} if content_type else {}
    request = urllib.request.Request(f"{url}/api/predict?{query}", data=body, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)


def get(url: str, path: str) -> tuple[int, bytes]:
    """GET `path` sent as it is written (no client-side normalisation of .. or %2f)."""
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    connection.request("GET", path)
    response = connection.getresponse()
    return response.status, response.read()


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def drawn(mnist_dir, tmp_path_factory):
    """60 real MNIST test digits as people draw them (test_predict.as_drawn), as files."""
    test = load_split(DataConfig(source="idx", dir=str(mnist_dir)), "test")
    folder = tmp_path_factory.mktemp("drawn")
    paths = []
    for i, digit in enumerate(test.images[:60].reshape(-1, 28, 28)):
        paths.append(folder / f"{i:02d}.png")
        as_drawn(digit, i).save(paths[-1])
    return paths, test.labels[:60]


def test_drawn_digits_are_read_as_mlp_predict_reads_them(server, runs_dir, drawn):
    paths, labels = drawn
    predicted = json.loads(mlp("predict", runs_dir / "mnist", *paths, "--json", "--top", "10").output)
    answers = [post(server, path.read_bytes()) for path in paths]
    assert all(status == 200 for status, _ in answers)
    for (_, answer), expected in zip(answers, predicted):
        assert [p["class"] for p in answer["predictions"]] == [p["class"] for p in expected["predictions"]]
        got, want = ([p["probability"] for p in a["predictions"]] for a in (answer, expected))
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)
    said = np.array([answer["predictions"][0]["class"] for _, answer in answers])
    assert np.mean(said == labels) >= 0.9  # as in test_predict: the net's test accuracy is ~0.97


def test_the_why_is_the_gradient_of_the_answers_margin_over_the_runner_up(server, runs_dir, drawn):
    """∂(z_k - z_j)/∂pixel for the answer k and the runner-up j: each of its largest entries
    against a central difference of the served network's margin, and a step along it widens
    the margin."""
    paths, _ = drawn
    status, answer = post(server, paths[0].read_bytes())
    assert status == 200
    pixels, gradient = np.array(answer["input"], dtype=np.float64), np.array(answer["gradient"])
    assert pixels.shape == gradient.shape == (28, 28) and pixels.max() == 255
    saved = load_weights(runs_dir / "mnist")
    k, j = answer["predictions"][0]["class"], answer["predictions"][1]["class"]
    assert answer["runner_up"]["class"] == j

    def margin(image: np.ndarray) -> float:
        Z = saved.model.forward(saved.norm.apply(image.reshape(1, -1)))[0].astype(np.float64)
        return Z[k] - Z[j]

    for index in np.argsort(-np.abs(gradient).ravel())[:5]:
        step = np.zeros(28 * 28)
        step[index] = 0.5
        numeric = margin(pixels.ravel() + step) - margin(pixels.ravel() - step)  # per grey level
        assert numeric == pytest.approx(gradient.ravel()[index], rel=0.02)
    assert margin(pixels + 2 * np.sign(gradient)) > margin(pixels) + 1
    hidden = answer["activations"]
    assert [len(a) for a in hidden] == [256] and min(hidden[0]) >= 0  # relu's a^1


def blank() -> bytes:
    return png(Image.new("L", (280, 280), 255))


def bomb() -> bytes:
    """A PNG of 8,000 × 7,000 pixels (56 million) in a few kilobytes: over serve.MAX_PIXELS,
    under Pillow's own limit for decompression bombs, so only serve's check refuses it."""
    return png(Image.new("1", (8_000, 7_000)))


EPS = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 28 28\n0 0 moveto 28 28 lineto stroke\nshowpage\n"
BAD = {  # what is sent → the status it gets
    "no body": (b"", "run=mnist", 400),
    "text": (b"hello", "run=mnist", 422),
    "a truncated PNG": (None, "run=mnist", 422),
    "a blank drawing": (None, "run=mnist", 422),
    "a decompression bomb": (None, "run=mnist", 413),
    "an unknown run": (None, "run=nope", 404),
    "a run whose weights are not for 28×28": (None, "run=tiny", 409),
    "top not a number": (None, "run=mnist&top=x", 400),
    "top a digit that is not 0-9": (None, "run=mnist&top=%C2%B2", 400),
    "top 0": (None, "run=mnist&top=0", 400),
}


@pytest.mark.parametrize("case", BAD)
def test_a_bad_request_gets_a_4xx_with_a_message_and_the_server_lives_on(server, drawn, case):
    body, query, expected = BAD[case]
    good = drawn[0][1].read_bytes()
    body = {
        "a truncated PNG": good[: len(good) // 2],
        "a blank drawing": blank(),
        "a decompression bomb": bomb(),
    }.get(case, body if body is not None else good)
    status, answer = post(server, body, query)
    assert status == expected and answer["status"] == expected and answer["error"], answer
    assert post(server, good)[0] == 200


def test_eps_is_never_opened_as_an_image(server):
    """Pillow reads EPS by running Ghostscript; the server does not let it try (here, with no
    Ghostscript, Pillow's attempt would say it could not find it)."""
    status, answer = post(server, EPS)
    assert status == 422 and answer["error"] == "the image: not an image Pillow can read"


def raw_exchange(url: str, head: bytes, chunks: list[bytes]) -> bytes:
    """Send `head` and then `chunks` on a raw connection as far as the server reads them, and
    return what the server answered."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as connection:
        connection.sendall(head)
        try:
            for chunk in chunks:
                connection.sendall(chunk)
        except OSError:  # the server answered and closed without reading the rest: as it should
            pass
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            data = connection.recv(65536)
            if not data:
                break
            answer += data
        return answer


def test_a_wrong_method_or_path_is_a_json_4xx(server):
    status, body = get(server, "/api/predict")
    assert status == 405 and json.loads(body)["status"] == 405
    status, body = get(server, "/nothing-here")
    assert status == 404 and json.loads(body)["error"]


TRAVERSALS = [
    "/api/runs/mnist/weights.npz",  # a file of a listed run that is not served
    "/api/runs/mnist/checkpoint.npz",
    "/api/runs/mnist/..%2fmnist%2fweights.npz",
    "/api/runs/mnist/%2e%2e%2fsecret.txt",
    "/api/runs/..%2fsecret.txt",
    "/api/runs/%2e%2e/secret.txt",
    "/api/runs/%2e%2e/config.yaml",
    "/api/runs/..",
    "/api/runs/%2e%2e",
    "/api/runs/../secret.txt",
    "/api/runs/mnist/../../secret.txt",
    "/api/runs/mnist/%2e%2e%2f%2e%2e%2fsecret.txt",
    "/api/runs/mnist/..%5c..%5csecret.txt",
    "/api/runs/%2fetc%2fpasswd/config.yaml",
    "/../secret.txt",
    "/app.js/../../secret.txt",
    "/%2e%2e/secret.txt",
    "/api/runs/mnist/%252e%252e%252fsecret.txt",
]


@pytest.mark.parametrize("path", TRAVERSALS)
def test_only_the_files_of_listed_runs_can_be_fetched(server, path):
    status, body = get(server, path)
    assert 400 <= status < 500 and b"not to be served" not in body and b"PK" not in body[:2]


def test_the_runs_as_mlp_runs_lists_them_with_their_files(server, runs_dir):
    status, body = get(server, "/api/runs")
    listed = {run["run"]: run for run in json.loads(body)["runs"]}
    assert status == 200 and set(listed) == {"mnist", "tiny"}
    metrics = json.loads((runs_dir / "mnist" / "metrics.json").read_text())
    assert (
        listed["mnist"]["test_acc"] == metrics["test_accuracy"] and listed["mnist"]["status"] == "completed"
    )
    assert {"curves.png", "confusion.png", "mistakes.png", "config.yaml"} <= set(listed["mnist"]["files"])
    assert listed["mnist"]["classes"] == [str(k) for k in range(10)]
    assert listed["mnist"]["unservable"] is None and "64 inputs" in listed["tiny"]["unservable"]
    status, body = get(server, "/api/runs/mnist/curves.png")
    assert status == 200 and body == (runs_dir / "mnist" / "curves.png").read_bytes()
    status, body = get(server, "/api/runs/mnist")
    assert json.loads(body)["config"] == (runs_dir / "mnist" / "config.yaml").read_text()


def test_the_page_and_its_files(server):
    status, page = get(server, "/")
    assert status == 200 and b'<canvas id="pad"' in page and b'id="answer"' in page
    assert b"http" not in page.replace(b"http-equiv", b"")  # nothing loaded from elsewhere
    for path in ("/app.js", "/style.css"):
        status, body = get(server, path)
        assert status == 200 and b"http" not in body


def test_sixteen_clients_at_once_get_the_answers_one_gets(server, drawn):
    paths, _ = drawn
    bodies = [path.read_bytes() for path in paths[:16]]
    alone = [post(server, body)[1] for body in bodies]
    together = [None] * (16 * 4)

    def client(i: int) -> None:
        for j in range(4):
            together[i * 4 + j] = post(server, bodies[i])

    threads = [threading.Thread(target=client, args=(i,)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(status == 200 for status, _ in together)
    assert all(answer == alone[i // 4] for i, (_, answer) in enumerate(together))


def snapshot(folder: Path) -> dict:
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(folder.parent.rglob("*"))}


def test_serving_writes_nothing(runs_dir, drawn):
    before = snapshot(runs_dir)
    with serving(runs_dir) as url:
        post(url, drawn[0][1].read_bytes())
        post(url, b"hello")
        get(url, "/api/runs")
        get(url, "/api/runs/mnist/confusion.png")
    assert snapshot(runs_dir) == before


def test_a_run_with_non_finite_metrics_or_a_config_not_in_utf8_is_still_served(runs_dir, tmp_path):
    run = tmp_path / "runs" / "odd"
    shutil.copytree(runs_dir / "tiny", run)
    metrics = json.loads((run / "metrics.json").read_text())
    (run / "metrics.json").write_text(json.dumps(metrics | {"test_loss": float("nan")}))
    (run / "config.yaml").write_bytes((run / "config.yaml").read_bytes() + b"# caf\xe9\n")
    with serving(tmp_path / "runs") as url:
        listed, one = get(url, "/api/runs"), get(url, "/api/runs/odd")
    assert listed[0] == 200 and one[0] == 200
    assert json.loads(one[1])["metrics"]["test_loss"] is None and "caf\ufffd" in json.loads(one[1])["config"]


def test_a_request_naming_another_host_is_refused_on_loopback(server):
    host, port = server.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    connection.request("GET", "/api/runs", headers={"Host": "rebound.example"})
    assert connection.getresponse().status == 400


def test_serving_the_run_one_is_in_names_it(runs_dir):
    with serving(".", cwd=runs_dir / "mnist") as url:
        status, body = get(url, "/api/runs")
        config = get(url, "/api/runs/mnist")
    assert [run["run"] for run in json.loads(body)["runs"]] == ["mnist"] and config[0] == 200


def test_a_restart_on_the_same_port_binds_at_once(runs_dir, drawn):
    port = closed_port()
    for _ in range(2):  # the first one's connections wait in TIME-WAIT when the second binds
        with serving(runs_dir, port=port) as url:
            assert post(url, drawn[0][1].read_bytes())[0] == 200


def test_listening_beyond_this_machine_is_said(runs_dir):
    child, _ = start_serve(runs_dir, "--host", "0.0.0.0")
    child.terminate()
    _, stderr = child.communicate(timeout=30)
    assert "warning: listening on 0.0.0.0: anyone who can reach this port can use it" in stderr


def test_a_port_in_use_is_a_clear_error(runs_dir):
    sock = serve.listening_socket("127.0.0.1", 0)
    sock.listen()
    port = sock.getsockname()[1]
    result = subprocess.run(
        [*MLP_COMMAND, "serve", str(runs_dir), "--port", str(port)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    sock.close()
    assert result.returncode == 1 and f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "--port" in result.stderr and "Traceback" not in result.stderr


def test_without_the_serve_extra_it_says_what_to_install(runs_dir, tmp_path):
    code = "import sys; sys.modules['starlette'] = None\nfrom mlpcli.cli import entry_point; entry_point()"
    result = subprocess.run(
        [sys.executable, "-c", code, "serve", str(runs_dir)], capture_output=True, text=True, timeout=60
    )
    # the mlpcli that runs, as it was installed (pip install -e . in this clone): never the
    # `mlpcli` on PyPI, which is another project
    said = f'Error: mlp serve needs starlette, of its extra: pip install -e "{ROOT}[serve]"\n'
    assert result.returncode == 1 and result.stderr == said, result.stderr


def test_a_folder_that_is_not_there(tmp_path):
    result = mlp("serve", tmp_path / "missing")
    assert result.exit_code == 2 and "does not exist" in result.output


def test_a_fashion_mnist_run_answers_with_its_class_names(fashion_dir, drawn, tmp_path):
    sets = ["data.source=idx", f"data.dir={fashion_dir}", "data.name=fashion_mnist", "model.hidden=[32]"]
    result = mlp(
        "train",
        "--out",
        tmp_path / "runs" / "fashion",
        "--set",
        "train.epochs=1",
        *[a for s in sets for a in ("--set", s)],
    )
    assert result.exit_code == 0, result.output
    with serving(tmp_path / "runs" / "fashion") as url:  # one run alone
        status, answer = post(url, drawn[0][1].read_bytes(), "top=10")  # no run: the one there is
        listed = json.loads(get(url, "/api/runs")[1])["runs"]
    assert status == 200 and answer["dataset"] == "fashion_mnist"
    assert {p["name"] for p in answer["predictions"]} == set(listed[0]["classes"])
    assert "Ankle boot" in listed[0]["classes"]


# --- in a real browser: Debian's headless Chromium, driven by Selenium ---------------------------


@pytest.fixture(scope="module")
def browser():
    if not browser_tools.available():
        require(
            Path(browser_tools.CHROMIUM), "Chromium and its driver (apt-get install chromium chromium-driver)"
        )
        require(Path(browser_tools.CHROMEDRIVER), "chromium-driver (apt-get install chromium-driver)")
    driver = browser_tools.chromium()
    yield driver
    driver.quit()


@pytest.mark.parametrize("digit", ["1", "0", "7"])
def test_a_digit_drawn_on_the_pad_in_a_real_browser_reads_right(server, browser, digit):
    from selenium.webdriver.common.by import By

    browser.get(f"{server}/")
    browser_tools.count_requests(browser)
    browser_tools.draw(browser, browser_tools.DIGITS[digit])
    answer = browser_tools.answer_is(browser, digit)
    assert answer.startswith(digit), (answer, browser.find_element(By.ID, "error").text)
    browser_tools.settled(browser)  # the bars of the last answer, not ones about to be redrawn
    bars = browser.find_elements(By.CSS_SELECTOR, "#bars .bar")
    assert len(bars) == 10 and "top" in bars[int(digit)].get_attribute("class")
    layers = browser.find_elements(By.CSS_SELECTOR, "#layers .layer")
    assert len(layers) == 1 and "256 units" in layers[0].text
    browser.find_element(By.ID, "clear").click()
    assert browser_tools.answer_is(browser, "draw a digit") == "draw a digit"
    assert browser_tools.console_errors(browser) == []


def test_an_image_that_holds_no_digit_clears_the_last_answer(server, browser, tmp_path):
    from selenium.webdriver.common.by import By

    browser.get(f"{server}/")
    browser_tools.draw(browser, browser_tools.DIGITS["1"])
    assert browser_tools.answer_is(browser, "1").startswith("1")
    (tmp_path / "notes.txt").write_text("not an image")
    browser.execute_script("document.getElementById('file').hidden = false")
    browser.find_element(By.ID, "file").send_keys(str(tmp_path / "notes.txt"))
    assert browser_tools.answer_is(browser, "no answer") == "no answer"
    assert "not an image" in browser.find_element(By.ID, "error").text
    assert browser.find_elements(By.CSS_SELECTOR, "#bars .bar") == []
    assert browser.find_element(By.ID, "why-label").text == ""
    errors = browser_tools.console_errors(browser)  # Chromium logs the 4xx it was answered, no more
    assert len(errors) == 1 and "status of 422" in errors[0], errors


def test_undo_takes_back_the_last_stroke(server, browser):
    from selenium.webdriver.common.by import By

    browser.get(f"{server}/")
    browser_tools.draw(browser, browser_tools.DIGITS["1"])
    assert browser_tools.answer_is(browser, "1").startswith("1")
    browser_tools.draw(browser, [[(60, 140), (220, 140)]])  # a bar across: no longer a 1
    browser.find_element(By.ID, "undo").click()
    assert browser_tools.answer_is(browser, "1").startswith("1")
    assert browser_tools.console_errors(browser) == []
