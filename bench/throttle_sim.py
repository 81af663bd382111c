"""The package's retries, shared cooldown and pacing against a rate-limited service, in virtual
time (tests/fakes/throttled_service.py): minutes of throttling in a second, the same figures on any
machine. The real pipeline (tenacity, the Pacer, the limiters) against the fake server's rate
limit (a token bucket or fixed windows; Retry-After in seconds, retry-after-ms or none).

    python bench/throttle_sim.py                                  # 300 rows, 120/min, 16 slots
    python bench/throttle_sim.py --shape window --retry-after none
    python bench/throttle_sim.py --client-rpm 120                 # with 'requests-per-minute'

Prints, per seed: requests sent, 429s, the most requests for one row, rows/s and seconds (of
virtual time), failed rows. bench/suite.py's throttled section measures the same over HTTP.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.fakes.throttled_service import simulate  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=16, help="max-concurrent-operations")
    parser.add_argument("--rpm", type=float, default=120.0, help="the service's limit")
    parser.add_argument("--shape", choices=("bucket", "window"), default="bucket")
    parser.add_argument("--retry-after", choices=("seconds", "ms", "none"), default="seconds")
    parser.add_argument("--latency", type=float, default=0.02, help="seconds (+-50%%)")
    parser.add_argument("--client-rpm", type=int, help="'requests-per-minute'")
    parser.add_argument("--seeds", type=int, default=3, help="runs with seeds 1..N")
    parser.add_argument("--verbose", action="store_true", help="the pipeline's log lines")
    args = parser.parse_args()
    if not args.verbose:
        logging.disable(logging.WARNING)
    extra = {"requests-per-minute": str(args.client_rpm)} if args.client_rpm else {}
    print("seed,requests,429s,most requests for a row,rows/s,seconds,failed")
    for seed in range(1, args.seeds + 1):
        out = simulate(rows=args.rows, concurrency=args.concurrency, rpm=args.rpm,
                       shape=args.shape, latency=args.latency, seed=seed,
                       retry_after=None if args.retry_after == "none" else args.retry_after,
                       **extra)
        print(f"{seed},{out.requests},{out.throttled},{out.most_attempts},"
              f"{args.rows / out.seconds:.2f},{out.seconds:.0f},{len(out.failed)}")
        for line in out.failed[:3]:
            print("  ", line)


if __name__ == "__main__":
    main()
