"""Pre-fork servers with 8 workers: gunicorn --preload and uWSGI's default
mode. The client is made and used at import time in the master, then
forked into every worker with no post-fork hook. Every worker must answer
with the right values, and each worker must hold at most one connection
per node. gunicorn variants: sync workers; gthread workers with 4 threads
sharing each worker's client; sync workers recycled by --max-requests (new
workers forked from the master mid-run)."""
import concurrent.futures
import http.client
import os
import signal
import subprocess
import sys
import tempfile
import time

import pytest
from pymemcache.client.base import Client as PmClient

import mcring
from conftest import free_port
from test_ring_dir import agent  # noqa: F401 (a fixture)

WORKERS = 8

APP = '''
import os
import mcring

if os.environ.get("APP_RING"):
    # Follow mcring-agent's ring.
    client = mcring.HashClient(ring_dir=os.environ["APP_RING"], timeout=10,
                               connect_timeout=10)
else:
    SERVERS = [(h, int(p)) for h, p in
               (s.rsplit(":", 1)
                for s in os.environ["APP_SERVERS"].split(","))]
    client = mcring.HashClient(SERVERS, timeout=10, connect_timeout=10)
# Used in the master, before the fork: its connections are open.
client.set(b"app:boot", str(os.getpid()).encode(), noreply=False)
assert client.get(b"app:boot") == str(os.getpid()).encode()


application = None


def app(environ, start_response):
    key = environ["QUERY_STRING"]
    if environ["PATH_INFO"] == "/gen":
        client.get(b"probe")  # a call is what checks for a new ring
        body = b"%d %d %s" % (os.getpid(), client.client_stats()["generation"],
                              ",".join(client.nodes()).encode())
    elif environ["PATH_INFO"] == "/set":
        ok = client.set(key, ("w%d" % os.getpid()).encode(), noreply=False)
        body = b"%d %s" % (os.getpid(), b"stored" if ok else b"failed")
    else:
        value = client.get(key)
        body = b"%d %s" % (os.getpid(), value if value is not None else b"-")
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Connection", "close"),
                              ("Content-Length", str(len(body)))])
    return [body]


application = app
'''


def wait_for(cond, what, limit=120.0):
    end = time.monotonic() + limit
    while time.monotonic() < end:
        v = cond()
        if v:
            return v
        time.sleep(0.1)
    pytest.fail("gave up waiting for " + what)


def http_get(port, path):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def children(pid):
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open("/proc/%s/stat" % d) as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        out.append(int(d))
            except (OSError, ValueError, IndexError):
                pass
    return out


def curr_connections(servers):
    return {s: PmClient(s, timeout=5).stats()[b"curr_connections"]
            for s in servers}


VARIANTS = {
    "sync": ["-k", "sync"],
    "gthread-4": ["-k", "gthread", "--threads", "4"],
    "max-requests": ["-k", "sync", "--max-requests", "150",
                     "--max-requests-jitter", "20"],
}


def uwsgi_command(work, port):
    cmd = ["uwsgi", "--plugin", "python3", "--master", "--processes",
           str(WORKERS), "--http-socket", "127.0.0.1:%d" % port,
           "--chdir", work, "--wsgi-file", os.path.join(work, "app.py"),
           "--disable-logging", "--die-on-term", "--harakiri", "120"]
    for p in sys.path:
        if p and os.path.isdir(p):
            cmd += ["--pythonpath", p]
    return cmd


def start_server(kind, servers, extra_env=None):
    work = tempfile.mkdtemp(prefix="prefork-",
                            dir=os.environ.get("MCRING_WORK"))
    with open(os.path.join(work, "app.py"), "w") as f:
        f.write(APP)
    port = free_port()
    env = dict(os.environ, APP_SERVERS=",".join("%s:%d" % s for s in servers),
               PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    env.update(extra_env or {})
    if kind == "uwsgi":
        # uWSGI's default pre-forking: the app is loaded in the master and
        # the workers are forked from it; os.register_at_fork hooks are
        # not run.
        cmd = uwsgi_command(work, port)
    else:
        cmd = [sys.executable, "-m", "gunicorn", "--preload", "-w",
               str(WORKERS)] + VARIANTS[kind] + \
              ["-b", "127.0.0.1:%d" % port, "--chdir", work,
               "--log-level", "warning", "--timeout", "120", "app:app"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)

    def up():
        if proc.poll() is not None:
            pytest.fail("the server exited with %s" % proc.returncode)
        try:
            return http_get(port, "/get?app:boot")[0] == 200 and \
                len(children(proc.pid)) == WORKERS
        except OSError:
            return False
    try:
        wait_for(up, "the server to serve")
    except BaseException:
        stop_server(proc)
        raise
    return proc, port


def stop_server(proc):
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)


@pytest.fixture(params=sorted(VARIANTS) + ["uwsgi"])
def prefork(request, servers):
    proc, port = start_server(request.param, servers)
    yield proc, port, request.param
    stop_server(proc)


def test_preloaded_client_in_eight_workers(prefork, servers):
    proc, port, variant = prefork
    workers = set(children(proc.pid))
    assert len(workers) == WORKERS
    # Values written by the test, read through the workers.
    mc = mcring.HashClient(servers, timeout=10)
    keys = ["g%d" % i for i in range(300)]
    mc.set_many({k: ("v-" + k).encode() for k in keys}, noreply=False)
    baseline = curr_connections(servers)

    seen, wrong = set(), []

    def one(i):
        k = keys[i % len(keys)]
        status, body = http_get(port, "/get?" + k)
        pid, value = body.split(b" ", 1)
        return status, int(pid), k, value

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        done = 0
        def enough():
            return workers <= seen and (variant != "max-requests" or
                                        len(seen) > WORKERS)
        while not enough() and done < 20000:
            batch = range(done, done + 800)
            for status, pid, k, value in pool.map(one, batch):
                seen.add(pid)
                if status != 200 or value != ("v-" + k).encode():
                    wrong.append((pid, k, value))
            done += 800
    assert wrong == []
    assert workers <= seen, "workers that never answered: %s" % (
        workers - seen)
    if variant == "max-requests":
        assert len(seen) > WORKERS  # recycled workers answered too

    # Writes through the workers land where mcring reads them.
    for i in range(50):
        status, body = http_get(port, "/set?s%d" % i)
        pid = body.split(b" ")[0]
        assert status == 200 and body.endswith(b"stored")
        assert mc.get("s%d" % i) == b"w" + pid

    # At most one connection per worker and node (the master's, opened at
    # import time, are in the baseline), and every worker has its own.
    def bounded():
        # Recycled workers' connections close as they exit: wait for it.
        now = curr_connections(servers)
        return now if all(now[s] - baseline[s] <= WORKERS
                          for s in servers) else None
    now = wait_for(bounded, "at most one connection per worker and node")
    assert sum(now[s] - baseline[s] for s in servers) >= WORKERS


@pytest.mark.parametrize("kind", ["sync", "uwsgi"])
def test_a_ring_switch_reaches_every_worker(kind, agent, servers):
    """The master follows the agent's ring at import time; after the agent
    publishes a new ring, every worker routes by it."""
    a, b = servers[0], servers[1]
    ring = agent([a])
    proc, port = start_server(kind, servers, {"APP_RING": ring})
    try:
        workers = set(children(proc.pid))
        first = {}

        def all_report(cond):
            # Asks until every worker has answered /gen with cond true.
            with concurrent.futures.ThreadPoolExecutor(16) as pool:
                done = set()
                for _ in range(50):
                    for body in pool.map(lambda i: http_get(port, "/gen")[1],
                                         range(64)):
                        pid, gen, nodes = body.split(b" ")
                        if cond(int(gen), nodes.decode()):
                            done.add(int(pid))
                            first.setdefault(int(pid), int(gen))
                    if workers <= done:
                        return True
            return False
        assert all_report(lambda g, n: n == "%s:%d" % a)
        gen1 = max(first.values())
        agent.write([b])
        assert all_report(lambda g, n: g > gen1 and n == "%s:%d" % b)
        # And writes from the workers now land on b.
        for i in range(40):
            http_get(port, "/set?after%d" % i)
        pm_b = PmClient(b, timeout=5)
        assert len(pm_b.get_many(["after%d" % i for i in range(40)])) == 40
    finally:
        stop_server(proc)
