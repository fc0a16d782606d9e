// libFuzzer target: a stateful COMPOUND fuzzer for loom-mds (issue 14 item 2).
//
// Two Mds instances (tests' DirectMds over an in-memory metadata store) live for the whole
// fuzzing session: one with an in-process loom-ds data server, so that WRITE, READ and
// Flexible File layouts really run, and one with no data server at all (the first input byte
// picks one). Clients, their sessions and slot sequence ids, the filehandles and the
// stateids and device ids the server handed out are remembered across inputs. Each input is
// decoded into *structured* actions (not bytes on the wire): EXCHANGE_ID, CREATE_SESSION,
// DESTROY_SESSION, a retransmission of an earlier request, a TEST_STATEID audit, a restart,
// or a SEQUENCE compound of up to six structured operations (one to four wire operations
// each: OPEN is PUTROOTFH/PUTFH + OPEN + GETFH, RENAME and LINK come with their
// PUTFH/SAVEFH/PUTFH) whose arguments come from small alphabets (names, owners, modes)
// and from what earlier replies returned (filehandles, stateids, device ids), occasionally
// corrupted. SEQUENCE carries the slot's next sequence id, or on purpose a wrong one.
//
// After every COMPOUND the target checks (and aborts, which libFuzzer reports, on failure):
//   - the reply is a COMPOUND4res that decodes with nothing left over;
//   - the compound's status is the last result's; every earlier result is NFS4_OK; an OK
//     compound answered every op; each result is for the op asked (RFC 8881 §15.2, §16.2.3);
//   - SEQUENCE (§2.10.6.1): the next sequence id is never SEQ_MISORDERED/BADSESSION/BADSLOT on
//     a live session; a sequence id that is neither the slot's last nor the next is
//     SEQ_MISORDERED (or a request-level TOO_MANY_OPS/REQ_TOO_BIG); a slot past the
//     session's is BADSLOT; a retransmission of a cached request gets the identical bytes, of an
//     uncached one RETRY_UNCACHED_REP; a destroyed session is BADSESSION;
//   - open and lock state (§8.2, §18.48): TEST_STATEID of every open or lock stateid the
//     server granted and that was not CLOSEd or FREEd is NFS4_OK with its current seqid;
//     of one that was CLOSEd (an open, and the lock states opened through it) or FREEd it is
//     BAD_STATEID (checked after every compound that changed open or lock state, following
//     the current stateid as §16.2.3.1.2 defines it);
//   - layouts: after LAYOUTRETURN of every layout (ALL/FSID, iomode ANY) the LayoutTable
//     lists no file for the client; a granted ff_layout4 decodes;
//   - CREATE_SESSION with a csa_sequence that is neither the next nor a replay fails;
//     DESTROY_SESSION of a destroyed session is BADSESSION.
// Where the fuzzer cannot know the truth (a session or client changed by a session op inside
// a compound, the current stateid unknown) it stops predicting that part, never guesses.
// Counts of the checks made are printed at exit.
//
// Run: compound_fuzz -max_total_time=60 corpus/ seeds/   (seeds: make_compound_seeds.py)
// Set LOOM_FUZZ_TRACE=1 to print every COMPOUND (op names and statuses) to stderr, e.g. when
// replaying a crash input.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <unistd.h>
#include <filesystem>
#include <map>
#include <set>
#include <memory>
#include <string>
#include <vector>

#include "common/log.h"
#include "nfs4/state.h"
#include "nfs4/testing/direct_mds.h"

using namespace loom;
using namespace loom::nfs4;
using namespace loom::nfs4::simple;
using loom::nfs4::testing::DirectMds;
using loom::nfs4::testing::Reply;

namespace {

bool g_trace = false;
// How often each invariant was actually checked (printed at exit: a run that never reached a
// check proves nothing about it).
struct Counts {
  uint64_t compounds = 0, live_stateids = 0, dead_stateids = 0, cached_replays = 0,
           uncached_replays = 0, misordered = 0, next_seqid = 0, dead_sessions = 0, bad_slots = 0,
           layouts = 0, layout_return_all = 0;
} g_counts;

// Every input run so far in this process, in order (up to kHistoryBytes): the state an
// input meets was made by the ones before it, so a failure is reproduced by replaying them.
std::vector<std::string> g_history;
size_t g_history_bytes = 0;
bool g_history_truncated = false;
constexpr size_t kHistoryBytes = 256u << 20;

[[noreturn]] void Fail(const char* what, const std::string& detail = "") {
  fprintf(stderr, "compound_fuzz: INVARIANT VIOLATED: %s %s\n", what, detail.c_str());
  // The history as one file: a 4-byte little-endian length before each input.
  // In LOOM_FUZZ_HISTORY_DIR (run_compound_fuzz.sh: the artifact directory), else here.
  const char* dir = getenv("LOOM_FUZZ_HISTORY_DIR");
  char name[512];
  snprintf(name, sizeof name, "%s%scompound-history-%d.bin", dir ? dir : "", dir ? "/" : "",
           int(getpid()));
  if (FILE* f = fopen(name, "wb")) {
    for (const std::string& in : g_history) {
      uint32_t n = uint32_t(in.size());
      uint8_t len[4] = {uint8_t(n), uint8_t(n >> 8), uint8_t(n >> 16), uint8_t(n >> 24)};
      fwrite(len, 1, 4, f);
      fwrite(in.data(), 1, in.size(), f);
    }
    fclose(f);
    fprintf(stderr, "compound_fuzz: the %zu inputs of this process are in %s%s; replay them "
            "in order: LOOM_FUZZ_REPLAY=%s LOOM_FUZZ_TRACE=1 compound_fuzz -runs=0\n",
            g_history.size(), name, g_history_truncated ? " (the oldest dropped)" : "", name);
  }
  std::abort();
}
#define CHECK_INV(cond, ...)                                   \
  do {                                                         \
    if (!(cond)) {                                             \
      char buf_[512];                                          \
      snprintf(buf_, sizeof buf_, __VA_ARGS__);                \
      Fail(#cond, buf_);                                       \
    }                                                          \
  } while (0)

// The input, read as small numbers; past its end every read is 0.
class Reader {
 public:
  Reader(const uint8_t* p, size_t n) : p_(p), n_(n) {}
  uint8_t u8() { return n_ ? (n_--, *p_++) : 0; }
  uint32_t below(uint32_t k) { return k ? u8() % k : 0; }
  uint64_t u64() {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v = (v << 8) | u8();
    return v;
  }
  bool empty() const { return n_ == 0; }

 private:
  const uint8_t* p_;
  size_t n_;
};

std::string Str(const Bytes& b) { return std::string(reinterpret_cast<const char*>(b.data), b.size); }
using Other = std::array<uint8_t, NFS4_OTHER_SIZE>;

// ------------------------------------------------------------------ what the fuzzer knows
struct SlotRec {
  uint32_t seqid = 0;       // the last sequence id the server accepted on this slot
  bool have_last = false;   // a request with `seqid` completed and we kept its reply
  bool last_cached = false;  // it asked sa_cachethis
  std::string last_args;    // its bytes (for a retransmission)
  std::string last_reply;
};
struct SessRec {
  sessionid4 id{};
  int client = 0;
  clientid4 clientid = 0;
  bool live = true;   // false once destroyed (by DESTROY_SESSION, restart, client replaced)
  bool known = true;  // false when we lost track (its fate is not predictable)
  uint32_t nslots = 1;
  std::vector<SlotRec> slots;
};
struct ClientRec {
  std::string owner;
  verifier4 verf{};
  clientid4 id = 0;          // from the last EXCHANGE_ID
  clientid4 confirmed = 0;   // the confirmed incarnation (0: none)
  uint32_t create_seq = 0;   // csa_sequence the next CREATE_SESSION of `id` carries
  rpc::Cred cred;
};
enum class SKind { kOpen, kLock, kLayout };
struct StateRec {
  stateid4 sid{};       // with the newest seqid the server returned
  SKind kind = SKind::kOpen;
  clientid4 clientid = 0;
  bool live = true;
  bool strict = true;   // its fate is predictable (TEST_STATEID is checked)
  Other parent{};       // lock: the open state it came from
  int fh = -1;          // index into fhs_ of its file, when known
};

constexpr int kClients = 4;
constexpr size_t kMaxFhs = 48, kMaxStates = 96, kMaxSessions = 12;

class World {
 public:
  explicit World(int data_servers) {
    DirectMds::Options o;
    o.data_servers = data_servers;
    o.recall_timeout_ms = 50;
    // The data server syncs FILE_SYNC writes: on tmpfs that costs nothing.
    std::error_code ec;
    o.tmp_prefix = std::filesystem::is_directory("/dev/shm", ec) && access("/dev/shm", W_OK) == 0
                       ? "/dev/shm/loom-compound-fuzz-"
                       : "/tmp/loom-compound-fuzz-";
    mds_ = std::make_unique<DirectMds>(o);
    for (int i = 0; i < kClients; i++) {
      clients_[i].owner = "fuzz-client-" + std::to_string(i);
      clients_[i].verf = {uint8_t(i), 1, 2, 3, 4, 5, 6, 7};
      // Two of them as root, one as uid 1000 and one as uid 2000 (permission paths).
      uint32_t uid = i < 2 ? 0 : 1000 * (i - 1);
      clients_[i].cred = rpc::Cred::Sys(uid, uid, {}, "fuzz");
    }
    ResetKnowledge();
  }

  const std::string& dir() const { return mds_->dir(); }

  void RunInput(const uint8_t* data, size_t size) {
    Reader r(data, size);
    for (int steps = 0; steps < 24 && !r.empty(); steps++) Step(r);
  }

 private:
  void ResetKnowledge() {
    sessions_.clear();
    states_.clear();
    devices_.clear();
    fhs_.clear();
    fhs_.push_back(Bytes::Copy(mds_->mds().RootFh()));
    for (auto& c : clients_) {
      c.id = c.confirmed = 0;
      c.create_seq = 0;
    }
  }

  // ---------------------------------------------------------------- actions
  void Step(Reader& r) {
    uint8_t a = r.u8();
    switch (a % 16) {
      case 0: return DoExchangeId(r);
      case 1: return DoCreateSession(r);
      case 2: return DoDestroySession(r);
      case 3: return DoRetransmit(r);
      case 4:
        if (r.u8() == 0xa5) return DoRestart();
        return DoAudit(r);
      default: return DoSequenceCompound(r);
    }
  }

  void DoRestart() {
    if (g_trace) fprintf(stderr, "== RESTART\n");
    mds_->Restart();
    ResetKnowledge();
  }

  // Makes sure some client has a session (so that short inputs still reach the ops).
  int EnsureSession(int c) {
    for (size_t i = 0; i < sessions_.size(); i++)
      if (sessions_[i].live && sessions_[i].known && sessions_[i].client == c) return int(i);
    Reader none(nullptr, 0);
    DoExchangeIdFor(c, false);
    DoCreateSessionFor(c, none, false);
    for (size_t i = 0; i < sessions_.size(); i++)
      if (sessions_[i].live && sessions_[i].known && sessions_[i].client == c) return int(i);
    return -1;
  }

  // maybe_replay: the slot may take this as a retransmission (we do not know its sequence
  // id), and answer with an earlier compound's cached reply.
  Reply Send(const COMPOUND4args& a, const rpc::Cred& cred, std::string* args_out = nullptr,
             bool maybe_replay = false) {
    xdr::Encoder e;
    xdr_encode(e, a);
    std::string bytes = e.Flatten();
    Reply rep = mds_->CallBytes(bytes, cred);
    CheckGeneric(a, rep, maybe_replay);
    if (args_out) *args_out = std::move(bytes);
    return rep;
  }

  void DoExchangeId(Reader& r) {
    int c = int(r.below(kClients));
    bool reboot = r.u8() % 4 == 0;
    DoExchangeIdFor(c, reboot);
  }
  void DoExchangeIdFor(int c, bool reboot) {
    ClientRec& cl = clients_[c];
    if (reboot) cl.verf[7]++;
    COMPOUND4args a;
    a.minorversion = 1;
    a.argarray.push_back(ExchangeId(cl.owner, cl.verf));
    a.argarray.back().opexchange_id->eia_flags = EXCHGID4_FLAG_USE_PNFS_MDS;
    Reply rep = Send(a, cl.cred);
    if (rep.res.status != NFS4_OK) return;
    const auto& ok = rep.res.resarray[0].opexchange_id->eir_resok4;
    if (ok.eir_clientid != cl.id) {
      cl.id = ok.eir_clientid;
      cl.create_seq = ok.eir_sequenceid;
    }
  }

  void DoCreateSession(Reader& r) { DoCreateSessionFor(int(r.below(kClients)), r, true); }
  void DoCreateSessionFor(int c, Reader& r, bool fuzz) {
    ClientRec& cl = clients_[c];
    if (!cl.id) return;
    uint8_t how = fuzz ? r.u8() : 0;
    uint32_t seq = cl.create_seq;
    bool wrong = how % 8 == 7;
    if (wrong) seq += (how & 0x80) ? 2 : uint32_t(-1);
    uint32_t slots = 1 + (fuzz ? r.below(4) : 3);
    uint32_t maxops = (how & 0x20) ? 4 : 16;  // a compound has at most 25 ops
    const channel_attrs4 fore{0, 1u << 20, 1u << 20, (how & 0x40) ? 4096u : 64u << 10, maxops, slots, {}};
    const channel_attrs4 back{0, 4096, 4096, 0, 2, 1, {}};
    uint32_t flags = (how & 0x10) ? CREATE_SESSION4_FLAG_PERSIST : 0;
    COMPOUND4args a;
    a.minorversion = 1;
    a.argarray.push_back(CreateSession(cl.id, seq, flags, fore, back));
    Reply rep = Send(a, cl.cred);
    nfsstat4 st = rep.res.status;
    if (st != NFS4_OK) return;
    seen_sessions_.insert(rep.res.resarray[0].opcreate_session->csr_resok4.csr_sessionid);
    if (wrong && seq != cl.create_seq - 1) Fail("CREATE_SESSION with a misordered csa_sequence succeeded");
    if (seq != cl.create_seq) return;  // a replay of the last one
    cl.create_seq++;
    const auto& ok = rep.res.resarray[0].opcreate_session->csr_resok4;
    seen_sessions_.insert(ok.csr_sessionid);
    if (cl.confirmed && cl.confirmed != cl.id) {
      // The client rebooted (§18.35.4 case 5): its earlier incarnation and its state are gone.
      for (auto& s : sessions_)
        if (s.clientid == cl.confirmed) s.live = false;
      for (auto& s : states_)
        if (s.clientid == cl.confirmed) s.live = false;
    }
    cl.confirmed = cl.id;
    if (sessions_.size() >= kMaxSessions) sessions_.erase(sessions_.begin());
    SessRec s;
    s.id = ok.csr_sessionid;
    s.client = c;
    s.clientid = cl.id;
    s.nslots = std::max<uint32_t>(1, ok.csr_fore_chan_attrs.ca_maxrequests);
    s.slots.resize(s.nslots);
    sessions_.push_back(std::move(s));
    // RECLAIM_COMPLETE, so that it may open (§18.51): as the first request on slot 0.
    SessRec& ns = sessions_.back();
    std::vector<nfs_argop4> ops;
    ops.push_back(ReclaimComplete());
    RunSequence(sessions_.size() - 1, 0, ns.slots[0].seqid + 1, false, std::move(ops), 1);
  }

  void DoDestroySession(Reader& r) {
    if (sessions_.empty()) return;
    size_t i = r.below(uint32_t(sessions_.size()));
    SessRec& s = sessions_[i];
    COMPOUND4args a;
    a.minorversion = 1;
    a.argarray.push_back(DestroySession(s.id));
    Reply rep = Send(a, clients_[s.client].cred);
    nfsstat4 st = rep.res.status;
    if (s.known) {
      if (s.live) {
        // Another client's credential may not destroy it; otherwise it must go.
        if (st == NFS4_OK) s.live = false;
        else CHECK_INV(st == NFS4ERR_PERM || st == NFS4ERR_DELAY || st == NFS4ERR_BADSESSION,
                       "DESTROY_SESSION of a live session: %s", nfsstat4_name(st));
        if (st == NFS4ERR_BADSESSION) s.known = false;
      } else {
        CHECK_INV(st == NFS4ERR_BADSESSION, "DESTROY_SESSION of a destroyed session: %s",
                  nfsstat4_name(st));
      }
    }
  }

  // Sends the exact bytes of a slot's last request again (§2.10.6.1.3).
  void DoRetransmit(Reader& r) {
    if (sessions_.empty()) return;
    SessRec& s = sessions_[r.below(uint32_t(sessions_.size()))];
    SlotRec& sl = s.slots[r.below(s.nslots)];
    if (!sl.have_last) return;
    Reply rep = mds_->CallBytes(sl.last_args, clients_[s.client].cred);
    CHECK_INV(rep.decoded, "retransmission reply does not decode");
    if (!s.live || !s.known) return;
    if (sl.last_cached) {
      g_counts.cached_replays++;
      if (rep.bytes != sl.last_reply) {
        Fail("retransmission of a cached request got different bytes",
             std::to_string(rep.bytes.size()) + " vs " + std::to_string(sl.last_reply.size()) +
                 " bytes, status " + nfsstat4_name(rep.res.status));
      }
    } else {
      g_counts.uncached_replays++;
      CHECK_INV(rep.res.status == NFS4ERR_RETRY_UNCACHED_REP,
                "retransmission of an uncached request: %s", nfsstat4_name(rep.res.status));
    }
  }

  // TEST_STATEID of every stateid of a client whose fate we know.
  void DoAudit(Reader& r) {
    int c = int(r.below(kClients));
    int si = EnsureSession(c);
    if (si < 0) return;
    Audit(size_t(si));
  }
  void Audit(size_t si) {
    SessRec& s = sessions_[si];
    std::vector<size_t> which;
    for (size_t i = 0; i < states_.size() && which.size() < 16; i++) {
      const StateRec& st = states_[i];
      if (st.strict && st.clientid == s.clientid && st.kind != SKind::kLayout) which.push_back(i);
    }
    if (which.empty()) return;
    auto op = Op(OP_TEST_STATEID);
    op.optest_stateid = std::make_unique<TEST_STATEID4args>();
    for (size_t i : which) op.optest_stateid->ts_stateids.push_back(states_[i].sid);
    std::vector<nfs_argop4> ops;
    ops.push_back(std::move(op));
    Reply rep = RunSequence(si, 0, s.slots[0].seqid + 1, false, std::move(ops), 1);
    if (!rep.decoded || rep.res.status != NFS4_OK || rep.res.resarray.size() != 2) return;
    const auto& codes = rep.res.resarray[1].optest_stateid->tsr_resok4.tsr_status_codes;
    CHECK_INV(codes.size() == which.size(), "TEST_STATEID: %zu codes for %zu stateids",
              codes.size(), which.size());
    for (size_t k = 0; k < which.size(); k++) {
      const StateRec& st = states_[which[k]];
      nfsstat4 got = codes[k];
      if (st.live) {
        g_counts.live_stateids++;
        CHECK_INV(got == NFS4_OK, "TEST_STATEID of a live %s stateid (seqid %u): %s",
                  st.kind == SKind::kOpen ? "open" : "lock", st.sid.seqid, nfsstat4_name(got));
      } else {
        g_counts.dead_stateids++;
        CHECK_INV(got == NFS4ERR_BAD_STATEID, "TEST_STATEID of a closed/freed %s stateid: %s",
                  st.kind == SKind::kOpen ? "open" : "lock", nfsstat4_name(got));
      }
    }
  }

  // ---------------------------------------------------------------- op builders
  std::string Name(Reader& r) {
    static const char* kNames[] = {"a", "b", "c", "d", "dir", "sub", "x", "f.txt"};
    uint8_t b = r.u8();
    if (b < 240) return kNames[b % 8];
    switch (b % 6) {
      case 0: return "";
      case 1: return ".";
      case 2: return "..";
      case 3: return "a/b";
      case 4: return std::string(300, 'n');
      default: return std::string("z\0z", 3);
    }
  }
  std::string Owner(Reader& r) {
    static const char* kOwners[] = {"oo1", "oo2", "oo3"};
    return kOwners[r.below(3)];
  }
  Bytes Fh(Reader& r) {
    uint8_t b = r.u8();
    Bytes fh = fhs_[b % fhs_.size()];
    if (b >= 250 && fh.size > 0) {  // corrupted
      std::string s = Str(fh);
      s[r.below(uint32_t(s.size()))] ^= uint8_t(1 + r.u8() % 255);
      return Bytes::Copy(s);
    }
    if (b == 249) return Bytes::Copy(std::string(8, 'q'));
    return fh;
  }
  // A stateid: one the server granted (of a kind, if given), a special one, or corrupted.
  stateid4 Sid(Reader& r, int kind = -1) {
    uint8_t b = r.u8();
    if (b >= 240) {
      switch (b % 5) {
        case 0: return AnonymousStateid();
        case 1: return ReadBypassStateid();
        case 2: return CurrentStateid();
        case 3: return InvalidStateid();
        default: {
          stateid4 s{};
          s.seqid = r.u8();
          for (auto& x : s.other) x = r.u8();
          return s;
        }
      }
    }
    // Mostly the stateids of the client the compound runs as; sometimes anyone's.
    std::vector<size_t> pick;
    for (int pass = (b & 0x40) ? 1 : 0; pass < 2 && pick.empty(); pass++)
      for (size_t i = 0; i < states_.size(); i++)
        if ((kind < 0 || int(states_[i].kind) == kind) && (pass == 1 || states_[i].clientid == cur_client_))
          pick.push_back(i);
    if (pick.empty()) return CurrentStateid();
    stateid4 s = states_[pick[b % pick.size()]].sid;
    uint8_t m = r.u8();
    if (m >= 248) s.seqid += (m & 1) ? 1 : uint32_t(-1);  // wrong seqid
    else if (m >= 244) s.seqid = 0;                          // "the current seqid" (§8.2.2)
    else if (m == 243) s.other[r.below(NFS4_OTHER_SIZE)] ^= 0x40;
    return s;
  }
  static fattr4 Attrs(Reader& r) {
    fattr4 f;
    xdr::Encoder e;
    uint8_t which = r.u8();
    if (which & 1) {  // size (word 0)
      f.attrmask.resize(1);
      f.attrmask[0] |= 1u << FATTR4_SIZE;
      e.u64(r.below(3) == 0 ? r.u64() % (1u << 20) : r.below(8) * 1000);
    }
    if (which & 2) {  // mode (word 1)
      f.attrmask.resize(2);
      f.attrmask[1] |= 1u << (FATTR4_MODE - 32);
      static const uint32_t kModes[] = {0644, 0600, 0755, 01777, 0, 0444, 04755, 0777};
      e.u32(kModes[r.below(8)]);
    }
    if (which & 4) {  // owner (word 1)
      f.attrmask.resize(2);
      f.attrmask[1] |= 1u << (FATTR4_OWNER - 32);
      e.string(r.below(2) ? "1000" : "root");
    }
    if (which & 8) {  // garbage: a mask the values do not match
      f.attrmask.resize(3);
      f.attrmask[2] |= 1u << r.below(32);
    }
    f.attr_vals = Bytes::Copy(e.Flatten());
    return f;
  }
  static uint32_t Access(Reader& r) {
    static const uint32_t k[] = {OPEN4_SHARE_ACCESS_READ, OPEN4_SHARE_ACCESS_WRITE,
                                 OPEN4_SHARE_ACCESS_BOTH, OPEN4_SHARE_ACCESS_BOTH, 0};
    return k[r.below(5)];
  }

  // Appends one or a few ops (a "structured operation") to `ops`.
  void AddOp(Reader& r, std::vector<nfs_argop4>& ops) {
    uint8_t k = r.u8();
    switch (k % 40) {
      case 0: ops.push_back(PutRootFh()); return;
      case 1: case 2: ops.push_back(PutFh(Fh(r))); return;
      case 3: ops.push_back(Lookup(Name(r))); return;
      case 4: ops.push_back(GetFh()); return;
      case 5: ops.push_back(Getattr({FATTR4_TYPE, FATTR4_SIZE, FATTR4_FILEID, FATTR4_NUMLINKS, FATTR4_MODE})); return;
      case 6: ops.push_back(SaveFh()); return;
      case 7: ops.push_back(RestoreFh()); return;
      case 8: case 9: case 10: {  // OPEN by name in the current directory
        std::string owner = Owner(r), name = Name(r);
        uint8_t how = r.u8();
        auto op = Open(owner, name, Access(r), how % 3 != 0, how & 8, (how >> 4) % 4);
        if (how % 3 != 0 && (how & 0x40)) {  // EXCLUSIVE4_1 (§18.16.3)
          op.opopen->openhow.how.mode = EXCLUSIVE4_1;
          op.opopen->openhow.how.ch_createboth.cva_verf = {uint8_t(how & 3), 7, 7, 7, 7, 7, 7, 7};
        } else if (how % 3 != 0 && (how & 0x20)) {
          op.opopen->openhow.how.mode = UNCHECKED4;
          op.opopen->openhow.how.createattrs = Attrs(r);
        }
        ops.push_back(PutRootFh());
        if (how & 0x80) ops.back() = PutFh(Fh(r));
        ops.push_back(std::move(op));
        ops.push_back(GetFh());
        return;
      }
      case 11: ops.push_back(OpenFh(Owner(r), Access(r))); return;
      case 12: case 13: ops.push_back(Close(Sid(r, int(SKind::kOpen)))); return;
      case 14: {
        auto op = Op(OP_OPEN_DOWNGRADE);
        op.opopen_downgrade = std::make_unique<OPEN_DOWNGRADE4args>();
        op.opopen_downgrade->open_stateid = Sid(r, int(SKind::kOpen));
        op.opopen_downgrade->share_access = Access(r);
        op.opopen_downgrade->share_deny = r.below(4);
        ops.push_back(std::move(op));
        return;
      }
      case 15: case 16: {  // LOCK: a new lock owner from an open, or an existing lock state
        bool write = r.u8() & 1;
        uint64_t off = r.below(4) * 100, len = r.below(4) == 0 ? UINT64_MAX : 1 + r.below(200);
        if (r.u8() & 1) {
          stateid4 open = Sid(r, int(SKind::kOpen));
          std::string lo = "lo" + Owner(r);
          ops.push_back(Lock(open, lo, write, off, len));
        } else {
          auto op = Lock(Sid(r, int(SKind::kLock)), "", write, off, len);
          op.oplock->locker.new_lock_owner = false;
          op.oplock->locker.lock_owner.lock_stateid = op.oplock->locker.open_owner.open_stateid;
          ops.push_back(std::move(op));
        }
        return;
      }
      case 17: {
        stateid4 s = Sid(r, int(SKind::kLock));
        uint64_t off = r.below(4) * 100;
        uint64_t len = r.below(3) == 0 ? UINT64_MAX : 1 + r.below(300);
        ops.push_back(Locku(s, off, len));
        return;
      }
      case 18: {
        std::string lo = "lo" + Owner(r);
        bool write = r.u8() & 1;
        ops.push_back(Lockt(lo, write, r.below(4) * 100, 50));
        return;
      }
      case 19: {
        stateid4 s = Sid(r);
        uint64_t off = r.below(4) * 1000;
        ops.push_back(Read(s, off, 1 + r.below(5000)));
        return;
      }
      case 20: case 21: {
        stateid4 s = Sid(r);
        uint64_t off = r.below(4) * 1000;
        std::string data(1 + r.below(3000), 'w');
        ops.push_back(Write(s, off, data, r.u8() & 1 ? FILE_SYNC4 : UNSTABLE4));
        return;
      }
      case 22: ops.push_back(Commit()); return;
      case 23: {
        auto op = Op(OP_SETATTR);
        op.opsetattr = std::make_unique<SETATTR4args>();
        op.opsetattr->stateid = Sid(r);
        op.opsetattr->obj_attributes = Attrs(r);
        ops.push_back(std::move(op));
        return;
      }
      case 24: {
        bool dir = r.u8() & 1;
        std::string name = Name(r);
        ops.push_back(dir ? Mkdir(name, r.u8() & 1 ? 0755 : 01777) : Symlink(name, "target"));
        return;
      }
      case 25: ops.push_back(Remove(Name(r))); return;
      case 26: {  // RENAME within or across directories: SAVEFH the source first
        ops.push_back(PutFh(Fh(r)));
        ops.push_back(SaveFh());
        ops.push_back(PutFh(Fh(r)));
        std::string from = Name(r);
        ops.push_back(Rename(from, Name(r)));
        return;
      }
      case 27: {  // LINK: the file saved, the directory current
        ops.push_back(PutFh(Fh(r)));
        ops.push_back(SaveFh());
        ops.push_back(PutFh(Fh(r)));
        ops.push_back(Link(Name(r)));
        return;
      }
      case 28: {
        uint64_t cookie = r.below(4) == 0 ? r.u64() : 0;
        ops.push_back(Readdir(cookie, 64 + r.below(4) * 512, {(1u << FATTR4_TYPE) | (1u << FATTR4_FILEID)}));
        return;
      }
      case 29: case 30: {
        auto op = Op(OP_LAYOUTGET);
        op.oplayoutget = std::make_unique<LAYOUTGET4args>();
        auto& g = *op.oplayoutget;
        g.loga_layout_type = r.below(8) == 0 ? LAYOUT4_NFSV4_1_FILES : LAYOUT4_FLEX_FILES;
        g.loga_iomode = r.u8() & 1 ? LAYOUTIOMODE4_RW : LAYOUTIOMODE4_READ;
        g.loga_offset = r.below(3) * 4096;
        g.loga_length = r.below(4) == 0 ? 4096 : UINT64_MAX;
        g.loga_minlength = r.below(2) * 4096;
        g.loga_stateid = Sid(r);
        g.loga_maxcount = r.below(8) == 0 ? 16 : 4096;
        ops.push_back(std::move(op));
        return;
      }
      case 31: {
        auto op = Op(OP_LAYOUTRETURN);
        op.oplayoutreturn = std::make_unique<LAYOUTRETURN4args>();
        auto& lr = *op.oplayoutreturn;
        lr.lora_layout_type = LAYOUT4_FLEX_FILES;
        lr.lora_iomode = r.below(3) == 0 ? LAYOUTIOMODE4_ANY : LAYOUTIOMODE4_RW;
        uint8_t t = r.u8() % 4;
        lr.lora_layoutreturn.lr_returntype =
            t == 0 ? LAYOUTRETURN4_ALL : t == 1 ? LAYOUTRETURN4_FSID : LAYOUTRETURN4_FILE;
        lr.lora_layoutreturn.lr_layout.lrf_offset = 0;
        lr.lora_layoutreturn.lr_layout.lrf_length = UINT64_MAX;
        lr.lora_layoutreturn.lr_layout.lrf_stateid = Sid(r, int(SKind::kLayout));
        if (r.below(4) == 0) lr.lora_layoutreturn.lr_layout.lrf_body = Bytes::Copy(std::string(8, '\0'));
        ops.push_back(std::move(op));
        return;
      }
      case 32: {
        auto op = Op(OP_LAYOUTCOMMIT);
        op.oplayoutcommit = std::make_unique<LAYOUTCOMMIT4args>();
        auto& lc = *op.oplayoutcommit;
        lc.loca_offset = 0;
        lc.loca_length = UINT64_MAX;
        lc.loca_stateid = Sid(r, int(SKind::kLayout));
        lc.loca_last_write_offset.no_newoffset = r.u8() & 1;
        lc.loca_last_write_offset.no_offset = r.below(4) == 0 ? r.u64() : r.below(8) * 1000;
        lc.loca_time_modify.nt_timechanged = r.u8() & 1;
        lc.loca_time_modify.nt_time.seconds = 1700000000;
        lc.loca_layoutupdate.lou_type = LAYOUT4_FLEX_FILES;
        ops.push_back(std::move(op));
        return;
      }
      case 33: {
        auto op = Op(OP_GETDEVICEINFO);
        op.opgetdeviceinfo = std::make_unique<GETDEVICEINFO4args>();
        auto& g = *op.opgetdeviceinfo;
        uint8_t b = r.u8();
        if (!devices_.empty() && b < 200) g.gdia_device_id = devices_[b % devices_.size()];
        else g.gdia_device_id[b % NFS4_DEVICEID4_SIZE] = b;
        g.gdia_layout_type = r.below(8) == 0 ? LAYOUT4_NFSV4_1_FILES : LAYOUT4_FLEX_FILES;
        g.gdia_maxcount = r.below(6) == 0 ? 8 : 4096;
        if (r.u8() & 1) g.gdia_notify_types = {1u << NOTIFY_DEVICEID4_CHANGE};
        ops.push_back(std::move(op));
        return;
      }
      case 34: {
        auto op = Op(OP_TEST_STATEID);
        op.optest_stateid = std::make_unique<TEST_STATEID4args>();
        for (uint32_t n = r.below(4); n > 0; n--) op.optest_stateid->ts_stateids.push_back(Sid(r));
        ops.push_back(std::move(op));
        return;
      }
      case 35: {
        auto op = Op(OP_FREE_STATEID);
        op.opfree_stateid = std::make_unique<FREE_STATEID4args>();
        op.opfree_stateid->fsa_stateid = Sid(r);
        ops.push_back(std::move(op));
        return;
      }
      case 36: {  // session ops where they do not belong, and RECLAIM_COMPLETE again
        uint8_t w = r.u8() % 5;
        if (w == 0) ops.push_back(ReclaimComplete(r.u8() & 1));
        else if (w == 1 && !sessions_.empty()) ops.push_back(DestroySession(sessions_[r.below(uint32_t(sessions_.size()))].id));
        else if (w == 2) ops.push_back(ExchangeId("fuzz-client-0", clients_[0].verf));
        else if (w == 3) ops.push_back(Sequence(sessionid4{}, 1));
        else ops.push_back(CreateSession(clients_[r.below(kClients)].id, 1, 0,
                                         channel_attrs4{0, 4096, 4096, 0, 4, 1, {}},
                                         channel_attrs4{0, 4096, 4096, 0, 2, 1, {}}));
        return;
      }
      case 37: ops.push_back(r.u8() & 1 ? Lookupp() : SecinfoParent()); return;
      case 38: {
        bool seek = r.u8() & 1;
        stateid4 s = Sid(r);
        uint64_t off = r.below(4) * 1000;
        ops.push_back(seek ? Seek(s, off) : ReadPlus(s, off, 1 + r.below(3000)));
        return;
      }
      default: {
        if (r.u8() & 1) {
          stateid4 s = Sid(r);
          uint64_t off = r.below(4) * 1000;
          ops.push_back(Allocate(s, off, 1 + r.below(5000)));
        } else {
          ops.push_back(AccessOp(0x3f));
        }
        return;
      }
    }
  }

  // A SEQUENCE compound on a session, a slot and a sequence id the input picks.
  void DoSequenceCompound(Reader& r) {
    uint8_t b = r.u8();
    int si;
    if (sessions_.empty() || b >= 224) si = EnsureSession(int(b % kClients));
    else si = int(b % sessions_.size());
    if (si < 0) return;
    SessRec& s = sessions_[size_t(si)];
    uint8_t h = r.u8();
    uint32_t slot = (h & 3) % (s.nslots + (h >= 252 ? 1 : 0));  // sometimes one past the end
    if (h >= 252) slot = s.nslots;
    uint32_t next = slot < s.nslots ? s.slots[slot].seqid + 1 : 1;
    uint8_t w = r.u8();
    uint32_t seq = next;
    if (w >= 248) seq = next + 1 + (w & 3);
    else if (w >= 244) seq = next - 2;  // neither the last nor the next
    bool cachethis = (h & 4) == 0;
    uint32_t minor = (h & 8) ? 1 : 2;
    cur_client_ = s.clientid;
    std::vector<nfs_argop4> ops;
    int nops = 1 + int(r.below(6));
    for (int i = 0; i < nops && !r.empty(); i++) AddOp(r, ops);
    if (ops.empty()) ops.push_back(PutRootFh());
    bool corrupt_session = r.below(64) == 63;
    RunSequence(size_t(si), slot, seq, cachethis, std::move(ops), minor, corrupt_session);
  }

  Reply RunSequence(size_t si, uint32_t slot, uint32_t seq, bool cachethis,
                    std::vector<nfs_argop4> ops, uint32_t minor, bool corrupt_session = false) {
    SessRec& s = sessions_[si];
    COMPOUND4args a;
    a.minorversion = minor;
    auto sq = Sequence(s.id, seq, cachethis);
    sq.opsequence->sa_slotid = slot;
    sq.opsequence->sa_highest_slotid = s.nslots - 1;
    if (corrupt_session) {  // an id that names no session we ever saw
      for (int k = 0; k < 64 && seen_sessions_.count(sq.opsequence->sa_sessionid); k++)
        sq.opsequence->sa_sessionid[15 - k % 16] ^= uint8_t(0x5a + k);
    }
    a.argarray.push_back(std::move(sq));
    for (auto& o : ops) a.argarray.push_back(std::move(o));
    std::string args;
    Reply rep = Send(a, clients_[s.client].cred, &args, !s.known && !corrupt_session);
    const nfs_resop4& r0 = rep.res.resarray.at(0);
    CHECK_INV(r0.resop == OP_SEQUENCE && r0.opsequence, "first result is not SEQUENCE");
    // A replayed reply is the original's; its SEQUENCE result then says what it said.
    nfsstat4 sst = r0.opsequence->sr_status;
    if (corrupt_session) return rep;
    if (!s.known) {
      // Its slot may have answered from its cache (we do not know the sequence id). When
      // the results are this request's, what its session ops did still matters; the
      // client's state is no longer predicted.
      if (sst == NFS4_OK && ResultsMatch(a, rep)) {
        Learn(a, rep, s.clientid);
        for (auto& st : states_)
          if (st.clientid == s.clientid) st.strict = false;
      }
      return rep;
    }
    if (!s.live) {
      g_counts.dead_sessions++;
      CHECK_INV(sst == NFS4ERR_BADSESSION, "SEQUENCE on a destroyed session: %s", nfsstat4_name(sst));
      return rep;
    }
    if (slot >= s.nslots) {
      g_counts.bad_slots++;
      CHECK_INV(sst == NFS4ERR_BADSLOT, "SEQUENCE on slot %u of %u: %s", slot, s.nslots,
                nfsstat4_name(sst));
      return rep;
    }
    SlotRec& sl = s.slots[slot];
    if (seq == sl.seqid + 1) {
      g_counts.next_seqid++;
      CHECK_INV(sst != NFS4ERR_SEQ_MISORDERED && sst != NFS4ERR_BADSESSION &&
                    sst != NFS4ERR_BADSLOT && sst != NFS4ERR_RETRY_UNCACHED_REP,
                "SEQUENCE with the next sequence id %u: %s", seq, nfsstat4_name(sst));
      if (sst == NFS4_OK) {
        sl.seqid = seq;
        sl.have_last = true;
        sl.last_cached = cachethis;
        sl.last_args = args;
        sl.last_reply = rep.bytes;
        Learn(a, rep, s.clientid);
        // After a change of open or lock state, check every stateid of the client.
        bool changed = false;
        for (const auto& o : a.argarray)
          changed |= o.argop == OP_OPEN || o.argop == OP_CLOSE || o.argop == OP_LOCK ||
                     o.argop == OP_LOCKU || o.argop == OP_OPEN_DOWNGRADE || o.argop == OP_FREE_STATEID;
        if (changed) Audit(si);
      }
    } else if (seq == sl.seqid) {
      // Not generated here (DoRetransmit resends exact bytes).
    } else {
      g_counts.misordered++;
      // The request-level limits may be checked before the slot (§18.46.3 orders nothing).
      CHECK_INV(sst == NFS4ERR_SEQ_MISORDERED || sst == NFS4ERR_TOO_MANY_OPS ||
                    sst == NFS4ERR_REQ_TOO_BIG,
                "SEQUENCE seqid %u on a slot at %u: %s", seq, sl.seqid, nfsstat4_name(sst));
    }
    return rep;
  }

  // ---------------------------------------------------------------- checks and learning
  // Whether the results are this request's (not a cached reply of another).
  static bool ResultsMatch(const COMPOUND4args& a, const Reply& rep) {
    if (!rep.decoded || rep.res.resarray.size() > a.argarray.size()) return false;
    for (size_t i = 0; i < rep.res.resarray.size(); i++)
      if (rep.res.resarray[i].resop != a.argarray[i].argop) return false;
    return true;
  }
  void CheckGeneric(const COMPOUND4args& a, const Reply& rep, bool maybe_replay) {
    g_counts.compounds++;
    CHECK_INV(rep.accept == rpc::SUCCESS, "accept_stat %d", int(rep.accept));
    CHECK_INV(rep.decoded, "reply of %zu bytes does not decode as COMPOUND4res", rep.bytes.size());
    const COMPOUND4res& res = rep.res;
    if (g_trace) {
      fprintf(stderr, "  ->");
      for (const auto& o : a.argarray) fprintf(stderr, " %s", OpName(o.argop));
      fprintf(stderr, "\n  <- %s:", nfsstat4_name(res.status));
      for (const auto& o : res.resarray) fprintf(stderr, " %s=%s", OpName(o.resop), nfsstat4_name(OpStatus(o)));
      fprintf(stderr, "\n");
    }
    // A cached reply (a retransmission) is an earlier compound's: only the rules that do not
    // depend on the request apply to it.
    if (!maybe_replay) {
      CHECK_INV(res.resarray.size() <= a.argarray.size(), "%zu results for %zu ops",
                res.resarray.size(), a.argarray.size());
      // §15.2: each result is of the op asked (an op number not known, or of 4.2 in a 4.1
      // compound, answers OP_ILLEGAL).
      for (size_t i = 0; i < res.resarray.size(); i++)
        CHECK_INV(res.resarray[i].resop == a.argarray[i].argop || res.resarray[i].resop == OP_ILLEGAL,
                  "result %zu is of %s for %s", i, OpName(res.resarray[i].resop),
                  OpName(a.argarray[i].argop));
    }
    if (res.resarray.empty()) {
      CHECK_INV(res.status != NFS4_OK, "no results and NFS4_OK");
      return;
    }
    for (size_t i = 0; i + 1 < res.resarray.size(); i++)
      CHECK_INV(OpStatus(res.resarray[i]) == NFS4_OK, "result %zu (%s) is %s but not last", i,
                OpName(res.resarray[i].resop), nfsstat4_name(OpStatus(res.resarray[i])));
    nfsstat4 last = OpStatus(res.resarray.back());
    CHECK_INV(res.status == last, "compound status %s, last op (%s) %s", nfsstat4_name(res.status),
              OpName(res.resarray.back().resop), nfsstat4_name(last));
    if (res.status == NFS4_OK && !maybe_replay)
      CHECK_INV(res.resarray.size() == a.argarray.size(), "OK with %zu of %zu results",
                res.resarray.size(), a.argarray.size());
  }

  void AddState(const stateid4& sid, SKind kind, clientid4 client, const Other* parent, int fh) {
    for (auto& s : states_) {
      if (s.sid.other == sid.other) {
        if (s.live && sid.seqid > s.sid.seqid) s.sid.seqid = sid.seqid;
        if (!s.live) s.strict = false;  // an "other" reused: cannot happen; stop predicting
        if (fh >= 0) s.fh = fh;
        return;
      }
    }
    if (states_.size() >= kMaxStates) states_.erase(states_.begin());
    StateRec s;
    s.sid = sid;
    s.kind = kind;
    s.clientid = client;
    if (parent) s.parent = *parent;
    s.fh = fh;
    states_.push_back(s);
  }
  // Whether clientids a and b belong to the same owner (incarnations of one client).
  bool OwnerOf(clientid4 a, clientid4 b) const {
    for (const auto& cl : clients_)
      if ((cl.id == a || cl.confirmed == a) && (cl.id == b || cl.confirmed == b)) return true;
    return false;
  }
  StateRec* FindState(const Other& o) {
    for (auto& s : states_)
      if (s.sid.other == o) return &s;
    return nullptr;
  }
  void AddFh(const Bytes& fh) {
    for (const auto& f : fhs_)
      if (Str(f) == Str(fh)) return;
    if (fhs_.size() >= kMaxFhs) fhs_.erase(fhs_.begin() + 1);  // keep the root
    fhs_.push_back(fh);
  }

  // Updates what we know from a compound that passed SEQUENCE (results in order). The
  // current and saved stateids (§16.2.3.1.2) are followed as the server must: OPEN, LOCK,
  // LOCKU, OPEN_DOWNGRADE, CLOSE and LAYOUTGET set the current stateid, an op that sets the
  // current filehandle clears it, SAVEFH/RESTOREFH save and restore it with the filehandle.
  void Learn(const COMPOUND4args& a, const Reply& rep, clientid4 client) {
    const auto& res = rep.res.resarray;
    bool have_cur = false, have_saved = false;
    stateid4 cur{}, saved{};
    // The stateid an argument names (the current one substituted); false if unknown.
    auto resolve = [&](const stateid4& s, stateid4* out) {
      if (!IsCurrentStateid(s)) {
        *out = s;
        return true;
      }
      if (!have_cur) return false;
      *out = cur;
      return true;
    };
    auto unpredictable = [&] {
      for (auto& st : states_)
        if (st.clientid == client) st.strict = false;
    };
    for (size_t i = 1; i < res.size(); i++) {
      const nfs_resop4& r = res[i];
      const nfs_argop4& q = a.argarray[i];
      if (OpStatus(r) != NFS4_OK) break;
      switch (r.resop) {
        case OP_PUTFH: case OP_PUTROOTFH: case OP_PUTPUBFH: case OP_LOOKUP: case OP_LOOKUPP:
        case OP_CREATE:
          have_cur = false;
          break;
        case OP_SAVEFH:
          saved = cur;
          have_saved = have_cur;
          break;
        case OP_RESTOREFH:
          cur = saved;
          have_cur = have_saved;
          break;
        case OP_GETFH: AddFh(r.opgetfh->resok4.object); break;
        case OP_OPEN:
          AddState(r.opopen->resok4.stateid, SKind::kOpen, client, nullptr, -1);
          cur = r.opopen->resok4.stateid;
          have_cur = true;
          break;
        case OP_OPEN_DOWNGRADE:
          AddState(r.opopen_downgrade->resok4.open_stateid, SKind::kOpen, client, nullptr, -1);
          cur = r.opopen_downgrade->resok4.open_stateid;
          have_cur = true;
          break;
        case OP_CLOSE: {
          stateid4 s;
          if (!resolve(q.opclose->open_stateid, &s)) {
            unpredictable();
          } else if (StateRec* st = FindState(s.other)) {
            st->live = false;
            for (auto& l : states_)
              if (l.kind == SKind::kLock && l.parent == s.other) l.live = false;
          }
          cur = r.opclose->open_stateid;
          have_cur = true;
          break;
        }
        case OP_LOCK: {
          const LOCK4args& la = *q.oplock;
          Other parent{};
          stateid4 s;
          if (la.locker.new_lock_owner) {
            if (resolve(la.locker.open_owner.open_stateid, &s)) parent = s.other;
          } else if (resolve(la.locker.lock_owner.lock_stateid, &s)) {
            if (StateRec* ls = FindState(s.other)) parent = ls->parent;
          }
          AddState(r.oplock->resok4.lock_stateid, SKind::kLock, client, &parent, -1);
          if (parent == Other{}) {  // its open is not one we know: its fate is not predictable
            if (StateRec* ls = FindState(r.oplock->resok4.lock_stateid.other)) ls->strict = false;
          }
          cur = r.oplock->resok4.lock_stateid;
          have_cur = true;
          break;
        }
        case OP_LOCKU:
          AddState(r.oplocku->lock_stateid, SKind::kLock, client, nullptr, -1);
          cur = r.oplocku->lock_stateid;
          have_cur = true;
          break;
        case OP_FREE_STATEID: {
          stateid4 s;
          if (!resolve(q.opfree_stateid->fsa_stateid, &s)) unpredictable();
          else if (StateRec* st = FindState(s.other)) st->live = false;
          break;
        }
        case OP_LAYOUTGET: {
          const auto& ok = r.oplayoutget->logr_resok4;
          AddState(ok.logr_stateid, SKind::kLayout, client, nullptr, -1);
          cur = ok.logr_stateid;
          have_cur = true;
          g_counts.layouts++;
          for (const auto& l : ok.logr_layout) {
            if (l.lo_content.loc_type != LAYOUT4_FLEX_FILES) continue;
            xdr::Decoder d(l.lo_content.loc_body.data, l.lo_content.loc_body.size);
            ff_layout4 ff;
            CHECK_INV(xdr_decode(d, ff), "LAYOUTGET's ff_layout4 does not decode");
            for (const auto& m : ff.ffl_mirrors)
              for (const auto& ds : m.ffm_data_servers) {
                bool have = false;
                for (const auto& dv : devices_) have |= dv == ds.ffds_deviceid;
                if (!have && devices_.size() < 8) devices_.push_back(ds.ffds_deviceid);
              }
          }
          break;
        }
        case OP_LAYOUTRETURN: {
          // LAYOUTRETURN4_ALL/FSID (§18.44.3, one filesystem): when it is the last op, the
          // client holds no layout afterwards (the LayoutTable must agree).
          auto t = q.oplayoutreturn->lora_layoutreturn.lr_returntype;
          if ((t == LAYOUTRETURN4_ALL || t == LAYOUTRETURN4_FSID) && i + 1 == a.argarray.size() &&
              q.oplayoutreturn->lora_iomode == LAYOUTIOMODE4_ANY) {
            size_t left = mds_->mds().layouts().FilesOf(client).size();
            g_counts.layout_return_all++;
            CHECK_INV(left == 0, "LAYOUTRETURN of all layouts left %zu files with layouts", left);
          }
          if (r.oplayoutreturn->lorr_stateid.lrs_present) {
            cur = r.oplayoutreturn->lorr_stateid.lrs_stateid;
            have_cur = true;
          }
          break;
        }
        // Session ops inside a SEQUENCE compound change what we know about sessions.
        case OP_DESTROY_SESSION:
          for (auto& ss : sessions_)
            if (ss.id == q.opdestroy_session->dsa_sessionid) ss.live = false;
          break;
        case OP_CREATE_SESSION: {
          // It may have confirmed a client (and dropped an earlier incarnation): stop
          // predicting that client's sessions and state.
          clientid4 id = q.opcreate_session->csa_clientid;
          seen_sessions_.insert(r.opcreate_session->csr_resok4.csr_sessionid);
          for (auto& cl : clients_)
            if (cl.id == id) cl.create_seq = q.opcreate_session->csa_sequence + 1;
          for (auto& ss : sessions_) ss.known = ss.known && ss.clientid != id && !OwnerOf(ss.clientid, id);
          for (auto& st : states_) st.strict = st.strict && st.clientid != id && !OwnerOf(st.clientid, id);
          break;
        }
        case OP_EXCHANGE_ID: {
          // AddOp sends client 0's owner, possibly under another client's credential: the
          // server may then replace client 0's record, sessions and all (§18.35.4 case 3).
          const auto& ok = r.opexchange_id->eir_resok4;
          ClientRec& cl = clients_[0];
          for (auto& ss : sessions_)
            if (ss.client == 0) ss.known = false;
          for (auto& st : states_)
            if (OwnerOf(st.clientid, cl.id)) st.strict = false;
          if (ok.eir_clientid != cl.id) {
            cl.id = ok.eir_clientid;
            cl.create_seq = ok.eir_sequenceid;
          }
          break;
        }
        default: break;
      }
    }
  }

  std::unique_ptr<DirectMds> mds_;
  clientid4 cur_client_ = 0;  // the client of the compound being built
  std::set<sessionid4> seen_sessions_;  // every session id the server handed out
  ClientRec clients_[kClients];
  std::vector<SessRec> sessions_;
  std::vector<StateRec> states_;
  std::vector<Bytes> fhs_;
  std::vector<std::array<uint8_t, NFS4_DEVICEID4_SIZE>> devices_;
};

// Two servers: one with a data server (pNFS: layouts, proxied I/O), one without any (no pool:
// EXCHANGE_ID says non-pNFS; LAYOUTGET, GETDEVICEINFO, READ and WRITE must still answer
// sanely). The first input byte picks one.
World* g_worlds[2] = {nullptr, nullptr};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  g_trace = getenv("LOOM_FUZZ_TRACE") != nullptr;
  if (!g_trace) SetLogLevel(LogLevel::kError);
  g_worlds[0] = new World(1);
  g_worlds[1] = new World(0);
  // LOOM_FUZZ_REPLAY=history.bin: run a failure's history (see Fail) before anything else.
  if (const char* replay = getenv("LOOM_FUZZ_REPLAY")) {
    FILE* f = fopen(replay, "rb");
    if (!f) {
      fprintf(stderr, "compound_fuzz: cannot open %s\n", replay);
      exit(2);
    }
    size_t n = 0;
    uint8_t len[4];
    while (fread(len, 1, 4, f) == 4) {
      std::string in(size_t(len[0]) | size_t(len[1]) << 8 | size_t(len[2]) << 16 | size_t(len[3]) << 24, '\0');
      if (fread(in.data(), 1, in.size(), f) != in.size()) break;
      LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(in.data()), in.size());
      n++;
    }
    fclose(f);
    fprintf(stderr, "compound_fuzz: replayed %zu inputs without a failure\n", n);
  }
  // The Worlds live to the end (libFuzzer exits from inside its loop); their temp dirs do not.
  atexit([] {
    const Counts& c = g_counts;
    fprintf(stderr,
            "compound_fuzz: %llu compounds; checked: %llu live and %llu closed/freed stateids, "
            "%llu cached and %llu uncached retransmissions, %llu next and %llu misordered "
            "seqids, %llu destroyed sessions, %llu bad slots, %llu layouts granted, %llu "
            "return-all\n",
            (unsigned long long)c.compounds, (unsigned long long)c.live_stateids,
            (unsigned long long)c.dead_stateids, (unsigned long long)c.cached_replays,
            (unsigned long long)c.uncached_replays, (unsigned long long)c.next_seqid,
            (unsigned long long)c.misordered, (unsigned long long)c.dead_sessions,
            (unsigned long long)c.bad_slots, (unsigned long long)c.layouts,
            (unsigned long long)c.layout_return_all);
    std::error_code ec;
    for (World* w : g_worlds) std::filesystem::remove_all(w->dir(), ec);
  });
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (g_trace) fprintf(stderr, "== input of %zu bytes\n", size);
  if (size == 0) return 0;
  while (!g_history.empty() && g_history_bytes + size > kHistoryBytes) {
    g_history_bytes -= g_history.front().size();
    g_history.erase(g_history.begin());
    g_history_truncated = true;
  }
  g_history.emplace_back(reinterpret_cast<const char*>(data), size);
  g_history_bytes += size;
  g_worlds[data[0] & 1]->RunInput(data + 1, size - 1);
  return 0;
}
