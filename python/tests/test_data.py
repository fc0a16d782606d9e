"""loom.Dataset / loom.IterableDataset with torch's DataLoader: 2 workers, 2 simulated ranks
(run one after the other in this process with num_replicas=2), two epochs."""
import collections
import hashlib
import os
import random

import pytest
import torch
from torch.utils.data import DataLoader, get_worker_info

import loom
import loom.data

N_FILES = 200
BUDGET = 1 << 20  # above the largest file (300 KB), far below the data set (~30 MB)
RANKS = 2
WORKERS = 2


@pytest.fixture(scope="module")
def dataset(client):
    """200 files of random sizes 1-300 KB in a two-level tree, written through loom.Client.
    Returns (directory, {path: sha256})."""
    rng = random.Random(1234)
    top = "/dataset-%d" % os.getpid()
    digests = {}
    for i in range(N_FILES):
        d = "%s/part%d" % (top, i % 7)
        if i < 7:
            client.makedirs(d, exist_ok=True)
        data = rng.randbytes(rng.randint(1000, 300000))
        path = "%s/f%03d.bin" % (d, i)
        client.write_file(path, data)
        digests[path] = hashlib.sha256(data).hexdigest()
    return top, digests


def _sample_info(data):
    """The transform the workers run: what the sample was, and what read it."""
    info = get_worker_info()
    stats = loom.data.prefetch_stats()
    return {
        "sha": hashlib.sha256(data).hexdigest(),
        "worker": info.id if info is not None else -1,
        "pid": os.getpid(),
        "prefetcher": id(loom.data._current_prefetcher),
        "delivered": stats["delivered"] if stats else 0,
        "peak": stats["peak_held_bytes"] if stats else None,
        "budget": stats["budget_bytes"] if stats else None,
    }


def _expected(paths, digests, rank, epoch, **kw):
    """This rank's samples as torch's own DistributedSampler assigns them."""
    s = torch.utils.data.distributed.DistributedSampler(range(len(paths)), num_replicas=RANKS,
                                                        rank=rank, **kw)
    s.set_epoch(epoch)
    return [digests[paths[i]] for i in s]


def _check_budget(infos):
    for x in infos:
        assert x["peak"] is not None, "the sample was not read through a prefetcher"
        assert 0 < x["peak"] <= BUDGET == x["budget"]


def test_iterable_dataset_every_sample_once_per_epoch(cluster, dataset):
    top, digests = dataset
    orders = {}
    for epoch in (0, 1):
        seen = []
        for rank in range(RANKS):
            ds = loom.IterableDataset(top, transform=_sample_info, mds=cluster.address,
                                      num_replicas=RANKS, rank=rank, shuffle=True, seed=7,
                                      prefetch_bytes=BUDGET)
            assert sorted(ds.paths) == sorted(digests) and len(ds) == N_FILES // RANKS
            ds.set_epoch(epoch)
            loader = DataLoader(ds, batch_size=None, num_workers=WORKERS)
            infos = list(loader)
            assert len(infos) == N_FILES // RANKS
            # Exactly this rank's share, as torch's DistributedSampler deals it...
            mine = [x["sha"] for x in infos]
            assert sorted(mine) == sorted(_expected(ds.paths, digests, rank, epoch, seed=7))
            # ...read by both workers, each through its own prefetcher within the budget.
            assert {x["worker"] for x in infos} == set(range(WORKERS))
            assert len({x["pid"] for x in infos}) == WORKERS
            _check_budget(infos)
            orders[epoch, rank] = mine
            seen += mine
        # Across the ranks: every file exactly once, bytes intact (sha256).
        assert collections.Counter(seen) == collections.Counter(digests.values())
    # set_epoch reshuffles.
    assert orders[0, 0] != orders[1, 0] and orders[0, 1] != orders[1, 1]


def test_map_dataset_reads_ahead_in_each_worker(cluster, dataset):
    top, digests = dataset
    batch = 4
    for epoch in (0, 1):
        seen = []
        for rank in range(RANKS):
            ds = loom.Dataset(top, transform=_sample_info, mds=cluster.address,
                              prefetch_bytes=BUDGET)
            sampler = loom.DistributedSampler(ds, num_replicas=RANKS, rank=rank, seed=3)
            sampler.set_epoch(epoch)
            ds.read_ahead(sampler, batch_size=batch)
            loader = DataLoader(ds, batch_size=batch, sampler=sampler, num_workers=WORKERS,
                                collate_fn=list)
            infos = [x for b in loader for x in b]
            assert [x["sha"] for x in infos] == [digests[ds.paths[i]] for i in sampler]
            # Every sample came through its worker's prefetcher: the plan each worker made
            # from the sampler matched what the DataLoader asked of it.
            per_worker = collections.defaultdict(list)
            for x in infos:
                per_worker[x["worker"]].append(x["delivered"])
            assert set(per_worker) == set(range(WORKERS))
            for delivered in per_worker.values():
                assert delivered == list(range(1, len(delivered) + 1))
            _check_budget(infos)
            seen += [x["sha"] for x in infos]
        assert collections.Counter(seen) == collections.Counter(digests.values())


def test_map_dataset_follows_persistent_workers_into_the_next_epoch(cluster, dataset):
    top, digests = dataset
    ds = loom.Dataset(top, transform=_sample_info, mds=cluster.address, prefetch_bytes=BUDGET)
    sampler = loom.DistributedSampler(ds, num_replicas=RANKS, rank=1, seed=5)
    ds.read_ahead(sampler, batch_size=3, drop_last=True)
    loader = DataLoader(ds, batch_size=3, sampler=sampler, num_workers=WORKERS, drop_last=True,
                        collate_fn=list, persistent_workers=True)
    for epoch in (0, 1):
        sampler.set_epoch(epoch)
        infos = [x for b in loader for x in b]
        order = list(sampler)[:len(sampler) // 3 * 3]
        assert [x["sha"] for x in infos] == [digests[ds.paths[i]] for i in order]
        # The workers kept their epoch-0 copy of the sampler; each noticed epoch 1 start and
        # went on reading ahead (a new prefetcher, whose count starts again at 1).
        counts = collections.defaultdict(list)
        for x in infos:
            counts[x["worker"], x["prefetcher"]].append(x["delivered"])
        for delivered in counts.values():
            assert delivered == list(range(1, len(delivered) + 1))


def test_padding_and_drop_last_match_torch(cluster, dataset):
    top, digests = dataset
    paths = sorted(digests)[:101]  # odd: torch pads (repeats) or drops one
    for drop_last in (False, True):
        seen = []
        for rank in range(RANKS):
            ds = loom.IterableDataset(paths, mds=cluster.address, num_replicas=RANKS,
                                      rank=rank, shuffle=False, drop_last=drop_last)
            got = [hashlib.sha256(b).hexdigest() for b in DataLoader(ds, batch_size=None,
                                                                      num_workers=WORKERS)]
            assert sorted(got) == sorted(_expected(paths, digests, rank, 0, shuffle=False,
                                                   drop_last=drop_last))
            seen += got
        assert len(seen) == (100 if drop_last else 102)


def test_outputs_and_no_read_ahead(cluster, dataset):
    top, digests = dataset
    paths = sorted(digests)[:5]
    plain = loom.Dataset(paths, mds=cluster.address, output="numpy")
    assert [hashlib.sha256(plain[i].tobytes()).hexdigest() for i in range(5)] == \
        [digests[p] for p in paths]
    t = loom.IterableDataset(paths, mds=cluster.address, shuffle=False, output="tensor")
    for p, x in zip(paths, t):
        assert x.dtype == torch.uint8
        assert hashlib.sha256(x.numpy().tobytes()).hexdigest() == digests[p]
    with pytest.raises(ValueError):
        loom.Dataset(paths, mds=cluster.address, output="str")
