"""Open every page of the built site in a real headless browser: ``python -m tools.site_check`` (``make site-check``).

For each page of ``site/`` (:mod:`tools.site`) it checks what a reader would notice first:
the page loads, every image has a size (a broken image has none), and no request leaves the
machine (everything is in the page or beside it; a request to the web would fail offline and
leak the reader's visit). It saves a screenshot of each page's first screen in
``site/screenshots/``. The browser is Debian's chromium (``apt-get install chromium``), driven by
Playwright (``requirements-site.txt``), which never downloads a browser of its own here.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

from tools import site

# Chromium's own background traffic (updates, sync, safe browsing) is switched off, so every request
# the check sees comes from the page.
BROWSER_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
LOCAL_SCHEMES = ("file:", "data:", "blob:", "about:")
VIEWPORT = {"width": 1280, "height": 900}
BROWSER_NAMES = ("chromium", "chromium-browser", "google-chrome")


@dataclass
class PageReport:
    """What the browser found on one page."""

    page: str
    images: int = 0
    images_without_size: list[str] = field(default_factory=list)
    outside_requests: list[str] = field(default_factory=list)
    load_error: str = ""

    @property
    def passed(self) -> bool:
        return not (self.images_without_size or self.outside_requests or self.load_error)

    def line(self) -> str:
        """One line for the report: the page, its images and any problem."""
        if self.passed:
            return (f"ok    {self.page}: {self.images} image{'' if self.images == 1 else 's'}, all sized; "
                    "no request left the machine")
        problems = [self.load_error] if self.load_error else []
        if self.images_without_size:
            problems.append(f"{len(self.images_without_size)} image(s) without a size "
                            f"(first: {self.images_without_size[0][:80]})")
        if self.outside_requests:
            problems.append(f"{len(self.outside_requests)} request(s) to elsewhere (first: {self.outside_requests[0]})")
        return f"FAIL  {self.page}: " + "; ".join(problems)


def find_browser() -> str:
    """The path of a system chromium, or an error that says how to install one."""
    for name in BROWSER_NAMES:
        path = shutil.which(name)
        if path:
            return path
    raise site.SiteError("No chromium on this machine, which the site check opens the pages in: install Debian's "
                         "(`sudo apt-get install chromium`), or name another with --browser, then run "
                         "`make site-check` again.")


IMAGE_SIZES_SCRIPT = """() => Array.from(document.images).map(image => ({
    source: image.currentSrc.slice(0, 100), width: image.naturalWidth, height: image.naturalHeight,
    complete: image.complete}))"""


def check_page(browser, page_path: Path, screenshot_folder: Path) -> PageReport:
    """Load ``page_path`` from disk, record every request and each image's size, save a screenshot."""
    report = PageReport(page_path.name)
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    page.on("request", lambda request: None if request.url.startswith(LOCAL_SCHEMES)
            else report.outside_requests.append(request.url))
    try:
        response = page.goto(page_path.resolve().as_uri(), wait_until="load")
        if response is not None and not response.ok:
            report.load_error = f"the page answered {response.status}"
        images = page.evaluate(IMAGE_SIZES_SCRIPT)
        report.images = len(images)
        report.images_without_size = [image["source"] for image in images
                                      if not (image["complete"] and image["width"] > 0 and image["height"] > 0)]
        page.screenshot(path=str(screenshot_folder / (page_path.stem + ".png")))
    except Exception as error:  # noqa: BLE001 - any failure to load or read the page is the finding
        report.load_error = f"{type(error).__name__}: {str(error).splitlines()[0]}"
    finally:
        context.close()
    return report


def check_site(site_folder: Path, browser_path: str) -> list[PageReport]:
    """A :class:`PageReport` for each HTML page of ``site_folder``, screenshots in ``site_folder/screenshots``."""
    from playwright.sync_api import sync_playwright

    pages = sorted(site_folder.glob("*.html"))
    if not pages:
        raise site.SiteError(f"{site_folder} holds no page: build the site first (`make site`).")
    screenshot_folder = site_folder / "screenshots"
    screenshot_folder.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=browser_path, args=BROWSER_FLAGS)
        try:
            return [check_page(browser, page, screenshot_folder) for page in pages]
        finally:
            browser.close()


def main(arguments: list[str] | None = None) -> int:
    """Command-line entry point: 0 when every page passes."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--site", type=Path, default=None, help="the built site (default site/)")
    parser.add_argument("--browser", default=None, help="the chromium to drive (default: found on PATH)")
    options = parser.parse_args(arguments)
    site_folder = options.site or site.default_site_folder()
    try:
        reports = check_site(site_folder, options.browser or find_browser())
    except site.SiteError as error:
        print(error, file=sys.stderr)
        return 1
    for report in reports:
        print(report.line())
    failed = [report for report in reports if not report.passed]
    images = sum(report.images for report in reports)
    print(f"{len(reports) - len(failed)} of {len(reports)} pages passed ({images} images); "
          f"screenshots in {site_folder / 'screenshots'}.")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
