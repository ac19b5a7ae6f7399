/*
 * uring-check: try io_uring_setup(2) once and say what happened, for the
 * rp-noring self-test and for anyone wondering whether io_uring is usable
 * here.  Prints "ok", or the errno name and message; exits 0 if a ring could
 * be created, 1 otherwise.
 */

#include <errno.h>
#include <linux/io_uring.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

int
main(void)
{
    struct io_uring_params  p;
    long                    fd;

    memset(&p, 0, sizeof(p));
    fd = syscall(__NR_io_uring_setup, 4, &p);
    if (fd < 0) {
        printf("%s: %s\n", errno == EPERM ? "EPERM"
            : errno == ENOSYS ? "ENOSYS" : "other", strerror(errno));
        return 1;
    }
    close(fd);
    printf("ok\n");
    return 0;
}
