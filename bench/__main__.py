"""`python -m bench [--quick]`: run fanout, claim, dispatch, calls, smsapi, memory and public in turn, one at a time.

Prints a short header, then one line per figure (ours, the baseline measured in the same
run, the ratio, the target and PASS/MISS); progress goes to stderr. `--quick` divides every
count by 10 for a smoke run (its figures are not the ones to quote). Exit status 1 when any
figure misses its target.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Callable

HEADER = """\
Syrena benchmarks ({mode}) -- {machine}
Each line: our figure | the baseline measured in this same run | ratio | target | PASS/MISS.
Medians of 3 runs, ours and the baseline alternating; fixtures are built and freed before timing.
  fanout   publish(alert) to {fanout:,} matching residents (SQLite file, WAL; PostgreSQL) vs the same
           rows written by one hand-written INSERT ... SELECT on the raw DBAPI connection.
           Ratio = our time / raw time, target <= 1.5x.
  claim    the claim's query on an outbox just filled with {claim:,} due SMS, before any ANALYZE (PostgreSQL),
           under the dispatcher's plan guard, vs the same query after ANALYZE. Ratio = ours / analyzed,
           target <= 2x; the unguarded query on the stale statistics and 8 dispatchers at once beside it.
  dispatch SMS/s through the Dispatcher's sliding window (what run_forever runs: 32 threads, a
           window of 128 calls, real twilio SDK, SQLite), and through run_once() batches of 200, to
           the fake Twilio API in its own process, vs a bare keep-alive requests.Session (32
           connections, 32 threads) posting the same forms. Ratio = our msg/s / raw msg/s,
           target >= 0.5x and >= 100 msg/s (10x Twilio's default 10 segments/s per alphanumeric sender).
  calls    calls/s placed through the same sliding window (TwilioVoice, the real twilio SDK's
           calls.create, 32 threads) to residents who take calls, with the SMS/s of the same dispatcher
           to the same fake beside it, vs the bare requests.Session posting the same Calls forms.
           Ratio = our calls/s / raw calls/s, target >= 0.5x.
  smsapi   SMS/s through SmsapiSms (the real smsapi-client, 32 threads) to the fake SMSAPI in its
           own process, vs bare requests posts of the same forms. Ratio = our msg/s / raw msg/s,
           target >= 0.5x.
  memory   peak RSS (ru_maxrss) of a fresh process that fans out {memory:,} deliveries and
           dispatches the first {dispatched:,} (real SDK), vs a bare app process (create_app + empty
           query). Target: peak < 300 MB; readings during dispatch show whether memory is flat per batch.
  public   req/s for the home page and the Atom feed (2 warnings in force, 60 in the archive) under
           gunicorn --workers 2 (production settings, SQLite), wrk -c16, vs a static file of the same
           size from the same gunicorn; the same pages with the cache off are shown beside.
           Ratio = our req/s / static req/s, target >= 0.5x (needs wrk: apt-get install wrk).
"""


def _machine() -> str:
    return (f"{os.cpu_count()} cores, Python {platform.python_version()}, "
            f"{platform.system()} {platform.release()}, {_load()}")


def _load() -> str:
    """Other work on these 2 cores skews every figure; say how busy the machine was."""
    one, five, _ = os.getloadavg()
    busy = " -- BUSY: other processes compete, expect noise" if one > 0.5 * (os.cpu_count() or 1) else ""
    return f"load average {one:.2f} (1 min) / {five:.2f} (5 min){busy}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="every count / 10 (smoke run)")
    args = parser.parse_args(argv)

    from bench.common import start_launcher

    start_launcher()  # before anything grows: see its docstring (ru_maxrss is inherited)

    from bench import calls, claim, dispatch, fanout, memory, public_pages, smsapi

    scale = 10 if args.quick else 1
    print(HEADER.format(mode="quick: counts / 10, smoke run only" if args.quick else "full",
                        machine=_machine(), fanout=fanout.FULL_COUNT // scale, claim=claim.FULL_COUNT // scale,
                        memory=memory.FULL_RESIDENTS // scale, dispatched=memory.FULL_DISPATCHED // scale),
          flush=True)
    benchmarks: list[tuple[str, Callable[[bool], list[str]]]] = [
        ("fanout", fanout.main), ("claim", claim.main), ("dispatch", dispatch.main), ("calls", calls.main), ("smsapi", smsapi.main),
        ("memory", memory.main),
        ("public", public_pages.main)]
    missed = False
    started = time.monotonic()
    for name, run in benchmarks:
        began = time.monotonic()
        lines = run(args.quick)
        for line in lines:
            print(line, flush=True)
            missed = missed or line.endswith("| MISS")
        print(f"  ({name}: {time.monotonic() - began:.0f} s)", file=sys.stderr, flush=True)
    verdict = "some figure MISSED its target" if missed else "every figure PASSED"
    print(f"\nTotal wall time {time.monotonic() - started:.0f} s; {_load()} at the end; {verdict}.",
          flush=True)
    # A quick run is a smoke test of the code paths: its small counts are not the targets' counts.
    return 1 if missed and not args.quick else 0


if __name__ == "__main__":
    sys.exit(main())
