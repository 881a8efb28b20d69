/* Member lookup in an in-memory tar archive (tar.h).
 *
 * A tar archive is a sequence of 512-byte header blocks, each followed by
 * the member's data padded to a whole number of blocks, and ends with zero
 * blocks. The header fields used here (POSIX ustar layout, which GNU tar
 * shares for these fields):
 *   0 name[100]  124 size[12] (octal, or GNU base-256 when the high bit of
 *   the first byte is set)  148 chksum[8] (octal)  156 typeflag
 *   257 magic[6] ("ustar\0" for POSIX, "ustar " for GNU)  345 prefix[155]
 *   (POSIX only: the path's leading folders)
 * GNU long names ('L' entries) and pax extended headers ('x', key "path")
 * supply the name of the entry that follows them. Other pax keys (such as
 * "size" for members over 8 GiB) are not needed for the data sets read here
 * and are ignored. */
#include "tar.h"
#include "util.h"

#include <string.h>

enum {
    BLOCK = 512,
    NAME_AT = 0, NAME_LEN = 100,
    SIZE_AT = 124, SIZE_LEN = 12,
    CHKSUM_AT = 148, CHKSUM_LEN = 8,
    TYPE_AT = 156,
    MAGIC_AT = 257,
    PREFIX_AT = 345, PREFIX_LEN = 155
};

static bool is_zero_block(const uint8_t *b)
{
    for (size_t i = 0; i < BLOCK; i++)
        if (b[i] != 0)
            return false;
    return true;
}

/* A numeric header field: octal digits after optional spaces, ended by a
 * space or NUL with nothing but spaces and NULs after; or GNU's base-256
 * (first byte 0x80, the rest big-endian). False if malformed or too big. */
static bool parse_number(const uint8_t *field, size_t len, uint64_t *value)
{
    uint64_t v = 0;
    if (field[0] == 0x80) {
        for (size_t i = 1; i < len; i++) {
            if (v > (UINT64_MAX >> 8))
                return false;
            v = v << 8 | field[i];
        }
        *value = v;
        return true;
    }
    size_t i = 0;
    while (i < len && field[i] == ' ')
        i++;
    size_t digits = 0;
    for (; i < len && field[i] >= '0' && field[i] <= '7'; i++, digits++) {
        if (v > (UINT64_MAX >> 3))
            return false;
        v = v << 3 | (uint64_t)(field[i] - '0');
    }
    if (digits == 0)
        return false;
    for (; i < len; i++)
        if (field[i] != ' ' && field[i] != 0)
            return false;
    *value = v;
    return true;
}

static size_t bounded_length(const uint8_t *s, size_t max)
{
    size_t n = 0;
    while (n < max && s[n] != 0)
        n++;
    return n;
}

/* The value of the "path" record in a pax extended header's data
 * ("<length> <key>=<value>\n" records); false if the records are malformed.
 * *found says whether a path was there. */
static bool pax_path(const uint8_t *data, size_t size, const uint8_t **path, size_t *path_len, bool *found)
{
    *found = false;
    size_t at = 0;
    while (at < size) {
        if (data[at] == 0)      /* NUL padding after the last record */
            break;
        size_t len = 0, i = at;
        for (; i < size && data[i] >= '0' && data[i] <= '9'; i++) {
            if (len > size)
                return false;
            len = len * 10 + (size_t)(data[i] - '0');
        }
        if (i == at || i >= size || data[i] != ' ' || len > size - at || len < (i - at) + 3
                || data[at + len - 1] != '\n')
            return false;
        const uint8_t *key = data + i + 1, *end = data + at + len - 1;
        const uint8_t *eq = memchr(key, '=', (size_t)(end - key));
        if (eq == NULL)
            return false;
        if (eq - key == 4 && memcmp(key, "path", 4) == 0) {
            *path = eq + 1;
            *path_len = (size_t)(end - (eq + 1));
            *found = true;
        }
        at += len;
    }
    return true;
}

/* True if the path's part after its last '/' is `base`. */
static bool has_base_name(const uint8_t *path, size_t len, const char *base)
{
    size_t start = len;
    while (start > 0 && path[start - 1] != '/')
        start--;
    size_t base_len = strlen(base);
    return len - start == base_len && memcmp(path + start, base, base_len) == 0;
}

static void copy_name(char *dst, size_t cap, const uint8_t *a, size_t a_len, const uint8_t *b, size_t b_len)
{
    size_t n = 0;
    for (size_t i = 0; i < a_len && n + 1 < cap; i++)
        dst[n++] = (char)a[i];
    if (a_len > 0 && n + 1 < cap)
        dst[n++] = '/';
    for (size_t i = 0; i < b_len && n + 1 < cap; i++)
        dst[n++] = (char)b[i];
    dst[n] = 0;
}

/* The archive being read, for the messages. */
typedef struct scan {
    const char *fn, *archive;
    const char *where;          /* "" or " of the decompressed archive" */
    const uint8_t *data;
    size_t size;
} scan;

/* Verifies the header at byte offset off (its checksum, its size field, its
 * data within the archive) and returns the size of the member's data. */
static int check_header(const scan *t, size_t off, size_t *member_size)
{
    const uint8_t *h = t->data + off;
    /* the first header failing says more plainly what is wrong */
    const char *not_tar = off == 0 ? "not a tar archive: " : "";
    uint64_t stored;
    if (!parse_number(h + CHKSUM_AT, CHKSUM_LEN, &stored))
        return mislasi_fail(MISLAS_ERR_FORMAT,
                "%s: %s: %sno tar header at byte offset %zu%s (its checksum field is not a number)",
                t->fn, t->archive, not_tar, off, t->where);
    /* the checksum: the header's bytes summed with the checksum field
     * counted as spaces; some old tars summed signed chars, accept both */
    uint64_t sum = 0;
    int64_t signed_sum = 0;
    for (size_t i = 0; i < BLOCK; i++) {
        uint8_t b = i >= CHKSUM_AT && i < CHKSUM_AT + CHKSUM_LEN ? (uint8_t)' ' : h[i];
        sum += b;
        signed_sum += (int8_t)b;
    }
    if (stored != sum && (int64_t)stored != signed_sum)
        return mislasi_fail(MISLAS_ERR_FORMAT,
                "%s: %s: %sbad tar header checksum at byte offset %zu%s (stored %llu, computed %llu)",
                t->fn, t->archive, not_tar, off, t->where, (unsigned long long)stored, (unsigned long long)sum);
    uint64_t n;
    if (!parse_number(h + SIZE_AT, SIZE_LEN, &n))
        return mislasi_fail(MISLAS_ERR_FORMAT, "%s: %s: bad tar size field at byte offset %zu%s",
                t->fn, t->archive, off + SIZE_AT, t->where);
    if (n > t->size - (off + BLOCK))
        return mislasi_fail(MISLAS_ERR_FORMAT,
                "%s: %s: the tar member at byte offset %zu%s has %llu bytes, running past the end "
                "of the archive (%zu bytes): truncated", t->fn, t->archive, off, t->where,
                (unsigned long long)n, t->size);
    *member_size = (size_t)n;
    return MISLAS_OK;
}

int mislasi_tar_find(const char *fn, const char *archive, bool decompressed,
        const uint8_t *data, size_t size, const char *base, mislasi_tar_member *member)
{
    const scan t = {fn, archive, decompressed ? " of the decompressed archive" : "", data, size};
    const uint8_t *long_name = NULL;     /* from an 'L' or 'x' entry, for the next header */
    size_t long_len = 0;
    size_t off = 0;
    for (;;) {
        if (off == size)
            return mislasi_fail(MISLAS_ERR_FORMAT,
                    "%s: %s: the tar archive is truncated: it ends at byte offset %zu%s without "
                    "its end-of-archive block", fn, archive, off, t.where);
        if (size - off < BLOCK)
            return mislasi_fail(MISLAS_ERR_FORMAT,
                    "%s: %s: the tar archive is truncated: only %zu bytes of a header at byte offset %zu%s",
                    fn, archive, size - off, off, t.where);
        const uint8_t *h = data + off;
        if (is_zero_block(h))
            break;
        size_t n = 0;
        int status = check_header(&t, off, &n);
        if (status != MISLAS_OK)
            return status;
        size_t data_at = off + BLOCK;
        size_t pad = (BLOCK - n % BLOCK) % BLOCK;
        size_t next = data_at + n + (pad <= size - data_at - n ? pad : size - data_at - n);
        const uint8_t *body = data + data_at;
        uint8_t type = h[TYPE_AT];
        if (type == 'L') {                  /* GNU long name of the next entry */
            long_name = body;
            long_len = bounded_length(body, n);
            off = next;
            continue;
        }
        if (type == 'K' || type == 'g') {   /* GNU long link name, pax global header: */
            off = next;                     /* nothing here names a regular file */
            continue;
        }
        if (type == 'x') {                  /* pax extended header of the next entry */
            const uint8_t *path;
            size_t path_len;
            bool found;
            if (!pax_path(body, n, &path, &path_len, &found))
                return mislasi_fail(MISLAS_ERR_FORMAT,
                        "%s: %s: malformed pax extended header at byte offset %zu%s", fn, archive, off, t.where);
            if (found) {
                long_name = path;
                long_len = path_len;
            }
            off = next;
            continue;
        }
        /* regular files: '0', and '\0' from old tars; '7' (contiguous) is one too */
        if (type == '0' || type == 0 || type == '7') {
            const uint8_t *name = h + NAME_AT, *prefix = h + PREFIX_AT;
            size_t name_len = bounded_length(name, NAME_LEN), prefix_len = 0;
            if (long_name != NULL) {
                name = long_name;
                name_len = long_len;
            } else if (memcmp(h + MAGIC_AT, "ustar", 6) == 0) {   /* POSIX: "ustar\0" */
                prefix_len = bounded_length(prefix, PREFIX_LEN);
            }
            if (has_base_name(name, name_len, base)) {
                member->header_offset = off;
                member->offset = data_at;
                member->size = n;
                copy_name(member->name, sizeof member->name, prefix, prefix_len, name, name_len);
                return MISLAS_OK;
            }
        }
        long_name = NULL;
        long_len = 0;
        off = next;
    }
    return mislasi_fail(MISLAS_ERR_FORMAT, "%s: archive %s has no member %s", fn, archive, base);
}
