import pytest


def pytest_addoption(parser):
    parser.addoption(
        "--update-golden",
        action="store_true",
        default=False,
        help="rewrite expected outputs (tests/errors/*.expected, tests/golden/*) "
        "from the current output; review the diff before committing",
    )


@pytest.fixture
def update_golden(request) -> bool:
    return request.config.getoption("--update-golden")


def pytest_configure(config):
    # the pass manager verifies the IR after every pass at any size (by default only up to
    # dfc.passes.VERIFY_EACH_LIMIT nodes): a pass that breaks an invariant is named
    import os

    os.environ["DFC_VERIFY_EACH"] = "1"
    # no calibrated profile of this machine (`dfc calibrate`) changes what the tests plan:
    # they see the built-in defaults unless they give a profile
    import tempfile

    os.environ["DFC_PROFILES"] = tempfile.mkdtemp(prefix="dfc-test-profiles-")
