#!/usr/bin/env python3
"""CPU time of each thread of a command, and its wall time: medians over ROUNDS runs.

Usage: benches/threadcpu.py ROUNDS CMD...   e.g.
  benches/threadcpu.py 9 target/release/autoblock replay --config rules.toml F

Polls /proc/PID/task/*/stat every 2 ms (utime + stime, in clock ticks) and keeps each
thread's last reading; threads are listed in creation order: with `autoblock replay`, t0 is
the main thread (the engine) and t1 the reader. Prints "wall W t0 C0 t1 C1 ..." in seconds.
A thread that ends between two polls loses up to 2 ms; a tick is 10 ms, so figures move in
steps of 0.01 s: compare medians of several runs, alternating the builds compared.
"""
import os
import statistics
import subprocess
import sys
import time


def run_once(cmd):
    tick = os.sysconf("SC_CLK_TCK")
    start = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seen = {}
    while p.poll() is None:
        try:
            tasks = os.listdir(f"/proc/{p.pid}/task")
        except OSError:
            tasks = []
        for t in tasks:
            try:
                with open(f"/proc/{p.pid}/task/{t}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                seen[t] = (int(fields[11]) + int(fields[12])) / tick
            except OSError:
                pass
        time.sleep(0.002)
    wall = time.perf_counter() - start
    return wall, [c for _, c in sorted(seen.items(), key=lambda kv: int(kv[0]))]


def main():
    if len(sys.argv) < 3 or not sys.argv[1].isdigit():
        sys.exit("usage: threadcpu.py ROUNDS CMD...")
    rounds, cmd = int(sys.argv[1]), sys.argv[2:]
    runs = [run_once(cmd) for _ in range(rounds)]
    threads = max(len(c) for _, c in runs)
    cols = [f"wall {statistics.median(w for w, _ in runs):.3f}"]
    for i in range(threads):
        cpu = statistics.median(c[i] if i < len(c) else 0 for _, c in runs)
        cols.append(f"t{i} {cpu:.3f}")
    print(" ".join(cols))


if __name__ == "__main__":
    main()
