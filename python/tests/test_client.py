"""loom.Client and loom.File against a loopback cluster."""
import errno
import hashlib
import multiprocessing
import os

import numpy as np
import pytest
import torch

import loom


def test_namespace(client, tmpdir_loom):
    d = tmpdir_loom
    client.mkdir(d + "/sub")
    client.makedirs(d + "/deep/er/est")
    client.makedirs(d + "/deep/er", exist_ok=True)
    with pytest.raises(FileExistsError):
        client.makedirs(d + "/deep/er")
    with pytest.raises(FileExistsError):
        client.mkdir(d + "/sub")
    client.write_file(d + "/sub/a", b"12345")
    assert sorted(client.listdir(d)) == ["deep", "sub"]
    st = client.stat(d + "/sub/a")
    assert st.is_file() and not st.is_dir() and st.type == "file" and st.size == 5
    assert client.stat(d + "/deep").is_dir()
    entries = {e.name: e for e in client.scandir(d + "/sub")}
    assert list(entries) == ["a"] and entries["a"].stat.size == 5
    client.rename(d + "/sub/a", d + "/sub/b")
    assert client.listdir(d + "/sub") == ["b"]
    assert client.exists(d + "/sub/b") and not client.exists(d + "/sub/a")
    assert [p for p, _ in client.files(d)] == [d + "/sub/b"]
    assert list(client.walk(d)) == [(d, ["deep", "sub"], []), (d + "/deep", ["er"], []),
                                    (d + "/deep/er", ["est"], []),
                                    (d + "/deep/er/est", [], []), (d + "/sub", [], ["b"])]
    client.remove(d + "/sub/b")
    assert client.listdir(d + "/sub") == []


def test_errors_are_oserrors_with_errno(client, tmpdir_loom):
    with pytest.raises(FileNotFoundError) as e:
        client.stat(tmpdir_loom + "/missing")
    assert e.value.errno == errno.ENOENT and "missing" in str(e.value)
    with pytest.raises(FileNotFoundError):
        client.read_file(tmpdir_loom + "/missing")
    client.mkdir(tmpdir_loom + "/d")
    client.write_file(tmpdir_loom + "/d/f", b"x")
    with pytest.raises(OSError) as e:
        client.remove(tmpdir_loom + "/d")
    assert e.value.errno == errno.ENOTEMPTY
    with pytest.raises(NotADirectoryError):
        client.listdir(tmpdir_loom + "/d/f")
    with pytest.raises(FileExistsError):
        client.open(tmpdir_loom + "/d/f", "x")
    with pytest.raises(ValueError):
        client.open(tmpdir_loom + "/d/f", "a")


def test_write_read_roundtrip_sizes(client, tmpdir_loom):
    rng = np.random.default_rng(1)
    for size in (0, 1, 4095, 4096, 1 << 20, (3 << 20) + 17):
        data = rng.integers(0, 256, size, dtype=np.uint8).tobytes()
        p = "%s/f%d" % (tmpdir_loom, size)
        assert client.write_file(p, data) == size
        assert client.stat(p).size == size
        got = client.read_file(p)
        assert hashlib.sha256(got).digest() == hashlib.sha256(data).digest()


def test_file_pread_pwrite_readinto(client, tmpdir_loom):
    p = tmpdir_loom + "/f"
    data = os.urandom(300000)
    with client.open(p, "w") as f:
        assert f.pwrite(0, data[:100000]) == 100000
        # numpy and memoryview sources, out of order
        assert f.pwrite(200000, np.frombuffer(data[200000:], dtype=np.uint8)) == 100000
        assert f.pwrite(100000, memoryview(data)[100000:200000]) == 100000
        f.sync()
        assert f.size == 300000
    assert f.closed
    with client.open(p) as f:
        assert f.size == 300000
        assert f.pread(5, 10) == data[5:15]
        assert f.pread(299990, 100) == data[299990:]  # short at end of file
        assert f.pread(400000, 10) == b""
        assert f.pread(1000) == data[1000:]            # n < 0: to the end
        ba = bytearray(5000)
        assert f.readinto(7, ba) == 5000 and bytes(ba) == data[7:5007]
        arr = np.zeros(1000, dtype=np.float32)         # 4000 bytes, any dtype
        assert f.readinto(0, arr) == 4000 and arr.tobytes() == data[:4000]
        t = torch.zeros(2500, dtype=torch.uint8)       # CPU tensor through .numpy()
        assert f.readinto(299000, t) == 1000
        assert bytes(t[:1000].numpy()) == data[299000:]
        with pytest.raises(BufferError):
            f.readinto(0, b"immutable")
        with pytest.raises(PermissionError):
            f.pwrite(0, b"read-only open")
    with pytest.raises(RuntimeError):
        f.pread(0, 1)


def test_open_modes(client, tmpdir_loom):
    p = tmpdir_loom + "/m"
    with client.open(p, "x") as f:
        f.pwrite(0, b"first")
    with client.open(p, "r+") as f:
        f.pwrite(0, b"F")
        assert f.pread(0, 5) == b"First"
    with client.open(p, "w+") as f:  # truncates
        assert f.size == 0
        f.pwrite(0, b"ab")
    assert client.read_file(p) == b"ab"


def test_stats_count_data_server_bytes(client, tmpdir_loom):
    before = client.stats()
    client.write_file(tmpdir_loom + "/s", b"z" * 100000)
    client.read_file(tmpdir_loom + "/s")
    after = client.stats()
    assert after["ds_write_bytes"] - before["ds_write_bytes"] == 100000
    assert after["ds_read_bytes"] - before["ds_read_bytes"] == 100000
    assert after["mds_calls"] > before["mds_calls"]


def test_no_pnfs_goes_through_the_mds(cluster, tmpdir_loom):
    with loom.Client(mds=cluster.address, pnfs=False) as c:
        c.write_file(tmpdir_loom + "/n", b"q" * 5000)
        assert c.read_file(tmpdir_loom + "/n") == b"q" * 5000
        s = c.stats()
        assert s["ds_read_bytes"] == 0 and s["mds_read_bytes"] == 5000


def _child_uses_parent_client(client, address, path, q):
    try:
        client.stat(path)
        q.put("no error")
    except RuntimeError as e:
        q.put("RuntimeError: " + str(e))
    # A client of its own works.
    with loom.Client(mds=address) as c:
        q.put(c.read_file(path))


def test_fork_needs_a_client_per_process(client, tmpdir_loom):
    p = tmpdir_loom + "/forked"
    client.write_file(p, b"from the parent")
    ctx = multiprocessing.get_context("fork")
    q = ctx.Queue()
    proc = ctx.Process(target=_child_uses_parent_client, args=(client, client.mds_address, p, q))
    proc.start()
    first, second = q.get(timeout=60), q.get(timeout=60)
    proc.join(60)
    assert proc.exitcode == 0
    assert first.startswith("RuntimeError: ") and "fork" in first
    assert second == b"from the parent"
    assert client.read_file(p) == b"from the parent"  # the parent's client is untouched


def test_threads_share_a_client(client, tmpdir_loom):
    """Calls release the GIL: threads overlap their I/O through one client."""
    import concurrent.futures
    files = {"%s/t%d" % (tmpdir_loom, i): os.urandom(50000 + i) for i in range(16)}
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda kv: client.write_file(*kv), files.items()))
        got = dict(zip(files, pool.map(client.read_file, files)))
    assert got == files
