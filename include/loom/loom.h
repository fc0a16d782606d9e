/* libloom's C ABI: the same client as loom/client.h for callers in C and other languages.
 * Every call returns 0 (or a byte count) on success and a negative errno on failure; the
 * failing call's message, in words, is loom_last_error() on the same thread.
 * Handles are thread-safe; callbacks of loom_pread_async run on a library thread. */
#ifndef LOOM_LOOM_H_
#define LOOM_LOOM_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct loom_client loom_client;
typedef struct loom_file loom_file;

typedef struct {
  uint32_t type; /* 1 regular, 2 directory, 5 symlink, 0 other */
  uint32_t mode;
  uint32_t nlink;
  uint64_t size;
  uint64_t fileid;
  int64_t mtime_ns;
} loom_stat_t;

enum {
  LOOM_O_READ = 1,
  LOOM_O_WRITE = 2,
  LOOM_O_CREATE = 4,
  LOOM_O_EXCL = 8,
  LOOM_O_TRUNC = 16
};

/* mds: "host[:port]"; NULL: $LOOM_MDS or 127.0.0.1:20490. */
int loom_connect(const char* mds, loom_client** out);
void loom_disconnect(loom_client* c);
const char* loom_last_error(void);
const char* loom_version(void);

int loom_stat(loom_client* c, const char* path, loom_stat_t* out);
int loom_mkdir(loom_client* c, const char* path, uint32_t mode);
int loom_remove(loom_client* c, const char* path);
int loom_rename(loom_client* c, const char* from, const char* to);
/* Calls each(arg, name, stat) for every entry; stops early if it returns non-zero. */
int loom_listdir(loom_client* c, const char* path,
                 int (*each)(void* arg, const char* name, const loom_stat_t* st), void* arg);

int loom_open(loom_client* c, const char* path, int flags, uint32_t mode, loom_file** out);
int64_t loom_pread(loom_file* f, void* buf, size_t len, uint64_t off);
int64_t loom_pwrite(loom_file* f, const void* buf, size_t len, uint64_t off);
/* done(arg, result) with result = bytes read or a negative errno; buf stays valid until then. */
int loom_pread_async(loom_file* f, void* buf, size_t len, uint64_t off,
                     void (*done)(void* arg, int64_t result), void* arg);
uint64_t loom_size(loom_file* f);
int loom_fsync(loom_file* f);
/* Closes and frees f (even on error). */
int loom_close(loom_file* f);

#ifdef __cplusplus
}
#endif
#endif /* LOOM_LOOM_H_ */
