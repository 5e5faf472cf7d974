"""A real headless Chromium (the system one: `playwright install` cannot download here)."""

import shutil

import pytest
from chromium_setup import CHROMIUM_ARGS, build_small_interface


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    assert executable, "browser tests need Chromium: apt-get install -y chromium (make test does this)"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def console_errors():
    """Errors and warnings the page logs; a test that provokes one on purpose removes it here."""
    return []


@pytest.fixture
def page(browser, console_errors):
    page = browser.new_page()
    errors = console_errors
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda message: message.type in ("error", "warning") and errors.append(message.text))
    try:
        yield page
    finally:
        page.close()
    assert not errors, errors


@pytest.fixture(scope="session")
def small_interface(tmp_path_factory):
    """interface.html from a real small run (see :func:`chromium_setup.build_small_interface`)."""
    return build_small_interface(tmp_path_factory.mktemp("run"))
