"""The README's picture of mlp serve, taken in Debian's headless Chromium: a 7 drawn on the
pad of `mlp serve RUNS`, and the page as it answers.

    python tests/screenshot.py runs/ docs/serve.png
"""

import subprocess
import sys
from pathlib import Path

import browser

MLP = [sys.executable, "-c", "from mlpcli.cli import entry_point; entry_point()"]


def main(runs: str, out: str, digit: str = "7") -> None:
    server = subprocess.Popen([*MLP, "serve", runs, "--port", "0"], stdout=subprocess.PIPE, text=True)
    driver = None
    try:
        url = server.stdout.readline().split(" at ")[1].split()[0]
        driver = browser.chromium(1280, 1700)
        driver.get(url)
        browser.draw(driver, browser.DIGITS[digit])
        print("answer:", browser.answer_is(driver, digit))
        errors = browser.console_errors(driver)
        if errors:
            sys.exit(f"the page logged errors: {errors}")
        driver.save_screenshot(str(Path(out)))
        print("wrote", out)
    finally:
        if driver is not None:
            driver.quit()
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main(*sys.argv[1:])
