"""`mlp serve`'s page on a phone and for a newcomer, in a real Chromium emulating a 390×844
phone: it fits without sideways scrolling, a 12 MP photo as phones take it (6 MB, EXIF
orientation) is shrunk in the browser, shown on the pad and read, a kept image is asked about
again when another run is chosen, and a folder with no run to answer says at once what to do."""

import base64
import io
import shutil
from pathlib import Path

import browser as browser_tools
import numpy as np
import pytest
from conftest import mlp, require, serving
from PIL import Image, ImageDraw, ImageOps

from mlpcli import serve

PHONE = {"width": 390, "height": 844, "deviceScaleFactor": 3, "mobile": True}  # an iPhone 12-15's
# runs named as `mlp train` names them when given no --out: the selector's options are long
BEST, SMALL = "mnist-20240611-093512", "mnist-20240611-101208"
SEVEN = [(900, 1300), (2100, 1300), (1700, 2100), (1350, 2900)]  # pen strokes on a 3024×4032 page
ORIENTATION = 0x0112  # the EXIF tag; 6: the stored pixels are shown turned 90° clockwise


@pytest.fixture(scope="module")
def runs_dir(mnist_dir, tmp_path_factory):
    """Two runs on the real MNIST that answer apart: 256 hidden units (the best, evaluated, so it
    has pictures) and 64."""
    folder = tmp_path_factory.mktemp("page") / "runs"
    for name, hidden, epochs in ((BEST, 256, 3), (SMALL, 64, 1)):
        sets = [
            "data.source=idx",
            f"data.dir={mnist_dir}",
            f"model.hidden=[{hidden}]",
            f"train.epochs={epochs}",
        ]
        result = mlp("train", "--out", folder / name, *[a for s in sets for a in ("--set", s)])
        assert result.exit_code == 0, result.output
    assert mlp("eval", folder / BEST).exit_code == 0
    return folder


@pytest.fixture(scope="module")
def server(runs_dir):
    with serving(runs_dir) as url:
        yield url


@pytest.fixture(scope="module")
def phone():
    require(Path(browser_tools.CHROMIUM), "Chromium (apt-get install chromium chromium-driver)")
    require(Path(browser_tools.CHROMEDRIVER), "chromium-driver (apt-get install chromium-driver)")
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


RECORDER = """
window.sentBodies = [];
const fetched = window.fetch;
window.fetch = (url, options) => {
  if (options && options.body) window.sentBodies.push(options.body);
  return fetched(url, options);
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
