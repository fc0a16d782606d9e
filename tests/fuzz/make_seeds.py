#!/usr/bin/env python3
"""Writes a seed corpus for rpc_fuzz: a few well-formed RPC call records (NULL, GETATTR,
WRITE, READDIR, MNT), each prefixed with the chunk-size byte the fuzz target reads first."""
import os
import struct
import sys

def u32(v): return struct.pack('>I', v & 0xffffffff)
def u64(v): return struct.pack('>Q', v)
def opaque(b): return u32(len(b)) + b + b'\0' * ((4 - len(b) % 4) % 4)

def call(xid, prog, vers, proc, args, sys_cred=True):
    cred = u32(1) + opaque(u32(0) + opaque(b'host') + u32(1000) + u32(1000) + u32(2) + u32(1) + u32(2)) \
        if sys_cred else u32(0) + u32(0)
    body = u32(xid) + u32(0) + u32(2) + u32(prog) + u32(vers) + u32(proc) + cred + u32(0) + u32(0) + args
    return u32(0x80000000 | len(body)) + body

fh = opaque(b'\x01\x01\x08\x00' + b'A' * 8 + b'M' * 8)
seeds = {
    'null': call(1, 100003, 3, 0, b''),
    'getattr': call(2, 100003, 3, 1, fh),
    'write': call(3, 100003, 3, 7, fh + u64(0) + u32(11) + u32(2) + opaque(b'hello world')),
    'readdir': call(4, 100003, 3, 16, fh + u64(0) + b'\0' * 8 + u32(4096)),
    'create': call(5, 100003, 3, 8, fh + opaque(b'name') + u32(1) + u32(1) + u32(0o644) + u32(0) * 5),
    'mnt': call(6, 100005, 3, 1, opaque(b'/')),
    'two': call(7, 100003, 3, 0, b'') + call(8, 100003, 3, 6, fh + u64(0) + u32(4096)),
}
out = sys.argv[1]
os.makedirs(out, exist_ok=True)
for name, rec in seeds.items():
    with open(os.path.join(out, name), 'wb') as f:
        f.write(bytes([7]) + rec)
