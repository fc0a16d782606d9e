/* A stand-in for libcudart and libcufile, for testing libloom's GPU path on machines with no
 * GPU (LOOM_CUDART / LOOM_CUFILE point at it). "Device" memory is host memory, so a test can
 * read what landed there. Asynchronous copies are deferred: a cudaMemcpyAsync only runs when
 * the host synchronizes on the stream or on an event recorded after it. A caller that refills
 * a staging buffer before its copy has finished therefore corrupts the data every time, not
 * only when a real DMA engine happens to be slow. cudaEventQuery answers "not ready" on every
 * other call, so both of the caller's paths (query, then wait) are taken.
 * Only the entry points libloom uses exist; their C signatures follow cuda_runtime_api.h and
 * cufile.h. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#define NOT_READY 600
#define INVALID_VALUE 1
#define INVALID_DEVICE 101

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;

struct event {
  int pending;       /* recorded, not yet reached */
  double reached_at; /* seconds, when the stream got to it */
};

struct op {
  void *dst;
  const void *src;
  size_t n;
  struct event *ev; /* non-null: an event marker, not a copy */
};

struct stream {
  struct op *ops;
  size_t head, len, cap;
};

struct alloc {
  char *p;
  size_t n;
  struct alloc *next;
};

static struct alloc *device_allocs;
static struct stream default_stream;
static long copies, copy_bytes, max_queued, cufile_reads;
static unsigned long queries;

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec / 1e9;
}

static int devices(void) {
  const char *e = getenv("FAKE_CUDA_DEVICES");
  return e ? atoi(e) : 1;
}

static struct stream *S(void *s) { return s ? (struct stream *)s : &default_stream; }

/* Runs the stream's queued work up to and including `until` (all of it when null). */
static void run_until(struct stream *s, struct event *until) {
  while (s->head < s->len) {
    struct op o = s->ops[s->head++];
    if (o.ev) {
      o.ev->pending = 0;
      o.ev->reached_at = now();
      if (o.ev == until) break;
    } else {
      memcpy(o.dst, o.src, o.n);
      copies++;
      copy_bytes += (long)o.n;
    }
  }
  if (s->head == s->len) s->head = s->len = 0;
}

/* The stream an event was last recorded on, found by scanning (the tests use few streams). */
#define MAX_STREAMS 64
static struct stream *streams[MAX_STREAMS];

static struct stream *stream_of(struct event *e) {
  for (int i = 0; i < MAX_STREAMS; i++) {
    struct stream *s = streams[i];
    if (!s) continue;
    for (size_t k = s->head; k < s->len; k++)
      if (s->ops[k].ev == e) return s;
  }
  return NULL;
}

static void push(struct stream *s, struct op o) {
  if (s->len == s->cap) {
    s->cap = s->cap ? 2 * s->cap : 16;
    s->ops = realloc(s->ops, s->cap * sizeof(struct op));
  }
  s->ops[s->len++] = o;
  if ((long)(s->len - s->head) > max_queued) max_queued = (long)(s->len - s->head);
}

int cudaGetDeviceCount(int *n) {
  *n = devices();
  return *n > 0 ? 0 : 100; /* cudaErrorNoDevice */
}
int cudaSetDevice(int d) { return d >= 0 && d < devices() ? 0 : INVALID_DEVICE; }
int cudaGetLastError(void) { return 0; }
const char *cudaGetErrorString(int e) {
  return e == 0 ? "no error" : e == NOT_READY ? "device not ready" : "fake cuda error";
}

int cudaMallocHost(void **p, size_t n) {
  *p = malloc(n ? n : 1);
  return *p ? 0 : 2;
}
int cudaFreeHost(void *p) {
  free(p);
  return 0;
}

int cudaMalloc(void **p, size_t n) {
  struct alloc *a = malloc(sizeof *a);
  a->p = malloc(n ? n : 1);
  a->n = n;
  pthread_mutex_lock(&mu);
  a->next = device_allocs;
  device_allocs = a;
  pthread_mutex_unlock(&mu);
  *p = a->p;
  return 0;
}
int cudaFree(void *p) {
  if (!p) return 0; /* cudaFree(NULL): "initialize the context" */
  pthread_mutex_lock(&mu);
  for (struct alloc **a = &device_allocs; *a; a = &(*a)->next) {
    if ((*a)->p == p) {
      struct alloc *dead = *a;
      *a = dead->next;
      free(dead->p);
      free(dead);
      break;
    }
  }
  pthread_mutex_unlock(&mu);
  return 0;
}

/* cudaPointerAttributes as CUDA 11+ lays it out. */
struct attrs {
  int type, device;
  void *device_pointer, *host_pointer;
};
int cudaPointerGetAttributes(struct attrs *a, const void *p) {
  memset(a, 0, sizeof *a);
  pthread_mutex_lock(&mu);
  for (struct alloc *d = device_allocs; d; d = d->next) {
    if ((const char *)p >= d->p && (const char *)p < d->p + d->n) {
      a->type = 2;
      a->device_pointer = (void *)p;
    }
  }
  pthread_mutex_unlock(&mu);
  return 0;
}

int cudaStreamCreateWithFlags(void **s, unsigned flags) {
  struct stream *st = calloc(1, sizeof *st);
  pthread_mutex_lock(&mu);
  for (int i = 0; i < MAX_STREAMS; i++) {
    if (!streams[i]) {
      streams[i] = st;
      break;
    }
  }
  pthread_mutex_unlock(&mu);
  *s = st;
  return 0;
}
int cudaStreamSynchronize(void *s) {
  pthread_mutex_lock(&mu);
  run_until(S(s), NULL);
  pthread_mutex_unlock(&mu);
  return 0;
}
int cudaStreamDestroy(void *s) {
  cudaStreamSynchronize(s);
  pthread_mutex_lock(&mu);
  for (int i = 0; i < MAX_STREAMS; i++)
    if (streams[i] == s) streams[i] = NULL;
  free(((struct stream *)s)->ops);
  free(s);
  pthread_mutex_unlock(&mu);
  return 0;
}

int cudaMemcpyAsync(void *dst, const void *src, size_t n, int kind, void *s) {
  if (kind != 1) return INVALID_VALUE; /* libloom only copies host to device */
  pthread_mutex_lock(&mu);
  struct op o = {dst, src, n, NULL};
  push(S(s), o);
  pthread_mutex_unlock(&mu);
  return 0;
}

int cudaEventCreateWithFlags(void **e, unsigned flags) {
  *e = calloc(1, sizeof(struct event));
  return 0;
}
int cudaEventDestroy(void *e) {
  free(e);
  return 0;
}
int cudaEventRecord(void *e, void *s) {
  pthread_mutex_lock(&mu);
  ((struct event *)e)->pending = 1;
  struct op o = {NULL, NULL, 0, e};
  push(S(s), o);
  pthread_mutex_unlock(&mu);
  return 0;
}
int cudaEventSynchronize(void *e) {
  pthread_mutex_lock(&mu);
  struct event *ev = e;
  if (ev->pending) {
    struct stream *s = stream_of(ev);
    run_until(s ? s : &default_stream, ev);
  }
  pthread_mutex_unlock(&mu);
  return 0;
}
int cudaEventQuery(void *e) {
  pthread_mutex_lock(&mu);
  struct event *ev = e;
  int r = 0;
  if (ev->pending) {
    if (queries++ % 2 == 0) {
      r = NOT_READY;
    } else {
      struct stream *s = stream_of(ev);
      run_until(s ? s : &default_stream, ev);
    }
  }
  pthread_mutex_unlock(&mu);
  return r;
}
int cudaEventElapsedTime(float *ms, void *a, void *b) {
  struct event *x = a, *y = b;
  if (x->pending || y->pending) return NOT_READY;
  double d = (y->reached_at - x->reached_at) * 1e3;
  *ms = d > 1e-3 ? (float)d : 1e-3f;
  return 0;
}

/* ---- cuFile ---- */
struct cufile_error {
  int err, cu_err;
};
struct cufile_descr {
  int type;
  union {
    int fd;
    void *handle;
  } handle;
  const void *fs_ops;
};
struct cufile_error cuFileDriverOpen(void) {
  struct cufile_error r = {0, 0};
  return r;
}
struct cufile_error cuFileHandleRegister(void **h, struct cufile_descr *d) {
  struct cufile_error r = {0, 0};
  if (d->type != 1 || d->handle.fd < 0) {
    r.err = 5001;
    return r;
  }
  /* The caller may have opened with O_DIRECT, which a pread into unaligned "device" memory
   * would fail; read through a descriptor of our own. */
  char path[64];
  snprintf(path, sizeof path, "/proc/self/fd/%d", d->handle.fd);
  int *fd = malloc(sizeof *fd);
  *fd = open(path, O_RDONLY | O_CLOEXEC);
  if (*fd < 0) {
    free(fd);
    r.err = 5002;
    return r;
  }
  *h = fd;
  return r;
}
void cuFileHandleDeregister(void *h) {
  close(*(int *)h);
  free(h);
}
ssize_t cuFileRead(void *h, void *dev, size_t n, off_t file_off, off_t dev_off) {
  pthread_mutex_lock(&mu);
  cufile_reads++;
  pthread_mutex_unlock(&mu);
  /* Real cuFile may return short reads; hand back at most 1 MiB per call so the caller's
   * loop is exercised. */
  if (n > (1u << 20)) n = 1u << 20;
  return pread(*(int *)h, (char *)dev + dev_off, n, file_off);
}

/* ---- for the tests ---- */
long fake_cuda_copies(void) { return copies; }
long fake_cuda_copy_bytes(void) { return copy_bytes; }
long fake_cuda_max_queued(void) { return max_queued; }
long fake_cufile_reads(void) { return cufile_reads; }
void fake_cuda_reset_max_queued(void) {
  pthread_mutex_lock(&mu);
  max_queued = 0;
  pthread_mutex_unlock(&mu);
}
