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

/* Opens path for reading: a file descriptor, and its fstat in *st. A folder,
 * or a regular file longer than MISLASI_INPUT_LIMIT, is refused. */
static int open_input(const char *fn, const char *path, struct stat *st, int *fd_out)
{
    char why[128];
    int fd;
    do
        fd = open(path, O_RDONLY | O_CLOEXEC);
    while (fd < 0 && errno == EINTR);
    if (fd < 0)
        return mislasi_fail(MISLAS_ERR_IO, "%s: cannot open %s: %s", fn, path,
                error_text(errno, why, sizeof why));
    if (fstat(fd, st) != 0) {
        int err = errno;
        close(fd);
        return mislasi_fail(MISLAS_ERR_IO, "%s: cannot read %s: %s", fn, path, error_text(err, why, sizeof why));
    }
    if (S_ISDIR(st->st_mode)) {
        close(fd);
        return mislasi_fail(MISLAS_ERR_IO, "%s: %s is a folder, not a file", fn, path);
    }
    if (S_ISREG(st->st_mode) && (st->st_size < 0 || (uintmax_t)st->st_size >= MISLASI_INPUT_LIMIT)) {
        close(fd);
        return mislasi_fail(MISLAS_ERR_UNSUPPORTED, "%s: %s: %jd bytes is more than the %zu a data file may have",
                fn, path, (intmax_t)st->st_size, (size_t)MISLASI_INPUT_LIMIT);
    }
    *fd_out = fd;
    return MISLAS_OK;
}

/* Reads from fd after the `*len` bytes *buf already holds (room for *cap),
 * growing the buffer as data comes, until the end of the input or until
 * `most` bytes are held. */
static int read_more(const char *fn, const char *path, int fd, uint8_t **buf, size_t *cap, size_t *len,
        size_t most)
{
    char why[128];
    while (*len < most) {
        if (*len == *cap) {     /* the file grew while being read, or is not a regular file */
            size_t new_cap = *cap < most / 2 ? *cap * 2 : most;
            if (!grow(buf, *len, new_cap))
                return mislasi_fail(MISLAS_ERR_OUT_OF_MEMORY, "%s: out of memory for the %zu bytes of %s",
                        fn, new_cap, path);
            *cap = new_cap;
        }
        size_t want = *cap - *len < READ_CHUNK ? *cap - *len : READ_CHUNK;
        ssize_t got = read(fd, *buf + *len, want);
        if (got < 0) {
            if (errno == EINTR)
                continue;
            return mislasi_fail(MISLAS_ERR_IO, "%s: cannot read %s at byte offset %zu: %s", fn, path, *len,
                    error_text(errno, why, sizeof why));
        }
        if (got == 0)
            break;
        *len += (size_t)got;
    }
    return MISLAS_OK;
}

/* Counts what is left to read from fd (at most MISLASI_INPUT_LIMIT - *len
 * more) into *len without keeping it. */
static int count_rest(const char *fn, const char *path, int fd, size_t *len)
{
    char why[128];
    uint8_t scratch[1 << 14];
    for (;;) {
        ssize_t got = read(fd, scratch, sizeof scratch);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0)
            return mislasi_fail(MISLAS_ERR_IO, "%s: cannot read %s at byte offset %zu: %s", fn, path, *len,
                    error_text(errno, why, sizeof why));
        if (got == 0)
            return MISLAS_OK;
        *len += (size_t)got;
        if (*len >= MISLASI_INPUT_LIMIT)
            return mislasi_fail(MISLAS_ERR_UNSUPPORTED, "%s: %s: more than the %zu bytes a data file may have",
                    fn, path, (size_t)MISLASI_INPUT_LIMIT);
    }
}

int mislasi_read_file(const char *fn, const char *path, uint8_t **data, size_t *size)
{
    *data = NULL;
    *size = 0;
    int fd;
    struct stat st;
    int rc = open_input(fn, path, &st, &fd);
    if (rc != MISLAS_OK)
        return rc;
    /* A regular file's length sizes the buffer, plus one byte so that the
     * end is seen without growing; anything else (a pipe) grows as it comes. */
    size_t cap = S_ISREG(st.st_mode) ? (size_t)st.st_size + 1 : 1 << 16, len = 0;
    uint8_t *buf = mislasi_alloc(cap);
    if (buf == NULL)
        rc = mislasi_fail(MISLAS_ERR_OUT_OF_MEMORY, "%s: out of memory for the %zu bytes of %s", fn, cap, path);
    if (rc == MISLAS_OK)
        rc = read_more(fn, path, fd, &buf, &cap, &len, MISLASI_INPUT_LIMIT);
    if (rc == MISLAS_OK && len == MISLASI_INPUT_LIMIT)
        rc = mislasi_fail(MISLAS_ERR_UNSUPPORTED, "%s: %s: more than the %zu bytes a data file may have",
                fn, path, (size_t)MISLASI_INPUT_LIMIT);
    close(fd);
    if (rc != MISLAS_OK) {
        mislasi_free(buf);
        return rc;
    }
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
/* The size the last gzip member's trailer states (ISIZE, the length mod
 * 2^32), or `none` when the data is too short to hold a member. */
static size_t trailer_size(const uint8_t *in, size_t in_size, size_t none)
{
    if (in_size < 18)
        return none;
    const uint8_t *t = in + in_size - 4;
    return (size_t)t[0] | (size_t)t[1] << 8 | (size_t)t[2] << 16 | (size_t)t[3] << 24;
}

static size_t first_capacity(const uint8_t *in, size_t in_size)
{
    size_t hint = trailer_size(in, in_size, 1 << 16);
    size_t bound = in_size < MISLASI_INPUT_LIMIT / MISLASI_DEFLATE_MAX_RATIO ? in_size * MISLASI_DEFLATE_MAX_RATIO
            : MISLASI_INPUT_LIMIT;
    hint = hint < bound ? hint : bound;
    hint = hint < MISLASI_INPUT_LIMIT ? hint + 1 : MISLASI_INPUT_LIMIT;
    return hint < 64 ? 64 : hint;
}

/* How far an inflation got: the content's bytes produced (stored or only
 * counted) and the compressed bytes consumed. */
typedef struct inflation {
    size_t length, consumed;
} inflation;

/* Decompresses the gzip stream in[0..in_size-1] (members joined), storing
 * the first `cap` bytes of the content in out and counting the rest through
 * a scratch block, until the stream ends or `stop` bytes have come (then
 * length >= stop: there may be more). The failures are mislasi_gunzip's. */
static int inflate_counted(const char *fn, const char *name, const uint8_t *in, size_t in_size, uint8_t *out,
        size_t cap, size_t stop, inflation *done)
{
    memset(done, 0, sizeof *done);
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
    uint8_t scratch[1 << 14];
    size_t in_pos = 0, out_pos = 0;
    int rc = MISLAS_OK;
    while (out_pos < stop) {
        /* zlib counts in uInt: feed and drain in pieces it can count */
        uint8_t *to = out_pos < cap ? out + out_pos : scratch;
        size_t in_left = in_size - in_pos, out_left = out_pos < cap ? cap - out_pos : sizeof scratch;
        out_left = out_left < stop - out_pos ? out_left : stop - out_pos;
        zs.next_in = (Bytef *)(uintptr_t)(in + in_pos);   /* zlib does not write through next_in */
        zs.avail_in = in_left < UINT_MAX ? (uInt)in_left : UINT_MAX;
        zs.next_out = to;
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
                continue;       /* out of output room: the next round has more */
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
    done->length = out_pos;
    done->consumed = in_pos;
    return rc;
}

static int too_long(const char *fn, const char *name, const inflation *done)
{
    return mislasi_fail(MISLAS_ERR_UNSUPPORTED,
            "%s: %s decompresses to more than %zu bytes (at compressed byte offset %zu), "
            "more than any data set read here", fn, name, (size_t)MISLASI_INPUT_LIMIT, done->consumed);
}

/* The content's whole length: counted up to MISLASI_INPUT_LIMIT, beyond
 * which it is refused. */
static int gunzip_length(const char *fn, const char *name, const uint8_t *in, size_t in_size, size_t *length)
{
    inflation done;
    int rc = inflate_counted(fn, name, in, in_size, NULL, 0, MISLASI_INPUT_LIMIT, &done);
    if (rc == MISLAS_OK && done.length >= MISLASI_INPUT_LIMIT)
        rc = too_long(fn, name, &done);
    *length = done.length;
    return rc;
}

int mislasi_gunzip(const char *fn, const char *name, const uint8_t *in, size_t in_size,
        uint8_t **out, size_t *out_size)
{
    *out = NULL;
    *out_size = 0;
    /* One pass when the trailer's size is right (a single member under
     * 4 GiB); otherwise the length is counted first and a second pass fills
     * a buffer of exactly that size. */
    size_t cap = first_capacity(in, in_size);
    uint8_t *buf = mislasi_alloc(cap);
    if (buf == NULL)
        return mislasi_fail(MISLAS_ERR_OUT_OF_MEMORY, "%s: out of memory to decompress %s", fn, name);
    inflation done;
    int rc = inflate_counted(fn, name, in, in_size, buf, cap, cap, &done);
    size_t length = done.length;
    if (rc == MISLAS_OK && length >= cap) {
        mislasi_free(buf);
        buf = NULL;
        rc = gunzip_length(fn, name, in, in_size, &length);
        if (rc == MISLAS_OK && (buf = mislasi_alloc(length == 0 ? 1 : length)) == NULL)
            rc = mislasi_fail(MISLAS_ERR_OUT_OF_MEMORY, "%s: out of memory to decompress %s", fn, name);
        if (rc == MISLAS_OK)
            rc = inflate_counted(fn, name, in, in_size, buf, length, length, &done);
    }
    if (rc != MISLAS_OK) {
        mislasi_free(buf);
        return rc;
    }
    *out = buf;
    *out_size = length;
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

/* read_expected for plain content: the header from fd, then at most
 * `total` bytes kept; a regular file's length is its size, anything else
 * (a pipe, a device) is read, and counted past total, to its end. */
static int read_plain_expected(const char *fn, const char *path, int fd, const struct stat *st, uint8_t **buf,
        size_t *cap, size_t got, size_t total, size_t *length)
{
    size_t keep = total;
    if (S_ISREG(st->st_mode) && (size_t)st->st_size < keep)
        keep = (size_t)st->st_size;
    if (keep > *cap) {
        size_t first = S_ISREG(st->st_mode) ? keep : (keep < (1 << 16) ? keep : 1 << 16);
        if (first > *cap && !grow(buf, got, first))
            return mislasi_fail(MISLAS_ERR_OUT_OF_MEMORY, "%s: out of memory for the %zu bytes of %s",
                    fn, first, path);
        *cap = first > *cap ? first : *cap;
    }
    *length = got;
    int rc = read_more(fn, path, fd, buf, cap, length, keep);
    if (rc != MISLAS_OK || *length < keep)
        return rc;
    if (S_ISREG(st->st_mode)) {
        *length = (size_t)st->st_size > *length ? (size_t)st->st_size : *length;
        return MISLAS_OK;
    }
    return count_rest(fn, path, fd, length);
}

/* read_expected for gzip content: the compressed file whole (it is what is
 * on disk), the header inflated alone, then the content's length (the
 * trailer's when it agrees with the header, else counted) and at most
 * `total` bytes of it kept. */
static int read_gzip_expected(const char *fn, const char *path, int fd, uint8_t **buf, size_t *cap, size_t got,
        size_t header, mislasi_header_check check, void *ctx, size_t *length)
{
    int rc = read_more(fn, path, fd, buf, cap, &got, MISLASI_INPUT_LIMIT);
    if (rc == MISLAS_OK && got == MISLASI_INPUT_LIMIT)
        rc = mislasi_fail(MISLAS_ERR_UNSUPPORTED, "%s: %s: more than the %zu bytes a data file may have",
                fn, path, (size_t)MISLASI_INPUT_LIMIT);
    uint8_t *raw = *buf, *head = NULL, *content = NULL;
    *buf = NULL;
    inflation done = {0, 0};
    size_t total = 0;
    if (rc == MISLAS_OK && (head = mislasi_alloc(header == 0 ? 1 : header)) == NULL)
        rc = mislasi_fail(MISLAS_ERR_OUT_OF_MEMORY, "%s: out of memory to decompress %s", fn, path);
    if (rc == MISLAS_OK)
        rc = inflate_counted(fn, path, raw, got, head, header, header, &done);
    if (rc == MISLAS_OK)
        rc = check(ctx, head, done.length < header ? done.length : header, &total);
    /* A trailer that agrees with the header sizes the one pass that fills
     * the buffer and counts what may follow (deflate's expansion bound
     * keeps a forged trailer from asking for much more than the data could
     * hold). Otherwise the length is counted first, and the data kept only
     * when it is exactly what the header announces. */
    size_t keep = 0, stop = 0;
    bool agrees = false;
    if (rc == MISLAS_OK) {
        agrees = trailer_size(raw, got, 0) == (total & 0xFFFFFFFFu) && total / MISLASI_DEFLATE_MAX_RATIO <= got;
        if (agrees) {
            keep = total;
            stop = MISLASI_INPUT_LIMIT;
        } else {
            rc = gunzip_length(fn, path, raw, got, length);
            keep = stop = *length == total ? total : *length < header ? *length : header;
        }
    }
    if (rc == MISLAS_OK && (content = mislasi_alloc(keep == 0 ? 1 : keep)) == NULL)
        rc = mislasi_fail(MISLAS_ERR_OUT_OF_MEMORY, "%s: out of memory for the %zu bytes of %s", fn, keep, path);
    if (rc == MISLAS_OK)
        rc = inflate_counted(fn, path, raw, got, content, keep, stop, &done);
    if (rc == MISLAS_OK && agrees) {
        *length = done.length;
        if (*length >= MISLASI_INPUT_LIMIT)
            rc = too_long(fn, path, &done);
    }
    mislasi_free(raw);
    mislasi_free(head);
    if (rc != MISLAS_OK) {
        mislasi_free(content);
        return rc;
    }
    *buf = content;
    *cap = keep;
    return MISLAS_OK;
}

int mislasi_read_expected(const char *fn, const char *path, bool gzip, size_t header, mislasi_header_check check,
        void *ctx, uint8_t **data, size_t *size, bool *was_gzip)
{
    *data = NULL;
    *size = 0;
    if (was_gzip != NULL)
        *was_gzip = false;
    int fd;
    struct stat st;
    int rc = open_input(fn, path, &st, &fd);
    if (rc != MISLAS_OK)
        return rc;
    size_t cap = header < 2 ? 2 : header, got = 0, length = 0;
    uint8_t *buf = mislasi_alloc(cap);
    if (buf == NULL)
        rc = mislasi_fail(MISLAS_ERR_OUT_OF_MEMORY, "%s: out of memory to read %s", fn, path);
    if (rc == MISLAS_OK)
        rc = read_more(fn, path, fd, &buf, &cap, &got, cap);
    bool gz = rc == MISLAS_OK && gzip && mislasi_is_gzip(buf, got);
    if (was_gzip != NULL)
        *was_gzip = gz;
    size_t total = 0;
    if (rc == MISLAS_OK && gz) {
        rc = read_gzip_expected(fn, path, fd, &buf, &cap, got, header, check, ctx, &length);
    } else if (rc == MISLAS_OK) {
        rc = check(ctx, buf, got < header ? got : header, &total);
        if (rc == MISLAS_OK)
            rc = read_plain_expected(fn, path, fd, &st, &buf, &cap, got, total, &length);
    }
    close(fd);
    if (rc != MISLAS_OK) {
        mislasi_free(buf);
        return rc;
    }
    *data = buf;
    *size = length;
    return MISLAS_OK;
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

/* The file a write to `path` is meant for: path itself, or, when it is a
 * symbolic link, what the chain of links ends at (which need not exist yet),
 * so that the file is replaced and the link stays a link. */
static int resolve_links(const char *fn, const char *path, char *out)
{
    char err[128], target[MISLASI_PATH_MAX];
    snprintf(out, MISLASI_PATH_MAX, "%s", path);
    for (int depth = 0; depth < 40; depth++) {     /* Linux's own limit */
        struct stat st;
        if (lstat(out, &st) != 0 || !S_ISLNK(st.st_mode))
            return MISLAS_OK;
        ssize_t n = readlink(out, target, sizeof target - 1);
        if (n < 0)
            return mislasi_fail(MISLAS_ERR_IO, "%s: cannot follow the link %s: %s", fn, out,
                    error_text(errno, err, sizeof err));
        target[n] = '\0';
        char *slash = strrchr(out, '/');
        if (target[0] == '/' || slash == NULL) {
            snprintf(out, MISLASI_PATH_MAX, "%s", target);
        } else {
            slash[1] = '\0';
            if (strlen(out) + (size_t)n >= MISLASI_PATH_MAX)
                return mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT, "%s: the link %s leads to too long a path", fn,
                        path);
            strcat(out, target);
        }
    }
    return mislasi_fail(MISLAS_ERR_IO, "%s: cannot write %s: %s", fn, path, error_text(ELOOP, err, sizeof err));
}

/* All of data to fd, retrying short writes and interruptions: 0 or errno. */
static int write_all(int fd, const uint8_t *p, size_t left)
{
    while (left > 0) {
        ssize_t wrote = write(fd, p, left);
        if (wrote < 0 && errno == EINTR)
            continue;
        if (wrote <= 0)
            return wrote < 0 ? errno : ENOSPC;
        p += wrote;
        left -= (size_t)wrote;
    }
    return 0;
}

/* A device, FIFO or socket at the path is written as it is, the way a shell
 * redirection writes it: renaming a file over it would put a regular file
 * where /dev/null or a pipe was. */
static int write_in_place(const char *fn, const char *path, const void *data, size_t size)
{
    char err[128];
    int fd;
    do
        fd = open(path, O_WRONLY | O_CLOEXEC);
    while (fd < 0 && errno == EINTR);
    int saved = fd < 0 ? errno : write_all(fd, data, size);
    if (fd >= 0 && close(fd) != 0 && saved == 0)
        saved = errno;
    if (saved != 0)
        return mislasi_fail(MISLAS_ERR_IO, "%s: cannot write %s: %s", fn, path, error_text(saved, err, sizeof err));
    return MISLAS_OK;
}

int mislasi_write_file_atomic(const char *fn, const char *path, const void *data, size_t size)
{
    char file[MISLASI_PATH_MAX], tmp[MISLASI_PATH_MAX], err[128];
    int rc = resolve_links(fn, path, file);
    if (rc != MISLAS_OK)
        return rc;
    struct stat st;
    if (stat(file, &st) == 0 && !S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode))
        return write_in_place(fn, path, data, size);
    int len = snprintf(tmp, sizeof tmp, "%s.tmp-XXXXXX", file);
    if (len < 0 || (size_t)len >= sizeof tmp)
        return mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT, "%s: path \"%s\" is too long", fn, file);
    int fd = mkstemp(tmp);
    if (fd < 0)
        return mislasi_fail(MISLAS_ERR_IO, "%s: cannot create a temporary file beside %s: %s", fn, file,
                error_text(errno, err, sizeof err));
    int saved = fchmod(fd, creation_mode(file)) == 0 ? 0 : errno;
    if (saved == 0)
        saved = write_all(fd, data, size);
    if (saved == 0 && fsync(fd) != 0)
        saved = errno;
    if (close(fd) != 0 && saved == 0)
        saved = errno;
    if (saved == 0 && rename(tmp, file) != 0)
        saved = errno;
    if (saved != 0) {
        unlink(tmp);
        return mislasi_fail(MISLAS_ERR_IO, "%s: cannot write %s: %s (any previous file is unchanged)", fn, path,
                error_text(saved, err, sizeof err));
    }
    /* The rename itself reaches the disk when the folder is synced. */
    char dir[MISLASI_PATH_MAX];
    snprintf(dir, sizeof dir, "%s", file);
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
