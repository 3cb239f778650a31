"""A real headless Chromium, driven by selenium through Debian's chromedriver.

These tests must run wherever the suite runs (CI included): when the browser or its driver is
missing they fail, naming the install command, instead of being skipped.
"""
from __future__ import annotations

import shutil

import pytest

INSTALL = ("the console's browser tests need Chromium and its driver: `sudo apt-get install chromium "
           "chromium-driver` (Debian/Ubuntu; scripts/setup.sh does it when run as root)")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--window-size=1280,960")


def chromium_paths() -> tuple[str, str]:
    """(browser, driver) executables; pytest.fail with the install command when one is missing."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not browser or not driver:
        missing = [name for name, path in (("chromium", browser), ("chromedriver", driver)) if not path]
        pytest.fail(f"{' and '.join(missing)} not found: {INSTALL}", pytrace=False)
    return browser, driver


def start_chromium(profile_dir):
    """A headless Chromium with a fresh profile in `profile_dir`."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser, driver = chromium_paths()
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in FLAGS + (f"--user-data-dir={profile_dir}",):
        options.add_argument(flag)
    return webdriver.Chrome(options=options, service=Service(driver))
