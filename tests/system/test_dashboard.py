"""The dashboard at ``/`` in real headless Chromium (Debian's ``chromium`` + ``chromium-driver``)
against the real service: a uvicorn subprocess, a fake Ollama on loopback, the embedded Ledger.

Chromium missing is a failure that says how to install it (``.ci/run`` does), not a skip; set
``CRT_SKIP_BROWSER=1`` to skip on purpose. The first test saves ``tests/artifacts/dashboard.png``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from selenium import webdriver
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service as ChromeService
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait
from support import heartbeat_scripts, llm_scripts
from support.fake_ollama import FakeOllama, Reply
from support.service import ROOT, Service

# One group under `--dist loadgroup`: the tests share the module's Chromium.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("dashboard")]

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
ARTIFACTS = ROOT / "tests" / "artifacts"
WAIT_SECONDS = 20.0
TOKEN = "dashboard-test-token"
CHROMIUM_ARGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--window-size=1440,1000",
)
HEARTBEAT_MD = """# HEARTBEAT.md

## Checklist
- Review recent posts and answer questions on your own.

## Rules
Post a short note when the conversation produced something worth sharing.
"""
EMPTY_MD = "# HEARTBEAT.md\n\n## Checklist\n- \n\n<!-- nothing to do yet -->\n"

T = TypeVar("T")


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebDriver]:
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.is_file()]
    if missing:
        message = (
            f"the dashboard test needs Debian's Chromium, missing: {', '.join(missing)}; install "
            "it with `apt-get install chromium chromium-driver` (.ci/run does this), or set "
            "CRT_SKIP_BROWSER=1 to skip this test on purpose"
        )
        if os.environ.get("CRT_SKIP_BROWSER") == "1":
            pytest.skip(message)
        pytest.fail(message)
    options = Options()
    options.binary_location = str(CHROMIUM)
    for arg in CHROMIUM_ARGS:
        options.add_argument(arg)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # Both paths are explicit, so selenium never runs Selenium Manager (which would download).
    driver = webdriver.Chrome(
        service=ChromeService(executable_path=str(CHROMEDRIVER)), options=options
    )
    try:
        yield driver
    finally:
        driver.quit()


def wait(driver: WebDriver, condition: Callable[[WebDriver], T], what: str) -> T:
    """Wait for ``condition`` to return something truthy, or fail naming ``what``."""
    waiter = WebDriverWait(
        driver,
        WAIT_SECONDS,
        poll_frequency=0.05,
        ignored_exceptions=(NoSuchElementException, StaleElementReferenceException),
    )
    result: T = waiter.until(condition, message=f"dashboard: {what} within {WAIT_SECONDS}s")
    return result


def css(driver: WebDriver, selector: str) -> WebElement:
    return driver.find_element(By.CSS_SELECTOR, selector)


def all_css(driver: WebDriver, selector: str) -> list[WebElement]:
    return driver.find_elements(By.CSS_SELECTOR, selector)


def replace_text(element: WebElement, text: str) -> None:
    element.clear()
    element.send_keys(text)


def script_errors(driver: WebDriver) -> list[str]:
    """The console's errors other than failed requests (the 401s, 409s and 422s are on purpose)."""
    entries: list[dict[str, Any]] = driver.get_log("browser")  # type: ignore[no-untyped-call]
    return [
        str(entry["message"])
        for entry in entries
        if entry.get("level") == "SEVERE" and entry.get("source") != "network"
    ]


def loops_shown(driver: WebDriver) -> bool:
    return len(all_css(driver, "#loops [data-loop]")) == 4


@pytest.fixture
def service(tmp_path: Path, fake_ollama: FakeOllama) -> Iterator[Service]:
    heartbeat_scripts.install(fake_ollama, heartbeat_scripts.poster)
    llm_scripts.install_thinking_routes(fake_ollama)
    (tmp_path / "HEARTBEAT.md").write_text(HEARTBEAT_MD, encoding="utf-8")
    svc = Service(
        tmp_path,
        env={
            "CRT_OLLAMA_HOST": fake_ollama.url,
            "CRT_LEDGER_POST_COOLDOWN_SECONDS": "0",
            "CRT_REFLECTION_THRESHOLD": "10",
        },
    )
    with svc:
        yield svc


def seed_thread(url: str) -> None:
    """Messages and one pass of the thinking loops, so journal and personality have content."""
    for text in (
        "I keep worrying about the deadline for the garden project next Friday.",
        "The garden project needs new soil and I have not ordered it yet.",
        "Short answers please. Should I order the soil today?",
    ):
        r = httpx.post(f"{url}/api/threads/default/messages", json={"content": text})
        assert r.status_code == 201, r.text
    r = httpx.post(f"{url}/api/loops/run", json={"thread_id": "default"}, timeout=30)
    assert r.status_code == 200, r.text


def fetched_api_paths(driver: WebDriver) -> list[str]:
    """Every /api path (with its query) the page has fetched, from the Resource Timing list."""
    urls: list[str] = driver.execute_script(
        "return performance.getEntriesByType('resource').map((e) => e.name)"
    )
    return ["/api/" + url.split("/api/", 1)[1] for url in urls if "/api/" in url]


def test_each_tick_reads_its_views_in_one_poll(browser: WebDriver, service: Service) -> None:
    seed_thread(service.url)
    browser.get(service.url + "/#thread=default")
    wait(browser, loops_shown, "four loop cards")
    wait(
        browser,
        lambda d: sum(p.startswith("/api/dashboard/poll?") for p in fetched_api_paths(d)) >= 2,
        "a second tick's poll",
    )
    wait(browser, lambda d: all_css(d, "#messages [data-message-id]"), "the thread's messages")
    assert css(browser, "#cfg-every_seconds").get_attribute("value") == "30m"
    # The views found their answers in the poll: none of their own GETs went out.
    own = ("/api/loops", "/api/heartbeat/status", "/api/threads", "/api/approvals")
    assert not [p for p in fetched_api_paths(browser) if p.startswith(own)]
    assert not script_errors(browser)


def test_dashboard_drives_the_heartbeat(browser: WebDriver, service: Service) -> None:
    seed_thread(service.url)
    browser.get(service.url + "/#thread=default")

    # The four loops, with their state; the heartbeat loop starts from its card.
    wait(browser, loops_shown, "four loop cards")
    wait(
        browser,
        lambda d: css(d, '[data-loop="reflection"]').get_attribute("data-state") == "running",
        "the reflection loop shown running",
    )
    heartbeat_card = '[data-loop="heartbeat"]'
    assert css(browser, heartbeat_card).get_attribute("data-state") == "stopped"
    css(browser, f'{heartbeat_card} button[aria-label="Start Heartbeat loop"]').click()
    wait(
        browser,
        lambda d: css(d, heartbeat_card).get_attribute("data-state") == "running",
        "the heartbeat loop running after Start",
    )

    # The default thread's config: an invalid interval shows the API's message by the field.
    every = css(browser, "#cfg-every_seconds")
    wait(browser, lambda d: every.get_attribute("value") == "30m", "the config loaded")
    enabled = css(browser, "#cfg-enabled")
    assert not enabled.is_selected()
    enabled.click()
    replace_text(every, "5s")
    css(browser, "#cfg-save").click()
    error = wait(
        browser,
        lambda d: css(d, "#cfg-every_seconds-error").text,
        "the 422 message next to the interval field",
    )
    assert "between 10 s and 7 days" in error
    assert every.get_attribute("aria-invalid") == "true"
    assert (
        httpx.get(f"{service.url}/api/threads/default/heartbeat/config").json()["config"]["enabled"]
        is False
    )  # the rejected patch changed nothing

    replace_text(every, "30m")
    css(browser, "#cfg-save").click()
    wait(browser, lambda d: css(d, "#config-status").text.startswith("Saved"), "config saved")
    assert css(browser, "#cfg-every_seconds-error").text == ""
    config = httpx.get(f"{service.url}/api/threads/default/heartbeat/config").json()["config"]
    assert config["enabled"] is True and config["every_seconds"] == 1800

    # Run now: the run appears in the timeline with its outcome and a link to the Ledger post.
    css(browser, "#run-now").click()
    acted = wait(
        browser,
        lambda d: all_css(d, '#timeline li[data-outcome="acted"]'),
        "an acted run in the timeline",
    )[0]
    assert "acted" in css(browser, "#run-status").text
    sent = acted.find_element(By.CSS_SELECTOR, 'li.action[data-state="sent"]')
    assert "Heartbeat note" in sent.text
    link = sent.find_element(By.CSS_SELECTOR, "a.ledger-link").get_attribute("href") or ""
    assert "/post/p_" in link and "/api/" not in link
    page = httpx.get(link)  # the post's page for people, readable without a key
    assert page.status_code == 200 and "Heartbeat note" in page.text

    # Dry run: a second run, newest first, recorded as dry_run.
    css(browser, "#dry-run").click()
    wait(
        browser,
        lambda d: (
            [li.get_attribute("data-outcome") for li in all_css(d, "#timeline > li")][:2]
            == ["dry_run", "acted"]
        ),
        "the dry run on top of the timeline",
    )
    wait(browser, lambda d: "Dry run finished" in css(d, "#run-status").text, "dry-run status")

    # The post is in the Ledger feed; the thinking loops' output is in the side panels.
    wait(
        browser,
        lambda d: any("Heartbeat note" in li.text for li in all_css(d, "#feed li.post")),
        "our post in the Ledger feed",
    )
    assert all_css(browser, "#journal li.entry")
    assert "interests" in css(browser, "#personality").text

    # HEARTBEAT.md: saving an effectively empty file shows the warning.
    editor = css(browser, "#md-content")
    wait(browser, lambda d: "Checklist" in (editor.get_attribute("value") or ""), "HEARTBEAT.md")
    assert not css(browser, "#md-empty-warning").is_displayed()
    replace_text(editor, EMPTY_MD)
    css(browser, "#md-save").click()
    wait(browser, lambda d: css(d, "#md-empty-warning").is_displayed(), "the empty warning")
    assert (service.tmp / "HEARTBEAT.md").read_text(encoding="utf-8") == EMPTY_MD

    save_screenshot(browser, ARTIFACTS / "dashboard.png")

    # A newer version written elsewhere is never overwritten: 409, a message, and a reload.
    (service.tmp / "HEARTBEAT.md").write_text(HEARTBEAT_MD, encoding="utf-8")
    editor.send_keys("- my own edit\n")
    css(browser, "#md-save").click()
    conflict = wait(browser, lambda d: css(d, "#md-conflict").is_displayed(), "the 409 message")
    assert conflict
    assert "changed by someone else" in css(browser, "#md-conflict-text").text
    assert (service.tmp / "HEARTBEAT.md").read_text(encoding="utf-8") == HEARTBEAT_MD
    css(browser, "#md-conflict-reload").click()
    wait(browser, lambda d: editor.get_attribute("value") == HEARTBEAT_MD, "the reloaded file")
    assert not css(browser, "#md-conflict").is_displayed()
    assert not css(browser, "#md-empty-warning").is_displayed()
    assert script_errors(browser) == []
    assert "Traceback" not in service.log()


def test_dashboard_approves_an_edited_post_and_it_lands_on_the_ledger(
    browser: WebDriver, service: Service
) -> None:
    config = {"enabled": False, "approval": "posts"}
    r = httpx.post(f"{service.url}/api/threads/default/heartbeat/config", json=config)
    assert r.status_code == 200, r.text
    run = httpx.post(f"{service.url}/api/threads/default/heartbeat/run-now", timeout=30).json()
    assert run["outcome"] == "proposed", run
    action_id = run["actions"][0]["action_id"]

    browser.get(service.url + "/#thread=default")
    badge = wait(
        browser,
        lambda d: css(d, "#approvals-badge").is_displayed() and css(d, "#approvals-badge"),
        "the approvals badge in the header",
    )
    assert badge.text == "1 to approve"
    item = wait(
        browser,
        lambda d: css(d, f'#approvals li[data-action-id="{action_id}"]'),
        "the proposed post in the approvals panel",
    )
    assert "posted note" in item.text  # the agent's reason, as context
    title = css(browser, f"#appr-{action_id}-title")
    assert (title.get_attribute("value") or "").startswith("Heartbeat note")
    replace_text(title, "Edited by my owner")
    replace_text(css(browser, f"#appr-{action_id}-content"), "Shorter, and in my voice.")
    item.find_element(By.CSS_SELECTOR, 'button[data-decision="approve"]').click()

    wait(browser, lambda d: not css(d, "#approvals-badge").is_displayed(), "the badge gone")
    wait(
        browser,
        lambda d: any("Edited by my owner" in li.text for li in all_css(d, "#feed li.post")),
        "the edited post in the Ledger feed",
    )
    posts = httpx.get(f"{service.url}/api/ledger/feed?sort=new").json()["posts"]
    (mine,) = [p for p in posts if p["title"] == "Edited by my owner"]
    assert mine["content"] == "Shorter, and in my voice."
    assert httpx.get(f"{service.url}/api/approvals").json()["count"] == 0
    card = '[data-loop="heartbeat"]'
    wait(
        browser,
        lambda d: "0 waiting" in css(d, card).text and "Reply wakes" in css(d, card).text,
        "the owner numbers on the heartbeat card",
    )
    # the run's action shows as sent in the timeline
    wait(
        browser,
        lambda d: all_css(d, '#timeline li.action[data-state="sent"]'),
        "the approved action shown sent in the timeline",
    )
    assert script_errors(browser) == []
    assert "Traceback" not in service.log()


def save_screenshot(driver: WebDriver, path: Path) -> None:
    """The whole page: the viewport grows to the document's height for the shot."""
    path.parent.mkdir(parents=True, exist_ok=True)
    driver.execute_script("window.scrollTo(0, 0)")
    height: Any = driver.execute_script("return document.documentElement.scrollHeight")
    metrics = {"width": 1440, "height": min(int(height), 6000), "deviceScaleFactor": 1}
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {**metrics, "mobile": False})
    try:
        assert driver.save_screenshot(str(path)), f"could not write {path}"
    finally:
        driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


def test_dashboard_asks_for_the_token(browser: WebDriver, tmp_path: Path) -> None:
    with Service(tmp_path, env={"CRT_API_TOKEN": TOKEN}) as svc:
        # The page and its assets are open (they hold no data); the API is not.
        page = httpx.get(svc.url + "/")
        assert page.status_code == 200
        assert "script-src 'self'" in page.headers["content-security-policy"]
        assert httpx.get(svc.url + "/dashboard/app.js").status_code == 200
        assert httpx.get(svc.url + "/dashboard/..%2Fcrt_api.py").status_code == 404
        assert httpx.get(svc.url + "/api/loops").status_code == 401

        browser.get(svc.url + "/")
        dialog = wait(browser, lambda d: css(d, "#token-dialog[open]"), "the token prompt")
        assert "CRT_API_TOKEN" in dialog.text
        assert not all_css(browser, "#loops [data-loop]")

        # A wrong token is rejected and asked for again.
        token_input = css(browser, "#token-input")
        token_input.send_keys("not-the-token")
        css(browser, "#token-save").click()
        wait(
            browser,
            lambda d: "rejected" in css(d, "#token-dialog[open] #token-reason").text,
            "the prompt again after a wrong token",
        )

        css(browser, "#token-input").send_keys(TOKEN)
        css(browser, "#token-save").click()
        wait(browser, loops_shown, "the loops after the token was given")
        assert not all_css(browser, "#token-dialog[open]")
        stored = browser.execute_script("return localStorage.getItem('crt.apiToken')")
        assert stored == TOKEN
        wait(
            browser,
            lambda d: (
                css(d, "#md-content").get_attribute("value") is not None
                and css(d, "#md-meta").text != ""
            ),
            "HEARTBEAT.md loaded with the token",
        )
        assert script_errors(browser) == []


def test_dashboard_chat_timeline_filter_pickers_and_prompt(
    browser: WebDriver, service: Service, fake_ollama: FakeOllama
) -> None:
    """Chat in the thread (scores shown, the wait visible, the reply streamed), the timeline's
    skip filter and folded repeats, the model and zone pickers, and a run's prompt; saves
    dashboard-chat.png."""
    seed_thread(service.url)
    fake_ollama.set_responder(
        # Thinking for 1.5 s, then a word every 0.4 s: the wait and the growing reply both show.
        lambda request: Reply(
            content="Order the soil today: it takes two days.", delay=1.5, chunk_delay=0.4
        )
    )
    url = service.url
    (service.tmp / "HEARTBEAT.md").write_text(EMPTY_MD, encoding="utf-8")
    for _ in range(2):  # two skips in a row: they fold into one line
        httpx.post(f"{url}/api/threads/default/heartbeat/run-now", timeout=30).raise_for_status()
    (service.tmp / "HEARTBEAT.md").write_text(HEARTBEAT_MD, encoding="utf-8")
    acted = httpx.post(f"{url}/api/threads/default/heartbeat/run-now", timeout=30).json()
    assert acted["outcome"] == "acted", acted
    browser.get(url + "/#thread=default")

    # The thread's messages, with the importance the reflection loop gave them.
    wait(browser, lambda d: len(all_css(d, '#messages li[data-role="user"]')) == 3, "messages")
    assert all(
        "importance" in li.text and "/10" in li.text
        for li in all_css(browser, '#messages li[data-role="user"]')
    )
    box = css(browser, "#chat-input")
    box.send_keys("Should I order the soil today?")
    css(browser, "#chat-send").click()
    pending = wait(browser, lambda d: all_css(d, "#messages .message-pending"), "a visible wait")
    assert "thinking" in pending[0].text
    assert "Waiting for the reply" in css(browser, "#chat-status").text
    partial = wait(
        browser,
        lambda d: all_css(d, "#messages .message-pending #chat-partial"),
        "the reply growing while the model writes it",
    )
    assert partial[0].text.startswith("Order") and "two days." not in partial[0].text
    wait(
        browser,
        lambda d: (
            any(
                "Order the soil today: it takes two days." in li.text
                for li in all_css(d, '#messages li[data-role="assistant"]:not(.message-pending)')
            )
            and not all_css(d, "#messages .message-pending")
        ),
        "the agent's stored reply in place of the growing one",
    )
    assert "Answered in" in css(browser, "#chat-status").text

    # The timeline: the shared headline, two skips folded, hidden on demand.
    runs = wait(browser, lambda d: all_css(d, "#timeline > li.run"), "the timeline")
    assert runs[0].get_attribute("data-outcome") == "acted"
    assert "Acted: sent 1 post" in runs[0].text
    folded = css(browser, '#timeline > li[data-outcome="skipped"]')
    assert folded.get_attribute("data-count") == "2" and "\u00d72" in folded.text
    assert "HEARTBEAT.md is empty" in folded.text
    css(browser, "#timeline-hide-skips").click()
    wait(
        browser,
        lambda d: (
            not all_css(d, '#timeline > li[data-outcome="skipped"]')
            and "2 skipped run(s) hidden" in css(d, "#timeline").text
        ),
        "skips hidden",
    )

    # What the run sent the model, on demand.
    prompt = css(browser, f'#timeline li[data-run-id="{acted["run_id"]}"] details.prompt-view')
    prompt.find_element(By.TAG_NAME, "summary").click()
    wait(browser, lambda d: "## system" in prompt.text, "the run's prompt")
    assert "Review recent posts" in prompt.text

    # The pickers offer the server's models and the IANA zones.
    wait(
        browser,
        lambda d: (
            "llama3.2:latest"
            in [o.get_attribute("value") for o in all_css(d, "#model-options option")]
        ),
        "the model picker",
    )
    zones = [o.get_attribute("value") for o in all_css(browser, "#timezone-options option")]
    assert "Europe/Berlin" in zones and "UTC" in zones

    # The heartbeat loop is stopped: no due time is claimed for it.
    assert "the loop is stopped" in css(browser, '[data-loop="heartbeat"]').text
    css(browser, "#chat-panel").location_once_scrolled_into_view  # noqa: B018
    save_screenshot(browser, ARTIFACTS / "dashboard-chat.png")
    assert script_errors(browser) == []
