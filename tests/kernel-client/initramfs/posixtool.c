// posixtool: single system calls for the POSIX-semantics guest tests, with the errno
// they return spelled out (busybox prints strerror text, which is hard to compare).
//
//   posixtool asuser UID GID[,GID...] -- CMD [ARGS...]
//       setgroups(all GIDs), setgid(first GID), setuid(UID), then exec CMD: run busybox
//       commands (or posixtool itself) as another user. The guest runs as root.
//   posixtool open PATH r|w|rw|wt|c|cx open(2) and close(2); wt = O_WRONLY|O_TRUNC,
//                                      c = O_CREAT|O_WRONLY, cx = O_CREAT|O_EXCL|O_WRONLY
//   posixtool write PATH TEXT          open O_WRONLY (no O_TRUNC), write TEXT at 0, close
//   posixtool cwrite PATH OCTAL TEXT   open O_CREAT|O_EXCL|O_WRONLY with mode OCTAL (say 0444),
//                                      write TEXT through that descriptor, close
//   posixtool chown PATH UID GID       chown(2); -1 leaves that id alone
//   posixtool chmod PATH OCTAL         chmod(2)
//   posixtool rename OLD NEW           rename(2)
//   posixtool utimes PATH ATIME MTIME [nofollow]
//       utimensat(2); each time is seconds since the epoch, "now" or "omit";
//       nofollow = AT_SYMLINK_NOFOLLOW (times of a symlink itself)
//   posixtool mksock PATH              bind(2) an AF_UNIX socket there (creates the node)
//
// Each system-call command prints one word, OK or the errno's name (EPERM, EACCES, ...,
// E<n> for others), and exits 0 on success, 1 on failure, 2 on bad usage.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

static const char *errno_name(int e) {
    static char buf[16];
    switch (e) {
    case EPERM: return "EPERM";
    case ENOENT: return "ENOENT";
    case EIO: return "EIO";
    case EBADF: return "EBADF";
    case EACCES: return "EACCES";
    case EEXIST: return "EEXIST";
    case EXDEV: return "EXDEV";
    case ENOTDIR: return "ENOTDIR";
    case EISDIR: return "EISDIR";
    case EINVAL: return "EINVAL";
    case ENOSPC: return "ENOSPC";
    case EROFS: return "EROFS";
    case ENOTEMPTY: return "ENOTEMPTY";
    case ENOTSUP: return "ENOTSUP";
    case EREMOTEIO: return "EREMOTEIO";
    case ESTALE: return "ESTALE";
    default: snprintf(buf, sizeof buf, "E%d", e); return buf;
    }
}

// result: print OK or the errno name for a system call's return value.
static int result(int rc) {
    if (rc == 0) {
        puts("OK");
        return 0;
    }
    puts(errno_name(errno));
    return 1;
}

static int usage(void) {
    fputs("usage: posixtool asuser UID GID[,GID...] -- CMD... | open PATH r|w|rw|wt|c|cx |\n"
          "       write PATH TEXT | cwrite PATH OCTAL TEXT | chown PATH UID GID | chmod PATH OCTAL | rename OLD NEW |\n"
          "       utimes PATH ATIME MTIME [nofollow] | mksock PATH\n",
          stderr);
    return 2;
}

static int parse_id(const char *s, long *out) {
    char *end;
    errno = 0;
    *out = strtol(s, &end, 10);
    return errno == 0 && *s != '\0' && *end == '\0';
}

static int do_asuser(int argc, char **argv) {
    // argv: UID GIDS -- CMD...
    if (argc < 4 || strcmp(argv[2], "--") != 0) return usage();
    long uid;
    if (!parse_id(argv[0], &uid) || uid < 0) return usage();
    gid_t gids[64];
    int ngids = 0;
    char *list = strdup(argv[1]);
    for (char *tok = strtok(list, ","); tok != NULL; tok = strtok(NULL, ",")) {
        long g;
        if (!parse_id(tok, &g) || g < 0 || ngids == 64) return usage();
        gids[ngids++] = (gid_t)g;
    }
    if (ngids == 0) return usage();
    if (setgroups((size_t)ngids, gids) != 0 || setgid(gids[0]) != 0 || setuid((uid_t)uid) != 0) {
        fprintf(stderr, "posixtool asuser: cannot become %ld/%s: %s\n", uid, argv[1], strerror(errno));
        return 2;
    }
    execvp(argv[3], argv + 3);
    fprintf(stderr, "posixtool asuser: exec %s: %s\n", argv[3], strerror(errno));
    return 127;
}

static int do_open(const char *path, const char *how) {
    int flags;
    if (strcmp(how, "r") == 0) flags = O_RDONLY;
    else if (strcmp(how, "w") == 0) flags = O_WRONLY;
    else if (strcmp(how, "rw") == 0) flags = O_RDWR;
    else if (strcmp(how, "wt") == 0) flags = O_WRONLY | O_TRUNC;
    else if (strcmp(how, "c") == 0) flags = O_CREAT | O_WRONLY;
    else if (strcmp(how, "cx") == 0) flags = O_CREAT | O_EXCL | O_WRONLY;
    else return usage();
    int fd = open(path, flags, 0644);
    if (fd < 0) return result(-1);
    return result(close(fd));
}

// write_text: write TEXT to PATH opened with FLAGS and MODE, then close.
static int write_text(const char *path, int flags, mode_t mode, const char *text) {
    int fd = open(path, flags, mode);
    if (fd < 0) return result(-1);
    size_t len = strlen(text);
    ssize_t n = write(fd, text, len);
    if (n < 0 || (size_t)n != len) {
        if (n >= 0) errno = EIO;
        int e = errno;
        close(fd);
        errno = e;
        return result(-1);
    }
    // NFS reports a failed write-back at close (close-to-open).
    return result(close(fd));
}

// parse_mode: an octal mode, 0 to 07777.
static int parse_mode(const char *s, mode_t *out) {
    char *end;
    long mode = strtol(s, &end, 8);
    if (*s == '\0' || *end != '\0' || mode < 0 || mode > 07777) return 0;
    *out = (mode_t)mode;
    return 1;
}

// parse_time: seconds, "now" or "omit" into a timespec for utimensat.
static int parse_time(const char *s, struct timespec *ts) {
    ts->tv_sec = 0;
    if (strcmp(s, "now") == 0) ts->tv_nsec = UTIME_NOW;
    else if (strcmp(s, "omit") == 0) ts->tv_nsec = UTIME_OMIT;
    else {
        long v;
        if (!parse_id(s, &v)) return 0;
        ts->tv_sec = v;
        ts->tv_nsec = 0;
    }
    return 1;
}

static int do_mksock(const char *path) {
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof sa.sun_path) return usage();
    strcpy(sa.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd < 0) return result(-1);
    int rc = bind(fd, (struct sockaddr *)&sa, sizeof sa);
    int e = errno;
    close(fd);
    errno = e;
    return result(rc);
}

int main(int argc, char **argv) {
    if (argc < 2) return usage();
    const char *cmd = argv[1];
    int n = argc - 2;
    char **a = argv + 2;
    if (strcmp(cmd, "asuser") == 0) return do_asuser(n, a);
    if (strcmp(cmd, "open") == 0 && n == 2) return do_open(a[0], a[1]);
    if (strcmp(cmd, "write") == 0 && n == 2) return write_text(a[0], O_WRONLY, 0, a[1]);
    if (strcmp(cmd, "cwrite") == 0 && n == 3) {
        mode_t mode;
        if (!parse_mode(a[1], &mode)) return usage();
        return write_text(a[0], O_CREAT | O_EXCL | O_WRONLY, mode, a[2]);
    }
    if (strcmp(cmd, "chown") == 0 && n == 3) {
        long uid, gid;
        if (!parse_id(a[1], &uid) || !parse_id(a[2], &gid)) return usage();
        return result(chown(a[0], (uid_t)uid, (gid_t)gid));
    }
    if (strcmp(cmd, "chmod") == 0 && n == 2) {
        mode_t mode;
        if (!parse_mode(a[1], &mode)) return usage();
        return result(chmod(a[0], mode));
    }
    if (strcmp(cmd, "rename") == 0 && n == 2) return result(rename(a[0], a[1]));
    if (strcmp(cmd, "utimes") == 0 && (n == 3 || n == 4)) {
        struct timespec ts[2];
        int flags = 0;
        if (!parse_time(a[1], &ts[0]) || !parse_time(a[2], &ts[1])) return usage();
        if (n == 4) {
            if (strcmp(a[3], "nofollow") != 0) return usage();
            flags = AT_SYMLINK_NOFOLLOW;
        }
        return result(utimensat(AT_FDCWD, a[0], ts, flags));
    }
    if (strcmp(cmd, "mksock") == 0 && n == 1) return do_mksock(a[0]);
    return usage();
}
