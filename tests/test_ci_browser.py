"""On CI the browser tests must run, not skip: .ci/run installs Debian's chromium."""

from __future__ import annotations

import os
import shutil


def test_ci_has_chromium_for_the_browser_tests():
    if os.environ.get("CI", "").lower() != "true":
        return  # a user's machine: tests/test_report_browser.py skips with the reason instead
    assert any(shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")), (
        "CI=true but no chromium on PATH: .ci/run failed to install it, so the browser tests would be skipped")
