"""loom: the Python client of the Loom file system (docs/python.md).

    import loom
    c = loom.Client(mds="127.0.0.1:20490")
    c.write_file("/a/x", b"bytes")
    data = c.read_file("/a/x")
    with c.open("/a/x") as f:
        head = f.pread(0, 4096)

Bytes go straight between this process and the data servers (pNFS Flexible Files), through
libloom; the GIL is released while a call waits. For training data see loom.Dataset,
loom.IterableDataset and Client.prefetch; for GPU memory Client.read_into_cuda.
"""
from ._loom import (  # noqa: F401  (the public names of the package)
    Buffer,
    DirEntry,
    File,
    Prefetcher,
    Stat,
    __version__,
    gpu_available,
    gpudirect_available,
    pinned_h2d_ceiling_gbps,
)
from ._loom import Client as _NativeClient
from ._loom import _copy_local_file_to_device


def _cuda_target(tensor):
    """(pointer, bytes, device) of a contiguous CUDA tensor."""
    if not getattr(tensor, "is_cuda", False):
        raise TypeError("expected a CUDA torch.Tensor")
    if not tensor.is_contiguous():
        raise ValueError("the tensor must be contiguous")
    import torch
    device = tensor.device.index if tensor.device.index is not None else torch.cuda.current_device()
    # Work queued on the tensor (a fill, say) must finish before our copies, which run on
    # libloom's own stream.
    torch.cuda.current_stream(device).synchronize()
    return tensor.data_ptr(), tensor.numel() * tensor.element_size(), device


class Client(_NativeClient):
    """A connection to a Loom cluster.

    mds: "host[:port]" of loom-mds (default $LOOM_MDS, else 127.0.0.1:20490); uid/gid: the
    AUTH_SYS identity (default this process's); connections_per_ds: TCP connections to each
    data server; pnfs=False sends every byte through the metadata server. Further keywords:
    io_size, client_name, gpu_staging_bytes and gpu_buffers (the GPU staging ring).

    Thread-safe. Not usable across fork(): make one per process (the datasets do).
    """

    def __init__(self, mds=None, uid=None, gid=None, connections_per_ds=2, pnfs=True, **kwargs):
        super().__init__(mds=mds, uid=uid, gid=gid, connections_per_ds=connections_per_ds,
                         pnfs=pnfs, **kwargs)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def walk(self, top="/"):
        """Like os.walk (top-down, names sorted): yields (dirpath, dirnames, filenames)."""
        dirs, files = [], []
        for e in sorted(self.scandir(top), key=lambda e: e.name):
            (dirs if e.is_dir() else files).append(e.name)
        yield top, dirs, files
        for d in dirs:
            yield from self.walk(top.rstrip("/") + "/" + d)

    def files(self, top="/"):
        """Every regular file under `top`, recursively: a sorted list of (path, size)."""
        out = []
        base = top.rstrip("/")
        for e in self.scandir(top):
            p = base + "/" + e.name
            if e.is_dir():
                out += self.files(p)
            elif e.is_file():
                out.append((p, e.stat.size))
        return sorted(out)

    def read_into_cuda(self, src, tensor, offset=0):
        """Reads tensor.nbytes bytes of `src` (a path or an open File) at `offset` into a
        contiguous CUDA tensor, through pinned staging buffers with the network read of one
        chunk overlapping the copy of the one before. Returns the bytes read (fewer only at end
        of file). Raises OSError (ENODEV-like message "no CUDA ...") without a GPU."""
        ptr, nbytes, device = _cuda_target(tensor)
        return self._read_to_device(src, offset, nbytes, ptr, device)

    def read_into_device_ptr(self, src, ptr, nbytes, offset=0, device=0):
        """read_into_cuda for raw device memory (CuPy, a cudaMalloc'd pointer as an int)."""
        return self._read_to_device(src, offset, nbytes, int(ptr), device)


def copy_local_file_to_cuda(path, tensor, offset=0):
    """Reads a local file into a CUDA tensor: GPUDirect Storage (cuFile) when available,
    else pread into pinned memory and async copies. Returns (bytes, stats dict)."""
    ptr, nbytes, device = _cuda_target(tensor)
    return _copy_local_file_to_device(path, offset, nbytes, ptr, device)


_DATA_NAMES = ("Dataset", "IterableDataset", "DistributedSampler", "prefetch_stats")


def __getattr__(name):
    # The datasets need torch; `import loom` alone does not.
    if name in _DATA_NAMES:
        from . import data
        return getattr(data, name)
    raise AttributeError("module 'loom' has no attribute %r" % name)
