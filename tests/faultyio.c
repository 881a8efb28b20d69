/* Injected write failures for the tests: write, fsync, close and rename are
 * interposed (this file linked into a test program, or preloaded into any
 * program as libfaultyio.so) and fail as a full or broken disk makes them
 * fail. Only regular files are touched, so pipes, terminals and the test
 * framework's own messages pass through. See faultyio.h. */
#define _GNU_SOURCE
#include "faultyio.h"

#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static faultyio_op armed_op = FAULTYIO_OFF;
static int armed_errno;
static long long budget;        /* bytes (write) or calls (the others) still allowed */
static long long failures;

static ssize_t (*real_write)(int, const void *, size_t);
static int (*real_fsync)(int);
static int (*real_close)(int);
static int (*real_rename)(const char *, const char *);

static void resolve(void)
{
    if (real_write != NULL)
        return;
    real_write = (ssize_t (*)(int, const void *, size_t))dlsym(RTLD_NEXT, "write");
    real_fsync = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
    real_close = (int (*)(int))dlsym(RTLD_NEXT, "close");
    real_rename = (int (*)(const char *, const char *))dlsym(RTLD_NEXT, "rename");
    if (real_write == NULL || real_fsync == NULL || real_close == NULL || real_rename == NULL)
        abort();
}

void faultyio_arm(faultyio_op op, int error, long long after)
{
    resolve();
    armed_op = op;
    armed_errno = error;
    budget = after;
    failures = 0;
}

long long faultyio_disarm(void)
{
    armed_op = FAULTYIO_OFF;
    return failures;
}

static int parse_errno(const char *name)
{
    static const struct { const char *name; int value; } names[] = {
        {"ENOSPC", ENOSPC}, {"EIO", EIO}, {"EDQUOT", EDQUOT}, {"EFBIG", EFBIG}, {"EXDEV", EXDEV},
        {"EROFS", EROFS}, {"EACCES", EACCES},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(name, names[i].name) == 0)
            return names[i].value;
    return 0;
}

/* MISLAS_FAULTYIO="op:error:after", read once when preloaded. */
__attribute__((constructor)) static void arm_from_environment(void)
{
    const char *spec = getenv("MISLAS_FAULTYIO");
    if (spec == NULL || *spec == '\0')
        return;
    char op[16] = "", err[16] = "";
    long long after = 0;
    const char *c1 = strchr(spec, ':'), *c2 = c1 != NULL ? strchr(c1 + 1, ':') : NULL;
    if (c1 == NULL || c2 == NULL || c1 - spec >= 16 || c2 - c1 - 1 >= 16) {
        fprintf(stderr, "faultyio: cannot read MISLAS_FAULTYIO=%s\n", spec);
        abort();
    }
    memcpy(op, spec, (size_t)(c1 - spec));
    memcpy(err, c1 + 1, (size_t)(c2 - c1 - 1));
    after = atoll(c2 + 1);
    faultyio_op o = !strcmp(op, "write") ? FAULTYIO_WRITE : !strcmp(op, "short") ? FAULTYIO_SHORT
            : !strcmp(op, "chunk") ? FAULTYIO_CHUNK : !strcmp(op, "fsync") ? FAULTYIO_FSYNC
            : !strcmp(op, "close") ? FAULTYIO_CLOSE : !strcmp(op, "rename") ? FAULTYIO_RENAME : FAULTYIO_OFF;
    int e = parse_errno(err);
    if (o == FAULTYIO_OFF || (e == 0 && o != FAULTYIO_SHORT && o != FAULTYIO_CHUNK)) {
        fprintf(stderr, "faultyio: unknown operation or error in MISLAS_FAULTYIO=%s\n", spec);
        abort();
    }
    faultyio_arm(o, e != 0 ? e : ENOSPC, after);
}

static int is_regular_file(int fd)
{
    struct stat st;
    return fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
}

/* True when this call (of kind op) is to fail: its budget of calls is spent. */
static int call_fails(faultyio_op op)
{
    if (armed_op != op)
        return 0;
    if (budget > 0) {
        budget--;
        return 0;
    }
    failures++;
    errno = armed_errno;
    return 1;
}

ssize_t write(int fd, const void *buf, size_t count)
{
    resolve();
    if (count == 0 || !is_regular_file(fd))
        return real_write(fd, buf, count);
    switch (armed_op) {
    case FAULTYIO_WRITE:
    case FAULTYIO_SHORT:
        if (budget <= 0) {
            /* the disk is full: an error, or (short) a write of nothing */
            failures++;
            if (armed_op == FAULTYIO_SHORT)
                return 0;
            errno = armed_errno;
            return -1;
        }
        if ((long long)count > budget)
            count = (size_t)budget;         /* the bytes that fit, as a full disk does */
        {
            ssize_t n = real_write(fd, buf, count);
            if (n > 0)
                budget -= n;
            return n;
        }
    case FAULTYIO_CHUNK:
        /* legal short writes of at most `after` bytes: nothing may be lost */
        if (budget > 0 && (long long)count > budget)
            count = (size_t)budget;
        return real_write(fd, buf, count);
    default:
        return real_write(fd, buf, count);
    }
}

int fsync(int fd)
{
    resolve();
    if (is_regular_file(fd) && call_fails(FAULTYIO_FSYNC))
        return -1;
    return real_fsync(fd);
}

int close(int fd)
{
    resolve();
    if (armed_op == FAULTYIO_CLOSE && is_regular_file(fd) && call_fails(FAULTYIO_CLOSE)) {
        /* the descriptor is released all the same, as Linux does */
        int saved = errno;
        real_close(fd);
        errno = saved;
        return -1;
    }
    return real_close(fd);
}

int rename(const char *from, const char *to)
{
    resolve();
    if (call_fails(FAULTYIO_RENAME))
        return -1;
    return real_rename(from, to);
}
