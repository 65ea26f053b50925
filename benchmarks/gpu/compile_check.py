"""Compile the generated Triton kernels of the GPU cases for an NVIDIA target, on a machine without a GPU.

    python benchmarks/gpu/compile_check.py                 # every case, sm_90 (H100/H200)
    python benchmarks/gpu/compile_check.py A D --arch 80   # some cases, another architecture

Triton compiles ahead of time without a device (its bundled LLVM and ptxas), so this checks what
the interpreter does not (the kernels type-check as compiled code: loop-carried values, layouts)
and shows, per kernel, the compile time and the resources ptxas reports: registers per thread and
stack bytes per thread (above 0: values spilled out of registers).  Kernels are compiled for float32 with the
BLOCK_Z and num_warps the generated launch uses.  Needs triton; no GPU, no network.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
os.environ.pop("TRITON_INTERPRET", None)      # compiled kernels, not the interpreter
os.environ.setdefault("TRITON_DEFAULT_FP_FUSION", "1")
# A fresh kernel cache, so that the compile times are those of a first run.
os.environ.setdefault("TRITON_CACHE_DIR", tempfile.mkdtemp(prefix="fusionlang-compile-check-"))


def launches(python: str) -> dict[str, dict]:
    """Kernel name -> the constexpr and launch options its wrapper passes."""
    found = {}
    for name, args in re.findall(r"(\w+)\[\(triton\.cdiv\(rows, \d+\),\)\]\(\s*([^)]*)\)", python):
        block = int(re.search(r"BLOCK_Z=(\d+)", args).group(1))
        warps = int(re.search(r"num_warps=(\d+)", args).group(1))
        found[name] = {"BLOCK_Z": block, "num_warps": warps, "ATOMIC": False}
    return found


def resources(cubin: bytes) -> dict:
    import triton
    tool = Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "cuobjdump"
    with tempfile.NamedTemporaryFile(suffix=".cubin", delete=False) as f:
        f.write(cubin)
    try:
        text = subprocess.run([str(tool), "--dump-resource-usage", f.name], capture_output=True, text=True).stdout
    finally:
        os.unlink(f.name)
    usage = re.search(r"REG:(\d+) STACK:(\d+) SHARED:(\d+) LOCAL:(\d+)", text)
    return {"registers": int(usage.group(1)), "stack": int(usage.group(2)), "shared": int(usage.group(3)),
            "local": int(usage.group(4))} if usage else {"raw": text[-300:]}


def check(source: str, arch: int, block_sizes=None) -> list[dict]:
    """One row per kernel (and per BLOCK_Z of block_sizes, when given instead of the generated one)."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource
    from fusionlang.api import compile_source
    program = compile_source(source, backend="triton")
    namespace = next(iter(program.modules.values())).forward.__globals__
    options = launches(program.python)
    rows = []
    for name, fn in namespace.items():
        if not isinstance(fn, triton.runtime.jit.JITFunction):
            continue
        for block in block_sizes or [options[name]["BLOCK_Z"]]:
            opts = dict(options[name], BLOCK_Z=block)
            signature, constants = {}, {}
            for p in fn.params:
                if p.is_constexpr:
                    signature[p.name], constants[p.name] = "constexpr", opts[p.name]
                else:
                    # index_<end>_ptr: a graph chain's edge_index row (torch.long)
                    signature[p.name] = ("*i64" if p.name.startswith("index_") else "*fp32") \
                        if p.name.endswith("_ptr") else "i32"
            start = time.perf_counter()
            kernel = triton.compile(ASTSource(fn=fn, signature=signature, constexprs=constants),
                                    target=GPUTarget("cuda", arch, 32), options={"num_warps": opts["num_warps"]})
            rows.append({"kernel": name, "BLOCK_Z": block, "num_warps": opts["num_warps"],
                         "compile_s": round(time.perf_counter() - start, 2), **resources(kernel.asm["cubin"]),
                         "source_lines": len(fn.src.splitlines())})
    return rows


def main(argv=None) -> int:
    from benchmarks.gpu.cases import CASES
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("cases", nargs="*", default=list(CASES), help=f"case keys (default: all of {list(CASES)})")
    parser.add_argument("--arch", type=int, default=90, help="compute capability, e.g. 90 (default), 80")
    parser.add_argument("--json", metavar="PATH", help="also write the rows as JSON")
    parser.add_argument("--sweep", action="store_true", help="compile every kernel for BLOCK_Z = 1, 2, 4, ..., 64 "
                        "instead of the generated choice (to tune kernels.LIVE_ELEMENTS)")
    args = parser.parse_args(argv)
    report = {}
    print(f"{'case':<8} {'kernel':<22} {'BLOCK_Z':>7} {'warps':>5} {'regs':>5} {'stack':>6} {'lines':>6} {'compile':>8}")
    for key in args.cases:
        report[key] = check(CASES[key].source, args.arch, [1, 2, 4, 8, 16, 32, 64] if args.sweep else None)
        for r in report[key]:
            print(f"{key:<8} {r['kernel']:<22} {r['BLOCK_Z']:>7} {r['num_warps']:>5} {r.get('registers', '?'):>5} "
                  f"{r.get('stack', '?'):>6} {r['source_lines']:>6} {r['compile_s']:>7.1f}s", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"arch": args.arch, "cases": report}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
