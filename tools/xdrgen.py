#!/usr/bin/env python3
"""xdrgen: turns an XDR specification (RFC 4506 language, plus RFC 5531 program
definitions) into C++20 types with bounded decoders and encoders.

  xdrgen.py SPEC.x --namespace loom::nfs3 --out-h OUT.h --out-cc OUT.cc [--include H]...

Mapping:
  int/unsigned/hyper/unsigned hyper/bool   -> int32_t/uint32_t/int64_t/uint64_t/bool
  enum E                                   -> enum E : int32_t (unscoped, RFC spelling)
  struct S                                 -> struct S
  union U switch (D d)                     -> struct U { D d; <one member per distinct arm> }
  opaque x[N] / T x[N]                     -> std::array<uint8_t,N> / std::array<T,N>
  opaque x<N>                              -> loom::Bytes (a view into the receive buffer)
  string x<N>                              -> std::string
  T x<N>                                   -> std::vector<T>
  T *x                                     -> std::optional<T>
  T *x where T is a list node (a struct whose last member is `T *next`)
                                           -> std::vector<T>, coded iteratively
  T x<N> where T is itself a typedef of an array, opaque or string (e.g. a list of
  `typedef opaque deviceid4[16]` or of `typedef opaque component4<>`)
                                           -> std::vector<T> of that typedef, coded in a loop
Every variable-length item is checked against its bound and against the bytes left,
so a hostile length fails the decode instead of allocating.

Directives (a comment of this exact form, placed right before the definition it applies to):
  /* @xdrgen union-storage: pointer */
      Before a union: each non-void arm becomes std::unique_ptr<T> instead of T, so the
      struct stays small when a union has many large arms (NFSv4's nfs_argop4/nfs_resop4).
      The decoder allocates only the arm the discriminant selects; the encoder writes a
      default T for an arm left null. The struct is then move-only. Wire format unchanged.
"""
import argparse
import re
import sys

KEYWORDS = {
    'alignas', 'alignof', 'and', 'asm', 'auto', 'break', 'case', 'catch', 'char', 'class',
    'const', 'continue', 'default', 'delete', 'do', 'double', 'else', 'enum', 'explicit',
    'export', 'extern', 'false', 'float', 'for', 'friend', 'goto', 'if', 'inline', 'int',
    'long', 'mutable', 'namespace', 'new', 'not', 'operator', 'or', 'private', 'protected',
    'public', 'register', 'return', 'short', 'signed', 'sizeof', 'static', 'struct', 'switch',
    'template', 'this', 'throw', 'true', 'try', 'typedef', 'typename', 'union', 'unsigned',
    'using', 'virtual', 'void', 'volatile', 'while', 'xor', 'module', 'requires', 'concept',
}

PRIM_CTYPE = {
    'int': 'int32_t', 'uint': 'uint32_t', 'hyper': 'int64_t', 'uhyper': 'uint64_t',
    'bool': 'bool', 'float': 'float', 'double': 'double',
}
PRIM_CODEC = {'int': 'i32', 'uint': 'u32', 'hyper': 'i64', 'uhyper': 'u64', 'bool': 'boolean'}


class Error(Exception):
    pass


def cname(n):
    return n + '_' if n in KEYWORDS else n


# ---------------------------------------------------------------- lexer
TOKEN_RE = re.compile(r'\s*(?:(0x[0-9a-fA-F]+|-?\d+)|([A-Za-z_][A-Za-z0-9_]*)|(.))', re.S)


DIRECTIVE_RE = re.compile(r'/\*\s*@xdrgen\s+([a-z-]+)\s*:\s*([a-z-]+)\s*\*/')
# directive (key, value) -> the marker token the parser sees in its place
DIRECTIVES = {('union-storage', 'pointer'): '__xdrgen_union_storage_pointer__'}


def directive_token(m):
    key = (m.group(1), m.group(2))
    if key not in DIRECTIVES:
        raise Error('unknown directive @xdrgen %s: %s' % key)
    return ' %s ' % DIRECTIVES[key]


def strip_comments(text):
    text = DIRECTIVE_RE.sub(directive_token, text)
    text = re.sub(r'/\*.*?\*/', lambda m: '\n' * m.group(0).count('\n'), text, flags=re.S)
    text = re.sub(r'//[^\n]*', '', text)
    # '%' lines are pass-through C in rpcgen; we ignore them.
    text = re.sub(r'^\s*%[^\n]*', '', text, flags=re.M)
    return text


def tokenize(text):
    toks = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        m = TOKEN_RE.match(text, pos)
        if not m:
            raise Error('cannot tokenize at %r' % text[pos:pos + 20])
        pos = m.end()
        if m.group(1):
            toks.append(('num', m.group(1)))
        elif m.group(2):
            toks.append(('id', m.group(2)))
        elif m.group(3) and not m.group(3).isspace():
            toks.append(('sym', m.group(3)))
    return toks


# ---------------------------------------------------------------- parser
class Decl:
    """A declaration: type name + kind (scalar/fixed/var/opt/void) + bound."""

    def __init__(self, type_, name, kind='scalar', bound=None):
        self.type = type_      # 'int','uint','hyper','uhyper','bool','opaque','string' or a type name
        self.name = name
        self.kind = kind       # 'scalar', 'fixed', 'var', 'opt', 'void'
        self.bound = bound     # string (constant name or number) or None (= unbounded)


class Parser:
    def __init__(self, toks):
        self.toks = toks
        self.i = 0
        self.consts = []       # (name, value)
        self.types = []        # ordered ('enum'|'struct'|'union'|'typedef', name, body)
        self.programs = []     # (name, number, [(vname, vnum, [(pname, pnum, ret, args)])])
        self.pointer_unions = set()  # unions marked `@xdrgen union-storage: pointer`

    def peek(self, k=0):
        return self.toks[self.i + k] if self.i + k < len(self.toks) else (None, None)

    def next(self):
        t = self.peek()
        self.i += 1
        return t

    def expect(self, val):
        t = self.next()
        if t[1] != val:
            raise Error('expected %r, got %r (token %d)' % (val, t[1], self.i))

    def ident(self):
        t = self.next()
        if t[0] != 'id':
            raise Error('expected identifier, got %r' % (t[1],))
        return t[1]

    def value(self):
        t = self.next()
        if t[0] not in ('num', 'id'):
            raise Error('expected value, got %r' % (t[1],))
        return t[1]

    def parse(self):
        pointer_next = False
        while self.peek()[0] is not None:
            kw = self.ident()
            if kw == DIRECTIVES[('union-storage', 'pointer')]:
                pointer_next = True
                continue
            if pointer_next and kw != 'union':
                raise Error('@xdrgen union-storage must come right before a union')
            if kw == 'const':
                n = self.ident()
                self.expect('=')
                self.consts.append((n, self.value()))
                self.expect(';')
            elif kw == 'typedef':
                d = self.declaration()
                self.types.append(('typedef', d.name, d))
                self.expect(';')
            elif kw == 'enum':
                n = self.ident()
                self.types.append(('enum', n, self.enum_body()))
                self.expect(';')
            elif kw == 'struct':
                n = self.ident()
                self.types.append(('struct', n, self.struct_body()))
                self.expect(';')
            elif kw == 'union':
                n = self.ident()
                self.types.append(('union', n, self.union_body()))
                self.expect(';')
                if pointer_next:
                    self.pointer_unions.add(n)
                    pointer_next = False
            elif kw == 'program':
                self.program()
            else:
                raise Error('unexpected %r at top level' % kw)

    def type_spec(self):
        t = self.ident()
        if t == 'unsigned':
            nt = self.peek()[1]
            if nt == 'int':
                self.next()
                return 'uint'
            if nt == 'hyper':
                self.next()
                return 'uhyper'
            if nt == 'long':
                self.next()
                return 'uint'
            return 'uint'
        if t in ('enum', 'struct', 'union'):
            raise Error('anonymous inline %s types are not supported: name them' % t)
        return t

    def declaration(self):
        if self.peek()[1] == 'void':
            self.next()
            return Decl('void', None, 'void')
        if self.peek()[1] in ('opaque', 'string'):
            t = self.ident()
        else:
            t = self.type_spec()
        if self.peek()[1] == '*':
            self.next()
            return Decl(t, self.ident(), 'opt')
        n = self.ident()
        if self.peek()[1] == '[':
            self.next()
            b = self.value()
            self.expect(']')
            return Decl(t, n, 'fixed', b)
        if self.peek()[1] == '<':
            self.next()
            b = None
            if self.peek()[1] != '>':
                b = self.value()
            self.expect('>')
            return Decl(t, n, 'var', b)
        if t in ('opaque', 'string'):
            raise Error('%s %s needs [] or <>' % (t, n))
        return Decl(t, n)

    def enum_body(self):
        self.expect('{')
        items = []
        while True:
            n = self.ident()
            self.expect('=')
            items.append((n, self.value()))
            t = self.next()[1]
            if t == '}':
                return items
            if t != ',':
                raise Error('bad enum body near %s' % n)

    def struct_body(self):
        self.expect('{')
        fields = []
        while self.peek()[1] != '}':
            fields.append(self.declaration())
            self.expect(';')
        self.next()
        return fields

    def union_body(self):
        self.expect('switch')
        self.expect('(')
        disc = self.declaration()
        self.expect(')')
        self.expect('{')
        arms = []  # ([case values], Decl) ; 'default' as value None
        cases = []
        while self.peek()[1] != '}':
            kw = self.ident()
            if kw == 'case':
                cases.append(self.value())
                self.expect(':')
            elif kw == 'default':
                cases.append(None)
                self.expect(':')
            else:
                raise Error('bad union arm %r' % kw)
            if self.peek()[1] in ('case', 'default'):
                continue
            d = self.declaration()
            self.expect(';')
            arms.append((cases, d))
            cases = []
        self.next()
        return (disc, arms)

    def program(self):
        pname = self.ident()
        self.expect('{')
        versions = []
        while self.peek()[1] == 'version':
            self.next()
            vname = self.ident()
            self.expect('{')
            procs = []
            while self.peek()[1] != '}':
                ret = self.proc_type()
                name = self.ident()
                self.expect('(')
                args = [self.proc_type()]
                while self.peek()[1] == ',':
                    self.next()
                    args.append(self.proc_type())
                self.expect(')')
                self.expect('=')
                procs.append((name, self.value(), ret, args))
                self.expect(';')
            self.next()
            self.expect('=')
            versions.append((vname, self.value(), procs))
            self.expect(';')
        self.expect('}')
        self.expect('=')
        self.programs.append((pname, self.value(), versions))
        self.expect(';')

    def proc_type(self):
        if self.peek()[1] == 'void':
            self.next()
            return 'void'
        return self.type_spec()


# ---------------------------------------------------------------- generator
class Gen:
    def __init__(self, p, ns, includes):
        self.p = p
        self.ns = ns
        self.includes = includes
        self.kinds = {}      # type name -> 'enum'|'struct'|'union'|'typedef'
        self.typedefs = {}
        self.structs = {}
        self.list_nodes = set()
        for kind, name, body in p.types:
            if name in self.kinds:
                raise Error('type %s defined twice' % name)
            self.kinds[name] = kind
            if kind == 'typedef':
                self.typedefs[name] = body
            if kind == 'struct':
                self.structs[name] = body
                if body and body[-1].kind == 'opt' and body[-1].type == name:
                    self.list_nodes.add(name)

    def resolve(self, d):
        """Follow typedefs; returns a Decl whose type is a primitive or a composite name."""
        seen = 0
        while d.type in self.typedefs:
            seen += 1
            if seen > 32:
                raise Error('typedef loop at %s' % d.type)
            td = self.typedefs[d.type]
            if d.kind == 'scalar':
                d = Decl(td.type, d.name, td.kind, td.bound)
            elif td.kind == 'scalar':
                d = Decl(td.type, d.name, d.kind, d.bound)
            else:
                # An array (or optional) of a typedef that is itself an array, opaque or
                # string: the element type stays the typedef; see elem_dec/elem_enc.
                break
        if d.type not in PRIM_CTYPE and d.type not in ('opaque', 'string', 'void') \
                and d.type not in self.kinds and d.kind != 'void':
            # A type from an included spec: treat it as a composite with codecs there.
            pass
        return d

    def ctype_scalar(self, t):
        return PRIM_CTYPE.get(t, t)

    def is_array_typedef(self, t):
        """A typedef that resolves to an array, opaque or string (not a single value)."""
        return t in self.typedefs and self.resolve(Decl(t, None)).kind != 'scalar'

    @staticmethod
    def loop_var(depth):
        return 'x' if depth == 0 else 'x%d' % depth

    def bound(self, d):
        return d.bound if d.bound is not None else 'loom::xdr::kUnbounded'

    def ctype(self, d):
        d = self.resolve(d)
        if d.kind == 'void':
            return None
        if d.type == 'opaque':
            return 'std::array<uint8_t, %s>' % d.bound if d.kind == 'fixed' else 'loom::Bytes'
        if d.type == 'string':
            return 'std::string'
        base = self.ctype_scalar(d.type)
        if d.kind == 'scalar':
            return base
        if d.kind == 'fixed':
            return 'std::array<%s, %s>' % (base, d.bound)
        if d.kind == 'var':
            return 'std::vector<%s>' % base
        if d.kind == 'opt':
            if d.type in self.list_nodes:
                return 'std::vector<%s>' % base
            return 'std::optional<%s>' % base
        raise Error('bad decl')

    # -- code for one value --
    def dec_scalar(self, t, lv):
        if t in PRIM_CODEC:
            return 'd.%s(%s)' % (PRIM_CODEC[t], lv)
        if self.kinds.get(t) == 'enum':
            return 'loom::xdr::decode_enum(d, %s)' % lv
        return 'xdr_decode(d, %s)' % lv

    def enc_scalar(self, t, rv):
        if t in PRIM_CODEC:
            return 'e.%s(%s);' % (PRIM_CODEC[t], rv)
        if self.kinds.get(t) == 'enum':
            return 'e.i32(static_cast<int32_t>(%s));' % rv
        return 'xdr_encode(e, %s);' % rv

    def elem_dec(self, t, lv, ind, depth):
        """Lines that decode one array element of type `t` into `lv`."""
        I = ' ' * ind
        if self.is_array_typedef(t):
            return self.dec_decl(Decl(t, None), lv, ind, depth)
        return [I + 'if (!%s) return false;' % self.dec_scalar(t, lv)]

    def elem_enc(self, t, rv, ind, depth):
        I = ' ' * ind
        if self.is_array_typedef(t):
            return self.enc_decl(Decl(t, None), rv, ind, depth)
        return [I + self.enc_scalar(t, rv)]

    def dec_decl(self, d, lv, ind, depth=0):
        """Lines that decode `d` into lvalue `lv`; each failing path returns false."""
        d = self.resolve(d)
        I = ' ' * ind
        x = self.loop_var(depth)
        n = 'n' if depth == 0 else 'n%d' % depth
        if d.kind == 'void':
            return []
        if d.type == 'opaque':
            if d.kind == 'fixed':
                return [I + 'if (!d.fixed(%s.data(), %s.size())) return false;' % (lv, lv)]
            return [I + 'if (!d.opaque(%s, %s)) return false;' % (lv, self.bound(d))]
        if d.type == 'string':
            return [I + 'if (!d.string(%s, %s)) return false;' % (lv, self.bound(d))]
        if d.kind == 'scalar':
            return [I + 'if (!%s) return false;' % self.dec_scalar(d.type, lv)]
        if d.kind == 'fixed':
            return ([I + 'for (auto& %s : %s) {' % (x, lv)] +
                    self.elem_dec(d.type, x, ind + 2, depth + 1) +
                    [I + '}'])
        if d.kind == 'var':
            return ([I + '{',
                     I + '  uint32_t %s;' % n,
                     I + '  if (!d.array_len(%s, %s)) return false;' % (n, self.bound(d)),
                     I + '  %s.resize(%s);' % (lv, n),
                     I + '  for (auto& %s : %s) {' % (x, lv)] +
                    self.elem_dec(d.type, x, ind + 4, depth + 1) +
                    [I + '  }',
                     I + '}'])
        if d.kind == 'opt':
            if d.type in self.list_nodes:
                # Iterative: each node costs at least 4 bytes, so the buffer bounds the count.
                return [I + '{',
                        I + '  %s.clear();' % lv,
                        I + '  bool more;',
                        I + '  if (!d.boolean(more)) return false;',
                        I + '  while (more) {',
                        I + '    %s.emplace_back();' % lv,
                        I + '    if (!xdr_decode(d, %s.back())) return false;' % lv,
                        I + '    if (!d.boolean(more)) return false;',
                        I + '  }',
                        I + '}']
            return ([I + '{',
                     I + '  bool present;',
                     I + '  if (!d.boolean(present)) return false;',
                     I + '  if (present) {',
                     I + '    %s.emplace();' % lv] +
                    self.elem_dec(d.type, '(*%s)' % lv, ind + 4, depth + 1) +
                    [I + '  } else {',
                     I + '    %s.reset();' % lv,
                     I + '  }',
                     I + '}'])
        raise Error('bad decl')

    def enc_decl(self, d, rv, ind, depth=0):
        d = self.resolve(d)
        I = ' ' * ind
        x = self.loop_var(depth)
        if d.kind == 'void':
            return []
        if d.type == 'opaque':
            if d.kind == 'fixed':
                return [I + 'e.fixed(%s.data(), %s.size());' % (rv, rv)]
            return [I + 'e.opaque(%s);' % rv]
        if d.type == 'string':
            return [I + 'e.string(%s);' % rv]
        if d.kind == 'scalar':
            return [I + self.enc_scalar(d.type, rv)]
        if d.kind == 'fixed':
            if self.is_array_typedef(d.type):
                return ([I + 'for (const auto& %s : %s) {' % (x, rv)] +
                        self.elem_enc(d.type, x, ind + 2, depth + 1) + [I + '}'])
            return [I + 'for (const auto& %s : %s) %s' % (x, rv, self.enc_scalar(d.type, x))]
        if d.kind == 'var':
            if self.is_array_typedef(d.type):
                return ([I + 'e.u32(static_cast<uint32_t>(%s.size()));' % rv,
                         I + 'for (const auto& %s : %s) {' % (x, rv)] +
                        self.elem_enc(d.type, x, ind + 2, depth + 1) + [I + '}'])
            return [I + 'e.u32(static_cast<uint32_t>(%s.size()));' % rv,
                    I + 'for (const auto& %s : %s) %s' % (x, rv, self.enc_scalar(d.type, x))]
        if d.kind == 'opt':
            if d.type in self.list_nodes:
                return [I + 'for (const auto& %s : %s) {' % (x, rv),
                        I + '  e.boolean(true);',
                        I + '  xdr_encode(e, %s);' % x,
                        I + '}',
                        I + 'e.boolean(false);']
            if self.is_array_typedef(d.type):
                return ([I + 'e.boolean(%s.has_value());' % rv,
                         I + 'if (%s) {' % rv] +
                        self.elem_enc(d.type, '(*%s)' % rv, ind + 2, depth + 1) + [I + '}'])
            return [I + 'e.boolean(%s.has_value());' % rv,
                    I + 'if (%s) %s' % (rv, self.enc_scalar(d.type, '*' + rv))]
        raise Error('bad decl')

    def struct_fields(self, name, fields):
        if name in self.list_nodes:
            return fields[:-1]
        return fields

    def union_members(self, arms):
        seen = {}
        for _, d in arms:
            if d.kind == 'void':
                continue
            if d.name in seen:
                if self.ctype(seen[d.name]) != self.ctype(d):
                    raise Error('union arm %s declared with two types' % d.name)
                continue
            seen[d.name] = d
        return list(seen.values())

    def case_label(self, v):
        return v

    def emit(self, spec_name):
        h = []
        c = []
        guard = 'LOOM_XDR_GEN_%s_H' % re.sub(r'\W', '_', spec_name).upper()
        h += ['// Generated by tools/xdrgen.py from %s. Do not edit.' % spec_name,
              '#pragma once', '',
              '#include <array>', '#include <cstdint>']
        if self.p.pointer_unions:
            h.append('#include <memory>')
        h += ['#include <optional>', '#include <string>', '#include <vector>', '',
              '#include "xdr/xdr.h"']
        for inc in self.includes:
            h.append('#include "%s"' % inc)
        h += ['', 'namespace %s {' % self.ns, '',
              'using loom::xdr::Decoder;', 'using loom::xdr::Encoder;', '']
        for n, v in self.p.consts:
            t = 'int64_t' if v.startswith('-') else 'uint64_t' if (v.startswith('0x') and len(v) > 10) or (v.isdigit() and int(v) > 0xffffffff) else 'uint32_t'
            h.append('constexpr %s %s = %s;' % (t, n, v))
        h.append('')
        # forward declarations so codecs can refer to each other in any order
        for kind, name, body in self.p.types:
            if kind in ('struct', 'union'):
                h.append('struct %s;' % name)
        h.append('')
        for kind, name, body in self.p.types:
            if kind == 'enum':
                h.append('enum %s : int32_t {' % name)
                for n, v in body:
                    h.append('  %s = %s,' % (n, v))
                h.append('};')
                h.append('const char* %s_name(int32_t v);' % name)
                h.append('')
                c.append('const char* %s_name(int32_t v) {' % name)
                c.append('  switch (v) {')
                done = set()
                for n, v in body:
                    if v in done:
                        continue
                    done.add(v)
                    c.append('    case %s: return "%s";' % (n, n))
                c.append('    default: return "?";')
                c.append('  }')
                c.append('}')
                c.append('')
            elif kind == 'typedef':
                ct = self.ctype(body)
                if ct is None:
                    raise Error('typedef void')
                if ct != name:  # `typedef unsigned int uint32_t;` needs no alias
                    h.append('using %s = %s;' % (name, ct))
                    h.append('')
            elif kind == 'struct':
                h.append('struct %s {' % name)
                for f in self.struct_fields(name, body):
                    ct = self.ctype(f)
                    if ct is None:
                        continue
                    h.append('  %s %s{};' % (ct, cname(f.name)))
                h.append('};')
                h.append('[[nodiscard]] bool xdr_decode(Decoder& d, %s& v);' % name)
                h.append('void xdr_encode(Encoder& e, const %s& v);' % name)
                h.append('')
                c.append('bool xdr_decode(Decoder& d, %s& v) {' % name)
                for f in self.struct_fields(name, body):
                    c += self.dec_decl(f, 'v.' + cname(f.name), 2)
                c.append('  return true;')
                c.append('}')
                c.append('')
                c.append('void xdr_encode(Encoder& e, const %s& v) {' % name)
                if not self.struct_fields(name, body):
                    c.append('  (void)e;')
                    c.append('  (void)v;')
                for f in self.struct_fields(name, body):
                    c += self.enc_decl(f, 'v.' + cname(f.name), 2)
                c.append('}')
                c.append('')
            elif kind == 'union':
                disc, arms = body
                boxed = name in self.p.pointer_unions
                h.append('struct %s {' % name)
                h.append('  %s %s{};' % (self.ctype(disc), cname(disc.name)))
                for m in self.union_members(arms):
                    if boxed:
                        h.append('  std::unique_ptr<%s> %s;' % (self.ctype(m), cname(m.name)))
                    else:
                        h.append('  %s %s{};' % (self.ctype(m), cname(m.name)))
                h.append('};')
                h.append('[[nodiscard]] bool xdr_decode(Decoder& d, %s& v);' % name)
                h.append('void xdr_encode(Encoder& e, const %s& v);' % name)
                h.append('')
                dn = 'v.' + cname(disc.name)
                rd = self.resolve(disc)
                c.append('bool xdr_decode(Decoder& d, %s& v) {' % name)
                c += self.dec_decl(disc, dn, 2)
                c.append('  switch (static_cast<int64_t>(%s)) {' % dn)
                has_default = False
                for cases, d in arms:
                    for v in cases:
                        if v is None:
                            has_default = True
                            c.append('    default:')
                        else:
                            c.append('    case %s:' % self.case_value(v, rd))
                    c.append('    {')
                    if boxed and d.kind != 'void':
                        m = 'v.' + cname(d.name)
                        c.append('      %s = std::make_unique<%s>();' % (m, self.ctype(d)))
                        c += self.dec_decl(d, '(*%s)' % m, 6)
                    else:
                        c += self.dec_decl(d, 'v.' + cname(d.name) if d.name else '', 6)
                    c.append('      return true;')
                    c.append('    }')
                if not has_default:
                    c.append('    default:')
                    c.append('      return false;  // no arm for this discriminant')
                c.append('  }')
                c.append('}')
                c.append('')
                c.append('void xdr_encode(Encoder& e, const %s& v) {' % name)
                c += self.enc_decl(disc, dn, 2)
                c.append('  switch (static_cast<int64_t>(%s)) {' % dn)
                for cases, d in arms:
                    for v in cases:
                        if v is None:
                            c.append('    default:')
                        else:
                            c.append('    case %s:' % self.case_value(v, rd))
                    c.append('    {')
                    if boxed and d.kind != 'void':
                        # A null arm is written as a default value, so encoding stays total.
                        c.append('      const auto& a = ArmOrDefault(v.%s);' % cname(d.name))
                        c += self.enc_decl(d, 'a', 6)
                    else:
                        c += self.enc_decl(d, 'v.' + cname(d.name) if d.name else '', 6)
                    c.append('      return;')
                    c.append('    }')
                if not has_default:
                    c.append('    default:')
                    c.append('      return;')
                c.append('  }')
                c.append('}')
                c.append('')
        for pname, pnum, versions in self.p.programs:
            h.append('constexpr uint32_t %s = %s;' % (pname, pnum))
            for vname, vnum, procs in versions:
                h.append('constexpr uint32_t %s = %s;' % (vname, vnum))
                for prname, prnum, ret, args in procs:
                    h.append('constexpr uint32_t %s = %s;' % (prname, prnum))
                maxp = max(int(pr[1], 0) for pr in procs) + 1
                h.append('constexpr uint32_t %s_NPROCS = %d;' % (vname, maxp))
                h.append('// The procedure name of %s, or nullptr.' % vname)
                h.append('const char* %s_procname(uint32_t proc);' % vname)
                c.append('const char* %s_procname(uint32_t proc) {' % vname)
                c.append('  switch (proc) {')
                for prname, prnum, ret, args in procs:
                    c.append('    case %s: return "%s";' % (prnum, prname))
                c.append('    default: return nullptr;')
                c.append('  }')
                c.append('}')
                c.append('')
            h.append('')
        h.append('}  // namespace %s' % self.ns)
        h.append('')
        helpers = []
        if self.p.pointer_unions:
            helpers = ['namespace {', '',
                       '// The arm a pointer-storage union holds, or a default value when null.',
                       'template <typename T>',
                       'const T& ArmOrDefault(const std::unique_ptr<T>& p) {',
                       '  static const T kDefault{};',
                       '  return p ? *p : kDefault;',
                       '}', '',
                       '}  // namespace', '']
        cc = ['// Generated by tools/xdrgen.py from %s. Do not edit.' % spec_name,
              '#include "%s"' % self.header_name, '',
              'namespace %s {' % self.ns, ''] + helpers + c + ['}  // namespace %s' % self.ns, '']
        return '\n'.join(h), '\n'.join(cc)

    def case_value(self, v, disc):
        if disc.type == 'bool':
            return {'TRUE': '1', 'FALSE': '0'}.get(v, v)
        return v


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('spec')
    ap.add_argument('--namespace', required=True)
    ap.add_argument('--out-h', required=True)
    ap.add_argument('--out-cc', required=True)
    ap.add_argument('--header-name', help='include path of the generated header')
    ap.add_argument('--include', action='append', default=[])
    a = ap.parse_args()
    with open(a.spec) as f:
        text = f.read()
    try:
        p = Parser(tokenize(strip_comments(text)))
        p.parse()
        g = Gen(p, a.namespace, a.include)
        g.header_name = a.header_name or a.out_h
        h, cc = g.emit(a.spec.split('/')[-1])
    except Error as e:
        sys.stderr.write('%s: %s\n' % (a.spec, e))
        sys.exit(1)
    for path, body in ((a.out_h, h), (a.out_cc, cc)):
        try:
            with open(path) as f:
                if f.read() == body:
                    continue
        except FileNotFoundError:
            pass
        with open(path, 'w') as f:
            f.write(body)


if __name__ == '__main__':
    main()
