"""Test-session set-up shared by every test file."""
import os

# Triton decides at import whether its kernels run compiled or through its interpreter, and e3nn
# (imported by many test files) imports triton through torch; tests/test_triton_backend.py runs
# the Triton backend's kernels on CPU tensors, which needs the interpreter chosen first.
os.environ.setdefault("TRITON_INTERPRET", "1")
# Every test runs the IR spec check (ir.verify_ir) between the passes.
os.environ.setdefault("FUSIONLANG_DEBUG", "1")
