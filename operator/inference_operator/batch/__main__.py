"""python -m inference_operator.batch: send every input under --src to --url, outputs under --dest.

Exit codes: 0 every input done and failures within --max-failures-percent; 1 too many failures;
2 the run could not start (no inputs, bad mapping rule, model server unreachable, bad flags).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from pathlib import Path
from typing import Any

from inference_operator.batch.runner import Options, run


def _rule(text: str) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise argparse.ArgumentTypeError(f"not JSON: {err}") from err
    if not isinstance(data, dict):
        raise argparse.ArgumentTypeError("must be a JSON object")
    return data


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def parse_args(argv: list[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(prog="python -m inference_operator.batch", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--src", type=Path, required=True, help="directory of inputs (read only)")
    parser.add_argument("--dest", type=Path, required=True, help="directory for outputs")
    parser.add_argument("--url", required=True, help="model endpoint, e.g. http://svc.ns.svc/predict")
    parser.add_argument("--mapping-type", choices=["file", "csv"], default="file",
                        help="file: one request per file; csv: one request per row of each *.csv")
    parser.add_argument("--mapping-rule", type=_rule, help="JSON: how CSV columns map to request fields")
    parser.add_argument("--max-failures-percent", type=float, default=10.0,
                        help="fail the run when more than this share of inputs failed (default 10)")
    parser.add_argument("--progress-file", type=Path, help="JSON progress, rewritten after every input")
    parser.add_argument("--termination-log", type=Path, default=Path("/dev/termination-log"),
                        help="where the final summary goes (the Pod's termination message)")
    parser.add_argument("--concurrency", type=_positive, default=4, help="requests in flight (default 4)")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per request (default 120)")
    parser.add_argument("--retries", type=int, default=2, help="retries on connection errors and 502/503/504")
    parser.add_argument("--wait-timeout", type=float, default=600.0,
                        help="seconds to wait for the model server to answer at all (default 600)")
    parser.add_argument("--resume", action="store_true", help="skip inputs whose output already exists")
    ns = parser.parse_args(argv)
    if ns.mapping_type == "csv" and ns.mapping_rule is None:
        parser.error("--mapping-type csv needs --mapping-rule")
    return Options(src=ns.src, dest=ns.dest, url=ns.url, mapping_type=ns.mapping_type,
                   mapping_rule=ns.mapping_rule, max_failures_percent=ns.max_failures_percent,
                   progress_file=ns.progress_file, termination_log=ns.termination_log,
                   concurrency=ns.concurrency, timeout=ns.timeout, retries=max(ns.retries, 0),
                   wait_timeout=ns.wait_timeout, resume=ns.resume)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    return asyncio.run(run(parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
