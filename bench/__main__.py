"""``python -m bench [NAME ...] [--quick] [--out PATH]``: run benchmarks, print a table, write JSON.

With no names every benchmark runs and the results go to ``bench/results.json``; a subset writes
``bench/results.partial.json`` (so a quick check never overwrites the full run) unless ``--out``
says otherwise. The exit status is 1 when a target was missed or a benchmark failed.
"""

from __future__ import annotations

import argparse
import importlib
import os
import shutil
import sys
import tempfile
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path

from bench import BENCHMARKS
from bench.common import BenchContext, BenchResult, fmt, git_info, machine_info, write_json

HERE = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "names", nargs="*", help=f"benchmarks to run (default all): {', '.join(BENCHMARKS)}"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smaller, shorter runs (smoke test; figures not comparable)",
    )
    parser.add_argument("--out", type=Path, help="where to write the JSON results")
    parser.add_argument(
        "--keep", action="store_true", help="keep the scratch directory (DBs, logs)"
    )
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    unknown = [n for n in args.names if n not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark(s) {unknown}; choose from {list(BENCHMARKS)}")
    names = args.names or list(BENCHMARKS)
    full = not args.names and not args.quick
    out = args.out or (HERE / ("results.json" if full else "results.partial.json"))

    workdir = Path(tempfile.mkdtemp(prefix="crt-bench-"))
    ctx = BenchContext(workdir=workdir, quick=args.quick, verbose=args.verbose)
    started = time.perf_counter()
    machine = machine_info()
    results: list[BenchResult] = []
    try:
        for name in names:
            print(f"== {name}: {BENCHMARKS[name]}", flush=True)
            load = os.getloadavg()
            t0 = time.perf_counter()
            try:
                module = importlib.import_module(f"bench.{name}")
                result: BenchResult = module.run(ctx)
            except Exception as exc:  # one broken benchmark must not hide the others' figures
                traceback.print_exc()
                result = BenchResult(name, BENCHMARKS[name], error=f"{type(exc).__name__}: {exc}")
            result.duration_s = time.perf_counter() - t0
            # Other work on this machine inflates wall-clock figures: keep the context.
            result.details["loadavg_before"] = [round(x, 2) for x in load]
            results.append(result)
            _print_result(result)
    finally:
        if args.keep:
            print(f"scratch kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    total = time.perf_counter() - started
    figures = [f for r in results for f in r.figures]
    summary = {
        "targets": sum(1 for f in figures if f.passed is not None),
        "passed": sum(1 for f in figures if f.passed is True),
        "failed": sum(1 for f in figures if f.passed is False),
        "errors": [r.name for r in results if r.error],
    }
    data = {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "command": "python -m bench " + " ".join(sys.argv[1:] if argv is None else argv),
        "complete": full,
        "quick": args.quick,
        "duration_s": round(total, 1),
        "machine": machine,
        "git": git_info(),
        "summary": summary,
        "benchmarks": {r.name: r.as_dict() for r in results},
    }
    write_json(out, data)
    print()
    _print_table(results)
    print(
        f"\n{summary['passed']}/{summary['targets']} targets met, {summary['failed']} missed"
        + (f", errors in {summary['errors']}" if summary["errors"] else "")
        + f"; {total:.0f} s; results in {_shown(out)}"
    )
    return 0 if not summary["failed"] and not summary["errors"] else 1


def _shown(path: Path) -> Path:
    return path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path


def _print_result(result: BenchResult) -> None:
    if result.error:
        print(f"   ERROR {result.error}")
    for f in result.figures:
        mark = {True: "ok  ", False: "MISS", None: "    "}[f.passed]
        target = f"(target {f.target})" if f.target else ""
        print(f"   {mark} {f.name}: {fmt(f.value)} {f.unit} {target}".rstrip())


def _print_table(results: list[BenchResult]) -> None:
    rows = [("benchmark", "figure", "value", "target", "ok")]
    for r in results:
        if r.error:
            rows.append((r.name, "ERROR", r.error[:40], "", "no"))
        for f in r.figures:
            ok = {True: "yes", False: "NO", None: ""}[f.passed]
            rows.append((r.name, f.name, f"{fmt(f.value)} {f.unit}".strip(), f.target, ok))
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    for i, row in enumerate(rows):
        print("  ".join(cell.ljust(widths[j]) for j, cell in enumerate(row)).rstrip())
        if i == 0:
            print("  ".join("-" * w for w in widths))


if __name__ == "__main__":
    sys.exit(main())
