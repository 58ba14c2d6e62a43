"""The batch run: wait for the model server, send every input with bounded concurrency, write outputs.

Issue 6: "a runner sends every input (each file, or each csv row mapped to the request fields by
mappingRule) to reqUri, and writes one output per input under destPath". Errors of one input (an
HTTP error, a timeout, a row that does not map) are recorded and the run goes on; connection errors
and 502/503/504 are retried (`retries`) with a short backoff, since a model pod may restart. The
progress file is rewritten after every input; at the end the termination message (--termination-log,
/dev/termination-log in a Pod) carries the summary and the first errors for the operator.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

from inference_operator.batch.inputs import (
    Input,
    count_inputs,
    has_output,
    iter_inputs,
    output_path,
    request_body,
)
from inference_operator.batch.mapping import MappingError, RuleError, validate_rule
from inference_operator.batch.progress import Progress, write_atomic

log = logging.getLogger("inference_operator.batch")
RETRY_STATUSES = frozenset({502, 503, 504})


@dataclass(frozen=True)
class Options:
    """Everything one run needs (the CLI flags of `python -m inference_operator.batch`)."""

    src: Path
    dest: Path
    url: str
    mapping_type: str = "file"
    mapping_rule: Mapping[str, Any] | None = None
    max_failures_percent: float = 10.0
    progress_file: Path | None = None
    termination_log: Path | None = None
    concurrency: int = 4
    timeout: float = 120.0
    retries: int = 2
    wait_timeout: float = 600.0
    resume: bool = False


class Run:
    """One batch run's state: options, progress, and how it reports."""

    def __init__(self, opts: Options) -> None:
        self.opts = opts
        self.progress = Progress(total=0, max_failures_percent=opts.max_failures_percent)

    def report(self) -> None:
        if self.opts.progress_file is None:
            return
        try:
            write_atomic(self.opts.progress_file, _json(self.progress.to_dict(datetime.now(UTC))))
        except OSError as err:  # progress is best effort; the outputs and the exit code are what count
            log.warning("cannot write the progress file %s: %s", self.opts.progress_file, err)

    def terminate(self, code: int) -> int:
        """Final progress file and termination message; returns the exit code."""
        self.report()
        log.info("batch run %s: %s", self.progress.status, self.progress.message)
        if self.opts.termination_log is not None:
            try:
                self.opts.termination_log.write_text(self.progress.termination_message(), encoding="utf-8")
            except OSError as err:
                log.warning("cannot write the termination message to %s: %s", self.opts.termination_log, err)
        return code

    def preflight(self) -> str | None:
        """Why the run cannot start (missing src, bad rule, no inputs), or None."""
        opts = self.opts
        if not opts.src.is_dir():
            return f"input directory {opts.src} does not exist"
        if opts.mapping_type == "csv":
            if not opts.mapping_rule:
                return "mappingType csv needs a mappingRule"
            try:
                validate_rule(opts.mapping_rule)
            except RuleError as err:
                return str(err)
        self.progress.total = count_inputs(opts.src, opts.mapping_type, opts.mapping_rule)
        if self.progress.total == 0:
            kind = "*.csv rows" if opts.mapping_type == "csv" else "files"
            return f"no inputs: found no {kind} under {opts.src}"
        try:
            opts.dest.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            return f"cannot create the output directory: {err}"
        return None

    async def send(self, session: aiohttp.ClientSession, item: Input) -> str | None:
        """POST one input and write its output; the error text, or None on success."""
        try:
            body, ctype = request_body(item, self.opts.mapping_rule)
        except (MappingError, OSError, UnicodeDecodeError) as err:
            return f"cannot build the request: {err}"
        for attempt in range(self.opts.retries + 1):
            try:
                async with session.post(self.opts.url, data=body, headers={"Content-Type": ctype}) as resp:
                    answer = await resp.read()
                    if resp.status in RETRY_STATUSES and attempt < self.opts.retries:
                        await asyncio.sleep(2**attempt)
                        continue
                    if resp.status >= 400:
                        text = answer[:200].decode("utf-8", "replace").strip()
                        return f"HTTP {resp.status}: {text}" if text else f"HTTP {resp.status}"
                    target = output_path(self.opts.dest, item, resp.headers.get("Content-Type", ""))
                    try:
                        target.parent.mkdir(parents=True, exist_ok=True)
                        target.write_bytes(answer)
                    except OSError as err:
                        return f"cannot write the output: {err}"
                    return None
            except (aiohttp.ClientConnectionError, TimeoutError) as err:
                if attempt == self.opts.retries:
                    return f"{type(err).__name__}: {err}" if str(err) else type(err).__name__
                await asyncio.sleep(2**attempt)
        return "retries exhausted"

    async def worker(self, session: aiohttp.ClientSession, items: Iterator[Input]) -> None:
        for item in items:  # a shared iterator: each worker takes the next input
            if self.opts.resume and has_output(self.opts.dest, item):
                self.progress.record(item.key, None, skipped=True)
            else:
                error = await self.send(session, item)
                self.progress.record(item.key, error)
                if error:
                    log.warning("%s: %s", item.key, error)
            self.report()

    async def execute(self) -> int:
        problem = self.preflight()
        if problem:
            return self.terminate(self.progress.fail(problem))
        self.report()
        timeout = aiohttp.ClientTimeout(total=self.opts.timeout)
        connector = aiohttp.TCPConnector(limit=self.opts.concurrency)
        async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
            if not await wait_for_server(session, self.opts.url, self.opts.wait_timeout):
                return self.terminate(self.progress.fail(
                    f"the model server at {self.opts.url} did not answer within {self.opts.wait_timeout:g}s"))
            items = iter_inputs(self.opts.src, self.opts.mapping_type, self.opts.mapping_rule)
            await asyncio.gather(*(self.worker(session, items) for _ in range(self.opts.concurrency)))
        return self.terminate(self.progress.finish())


async def wait_for_server(session: aiohttp.ClientSession, url: str, timeout: float) -> bool:
    """True once anything answers HTTP at `url` (even 404/405): the model pod is up and routed."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            async with session.get(url, timeout=aiohttp.ClientTimeout(total=5)):
                return True
        except (aiohttp.ClientConnectionError, TimeoutError):
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(min(2.0, max(deadline - time.monotonic(), 0.0)))


def _json(data: Mapping[str, Any]) -> str:
    return json.dumps(data, ensure_ascii=False, indent=2) + "\n"


async def run(opts: Options) -> int:
    """Run a whole batch; returns the exit code (0 ok, 1 too many failures, 2 could not run)."""
    return await Run(opts).execute()
