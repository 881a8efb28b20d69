/* Whole-file input for the readers: a file into memory, gzip decompression
 * through zlib, and small path helpers. Every buffer comes from mislasi_alloc
 * (zlib's own state too), so the allocator hook and the allocation-failure
 * sweeps see all of it. Not installed. */
#ifndef MISLAS_FILEIO_H
#define MISLAS_FILEIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <zlib.h>

/* Longest path the readers build from a folder and a file name. */
enum { MISLASI_PATH_MAX = 4096 };

/* The whole file at `path` into *data (mislasi_alloc'ed, release with
 * mislasi_free; never NULL on success, even for an empty file) and its length
 * into *size. A file that cannot be opened or read is MISLAS_ERR_IO with the
 * path and strerror, one longer than MISLASI_INPUT_LIMIT
 * MISLAS_ERR_UNSUPPORTED; `fn` names the public call in messages. On failure
 * *data is NULL and *size 0. */
int mislasi_read_file(const char *fn, const char *path, uint8_t **data, size_t *size);

/* True if the bytes start like a gzip stream (1f 8b). */
bool mislasi_is_gzip(const uint8_t *data, size_t size);

/* Decompresses the gzip stream in[0..in_size-1] into *out (mislasi_alloc'ed,
 * never NULL on success) and *out_size. Concatenated gzip members are
 * accepted and their data joined, as gzip(1) does; any other bytes after the
 * last member are MISLAS_ERR_FORMAT. A corrupt or truncated stream is
 * MISLAS_ERR_FORMAT naming `name` and the compressed byte offset; more than
 * MISLASI_INPUT_LIMIT bytes of output is MISLAS_ERR_UNSUPPORTED. */
int mislasi_gunzip(const char *fn, const char *name, const uint8_t *in, size_t in_size,
        uint8_t **out, size_t *out_size);

/* The most the readers take in from one file or one gzip stream: 4 GiB (the
 * largest size a gzip trailer can state; the largest data set read here is
 * under 200 MB), half the address space on a 32-bit machine. Beyond it is
 * MISLAS_ERR_UNSUPPORTED rather than an attempt to allocate it all. */
#if SIZE_MAX > 0xFFFFFFFFu
#define MISLASI_INPUT_LIMIT ((size_t)1 << 32)
#else
#define MISLASI_INPUT_LIMIT (SIZE_MAX / 2)
#endif

/* The most deflate can expand its input (about 1032:1): a stream claiming
 * more output than this times its size is lying. */
enum { MISLASI_DEFLATE_MAX_RATIO = 1032 };

/* mislasi_read_file, then mislasi_gunzip if the content starts with 1f 8b
 * (the content decides, not the name). *was_gzip (may be NULL) tells which,
 * so that messages can say that offsets are in the decompressed data. */
int mislasi_read_maybe_gzip(const char *fn, const char *path, uint8_t **data, size_t *size,
        bool *was_gzip);

/* A reader's check of a file's first bytes: head holds the first `got`
 * bytes of the content (fewer than asked only when the content is that
 * short). It either refuses them (records the failure, returns its status)
 * or sets *total, the content length they announce. */
typedef int (*mislasi_header_check)(void *ctx, const uint8_t *head, size_t got, size_t *total);

/* A file read header first, so that a file whose first bytes are wrong
 * costs no more than those bytes, and one whose header overstates its data
 * costs no more than the data there is. The content (gzip-decompressed when
 * `gzip` allows and it starts 1f 8b; *was_gzip, may be NULL, says so before
 * check runs) is read as far as `header` bytes and given to check; then at
 * most total bytes of it are kept in *data (mislasi_alloc'ed), and *size is
 * its true length, counted rather than kept beyond total, so that the
 * caller's messages can say how long or short the file is. Failures to
 * read are mislasi_read_file's and mislasi_gunzip's. */
int mislasi_read_expected(const char *fn, const char *path, bool gzip, size_t header, mislasi_header_check check,
        void *ctx, uint8_t **data, size_t *size, bool *was_gzip);

/* What is at `path`: a folder, a file (anything else that exists), or
 * nothing (errno then says why). */
typedef enum mislasi_path_kind {
    MISLASI_PATH_MISSING = 0,
    MISLASI_PATH_FILE = 1,
    MISLASI_PATH_DIR = 2
} mislasi_path_kind;
mislasi_path_kind mislasi_path_kind_of(const char *path);

/* buf = dir + "/" + name (no doubled slash), false if it would not fit in
 * `cap` bytes. */
bool mislasi_path_join(char *buf, size_t cap, const char *dir, const char *name);

/* Makes zlib take its memory from mislasi_alloc. */
void mislasi_zlib_use_library_memory(z_stream *zs);

/* Writes data to path atomically: a temporary file beside it, written,
 * flushed to disk and renamed over path, then the folder synced. On any
 * failure (MISLAS_ERR_IO with strerror) the temporary file is removed and
 * whatever was at path is untouched. A symbolic link at path stays a link:
 * the file it leads to (made if missing) is the one replaced. A device, FIFO
 * or socket is written in place, as a shell redirection would, never
 * replaced by a file. */
int mislasi_write_file_atomic(const char *fn, const char *path, const void *data, size_t size);

#endif
