"""The README's picture of mlp serve, taken in Debian's headless Chromium: a 7 drawn on the
pad of `mlp serve RUNS`, and the page as it answers.

    python tests/screenshot.py runs/ docs/serve.png
"""

import sys
from pathlib import Path

import browser
from conftest import serving


def main(runs: str, out: str, digit: str = "7") -> None:
    with serving(runs) as url:
        driver = browser.chromium(1280, 1700)
        try:
            photograph(driver, url, digit, Path(out))
        finally:
            driver.quit()


def photograph(driver, url: str, digit: str, out: Path) -> None:
    driver.get(url)
    browser.draw(driver, browser.DIGITS[digit])
    print("answer:", browser.answer_is(driver, digit))
    errors = browser.console_errors(driver)
    if errors:
        sys.exit(f"the page logged errors: {errors}")
    driver.save_screenshot(str(out))
    print("wrote", out)


if __name__ == "__main__":
    main(*sys.argv[1:])
