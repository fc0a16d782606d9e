"""PyTorch datasets over Loom files, reading ahead through libloom's prefetcher.

A sample is one file's bytes (or a numpy array / tensor / memoryview of them, `output=`),
passed through `transform` when one is given.

- IterableDataset: shards the files by rank (torch's DistributedSampler: num_replicas, rank,
  shuffle, seed, set_epoch, drop_last or padding) and then by DataLoader worker, and reads
  each worker's share ahead in exactly the order it will yield it.
- Dataset (map-style): reads ahead when it knows the order it will be asked in: give it the
  DataLoader's sampler, batch_size and drop_last (Dataset(..., sampler=s, batch_size=b)).
  A DataLoader hands batch k to worker k % num_workers, so each worker recomputes the
  sampler's order (a pure function of seed and epoch for DistributedSampler) and knows its
  own indices. An index asked for off that plan is read directly.

Memory: each process that reads (each worker) holds at most `prefetch_bytes` of read-ahead
(one item larger than that is read alone). Clients: each process makes its own loom.Client
on first use, with the keyword arguments given as `client=` (a dict) or `mds=`.
Epochs: call set_epoch on the sampler / IterableDataset before iterating the DataLoader, as
with torch. Workers that outlive an epoch (persistent_workers=True) keep the epoch they were
started with; the map-style Dataset notices the next epoch's first index and follows it.
"""
import copy
import os

import torch
from torch.utils.data import get_worker_info

from . import Client

DEFAULT_PREFETCH_BYTES = 64 << 20
DEFAULT_MAX_AHEAD = 256
_OUTPUTS = ("bytes", "numpy", "tensor", "memoryview")

_current_prefetcher = None  # the prefetcher this process reads through (prefetch_stats)


def prefetch_stats():
    """Counters of the prefetcher this process (a DataLoader worker, say) reads through now,
    or None: held_bytes, peak_held_bytes, budget_bytes, reads_in_flight, ..."""
    p = _current_prefetcher
    return p.stats() if p is not None else None


def _set_current(p):
    global _current_prefetcher
    _current_prefetcher = p


class _ClientPerProcess:
    """A loom.Client made on first use in the process that uses it: a Client cannot cross
    fork(), and a spawned worker gets only pickled state."""

    def __init__(self, kwargs):
        self.kwargs = dict(kwargs)
        self._pid = None
        self._client = None

    def get(self):
        if self._pid != os.getpid():
            self._client = Client(**self.kwargs)
            self._pid = os.getpid()
        return self._client

    def __getstate__(self):
        return {"kwargs": self.kwargs}

    def __setstate__(self, state):
        self.__init__(state["kwargs"])


def _client_kwargs(client, mds):
    kw = dict(client or {})
    if mds is not None:
        kw["mds"] = mds
    return kw


def _resolve_files(files, kwargs):
    """A directory path (listed recursively, sorted) or a sequence of file paths."""
    if isinstance(files, str):
        with Client(**kwargs) as c:
            return [p for p, _ in c.files(files)]
    return [str(p) for p in files]


def _convert(buf, output):
    """A prefetcher Buffer (or bytes) as the sample type asked for."""
    if output == "bytes":
        return bytes(buf)
    if output == "numpy":
        import numpy as np
        return np.frombuffer(buf, dtype=np.uint8)
    if output == "tensor":
        if len(buf) == 0:
            return torch.empty(0, dtype=torch.uint8)
        return torch.frombuffer(buf if not isinstance(buf, bytes) else bytearray(buf),
                                dtype=torch.uint8)
    return memoryview(buf)


def _check_output(output):
    if output not in _OUTPUTS:
        raise ValueError("output must be one of %s" % (_OUTPUTS,))


def _worker():
    info = get_worker_info()
    return (info.id, info.num_workers) if info is not None else (0, 1)


def _sampler_order(sampler, epoch=None):
    """The sampler's indices for `epoch` (default: its current one), without changing it."""
    if epoch is None:
        return list(iter(sampler))
    s = copy.copy(sampler)
    s.set_epoch(epoch)
    return list(iter(s))


class DistributedSampler(torch.utils.data.distributed.DistributedSampler):
    """torch's DistributedSampler (the same indices for the same dataset size, num_replicas,
    rank, shuffle, seed, epoch and drop_last) that also works without a process group:
    num_replicas and rank default to the group's when torch.distributed is initialized, else
    to 1 and 0. Its order is a pure function of (seed, epoch), which is what lets loom.Dataset
    read ahead in DataLoader workers."""

    def __init__(self, dataset, num_replicas=None, rank=None, shuffle=True, seed=0,
                 drop_last=False):
        import torch.distributed as dist
        grouped = dist.is_available() and dist.is_initialized()
        if num_replicas is None:
            num_replicas = dist.get_world_size() if grouped else 1
        if rank is None:
            rank = dist.get_rank() if grouped else 0
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle,
                         seed=seed, drop_last=drop_last)

    def indices(self, epoch=None):
        """This rank's indices for `epoch` (default: the current one), in order."""
        return _sampler_order(self, epoch)


class _ReadAhead:
    """One process's read-ahead for a map-style Dataset: the indices it expects, in order,
    and a prefetcher over them."""

    def __init__(self, ds, indices, epoch):
        self.ds = ds
        self.epoch = epoch
        self.pf = None
        self._start(indices)

    def _start(self, indices):
        if self.pf is not None:
            self.pf.close()
        self.indices = indices
        self.pos = 0
        items = [(self.ds.paths[i], 0, -1) for i in indices]
        self.pf = self.ds._clients.get().prefetch(items, budget_bytes=self.ds.prefetch_bytes,
                                                   max_ahead=self.ds.max_ahead)
        _set_current(self.pf)

    def take(self, i):
        """The sample for index i if the plan has it next (or a little further on); None when
        i is off the plan."""
        if self.pos < len(self.indices) and self.indices[self.pos] != i:
            # Skipped indices (a consumer that dropped some): catch up within the window.
            window = self.indices[self.pos:self.pos + self.ds.max_ahead]
            if i in window:
                for _ in range(window.index(i)):
                    self.pf.next()
                    self.pos += 1
        if self.pos >= len(self.indices) or self.indices[self.pos] != i:
            # A worker that lives on into the next epoch (persistent_workers) still has the
            # old epoch in its copy of the sampler: follow the next epoch if i starts it.
            if self.epoch is None or not hasattr(self.ds.sampler, "set_epoch"):
                return None
            upcoming = self.ds._my_indices(self.epoch + 1)
            if not upcoming or upcoming[0] != i:
                return None
            self.epoch += 1
            self._start(upcoming)
        self.pos += 1
        return _convert(self.pf.next(), self.ds.output)

    def close(self):
        if self.pf is not None:
            self.pf.close()
            self.pf = None


def _init_files(ds, files, transform, client, mds, prefetch_bytes, max_ahead, output):
    """What Dataset and IterableDataset share: the file list, the output form, the read-ahead
    budget and one Client per process."""
    _check_output(output)
    kw = _client_kwargs(client, mds)
    ds.paths = _resolve_files(files, kw)
    ds.transform = transform
    ds.output = output
    ds.prefetch_bytes = prefetch_bytes
    ds.max_ahead = max_ahead
    ds._clients = _ClientPerProcess(kw)


class Dataset(torch.utils.data.Dataset):
    """Map-style dataset: sample i is the bytes of file i.

    files: a directory (every file under it, sorted) or a list of paths. transform: applied to
    each sample. client / mds: how each process connects (see loom.Client). sampler,
    batch_size, drop_last: the DataLoader's, to read ahead along its order (see the module
    text); without a sampler every sample is read when asked for. output: "bytes", "numpy",
    "tensor" (uint8) or "memoryview".
    """

    def __init__(self, files, transform=None, *, client=None, mds=None, sampler=None,
                 batch_size=1, drop_last=False, prefetch_bytes=DEFAULT_PREFETCH_BYTES,
                 max_ahead=DEFAULT_MAX_AHEAD, output="bytes"):
        _init_files(self, files, transform, client, mds, prefetch_bytes, max_ahead, output)
        self.sampler = None
        self.batch_size = 1
        self.drop_last = False
        self._ra = None
        self._ra_pid = None
        if sampler is not None:
            self.read_ahead(sampler, batch_size, drop_last)

    def read_ahead(self, sampler, batch_size=1, drop_last=False):
        """Read ahead along `sampler`, which the DataLoader must use with the same batch_size
        (None counts as 1) and drop_last. The sampler's order must be reproducible in a copy
        of it (DistributedSampler's is; RandomSampler without a generator's is not)."""
        self.sampler = sampler
        self.batch_size = batch_size or 1
        self.drop_last = drop_last
        self._ra = None
        return self

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        data = None
        if self.sampler is not None:
            data = self._read_ahead().take(i)
        if data is None:
            data = _convert(self._clients.get().read_file(self.paths[i]), self.output)
        return self.transform(data) if self.transform is not None else data

    def _my_indices(self, epoch=None):
        """The indices this process will be asked for, in order: the batches of the sampler's
        order that the DataLoader gives this worker (batch k to worker k % num_workers)."""
        order = _sampler_order(self.sampler, epoch)
        worker, workers = _worker()
        bs = self.batch_size
        batches = [order[k:k + bs] for k in range(0, len(order), bs)]
        if self.drop_last and batches and len(batches[-1]) < bs:
            batches.pop()
        return [i for k, b in enumerate(batches) if k % workers == worker for i in b]

    def _read_ahead(self):
        if self._ra is None or self._ra_pid != os.getpid():
            self._ra = _ReadAhead(self, self._my_indices(), getattr(self.sampler, "epoch", None))
            self._ra_pid = os.getpid()
        return self._ra

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_ra"] = None
        state["_ra_pid"] = None
        return state


class IterableDataset(torch.utils.data.IterableDataset):
    """Iterable dataset: this rank's share of the files (DistributedSampler semantics), split
    again across DataLoader workers, each worker reading its share ahead in order.

    files, transform, client, mds, output: as for loom.Dataset. num_replicas, rank, shuffle,
    seed, drop_last: as torch's DistributedSampler (num_replicas/rank default to the process
    group's, else 1 and 0). Call set_epoch(e) before each epoch when shuffling.
    len() is this rank's sample count.
    """

    def __init__(self, files, transform=None, *, client=None, mds=None, num_replicas=None,
                 rank=None, shuffle=True, seed=0, drop_last=False,
                 prefetch_bytes=DEFAULT_PREFETCH_BYTES, max_ahead=DEFAULT_MAX_AHEAD,
                 output="bytes"):
        _init_files(self, files, transform, client, mds, prefetch_bytes, max_ahead, output)
        self.sampler = DistributedSampler(self.paths, num_replicas=num_replicas, rank=rank,
                                          shuffle=shuffle, seed=seed, drop_last=drop_last)

    def set_epoch(self, epoch):
        self.sampler.set_epoch(epoch)

    def __len__(self):
        return self.sampler.num_samples

    def indices(self):
        """The indices this process yields this epoch, in order (its rank's share, then its
        worker's share of that)."""
        worker, workers = _worker()
        return self.sampler.indices()[worker::workers]

    def __iter__(self):
        mine = self.indices()
        pf = self._clients.get().prefetch([(self.paths[i], 0, -1) for i in mine],
                                          budget_bytes=self.prefetch_bytes,
                                          max_ahead=self.max_ahead)
        _set_current(pf)
        try:
            for _ in mine:
                data = _convert(pf.next(), self.output)
                yield self.transform(data) if self.transform is not None else data
        finally:
            pf.close()
