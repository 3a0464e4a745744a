"""Threads: one client shared by many threads, and the GIL released while a
call waits on the network."""
import socket
import threading

import mcring


def test_one_client_shared_by_eight_threads(servers):
    client = mcring.HashClient(servers, timeout=10, connect_timeout=10)
    errors, wrong = [], []

    def work(t):
        try:
            for i in range(1500):
                k = "t%d-%d" % (t, i)
                v = ("%d:%d" % (t, i)).encode() * (1 + i % 7)
                client.set(k, v, noreply=(i % 2 == 0))
                if client.get(k) != v:
                    wrong.append(k)
                if i % 100 == 99:
                    ks = ["t%d-%d" % (t, j) for j in range(i - 99, i + 1)]
                    got = client.get_many(ks)
                    if len(got) != 100:
                        wrong.append(("many", i, len(got)))
        except Exception as e:  # recorded, asserted below
            errors.append(repr(e))

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert wrong == []


def test_the_gil_is_released_while_waiting_for_a_reply(server):
    """Thread A waits for a reply from a server that answers only when the
    main thread says so; meanwhile the main thread runs Python and does 200
    gets of its own. Were the GIL held during A's wait, the main thread could
    not run until A's call ended, and A would no longer be alive below."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(1)
    port = silent.getsockname()[1]
    slow = mcring.Client(("127.0.0.1", port), timeout=60, connect_timeout=60)
    result = {}

    def a():
        result["a"] = slow.get(b"k", "missing")

    ta = threading.Thread(target=a)
    ta.start()
    conn, _ = silent.accept()
    request = b""
    while not request.endswith(b"\r\n"):
        request += conn.recv(100)
    assert request == b"get k\r\n"
    # A is inside its call, waiting for the reply.
    fast = mcring.Client(server, timeout=10)
    fast.set(b"f", b"1", noreply=False)
    assert all(fast.get(b"f") == b"1" for _ in range(200))
    assert ta.is_alive()
    conn.sendall(b"END\r\n")
    ta.join()
    assert result["a"] == "missing"
    conn.close()
    silent.close()


def test_a_thread_waiting_for_the_clients_lock_releases_the_gil(server):
    """A holds the client (waiting for a reply the main thread controls);
    B calls the same client and must wait for its lock. The main thread
    still runs while both wait, and B's request is sent only after A's
    call is over: the lock serializes the two on one connection."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(1)
    port = silent.getsockname()[1]
    shared = mcring.Client(("127.0.0.1", port), timeout=60,
                           connect_timeout=60)
    result = {}
    b_started = threading.Event()

    def a():
        result["a"] = shared.get(b"a", "missing-a")

    def b():
        b_started.set()
        result["b"] = shared.get(b"b", "missing-b")

    ta = threading.Thread(target=a)
    ta.start()
    conn, _ = silent.accept()

    def read_request():
        data = b""
        while not data.endswith(b"\r\n"):
            chunk = conn.recv(100)
            assert chunk
            data += chunk
        return data
    assert read_request() == b"get a\r\n"
    tb = threading.Thread(target=b)
    tb.start()
    b_started.wait()
    fast = mcring.Client(server, timeout=10)
    fast.set(b"f", b"1", noreply=False)
    assert all(fast.get(b"f") == b"1" for _ in range(200))
    assert ta.is_alive() and tb.is_alive()
    conn.settimeout(0)  # nothing from B yet: A still holds the client
    try:
        early = conn.recv(100)
    except BlockingIOError:
        early = None
    assert early is None
    conn.settimeout(None)
    conn.sendall(b"VALUE a 0 2\r\nva\r\nEND\r\n")
    ta.join()
    assert read_request() == b"get b\r\n"
    conn.sendall(b"END\r\n")
    tb.join()
    assert result == {"a": b"va", "b": "missing-b"}
    conn.close()
    silent.close()
