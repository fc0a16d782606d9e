// nfsmount: a minimal static mount(2) wrapper for the kernel-client test guest.
//
// busybox mount speaks the NFSv2/v3 MOUNT protocol itself (and needs rpcbind);
// passing text options straight to the kernel lets the kernel's own NFS client
// do everything, which is exactly what we want to test.
//
// usage: nfsmount [-t TYPE] [-o OPTIONS] [-r] SOURCE TARGET
//   TYPE defaults to "nfs"; OPTIONS is the kernel's text option string,
//   e.g. "vers=3,proto=tcp,port=2049,mountport=2049,nolock,addr=10.0.2.2".
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <unistd.h>

int main(int argc, char **argv) {
    const char *type = "nfs", *opts = "";
    unsigned long flags = 0;
    int c;
    while ((c = getopt(argc, argv, "t:o:r")) != -1) {
        switch (c) {
        case 't': type = optarg; break;
        case 'o': opts = optarg; break;
        case 'r': flags |= MS_RDONLY; break;
        default: goto usage;
        }
    }
    if (argc - optind != 2) goto usage;
    if (mount(argv[optind], argv[optind + 1], type, flags, opts) != 0) {
        int err = errno;
        fprintf(stderr, "nfsmount: mount -t %s %s %s -o %s: %s (errno %d)\n", type,
                argv[optind], argv[optind + 1], opts, strerror(err), err);
        return 1;
    }
    return 0;
usage:
    fprintf(stderr, "usage: nfsmount [-t TYPE] [-o OPTIONS] [-r] SOURCE TARGET\n");
    return 2;
}
