#!/usr/bin/env python3
"""Writes a seed corpus for compound_fuzz (tests/fuzz/compound_fuzz.cc) into the directory
given as the only argument. An input is not wire bytes but the fuzzer's own small language:
a first byte picks the server (even: with a data server, odd: without), then each step
starts with an action byte (byte % 16: 0 EXCHANGE_ID, 1 CREATE_SESSION,
2 DESTROY_SESSION, 3 retransmission, 4 TEST_STATEID audit (0xa5 after it: restart), else a
SEQUENCE compound) followed by its arguments; a compound's operations are one selector byte
each (byte % 40, see World::AddOp) and their argument bytes. These seeds are the everyday
flows (open/write/read/close, locks, layouts, namespace changes, session misuse) that the
fuzzer then mutates. Keep this file in step with AddOp when its encoding changes."""
import os
import sys

CUR = 242      # Sid(): the current stateid (byte >= 240, byte % 5 == 2)
ANON = 240     # the anonymous stateid
OK_M = 0       # Sid(): second byte, no corruption


def compound(client, ops, slot=0, cachethis=True, minor=2, seq_wrong=0):
    """A SEQUENCE compound on client's first session (made if missing)."""
    h = (slot & 3) | (0 if cachethis else 4) | (8 if minor == 1 else 0)
    nops = len(ops)
    assert 1 <= nops <= 6
    out = [5, 224 + client, h, seq_wrong, nops - 1]
    for o in ops:
        out += o
    return out + [0]


# Operations (see AddOp). Names: 0 a, 1 b, 2 c, 3 d, 4 dir, 5 sub, 6 x, 7 f.txt
def putroot(): return [0]
def putfh(i): return [1, i]
def lookup(n): return [3, n]
def getfh(): return [4]
def getattr_(): return [5]
def open_create(name, owner=0, access=2, excl=False, guarded=False, deny=0):
    how = 1 | (8 if guarded else 0) | (deny << 4) | (0x40 if excl else 0)
    return [8, owner, name, how, access]          # PUTROOTFH OPEN GETFH
def open_nocreate(name, owner=0, access=2):
    return [8, owner, name, 0, access]
def close(sid=CUR): return [12, sid] + ([] if sid >= 240 else [OK_M])
def downgrade(sid=CUR, access=0): return [14, sid] + ([] if sid >= 240 else [OK_M]) + [access, 0]
def lock_new(sid=CUR, write=1, owner=0): return [15, write, 1, 0, 1, sid] + ([] if sid >= 240 else [OK_M]) + [owner]
def locku(sid=CUR): return [17, sid] + ([] if sid >= 240 else [OK_M]) + [1, 0]
def lockt(owner=1): return [18, owner, 1, 1]
def read(sid=CUR): return [19, sid] + ([] if sid >= 240 else [OK_M]) + [0, 100]
def write(sid=CUR, n=200): return [20, sid] + ([] if sid >= 240 else [OK_M]) + [0, n, 1]
def commit(): return [22]
def setsize(sid=CUR, k=2): return [23, sid] + ([] if sid >= 240 else [OK_M]) + [1, 1, k]
def mkdir(name): return [24, 1, name, 1]
def remove(name): return [25, name]
def rename(src_fh, dst_fh, a, b): return [26, src_fh, dst_fh, a, b]
def link(file_fh, dir_fh, name): return [27, file_fh, dir_fh, name]
def readdir(): return [28, 1, 2]
def layoutget(sid=CUR, rw=1): return [29, 1, rw, 0, 1, 0, sid] + ([] if sid >= 240 else [OK_M]) + [1]
def layoutreturn(kind=2, sid=0): return [31, 1, kind, sid, OK_M, 1]
def layoutcommit(sid=0): return [32, sid, OK_M, 1, 1, 3, 1]
def getdeviceinfo(): return [33, 0, 1, 1, 1]
def test_stateid(n=2): return [34, n] + [0, OK_M] * n
def free_stateid(sid=0): return [35, sid, OK_M]
def seek(sid=CUR): return [38, 1, sid] + ([] if sid >= 240 else [OK_M]) + [0]

AUDIT = [4, 0, 0]
RESTART = [4, 0xa5]

SEEDS = {
    "open-write-read-close": compound(0, [open_create(0), write(), read(), close()]) + AUDIT,
    "open-lock-unlock-close": compound(0, [open_create(1), lock_new(), locku(), close()]) + AUDIT,
    "lock-held-close": compound(1, [open_create(2, owner=1), lock_new(owner=2), close()]) + AUDIT,
    "layout-flow": compound(0, [open_create(7), write(), layoutget(), getdeviceinfo()])
                   + compound(0, [putfh(1), layoutcommit(), layoutreturn()]) + AUDIT,
    "namespace": compound(0, [mkdir(4), putroot(), open_create(3), remove(3)])
                 + compound(0, [rename(0, 0, 0, 1), link(1, 0, 6), readdir()]),
    "exclusive-create": compound(2, [open_create(6, excl=True), close(), open_create(6, excl=True)]),
    "downgrade": compound(0, [open_create(5, owner=2), downgrade(), read(), write()]) + AUDIT,
    "setattr-size": compound(3, [open_create(0), setsize(), getattr_(), seek()]),
    "session-misuse": [0, 1, 0, 1, 1, 0x07, 2, 0] + compound(1, [putroot()], seq_wrong=250)
                      + [3, 0, 0] + [0, 2, 4, 1, 2, 0x10, 1],
    "test-free": compound(0, [open_create(1), lock_new(), locku(), test_stateid(2)])
                 + compound(0, [free_stateid(0), lockt()]),
    "restart": compound(0, [open_create(2), write()]) + RESTART + compound(0, [open_nocreate(2), read()]),
    "uncached-retransmit": compound(2, [putroot(), getattr_()], cachethis=False) + [3, 0, 0],
    "minor1-read-plus": compound(0, [open_create(0), [38, 0, CUR, 0, 5]], minor=1),
}


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    for name, data in SEEDS.items():
        # The first byte picks the server: 0 with a data server, 1 without.
        for world in (0, 1):
            with open(os.path.join(out, "%s-%d" % (name, world)), "wb") as f:
                f.write(bytes([world] + [b & 0xff for b in data]))


if __name__ == "__main__":
    main()
