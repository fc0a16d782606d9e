#!/usr/bin/env python3
"""Writes a seed corpus for rpc_fuzz: a few well-formed RPC call records (NULL, GETATTR,
WRITE, READDIR, MNT; NFSv4 COMPOUNDs, a COMPOUND reply, a CB_COMPOUND, a Flexible File
layout), each prefixed with the chunk-size byte the fuzz target reads first."""
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

# NFSv4 (RFC 8881). Operation numbers and small builders for the seeds below.
OP_GETATTR, OP_GETFH, OP_OPEN, OP_PUTFH = 9, 10, 18, 22
OP_EXCHANGE_ID, OP_LAYOUTGET, OP_LAYOUTRETURN, OP_SEQUENCE = 42, 50, 51, 53
OP_CB_LAYOUTRECALL, OP_CB_SEQUENCE = 5, 11
LAYOUT4_FLEX_FILES, LAYOUTIOMODE4_RW = 4, 2
sessionid = bytes(range(0xa0, 0xb0))
def stateid(seq, fill): return u32(seq) + bytes([fill]) * 12
def bitmap(*words): return u32(len(words)) + b''.join(u32(w) for w in words)
def compound(tag, ops, minor=2): return opaque(tag) + u32(minor) + u32(len(ops)) + b''.join(ops)
def op(num, body=b''): return u32(num) + body
sequence = op(OP_SEQUENCE, sessionid + u32(17) + u32(3) + u32(7) + u32(1))
open_create = op(OP_OPEN, u32(0) + u32(0x403) + u32(0)            # seqid, access, deny
                 + u64(0x1122334455667788) + opaque(b'open id:1')  # open_owner4
                 + u32(1) + u32(3) + b'V' * 8                      # OPEN4_CREATE, EXCLUSIVE4_1
                 + bitmap(0, 1 << 1) + opaque(u32(0o644))          # cva_attrs: mode
                 + u32(0) + opaque(b'data.bin'))                   # CLAIM_NULL
layoutget = op(OP_LAYOUTGET, u32(0) + u32(LAYOUT4_FLEX_FILES) + u32(LAYOUTIOMODE4_RW)
               + u64(0) + u64(0xffffffffffffffff) + u64(4096) + stateid(1, 0) + u32(65536))
def ff_layout():
    def ds(fill, fhlen, user):
        return (bytes([fill]) * 16 + u32(100) + stateid(0, 0) + u32(1) + opaque(b'f' * fhlen)
                + opaque(user) + opaque(user))
    mirrors = [u32(1) + ds(0x10, 20, b'1000'), u32(1) + ds(0x11, 22, b'0')]
    return u64(1 << 20) + u32(len(mirrors)) + b''.join(mirrors) + u32(2) + u32(60)
ff_return = (u32(1) + u64(4096) + u64(8192) + stateid(2, 0x4c)       # one ff_ioerr4
             + u32(1) + b'\x11' * 16 + u32(6) + u32(38)                # NXIO on WRITE
             + u32(0))                                                # no ff_iostats4
layoutreturn = op(OP_LAYOUTRETURN, u32(0) + u32(LAYOUT4_FLEX_FILES) + u32(3)   # ANY
                  + u32(1) + u64(0) + u64(0xffffffffffffffff) + stateid(2, 0x4c)
                  + opaque(ff_return))
exchange_id = op(OP_EXCHANGE_ID, b'\x63\x5f\x1a\x2b\0\0\0\x07' + opaque(b'Linux NFSv4.2 client-a')
                 + u32(0x107) + u32(1) + bitmap(0, 0x02001e00) + bitmap(0x00204130, 0x00982000)
                 + u32(1) + opaque(b'kernel.org') + opaque(b'Linux 6.1.0 x86_64') + u64(0) + u32(0))
open_reply = (u32(0) + opaque(b'open') + u32(4)
              + op(OP_SEQUENCE, u32(0) + sessionid + u32(17) + u32(3) + u32(63) + u32(63) + u32(0))
              + op(OP_PUTFH, u32(0))
              + op(OP_OPEN, u32(0) + stateid(1, 0x53) + u32(1) + u64(10) + u64(11) + u32(4)
                   + bitmap(0, 2) + u32(3) + u32(0))                # OPEN_DELEGATE_NONE_EXT
              + op(OP_LAYOUTGET, u32(0) + u32(1) + stateid(1, 0x4c) + u32(1) + u64(0)
                   + u64(0xffffffffffffffff) + u32(LAYOUTIOMODE4_RW) + u32(LAYOUT4_FLEX_FILES)
                   + opaque(ff_layout())))
cb_recall = (opaque(b'') + u32(1) + u32(0) + u32(2)
             + op(OP_CB_SEQUENCE, sessionid + u32(1) + u32(0) + u32(0) + u32(0) + u32(0))
             + op(OP_CB_LAYOUTRECALL, u32(LAYOUT4_FLEX_FILES) + u32(3) + u32(1) + u32(1)
                  + opaque(b'file-handle') + u64(0) + u64(0xffffffffffffffff) + stateid(2, 0x4c)))

seeds = {
    'null': call(1, 100003, 3, 0, b''),
    'getattr': call(2, 100003, 3, 1, fh),
    'write': call(3, 100003, 3, 7, fh + u64(0) + u32(11) + u32(2) + opaque(b'hello world')),
    'readdir': call(4, 100003, 3, 16, fh + u64(0) + b'\0' * 8 + u32(4096)),
    'create': call(5, 100003, 3, 8, fh + opaque(b'name') + u32(1) + u32(1) + u32(0o644) + u32(0) * 5),
    'mnt': call(6, 100005, 3, 1, opaque(b'/')),
    'two': call(7, 100003, 3, 0, b'') + call(8, 100003, 3, 6, fh + u64(0) + u32(4096)),
    'v4_open': call(9, 100003, 4, 1, compound(b'open', [
        sequence, op(OP_PUTFH, fh), open_create, op(OP_GETFH),
        op(OP_GETATTR, bitmap(0x10001a, 0x200002)), layoutget])),
    'v4_exchange_id': call(10, 100003, 4, 1, compound(b'', [exchange_id])),
    'v4_layoutreturn': call(11, 100003, 4, 1,
                            compound(b'', [sequence, op(OP_PUTFH, fh), layoutreturn])),
    'v4_open_reply': call(12, 100003, 4, 101, open_reply),
    'v4_cb_recall': call(13, 100003, 4, 201, cb_recall),
    'v4_ff_layout': call(14, 100003, 4, 150, ff_layout()),
}
out = sys.argv[1]
os.makedirs(out, exist_ok=True)
for name, rec in seeds.items():
    with open(os.path.join(out, name), 'wb') as f:
        f.write(bytes([7]) + rec)
