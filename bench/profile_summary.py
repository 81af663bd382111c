"""Top entries of py-spy profiles (``py-spy record --format raw``: collapsed stacks).

For each function: *self* (samples where it was the innermost frame) and *total* (samples where it
was anywhere on the stack), as a share of all active samples of the file(s); and the share of
kind of thread. bench/chat_throughput.py records with ``--gil``: only samples of the thread holding
the GIL, so the shares are of the time the process ran Python code (a thread waiting on a lock or
in a system call that released the GIL is not counted).

    python bench/profile_summary.py DIR_OR_FILES... [--top 25]
"""

from __future__ import annotations

import argparse
import collections
import re
import sys
from collections.abc import Iterable
from pathlib import Path

_FRAME = re.compile(r"^(?P<function>.*?) \((?P<file>[^()]*?)(?::\d+)?\)$")


def _frame(frame: str) -> str:
    """``function (file:line)`` -> ``function (file)``: lines of one function counted together."""
    match = _FRAME.match(frame.strip())
    return f"{match.group('function')} ({match.group('file')})" if match else frame.strip()


def _role(frames: list[str]) -> str:
    """What a thread does: the first frame below threading's bootstrap (its ``run``)."""
    for i, frame in enumerate(frames):
        if not frame.startswith(("Thread._bootstrap", "_bootstrap")):
            return frames[i] if i else f"main: {frame}"
    return frames[-1]


def summarise(paths: Iterable[Path], top: int = 25) -> str:
    """The report of the given raw profiles, together."""
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    threads: collections.Counter[str] = collections.Counter()
    total = 0
    for path in paths:
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            stack, _, count_text = line.rpartition(" ")
            if not stack or not count_text.isdigit():
                continue
            count = int(count_text)
            frames = stack.split(";")
            frames = [_frame(f) for f in frames if not f.startswith(("thread", "process"))]
            if not frames:
                continue
            total += count
            threads[_role(frames)] += count
            own[frames[-1]] += count
            for name in set(frames):
                inclusive[name] += count
    if not total:
        return "no samples\n"
    lines = [f"{total} samples"]
    if len(threads) > 1:
        lines.append("threads (by the function they run):")
        lines += [f"  {100 * n / total:5.1f}%  {name}" for name, n in threads.most_common(12)]
    lines.append("top self:")
    lines += [f"  {100 * n / total:5.1f}%  {name}" for name, n in own.most_common(top)]
    lines.append("top total (inclusive):")
    lines += [f"  {100 * n / total:5.1f}%  {name}" for name, n in inclusive.most_common(top)]
    return "\n".join(lines) + "\n"


def summarise_dir(directory: Path, top: int = 25) -> None:
    """Prints one report per contender (files ``<contender>-r<round>.<pid>.txt``)."""
    groups: dict[str, list[Path]] = collections.defaultdict(list)
    for path in sorted(directory.glob("*.txt")):
        groups[path.name.split("-r", 1)[0]].append(path)
    for contender, paths in groups.items():
        print(f"\n# py-spy: {contender} ({len(paths)} profile(s))")
        print(summarise(paths, top), end="")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("paths", nargs="+", type=Path)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    files = [p for path in args.paths
             for p in (sorted(path.glob("*.txt")) if path.is_dir() else [path])]
    print(summarise(files, args.top), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
