"""One measurement in a fresh process: ``python -m bench.measure {plain|pipeline} INPUT OUTPUT [ARGS]``.

Prints one JSON line: seconds of processing (imports excluded), events read,
and the process's peak RSS (children included, for multi-process runners).
"""

from __future__ import annotations

import contextlib
import io
import json
import resource
import sys
import time


def peak_rss_mb() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, children) / 1024.0


def main(argv: list[str]) -> int:
    kind, input_path, output, *extra = argv
    if kind == "plain":
        from bench.plain_pyarrow import run

        start = time.perf_counter()
        counts = run(input_path, output)
        seconds = time.perf_counter() - start
        read = counts["read"]
    else:
        from pipeline.main import main as pipeline_main
        from pipeline.summary import RunSummary  # noqa: F401  (import cost outside the timing)

        out = io.StringIO()
        start = time.perf_counter()
        with contextlib.redirect_stdout(out):
            code = pipeline_main([f"--input={input_path}", f"--output={output}", "--quiet", *extra])
        seconds = time.perf_counter() - start
        if code != 0:
            print(out.getvalue(), file=sys.stderr)
            return code
        line = next(row for row in out.getvalue().splitlines() if row.strip().startswith("events read"))
        read = int(line.split()[2].replace(",", ""))
    print(json.dumps({"kind": kind, "seconds": seconds, "read": read, "peak_rss_mb": peak_rss_mb()}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
