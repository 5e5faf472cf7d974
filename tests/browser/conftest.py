"""A real headless Chromium (the system one: `playwright install` cannot download here)."""

import shutil

import pytest

CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]  # fmt: skip


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
    """interface.html from a real small run: a random IMPALA agent on CoinRun, 2 trajectories of 24
    frames, 2 layers, outputs value + all logits + groups, 4 NMF features."""
    from understanding_rl_vision.attribution import discover_layers
    from understanding_rl_vision.config import (
        ObservationSetConfig,
        ReductionConfig,
        TrajectoryConfig,
    )
    from understanding_rl_vision.pipeline import write_interface
    from understanding_rl_vision.rollout import collect_observation_set, collect_trajectories

    agent = make_random_agent("coinrun", "impala", distribution_mode="easy")
    trajectories = collect_trajectories(agent, TrajectoryConfig(num_envs=2, num_steps=24), seed=0, progress=False)
    observation_set = collect_observation_set(agent, ObservationSetConfig(obs_num_envs=4, num_obs=8, obs_every=4),
                                              seed=1, progress=False)  # fmt: skip
    layers = discover_layers(agent.model, agent.preprocess(observation_set[:1]))
    chosen = [layers[3], layers[5]]  # 2b and 3b
    return write_interface(
        agent, tmp_path_factory.mktemp("run") / "interface", trajectories=trajectories,
        observation_set=observation_set, layers=chosen, default_layer=0,
        reduction=ReductionConfig(nmf_features=4), num_bookmarks=2, env_id="coinrun", title="random agent",
    )  # fmt: skip
