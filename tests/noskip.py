"""The rule every suite here shares: a skipped test is a failure (nothing
may pass by not running). Each suite's conftest imports this hook, which
makes it that conftest's own; `pytest_runtest_logreport` then sees the
corrected outcome."""

import pytest


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.skipped and not hasattr(rep, "wasxfail"):
        rep.outcome = "failed"
        rep.longrepr = f"test was skipped, which this suite does not allow: {rep.longrepr}"
