"""A report page as a reader sees it: opened from its file in the distribution's headless
Chromium (/usr/bin/chromium, driven by Playwright, which downloads no browser), with a new
profile, every request the page makes intercepted and noted."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from playwright.sync_api import Page, Route, sync_playwright

CHROMIUM = Path("/usr/bin/chromium")
# As root Chromium needs --no-sandbox; the others keep it from reaching out on its own.
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]


@dataclass
class Opened:
    page: Page
    requests: list[str] = field(default_factory=list)  # every URL the page asked for

    def text(self, selector: str = "body") -> str:
        return self.page.inner_text(selector)

    def rows(self, table: str) -> list[list[str]]:
        """The cells of each row of a table (its header left out), as shown."""
        rows = [[cell.inner_text() for cell in row.locator("td").all()]
                for row in self.page.locator(f"{table} tr").all()]
        return [cells for cells in rows if cells]

    def drawn_bars(self) -> dict[str, float]:
        """Each bar of the timeline by its part, with the width it is drawn at."""
        bars = {}
        for part in self.page.locator("svg.timeline g.part").all():
            box = part.locator("rect.bar").bounding_box()
            assert box is not None
            bars[part.get_attribute("data-step") or ""] = box["width"]
        return bars


@contextmanager
def opened(page_file: Path, profile: Path) -> Iterator[Opened]:
    """The page loaded in Chromium; a request for anything but the file itself is noted
    and refused."""
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile), executable_path=str(CHROMIUM), headless=True, args=FLAGS)
        try:
            shown = Opened(context.new_page())

            def intercepted(route: Route) -> None:
                shown.requests.append(route.request.url)
                if route.request.url == page_file.as_uri():
                    route.continue_()
                else:
                    route.abort()

            context.route("**/*", intercepted)
            shown.page.goto(page_file.as_uri())
            yield shown
        finally:
            context.close()
