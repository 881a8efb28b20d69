/* Injected I/O failures for the tests (tests/faultyio.c). Linked into a test
 * program, faultyio_arm() sets the next failure; preloaded into any program
 * (LD_PRELOAD=libfaultyio.so), the environment does:
 *
 *   MISLAS_FAULTYIO=write:ENOSPC:N   regular-file writes take N bytes in all
 *                                    (the write that crosses N is cut short),
 *                                    then fail with the error (ENOSPC, EIO,
 *                                    EDQUOT, EFBIG)
 *   MISLAS_FAULTYIO=short::N         the same, but then write nothing and
 *                                    return 0, as no error code
 *   MISLAS_FAULTYIO=chunk::N         every write takes at most N bytes (legal
 *                                    short writes: nothing may be lost)
 *   MISLAS_FAULTYIO=fsync:EIO:N      fsync of a regular file fails after N
 *                                    successful calls (close and rename too)
 */
#ifndef MISLAS_FAULTYIO_H
#define MISLAS_FAULTYIO_H

typedef enum faultyio_op {
    FAULTYIO_OFF = 0,
    FAULTYIO_WRITE,
    FAULTYIO_SHORT,
    FAULTYIO_CHUNK,
    FAULTYIO_FSYNC,
    FAULTYIO_CLOSE,
    FAULTYIO_RENAME
} faultyio_op;

/* Arms one kind of failure with `error` as errno after `after` bytes
 * (writes) or calls (fsync, close, rename); replaces any armed before. */
void faultyio_arm(faultyio_op op, int error, long long after);

/* Disarms; returns how many calls were made to fail. */
long long faultyio_disarm(void);

#endif
