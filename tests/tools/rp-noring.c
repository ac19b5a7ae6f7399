/*
 * rp-noring: run a command with io_uring blocked by seccomp, the way
 * Docker's default profile blocks it, so the fallback paths of ringplug and
 * its hosts can be tested on a kernel that has io_uring.
 *
 * Usage: rp-noring [-e|--eperm] [-n|--enosys] [--] cmd [args...]
 *
 * io_uring_setup, io_uring_enter and io_uring_register fail with EPERM
 * (default, what Docker does) or ENOSYS (what a kernel built without
 * CONFIG_IO_URING, or an older Docker, answers).  The filter is inherited by
 * every child and survives execve; everything else is allowed.
 */

#include <errno.h>
#include <seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const int blocked[] = {
    SCMP_SYS(io_uring_setup),
    SCMP_SYS(io_uring_enter),
    SCMP_SYS(io_uring_register),
};

static void
usage(FILE *out)
{
    fprintf(out,
        "usage: rp-noring [-e|--eperm] [-n|--enosys] [--] cmd [args...]\n"
        "  run cmd with io_uring_setup/enter/register failing with EPERM\n"
        "  (default, like Docker's seccomp profile) or ENOSYS\n");
}

static int
block_io_uring(int err)
{
    scmp_filter_ctx  ctx;
    size_t           i;
    int              rc;

    ctx = seccomp_init(SCMP_ACT_ALLOW);
    if (ctx == NULL) {
        fprintf(stderr, "rp-noring: seccomp_init failed\n");
        return -1;
    }

    for (i = 0; i < sizeof(blocked) / sizeof(blocked[0]); i++) {
        rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(err), blocked[i], 0);
        if (rc < 0) {
            fprintf(stderr, "rp-noring: seccomp_rule_add(%d) failed: %s\n",
                blocked[i], strerror(-rc));
            seccomp_release(ctx);
            return -1;
        }
    }

    /* seccomp_load() sets no_new_privs first, so this works unprivileged. */
    rc = seccomp_load(ctx);
    seccomp_release(ctx);
    if (rc < 0) {
        fprintf(stderr, "rp-noring: seccomp_load failed: %s\n",
            strerror(-rc));
        return -1;
    }
    return 0;
}

int
main(int argc, char **argv)
{
    int  i, err = EPERM;

    for (i = 1; i < argc && argv[i][0] == '-'; i++) {
        if (!strcmp(argv[i], "-e") || !strcmp(argv[i], "--eperm")) {
            err = EPERM;
        } else if (!strcmp(argv[i], "-n") || !strcmp(argv[i], "--enosys")) {
            err = ENOSYS;
        } else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(argv[i], "--")) {
            i++;
            break;
        } else {
            fprintf(stderr, "rp-noring: unknown option %s\n", argv[i]);
            usage(stderr);
            return 125;
        }
    }

    if (i >= argc) {
        usage(stderr);
        return 125;
    }

    if (block_io_uring(err) < 0) {
        return 125;
    }

    execvp(argv[i], &argv[i]);
    fprintf(stderr, "rp-noring: execvp(%s) failed: %s\n", argv[i],
        strerror(errno));
    return errno == ENOENT ? 127 : 126;
}
