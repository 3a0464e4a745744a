"""Side by side: ops/s of mcring, pymemcache (Client, HashClient) and pylibmc.

Not a test: numbers for docs/python.md. Servers come from
MCRING_BENCH_SERVERS ("h:p,h:p,..."); single-server clients use the first.
"""
import os
import sys
import threading
import time

import pylibmc
from pymemcache.client.base import Client as PmClient
from pymemcache.client.hash import HashClient as PmHashClient

import mcring

SERVERS = [(h, int(p)) for h, p in
           (s.rsplit(":", 1)
            for s in os.environ["MCRING_BENCH_SERVERS"].split(","))]
SECONDS = float(os.environ.get("MCRING_BENCH_SECONDS", "1.0"))


def rate(fn, n_per_call=1):
    # Runs fn repeatedly for SECONDS; returns operations per second.
    calls, start = 0, time.perf_counter()
    end = start + SECONDS
    while True:
        for _ in range(50):
            fn()
        calls += 50
        now = time.perf_counter()
        if now >= end:
            return calls * n_per_call / (now - start)


def clients():
    one = SERVERS[0]
    spec = ["%s:%d" % s for s in SERVERS]
    return {
        "mcring.Client": mcring.Client(one),
        "mcring.HashClient": mcring.HashClient(SERVERS),
        "pymemcache.Client": PmClient(one),
        "pymemcache.HashClient": PmHashClient(SERVERS),
        "pylibmc": pylibmc.Client(spec, behaviors={"ketama_weighted": True,
                                                   "tcp_nodelay": True}),
        "pylibmc(1 server)": pylibmc.Client(spec[:1],
                                            behaviors={"tcp_nodelay": True}),
    }


def main():
    cs = clients()
    small, big = b"x" * 10, b"y" * 4096
    keys = ["bench:%d" % i for i in range(100)]
    cs["mcring.HashClient"].set_many({k: small for k in keys}, noreply=False)
    for name, c in cs.items():
        if name.startswith("pylibmc"):
            c.set_multi({k: small for k in keys})
    rows = []
    for name, c in cs.items():
        is_pl = name.startswith("pylibmc")
        c.set("s10", small)
        c.set("s4k", big)
        if not is_pl:
            c.set("s10", small, noreply=False)
        r = {
            "get 10 B": rate(lambda: c.get("s10")),
            "get 4 KiB": rate(lambda: c.get("s4k")),
            "set 10 B": rate(lambda: c.set("w", small)
                             if is_pl else c.set("w", small, noreply=False)),
        }
        many = c.get_multi if is_pl else c.get_many
        if "Hash" in name or name == "pylibmc":
            r["get_many 100 keys over %d nodes" % len(SERVERS)] = \
                rate(lambda: many(keys), 100)
        rows.append((name, r))
    cols = []
    for _, r in rows:
        for k in r:
            if k not in cols:
                cols.append(k)
    w = [max(len(c), 14) + 2 for c in cols]
    print("%-22s" % "client" +
          "".join("%*s" % (x, c) for x, c in zip(w, cols)))
    for name, r in rows:
        print("%-22s" % name + "".join(
            "%*s" % (x, "%.0f/s" % r[c] if c in r else "-")
            for x, c in zip(w, cols)))

    # Where the time of a get goes: the binding's own part (argument
    # parsing, key checks, the lock and the call into C, no I/O) measured
    # with node_for_key, against a whole loopback get.
    c = cs["mcring.HashClient"]
    bare = rate(lambda: c.node_for_key("s10"))
    full = rate(lambda: c.get("s10"))
    print("mcring: binding part %.0f ns per call (node_for_key), whole get "
          "%.1f us: the binding is %.1f %% of a get" % (
              1e9 / bare, 1e6 / full, 100.0 * full / bare))

    # Threads: one shared client (its lock) against one client per thread.
    for nthreads in (1, 4):
        for shared in (True, False):
            made = [mcring.Client(SERVERS[0])] * nthreads if shared else \
                [mcring.Client(SERVERS[0]) for _ in range(nthreads)]
            counts = [0] * nthreads
            stop = time.perf_counter() + SECONDS

            def work(i):
                c, n = made[i], 0
                while time.perf_counter() < stop:
                    for _ in range(50):
                        c.get("s10")
                    n += 50
                counts[i] = n
            ts = [threading.Thread(target=work, args=(i,))
                  for i in range(nthreads)]
            for t in ts:
                t.start()
            for t in ts:
                t.join()
            print("threads=%d %-18s get 10 B: %.0f ops/s total" % (
                nthreads, "shared client" if shared else "client per thread",
                sum(counts) / SECONDS))


if __name__ == "__main__":
    sys.exit(main())
