"""Headless Chromium (Debian's ``chromium`` + ``chromium-driver``) for the browser tests.

Chromium missing is a failure that says how to install it (``make test`` runs
scripts/ensure-browser.sh), not a skip; ``CRT_SKIP_BROWSER=1`` skips on purpose.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service as ChromeService
from selenium.webdriver.chrome.webdriver import WebDriver

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
ARGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--window-size=1280,900",
)


def chromium(profile: Path, extra_args: Sequence[str] = ()) -> WebDriver:
    """A new headless Chromium with its own profile directory."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.is_file()]
    if missing:
        message = (
            f"this test needs Debian's Chromium, missing: {', '.join(missing)}; install it with "
            "`apt-get install chromium chromium-driver` (scripts/ensure-browser.sh does), or set "
            "CRT_SKIP_BROWSER=1 to skip it on purpose"
        )
        if os.environ.get("CRT_SKIP_BROWSER") == "1":
            pytest.skip(message)
        pytest.fail(message)
    options = Options()
    options.binary_location = str(CHROMIUM)
    for arg in (*ARGS, *extra_args):
        options.add_argument(arg)
    options.add_argument(f"--user-data-dir={profile}")
    # Both paths are explicit, so selenium never runs Selenium Manager (which would download).
    return webdriver.Chrome(
        service=ChromeService(executable_path=str(CHROMEDRIVER)), options=options
    )
