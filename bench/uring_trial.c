// uring_trial: is io_uring worth it for loom-ds's read path? (issue 13, "try io_uring")
//
// One process, two threads, one TCP connection over loopback. The client keeps --qd reads in
// flight (16-byte requests: offset, length, id) against a file in the page cache; the server
// answers each with a 16-byte header and the bytes, in one of three ways:
//   epoll     what loom-ds's event loop does for a page-cache hit: epoll_wait, recv,
//             preadv2(RWF_NOWAIT) into a buffer, sendmsg(header, buffer)
//   uring     io_uring (liburing): RECV; per request READ_FIXED into a registered buffer
//             linked to SENDMSG(header, buffer) with MSG_WAITALL; one io_uring_enter per
//             round of completions
//   uring-zc  as uring, but the bytes go out with SENDMSG_ZC (zero-copy send; the buffer
//             is reused only after the kernel's notification)
// Prints one JSON line per run: ops/s, GiB/s, server CPU µs per op (the server thread's
// CLOCK_THREAD_CPUTIME_ID), client CPU µs per op, and syscalls the server made per op.
// Every reply's first and last 8 bytes are checked against the file's pattern (each 8-byte
// word holds its own offset).
//
//   uring_trial --mode epoll|uring|uring-zc --bs BYTES --qd N --seconds S [--file PATH]
//               [--size BYTES] [--random]
// Exit: 0 ok, 2 usage, 3 data error, 4 system error (io_uring refused: 4 with a message).
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define MAXQD 64

struct req { uint64_t off; uint32_t len; uint32_t id; };
struct hdr { uint32_t id; uint32_t count; uint64_t off; };

static const char* g_mode = "epoll";
static uint64_t g_bs = 4096, g_size = 256ull << 20;
static int g_qd = 1, g_random = 0;
static double g_seconds = 3;
static int g_file = -1;
static volatile int g_stop = 0;
static double g_server_cpu = 0;
static uint64_t g_server_syscalls = 0;

static void die(const char* what, int code) {
  fprintf(stderr, "uring_trial: %s: %s\n", what, strerror(errno));
  exit(code);
}
static double now_s(clockid_t c) {
  struct timespec ts;
  clock_gettime(c, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

// ---- server: epoll (loom-ds's shape) ----
static void serve_epoll(int s, char** bufs) {
  int ep = epoll_create1(0);
  struct epoll_event ev = {.events = EPOLLIN, .data.fd = s};
  if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, s, &ev) < 0) die("epoll", 4);
  char in[MAXQD * sizeof(struct req)];
  size_t have = 0;
  for (;;) {
    struct epoll_event out;
    g_server_syscalls++;
    if (epoll_wait(ep, &out, 1, -1) < 0) {
      if (errno == EINTR) continue;
      die("epoll_wait", 4);
    }
    for (;;) {
      g_server_syscalls++;
      ssize_t n = recv(s, in + have, sizeof(in) - have, MSG_DONTWAIT);
      if (n == 0) { close(ep); return; }
      if (n < 0) {
        if (errno == EAGAIN) break;
        die("recv", 4);
      }
      have += (size_t)n;
      size_t used = 0;
      for (; have - used >= sizeof(struct req); used += sizeof(struct req)) {
        struct req r;
        memcpy(&r, in + used, sizeof(r));
        char* b = bufs[r.id % MAXQD];
        struct iovec fv = {b, r.len};
        g_server_syscalls++;
        ssize_t got = preadv2(g_file, &fv, 1, (off_t)r.off, RWF_NOWAIT);
        if (got < 0 && errno == EAGAIN) { g_server_syscalls++; got = pread(g_file, b, r.len, (off_t)r.off); }
        if (got < 0) die("pread", 4);
        struct hdr h = {r.id, (uint32_t)got, r.off};
        struct iovec v[2] = {{&h, sizeof(h)}, {b, (size_t)got}};
        struct msghdr m = {.msg_iov = v, .msg_iovlen = 2};
        size_t left = sizeof(h) + (size_t)got;
        while (left > 0) {  // blocking socket for sends: waits as loom-ds waits for EPOLLOUT
          g_server_syscalls++;
          ssize_t w = sendmsg(s, &m, 0);
          if (w < 0) die("sendmsg", 4);
          left -= (size_t)w;
          while (w > 0) {
            size_t k = (size_t)w < m.msg_iov[0].iov_len ? (size_t)w : m.msg_iov[0].iov_len;
            m.msg_iov[0].iov_base = (char*)m.msg_iov[0].iov_base + k;
            m.msg_iov[0].iov_len -= k;
            w -= (ssize_t)k;
            if (m.msg_iov[0].iov_len == 0 && m.msg_iovlen > 1) { m.msg_iov++; m.msg_iovlen--; }
          }
        }
      }
      memmove(in, in + used, have - used);
      have -= used;
    }
  }
}

// ---- server: io_uring ----
enum { TAG_RECV = 1, TAG_READ = 2, TAG_SEND = 3, TAG_ZC = 4 };
#define UD(tag, slot) (((uint64_t)(tag) << 32) | (uint32_t)(slot))

static void serve_uring(int s, char** bufs, int zc) {
  struct io_uring ring;
  int rc = io_uring_queue_init(4 * MAXQD + 8, &ring, 0);
  if (rc < 0) { errno = -rc; die("io_uring_queue_init (io_uring disabled?)", 4); }
  struct iovec reg[MAXQD];
  for (int i = 0; i < MAXQD; i++) reg[i] = (struct iovec){bufs[i], g_bs};
  rc = io_uring_register_buffers(&ring, reg, MAXQD);
  if (rc < 0) { errno = -rc; die("io_uring_register_buffers", 4); }
  g_server_syscalls += 2;
  char in[MAXQD * sizeof(struct req)];
  size_t have = 0;
  // Buffers come from a free list and go back when the kernel is done with them: after the
  // send (copying), after the send's notification (zero-copy: the pages stay the kernel's
  // until then, and a buffer reused earlier corrupts a reply already sent).
  struct hdr hdrs[MAXQD];
  int freeb[MAXQD], nfree = MAXQD;
  for (int i = 0; i < MAXQD; i++) freeb[i] = MAXQD - 1 - i;
  struct req waiting[MAXQD];
  int nwaiting = 0;
  // Replies whose bytes are read, in the order their reads completed. One send at a time per
  // connection, gathering every reply ready: independent SENDMSGs on one stream socket may
  // run in any order, and one that the socket's buffer cuts short is finished later, so two
  // in flight can interleave their bytes (the first version of this trial linked each READ
  // to its own SENDMSG and corrupted the stream about once in ten runs at 8 in flight).
  int ready[MAXQD], nready = 0;
  int sending[MAXQD], nsending = 0;
  // Zero-copy sends whose notification has not come: their buffers, by send number.
  enum { kSends = 64 };
  int held[kSends][MAXQD], nheld[kSends];
  uint32_t send_seq = 0;
  struct iovec iov[2 * MAXQD];
  struct msghdr msg;
  int recv_armed = 0, closing = 0, inflight = 0, notifs = 0;
  for (;;) {
    if (!recv_armed && !closing) {
      struct io_uring_sqe* sqe = io_uring_get_sqe(&ring);
      io_uring_prep_recv(sqe, s, in + have, sizeof(in) - have, 0);
      io_uring_sqe_set_data64(sqe, UD(TAG_RECV, 0));
      recv_armed = 1;
    }
    while (nwaiting > 0 && nfree > 0) {  // requests start in arrival order as buffers free up
      struct req r = waiting[0];
      memmove(waiting, waiting + 1, sizeof(struct req) * (size_t)--nwaiting);
      int b = freeb[--nfree];
      hdrs[b] = (struct hdr){r.id, r.len, r.off};
      struct io_uring_sqe* rd = io_uring_get_sqe(&ring);
      io_uring_prep_read_fixed(rd, g_file, bufs[b], r.len, r.off, b);
      io_uring_sqe_set_data64(rd, UD(TAG_READ, b));
    }
    if (nsending == 0 && nready > 0) {
      for (int i = 0; i < nready; i++) {
        int b = ready[i];
        iov[2 * i] = (struct iovec){&hdrs[b], sizeof(struct hdr)};
        iov[2 * i + 1] = (struct iovec){bufs[b], hdrs[b].count};
        sending[i] = b;
      }
      nsending = nready;
      nready = 0;
      msg = (struct msghdr){.msg_iov = iov, .msg_iovlen = (size_t)(2 * nsending)};
      struct io_uring_sqe* sd = io_uring_get_sqe(&ring);
      if (zc) io_uring_prep_sendmsg_zc(sd, s, &msg, MSG_WAITALL);
      else io_uring_prep_sendmsg(sd, s, &msg, MSG_WAITALL);
      io_uring_sqe_set_data64(sd, UD(zc ? TAG_ZC : TAG_SEND, send_seq));
    }
    if (closing && inflight == 0 && notifs == 0) break;
    g_server_syscalls++;
    rc = io_uring_submit_and_wait(&ring, 1);
    if (rc < 0 && rc != -EINTR) { errno = -rc; die("io_uring_submit_and_wait", 4); }
    struct io_uring_cqe* cqe;
    unsigned head, seen = 0;
    io_uring_for_each_cqe(&ring, head, cqe) {
      seen++;
      uint64_t ud = io_uring_cqe_get_data64(cqe);
      int tag = (int)(ud >> 32);
      uint32_t low = (uint32_t)ud;
      if (tag == TAG_RECV) {
        recv_armed = 0;
        if (cqe->res <= 0) { closing = 1; continue; }
        have += (size_t)cqe->res;
        size_t used = 0;
        for (; have - used >= sizeof(struct req); used += sizeof(struct req)) {
          memcpy(&waiting[nwaiting++], in + used, sizeof(struct req));
          inflight++;
        }
        memmove(in, in + used, have - used);
        have -= used;
      } else if (tag == TAG_READ) {
        if (cqe->res != (int)hdrs[low].count) {
          fprintf(stderr, "uring_trial: short read %d\n", cqe->res);
          exit(4);
        }
        ready[nready++] = (int)low;
      } else if (cqe->flags & IORING_CQE_F_NOTIF) {  // zero-copy: the kernel let go
        int k = (int)(low % kSends);
        for (int i = 0; i < nheld[k]; i++) freeb[nfree++] = held[k][i];
        notifs--;
      } else {  // the send: every byte is in the socket
        if (cqe->res < 0) { errno = -cqe->res; die(zc ? "sendmsg_zc" : "sendmsg", 4); }
        if (cqe->flags & IORING_CQE_F_MORE) {  // a notification follows
          int k = (int)(low % kSends);
          memcpy(held[k], sending, sizeof(int) * (size_t)nsending);
          nheld[k] = nsending;
          notifs++;
        } else {
          for (int i = 0; i < nsending; i++) freeb[nfree++] = sending[i];
        }
        inflight -= nsending;
        nsending = 0;
        send_seq++;
      }
    }
    io_uring_cq_advance(&ring, seen);
  }
  io_uring_queue_exit(&ring);
}

struct server_args { int lfd; };
static void* server_main(void* p) {
  struct server_args* a = p;
  int s = accept(a->lfd, NULL, NULL);
  if (s < 0) die("accept", 4);
  int one = 1;
  setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  char* bufs[MAXQD];
  for (int i = 0; i < MAXQD; i++)
    if (posix_memalign((void**)&bufs[i], 4096, g_bs) != 0) die("alloc", 4);
  double c0 = now_s(CLOCK_THREAD_CPUTIME_ID);
  if (strcmp(g_mode, "epoll") == 0) serve_epoll(s, bufs);
  else serve_uring(s, bufs, strcmp(g_mode, "uring-zc") == 0);
  g_server_cpu = now_s(CLOCK_THREAD_CPUTIME_ID) - c0;
  close(s);
  return NULL;
}

static int read_full(int s, void* p, size_t n) {
  size_t got = 0;
  while (got < n) {
    ssize_t r = recv(s, (char*)p + got, n - got, 0);
    if (r <= 0) return -1;
    got += (size_t)r;
  }
  return 0;
}

int main(int argc, char** argv) {
  const char* path = "/tmp/uring_trial.dat";
  for (int i = 1; i < argc; i++) {
    const char* a = argv[i];
    const char* v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "--random")) { g_random = 1; continue; }
    if (!v) { fprintf(stderr, "uring_trial: %s needs a value\n", a); return 2; }
    if (!strcmp(a, "--mode")) g_mode = v;
    else if (!strcmp(a, "--bs")) g_bs = strtoull(v, NULL, 0);
    else if (!strcmp(a, "--qd")) g_qd = atoi(v);
    else if (!strcmp(a, "--seconds")) g_seconds = atof(v);
    else if (!strcmp(a, "--file")) path = v;
    else if (!strcmp(a, "--size")) g_size = strtoull(v, NULL, 0);
    else { fprintf(stderr, "uring_trial: unknown option %s\n", a); return 2; }
    i++;
  }
  if (strcmp(g_mode, "epoll") && strcmp(g_mode, "uring") && strcmp(g_mode, "uring-zc")) {
    fprintf(stderr, "uring_trial: --mode is epoll, uring or uring-zc\n");
    return 2;
  }
  if (g_qd < 1 || g_qd > MAXQD / 4 || g_bs < 16 || g_bs % 8 || g_bs > (64u << 20) ||
      g_size < g_bs || g_size % g_bs) {
    fprintf(stderr, "uring_trial: --qd 1-%d, --bs a multiple of 8 up to 64 MiB, --size a multiple of --bs\n", MAXQD / 4);
    return 2;
  }
  // The file: each 8-byte word holds its own offset; written once, then read from the cache.
  g_file = open(path, O_RDWR | O_CREAT, 0600);
  if (g_file < 0) die(path, 4);
  struct stat st;
  if (fstat(g_file, &st) < 0) die("fstat", 4);
  if ((uint64_t)st.st_size != g_size) {
    if (ftruncate(g_file, 0) < 0) die("ftruncate", 4);
    uint64_t chunk[8192];
    for (uint64_t off = 0; off < g_size; off += sizeof(chunk)) {
      for (size_t k = 0; k < 8192; k++) chunk[k] = off + k * 8;
      size_t n = g_size - off < sizeof(chunk) ? g_size - off : sizeof(chunk);
      if (pwrite(g_file, chunk, n, (off_t)off) != (ssize_t)n) die("write", 4);
    }
  }
  char* warm = malloc(1 << 20);
  for (uint64_t off = 0; off < g_size; off += 1 << 20)
    if (pread(g_file, warm, 1 << 20, (off_t)off) < 0) die("read", 4);
  free(warm);

  int lfd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t sl = sizeof(sa);
  if (lfd < 0 || bind(lfd, (struct sockaddr*)&sa, sizeof(sa)) < 0 || listen(lfd, 1) < 0 ||
      getsockname(lfd, (struct sockaddr*)&sa, &sl) < 0)
    die("listen", 4);
  struct server_args sargs = {lfd};
  pthread_t th;
  pthread_create(&th, NULL, server_main, &sargs);
  int c = socket(AF_INET, SOCK_STREAM, 0);
  if (connect(c, (struct sockaddr*)&sa, sizeof(sa)) < 0) die("connect", 4);
  int one = 1;
  setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));

  const uint64_t blocks = g_size / g_bs;
  uint64_t seq = 0, rnd = 88172645463325252ull, done = 0, bytes = 0;
  uint64_t offs[MAXQD];
  char* rbuf = malloc(g_bs);
  double c0 = now_s(CLOCK_THREAD_CPUTIME_ID), t0 = now_s(CLOCK_MONOTONIC), t1 = t0;
  uint32_t next_id = 0;
  int inflight = 0, bad = 0;
  for (;;) {
    while (inflight < g_qd && t1 - t0 < g_seconds) {
      uint64_t b;
      if (g_random) {
        rnd ^= rnd << 13; rnd ^= rnd >> 7; rnd ^= rnd << 17;
        b = rnd % blocks;
      } else {
        b = seq++ % blocks;
      }
      struct req r = {b * g_bs, (uint32_t)g_bs, next_id};
      offs[next_id % MAXQD] = r.off;
      // Ids cycle over the server's MAXQD buffers: at most g_qd (<= MAXQD) are in flight.
      next_id = (next_id + 1) % MAXQD;
      if (send(c, &r, sizeof(r), 0) != sizeof(r)) die("send", 4);
      inflight++;
    }
    if (inflight == 0) break;
    struct hdr h;
    if (read_full(c, &h, sizeof(h)) < 0 || h.count != g_bs || read_full(c, rbuf, h.count) < 0) {
      fprintf(stderr, "uring_trial: bad reply\n");
      return 4;
    }
    uint64_t first, last;
    memcpy(&first, rbuf, 8);
    memcpy(&last, rbuf + g_bs - 8, 8);
    if (h.off != offs[h.id % MAXQD] || first != h.off || last != h.off + g_bs - 8) {
      if (bad++ == 0)
        fprintf(stderr, "uring_trial: reply %u: offset %llu (asked %llu), words %llu .. %llu\n",
                h.id, (unsigned long long)h.off, (unsigned long long)offs[h.id % MAXQD],
                (unsigned long long)first, (unsigned long long)last);
    }
    inflight--;
    done++;
    bytes += h.count;
    t1 = now_s(CLOCK_MONOTONIC);
  }
  double client_cpu = now_s(CLOCK_THREAD_CPUTIME_ID) - c0;
  double secs = t1 - t0;
  shutdown(c, SHUT_WR);
  pthread_join(th, NULL);
  close(c);
  printf("{\"bench\":\"uring_trial\",\"mode\":\"%s\",\"bs\":%llu,\"qd\":%d,\"random\":%s,"
         "\"ops\":%llu,\"seconds\":%.3f,\"ops_s\":%.1f,\"gib_s\":%.3f,"
         "\"server_cpu_us_per_op\":%.2f,\"client_cpu_us_per_op\":%.2f,"
         "\"server_syscalls_per_op\":%.2f,\"bad\":%d}\n",
         g_mode, (unsigned long long)g_bs, g_qd, g_random ? "true" : "false",
         (unsigned long long)done, secs, done / secs, bytes / secs / (1 << 30),
         g_server_cpu / done * 1e6, client_cpu / done * 1e6,
         (double)g_server_syscalls / done, bad);
  return bad ? 3 : 0;
}
