"""Debian's Chromium driven by Selenium (no browser is downloaded): open mlp serve's page and
draw on its pad with the pointer, as a person would with a mouse."""

import contextlib
import math
import os
import shutil

CHROMIUM = os.environ.get("MLPCLI_CHROMIUM", shutil.which("chromium") or "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("MLPCLI_CHROMEDRIVER", shutil.which("chromedriver") or "/usr/bin/chromedriver")
PAD = 280  # the pad's side in CSS pixels

# digits as a person draws them on the pad: strokes of (x, y) points
DIGITS = {
    "1": [[(150, 45), (146, 140), (142, 235)]],
    "0": [
        [
            (140 + 62 * math.sin(t / 20 * 2 * math.pi), 140 - 95 * math.cos(t / 20 * 2 * math.pi))
            for t in range(21)
        ]
    ],
    "7": [[(75, 55), (205, 55), (165, 130), (125, 235)]],
}


def available() -> bool:
    return os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)


def chromium(width: int = 1300, height: int = 1000):
    """A headless Chromium whose console messages can be read back."""
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", f"--window-size={width},{height}"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


def draw(driver, strokes: list[list[tuple[float, float]]], steps: int = 8) -> None:
    """Draw `strokes` on #pad with the pointer: down, moves along each segment, up."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    pad = driver.find_element(By.ID, "pad")
    actions = ActionChains(driver, duration=5)
    for stroke in strokes:
        x, y = stroke[0]
        actions.move_to_element_with_offset(pad, round(x - PAD / 2), round(y - PAD / 2)).click_and_hold()
        for (x0, y0), (x1, y1) in zip(stroke, stroke[1:]):
            for i in range(1, steps + 1):
                x, y = x0 + (x1 - x0) * i / steps, y0 + (y1 - y0) * i / steps
                actions.move_to_element_with_offset(pad, round(x - PAD / 2), round(y - PAD / 2))
        actions.release()
    actions.perform()


def answer_is(driver, digit: str, timeout: float = 15) -> str:
    """Wait until #answer starts with `digit`; return its text (what it says when it does not)."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    answer = driver.find_element(By.ID, "answer")
    with contextlib.suppress(TimeoutException):
        WebDriverWait(driver, timeout).until(lambda _: answer.text.startswith(digit))
    return answer.text


def console_errors(driver) -> list[str]:
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


# The page's work in flight: its requests until their answer is read, and its drawings being
# encoded (Chrome runs toBlob when the page is idle: long after the pen lifts, at times).
COUNTER = """
if (window.requestsOpen === undefined) {
  window.requestsOpen = 0;
  const fetched = window.fetch;
  window.fetch = (...args) => {
    window.requestsOpen++;
    const read = fetched(...args).then((response) => response.clone().text().then(() => response));
    read.finally(() => window.requestsOpen--).catch(() => {});
    return read;
  };
  const toBlob = HTMLCanvasElement.prototype.toBlob;
  HTMLCanvasElement.prototype.toBlob = function (callback, ...options) {
    window.requestsOpen++;
    const done = (blob) => {
      try {
        callback(blob);
      } finally {
        window.requestsOpen--;
      }
    };
    return toBlob.call(this, done, ...options);
  };
}
"""


def count_requests(driver) -> None:
    """Count the page's work in flight from now on (COUNTER, for `settled`)."""
    driver.execute_script(COUNTER)


def settled(driver, timeout: float = 30) -> None:
    """Wait until the page counted by `count_requests` has had no work in flight for a while:
    the last drawing is sent, and the answers to it (the panel's too) are shown."""
    import time

    quiet_since = time.monotonic()
    deadline = quiet_since + timeout
    while time.monotonic() < deadline:
        if driver.execute_script("return window.requestsOpen") != 0:
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since >= 0.3:
            return
        time.sleep(0.05)
    raise TimeoutError("the page kept asking")


def wait_for(driver, condition, timeout: float = 15):
    """Wait until `condition(driver)` is true; its value."""
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(condition)


def text_of(driver, element_id: str) -> str:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.ID, element_id).text


def pick_label(driver, name: str, timeout: float = 15) -> None:
    """Click class `name` in the backward pass panel; wait until the panel is shown for it."""
    from selenium.webdriver.common.by import By

    buttons = driver.find_elements(By.CSS_SELECTOR, "#bp-labels button")
    next(button for button in buttons if button.text == name).click()
    wait_for(driver, lambda d: text_of(d, "bp-label-note").startswith(f"y = {name}, picked"), timeout)


def take_step(driver, timeout: float = 30) -> str:
    """Click "Take a step"; wait until the step is logged and the panel is shown for the copy
    after it. The step's line in the log."""
    from selenium.webdriver.common.by import By

    taken = len(driver.find_elements(By.CSS_SELECTOR, "#bp-log li"))
    wait_for(driver, lambda d: d.find_element(By.ID, "bp-step").is_enabled(), timeout)
    driver.find_element(By.ID, "bp-step").click()
    line = wait_for(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#bp-log li")[taken:], timeout)[0].text
    steps = int(line.split(":")[0].removeprefix("step "))
    wait_for(driver, lambda d: f"after {steps} step" in text_of(d, "bp-on"), timeout)
    return line
