"""Test-session set-up shared by every test file."""
import os

# Triton decides at import whether its kernels run compiled or through its interpreter, and e3nn
# (imported by many test files) imports triton through torch; tests/test_triton_backend.py runs
# the Triton backend's kernels on CPU tensors, which needs the interpreter chosen first.
os.environ.setdefault("TRITON_INTERPRET", "1")
# Every test runs the IR spec check (ir.verify_ir) between the passes.
os.environ.setdefault("FUSIONLANG_DEBUG", "1")


def pytest_addoption(parser):
    parser.addoption("--update-golden", action="store_true",
                     help="rewrite the golden files (tests/golden, tests/golden_dot) from the current code "
                          "instead of comparing with them; review the diff before committing")


def pytest_configure(config):
    # The golden tests read FUSION_UPDATE_GOLDEN (also settable by hand); the option sets it.
    if config.getoption("--update-golden"):
        os.environ["FUSION_UPDATE_GOLDEN"] = "1"
