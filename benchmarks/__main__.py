"""`python -m benchmarks [--quick | --gpu] [--tiny] [--output-dir DIR]` from the repository root."""

import argparse
import pathlib
import sys
import time

from benchmarks import __doc__ as DOC
from benchmarks import harness, memory, report


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=DOC.split("\n\n")[0])
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--quick", action="store_true", help="a ~1-minute smoke run")
    which.add_argument("--gpu", action="store_true",
                       help="the GPU run: XLA at every size, float16 too (a few minutes on a GPU)")
    parser.add_argument("--tiny", action="store_true",
                        help="the chosen run on an 8x8x1 network for seconds each: a check that "
                             "every measurement runs, not a measurement")
    parser.add_argument(
        "--output-dir", default=".", help="where BENCHMARKS.md and benchmarks.csv go"
    )
    parser.add_argument("--memory-worker", nargs=6, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_worker:
        memory.worker(*args.memory_worker)
        return 0
    output = pathlib.Path(args.output_dir)
    if not output.is_dir():
        print(f"error: --output-dir {str(output)!r} is not a folder: create it first",
              file=sys.stderr)
        return 2
    settings = harness.QUICK if args.quick else harness.GPU if args.gpu else harness.FULL
    if args.tiny:
        settings = harness.tiny(settings)
    start = time.perf_counter()
    results = harness.run(settings)
    info = harness.machine()
    elapsed = time.perf_counter() - start
    report.write_csv(results.rows, output / "benchmarks.csv")
    report.write_markdown(results, info, settings, output / "BENCHMARKS.md", elapsed)
    print()
    for table in (report.targets_table(report.targets(results.rows, results.elbo)),
                  report.precision_table(results.rows), report.elbo_table(results.elbo),
                  report.xla_table(results.rows), report.pipeline_table(results)):
        if table:
            print(table, end="\n\n")
    print(f"wrote {output / 'BENCHMARKS.md'} and {output / 'benchmarks.csv'} "
          f"in {elapsed / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
