// locktest: flock(2) and fcntl(2) lock checks for the kernel-client test guest
// (busybox has no flock applet and no fcntl-lock tool).
//
// usage:
//   locktest try flock|fcntl FILE [START LEN]
//       non-blocking exclusive lock; exit 0: acquired (and released), 1: conflict
//       (EAGAIN/EACCES/EWOULDBLOCK), 2: any other error
//   locktest test FILE START LEN
//       F_GETLK for a write lock; prints the conflicting lock; exit 0: none, 1: conflict
//   locktest hold [-b] flock|fcntl FILE START LEN READY GO
//       take an exclusive lock (-b: wait for it; otherwise exit 1 on a conflict),
//       create the local file READY, wait until the local file GO exists, take the
//       same lock once more (a re-lock, which reuses the lock state), unlock, exit 0.
//       Used to hold a lock across a server restart.
//   locktest forktest FILE
//       fcntl byte-range and flock semantics between a parent and a forked child
//       (conflicts, shared read locks, partial unlock, F_GETLK) on FILE, and flock on
//       FILE.flock; exit 0 when all hold.
// Messages go to stdout, prefixed "locktest:". START/LEN are byte offsets; LEN 0 = to EOF.
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *who = "locktest";

static void say(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    printf("%s: ", who);
    vprintf(fmt, ap);
    printf("\n");
    fflush(stdout);
    va_end(ap);
}

static int is_conflict(int err) { return err == EAGAIN || err == EACCES || err == EWOULDBLOCK; }

// setlk: F_SETLK / F_SETLKW of TYPE over [start, start+len); returns 0 or errno.
static int setlk(int fd, int cmd, short type, off_t start, off_t len) {
    struct flock fl;
    memset(&fl, 0, sizeof fl);
    fl.l_type = type;
    fl.l_whence = SEEK_SET;
    fl.l_start = start;
    fl.l_len = len;
    return fcntl(fd, cmd, &fl) == 0 ? 0 : errno;
}

static int open_rw(const char *path) {
    int fd = open(path, O_RDWR | O_CREAT, 0644);
    if (fd < 0) say("open %s: %s", path, strerror(errno));
    return fd;
}

static int exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

static void msleep(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int lock_excl(int fd, int use_flock, int wait, off_t start, off_t len) {
    if (use_flock) return flock(fd, LOCK_EX | (wait ? 0 : LOCK_NB)) == 0 ? 0 : errno;
    return setlk(fd, wait ? F_SETLKW : F_SETLK, F_WRLCK, start, len);
}

static int unlock(int fd, int use_flock, off_t start, off_t len) {
    if (use_flock) return flock(fd, LOCK_UN) == 0 ? 0 : errno;
    return setlk(fd, F_SETLK, F_UNLCK, start, len);
}

static int cmd_try(int use_flock, const char *path, off_t start, off_t len) {
    int fd = open_rw(path);
    if (fd < 0) return 2;
    int e = lock_excl(fd, use_flock, 0, start, len);
    if (e == 0) {
        e = unlock(fd, use_flock, start, len);
        close(fd);
        if (e) { say("unlock %s: %s", path, strerror(e)); return 2; }
        say("try %s: acquired", path);
        return 0;
    }
    close(fd);
    if (is_conflict(e)) { say("try %s: conflict (%s)", path, strerror(e)); return 1; }
    say("try %s: %s", path, strerror(e));
    return 2;
}

static int cmd_test(const char *path, off_t start, off_t len) {
    int fd = open_rw(path);
    if (fd < 0) return 2;
    struct flock fl;
    memset(&fl, 0, sizeof fl);
    fl.l_type = F_WRLCK;
    fl.l_whence = SEEK_SET;
    fl.l_start = start;
    fl.l_len = len;
    if (fcntl(fd, F_GETLK, &fl) != 0) { say("F_GETLK %s: %s", path, strerror(errno)); return 2; }
    close(fd);
    if (fl.l_type == F_UNLCK) { say("test %s: no conflicting lock", path); return 0; }
    say("test %s: conflicting %s lock start %lld len %lld pid %d", path,
        fl.l_type == F_WRLCK ? "write" : "read", (long long)fl.l_start, (long long)fl.l_len, (int)fl.l_pid);
    return 1;
}

static int cmd_hold(int use_flock, int wait, const char *path, off_t start, off_t len, const char *ready,
                    const char *go) {
    int fd = open_rw(path);
    if (fd < 0) return 2;
    int e = lock_excl(fd, use_flock, wait, start, len);
    if (e) {
        say("hold %s: %s", path, strerror(e));
        return is_conflict(e) ? 1 : 2;
    }
    say("hold %s: locked (pid %d)", path, (int)getpid());
    int rfd = open(ready, O_WRONLY | O_CREAT, 0644);
    if (rfd < 0) { say("create %s: %s", ready, strerror(errno)); return 2; }
    close(rfd);
    for (int i = 0; !exists(go); i++) {
        if (i > 10 * 1800) { say("hold %s: gave up waiting for %s", path, go); return 2; }
        msleep(100);
    }
    // Lock the same range again: this goes to the server with the lock state the
    // client has (after a server restart: the reclaimed one).
    e = lock_excl(fd, use_flock, 0, start, len);
    if (e) { say("hold %s: re-lock failed: %s", path, strerror(e)); return 2; }
    e = unlock(fd, use_flock, start, len);
    if (e) { say("hold %s: unlock failed: %s", path, strerror(e)); return 2; }
    close(fd);
    say("hold %s: released", path);
    return 0;
}

// ---- forktest --------------------------------------------------------------------------
static int failures;

#define EXPECT(cond, ...)                                                                  \
    do {                                                                                   \
        if (!(cond)) { say("FAILED: " __VA_ARGS__); failures++; } else say("ok: " __VA_ARGS__); \
    } while (0)

static void sync_write(int fd) {
    char c = 'x';
    if (write(fd, &c, 1) != 1) say("pipe write: %s", strerror(errno));
}
static void sync_read(int fd) {
    char c;
    if (read(fd, &c, 1) != 1) say("pipe read: %s", strerror(errno));
}

static int cmd_forktest(const char *path) {
    int p2c[2], c2p[2];
    if (pipe(p2c) || pipe(c2p)) { say("pipe: %s", strerror(errno)); return 2; }
    int fd = open_rw(path);
    if (fd < 0) return 2;
    if (ftruncate(fd, 4096) != 0) { say("ftruncate: %s", strerror(errno)); return 2; }
    // Parent: write [0,100), read [300,400), flock on a second open file.
    EXPECT(setlk(fd, F_SETLK, F_WRLCK, 0, 100) == 0, "parent: write lock [0,100)");
    EXPECT(setlk(fd, F_SETLK, F_RDLCK, 300, 100) == 0, "parent: read lock [300,400)");
    // flock on a file of its own: over NFSv4 a flock is a whole-file lock on the server,
    // which would conflict with the fcntl locks of another owner on the same file.
    char fpath[4096];
    snprintf(fpath, sizeof fpath, "%s.flock", path);
    int ffd = open_rw(fpath);
    if (ffd < 0) return 2;
    EXPECT(flock(ffd, LOCK_EX | LOCK_NB) == 0, "parent: flock LOCK_EX");
    pid_t parent = getpid();

    pid_t pid = fork();
    if (pid < 0) { say("fork: %s", strerror(errno)); return 2; }
    if (pid == 0) {
        who = "locktest child";
        failures = 0;
        int cfd = open_rw(path);  // the child's own open: a different lock owner
        if (cfd < 0) _exit(2);
        int e = setlk(cfd, F_SETLK, F_WRLCK, 0, 100);
        EXPECT(is_conflict(e), "child: write lock [0,100) conflicts (got %s)", e ? strerror(e) : "success");
        e = setlk(cfd, F_SETLK, F_WRLCK, 50, 10);
        EXPECT(is_conflict(e), "child: write lock [50,60) conflicts (got %s)", e ? strerror(e) : "success");
        EXPECT(setlk(cfd, F_SETLK, F_WRLCK, 100, 100) == 0, "child: write lock [100,200) (adjacent range)");
        EXPECT(setlk(cfd, F_SETLK, F_RDLCK, 300, 100) == 0, "child: read lock [300,400) shared");
        e = setlk(cfd, F_SETLK, F_WRLCK, 350, 10);
        // Upgrading its own read lock conflicts with the parent's read lock.
        EXPECT(is_conflict(e), "child: write lock [350,360) conflicts with a read lock (got %s)",
               e ? strerror(e) : "success");
        struct flock fl;
        memset(&fl, 0, sizeof fl);
        fl.l_type = F_WRLCK;
        fl.l_whence = SEEK_SET;
        fl.l_start = 20;
        fl.l_len = 10;
        e = fcntl(cfd, F_GETLK, &fl) == 0 ? 0 : errno;
        EXPECT(e == 0 && fl.l_type == F_WRLCK && fl.l_start == 0 && fl.l_len == 100,
               "child: F_GETLK [20,30) reports the parent's write lock [0,100) (type %d start %lld len %lld pid %d, parent %d)",
               (int)fl.l_type, (long long)fl.l_start, (long long)fl.l_len, (int)fl.l_pid, (int)parent);
        int cffd = open_rw(fpath);
        if (cffd < 0) _exit(2);
        e = flock(cffd, LOCK_EX | LOCK_NB) == 0 ? 0 : errno;
        EXPECT(is_conflict(e), "child: flock LOCK_EX|LOCK_NB conflicts (got %s)", e ? strerror(e) : "success");
        sync_write(c2p[1]);  // 1: let the parent unlock part of its range and the flock
        sync_read(p2c[0]);
        EXPECT(setlk(cfd, F_SETLK, F_WRLCK, 45, 10) == 0, "child: write lock [45,55) after the parent unlocked [40,60)");
        e = setlk(cfd, F_SETLK, F_WRLCK, 30, 5);
        EXPECT(is_conflict(e), "child: write lock [30,35) still conflicts (got %s)", e ? strerror(e) : "success");
        e = setlk(cfd, F_SETLK, F_WRLCK, 60, 5);
        EXPECT(is_conflict(e), "child: write lock [60,65) still conflicts (got %s)", e ? strerror(e) : "success");
        EXPECT(flock(cffd, LOCK_EX | LOCK_NB) == 0, "child: flock LOCK_EX after the parent's LOCK_UN");
        sync_write(c2p[1]);  // 2: let the parent release everything
        sync_read(p2c[0]);
        EXPECT(setlk(cfd, F_SETLK, F_WRLCK, 0, 0) == 0, "child: write lock on the whole file after the parent closed");
        EXPECT(setlk(cfd, F_SETLK, F_UNLCK, 0, 0) == 0, "child: unlock the whole file");
        EXPECT(flock(cffd, LOCK_UN) == 0, "child: flock LOCK_UN");
        close(cffd);
        close(cfd);
        _exit(failures ? 1 : 0);
    }
    sync_read(c2p[0]);
    EXPECT(setlk(fd, F_SETLK, F_UNLCK, 40, 20) == 0, "parent: unlock [40,60) (splits its lock)");
    EXPECT(flock(ffd, LOCK_UN) == 0, "parent: flock LOCK_UN");
    sync_write(p2c[1]);
    sync_read(c2p[0]);
    close(ffd);
    close(fd);  // drops all of the parent's fcntl locks on the file
    sync_write(p2c[1]);
    int st = 0;
    if (waitpid(pid, &st, 0) != pid) { say("waitpid: %s", strerror(errno)); return 2; }
    EXPECT(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child exited with status 0 (wait status %d)", st);
    say("forktest %s: %s", path, failures ? "FAILED" : "passed");
    return failures ? 1 : 0;
}

static int usage(void) {
    fprintf(stderr,
            "usage: locktest try flock|fcntl FILE [START LEN]\n"
            "       locktest test FILE START LEN\n"
            "       locktest hold [-b] flock|fcntl FILE START LEN READY GO\n"
            "       locktest forktest FILE\n");
    return 2;
}

static int kind(const char *s, int *use_flock) {
    if (strcmp(s, "flock") == 0) *use_flock = 1;
    else if (strcmp(s, "fcntl") == 0) *use_flock = 0;
    else return -1;
    return 0;
}

int main(int argc, char **argv) {
    int use_flock = 0;
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc < 2) return usage();
    const char *cmd = argv[1];
    if (strcmp(cmd, "try") == 0 && (argc == 4 || argc == 6)) {
        if (kind(argv[2], &use_flock)) return usage();
        return cmd_try(use_flock, argv[3], argc == 6 ? atoll(argv[4]) : 0, argc == 6 ? atoll(argv[5]) : 0);
    }
    if (strcmp(cmd, "test") == 0 && argc == 5) return cmd_test(argv[2], atoll(argv[3]), atoll(argv[4]));
    if (strcmp(cmd, "hold") == 0) {
        int wait = 0, a = 2;
        if (argc > a && strcmp(argv[a], "-b") == 0) { wait = 1; a++; }
        if (argc - a != 6 || kind(argv[a], &use_flock)) return usage();
        return cmd_hold(use_flock, wait, argv[a + 1], atoll(argv[a + 2]), atoll(argv[a + 3]), argv[a + 4],
                        argv[a + 5]);
    }
    if (strcmp(cmd, "forktest") == 0 && argc == 3) return cmd_forktest(argv[2]);
    return usage();
}
