"""`python -m benchmarks [--quick] [--output-dir DIR]` from the repository root."""

import argparse
import pathlib
import sys
import time

from benchmarks import __doc__ as DOC
from benchmarks import harness, report


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=DOC.split("\n\n")[0])
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--quick", action="store_true", help="a ~1-minute smoke run")
    which.add_argument("--gpu", action="store_true",
                       help="the GPU run: XLA at every size, float16 too (a few minutes on a GPU)")
    parser.add_argument(
        "--output-dir", default=".", help="where BENCHMARKS.md and benchmarks.csv go"
    )
    parser.add_argument("--memory-worker", nargs=6, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_worker:
        harness.memory_worker(*args.memory_worker)
        return 0
    output = pathlib.Path(args.output_dir)
    if not output.is_dir():
        print(f"error: --output-dir {str(output)!r} is not a folder: create it first",
              file=sys.stderr)
        return 2
    settings = harness.QUICK if args.quick else harness.GPU if args.gpu else harness.FULL
    start = time.perf_counter()
    rows, extras = harness.run(settings)
    info = harness.machine()
    elapsed = time.perf_counter() - start
    report.write_csv(rows, output / "benchmarks.csv")
    report.write_markdown(rows, extras, info, settings, output / "BENCHMARKS.md", elapsed)
    print()
    for table in (report.targets_table(report.targets(rows, extras["elbo"])),
                  report.precision_table(rows), report.elbo_table(extras["elbo"]),
                  report.xla_table(rows), report.pipeline_table(extras)):
        if table:
            print(table, end="\n\n")
    print(f"wrote {output / 'BENCHMARKS.md'} and {output / 'benchmarks.csv'} "
          f"in {elapsed / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
