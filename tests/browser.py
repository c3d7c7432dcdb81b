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
