"""A real headless Chromium (the system one: `playwright install` cannot download here)."""

import shutil

import pytest

CHROMIUM_ARGS = (
    "--headless --no-sandbox --disable-gpu --disable-background-networking --disable-component-update --disable-sync"
).split()


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
def small_interface(tmp_path_factory, make_random_agent):
    """interface.html from a real small run: a random IMPALA agent on CoinRun saved as a checkpoint,
    2 trajectories of 24 frames, layers 2b and 3b, value + every logit + groups, 4 NMF features."""
    from understanding_rl_vision import rl_clarity
    from understanding_rl_vision.agents import save_checkpoint

    folder = tmp_path_factory.mktemp("run")
    agent = make_random_agent("coinrun", "impala", distribution_mode="easy")
    checkpoint = save_checkpoint(agent, folder / "random.safetensors")
    return rl_clarity.run(
        checkpoint,
        folder / "interface",
        progress=False,
        num_envs=2,
        num_steps=24,
        obs_num_envs=4,
        num_obs=8,
        obs_every=4,
        layers=("2b", "3b"),
        default_layer="2b",
        attr_policy=True,
        nmf_features=4,
        num_bookmarks=2,
        title="random agent",
    ).path
