"""`mlp serve`'s page on a phone and for a newcomer, in a real Chromium emulating a 390×844
phone: it fits without sideways scrolling, a 12 MP photo as phones take it (6 MB, EXIF
orientation) is shrunk in the browser, shown on the pad and read, a kept image is asked about
again when another run is chosen, and a folder with no run to answer says at once what to do.
The backward pass panel, in a desktop Chromium: its pictures for a drawn 7, a label picked,
SGD steps that lower the loss on the page's own copy, Reset, a copy the server dropped, and
an RNN's r^(t); its requests one at a time while drawing."""

import base64
import io
import re
import shutil
import urllib.request
from pathlib import Path

import browser as browser_tools
import numpy as np
import pytest
from conftest import CONFIGS, ROOT, mlp, require, serving
from PIL import Image, ImageDraw, ImageOps

from mlpcli import serve

PHONE = {"width": 390, "height": 844, "deviceScaleFactor": 3, "mobile": True}  # an iPhone 12-15's
# runs named as `mlp train` names them when given no --out: the selector's options are long
BEST, SMALL = "mnist-20240611-093512", "mnist-20240611-101208"
RNN = "rnn"  # a tiny RNN: 32 units, one epoch
SEVEN = [(900, 1300), (2100, 1300), (1700, 2100), (1350, 2900)]  # pen strokes on a 3024×4032 page
ORIENTATION = 0x0112  # the EXIF tag; 6: the stored pixels are shown turned 90° clockwise


@pytest.fixture(scope="module")
def runs_dir(mnist_dir, tmp_path_factory):
    """Three runs on the real MNIST that answer apart: 256 hidden units (the best, evaluated, so
    it has pictures), 64, and an RNN of 32 units reading rows (the least accurate)."""
    folder = tmp_path_factory.mktemp("page") / "runs"
    augment = [f"data.augment.{how}=0" for how in ("shift", "rotate", "scale")]
    rnn = ["--config", CONFIGS / "mnist_rnn.yaml", *[a for s in augment for a in ("--set", s)]]
    for name, hidden, epochs, config in ((BEST, 256, 3, []), (SMALL, 64, 1, []), (RNN, 32, 1, rnn)):
        sets = [
            "data.source=idx",
            f"data.dir={mnist_dir}",
            f"model.hidden=[{hidden}]",
            f"train.epochs={epochs}",
        ]
        result = mlp("train", *config, "--out", folder / name, *[a for s in sets for a in ("--set", s)])
        assert result.exit_code == 0, result.output
    assert mlp("eval", folder / BEST).exit_code == 0
    return folder


@pytest.fixture(scope="module")
def server(runs_dir):
    with serving(runs_dir) as url:
        yield url


def require_chromium() -> None:
    require(Path(browser_tools.CHROMIUM), "Chromium (apt-get install chromium chromium-driver)")
    require(Path(browser_tools.CHROMEDRIVER), "chromium-driver (apt-get install chromium-driver)")


@pytest.fixture(scope="module")
def phone():
    require_chromium()
    driver = browser_tools.chromium()
    # a phone's viewport: <meta name="viewport"> applies, and a page wider than it is zoomed out
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", PHONE)
    yield driver
    driver.quit()


def paper_with_a_seven() -> Image.Image:
    """A 7 in thick dark pen on grainy, unevenly lit paper: a phone's 12 MP portrait photo, upright."""
    width, height = 3024, 4032
    paper = np.random.default_rng(7).standard_normal((height, width, 3), dtype=np.float32)
    paper *= 12  # the grain that keeps a JPEG large
    paper += np.linspace(226, 206, height, dtype=np.float32)[:, None, None] + np.float32([0, -3, -10])
    image = Image.fromarray(np.clip(paper, 0, 255).astype(np.uint8))
    del paper
    pen = ImageDraw.Draw(image)
    pen.line(SEVEN, fill=(35, 35, 45), width=110, joint="curve")
    for x, y in SEVEN:
        pen.ellipse((x - 55, y - 55, x + 55, y + 55), fill=(35, 35, 45))
    return image


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """The photo as the phone stores it: upright, or turned with EXIF orientation 6 (as phones
    store portraits), whose 7 is upright only when the orientation is applied; and small (3 MP,
    under 1 MB, which today's page sent as it is). Each with the upright picture."""
    folder = tmp_path_factory.mktemp("photos")
    upright = paper_with_a_seven()
    upright.save(folder / "upright.jpg", quality=95)
    exif = Image.Exif()
    exif[ORIENTATION] = 6
    upright.transpose(Image.Transpose.ROTATE_90).save(folder / "turned.jpg", quality=95, exif=exif.tobytes())
    upright.resize((756, 1008), Image.Resampling.LANCZOS).save(folder / "small.jpg", quality=90)
    for name in ("upright", "turned"):
        assert (folder / f"{name}.jpg").stat().st_size >= 5 * 2**20  # over the server's 4 MiB cap
    assert Image.open(folder / "turned.jpg").size == (4032, 3024)
    return {name: (folder / f"{name}.jpg", upright) for name in ("upright", "turned", "small")}


def opened(driver, url: str) -> None:
    """Open the page and wait until its runs are listed and the best one chosen."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get_log("browser")  # what earlier tests left there
    driver.get(f"{url}/")
    WebDriverWait(driver, 15).until(lambda d: d.find_element(By.ID, "run-summary").text)
    driver.execute_script(RECORDER)
    browser_tools.count_requests(driver)


# the bodies the page sends, and the most requests to each path in flight at once
RECORDER = """
window.sentBodies = [];
window.inFlight = {};
window.mostOpen = {};
const fetched = window.fetch;
window.fetch = (url, options) => {
  if (options && options.body) window.sentBodies.push(options.body);
  const path = new URL(url, location.href).pathname;
  window.inFlight[path] = (window.inFlight[path] || 0) + 1;
  window.mostOpen[path] = Math.max(window.mostOpen[path] || 0, window.inFlight[path]);
  return fetched(url, options).finally(() => window.inFlight[path]--);
};
"""
LAST_SENT = """
const done = arguments[arguments.length - 1];
const reader = new FileReader();
reader.onload = () => done(reader.result);
reader.readAsDataURL(window.sentBodies.at(-1));
"""


def last_sent(driver) -> bytes:
    """The body of the page's last request, recorded by RECORDER."""
    return base64.b64decode(driver.execute_async_script(LAST_SENT).split(",", 1)[1])


def upload(driver, path) -> None:
    from selenium.webdriver.common.by import By

    driver.execute_script("document.getElementById('file').hidden = false")
    driver.find_element(By.ID, "file").send_keys(str(path))


def text(driver, element_id: str) -> str:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.ID, element_id).text


def pad_ink(driver) -> np.ndarray:
    """Where the pad is dark: what it shows, read back from its canvas."""
    data = driver.execute_script("return document.getElementById('pad').toDataURL('image/png')")
    shown = Image.open(io.BytesIO(base64.b64decode(data.split(",", 1)[1]))).convert("L")
    return np.asarray(shown) < 120


def ink_of(upright: Image.Image, side: int = 280) -> np.ndarray:
    """Where `upright`, fitted into the pad and centred on white, is dark."""
    fitted = ImageOps.contain(upright, (side, side), Image.Resampling.LANCZOS)
    pad = Image.new("RGB", (side, side), "white")
    pad.paste(fitted, ((side - fitted.width) // 2, (side - fitted.height) // 2))
    return np.asarray(pad.convert("L")) < 120


def overlap(a: np.ndarray, b: np.ndarray) -> float:
    return np.count_nonzero(a & b) / max(1, np.count_nonzero(a | b))


def test_the_page_fits_a_phone_without_sideways_scrolling(server, phone):
    from selenium.webdriver.common.by import By

    opened(phone, server)
    browser_tools.draw(phone, browser_tools.DIGITS["7"])  # the answer's bars and layers too
    assert browser_tools.answer_is(phone, "7").startswith("7")
    browser_tools.settled(phone)  # and the backward pass panel
    assert len(phone.find_elements(By.CSS_SELECTOR, "#backprop canvas")) > 4
    phone.execute_script("document.querySelectorAll('details').forEach((d) => { d.open = true; })")
    inner, scroll = phone.execute_script("return [innerWidth, document.documentElement.scrollWidth]")
    assert inner == PHONE["width"], "the phone zoomed the page out: something in it is wider"
    assert scroll <= inner
    phone.execute_script("window.scrollTo(0, 0)")
    for element_id in ("run", "pad"):  # within the viewport, whole
        box = phone.execute_script(f"return document.getElementById('{element_id}').getBoundingClientRect()")
        assert box["left"] >= 0 and box["right"] <= inner, (element_id, box)
        assert box["top"] >= 0 and box["bottom"] <= PHONE["height"], (element_id, box)
    for card in phone.find_elements(By.CSS_SELECTOR, ".card"):
        assert card.rect["x"] + card.rect["width"] <= inner, card.text[:40]
    assert browser_tools.console_errors(phone) == []


@pytest.mark.parametrize("case", ["upright", "turned"])
def test_a_phone_photo_is_shrunk_in_the_browser_shown_and_read(server, phone, photos, case):
    path, upright = photos[case]
    opened(phone, server)
    upload(phone, path)
    answer = browser_tools.answer_is(phone, "7", timeout=30)
    assert answer.startswith("7"), (answer, text(phone, "error"))
    sent = last_sent(phone)
    assert len(sent) <= 2**20 and Image.open(io.BytesIO(sent)).size == (768, 1024)  # shrunk, upright
    assert overlap(pad_ink(phone), ink_of(upright)) > 0.6  # the photo, upright, where one draws
    assert "4032" in text(phone, "pad-note") and "1024" in text(phone, "pad-note")
    assert browser_tools.console_errors(phone) == []


def test_another_run_reads_the_kept_image_again_and_drawing_returns_to_the_pad(server, phone, photos):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    opened(phone, server)
    upload(phone, photos["small"][0])
    assert browser_tools.answer_is(phone, "7", timeout=30).startswith("7"), text(phone, "error")
    assert "256 units" in text(phone, "layers")
    Select(phone.find_element(By.ID, "run")).select_by_value(SMALL)
    WebDriverWait(phone, 30).until(lambda d: "64 units" in text(d, "layers"))
    assert text(phone, "answer").startswith("7")
    assert overlap(pad_ink(phone), ink_of(photos["small"][1])) > 0.6  # still shown
    browser_tools.draw(phone, browser_tools.DIGITS["1"])
    assert browser_tools.answer_is(phone, "1").startswith("1")
    assert text(phone, "pad-note") == "or drop an image file on the page"
    assert not pad_ink(phone)[:, :100].any()  # the photo is gone: only the 1, drawn at x ≈ 150
    assert browser_tools.console_errors(phone) == []


def test_an_image_the_browser_cannot_read_goes_as_it_is_and_the_servers_error_is_shown(
    server, phone, tmp_path
):
    opened(phone, server)
    (tmp_path / "scan.jpg").write_bytes(b"\xff\xd8 not really a JPEG " + bytes(serve.MAX_BODY))
    upload(phone, tmp_path / "scan.jpg")
    assert browser_tools.answer_is(phone, "no answer") == "no answer"
    assert "larger than" in text(phone, "error")  # the server's 413, as it says it
    errors = browser_tools.console_errors(phone)
    assert len(errors) == 1 and "status of 413" in errors[0], errors


@pytest.mark.parametrize("folder", ["empty", "untrained"])
def test_a_folder_with_no_run_to_answer_says_at_once_how_to_train_one(runs_dir, phone, tmp_path, folder):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    (tmp_path / "runs").mkdir()
    if folder == "untrained":  # a run whose training has only begun: no weights yet
        (tmp_path / "runs" / "mnist").mkdir()
        shutil.copy(runs_dir / BEST / "config.yaml", tmp_path / "runs" / "mnist")
    with serving(tmp_path / "runs") as url:
        phone.get_log("browser")  # what earlier tests left there
        phone.get(f"{url}/")
        body = phone.find_element(By.TAG_NAME, "body")
        WebDriverWait(phone, 10).until(lambda _: "mlp train --out runs/mnist" in body.text)
    said = text(phone, "no-runs")
    assert ("No trained runs in this folder yet" in said) == (folder == "empty")
    assert folder == "empty" or "mnist: run 'mnist' has no weights yet" in said
    assert browser_tools.console_errors(phone) == []


@pytest.fixture(scope="module")
def desktop():
    require_chromium()
    driver = browser_tools.chromium(1300, 1000)
    yield driver
    driver.quit()


STEP = re.compile(r"step (\d+): C (\S+) → (\S+) for y = (\S+) \(η (\S+)\); answer (\S+) \((\S+)\)")
BLANK_CANVASES = """
return [...document.querySelectorAll(arguments[0])].filter((canvas) => {
  const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  for (let i = 0; i < data.length; i += 4) {
    if (data[i + 3] && Math.min(data[i], data[i + 1], data[i + 2]) < 250) return false;
  }
  return true;
}).length;
"""


def steps_logged(driver) -> list[tuple[int, float, float, str]]:
    """The step log's lines: (step, C before, C after, the answer after)."""
    from selenium.webdriver.common.by import By

    lines = [line.text for line in driver.find_elements(By.CSS_SELECTOR, "#bp-log li")]
    found = [STEP.fullmatch(line) for line in lines]
    assert all(found), lines
    return [(int(m[1]), float(m[2]), float(m[3]), m[6]) for m in found]


def shown_loss(driver) -> float:
    """C as the panel shows it: `C = −log ŷ₁ = 17.2 §8a`."""
    return float(re.search(r"= (\S+) §8a", text(driver, "bp-loss"))[1])


def drawn(driver, url: str, run: str | None = None, digit: str = "7") -> None:
    """The page opened (on `run`), `digit` drawn, and every answer to it shown, the panel's too."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    opened(driver, url)
    if run:
        Select(driver.find_element(By.ID, "run")).select_by_value(run)
        browser_tools.settled(driver)
    browser_tools.draw(driver, browser_tools.DIGITS[digit])
    browser_tools.settled(driver)
    assert text(driver, "answer") != "draw a digit", text(driver, "error")


def test_the_backward_pass_panel_shows_a_label_picked_and_steps_that_lower_its_loss(server, desktop):
    from selenium.webdriver.common.by import By

    drawn(desktop, server)
    assert text(desktop, "answer").startswith("7")
    assert text(desktop, "bp-label-note").startswith("y = 7, the network's answer")
    assert "the run as trained, which answers 7" in text(desktop, "bp-on")
    assert shown_loss(desktop) < 0.5  # the answer's own C: small
    # the pictures of 784-256-10: δ¹ and σ'(z¹), four units' gradient and weights, ∂C/∂x
    assert len(desktop.find_elements(By.CSS_SELECTOR, "#bp-hidden canvas")) == 2
    assert len(desktop.find_elements(By.CSS_SELECTOR, "#bp-first figure")) == 5
    assert len(desktop.find_elements(By.CSS_SELECTOR, "#backprop canvas")) == 2 + 4 * 2 + 1
    assert desktop.execute_script(BLANK_CANVASES, "#backprop canvas") == 0
    assert "δ1 = (W2)ᵀδ2 ⊙ σ′(z1)" in text(desktop, "bp-hidden")  # <sup>s read as text
    assert "units were off (σ′ = 0)" in text(desktop, "bp-hidden")
    assert len(desktop.find_elements(By.CSS_SELECTOR, "#bp-output .bar")) == 10
    checked = [row.text.split() for row in desktop.find_elements(By.CSS_SELECTOR, "#bp-check tbody tr")]
    assert [row[0] for row in checked] == ["W1", "b1", "W2", "b2"]
    assert all(float(row[-1]) < 1e-4 or row[-1] == "kink" for row in checked), checked

    browser_tools.pick_label(desktop, "1")
    assert "chosen" in desktop.find_element(By.CSS_SELECTOR, "#bp-labels button:nth-child(2)").get_attribute(
        "class"
    )
    as_trained = shown_loss(desktop)
    assert as_trained > 3  # −log ŷ₁ of a confident 7
    for _ in range(3):
        browser_tools.take_step(desktop)
    logged = steps_logged(desktop)
    assert [step for step, *_ in logged] == [1, 2, 3]
    assert logged[0][1] == as_trained  # the first step starts from the run as trained
    assert all(after < before for _, before, after, _ in logged), logged  # the loss falls
    assert [after for _, _, after, _ in logged[:-1]] == [before for _, before, _, _ in logged[1:]]
    assert shown_loss(desktop) == logged[-1][2]  # the panel shows the copy after the steps
    assert "the run after 3 steps" in text(desktop, "bp-on")
    assert text(desktop, "answer").startswith("7")  # the answer card is the run's, as trained

    desktop.find_element(By.ID, "bp-reset").click()
    browser_tools.wait_for(desktop, lambda d: "the run as trained, which answers 7" in text(d, "bp-on"))
    assert steps_logged(desktop) == []
    assert shown_loss(desktop) == as_trained
    assert browser_tools.console_errors(desktop) == []


def test_the_panel_asks_one_request_at_a_time_while_drawing(server, desktop):
    drawn(desktop, server)
    browser_tools.draw(desktop, browser_tools.DIGITS["0"], steps=30)  # ~120 redraws, each an ask
    browser_tools.settled(desktop)
    most = desktop.execute_script("return window.mostOpen")
    assert most["/api/predict"] == 1 and most["/api/backprop"] == 1, most
    assert browser_tools.console_errors(desktop) == []


def test_another_run_or_a_copy_the_server_dropped_starts_again_from_the_run_as_trained(server, desktop):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    drawn(desktop, server)
    browser_tools.pick_label(desktop, "1")
    as_trained = shown_loss(desktop)
    browser_tools.take_step(desktop)
    Select(desktop.find_element(By.ID, "run")).select_by_value(SMALL)  # the copy was of BEST
    browser_tools.wait_for(desktop, lambda d: "64 units" in text(d, "layers"))
    browser_tools.settled(desktop)
    assert steps_logged(desktop) == [] and "the run as trained" in text(desktop, "bp-on")
    Select(desktop.find_element(By.ID, "run")).select_by_value(BEST)
    browser_tools.wait_for(desktop, lambda d: "256 units" in text(d, "layers"))
    browser_tools.settled(desktop)
    assert "the run as trained" in text(desktop, "bp-on") and shown_loss(desktop) == as_trained

    browser_tools.take_step(desktop)
    browser_tools.take_step(desktop)
    seven = (ROOT / "docs" / "seven.jpg").read_bytes()
    for other in range(8):  # other pages' first steps: the server keeps 8 copies
        url = f"{server}/api/step?run={BEST}&label=3&session=other-page-{other}"
        with urllib.request.urlopen(urllib.request.Request(url, data=seven)) as answer:
            assert answer.status == 200
    line = browser_tools.take_step(desktop)
    assert line.startswith("step 1: C ") and float(STEP.fullmatch(line)[2]) == as_trained
    dropped = text(desktop, "bp-dropped")
    assert "copy of the run was dropped" in dropped and "at most 8 copies" in dropped, dropped
    assert "started again from the run as trained" in dropped
    assert browser_tools.console_errors(desktop) == []


def test_an_rnn_run_shows_r_t_for_every_step_and_its_norm_through_time(server, desktop):
    from selenium.webdriver.common.by import By

    drawn(desktop, server, run=RNN)
    assert "h(28)" in text(desktop, "layers")
    steps = desktop.find_element(By.CSS_SELECTOR, "#bp-steps canvas")
    assert (steps.get_attribute("width"), steps.get_attribute("height")) == ("32", "28")  # H units, T steps
    assert desktop.execute_script(BLANK_CANVASES, "#bp-steps canvas") == 0
    curve = desktop.find_element(By.CSS_SELECTOR, "svg#bp-norms polyline").get_attribute("points").split()
    assert len(curve) == 28 and curve[0] != curve[-1]
    assert "t = 1" in text(desktop, "bp-time") and "t = 28" in text(desktop, "bp-time")
    assert desktop.find_elements(By.CSS_SELECTOR, "#bp-hidden *") == []  # one layer: no hidden δ
    assert [row.text.split()[0] for row in desktop.find_elements(By.CSS_SELECTOR, "#bp-check tbody tr")] == [
        "U",
        "W",
        "b",
        "V",
        "c",
    ]
    browser_tools.pick_label(desktop, "1")
    browser_tools.take_step(desktop)
    assert len(steps_logged(desktop)) == 1
    assert browser_tools.console_errors(desktop) == []
