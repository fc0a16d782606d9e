// Open and lock state: stateids, share reservations, byte-range locks, cleanup.
#include "nfs4/state.h"
#include "nfs4/layouts.h"

#include <gtest/gtest.h>

#include <atomic>
#include <random>
#include <set>
#include <thread>

namespace loom::nfs4 {
namespace {

constexpr clientid4 kA = 0x100000001;
constexpr clientid4 kB = 0x100000002;
constexpr uint64_t kFile = 42;
constexpr uint64_t kOther = 43;
constexpr uint64_t kEof = NFS4_UINT64_MAX;

class StateTest : public ::testing::Test {
 protected:
  StateTest() : st_(Options()) {}

  StateManager::Options Options() {
    StateManager::Options o;
    o.boot_epoch = 7;
    o.on_last_close = [this](uint64_t f) { closed_.push_back(f); };
    return o;
  }

  stateid4 MustOpen(clientid4 c, const std::string& owner, uint32_t access, uint32_t deny,
                    uint64_t file = kFile) {
    stateid4 s;
    EXPECT_EQ(Open(c, owner, access, deny, &s, file), NFS4_OK);
    return s;
  }
  nfsstat4 Open(clientid4 c, const std::string& owner, uint32_t access, uint32_t deny,
                stateid4* s, uint64_t file = kFile) {
    OpenRequest r;
    r.client = c;
    r.owner = owner;
    r.file = file;
    r.share_access = access;
    r.share_deny = deny;
    return st_.Open(r, s);
  }
  nfsstat4 Close(clientid4 c, const stateid4& s, uint64_t file = kFile) {
    stateid4 out;
    nfsstat4 r = st_.Close(c, file, s, &out);
    if (r == NFS4_OK) {
      EXPECT_TRUE(IsInvalidStateid(out));
    }
    return r;
  }
  nfsstat4 Downgrade(clientid4 c, const stateid4& s, uint32_t access, uint32_t deny,
                     stateid4* out) {
    OPEN_DOWNGRADE4args a;
    a.open_stateid = s;
    a.share_access = access;
    a.share_deny = deny;
    return st_.OpenDowngrade(c, kFile, a, out);
  }
  // LOCK with a new lock owner.
  nfsstat4 LockNew(clientid4 c, const stateid4& open, const std::string& owner,
                   nfs_lock_type4 type, uint64_t off, uint64_t len, stateid4* out,
                   LOCK4denied* d = nullptr, uint64_t file = kFile) {
    LOCK4args a;
    a.locktype = type;
    a.offset = off;
    a.length = len;
    a.locker.new_lock_owner = true;
    a.locker.open_owner.open_stateid = open;
    a.locker.open_owner.lock_owner.clientid = c;
    a.locker.open_owner.lock_owner.owner = Bytes::Copy(owner);
    LOCK4denied scratch;
    return st_.Lock(c, file, a, out, d ? d : &scratch);
  }
  // LOCK with an existing lock stateid.
  nfsstat4 LockExist(clientid4 c, const stateid4& lock, nfs_lock_type4 type, uint64_t off,
                     uint64_t len, stateid4* out, LOCK4denied* d = nullptr) {
    LOCK4args a;
    a.locktype = type;
    a.offset = off;
    a.length = len;
    a.locker.new_lock_owner = false;
    a.locker.lock_owner.lock_stateid = lock;
    LOCK4denied scratch;
    return st_.Lock(c, kFile, a, out, d ? d : &scratch);
  }
  nfsstat4 Unlock(clientid4 c, const stateid4& lock, uint64_t off, uint64_t len,
                  stateid4* out) {
    LOCKU4args a;
    a.locktype = READ_LT;
    a.lock_stateid = lock;
    a.offset = off;
    a.length = len;
    return st_.Unlock(c, kFile, a, out);
  }
  nfsstat4 Test(clientid4 c, const std::string& owner, nfs_lock_type4 type, uint64_t off,
                uint64_t len, LOCK4denied* d = nullptr, uint64_t file = kFile) {
    LOCKT4args a;
    a.locktype = type;
    a.offset = off;
    a.length = len;
    a.owner.clientid = c;
    a.owner.owner = Bytes::Copy(owner);
    LOCK4denied scratch;
    return st_.LockTest(c, file, a, d ? d : &scratch);
  }
  nfsstat4 Io(const stateid4& s, clientid4 c, Access want, uint64_t file = kFile) {
    return st_.Resolve(s, c, file, Accept::kIo, want);
  }

  std::vector<uint64_t> closed_;
  StateManager st_;
};

stateid4 WithSeqid(stateid4 s, uint32_t seqid) {
  s.seqid = seqid;
  return s;
}

// ------------------------------------------------------------------------------ stateids

TEST(StateidTest, EncodingRoundTripsAndNeverLooksSpecial) {
  stateid4 s = MakeStateid(StateKind::kLayout, 0xA1B2C3D4, 0x00123456789ABCDE, 9);
  EXPECT_EQ(s.seqid, 9u);
  StateidParts p;
  ASSERT_TRUE(DecodeStateid(s, &p));
  EXPECT_EQ(p.kind, StateKind::kLayout);
  EXPECT_EQ(p.epoch, 0xA1B2C3D4u);
  EXPECT_EQ(p.counter, 0x00123456789ABCDEu);
  EXPECT_FALSE(IsSpecialStateid(s));
  EXPECT_FALSE(IsSpecialStateid(MakeStateid(StateKind::kOpen, 0, 0, 0)));
  EXPECT_FALSE(DecodeStateid(AnonymousStateid(), &p));
  EXPECT_FALSE(DecodeStateid(ReadBypassStateid(), &p));
}

TEST(StateidTest, SpecialStateids) {
  EXPECT_TRUE(IsAnonymousStateid(AnonymousStateid()));
  EXPECT_TRUE(IsReadBypassStateid(ReadBypassStateid()));
  EXPECT_TRUE(IsCurrentStateid(CurrentStateid()));
  EXPECT_TRUE(IsInvalidStateid(InvalidStateid()));
  EXPECT_FALSE(IsAnonymousStateid(CurrentStateid()));
  EXPECT_FALSE(IsCurrentStateid(InvalidStateid()));
  for (const stateid4& s :
       {AnonymousStateid(), ReadBypassStateid(), CurrentStateid(), InvalidStateid()})
    EXPECT_TRUE(IsSpecialStateid(s));
  EXPECT_EQ(NextSeqid(1), 2u);
  EXPECT_EQ(NextSeqid(NFS4_UINT32_MAX), 1u);
}

// ------------------------------------------------------------------------------ opens

TEST_F(StateTest, OpenCreatesStateidWithSeqidOne) {
  stateid4 s = MustOpen(kA, "o1", OPEN4_SHARE_ACCESS_READ, OPEN4_SHARE_DENY_NONE);
  EXPECT_EQ(s.seqid, 1u);
  StateidParts p;
  ASSERT_TRUE(DecodeStateid(s, &p));
  EXPECT_EQ(p.kind, StateKind::kOpen);
  EXPECT_EQ(p.epoch, 7u);
  EXPECT_TRUE(st_.IsOpen(kFile));
  EXPECT_FALSE(st_.IsOpen(kOther));
  Resolved r;
  ASSERT_EQ(st_.Resolve(s, kA, kFile, Accept::kOpen, Access::kNone, &r), NFS4_OK);
  EXPECT_FALSE(r.special);
  EXPECT_EQ(r.kind, StateKind::kOpen);
  EXPECT_EQ(r.share_access, OPEN4_SHARE_ACCESS_READ);
  EXPECT_EQ(r.current.other, s.other);
  EXPECT_EQ(r.open.other, s.other);
  // Seqid 0 means "whatever is current" (§8.2.2).
  EXPECT_EQ(st_.Resolve(WithSeqid(s, 0), kA, kFile, Accept::kOpen, Access::kNone), NFS4_OK);
}

TEST_F(StateTest, InvalidShareValues) {
  stateid4 s;
  EXPECT_EQ(Open(kA, "o", 0, OPEN4_SHARE_DENY_NONE, &s), NFS4ERR_INVAL);
  EXPECT_EQ(Open(kA, "o", 4, OPEN4_SHARE_DENY_NONE, &s), NFS4ERR_INVAL);
  EXPECT_EQ(Open(kA, "o", OPEN4_SHARE_ACCESS_READ, 4, &s), NFS4ERR_INVAL);
  EXPECT_EQ(st_.size(), 0u);
  // Delegation "want" bits do not take part in share reservations.
  EXPECT_EQ(Open(kA, "o", OPEN4_SHARE_ACCESS_READ | OPEN4_SHARE_ACCESS_WANT_NO_DELEG,
                 OPEN4_SHARE_DENY_NONE, &s),
            NFS4_OK);
  Resolved r;
  ASSERT_EQ(st_.Resolve(s, kA, kFile, Accept::kOpen, Access::kNone, &r), NFS4_OK);
  EXPECT_EQ(r.share_access, OPEN4_SHARE_ACCESS_READ);
}

TEST_F(StateTest, ShareDenyBetweenTwoClients) {
  stateid4 a = MustOpen(kA, "oa", OPEN4_SHARE_ACCESS_READ, OPEN4_SHARE_DENY_WRITE);
  stateid4 b;
  // B wants to write: A denies writers.
  EXPECT_EQ(Open(kB, "ob", OPEN4_SHARE_ACCESS_WRITE, OPEN4_SHARE_DENY_NONE, &b),
            NFS4ERR_SHARE_DENIED);
  EXPECT_EQ(Open(kB, "ob", OPEN4_SHARE_ACCESS_BOTH, OPEN4_SHARE_DENY_NONE, &b),
            NFS4ERR_SHARE_DENIED);
  // B would deny readers, but A reads.
  EXPECT_EQ(Open(kB, "ob", OPEN4_SHARE_ACCESS_READ, OPEN4_SHARE_DENY_READ, &b),
            NFS4ERR_SHARE_DENIED);
  // A reader that denies writes too is compatible.
  ASSERT_EQ(Open(kB, "ob", OPEN4_SHARE_ACCESS_READ, OPEN4_SHARE_DENY_WRITE, &b), NFS4_OK);
  // Other files are unaffected.
  MustOpen(kB, "ob", OPEN4_SHARE_ACCESS_WRITE, OPEN4_SHARE_DENY_NONE, kOther);
  // Once both readers are gone a writer gets in.
  ASSERT_EQ(Close(kA, a), NFS4_OK);
  EXPECT_EQ(Open(kB, "oc", OPEN4_SHARE_ACCESS_WRITE, OPEN4_SHARE_DENY_NONE, &a),
            NFS4ERR_SHARE_DENIED);
  ASSERT_EQ(Close(kB, b), NFS4_OK);
  EXPECT_EQ(Open(kB, "oc", OPEN4_SHARE_ACCESS_WRITE, OPEN4_SHARE_DENY_NONE, &a), NFS4_OK);
}

TEST_F(StateTest, ShareDenyBetweenOwnersOfOneClient) {
  MustOpen(kA, "o1", OPEN4_SHARE_ACCESS_WRITE, OPEN4_SHARE_DENY_BOTH);
  stateid4 s;
  EXPECT_EQ(Open(kA, "o2", OPEN4_SHARE_ACCESS_READ, OPEN4_SHARE_DENY_NONE, &s),
            NFS4ERR_SHARE_DENIED);
  // The same owner upgrades its own open: its own deny never conflicts with itself.
  EXPECT_EQ(Open(kA, "o1", OPEN4_SHARE_ACCESS_READ, OPEN4_SHARE_DENY_NONE, &s), NFS4_OK);
  EXPECT_EQ(s.seqid, 2u);
}

TEST_F(StateTest, UpgradeOrsAccessAndBumpsSeqid) {
  stateid4 s1 = MustOpen(kA, "o", OPEN4_SHARE_ACCESS_READ, OPEN4_SHARE_DENY_NONE);
  stateid4 s2 = MustOpen(kA, "o", OPEN4_SHARE_ACCESS_WRITE, OPEN4_SHARE_DENY_WRITE);
  EXPECT_EQ(s2.other, s1.other);
  EXPECT_EQ(s2.seqid, 2u);
  Resolved r;
  ASSERT_EQ(st_.Resolve(s2, kA, kFile, Accept::kOpen, Access::kNone, &r), NFS4_OK);
  EXPECT_EQ(r.share_access, OPEN4_SHARE_ACCESS_BOTH);
  EXPECT_EQ(r.share_deny, OPEN4_SHARE_DENY_WRITE);
  EXPECT_EQ(st_.Resolve(s1, kA, kFile, Accept::kOpen, Access::kNone), NFS4ERR_OLD_STATEID);
  EXPECT_EQ(st_.Resolve(WithSeqid(s1, 3), kA, kFile, Accept::kOpen, Access::kNone),
            NFS4ERR_BAD_STATEID);
  // Re-opening with nothing new still moves the seqid.
  stateid4 s3 = MustOpen(kA, "o", OPEN4_SHARE_ACCESS_READ, OPEN4_SHARE_DENY_NONE);
  EXPECT_EQ(s3.seqid, 3u);
  EXPECT_EQ(st_.size(), 1u);
}

TEST_F(StateTest, UpgradeConflictLeavesStateUnchanged) {
  stateid4 a = MustOpen(kA, "oa", OPEN4_SHARE_ACCESS_READ, OPEN4_SHARE_DENY_NONE);
  MustOpen(kB, "ob", OPEN4_SHARE_ACCESS_READ, OPEN4_SHARE_DENY_WRITE);
  stateid4 s;
  EXPECT_EQ(Open(kA, "oa", OPEN4_SHARE_ACCESS_WRITE, OPEN4_SHARE_DENY_NONE, &s),
            NFS4ERR_SHARE_DENIED);
  Resolved r;
  ASSERT_EQ(st_.Resolve(a, kA, kFile, Accept::kOpen, Access::kNone, &r), NFS4_OK);
  EXPECT_EQ(r.current.seqid, 1u);
  EXPECT_EQ(r.share_access, OPEN4_SHARE_ACCESS_READ);
  // A deny upgrade that would conflict with the other reader also fails.
  EXPECT_EQ(Open(kA, "oa", OPEN4_SHARE_ACCESS_READ, OPEN4_SHARE_DENY_READ, &s),
            NFS4ERR_SHARE_DENIED);
}

TEST_F(StateTest, OpenDowngrade) {
  MustOpen(kA, "o", OPEN4_SHARE_ACCESS_READ, OPEN4_SHARE_DENY_WRITE);
  stateid4 s = MustOpen(kA, "o", OPEN4_SHARE_ACCESS_WRITE, OPEN4_SHARE_DENY_NONE);
  stateid4 out;
  // Not subsets of what is held.
  EXPECT_EQ(Downgrade(kA, s, OPEN4_SHARE_ACCESS_READ, OPEN4_SHARE_DENY_BOTH, &out),
            NFS4ERR_INVAL);
  EXPECT_EQ(Downgrade(kA, s, 0, OPEN4_SHARE_DENY_NONE, &out), NFS4ERR_INVAL);
  EXPECT_EQ(Downgrade(kA, s, 7, OPEN4_SHARE_DENY_NONE, &out), NFS4ERR_INVAL);
  // Another client's writer is kept out until A drops its deny.
  stateid4 b;
  EXPECT_EQ(Open(kB, "ob", OPEN4_SHARE_ACCESS_WRITE, OPEN4_SHARE_DENY_NONE, &b),
            NFS4ERR_SHARE_DENIED);
  ASSERT_EQ(Downgrade(kA, s, OPEN4_SHARE_ACCESS_READ, OPEN4_SHARE_DENY_NONE, &out), NFS4_OK);
  EXPECT_EQ(out.other, s.other);
  EXPECT_EQ(out.seqid, 3u);
  EXPECT_EQ(Downgrade(kA, s, OPEN4_SHARE_ACCESS_READ, OPEN4_SHARE_DENY_NONE, &out),
            NFS4ERR_OLD_STATEID);
  EXPECT_EQ(Open(kB, "ob", OPEN4_SHARE_ACCESS_WRITE, OPEN4_SHARE_DENY_NONE, &b), NFS4_OK);
  // A read-only open no longer allows writes; upgrading back is a new OPEN.
  EXPECT_EQ(Io(out, kA, Access::kWrite), NFS4ERR_OPENMODE);
  EXPECT_EQ(Downgrade(kA, WithSeqid(out, 0), OPEN4_SHARE_ACCESS_WRITE, 0, &out),
            NFS4ERR_INVAL);
}

TEST_F(StateTest, CloseFreesAndNotifiesOnLastClose) {
  stateid4 a = MustOpen(kA, "o", OPEN4_SHARE_ACCESS_READ, OPEN4_SHARE_DENY_NONE);
  stateid4 b = MustOpen(kB, "o", OPEN4_SHARE_ACCESS_READ, OPEN4_SHARE_DENY_NONE);
  EXPECT_EQ(Close(kB, a), NFS4ERR_BAD_STATEID);  // not B's
  ASSERT_EQ(Close(kA, a), NFS4_OK);
  EXPECT_TRUE(closed_.empty());
  EXPECT_TRUE(st_.IsOpen(kFile));
  EXPECT_EQ(Close(kA, a), NFS4ERR_BAD_STATEID);
  EXPECT_EQ(st_.Resolve(a, kA, kFile, Accept::kIo, Access::kRead), NFS4ERR_BAD_STATEID);
  EXPECT_EQ(Close(kB, WithSeqid(b, 2)), NFS4ERR_BAD_STATEID);  // a seqid from the future
  ASSERT_EQ(Close(kB, WithSeqid(b, 0)), NFS4_OK);
  EXPECT_EQ(closed_, std::vector<uint64_t>{kFile});
  EXPECT_FALSE(st_.IsOpen(kFile));
  EXPECT_EQ(st_.size(), 0u);
}

// ------------------------------------------------------------------------------ Resolve

TEST_F(StateTest, ResolveRejectsWrongFileClientEpochAndGarbage) {
  stateid4 s = MustOpen(kA, "o", OPEN4_SHARE_ACCESS_BOTH, OPEN4_SHARE_DENY_NONE);
  EXPECT_EQ(Io(s, kA, Access::kRead), NFS4_OK);
  EXPECT_EQ(Io(s, kA, Access::kRead, kOther), NFS4ERR_BAD_STATEID);
  EXPECT_EQ(Io(s, kB, Access::kRead), NFS4ERR_BAD_STATEID);
  StateidParts p;
  ASSERT_TRUE(DecodeStateid(s, &p));
  // The same stateid minted by an earlier boot (§15.1.16.7: BAD, not STALE, in 4.1).
  EXPECT_EQ(Io(MakeStateid(StateKind::kOpen, 6, p.counter, 1), kA, Access::kRead),
            NFS4ERR_BAD_STATEID);
  // Right counter, wrong kind tag; unknown counter; unknown tag.
  EXPECT_EQ(Io(MakeStateid(StateKind::kLock, 7, p.counter, 1), kA, Access::kRead),
            NFS4ERR_BAD_STATEID);
  EXPECT_EQ(Io(MakeStateid(StateKind::kOpen, 7, p.counter + 100, 1), kA, Access::kRead),
            NFS4ERR_BAD_STATEID);
  stateid4 junk = s;
  junk.other[0] = 0x77;
  EXPECT_EQ(Io(junk, kA, Access::kRead), NFS4ERR_BAD_STATEID);
  // An open stateid where a lock stateid is required.
  EXPECT_EQ(st_.Resolve(s, kA, kFile, Accept::kLock, Access::kNone), NFS4ERR_BAD_STATEID);
}

TEST_F(StateTest, ResolveChecksOpenMode) {
  stateid4 r = MustOpen(kA, "r", OPEN4_SHARE_ACCESS_READ, OPEN4_SHARE_DENY_NONE);
  stateid4 w = MustOpen(kA, "w", OPEN4_SHARE_ACCESS_WRITE, OPEN4_SHARE_DENY_NONE);
  EXPECT_EQ(Io(r, kA, Access::kRead), NFS4_OK);
  EXPECT_EQ(Io(r, kA, Access::kWrite), NFS4ERR_OPENMODE);
  EXPECT_EQ(Io(w, kA, Access::kWrite), NFS4_OK);
  EXPECT_EQ(Io(w, kA, Access::kRead), NFS4_OK);  // reads on write-only opens are allowed
  bool write_open = true;
  EXPECT_EQ(st_.CheckIo(r, kA, kFile, false, &write_open), NFS4_OK);
  EXPECT_FALSE(write_open);
  EXPECT_EQ(st_.CheckIo(w, kA, kFile, true, &write_open), NFS4_OK);
  EXPECT_TRUE(write_open);
  EXPECT_EQ(st_.CheckIo(AnonymousStateid(), kA, kFile, true, &write_open), NFS4_OK);
  EXPECT_FALSE(write_open);
}

TEST_F(StateTest, SpecialStateids) {
  // Without opens, anonymous I/O is fine; the special stateids are only for I/O.
  EXPECT_EQ(Io(AnonymousStateid(), kA, Access::kWrite), NFS4_OK);
  EXPECT_EQ(Io(ReadBypassStateid(), kA, Access::kRead), NFS4_OK);
  Resolved r;
  ASSERT_EQ(st_.Resolve(AnonymousStateid(), kA, kFile, Accept::kIo, Access::kRead, &r),
            NFS4_OK);
  EXPECT_TRUE(r.special);
  EXPECT_EQ(st_.Resolve(AnonymousStateid(), kA, kFile, Accept::kOpen, Access::kNone),
            NFS4ERR_BAD_STATEID);
  EXPECT_EQ(st_.Resolve(ReadBypassStateid(), kA, kFile, Accept::kLock, Access::kNone),
            NFS4ERR_BAD_STATEID);
  // The current stateid must have been substituted by COMPOUND; the invalid one and other
  // combinations are never valid.
  EXPECT_EQ(Io(CurrentStateid(), kA, Access::kRead), NFS4ERR_BAD_STATEID);
  EXPECT_EQ(Io(InvalidStateid(), kA, Access::kRead), NFS4ERR_BAD_STATEID);
  EXPECT_EQ(Io(WithSeqid(ReadBypassStateid(), 0), kA, Access::kRead), NFS4ERR_BAD_STATEID);

  // Share reservations apply to I/O without an open (§9.7), except READ with the bypass.
  MustOpen(kB, "o", OPEN4_SHARE_ACCESS_READ, OPEN4_SHARE_DENY_READ);
  EXPECT_EQ(Io(AnonymousStateid(), kA, Access::kRead), NFS4ERR_LOCKED);
  EXPECT_EQ(Io(AnonymousStateid(), kA, Access::kWrite), NFS4_OK);
  EXPECT_EQ(Io(ReadBypassStateid(), kA, Access::kRead), NFS4_OK);
  MustOpen(kB, "o2", OPEN4_SHARE_ACCESS_WRITE, OPEN4_SHARE_DENY_WRITE);
  EXPECT_EQ(Io(AnonymousStateid(), kA, Access::kWrite), NFS4ERR_LOCKED);
  EXPECT_EQ(Io(ReadBypassStateid(), kA, Access::kWrite), NFS4ERR_LOCKED);  // as anonymous
  EXPECT_EQ(Io(AnonymousStateid(), kA, Access::kNone), NFS4_OK);
}

// ------------------------------------------------------------------------------ locks

TEST_F(StateTest, LockConflictsBetweenOwners) {
  stateid4 oa = MustOpen(kA, "oa", OPEN4_SHARE_ACCESS_BOTH, OPEN4_SHARE_DENY_NONE);
  stateid4 ob = MustOpen(kB, "ob", OPEN4_SHARE_ACCESS_BOTH, OPEN4_SHARE_DENY_NONE);
  stateid4 la, lb, lb2;
  ASSERT_EQ(LockNew(kA, oa, "la", WRITE_LT, 100, 100, &la), NFS4_OK);  // [100, 200)
  EXPECT_EQ(la.seqid, 1u);
  StateidParts p;
  ASSERT_TRUE(DecodeStateid(la, &p));
  EXPECT_EQ(p.kind, StateKind::kLock);
  LOCK4denied d;
  EXPECT_EQ(LockNew(kB, ob, "lb", READ_LT, 150, 10, &lb, &d), NFS4ERR_DENIED);
  EXPECT_EQ(d.offset, 100u);
  EXPECT_EQ(d.length, 100u);
  EXPECT_EQ(d.locktype, WRITE_LT);
  EXPECT_EQ(d.owner.clientid, kA);
  EXPECT_EQ(d.owner.owner.str(), "la");
  // A denied LOCK for a new lock owner creates no state.
  EXPECT_EQ(st_.size(), 3u);
  // Touching ranges are not overlapping ones.
  ASSERT_EQ(LockNew(kB, ob, "lb", WRITE_LT, 0, 100, &lb), NFS4_OK);
  ASSERT_EQ(LockExist(kB, lb, WRITE_LT, 200, 50, &lb2), NFS4_OK);
  EXPECT_EQ(lb2.other, lb.other);
  EXPECT_EQ(lb2.seqid, 2u);
  EXPECT_EQ(LockExist(kB, lb2, WRITEW_LT, 199, 1, &lb2, &d), NFS4ERR_DENIED);
  // Two lock owners of the same client conflict too.
  stateid4 la2;
  EXPECT_EQ(LockNew(kA, oa, "la2", READ_LT, 0, 1, &la2), NFS4ERR_DENIED);
  // An old lock stateid seqid.
  EXPECT_EQ(LockExist(kB, lb, READ_LT, 1000, 1, &lb2), NFS4ERR_OLD_STATEID);
}

TEST_F(StateTest, ReadLocksShare) {
  stateid4 oa = MustOpen(kA, "oa", OPEN4_SHARE_ACCESS_READ, OPEN4_SHARE_DENY_NONE);
  stateid4 ob = MustOpen(kB, "ob", OPEN4_SHARE_ACCESS_BOTH, OPEN4_SHARE_DENY_NONE);
  stateid4 la, lb;
  ASSERT_EQ(LockNew(kA, oa, "la", READ_LT, 0, kEof, &la), NFS4_OK);
  ASSERT_EQ(LockNew(kB, ob, "lb", READW_LT, 10, 10, &lb), NFS4_OK);
  LOCK4denied d;
  EXPECT_EQ(LockExist(kB, lb, WRITE_LT, 5000, 1, &lb, &d), NFS4ERR_DENIED);
  EXPECT_EQ(d.offset, 0u);
  EXPECT_EQ(d.length, kEof);  // to EOF is reported as all ones
  EXPECT_EQ(d.locktype, READ_LT);
}

TEST_F(StateTest, LockRangeValidation) {
  stateid4 o = MustOpen(kA, "o", OPEN4_SHARE_ACCESS_BOTH, OPEN4_SHARE_DENY_NONE);
  stateid4 l;
  EXPECT_EQ(LockNew(kA, o, "l", WRITE_LT, 0, 0, &l), NFS4ERR_INVAL);
  EXPECT_EQ(LockNew(kA, o, "l", WRITE_LT, 10, kEof - 9, &l), NFS4ERR_INVAL);  // past 2^64-1
  EXPECT_EQ(LockNew(kA, o, "l", WRITE_LT, kEof, 1, &l), NFS4ERR_INVAL);
  EXPECT_EQ(LockNew(kA, o, "l", static_cast<nfs_lock_type4>(9), 0, 1, &l), NFS4ERR_INVAL);
  EXPECT_EQ(Test(kB, "x", WRITE_LT, 0, 0), NFS4ERR_INVAL);
  EXPECT_EQ(st_.size(), 1u);
  // offset + length == 2^64 - 1 is the largest explicit range; all ones means to EOF.
  ASSERT_EQ(LockNew(kA, o, "l", WRITE_LT, 10, kEof - 10, &l), NFS4_OK);
  EXPECT_EQ(Unlock(kA, l, 0, 0, &l), NFS4ERR_INVAL);
  EXPECT_EQ(Unlock(kA, l, 5, kEof - 4, &l), NFS4ERR_INVAL);
  LOCK4denied d;
  EXPECT_EQ(Test(kB, "x", READ_LT, 0, kEof, &d), NFS4ERR_DENIED);
  EXPECT_EQ(d.offset, 10u);
  EXPECT_EQ(d.length, kEof - 10);
  EXPECT_EQ(Test(kB, "x", READ_LT, kEof - 1, 1), NFS4ERR_DENIED);
  EXPECT_EQ(Test(kB, "x", READ_LT, kEof - 1, kEof), NFS4ERR_DENIED);
  // The last byte is reachable only "to EOF" and the explicit range stops before it.
  ASSERT_EQ(LockNew(kA, o, "l", WRITE_LT, 0, kEof, &l), NFS4_OK);
  ASSERT_EQ(Test(kB, "x", READ_LT, 0, 1, &d), NFS4ERR_DENIED);
  EXPECT_EQ(d.offset, 0u);
  EXPECT_EQ(d.length, kEof);
}

TEST_F(StateTest, UnlockSplitsRange) {
  stateid4 oa = MustOpen(kA, "oa", OPEN4_SHARE_ACCESS_BOTH, OPEN4_SHARE_DENY_NONE);
  stateid4 ob = MustOpen(kB, "ob", OPEN4_SHARE_ACCESS_BOTH, OPEN4_SHARE_DENY_NONE);
  stateid4 la, lb;
  ASSERT_EQ(LockNew(kA, oa, "la", WRITE_LT, 0, 100, &la), NFS4_OK);
  ASSERT_EQ(Unlock(kA, la, 40, 20, &la), NFS4_OK);  // leaves [0,40) and [60,100)
  EXPECT_EQ(la.seqid, 2u);
  LOCK4denied d;
  ASSERT_EQ(Test(kB, "lb", WRITE_LT, 0, kEof, &d), NFS4ERR_DENIED);
  ASSERT_EQ(Test(kB, "lb", WRITE_LT, 30, 20, &d), NFS4ERR_DENIED);
  EXPECT_EQ(d.offset, 0u);
  EXPECT_EQ(d.length, 40u);
  ASSERT_EQ(Test(kB, "lb", WRITE_LT, 50, 20, &d), NFS4ERR_DENIED);
  EXPECT_EQ(d.offset, 60u);
  EXPECT_EQ(d.length, 40u);
  ASSERT_EQ(LockNew(kB, ob, "lb", WRITE_LT, 40, 20, &lb), NFS4_OK);
  EXPECT_EQ(LockExist(kB, lb, WRITE_LT, 39, 1, &lb), NFS4ERR_DENIED);
  EXPECT_EQ(LockExist(kB, lb, WRITE_LT, 60, 1, &lb), NFS4ERR_DENIED);
  // Unlocking what is not locked is fine; unlocking the rest frees the range.
  ASSERT_EQ(Unlock(kA, la, 1000, 5, &la), NFS4_OK);
  ASSERT_EQ(Unlock(kA, la, 0, kEof, &la), NFS4_OK);
  EXPECT_EQ(LockExist(kB, lb, WRITE_LT, 0, kEof, &lb), NFS4_OK);
}

TEST_F(StateTest, LockUpgradeAndDowngrade) {
  stateid4 oa = MustOpen(kA, "oa", OPEN4_SHARE_ACCESS_BOTH, OPEN4_SHARE_DENY_NONE);
  stateid4 ob = MustOpen(kB, "ob", OPEN4_SHARE_ACCESS_BOTH, OPEN4_SHARE_DENY_NONE);
  stateid4 la, lb;
  ASSERT_EQ(LockNew(kA, oa, "la", READ_LT, 0, 100, &la), NFS4_OK);
  // Upgrade without a conflict: the middle becomes a write lock.
  ASSERT_EQ(LockExist(kA, la, WRITE_LT, 20, 10, &la), NFS4_OK);
  LOCK4denied d;
  ASSERT_EQ(Test(kB, "lb", READ_LT, 0, kEof, &d), NFS4ERR_DENIED);
  EXPECT_EQ(d.offset, 20u);
  EXPECT_EQ(d.length, 10u);
  EXPECT_EQ(d.locktype, WRITE_LT);
  EXPECT_EQ(Test(kB, "lb", READ_LT, 0, 20), NFS4_OK);
  EXPECT_EQ(Test(kB, "lb", READ_LT, 30, 70), NFS4_OK);
  // Upgrade with a conflict fails and keeps the read lock as it was.
  ASSERT_EQ(LockNew(kB, ob, "lb", READ_LT, 50, 10, &lb), NFS4_OK);
  stateid4 before = la;
  ASSERT_EQ(LockExist(kA, la, WRITE_LT, 0, 100, &la, &d), NFS4ERR_DENIED);
  EXPECT_EQ(d.owner.clientid, kB);
  EXPECT_EQ(d.offset, 50u);
  EXPECT_EQ(d.locktype, READ_LT);
  EXPECT_EQ(la.seqid, before.seqid);
  EXPECT_EQ(Test(kB, "other", WRITE_LT, 0, 1), NFS4ERR_DENIED);  // still read-locked
  EXPECT_EQ(Test(kB, "other", READ_LT, 0, 20), NFS4_OK);
  // Downgrade write -> read: B may now read-lock there, but not write-lock.
  ASSERT_EQ(LockExist(kA, la, READ_LT, 20, 10, &la), NFS4_OK);
  EXPECT_EQ(LockExist(kB, lb, READ_LT, 20, 10, &lb), NFS4_OK);
  EXPECT_EQ(LockExist(kB, lb, WRITE_LT, 25, 1, &lb), NFS4ERR_DENIED);
  // The downgraded range merged back with its read neighbours into one [0, 100).
  ASSERT_EQ(Test(kB, "other", WRITE_LT, 90, 1, &d), NFS4ERR_DENIED);
  EXPECT_EQ(d.owner.clientid, kA);
  EXPECT_EQ(d.offset, 0u);
  EXPECT_EQ(d.length, 100u);
}

TEST_F(StateTest, AdjacentLocksMerge) {
  stateid4 o = MustOpen(kA, "o", OPEN4_SHARE_ACCESS_BOTH, OPEN4_SHARE_DENY_NONE);
  stateid4 l;
  ASSERT_EQ(LockNew(kA, o, "l", WRITE_LT, 0, 10, &l), NFS4_OK);
  ASSERT_EQ(LockExist(kA, l, WRITE_LT, 20, 10, &l), NFS4_OK);
  ASSERT_EQ(LockExist(kA, l, WRITE_LT, 10, 10, &l), NFS4_OK);
  LOCK4denied d;
  ASSERT_EQ(Test(kB, "x", READ_LT, 15, 1, &d), NFS4ERR_DENIED);
  EXPECT_EQ(d.offset, 0u);
  EXPECT_EQ(d.length, 30u);
  ASSERT_EQ(LockExist(kA, l, WRITE_LT, 30, kEof, &l), NFS4_OK);
  ASSERT_EQ(Test(kB, "x", READ_LT, 15, 1, &d), NFS4ERR_DENIED);
  EXPECT_EQ(d.length, kEof);
}

TEST_F(StateTest, LockTestIgnoresOwnLocks) {
  stateid4 o = MustOpen(kA, "o", OPEN4_SHARE_ACCESS_BOTH, OPEN4_SHARE_DENY_NONE);
  stateid4 l;
  ASSERT_EQ(LockNew(kA, o, "me", WRITE_LT, 0, 10, &l), NFS4_OK);
  EXPECT_EQ(Test(kA, "me", WRITE_LT, 0, 10), NFS4_OK);
  EXPECT_EQ(Test(kA, "you", READ_LT, 0, 10), NFS4ERR_DENIED);
  EXPECT_EQ(Test(kB, "me", READ_LT, 0, 10), NFS4ERR_DENIED);  // same bytes, other client
  EXPECT_EQ(Test(kB, "me", READ_LT, 0, 10, nullptr, kOther), NFS4_OK);
}

TEST_F(StateTest, LockNeedsMatchingOpenMode) {
  stateid4 r = MustOpen(kA, "r", OPEN4_SHARE_ACCESS_READ, OPEN4_SHARE_DENY_NONE);
  stateid4 w = MustOpen(kA, "w", OPEN4_SHARE_ACCESS_WRITE, OPEN4_SHARE_DENY_NONE);
  stateid4 l;
  EXPECT_EQ(LockNew(kA, r, "l1", WRITE_LT, 0, 1, &l), NFS4ERR_OPENMODE);
  EXPECT_EQ(LockNew(kA, w, "l2", READ_LT, 0, 1, &l), NFS4ERR_OPENMODE);
  ASSERT_EQ(LockNew(kA, r, "l1", READ_LT, 0, 1, &l), NFS4_OK);
  EXPECT_EQ(LockExist(kA, l, WRITE_LT, 0, 1, &l), NFS4ERR_OPENMODE);
}

TEST_F(StateTest, LockStateidChecks) {
  stateid4 oa = MustOpen(kA, "oa", OPEN4_SHARE_ACCESS_BOTH, OPEN4_SHARE_DENY_NONE);
  stateid4 oa2 = MustOpen(kA, "oa", OPEN4_SHARE_ACCESS_BOTH, OPEN4_SHARE_DENY_NONE, kOther);
  stateid4 l, l2;
  // The open stateid must be of this file, of this client, and current.
  EXPECT_EQ(LockNew(kA, oa2, "l", WRITE_LT, 0, 1, &l), NFS4ERR_BAD_STATEID);
  EXPECT_EQ(LockNew(kB, oa, "l", WRITE_LT, 0, 1, &l), NFS4ERR_BAD_STATEID);
  EXPECT_EQ(LockNew(kA, WithSeqid(oa, 2), "l", WRITE_LT, 0, 1, &l), NFS4ERR_BAD_STATEID);
  stateid4 oa_new = MustOpen(kA, "oa", OPEN4_SHARE_ACCESS_READ, OPEN4_SHARE_DENY_NONE);
  EXPECT_EQ(LockNew(kA, oa, "l", WRITE_LT, 0, 1, &l), NFS4ERR_OLD_STATEID);
  ASSERT_EQ(LockNew(kA, oa_new, "l", WRITE_LT, 0, 1, &l), NFS4_OK);
  // A second "new lock owner" LOCK for the same owner and file reuses its lock stateid.
  ASSERT_EQ(LockNew(kA, WithSeqid(oa_new, 0), "l", WRITE_LT, 5, 1, &l2), NFS4_OK);
  EXPECT_EQ(l2.other, l.other);
  EXPECT_EQ(l2.seqid, 2u);
  // Lock stateids for I/O resolve to their open; for CLOSE they are the wrong kind.
  Resolved r;
  ASSERT_EQ(st_.Resolve(l2, kA, kFile, Accept::kIo, Access::kWrite, &r), NFS4_OK);
  EXPECT_EQ(r.kind, StateKind::kLock);
  EXPECT_EQ(r.open.other, oa.other);
  EXPECT_EQ(r.open.seqid, 2u);
  EXPECT_EQ(Close(kA, l2), NFS4ERR_BAD_STATEID);
  EXPECT_EQ(Unlock(kA, oa_new, 0, 1, &l), NFS4ERR_BAD_STATEID);
  EXPECT_EQ(LockExist(kA, oa_new, WRITE_LT, 0, 1, &l), NFS4ERR_BAD_STATEID);
  EXPECT_EQ(Unlock(kA, WithSeqid(l2, 1), 0, 1, &l), NFS4ERR_OLD_STATEID);
  EXPECT_EQ(Unlock(kB, l2, 0, 1, &l), NFS4ERR_BAD_STATEID);
}

TEST_F(StateTest, CloseWithLocksHeld) {
  stateid4 o = MustOpen(kA, "o", OPEN4_SHARE_ACCESS_BOTH, OPEN4_SHARE_DENY_NONE);
  stateid4 l;
  ASSERT_EQ(LockNew(kA, o, "l", WRITE_LT, 0, 10, &l), NFS4_OK);
  EXPECT_EQ(Close(kA, o), NFS4ERR_LOCKS_HELD);
  EXPECT_TRUE(st_.IsOpen(kFile));
  ASSERT_EQ(Unlock(kA, l, 0, kEof, &l), NFS4_OK);
  ASSERT_EQ(Close(kA, o), NFS4_OK);
  // The open's (empty) lock state went with it.
  EXPECT_EQ(st_.Resolve(l, kA, kFile, Accept::kLock, Access::kNone), NFS4ERR_BAD_STATEID);
  EXPECT_EQ(st_.size(), 0u);
  EXPECT_EQ(closed_, std::vector<uint64_t>{kFile});
}

// ------------------------------------------------------------------------------ FREE / TEST

TEST_F(StateTest, FreeStateid) {
  stateid4 o = MustOpen(kA, "o", OPEN4_SHARE_ACCESS_BOTH, OPEN4_SHARE_DENY_NONE);
  stateid4 l;
  ASSERT_EQ(LockNew(kA, o, "l", WRITE_LT, 0, 10, &l), NFS4_OK);
  EXPECT_EQ(st_.FreeStateid(kA, l), NFS4ERR_LOCKS_HELD);
  EXPECT_EQ(st_.FreeStateid(kA, o), NFS4ERR_LOCKS_HELD);  // an open: CLOSE it
  EXPECT_EQ(st_.FreeStateid(kB, l), NFS4ERR_BAD_STATEID);
  EXPECT_EQ(st_.FreeStateid(kA, AnonymousStateid()), NFS4ERR_BAD_STATEID);
  ASSERT_EQ(Unlock(kA, l, 0, 10, &l), NFS4_OK);
  ASSERT_EQ(st_.FreeStateid(kA, WithSeqid(l, 1)), NFS4_OK);  // seqid is not checked
  EXPECT_EQ(st_.TestStateid(kA, l), NFS4ERR_BAD_STATEID);
  EXPECT_EQ(st_.FreeStateid(kA, l), NFS4ERR_BAD_STATEID);
  // The lock owner can start over from the open.
  stateid4 l2;
  ASSERT_EQ(LockNew(kA, o, "l", WRITE_LT, 0, 10, &l2), NFS4_OK);
  EXPECT_NE(l2.other, l.other);
  EXPECT_EQ(l2.seqid, 1u);
  ASSERT_EQ(Unlock(kA, l2, 0, 10, &l2), NFS4_OK);
  ASSERT_EQ(Close(kA, o), NFS4_OK);
  EXPECT_EQ(st_.size(), 0u);
}

TEST_F(StateTest, TestStateids) {
  stateid4 o = MustOpen(kA, "o", OPEN4_SHARE_ACCESS_BOTH, OPEN4_SHARE_DENY_NONE);
  stateid4 o2 = MustOpen(kA, "o", OPEN4_SHARE_ACCESS_READ, OPEN4_SHARE_DENY_NONE);
  stateid4 l;
  ASSERT_EQ(LockNew(kA, o2, "l", WRITE_LT, 0, 10, &l), NFS4_OK);
  stateid4 b = MustOpen(kB, "o", OPEN4_SHARE_ACCESS_READ, OPEN4_SHARE_DENY_NONE, kOther);
  std::vector<nfsstat4> got = st_.TestStateids(
      kA, {o2, WithSeqid(o2, 0), o, WithSeqid(o2, 5), l, b, AnonymousStateid(),
           ReadBypassStateid(), CurrentStateid(), MakeStateid(StateKind::kLayout, 7, 999, 1)});
  std::vector<nfsstat4> want = {NFS4_OK,
                                NFS4_OK,
                                NFS4ERR_OLD_STATEID,
                                NFS4ERR_BAD_STATEID,
                                NFS4_OK,
                                NFS4ERR_BAD_STATEID,
                                NFS4ERR_BAD_STATEID,
                                NFS4ERR_BAD_STATEID,
                                NFS4ERR_BAD_STATEID,
                                NFS4ERR_BAD_STATEID};
  EXPECT_EQ(got, want);
}

// ------------------------------------------------------------------------------ cleanup

TEST_F(StateTest, DropClientReleasesEverything) {
  stateid4 oa = MustOpen(kA, "oa", OPEN4_SHARE_ACCESS_BOTH, OPEN4_SHARE_DENY_WRITE);
  MustOpen(kA, "oa", OPEN4_SHARE_ACCESS_READ, OPEN4_SHARE_DENY_NONE, kOther);
  stateid4 la;
  ASSERT_EQ(LockNew(kA, oa, "la", WRITE_LT, 0, kEof, &la), NFS4_OK);
  stateid4 ob = MustOpen(kB, "ob", OPEN4_SHARE_ACCESS_READ, OPEN4_SHARE_DENY_NONE);
  stateid4 lb;
  EXPECT_EQ(LockNew(kB, ob, "lb", READ_LT, 0, 1, &lb), NFS4ERR_DENIED);
  stateid4 wb;
  EXPECT_EQ(Open(kB, "ob", OPEN4_SHARE_ACCESS_WRITE, OPEN4_SHARE_DENY_NONE, &wb),
            NFS4ERR_SHARE_DENIED);

  std::vector<uint64_t> gone = st_.DropClient(kA);
  // kFile is still open by B; kOther's only open was A's.
  EXPECT_EQ(gone, std::vector<uint64_t>{kOther});
  EXPECT_EQ(closed_, std::vector<uint64_t>{kOther});
  EXPECT_TRUE(st_.IsOpen(kFile));
  EXPECT_FALSE(st_.IsOpen(kOther));
  EXPECT_EQ(st_.TestStateid(kA, oa), NFS4ERR_BAD_STATEID);
  EXPECT_EQ(st_.TestStateid(kA, la), NFS4ERR_BAD_STATEID);
  ASSERT_EQ(Open(kB, "ob", OPEN4_SHARE_ACCESS_WRITE, OPEN4_SHARE_DENY_NONE, &wb), NFS4_OK);
  EXPECT_EQ(LockNew(kB, wb, "lb", WRITE_LT, 0, kEof, &lb), NFS4_OK);
  EXPECT_EQ(st_.size(), 2u);
  EXPECT_TRUE(st_.DropClient(kA).empty());  // nothing left
  EXPECT_EQ(st_.DropClient(kB), std::vector<uint64_t>{kFile});
  EXPECT_EQ(st_.size(), 0u);
}

TEST_F(StateTest, RevokedStateAnswersUntilFreed) {
  stateid4 oa = MustOpen(kA, "oa", OPEN4_SHARE_ACCESS_BOTH, OPEN4_SHARE_DENY_BOTH);
  stateid4 la;
  ASSERT_EQ(LockNew(kA, oa, "la", WRITE_LT, 0, 10, &la), NFS4_OK);
  EXPECT_FALSE(st_.HasRevoked(kA));
  ASSERT_EQ(st_.Revoke(oa, NFS4ERR_ADMIN_REVOKED), NFS4_OK);
  EXPECT_EQ(closed_, std::vector<uint64_t>{kFile});
  EXPECT_TRUE(st_.HasRevoked(kA));
  EXPECT_EQ(Io(oa, kA, Access::kRead), NFS4ERR_ADMIN_REVOKED);
  EXPECT_EQ(Io(la, kA, Access::kRead), NFS4ERR_ADMIN_REVOKED);
  EXPECT_EQ(Close(kA, oa), NFS4ERR_ADMIN_REVOKED);
  EXPECT_EQ(st_.TestStateid(kA, la), NFS4ERR_ADMIN_REVOKED);
  EXPECT_EQ(st_.TestStateid(kB, la), NFS4ERR_BAD_STATEID);
  // Its reservation and locks are gone at once.
  stateid4 ob, lb;
  ASSERT_EQ(Open(kB, "ob", OPEN4_SHARE_ACCESS_BOTH, OPEN4_SHARE_DENY_NONE, &ob), NFS4_OK);
  ASSERT_EQ(LockNew(kB, ob, "lb", WRITE_LT, 0, 10, &lb), NFS4_OK);
  // The same owner opening again gets a fresh stateid.
  stateid4 oa2;
  ASSERT_EQ(Open(kA, "oa", OPEN4_SHARE_ACCESS_READ, OPEN4_SHARE_DENY_NONE, &oa2), NFS4_OK);
  EXPECT_NE(oa2.other, oa.other);
  ASSERT_EQ(st_.FreeStateid(kA, oa), NFS4_OK);
  ASSERT_EQ(st_.FreeStateid(kA, la), NFS4_OK);
  EXPECT_FALSE(st_.HasRevoked(kA));
  EXPECT_EQ(st_.TestStateid(kA, oa), NFS4ERR_BAD_STATEID);
}

TEST_F(StateTest, RevokeClientExpiresAllItsState) {
  stateid4 oa = MustOpen(kA, "oa", OPEN4_SHARE_ACCESS_BOTH, OPEN4_SHARE_DENY_NONE);
  stateid4 oa2 = MustOpen(kA, "oa2", OPEN4_SHARE_ACCESS_READ, OPEN4_SHARE_DENY_NONE, kOther);
  stateid4 la;
  ASSERT_EQ(LockNew(kA, oa, "la", WRITE_LT, 0, 10, &la), NFS4_OK);
  stateid4 ob = MustOpen(kB, "ob", OPEN4_SHARE_ACCESS_READ, OPEN4_SHARE_DENY_NONE);
  st_.RevokeClient(kA, NFS4ERR_EXPIRED);
  EXPECT_EQ(st_.TestStateids(kA, {oa, oa2, la}),
            (std::vector<nfsstat4>{NFS4ERR_EXPIRED, NFS4ERR_EXPIRED, NFS4ERR_EXPIRED}));
  EXPECT_EQ(st_.TestStateid(kB, ob), NFS4_OK);
  EXPECT_EQ(Test(kB, "x", WRITE_LT, 0, kEof), NFS4_OK);
  EXPECT_EQ(closed_, std::vector<uint64_t>{kOther});
  EXPECT_EQ(st_.size(), 4u);
  EXPECT_TRUE(st_.DropClient(kA).empty());  // tombstones close nothing
  EXPECT_EQ(st_.size(), 1u);
}

// ------------------------------------------------------------------------------ models

// Random LOCK / LOCKU by three owners on bytes [0, 64) against a per-byte model; LOCKT by a
// fourth owner probes every byte. Exercises split, merge, upgrade and downgrade together.
TEST_F(StateTest, LocksMatchByteModel) {
  constexpr int kOwners = 3, kBytes = 64;
  stateid4 open[kOwners], lock[kOwners];
  bool have[kOwners] = {};
  for (int i = 0; i < kOwners; i++)
    open[i] = MustOpen(kA, "o" + std::to_string(i), OPEN4_SHARE_ACCESS_BOTH, 0);
  // model[b][i]: 0 unlocked, 1 read, 2 write.
  int model[kBytes][kOwners] = {};
  std::mt19937 rng(1234);
  for (int step = 0; step < 4000; step++) {
    int who = rng() % kOwners;
    uint64_t off = rng() % kBytes;
    uint64_t len = 1 + rng() % (kBytes - off);
    int op = rng() % 3;  // 0 read lock, 1 write lock, 2 unlock
    std::string owner = "l" + std::to_string(who);
    if (op == 2) {
      if (!have[who]) continue;
      ASSERT_EQ(Unlock(kA, lock[who], off, len, &lock[who]), NFS4_OK);
      for (uint64_t b = off; b < off + len; b++) model[b][who] = 0;
    } else {
      bool write = op == 1;
      bool conflict = false;
      for (uint64_t b = off; b < off + len; b++)
        for (int j = 0; j < kOwners; j++)
          if (j != who && model[b][j] && (write || model[b][j] == 2)) conflict = true;
      nfs_lock_type4 t = write ? WRITE_LT : READ_LT;
      stateid4 out;
      nfsstat4 st = have[who] ? LockExist(kA, lock[who], t, off, len, &out)
                              : LockNew(kA, open[who], owner, t, off, len, &out);
      ASSERT_EQ(st, conflict ? NFS4ERR_DENIED : NFS4_OK) << "step " << step;
      if (!conflict) {
        lock[who] = out;
        have[who] = true;
        for (uint64_t b = off; b < off + len; b++) model[b][who] = write ? 2 : 1;
      }
    }
    for (int b = 0; b < kBytes; b++) {
      bool any = false, writer = false;
      for (int j = 0; j < kOwners; j++) {
        any = any || model[b][j];
        writer = writer || model[b][j] == 2;
      }
      LOCK4denied d;
      nfsstat4 w = Test(kA, "probe", WRITE_LT, b, 1, &d);
      ASSERT_EQ(w, any ? NFS4ERR_DENIED : NFS4_OK) << "step " << step << " byte " << b;
      if (w == NFS4ERR_DENIED) {
        // The reported lock covers the byte and matches the owner's mode there.
        int j = d.owner.owner.str()[1] - '0';
        ASSERT_TRUE(d.offset <= uint64_t(b) && uint64_t(b) < d.offset + d.length);
        ASSERT_EQ(model[b][j], d.locktype == WRITE_LT ? 2 : 1);
        // ...and exactly the owner's maximal run of that mode (locks are kept merged).
        for (uint64_t x = d.offset; x < d.offset + d.length; x++)
          ASSERT_EQ(model[x][j], model[b][j]);
        if (d.offset > 0) {
          ASSERT_NE(model[d.offset - 1][j], model[b][j]);
        }
        if (d.offset + d.length < kBytes) {
          ASSERT_NE(model[d.offset + d.length][j], model[b][j]);
        }
      }
      ASSERT_EQ(Test(kA, "probe", READ_LT, b, 1), writer ? NFS4ERR_DENIED : NFS4_OK);
    }
  }
}

// The state is sharded by file. Stateids of files in every shard resolve where they belong and
// nowhere else: used with another file (in its shard or another) they are BAD_STATEID; the
// operations that have only a stateid (TEST_STATEID, FREE_STATEID, revocation) find them.
TEST_F(StateTest, StateidsOfEveryShardResolveOnlyForTheirFile) {
  constexpr uint64_t kFiles = 64;  // many times the shard count: every shard gets files
  std::vector<stateid4> sids;
  std::set<uint64_t> shards;
  for (uint64_t f = 0; f < kFiles; f++) {
    sids.push_back(MustOpen(kA, "o", OPEN4_SHARE_ACCESS_READ, OPEN4_SHARE_DENY_NONE, 100 + f));
    StateidParts p;
    ASSERT_TRUE(DecodeStateid(sids.back(), &p));
    shards.insert(p.counter % kStateShards);
  }
  EXPECT_EQ(shards.size(), kStateShards);
  for (uint64_t f = 0; f < kFiles; f++) {
    EXPECT_EQ(Io(sids[f], kA, Access::kRead, 100 + f), NFS4_OK) << f;
    EXPECT_EQ(Io(sids[f], kA, Access::kRead, 100 + (f + 1) % kFiles), NFS4ERR_BAD_STATEID) << f;
    EXPECT_EQ(Io(sids[f], kB, Access::kRead, 100 + f), NFS4ERR_BAD_STATEID) << f;
    EXPECT_EQ(st_.TestStateid(kA, sids[f]), NFS4_OK) << f;
    EXPECT_EQ(st_.TestStateid(kB, sids[f]), NFS4ERR_BAD_STATEID) << f;
  }
  EXPECT_EQ(st_.size(), kFiles);
  EXPECT_TRUE(st_.HasState(kA));
  EXPECT_FALSE(st_.HasState(kB));
  // Revocation by stateid reaches the right shard; HasRevoked sees it until FREE_STATEID.
  EXPECT_FALSE(st_.HasRevoked(kA));
  EXPECT_EQ(st_.Revoke(sids[5], NFS4ERR_ADMIN_REVOKED), NFS4_OK);
  EXPECT_TRUE(st_.HasRevoked(kA));
  EXPECT_FALSE(st_.HasRevoked(kB));
  EXPECT_EQ(Io(sids[5], kA, Access::kRead, 105), NFS4ERR_ADMIN_REVOKED);
  EXPECT_EQ(st_.FreeStateid(kA, sids[5]), NFS4_OK);
  EXPECT_FALSE(st_.HasRevoked(kA));
  EXPECT_EQ(st_.TestStateid(kA, sids[5]), NFS4ERR_BAD_STATEID);
  // Dropping the client empties every shard and reports every file's last close.
  closed_.clear();
  std::vector<uint64_t> gone = st_.DropClient(kA);
  EXPECT_EQ(gone.size(), kFiles - 1);
  EXPECT_EQ(st_.size(), 0u);
  EXPECT_FALSE(st_.HasState(kA));
}

// Layout state is sharded by file as open state is: layout stateids of files in every shard
// are held only for their own file, and are remembered as issued to their client after they
// are returned; whole-client operations reach every shard.
TEST(LayoutShardTest, LayoutStateidsOfEveryShard) {
  LayoutTable lt(7);
  constexpr uint64_t kFiles = 64;
  std::vector<stateid4> sids(kFiles);
  std::set<uint64_t> shards;
  for (uint64_t f = 0; f < kFiles; f++) {
    ASSERT_EQ(lt.Grant(kA, 500 + f, LAYOUTIOMODE4_READ, stateid4{}, &sids[f]), NFS4_OK);
    StateidParts p;
    ASSERT_TRUE(DecodeStateid(sids[f], &p));
    shards.insert(p.counter % kStateShards);
  }
  EXPECT_EQ(shards.size(), kStateShards);
  EXPECT_EQ(lt.size(), kFiles);
  EXPECT_EQ(lt.FilesOf(kA).size(), kFiles);
  for (uint64_t f = 0; f < kFiles; f++) {
    EXPECT_TRUE(lt.Holds(kA, 500 + f, sids[f])) << f;
    EXPECT_FALSE(lt.Holds(kA, 500 + (f + 1) % kFiles, sids[f])) << f;
    EXPECT_TRUE(lt.IssuedTo(kA, sids[f])) << f;
    EXPECT_FALSE(lt.IssuedTo(kB, sids[f])) << f;
    // Another client's layout stateid presented for this file is refused.
    stateid4 out;
    EXPECT_EQ(lt.Grant(kB, 500 + f, LAYOUTIOMODE4_READ, sids[f], &out), NFS4ERR_BAD_STATEID);
  }
  bool remaining = true;
  stateid4 out;
  ASSERT_EQ(lt.Return(kA, 503, LAYOUTIOMODE4_ANY, sids[3], &remaining, &out), NFS4_OK);
  EXPECT_FALSE(remaining);
  EXPECT_FALSE(lt.Holds(kA, 503, sids[3]));
  EXPECT_TRUE(lt.IssuedTo(kA, sids[3]));  // returned, still known as ours
  EXPECT_EQ(lt.ReturnIomode(kA, LAYOUTIOMODE4_READ).size(), kFiles - 1);
  EXPECT_EQ(lt.size(), 0u);
  for (uint64_t f = 0; f < kFiles; f++) EXPECT_TRUE(lt.IssuedTo(kA, sids[f])) << f;
  EXPECT_TRUE(lt.FilesOf(kA).empty());
}

TEST(StateConcurrencyTest, ConcurrentClients) {
  constexpr int kThreads = 4, kRounds = 2000;
  std::atomic<int> failures{0};
  std::atomic<int> last_closes{0};
  StateManager sm(StateManager::Options{3, [&](uint64_t) { last_closes++; }});
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; t++) {
    threads.emplace_back([&, t] {
      clientid4 c = 0x200000000 + t;
      for (int i = 0; i < kRounds; i++) {
        uint64_t file = i % 3;
        OpenRequest r;
        r.client = c;
        r.owner = "o";
        r.file = file;
        r.share_access = OPEN4_SHARE_ACCESS_BOTH;
        stateid4 o, l;
        if (sm.Open(r, &o) != NFS4_OK) {
          failures++;
          continue;
        }
        LOCK4args a;
        a.locktype = WRITE_LT;
        a.offset = static_cast<uint64_t>(t) * 10;
        a.length = 10;
        a.locker.new_lock_owner = true;
        a.locker.open_owner.open_stateid = o;
        a.locker.open_owner.lock_owner.owner = Bytes::Copy("l");
        LOCK4denied d;
        if (sm.Lock(c, file, a, &l, &d) != NFS4_OK) failures++;
        LOCKU4args u;
        u.locktype = WRITE_LT;
        u.lock_stateid = l;
        u.offset = 0;
        u.length = NFS4_UINT64_MAX;
        stateid4 out;
        if (sm.Unlock(c, file, u, &out) != NFS4_OK) failures++;
        if (i % 2 == 0) {
          if (sm.Close(c, file, o, &out) != NFS4_OK) failures++;
        } else {
          sm.DropClient(c);
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_GT(last_closes.load(), 0);
  EXPECT_EQ(sm.size(), 0u);
  for (uint64_t f = 0; f < 3; f++) EXPECT_FALSE(sm.IsOpen(f));
}

// Many threads on many files at once (every shard busy): opens, locks, unlocks, closes and
// whole-client drops interleave; nothing is lost or left behind.
TEST(StateConcurrencyTest, ManyFilesAcrossShards) {
  constexpr int kThreads = 4, kRounds = 3000;
  std::atomic<int> failures{0};
  StateManager sm(StateManager::Options{3, nullptr});
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; t++) {
    threads.emplace_back([&, t] {
      clientid4 c = 0x300000000 + t;
      for (int i = 0; i < kRounds; i++) {
        uint64_t file = static_cast<uint64_t>(i % 97) + 1000;
        OpenRequest r;
        r.client = c;
        r.owner = "o" + std::to_string(i % 5);
        r.file = file;
        r.share_access = OPEN4_SHARE_ACCESS_READ;
        stateid4 o, out;
        if (sm.Open(r, &o) != NFS4_OK) {
          failures++;
          continue;
        }
        if (sm.CheckIo(o, c, file, false) != NFS4_OK) failures++;
        if (sm.CheckIo(o, c + 100, file, false) != NFS4ERR_BAD_STATEID) failures++;
        if (i % 7 == 0) {
          sm.DropClient(c);
        } else if (sm.Close(c, file, o, &out) != NFS4_OK) {
          failures++;
        }
      }
      sm.DropClient(c);
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(sm.size(), 0u);
}

}  // namespace
}  // namespace loom::nfs4
