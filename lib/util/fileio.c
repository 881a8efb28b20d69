/* Whole-file input and gzip decompression for the readers (fileio.h). */
#define _POSIX_C_SOURCE 200809L
#include "fileio.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>
#include <zlib.h>

#ifndef O_CLOEXEC
#define O_CLOEXEC 0
#endif

/* read() moves at most this much per call (Linux stops near 2 GiB anyway). */
enum { READ_CHUNK = 1 << 30 };

/* The thread-safe strerror (the XSI strerror_r, which _POSIX_C_SOURCE selects). */
static const char *error_text(int err, char *buf, size_t cap)
{
    if (strerror_r(err, buf, cap) != 0)
        snprintf(buf, cap, "error %d", err);
    return buf;
}

/* A bigger block holding the first `used` bytes of *buf; the old one is
 * released only once the new one exists. */
static bool grow(uint8_t **buf, size_t used, size_t new_cap)
{
    uint8_t *bigger = mislasi_alloc(new_cap);
    if (bigger == NULL)
        return false;
    if (used > 0)
        memcpy(bigger, *buf, used);
    mislasi_free(*buf);
    *buf = bigger;
    return true;
}

int mislasi_read_file(const char *fn, const char *path, uint8_t **data, size_t *size)
{
    char why[128];
    *data = NULL;
    *size = 0;
    int fd;
    do
        fd = open(path, O_RDONLY | O_CLOEXEC);
    while (fd < 0 && errno == EINTR);
    if (fd < 0)
        return mislasi_fail(MISLAS_ERR_IO, "%s: cannot open %s: %s", fn, path,
                error_text(errno, why, sizeof why));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int err = errno;
        close(fd);
        return mislasi_fail(MISLAS_ERR_IO, "%s: cannot read %s: %s", fn, path, error_text(err, why, sizeof why));
    }
    if (S_ISDIR(st.st_mode)) {
        close(fd);
        return mislasi_fail(MISLAS_ERR_IO, "%s: %s is a folder, not a file", fn, path);
    }
    /* A regular file's length sizes the buffer, plus one byte so that the
     * end is seen without growing; anything else (a pipe) grows as it comes. */
    size_t cap = 1 << 16;
    if (S_ISREG(st.st_mode)) {
        if (st.st_size < 0 || (uintmax_t)st.st_size >= MISLASI_INPUT_LIMIT) {
            close(fd);
            return mislasi_fail(MISLAS_ERR_UNSUPPORTED, "%s: %s: %jd bytes is more than the %zu a data file may have",
                    fn, path, (intmax_t)st.st_size, (size_t)MISLASI_INPUT_LIMIT);
        }
        cap = (size_t)st.st_size + 1;
    }
    uint8_t *buf = mislasi_alloc(cap);
    if (buf == NULL) {
        close(fd);
        return mislasi_fail(MISLAS_ERR_OUT_OF_MEMORY, "%s: out of memory for the %zu bytes of %s", fn, cap, path);
    }
    size_t len = 0;
    for (;;) {
        if (len == cap) {   /* the file grew while being read, or is not a regular file */
            if (cap >= MISLASI_INPUT_LIMIT) {
                mislasi_free(buf);
                close(fd);
                return mislasi_fail(MISLAS_ERR_UNSUPPORTED, "%s: %s: more than the %zu bytes a data file may have",
                        fn, path, (size_t)MISLASI_INPUT_LIMIT);
            }
            size_t new_cap = cap < MISLASI_INPUT_LIMIT / 2 ? cap * 2 : MISLASI_INPUT_LIMIT;
            if (!grow(&buf, len, new_cap)) {
                mislasi_free(buf);
                close(fd);
                return mislasi_fail(MISLAS_ERR_OUT_OF_MEMORY, "%s: out of memory for the %zu bytes of %s",
                        fn, new_cap, path);
            }
            cap = new_cap;
        }
        size_t want = cap - len < READ_CHUNK ? cap - len : READ_CHUNK;
        ssize_t got = read(fd, buf + len, want);
        if (got < 0) {
            if (errno == EINTR)
                continue;
            int err = errno;
            mislasi_free(buf);
            close(fd);
            return mislasi_fail(MISLAS_ERR_IO, "%s: cannot read %s at byte offset %zu: %s", fn, path, len,
                    error_text(err, why, sizeof why));
        }
        if (got == 0)
            break;
        len += (size_t)got;
    }
    close(fd);
    *data = buf;
    *size = len;
    return MISLAS_OK;
}

bool mislasi_is_gzip(const uint8_t *data, size_t size)
{
    return size >= 2 && data[0] == 0x1f && data[1] == 0x8b;
}

/* zlib's allocations go through the library's allocator. */
static voidpf zlib_alloc(voidpf opaque, uInt items, uInt size)
{
    (void)opaque;
    if (size != 0 && items > SIZE_MAX / size)
        return Z_NULL;
    return mislasi_alloc((size_t)items * size);
}

static void zlib_free(voidpf opaque, voidpf ptr)
{
    (void)opaque;
    mislasi_free(ptr);
}

void mislasi_zlib_use_library_memory(z_stream *zs)
{
    zs->zalloc = zlib_alloc;
    zs->zfree = zlib_free;
    zs->opaque = Z_NULL;
}

/* The first output buffer: the size the last member's trailer states (ISIZE,
 * the length mod 2^32, exact for a single member under 4 GiB), bounded by
 * what deflate can possibly expand to (about 1032:1) so that a forged
 * trailer cannot ask for gigabytes, plus one byte so that the end of the
 * stream is reached without growing. */
static size_t first_capacity(const uint8_t *in, size_t in_size)
{
    size_t hint = 1 << 16;
    if (in_size >= 18) {
        const uint8_t *t = in + in_size - 4;
        hint = (size_t)t[0] | (size_t)t[1] << 8 | (size_t)t[2] << 16 | (size_t)t[3] << 24;
    }
    size_t bound = in_size < MISLASI_INPUT_LIMIT / 1032 ? in_size * 1032 : MISLASI_INPUT_LIMIT;
    hint = hint < bound ? hint : bound;
    hint = hint < MISLASI_INPUT_LIMIT ? hint + 1 : MISLASI_INPUT_LIMIT;
    return hint < 64 ? 64 : hint;
}

int mislasi_gunzip(const char *fn, const char *name, const uint8_t *in, size_t in_size,
        uint8_t **out, size_t *out_size)
{
    *out = NULL;
    *out_size = 0;
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    mislasi_zlib_use_library_memory(&zs);
    /* 15 + 16: a full window, gzip wrapper only (the callers saw 1f 8b) */
    int zrc = inflateInit2(&zs, 15 + 16);
    if (zrc == Z_MEM_ERROR)
        return mislasi_fail(MISLAS_ERR_OUT_OF_MEMORY, "%s: out of memory to decompress %s", fn, name);
    if (zrc != Z_OK)
        return mislasi_fail(MISLAS_ERR_UNSUPPORTED, "%s: zlib cannot start decompressing %s: %s", fn, name,
                zs.msg ? zs.msg : zError(zrc));
    size_t cap = first_capacity(in, in_size);
    uint8_t *buf = mislasi_alloc(cap);
    int rc = MISLAS_OK;
    if (buf == NULL) {
        inflateEnd(&zs);
        return mislasi_fail(MISLAS_ERR_OUT_OF_MEMORY, "%s: out of memory to decompress %s", fn, name);
    }
    size_t in_pos = 0, out_pos = 0;
    for (;;) {
        if (out_pos == cap) {
            if (cap >= MISLASI_INPUT_LIMIT) {
                rc = mislasi_fail(MISLAS_ERR_UNSUPPORTED,
                        "%s: %s decompresses to more than %zu bytes (at compressed byte offset %zu), "
                        "more than any data set read here", fn, name, cap, in_pos);
                break;
            }
            size_t new_cap = cap < MISLASI_INPUT_LIMIT / 2 ? cap * 2 : MISLASI_INPUT_LIMIT;
            if (!grow(&buf, out_pos, new_cap)) {
                rc = mislasi_fail(MISLAS_ERR_OUT_OF_MEMORY, "%s: out of memory to decompress %s", fn, name);
                break;
            }
            cap = new_cap;
        }
        /* zlib counts in uInt: feed and drain in pieces it can count */
        size_t in_left = in_size - in_pos, out_left = cap - out_pos;
        zs.next_in = (Bytef *)(uintptr_t)(in + in_pos);   /* zlib does not write through next_in */
        zs.avail_in = in_left < UINT_MAX ? (uInt)in_left : UINT_MAX;
        zs.next_out = buf + out_pos;
        zs.avail_out = out_left < UINT_MAX ? (uInt)out_left : UINT_MAX;
        uInt fed = zs.avail_in, room = zs.avail_out;
        zrc = inflate(&zs, Z_NO_FLUSH);
        in_pos += fed - zs.avail_in;
        out_pos += room - zs.avail_out;
        if (zrc == Z_STREAM_END) {
            if (in_pos == in_size)
                break;
            /* Another gzip member follows (gzip -c a b > ab makes these):
             * decompress it too and append. */
            if (mislasi_is_gzip(in + in_pos, in_size - in_pos)) {
                inflateReset(&zs);
                continue;
            }
            rc = mislasi_fail(MISLAS_ERR_FORMAT,
                    "%s: %s: %zu bytes that are not gzip data follow the end of the gzip stream "
                    "at compressed byte offset %zu", fn, name, in_size - in_pos, in_pos);
            break;
        }
        if (zrc == Z_OK)
            continue;
        if (zrc == Z_BUF_ERROR) {
            if (in_pos < in_size)
                continue;       /* out of output room: grow and go on */
            rc = mislasi_fail(MISLAS_ERR_FORMAT,
                    "%s: %s: the gzip data is truncated: it ends at compressed byte offset %zu "
                    "before the end of the stream", fn, name, in_pos);
            break;
        }
        if (zrc == Z_MEM_ERROR) {
            rc = mislasi_fail(MISLAS_ERR_OUT_OF_MEMORY, "%s: out of memory to decompress %s", fn, name);
            break;
        }
        /* Z_DATA_ERROR (corrupt data, a bad header, a CRC or length
         * mismatch) or Z_NEED_DICT, which gzip never uses */
        rc = mislasi_fail(MISLAS_ERR_FORMAT, "%s: %s: corrupt gzip data at compressed byte offset %zu (zlib: %s)",
                fn, name, in_pos, zs.msg ? zs.msg : zError(zrc));
        break;
    }
    inflateEnd(&zs);
    if (rc != MISLAS_OK) {
        mislasi_free(buf);
        return rc;
    }
    *out = buf;
    *out_size = out_pos;
    return MISLAS_OK;
}

int mislasi_read_maybe_gzip(const char *fn, const char *path, uint8_t **data, size_t *size, bool *was_gzip)
{
    if (was_gzip != NULL)
        *was_gzip = false;
    uint8_t *raw;
    size_t raw_size;
    int rc = mislasi_read_file(fn, path, &raw, &raw_size);
    if (rc != MISLAS_OK) {
        *data = NULL;
        *size = 0;
        return rc;
    }
    if (!mislasi_is_gzip(raw, raw_size)) {
        *data = raw;
        *size = raw_size;
        return MISLAS_OK;
    }
    if (was_gzip != NULL)
        *was_gzip = true;
    rc = mislasi_gunzip(fn, path, raw, raw_size, data, size);
    mislasi_free(raw);
    return rc;
}

mislasi_path_kind mislasi_path_kind_of(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return MISLASI_PATH_MISSING;
    return S_ISDIR(st.st_mode) ? MISLASI_PATH_DIR : MISLASI_PATH_FILE;
}

bool mislasi_path_join(char *buf, size_t cap, const char *dir, const char *name)
{
    size_t a = strlen(dir), b = strlen(name);
    bool slash = a > 0 && dir[a - 1] != '/';
    if (a > cap || b > cap || a + b + (slash ? 1 : 0) + 1 > cap)
        return false;
    memcpy(buf, dir, a);
    if (slash)
        buf[a++] = '/';
    memcpy(buf + a, name, b + 1);
    return true;
}

/* The mode a plain open(path, O_CREAT, 0666) would give a new file, or the
 * mode of the file being replaced: mkstemp's 0600 would make results
 * private that the user's umask says may be shared. umask() itself cannot
 * be read without setting it, which would race with other threads, so
 * Linux's /proc/self/status is asked; 022 when it cannot be. */
static mode_t creation_mode(const char *path)
{
    struct stat st;
    if (stat(path, &st) == 0)
        return st.st_mode & 07777;
    unsigned mask = 022;
    FILE *f = fopen("/proc/self/status", "r");
    if (f != NULL) {
        char line[128];
        while (fgets(line, sizeof line, f) != NULL)
            if (sscanf(line, "Umask: %o", &mask) == 1)
                break;
        fclose(f);
    }
    return (mode_t)(0666 & ~mask);
}

int mislasi_write_file_atomic(const char *fn, const char *path, const void *data, size_t size)
{
    char tmp[MISLASI_PATH_MAX], err[128];
    int len = snprintf(tmp, sizeof tmp, "%s.tmp-XXXXXX", path);
    if (len < 0 || (size_t)len >= sizeof tmp)
        return mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT, "%s: path \"%s\" is too long", fn, path);
    int fd = mkstemp(tmp);
    if (fd < 0)
        return mislasi_fail(MISLAS_ERR_IO, "%s: cannot create a temporary file beside %s: %s", fn, path,
                error_text(errno, err, sizeof err));
    const uint8_t *p = data;
    size_t left = size;
    int saved = fchmod(fd, creation_mode(path)) == 0 ? 0 : errno;
    while (saved == 0 && left > 0) {
        ssize_t wrote = write(fd, p, left);
        if (wrote < 0 && errno == EINTR)
            continue;
        if (wrote <= 0) {
            saved = wrote < 0 ? errno : ENOSPC;
            break;
        }
        p += wrote;
        left -= (size_t)wrote;
    }
    if (saved == 0 && fsync(fd) != 0)
        saved = errno;
    if (close(fd) != 0 && saved == 0)
        saved = errno;
    if (saved == 0 && rename(tmp, path) != 0)
        saved = errno;
    if (saved != 0) {
        unlink(tmp);
        return mislasi_fail(MISLAS_ERR_IO, "%s: cannot write %s: %s (any previous file is unchanged)", fn, path,
                error_text(saved, err, sizeof err));
    }
    /* The rename itself reaches the disk when the folder is synced. */
    char dir[MISLASI_PATH_MAX];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash == NULL)
        snprintf(dir, sizeof dir, ".");
    else if (slash == dir)
        slash[1] = '\0';
    else
        *slash = '\0';
    int dfd = open(dir, O_RDONLY | O_DIRECTORY);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    return MISLAS_OK;
}
