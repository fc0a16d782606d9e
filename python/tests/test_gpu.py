"""The GPU path on a real CUDA device (skipped without one), and its errors without one."""
import errno
import os

import pytest
import torch

import loom

AVAILABLE, WHY = loom.gpu_available()
CUDA = AVAILABLE and torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(not CUDA, reason="no CUDA device: " + WHY)


def test_without_cuda_every_gpu_call_says_why(client, tmpdir_loom, tmp_path):
    if AVAILABLE:
        pytest.skip("a CUDA runtime and device are present: " + WHY)
    assert WHY.startswith(("no CUDA runtime", "no CUDA device")), WHY
    p = tmpdir_loom + "/g"
    client.write_file(p, b"x" * 10)
    local = tmp_path / "local"
    local.write_bytes(b"y" * 10)
    calls = [
        lambda: loom.pinned_h2d_ceiling_gbps(1 << 20),
        lambda: client.read_into_device_ptr(p, 0x10000, 10),
        lambda: loom._loom._copy_local_file_to_device(str(local), 0, 10, 0x10000, 0),
    ]
    for call in calls:
        with pytest.raises(OSError) as e:
            call()
        assert "no CUDA" in str(e.value)
    ok, why = loom.gpudirect_available()
    assert not ok and "CUDA" in why


@pytest.fixture
def gpu_client(cluster):
    # A ring smaller than the files: several rounds of staging-buffer reuse per read.
    with loom.Client(mds=cluster.address, gpu_staging_bytes=1 << 20, gpu_buffers=3) as c:
        yield c


@needs_cuda
def test_read_into_cuda(gpu_client, tmpdir_loom):
    data = os.urandom((7 << 20) + 12345)
    p = tmpdir_loom + "/gpu"
    gpu_client.write_file(p, data)
    t = torch.empty(len(data), dtype=torch.uint8, device="cuda")
    assert gpu_client.read_into_cuda(p, t) == len(data)
    assert t.cpu().numpy().tobytes() == data
    # From an open File, at an offset, running past the end of the file.
    with gpu_client.open(p) as f:
        t2 = torch.zeros(1 << 20, dtype=torch.uint8, device="cuda")
        n = gpu_client.read_into_cuda(f, t2, offset=len(data) - 1000)
        assert n == 1000 and t2[:1000].cpu().numpy().tobytes() == data[-1000:]
    s = gpu_client.gpu_stats()
    assert s["last"]["bytes"] == 1000 and s["total"]["bytes"] == len(data) + 1000
    assert s["total"]["bytes_per_second"] > 0


@needs_cuda
def test_read_into_cuda_rejects_host_memory(gpu_client, tmpdir_loom):
    p = tmpdir_loom + "/h"
    gpu_client.write_file(p, b"z" * 100)
    host = torch.empty(100, dtype=torch.uint8).pin_memory()
    with pytest.raises(OSError) as e:
        gpu_client.read_into_device_ptr(p, host.data_ptr(), 100)
    assert e.value.errno == errno.EINVAL
    with pytest.raises(TypeError):
        gpu_client.read_into_cuda(p, host)


@needs_cuda
def test_local_file_and_ceiling(tmp_path):
    data = os.urandom(9 << 20)
    f = tmp_path / "local.bin"
    f.write_bytes(data)
    t = torch.empty(len(data) - 100, dtype=torch.uint8, device="cuda")
    n, stats = loom.copy_local_file_to_cuda(str(f), t, offset=100)
    assert n == len(data) - 100 and stats["bytes"] == n
    assert t.cpu().numpy().tobytes() == data[100:]
    assert loom.pinned_h2d_ceiling_gbps(64 << 20) > 0
