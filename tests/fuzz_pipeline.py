"""The whole-pipeline fuzzer: check, fmt, plan and compile on generated and mutated inputs.

Used by tests/test_fuzz_pipeline.py (CI size) and `make fuzz` (full size).  Cases are
made here, in the parent process, deterministically; `python tests/fuzz_pipeline.py
CASES.json RESULTS.json` is the worker that runs a share of them under a memory cap
(RLIMIT_AS) and a time cap per case, so that a hang or a runaway allocation is a
reported failure, not a dead machine.

A failure is: any exception that escapes a stage, an input `check` accepts that does
not compile, a `fmt` output that does not parse back to the same graph (or is not a
fixed point), a CLI exit code outside {0, 1}, or a case over its time cap.
"""
from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import random
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent

MEMORY_CAP_BYTES = 3 << 30      # per worker process (address space, torch included)
CHECK_SECONDS = 10.0            # `check` of any input (issue: under 10 s)
CASE_SECONDS = 60.0             # CPU seconds for check + fmt + plan + compile of one input (planning a
                                # 6-operand uvw fuse takes ~30 s: the `work` budget underestimates it,
                                # see docs/limits.md)
HANG_SECONDS = 300.0            # wall-clock seconds without an answer: a hang (waiting, not computing)
CLI_EVERY = 25                  # every n-th case also goes through fusionc's main()

# Identifiers that Python, torch or the generated module treat specially: every one must
# either be rejected with a diagnostic or compile to a working module.
HOSTILE_NAMES = ["class", "class_", "def", "self", "torch", "torch_", "nn", "super", "forward", "None", "True",
                 "print", "int", "_", "_x", "x_", "match", "case", "type", "lambda", "lambda_", "weights",
                 "x_weights", "edge_index", "num_nodes", "buffer", "Module", "F", "np", "math", "__x", "_D__x"]
HOSTILE_IRREPS = ["65536x0e", "4096x(0e + 1o + 2e + 3o)", "1x", "0x0e", "30e", "13e", "7e + 7o", "1000000x1o",
                  "65536x(65536x0e)", "99999999999999999999x0e", "sh(40)", "sh(7)", "2x(2x(2x(2x0e)))"]


# --- making cases -------------------------------------------------------------------------------

def grammar_cases(n: int) -> list[bytes]:
    """Programs drawn from the grammar by hypothesis (derandomized: the same every run)."""
    from hypothesis import HealthCheck, Phase, given, settings

    from test_frontend_fuzz import PROGRAMS

    out: list[bytes] = []

    @settings(max_examples=n, derandomize=True, database=None, deadline=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(PROGRAMS)
    def collect(text):
        out.append(text.encode("utf-8"))

    collect()
    return out


def mutation_cases(n: int) -> list[bytes]:
    from frontend_corpus import example_sources
    from test_frontend_fuzz import mutate_bytes, mutate_tokens

    sources = example_sources()
    rng = random.Random("fusionlang:pipeline-fuzz")
    out = []
    for k in range(n):
        name, text = sources[k % len(sources)]
        if k % 3 == 2:
            out.append(mutate_bytes(text.encode("utf-8"), rng))
        else:
            out.append(mutate_tokens(text, rng).encode("utf-8"))
    return out


def hostile_cases(n: int) -> list[bytes]:
    """Python-special names and huge or degenerate sizes in otherwise valid programs."""
    rng = random.Random("fusionlang:hostile")
    out = []
    for k in range(n):
        group = "O3"
        a, b, c, d = (rng.choice(HOSTILE_NAMES + ["a", "b", "c", "t"]) for _ in range(4))
        x_irreps = rng.choice(HOSTILE_IRREPS + ["4x(0e + 1o)", "16x(0e + 1o + 2e)"])
        shape = k % 5
        if shape == 0:       # binary fuse
            mode = rng.choice(["weights=uvw", "weights=uvu", "weights=uuu", "weights=none", "paths=separate"])
            body = (f"    in {a} : {x_irreps}\n    in {b} : {rng.choice(['0e', 'sh(2)', '1o', x_irreps])}\n"
                    f"    out {c} : {rng.choice([x_irreps, '16x0e', '0e + 1o', '65536x0e'])}\n"
                    f"    {c} = fuse({a}, {b}) [{mode}]\n")
        elif shape == 1:     # n-ary fuse of many operands
            ops = rng.randint(3, 40)
            args = ", ".join([a] * ops)
            body = (f"    in {a} : {rng.choice(['1o', '7e', '0e + 1o', x_irreps])}\n"
                    f"    out {c} : {rng.choice(['0e', '1o', '0e + 1o + 2e', '13e'])}\n"
                    f"    {c} = fuse({args}) [weights={rng.choice(['none', 'uuu', 'uvw'])}]\n")
        elif shape == 2:     # linear
            body = (f"    in {a} : {x_irreps}\n    out {c} : {rng.choice([x_irreps, '4x0e', '65536x0e'])}\n"
                    f"    {c} = linear({a})\n")
        elif shape == 3:     # two diagrams whose names may map to one Python name
            name2 = rng.choice(HOSTILE_NAMES)
            body = f"    in {a} : 2x0e\n    out {c} : 2x0e\n    {c} = linear({a})\n}}\ndiagram {name2} {{\n" \
                   f"    in {b} : 0e\n    out {d} : 0e\n    {d} = linear({b})\n"
        else:                # an internal wire and external weights
            body = (f"    in {a} : 8x(0e + 1o)\n    in {b} : sh(2)\n    out {c} : 8x(0e + 1o)\n"
                    f"    wire {d} : 8x(0e + 1o) = fuse({a}, {b}) [weights=uvu, external]\n"
                    f"    {c} = linear({d})\n")
        name = rng.choice(HOSTILE_NAMES + ["D"])
        out.append(f"group {group}\n\ndiagram {name} {{\n{body}}}\n".encode("utf-8"))
    return out


def make_cases(total: int) -> list[bytes]:
    """About half grammar-generated, 40% mutated examples, 10% hostile names and sizes."""
    n_hostile = total // 10
    n_grammar = total // 2
    return grammar_cases(n_grammar) + mutation_cases(total - n_grammar - n_hostile) + hostile_cases(n_hostile)


# --- running cases (the worker) -----------------------------------------------------------------

class CaseTimeout(BaseException):
    """Raised by the interval timer; a BaseException so `except Exception` in the code under test cannot eat it."""


def _on_alarm(signum, frame):
    raise CaseTimeout()


def canonical_graph(diagrams) -> str:
    """The diagrams' IR without source positions: what fmt must preserve."""
    def strip(value):
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if "span" not in k}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value
    return json.dumps([strip(d.to_json()) for d in diagrams], sort_keys=True)


def _cli_exit_code(argv: list[str]) -> tuple[int, str]:
    from fusionlang import cli
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = cli.main(argv)
    return code, err.getvalue()


def run_case(data: bytes, index: int, workdir: Path) -> str | None:
    """None when the pipeline behaved; otherwise a one-paragraph description of what went wrong."""
    from fusionlang.api import compile_analysis
    from fusionlang.frontend.fmt import format_source
    from fusionlang.frontend import analyze, analyze_bytes

    started = time.process_time()       # CPU time: a loaded machine does not make check slow
    analysis = analyze_bytes(data, "fuzz.fus")
    check_seconds = time.process_time() - started
    if check_seconds > CHECK_SECONDS:
        return f"check took {check_seconds:.1f} s (limit {CHECK_SECONDS} s)"
    for d in analysis.diagnostics:
        d.render(analysis.shown_source or "")
    if index % CLI_EVERY == 0:
        path = workdir / f"case{index}.fus"
        path.write_bytes(data)
        for argv in (["check", str(path)], ["plan", str(path)], ["compile", str(path), "-o", str(workdir / "o.py")]):
            code, err = _cli_exit_code(argv)
            if code not in (0, 1) or "Traceback" in err:
                return f"fusionc {argv[0]} exited {code}:\n{err[-1500:]}"
    if not analysis.ok:
        return None
    text = analysis.source
    formatted = format_source(text)
    again = analyze(formatted)
    if not again.ok:
        return "fmt output does not check:\n" + "\n".join(d.render(formatted) for d in again.diagnostics)[:1500]
    if canonical_graph(again.diagrams) != canonical_graph(analysis.diagrams):
        return f"fmt changed the graph; formatted text:\n{formatted[:1500]}"
    if format_source(formatted) != formatted:
        return "fmt is not idempotent"
    program = compile_analysis(analysis)
    for name, module_class in program.modules.items():
        module_class()
    return None


def worker(cases_path: str, results_path: str) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP_BYTES, MEMORY_CAP_BYTES))
    # CPU time for "too slow" (a loaded machine must not fail the run), wall time for a hang.
    signal.signal(signal.SIGPROF, _on_alarm)
    signal.signal(signal.SIGALRM, _on_alarm)
    sys.path.insert(0, str(TESTS))
    import tempfile
    import traceback

    import torch
    torch.set_num_threads(1)
    cases = json.loads(Path(cases_path).read_text())
    failures = []
    with tempfile.TemporaryDirectory() as tmp:
        for index, encoded in cases:
            data = base64.b64decode(encoded)
            signal.setitimer(signal.ITIMER_PROF, CASE_SECONDS)
            signal.setitimer(signal.ITIMER_REAL, HANG_SECONDS)
            try:
                problem = run_case(data, index, Path(tmp))
            except CaseTimeout:
                problem = f"over the cap of {CASE_SECONDS:.0f} s of CPU time or {HANG_SECONDS:.0f} s of wall time"
            except MemoryError:
                problem = f"over the {MEMORY_CAP_BYTES >> 30} GiB memory cap"
            except Exception:
                problem = "exception:\n" + traceback.format_exc()[-2500:]
            finally:
                signal.setitimer(signal.ITIMER_PROF, 0)
                signal.setitimer(signal.ITIMER_REAL, 0)
            if problem is not None:
                failures.append({"index": index, "input": data.decode("utf-8", "replace")[:2000],
                                 "problem": problem})
    Path(results_path).write_text(json.dumps({"cases": len(cases), "failures": failures}))


# --- the driver ---------------------------------------------------------------------------------

def run_fuzz(total: int, workers: int, tmpdir: Path, progress=None) -> dict:
    """Run `total` cases on `workers` processes; returns {"cases": n, "failures": [...], "seconds": s}."""
    started = time.perf_counter()
    cases = make_cases(total)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    procs = []
    for w in range(workers):
        share = [(i, base64.b64encode(c).decode("ascii")) for i, c in enumerate(cases) if i % workers == w]
        cases_path, results_path = tmpdir / f"cases{w}.json", tmpdir / f"results{w}.json"
        cases_path.write_text(json.dumps(share))
        procs.append((subprocess.Popen([sys.executable, __file__, str(cases_path), str(results_path)], env=env,
                                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT), results_path))
    result = {"cases": 0, "failures": []}
    for proc, results_path in procs:
        output = proc.communicate()[0].decode("utf-8", "replace")
        if proc.returncode != 0 or not results_path.exists():
            result["failures"].append({"index": -1, "input": "", "problem":
                                       f"worker died with exit code {proc.returncode}:\n{output[-3000:]}"})
            continue
        part = json.loads(results_path.read_text())
        result["cases"] += part["cases"]
        result["failures"] += part["failures"]
    result["seconds"] = time.perf_counter() - started
    return result


def describe(result: dict, limit: int = 5) -> str:
    lines = [f"{len(result['failures'])} failing of {result['cases']} cases ({result['seconds']:.0f} s)"]
    for f in result["failures"][:limit]:
        lines.append(f"--- case {f['index']} ---\n{f['input']}\n>>> {f['problem']}")
    return "\n".join(lines)


if __name__ == "__main__":
    if len(sys.argv) == 3:
        worker(sys.argv[1], sys.argv[2])
    else:   # `python tests/fuzz_pipeline.py N`: a standalone run (make fuzz)
        import tempfile
        sys.path.insert(0, str(TESTS))
        n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
        with tempfile.TemporaryDirectory() as tmp:
            res = run_fuzz(n, os.cpu_count() or 2, Path(tmp))
        print(describe(res, limit=20))
        sys.exit(1 if res["failures"] else 0)
