"""The exported web page in headless Chromium: screenshot and decode latency.

    python -m export.browser RUN_DIR --out docs/latent-explorer.png

serves `RUN_DIR/export` on 127.0.0.1, opens `web/` in Debian's `chromium`
(driven by Selenium through `chromedriver`: no browser is downloaded), waits
until the page has decoded its samples and timed itself, saves a screenshot and
prints the page's decode latency at batch 1 and 16. The tests drive the page
with the same `open_page`.
"""

import argparse
import contextlib
import pathlib
import shutil
import sys

from keras_vae import files
from export import common
from export import serve
from export import web_page

CHROMIUM = ("chromium", "chromium-browser")
DRIVER = "chromedriver"
WINDOW = (1400, 1000)  # CSS pixels: the page's two columns and the strip fit.


def find_chromium():
    """(browser, driver) paths, or None when either is not installed."""
    browser = next(filter(None, map(shutil.which, CHROMIUM)), None)
    driver = shutil.which(DRIVER)
    return (browser, driver) if browser and driver else None


@contextlib.contextmanager
def open_page(export_dir, timeout=60):
    """Yields a Selenium driver on the served page, once `window.vae.ready`.

    Raises RuntimeError with the page's own message if it reports an error.
    """
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.support.ui import WebDriverWait

    found = find_chromium()
    if found is None:
        raise RuntimeError(
            "chromium and chromedriver are not installed: apt-get install -y chromium chromium-driver"
        )
    options = webdriver.ChromeOptions()
    options.binary_location = found[0]
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                 f"--window-size={WINDOW[0]},{WINDOW[1]}", "--hide-scrollbars",
                 # Offline, as promised: every host but the local server fails to resolve.
                 "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"):
        options.add_argument(flag)
    with serve.serving(export_dir) as url:
        driver = webdriver.Chrome(service=Service(executable_path=found[1]), options=options)
        try:
            driver.set_script_timeout(timeout)
            driver.get(url)
            state = WebDriverWait(driver, timeout).until(
                lambda d: d.execute_script(
                    "return window.vae && (window.vae.ready || window.vae.error) ? window.vae : null"
                )
            )
            if state.get("error"):
                raise RuntimeError(f"the page failed: {state['error']}")
            yield driver
        finally:
            driver.quit()


def decode(driver, z):
    """The page's decoder output for latents `z` [n, latent_dim], as a flat list."""
    return driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "window.vae.decode(arguments[0], arguments[1]).then(done, (e) => done(String(e)));",
        [float(v) for v in z.ravel()], len(z),
    )


def latency(driver):
    """{"batch_1": ms, "batch_16": ms}: the page's own median decode times."""
    data = driver.execute_script("return Object.assign({}, document.getElementById('latency').dataset)")
    return {"batch_1": float(data["batch1Ms"]), "batch_16": float(data["batch16Ms"])}


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m export.browser", description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a run exported with the web format")
    parser.add_argument("--out", default="latent-explorer.png", help="screenshot PNG to write")
    args = parser.parse_args(argv)
    export_dir = pathlib.Path(args.run_dir) / common.EXPORT_DIR
    if not (export_dir / web_page.FOLDER / "index.html").is_file():
        print(f"{parser.prog}: error: {str(export_dir)!r} holds no web page: "
              f"run keras-vae export {args.run_dir} first", file=sys.stderr)
        return 1
    try:
        with open_page(export_dir) as driver:
            # The page's full height, so nothing is cut off at the bottom.
            height = driver.execute_script("return document.documentElement.scrollHeight")
            driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
                "width": WINDOW[0], "height": height, "deviceScaleFactor": 1, "mobile": False,
            })
            png = driver.get_screenshot_as_png()
            times = latency(driver)
    except RuntimeError as error:
        print(f"{parser.prog}: error: {error}", file=sys.stderr)
        return 1
    files.write_atomically(args.out, lambda temp: pathlib.Path(temp).write_bytes(png))
    print(f"wrote {args.out}; decode latency in Chromium: batch 1 {times['batch_1']:.2f} ms, "
          f"batch 16 {times['batch_16']:.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
