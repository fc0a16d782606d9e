"""Client.prefetch: the C++ read-ahead behind the datasets."""
import os
import time

import numpy as np
import pytest


@pytest.fixture(scope="module")
def files(client):
    """40 files of 100 000 bytes, and a few odd sizes."""
    d = "/prefetch-%d" % os.getpid()
    client.makedirs(d, exist_ok=True)
    out = {}
    for i in range(40):
        out["%s/u%02d" % (d, i)] = os.urandom(100000)
    for n in (0, 1, 5 << 20):
        out["%s/s%d" % (d, n)] = os.urandom(n)
    for p, data in out.items():
        client.write_file(p, data)
    return out


def _uniform(files):
    return sorted(p for p in files if "/u" in p)


def _wait_for(pf, cond, timeout=60):
    """Polls the prefetcher's counters until cond(stats) holds: the state it must settle in."""
    deadline = time.monotonic() + timeout
    while True:
        s = pf.stats()
        if cond(s) or time.monotonic() > deadline:
            return s
        time.sleep(0.005)


def test_items_in_order_with_contents(client, files):
    paths = _uniform(files)[::-1] + _uniform(files)  # each file twice
    items = [(p, 0, -1) for p in paths]
    with client.prefetch(items, budget_bytes=1 << 20) as pf:
        got = [bytes(b) for b in pf]
        s = pf.stats()
    assert got == [files[p] for p in paths]
    assert s["delivered"] == len(paths) and s["bytes_read"] == 100000 * len(paths)
    assert s["peak_held_bytes"] <= 1 << 20
    assert s["held_bytes"] == 0


def test_never_holds_more_than_the_budget(client, files):
    """Nothing is consumed: the prefetcher fills the budget with the first items (3 of 100 000
    bytes fit in 350 000) and stops there; consuming one makes room for exactly one more."""
    paths = _uniform(files)
    budget = 350000
    pf = client.prefetch([(p, 0, -1) for p in paths], budget_bytes=budget)
    s = _wait_for(pf, lambda s: s["held_bytes"] == 300000 and s["reads_in_flight"] == 0)
    assert s["held_bytes"] == 300000 and s["reads_in_flight"] == 0
    assert s["peak_held_bytes"] == 300000
    first = pf.next()
    assert bytes(first) == files[paths[0]]
    s = _wait_for(pf, lambda s: s["held_bytes"] == 300000 and s["reads_in_flight"] == 0)
    assert s["held_bytes"] == 300000 and s["peak_held_bytes"] == 300000 and s["delivered"] == 1
    rest = [bytes(b) for b in pf]
    assert rest == [files[p] for p in paths[1:]]
    assert pf.stats()["peak_held_bytes"] <= budget
    assert pf.next() is None
    pf.close()


def test_ranges_short_reads_and_big_items(client, files):
    d = os.path.dirname(_uniform(files)[0])
    big = files[d + "/s%d" % (5 << 20)]
    u0 = _uniform(files)[0]
    items = [
        (u0, 10, 20),               # a range
        (u0, 99990, 100),           # runs past the end: short
        (u0, 200000, 10),           # starts past the end: empty
        (d + "/s0", 0, -1),         # an empty file
        (d + "/s1", 0, -1),
        (d + "/s%d" % (5 << 20), 0, -1),           # larger than the budget: read alone
        (d + "/s%d" % (5 << 20), 1 << 20, 3 << 20),  # pieces of 1 MiB, in parallel
    ]
    pf = client.prefetch(items, budget_bytes=2 << 20, piece_bytes=1 << 20)
    got = [bytes(b) for b in pf]
    assert got == [files[u0][10:30], files[u0][99990:], b"", b"", files[d + "/s1"], big,
                   big[1 << 20:4 << 20]]
    # The 5 MiB item went through alone: nothing else was held beside it.
    assert pf.stats()["peak_held_bytes"] == 5 << 20
    pf.close()


def test_a_failed_item_raises_and_the_rest_follow(client, files):
    paths = _uniform(files)[:4]
    items = [(paths[0], 0, -1), (paths[1] + "-missing", 0, -1), (paths[2], 0, -1)]
    pf = client.prefetch(items, budget_bytes=1 << 20)
    assert bytes(pf.next()) == files[paths[0]]
    with pytest.raises(FileNotFoundError):
        pf.next()
    assert bytes(pf.next()) == files[paths[2]]
    assert pf.next() is None
    pf.close()


def test_one_open_per_file_in_the_window(client, files):
    p = _uniform(files)[0]
    items = [(p, k * 1000, 1000) for k in range(100)]
    pf = client.prefetch(items, budget_bytes=1 << 20, open_threads=1)
    got = b"".join(bytes(b) for b in pf)
    assert got == files[p]
    assert pf.stats()["opens"] < 100
    pf.close()


def test_buffers_are_zero_copy_views(client, files):
    p = _uniform(files)[0]
    pf = client.prefetch([(p, 0, -1)])
    b = pf.next()
    arr = np.frombuffer(b, dtype=np.uint8)
    mv = memoryview(b)
    assert len(b) == 100000 and arr.nbytes == 100000 and mv.nbytes == 100000
    assert arr.tobytes() == files[p]
    del b  # the views keep the bytes alive
    assert bytes(mv) == files[p]
    pf.close()


def test_close_with_reads_in_flight_and_empty_lists(client, files):
    paths = _uniform(files)
    pf = client.prefetch([(p, 0, -1) for p in paths * 5], budget_bytes=64 << 20)
    pf.next()
    pf.close()
    pf.close()
    with pytest.raises(OSError):
        pf.next()
    empty = client.prefetch([])
    assert empty.next() is None
    assert list(empty) == []
    empty.close()
