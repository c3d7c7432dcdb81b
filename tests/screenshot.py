"""The README's pictures of mlp serve, taken in Debian's headless Chromium: a 7 drawn on the
pad of `mlp serve RUNS`, and the page as it answers; with --backprop, the backward pass panel
after picking the label 1 and taking SGD steps towards it (--steps), cropped to the panel.

    python tests/screenshot.py runs/ docs/serve.png
    python tests/screenshot.py runs/ docs/backprop.png --backprop --run mnist --width 1300 --steps 6
"""

import argparse
import io
import sys
from pathlib import Path

import browser
from conftest import serving


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("runs", help="the folder mlp serve serves")
    parser.add_argument("out", type=Path, help="the PNG to write")
    parser.add_argument("digit", nargs="?", default="7", choices=sorted(browser.DIGITS))
    parser.add_argument("--run", help="the run to choose (default: the page's, the best)")
    parser.add_argument("--width", type=int, default=1280, help="of the window, in CSS pixels")
    parser.add_argument("--backprop", action="store_true", help="the backward pass panel, after steps")
    parser.add_argument("--label", default="1", help="with --backprop: the label picked")
    parser.add_argument("--steps", type=int, default=3, help="with --backprop: SGD steps taken")
    args = parser.parse_args(argv)
    with serving(args.runs) as url:
        driver = browser.chromium(args.width, 2600 if args.backprop else 1700)
        try:
            photograph(driver, url, args)
        finally:
            driver.quit()


def photograph(driver, url: str, args: argparse.Namespace) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    driver.get(url)
    browser.wait_for(driver, lambda d: browser.text_of(d, "run-summary"))
    browser.count_requests(driver)
    if args.run:
        Select(driver.find_element(By.ID, "run")).select_by_value(args.run)
        browser.wait_for(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#bp-labels button"))
    browser.draw(driver, browser.DIGITS[args.digit])
    print("answer:", browser.answer_is(driver, args.digit))
    if args.backprop:
        browser.settled(driver)  # the steps are for the 7 as drawn, not a stroke of it
        browser.pick_label(driver, args.label)
        for _ in range(args.steps):
            print(browser.take_step(driver))
    errors = browser.console_errors(driver)
    if errors:
        sys.exit(f"the page logged errors: {errors}")
    if args.backprop:
        panel = driver.find_element(By.ID, "backprop")
        cropped(driver.get_screenshot_as_png(), panel.rect).save(args.out, optimize=True)
    else:
        driver.save_screenshot(str(args.out))
    print("wrote", args.out)


def cropped(png: bytes, rect: dict, margin: int = 8):
    """The screenshot `png` cut to `rect` (CSS pixels of a page that fits the window) and a margin."""
    from PIL import Image

    image = Image.open(io.BytesIO(png))
    left, top = max(0, rect["x"] - margin), max(0, rect["y"] - margin)
    right = min(image.width, rect["x"] + rect["width"] + margin)
    bottom = min(image.height, rect["y"] + rect["height"] + margin)
    return image.crop((round(left), round(top), round(right), round(bottom)))


if __name__ == "__main__":
    main()
