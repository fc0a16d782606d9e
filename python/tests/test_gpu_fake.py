"""The GPU path against the stand-in CUDA runtime and cuFile of tests/fake_cuda.c, so the
staging ring, its overlap and its end-of-file handling are checked on machines without a GPU.
The stand-in defers every async copy until the host synchronizes, so a staging buffer reused
before its copy finished shows up as corrupt data. Runs only with LOOM_FAKE_CUDA (and
LOOM_CUDART / LOOM_CUFILE) pointing at the stand-in: the ctest entries python_gpu_fake*."""
import ctypes
import errno
import os

import pytest

import loom

FAKE = os.environ.get("LOOM_FAKE_CUDA")
pytestmark = pytest.mark.skipif(
    not FAKE or os.environ.get("LOOM_CUDART") != FAKE,
    reason="needs LOOM_FAKE_CUDA and LOOM_CUDART naming tests/fake_cuda.c's library")
CUFILE = FAKE is not None and os.environ.get("LOOM_CUFILE") == FAKE


@pytest.fixture(scope="module")
def fake():
    lib = ctypes.CDLL(FAKE)
    for name in ("fake_cuda_copies", "fake_cuda_copy_bytes", "fake_cuda_max_queued",
                 "fake_cufile_reads"):
        getattr(lib, name).restype = ctypes.c_long
    return lib


def dev_alloc(fake, n):
    p = ctypes.c_void_p()
    assert fake.cudaMalloc(ctypes.byref(p), ctypes.c_size_t(n)) == 0
    return p.value


def dev_bytes(ptr, n):
    return ctypes.string_at(ptr, n)


def test_the_stand_in_is_what_loaded():
    ok, why = loom.gpu_available()
    assert ok and FAKE in why


@pytest.mark.parametrize("staging,nbufs", [(4096, 1), (4096, 2), (65536, 3), (1 << 20, 4)])
def test_ring_delivers_every_byte_in_place(cluster, fake, tmpdir_loom, staging, nbufs):
    data = os.urandom((3 << 20) + 4321)
    p = "%s/f%d_%d" % (tmpdir_loom, staging, nbufs)
    with loom.Client(mds=cluster.address, gpu_staging_bytes=staging, gpu_buffers=nbufs) as c:
        c.write_file(p, data)
        dev = dev_alloc(fake, len(data) + 4096)
        copies = fake.fake_cuda_copies()
        fake.fake_cuda_reset_max_queued()
        assert c.read_into_device_ptr(p, dev, len(data)) == len(data)
        assert dev_bytes(dev, len(data)) == data
        # One copy per staging buffer's worth; with more than one buffer, copies were queued
        # behind each other (the ring overlapped them with the reads).
        assert fake.fake_cuda_copies() - copies == -(-len(data) // staging)
        if nbufs > 1:
            assert fake.fake_cuda_max_queued() >= 2 * 2  # >= 2 copies + their events
        else:
            assert fake.fake_cuda_max_queued() == 2  # one copy and its event at a time
        # At an offset, past the end of the file: the bytes that exist, then 0 at the end.
        ctypes.memset(dev, 0, len(data))
        with c.open(p) as f:
            n = c.read_into_device_ptr(f, dev, len(data), offset=len(data) - staging - 7)
            assert n == staging + 7 and dev_bytes(dev, n) == data[-n:]
            assert c.read_into_device_ptr(f, dev, 100, offset=len(data)) == 0
        s = c.gpu_stats()
        assert s["last"]["bytes"] == 0
        assert s["total"]["bytes"] == len(data) + staging + 7
        assert s["total"]["bytes_per_second"] > 0


def test_pointer_and_device_checks(cluster, fake, tmpdir_loom):
    p = tmpdir_loom + "/c"
    with loom.Client(mds=cluster.address) as c:
        c.write_file(p, b"q" * 100)
        host = ctypes.create_string_buffer(100)
        with pytest.raises(OSError) as e:
            c.read_into_device_ptr(p, ctypes.addressof(host), 100)
        assert e.value.errno == errno.EINVAL and "not a device pointer" in str(e.value)
        with pytest.raises(OSError) as e:
            c.read_into_device_ptr(p, dev_alloc(fake, 100), 100, device=3)
        assert e.value.errno == errno.EINVAL and "no CUDA device 3" in str(e.value)
        with pytest.raises(FileNotFoundError):
            c.read_into_device_ptr(p + "-missing", dev_alloc(fake, 100), 100)


def test_local_file_to_device(fake, tmp_path):
    data = os.urandom((5 << 20) + 99)
    f = tmp_path / "local.bin"
    f.write_bytes(data)
    dev = dev_alloc(fake, len(data))
    reads = fake.fake_cufile_reads()
    n, stats = loom._loom._copy_local_file_to_device(str(f), 99, len(data), dev, 0)
    assert n == len(data) - 99 and dev_bytes(dev, n) == data[99:]
    assert stats["bytes"] == n
    # Through cuFile when the stand-in serves it, else the pinned ring.
    assert stats["gpudirect"] == CUFILE
    assert (fake.fake_cufile_reads() > reads) == CUFILE
    assert loom.gpudirect_available()[0] == CUFILE
    with pytest.raises(FileNotFoundError):
        loom._loom._copy_local_file_to_device(str(f) + "-missing", 0, 10, dev, 0)


def test_ceiling(fake):
    assert loom.pinned_h2d_ceiling_gbps(1 << 20) > 0
