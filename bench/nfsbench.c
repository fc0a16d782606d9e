/*
 * nfsbench -- a small NFSv3 benchmark client over libnfs (4.x) raw async API.
 *
 * One TCP connection, several requests in flight (queue depth), explicit
 * NFSv3 READ / WRITE(UNSTABLE) / COMMIT calls, so what is measured is the
 * server plus one pipelined connection -- not libnfs's page cache, readahead
 * or chunking logic.
 *
 *   nfsbench --url 'nfs://127.0.0.1/?nfsport=P&mountport=P' --mode all
 *
 * Modes
 *   seq-write  create/truncate FILE, WRITE3 UNSTABLE bs-sized blocks from
 *              offset 0 to size with qd in flight, then ONE COMMIT3 of the
 *              whole file.  Prints two results: op "seq-write" (last WRITE
 *              reply, commit not included) and op "seq-write+commit".
 *   seq-read   READ3 bs-sized blocks from 0 to the file size, qd in flight.
 *   rand-read  READ3 bs-sized (default 4 KiB) blocks at uniformly random
 *              bs-aligned offsets for --duration seconds, qd in flight.
 *   all        seq-write, seq-read, rand-read in that order.
 *
 * Data check: every 4 KiB-aligned file offset X in data written by
 * seq-write starts with the 8 bytes (X ^ STAMP_MAGIC) (the rest is random).
 * The read modes check those stamps in every reply (cheap: 8 bytes per
 * 4 KiB) unless --no-verify; a wrong stamp is a data error (exit 3).
 *
 * Output: one JSON line per result on stdout; diagnostics on stderr.
 * Exit: 0 ok, 2 usage, 3 data error (bad stamp / write verifier changed),
 *       4 NFS/RPC error or connection failure.
 *
 * Build: gcc -O2 -o nfsbench nfsbench.c -lnfs      (Debian: libnfs-dev)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <nfsc/libnfs.h>
#include <nfsc/libnfs-raw.h>
#include <nfsc/libnfs-raw-nfs.h>

#define STAMP_MAGIC 0x4c6f6f6d42656e63ULL /* "LoomBenc" */
#define STAMP_EVERY 4096u

/* libnfs 4.x keeps struct nfs_fh private (lib/libnfs-private.h):
 *   struct nfs_fh { int len; char *val; };
 * nfs_get_fh() returns a pointer to it.  We mirror the layout here. */
struct nfsbench_fh {
	int len;
	char *val;
};

enum op_kind { OP_SEQ_WRITE, OP_SEQ_READ, OP_RAND_READ };

static const char *g_target = "unknown";
static int g_verify = 1;
static int g_exit_code = 0;

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static double cpu_self_s(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec * 1e-6 +
	       (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec * 1e-6;
}

static void die(int code, const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "nfsbench: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	exit(code);
}

/* xorshift64* -- fast, good enough for offsets and filler */
static uint64_t rng_next(uint64_t *s)
{
	uint64_t x = *s;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545F4914F6CDD1DULL;
}

static uint64_t parse_size(const char *s)
{
	char *end;
	double v = strtod(s, &end);
	if (end == s || v < 0)
		die(2, "bad size '%s'", s);
	switch (*end) {
	case 'k': case 'K': v *= 1024.0; end++; break;
	case 'm': case 'M': v *= 1024.0 * 1024; end++; break;
	case 'g': case 'G': v *= 1024.0 * 1024 * 1024; end++; break;
	case 't': case 'T': v *= 1024.0 * 1024 * 1024 * 1024; end++; break;
	default: break;
	}
	if (*end == 'i' || *end == 'I')
		end++;
	if (*end == 'b' || *end == 'B')
		end++;
	if (*end != '\0')
		die(2, "bad size suffix in '%s'", s);
	return (uint64_t)v;
}

/* ---------------------------------------------------------------- latency */

struct lat {
	uint64_t *v;
	size_t n, cap;
};

static void lat_add(struct lat *l, uint64_t ns)
{
	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 65536;
		l->v = realloc(l->v, l->cap * sizeof(*l->v));
		if (!l->v)
			die(4, "out of memory (latency array)");
	}
	l->v[l->n++] = ns;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static double lat_pct_us(struct lat *l, double p)
{
	if (l->n == 0)
		return 0.0;
	size_t i = (size_t)(p * (double)(l->n - 1) + 0.5);
	if (i >= l->n)
		i = l->n - 1;
	return (double)l->v[i] / 1000.0;
}

/* ------------------------------------------------------------------ job */

struct job;

struct slot {
	struct job *job;
	char *buf;         /* write payload */
	uint64_t off;      /* current request offset */
	uint32_t len;      /* current request length */
	uint64_t t0;       /* issue time of the logical request (ns) */
	int busy;
};

struct job {
	enum op_kind kind;
	struct rpc_context *rpc;
	struct nfs_fh3 fh;
	uint64_t size;     /* file size covered */
	uint32_t bs;
	int qd;
	int inflight;
	uint64_t next_off; /* sequential cursor */
	uint64_t nblocks;  /* random: number of bs blocks */
	uint64_t rng;
	double deadline;   /* random: stop issuing after this */
	int stop;
	int failed;
	uint64_t bytes;    /* payload bytes completed */
	uint64_t ops;      /* logical requests completed */
	uint64_t stamp_errors;
	uint64_t short_ios;
	double t_first, t_last;
	struct lat lat;
	/* write verifier tracking */
	int have_verf;
	char verf[NFS3_WRITEVERFSIZE];
	int verf_changed;
	int any_unstable;
	struct slot *slots;
	char *fill;        /* random filler template, bs bytes */
};

static void job_fail(struct job *j, const char *fmt, ...)
{
	va_list ap;
	if (j->failed)
		return;
	j->failed = 1;
	j->stop = 1;
	fprintf(stderr, "nfsbench: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
}

static void stamp_buf(char *buf, uint64_t off, uint32_t len)
{
	uint64_t first = (off + STAMP_EVERY - 1) / STAMP_EVERY * STAMP_EVERY;
	for (uint64_t x = first; x + 8 <= off + len; x += STAMP_EVERY) {
		uint64_t v = x ^ STAMP_MAGIC;
		memcpy(buf + (x - off), &v, 8);
	}
}

static void check_stamps(struct job *j, const char *data, uint64_t off,
			 uint32_t len)
{
	uint64_t first = (off + STAMP_EVERY - 1) / STAMP_EVERY * STAMP_EVERY;
	for (uint64_t x = first; x + 8 <= off + len; x += STAMP_EVERY) {
		uint64_t v;
		memcpy(&v, data + (x - off), 8);
		if (v != (x ^ STAMP_MAGIC)) {
			if (j->stamp_errors < 5)
				fprintf(stderr,
					"nfsbench: DATA ERROR at file offset %" PRIu64
					": stamp %016" PRIx64 " expected %016" PRIx64 "\n",
					x, v, (uint64_t)(x ^ STAMP_MAGIC));
			j->stamp_errors++;
		}
	}
}

static void issue(struct slot *s);

/* pick the next request for a free slot; returns 0 if nothing to issue */
static int next_request(struct job *j, struct slot *s)
{
	if (j->stop || j->failed)
		return 0;
	if (j->kind == OP_RAND_READ) {
		if (now_s() >= j->deadline) {
			j->stop = 1;
			return 0;
		}
		s->off = (rng_next(&j->rng) % j->nblocks) * j->bs;
		s->len = j->bs;
		return 1;
	}
	if (j->next_off >= j->size)
		return 0;
	s->off = j->next_off;
	s->len = (j->size - j->next_off) < j->bs ? (uint32_t)(j->size - j->next_off)
						   : j->bs;
	j->next_off += s->len;
	return 1;
}

static void complete(struct slot *s)
{
	struct job *j = s->job;
	uint64_t t = now_ns();
	lat_add(&j->lat, t - s->t0);
	j->ops++;
	j->t_last = (double)t * 1e-9;
	s->busy = 0;
	j->inflight--;
	if (next_request(j, s)) {
		s->t0 = now_ns();
		issue(s);
	}
}

static void read_cb(struct rpc_context *rpc, int status, void *data,
		    void *private_data)
{
	struct slot *s = private_data;
	struct job *j = s->job;
	(void)rpc;
	if (status != RPC_STATUS_SUCCESS) {
		job_fail(j, "READ rpc failed: %s",
			 status == RPC_STATUS_ERROR && data ? (char *)data : "cancel/timeout");
		s->busy = 0;
		j->inflight--;
		return;
	}
	READ3res *res = data;
	if (res->status != NFS3_OK) {
		job_fail(j, "READ at %" PRIu64 " len %u: nfsstat3 %d", s->off,
			 s->len, (int)res->status);
		s->busy = 0;
		j->inflight--;
		return;
	}
	READ3resok *ok = &res->READ3res_u.resok;
	uint32_t got = ok->data.data_len;
	if (got > s->len || ok->count != got) {
		job_fail(j, "READ at %" PRIu64 ": bad reply count %u / data_len %u for %u",
			 s->off, ok->count, got, s->len);
		s->busy = 0;
		j->inflight--;
		return;
	}
	if (g_verify && got)
		check_stamps(j, ok->data.data_val, s->off, got);
	j->bytes += got;
	if (got < s->len) {
		if (ok->eof || got == 0) {
			job_fail(j, "READ at %" PRIu64 ": short read %u of %u (eof=%d) "
				 "inside the file", s->off, got, s->len, ok->eof);
			s->busy = 0;
			j->inflight--;
			return;
		}
		/* legal short read: fetch the rest with the same slot */
		j->short_ios++;
		s->off += got;
		s->len -= got;
		j->inflight--;
		issue(s);
		return;
	}
	complete(s);
}

static void write_cb(struct rpc_context *rpc, int status, void *data,
		     void *private_data)
{
	struct slot *s = private_data;
	struct job *j = s->job;
	(void)rpc;
	if (status != RPC_STATUS_SUCCESS) {
		job_fail(j, "WRITE rpc failed: %s",
			 status == RPC_STATUS_ERROR && data ? (char *)data : "cancel/timeout");
		s->busy = 0;
		j->inflight--;
		return;
	}
	WRITE3res *res = data;
	if (res->status != NFS3_OK) {
		job_fail(j, "WRITE at %" PRIu64 " len %u: nfsstat3 %d", s->off,
			 s->len, (int)res->status);
		s->busy = 0;
		j->inflight--;
		return;
	}
	WRITE3resok *ok = &res->WRITE3res_u.resok;
	if (ok->committed == UNSTABLE)
		j->any_unstable = 1;
	if (!j->have_verf) {
		memcpy(j->verf, ok->verf, NFS3_WRITEVERFSIZE);
		j->have_verf = 1;
	} else if (memcmp(j->verf, ok->verf, NFS3_WRITEVERFSIZE) != 0) {
		j->verf_changed = 1;
	}
	uint32_t got = ok->count;
	if (got > s->len || got == 0) {
		job_fail(j, "WRITE at %" PRIu64 ": server wrote %u of %u", s->off,
			 got, s->len);
		s->busy = 0;
		j->inflight--;
		return;
	}
	j->bytes += got;
	if (got < s->len) {
		j->short_ios++;
		memmove(s->buf, s->buf + got, s->len - got);
		s->off += got;
		s->len -= got;
		j->inflight--;
		issue(s);
		return;
	}
	complete(s);
}

static void issue(struct slot *s)
{
	struct job *j = s->job;
	int rc;
	s->busy = 1;
	j->inflight++;
	if (j->kind == OP_SEQ_WRITE) {
		WRITE3args a;
		memset(&a, 0, sizeof(a));
		a.file = j->fh;
		a.offset = s->off;
		a.count = s->len;
		a.stable = UNSTABLE;
		stamp_buf(s->buf, s->off, s->len);
		a.data.data_len = s->len;
		a.data.data_val = s->buf;
		rc = rpc_nfs3_write_async(j->rpc, write_cb, &a, s);
	} else {
		READ3args a;
		memset(&a, 0, sizeof(a));
		a.file = j->fh;
		a.offset = s->off;
		a.count = s->len;
		rc = rpc_nfs3_read_async(j->rpc, read_cb, &a, s);
	}
	if (rc != 0) {
		s->busy = 0;
		j->inflight--;
		job_fail(j, "failed to queue request: %s", rpc_get_error(j->rpc));
	}
}

static void run_loop(struct rpc_context *rpc, int (*done)(void *), void *arg)
{
	while (!done(arg)) {
		struct pollfd p;
		p.fd = rpc_get_fd(rpc);
		p.events = rpc_which_events(rpc);
		p.revents = 0;
		int n = poll(&p, 1, 100);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			die(4, "poll: %s", strerror(errno));
		}
		if (rpc_service(rpc, n > 0 ? p.revents : 0) < 0)
			die(4, "rpc_service failed (connection lost?): %s",
			    rpc_get_error(rpc));
	}
}

static int job_done(void *arg)
{
	struct job *j = arg;
	if (j->inflight > 0)
		return 0;
	if (j->failed)
		return 1;
	if (j->kind == OP_RAND_READ)
		return j->stop;
	return j->next_off >= j->size;
}

struct commit_state {
	int done;
	int failed;
	char verf[NFS3_WRITEVERFSIZE];
};

static void commit_cb(struct rpc_context *rpc, int status, void *data,
		      void *private_data)
{
	struct commit_state *c = private_data;
	(void)rpc;
	c->done = 1;
	if (status != RPC_STATUS_SUCCESS) {
		fprintf(stderr, "nfsbench: COMMIT rpc failed: %s\n",
			status == RPC_STATUS_ERROR && data ? (char *)data : "cancel/timeout");
		c->failed = 1;
		return;
	}
	COMMIT3res *res = data;
	if (res->status != NFS3_OK) {
		fprintf(stderr, "nfsbench: COMMIT: nfsstat3 %d\n", (int)res->status);
		c->failed = 1;
		return;
	}
	memcpy(c->verf, res->COMMIT3res_u.resok.verf, NFS3_WRITEVERFSIZE);
}

static int commit_done(void *arg)
{
	return ((struct commit_state *)arg)->done;
}

/* ------------------------------------------------------------ reporting */

static void print_result(const char *op, struct job *j, uint64_t bytes,
			 double seconds, double cpu_s, const char *extra)
{
	double gib_s = seconds > 0 ? (double)bytes / seconds / (1024.0 * 1024 * 1024) : 0;
	double iops = seconds > 0 ? (double)j->ops / seconds : 0;
	printf("{\"bench\":\"nfsbench\",\"target\":\"%s\",\"op\":\"%s\","
	       "\"bytes\":%" PRIu64 ",\"seconds\":%.6f,\"GiB_s\":%.4f,"
	       "\"iops\":%.1f,\"p50_us\":%.1f,\"p99_us\":%.1f,"
	       "\"bs\":%u,\"qd\":%d,\"ops\":%" PRIu64 ",\"client_cpu_s\":%.3f%s%s}\n",
	       g_target, op, bytes, seconds, gib_s, iops,
	       lat_pct_us(&j->lat, 0.50), lat_pct_us(&j->lat, 0.99),
	       j->bs, j->qd, j->ops, cpu_s, extra && *extra ? "," : "",
	       extra ? extra : "");
	fflush(stdout);
}

/* ------------------------------------------------------------------ main */

struct opts {
	const char *url;
	const char *file;
	const char *mode;
	uint64_t size;
	int size_given;
	uint32_t bs;
	int qd;
	double duration;
	uint64_t seed;
};

static struct nfs_context *g_nfs;

static void mount_url(const char *url)
{
	g_nfs = nfs_init_context();
	if (!g_nfs)
		die(4, "nfs_init_context failed");
	struct nfs_url *u = nfs_parse_url_dir(g_nfs, url);
	if (!u)
		die(2, "bad URL '%s': %s", url, nfs_get_error(g_nfs));
	if (nfs_mount(g_nfs, u->server, u->path) != 0)
		die(4, "mount %s:%s failed: %s", u->server, u->path,
		    nfs_get_error(g_nfs));
	nfs_destroy_url(u);
}

static void job_init(struct job *j, enum op_kind kind, struct nfsfh *fh,
		     uint64_t size, uint32_t bs, int qd, uint64_t seed)
{
	memset(j, 0, sizeof(*j));
	j->kind = kind;
	j->rpc = nfs_get_rpc_context(g_nfs);
	struct nfsbench_fh *pf = (struct nfsbench_fh *)nfs_get_fh(fh);
	j->fh.data.data_len = (u_int)pf->len;
	j->fh.data.data_val = pf->val;
	j->size = size;
	j->bs = bs;
	j->qd = qd;
	j->rng = seed ? seed : 0x9e3779b97f4a7c15ULL;
	j->slots = calloc((size_t)qd, sizeof(struct slot));
	if (!j->slots)
		die(4, "out of memory");
	if (kind == OP_SEQ_WRITE) {
		uint64_t r = j->rng ^ 0xabcdef;
		j->fill = malloc(bs);
		if (!j->fill)
			die(4, "out of memory");
		for (uint32_t i = 0; i + 8 <= bs; i += 8) {
			uint64_t v = rng_next(&r);
			memcpy(j->fill + i, &v, 8);
		}
		for (int i = 0; i < qd; i++) {
			j->slots[i].buf = malloc(bs);
			if (!j->slots[i].buf)
				die(4, "out of memory");
			memcpy(j->slots[i].buf, j->fill, bs);
		}
	}
	for (int i = 0; i < qd; i++)
		j->slots[i].job = j;
}

static void job_free(struct job *j)
{
	for (int i = 0; i < j->qd; i++)
		free(j->slots[i].buf);
	free(j->slots);
	free(j->fill);
	free(j->lat.v);
}

static void job_start(struct job *j)
{
	j->t_first = now_s();
	j->t_last = j->t_first;
	for (int i = 0; i < j->qd; i++) {
		struct slot *s = &j->slots[i];
		if (!next_request(j, s))
			break;
		s->t0 = now_ns();
		issue(s);
	}
	run_loop(j->rpc, job_done, j);
	qsort(j->lat.v, j->lat.n, sizeof(uint64_t), cmp_u64);
}

static void check_job(struct job *j)
{
	if (j->failed)
		g_exit_code = g_exit_code ? g_exit_code : 4;
	if (j->stamp_errors) {
		fprintf(stderr, "nfsbench: %" PRIu64 " data stamp mismatches\n",
			j->stamp_errors);
		g_exit_code = 3;
	}
}

static char g_path[4096];

static void do_seq_write(struct opts *o)
{
	struct nfsfh *fh;
	uint32_t bs = o->bs ? o->bs : 1024 * 1024;
	int qd = o->qd ? o->qd : 8;
	uint64_t wmax = nfs_get_writemax(g_nfs);
	if (wmax && bs > wmax) {
		fprintf(stderr, "nfsbench: bs %u > server wtmax %" PRIu64 ", using %" PRIu64 "\n",
			bs, wmax, wmax);
		bs = (uint32_t)wmax;
	}
	if (nfs_create(g_nfs, g_path, O_RDWR | O_TRUNC, 0644, &fh) != 0)
		die(4, "create %s: %s", g_path, nfs_get_error(g_nfs));

	struct job j;
	double c0 = cpu_self_s();
	job_init(&j, OP_SEQ_WRITE, fh, o->size, bs, qd, o->seed);
	double t0 = now_s();
	job_start(&j);
	double t_w = now_s();
	check_job(&j);
	if (j.failed)
		die(4, "seq-write failed");
	double cpu_w = cpu_self_s() - c0;

	struct commit_state c;
	memset(&c, 0, sizeof(c));
	COMMIT3args ca;
	memset(&ca, 0, sizeof(ca));
	ca.file = j.fh;
	ca.offset = 0;
	ca.count = 0;
	if (rpc_nfs3_commit_async(j.rpc, commit_cb, &ca, &c) != 0)
		die(4, "failed to queue COMMIT: %s", rpc_get_error(j.rpc));
	run_loop(j.rpc, commit_done, &c);
	double t_c = now_s();
	double cpu_c = cpu_self_s() - c0;
	if (c.failed)
		die(4, "COMMIT failed");
	int verf_ok = !j.verf_changed &&
		      (!j.have_verf || memcmp(c.verf, j.verf, NFS3_WRITEVERFSIZE) == 0);
	if (!verf_ok) {
		fprintf(stderr, "nfsbench: DATA ERROR: write verifier changed "
			"between WRITEs and COMMIT (server restart / lost data)\n");
		g_exit_code = 3;
	}

	char extra[256];
	snprintf(extra, sizeof(extra),
		 "\"file_size\":%" PRIu64 ",\"unstable_replies\":%s,\"short_ios\":%" PRIu64
		 ",\"server_wtmax\":%" PRIu64,
		 o->size, j.any_unstable ? "true" : "false", j.short_ios, wmax);
	print_result("seq-write", &j, j.bytes, t_w - t0, cpu_w, extra);
	snprintf(extra, sizeof(extra),
		 "\"file_size\":%" PRIu64 ",\"commit_seconds\":%.6f,\"verifier_ok\":%s",
		 o->size, t_c - t_w, verf_ok ? "true" : "false");
	print_result("seq-write+commit", &j, j.bytes, t_c - t0, cpu_c, extra);
	job_free(&j);
	nfs_close(g_nfs, fh);
}

static struct nfsfh *open_for_read(struct opts *o, uint64_t *size)
{
	struct nfsfh *fh;
	struct nfs_stat_64 st;
	if (nfs_open(g_nfs, g_path, O_RDONLY, &fh) != 0)
		die(4, "open %s: %s", g_path, nfs_get_error(g_nfs));
	if (nfs_fstat64(g_nfs, fh, &st) != 0)
		die(4, "fstat %s: %s", g_path, nfs_get_error(g_nfs));
	*size = st.nfs_size;
	if (o->size_given) {
		if (o->size > st.nfs_size)
			die(4, "%s is %" PRIu64 " bytes, smaller than --size %" PRIu64
			    " (run seq-write first)", g_path, (uint64_t)st.nfs_size, o->size);
		*size = o->size;
	}
	if (*size == 0)
		die(4, "%s is empty (run seq-write first)", g_path);
	return fh;
}

static void do_seq_read(struct opts *o)
{
	uint64_t size;
	struct nfsfh *fh = open_for_read(o, &size);
	uint32_t bs = o->bs ? o->bs : 1024 * 1024;
	int qd = o->qd ? o->qd : 8;
	uint64_t rmax = nfs_get_readmax(g_nfs);
	if (rmax && bs > rmax) {
		fprintf(stderr, "nfsbench: bs %u > server rtmax %" PRIu64 ", using %" PRIu64 "\n",
			bs, rmax, rmax);
		bs = (uint32_t)rmax;
	}
	struct job j;
	double c0 = cpu_self_s();
	job_init(&j, OP_SEQ_READ, fh, size, bs, qd, o->seed);
	double t0 = now_s();
	job_start(&j);
	double t1 = now_s();
	check_job(&j);
	if (j.failed)
		die(4, "seq-read failed");
	char extra[160];
	snprintf(extra, sizeof(extra),
		 "\"file_size\":%" PRIu64 ",\"verified\":%s,\"short_ios\":%" PRIu64
		 ",\"server_rtmax\":%" PRIu64,
		 size, g_verify ? "true" : "false", j.short_ios, rmax);
	print_result("seq-read", &j, j.bytes, t1 - t0, cpu_self_s() - c0, extra);
	job_free(&j);
	nfs_close(g_nfs, fh);
}

static void do_rand_read(struct opts *o)
{
	uint64_t size;
	struct nfsfh *fh = open_for_read(o, &size);
	uint32_t bs = o->bs ? o->bs : 4096;
	int qd = o->qd ? o->qd : 16;
	if (size < bs)
		die(4, "file smaller than one block");
	struct job j;
	double c0 = cpu_self_s();
	job_init(&j, OP_RAND_READ, fh, size, bs, qd, o->seed);
	j.nblocks = size / bs;
	double t0 = now_s();
	j.deadline = t0 + o->duration;
	job_start(&j);
	double t1 = now_s();
	check_job(&j);
	if (j.failed)
		die(4, "rand-read failed");
	char extra[160];
	snprintf(extra, sizeof(extra),
		 "\"file_size\":%" PRIu64 ",\"duration\":%.3f,\"verified\":%s",
		 size, o->duration, g_verify ? "true" : "false");
	print_result("rand-read", &j, j.bytes, t1 - t0, cpu_self_s() - c0, extra);
	job_free(&j);
	nfs_close(g_nfs, fh);
}

static void usage(void)
{
	fprintf(stderr,
"usage: nfsbench --url URL [options]\n"
"  --url URL        NFSv3 export URL, e.g.\n"
"                   'nfs://127.0.0.1/?nfsport=2049&mountport=2049&version=3'\n"
"                   (path = export to MOUNT; nfsport/mountport skip rpcbind)\n"
"  --mode M         seq-write | seq-read | rand-read | all   (default all)\n"
"  --file NAME      file inside the export (default nfsbench.dat)\n"
"  --size N         file size for seq-write; for reads, the range used\n"
"                   (default 1G for write, the file size for reads); K/M/G ok\n"
"  --bs N           request size (default 1M seq, 4K rand-read)\n"
"  --qd N           requests in flight (default 8 seq, 16 rand-read)\n"
"  --duration S     rand-read duration in seconds (default 10)\n"
"  --target NAME    label put in the JSON \"target\" field\n"
"  --seed N         RNG seed (random offsets, filler)\n"
"  --no-verify      do not check the per-4KiB data stamps on reads\n"
"Output: one JSON line per result. Exit 0 ok, 2 usage, 3 data error, 4 NFS error.\n");
	exit(2);
}

int main(int argc, char **argv)
{
	struct opts o;
	memset(&o, 0, sizeof(o));
	o.file = "nfsbench.dat";
	o.mode = "all";
	o.size = 1024ull * 1024 * 1024;
	o.duration = 10.0;
	o.seed = 1;

	static struct option lo[] = {
		{"url", required_argument, 0, 'u'},
		{"mode", required_argument, 0, 'm'},
		{"file", required_argument, 0, 'f'},
		{"size", required_argument, 0, 's'},
		{"bs", required_argument, 0, 'b'},
		{"qd", required_argument, 0, 'q'},
		{"duration", required_argument, 0, 'd'},
		{"target", required_argument, 0, 't'},
		{"seed", required_argument, 0, 'S'},
		{"no-verify", no_argument, 0, 'N'},
		{"help", no_argument, 0, 'h'},
		{0, 0, 0, 0}};
	int c;
	while ((c = getopt_long(argc, argv, "u:m:f:s:b:q:d:t:S:Nh", lo, NULL)) != -1) {
		switch (c) {
		case 'u': o.url = optarg; break;
		case 'm': o.mode = optarg; break;
		case 'f': o.file = optarg; break;
		case 's': o.size = parse_size(optarg); o.size_given = 1; break;
		case 'b': o.bs = (uint32_t)parse_size(optarg); break;
		case 'q': o.qd = atoi(optarg); break;
		case 'd': o.duration = atof(optarg); break;
		case 't': g_target = optarg; break;
		case 'S': o.seed = strtoull(optarg, NULL, 0); break;
		case 'N': g_verify = 0; break;
		default: usage();
		}
	}
	if (!o.url || optind != argc)
		usage();
	if (o.qd < 0 || o.qd > 1024)
		die(2, "--qd must be 1..1024");
	if (o.bs != 0 && (o.bs < 512 || o.bs > 16u * 1024 * 1024))
		die(2, "--bs must be 512..16M");
	if (o.duration <= 0)
		die(2, "--duration must be > 0");
	for (const char *p = g_target; *p; p++)
		if (*p == '"' || *p == '\\' || (unsigned char)*p < 0x20)
			die(2, "--target must not contain quotes/backslashes");
	snprintf(g_path, sizeof(g_path), "%s%s", o.file[0] == '/' ? "" : "/", o.file);

	int w = 0, r = 0, rr = 0;
	if (!strcmp(o.mode, "all"))
		w = r = rr = 1;
	else if (!strcmp(o.mode, "seq-write"))
		w = 1;
	else if (!strcmp(o.mode, "seq-read"))
		r = 1;
	else if (!strcmp(o.mode, "rand-read"))
		rr = 1;
	else
		die(2, "unknown --mode '%s'", o.mode);
	if (w && o.size == 0)
		die(2, "--size must be > 0 for seq-write");

	mount_url(o.url);
	if (w)
		do_seq_write(&o);
	if (r)
		do_seq_read(&o);
	if (rr)
		do_rand_read(&o);
	nfs_destroy_context(g_nfs);
	return g_exit_code;
}
