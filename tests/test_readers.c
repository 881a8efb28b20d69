/* The file readers: IDX (plain and gzip), CIFAR-10/100 folders and .tar.gz
 * archives, opening by name, every malformed-file case, and the
 * allocation-failure sweep. The test files are written here, by this file's
 * own code: IDX headers and tar headers by hand, gzip with zlib. When
 * Debian's dataset-fashion-mnist is installed, the real files are checked
 * too. */
#define _XOPEN_SOURCE 700       /* mkdtemp, nftw */
#include "testutil.h"

#include <fcntl.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

static const char FASHION_MNIST_DIR[] = "/usr/share/datasets/fashion-mnist";

/* ------------------------------------------------------------ temp folder */

/* One folder for the suite, made before the tests and removed after them
 * even when a test fails (an unchecked fixture, run in the parent process),
 * and a fresh folder inside it for each test (a checked fixture). */
static char root_dir[512], tmp_dir[600];

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void remove_tree(const char *path)
{
    nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void make_root_dir(void)
{
    const char *base = getenv("TMPDIR");
    snprintf(root_dir, sizeof root_dir, "%s/mislas-readers-XXXXXX", base != NULL && base[0] ? base : "/tmp");
    ck_assert_ptr_nonnull(mkdtemp(root_dir));
}

static void remove_root_dir(void)
{
    remove_tree(root_dir);
}

static void make_tmp_dir(void)
{
    snprintf(tmp_dir, sizeof tmp_dir, "%s/test-XXXXXX", root_dir);
    ck_assert_ptr_nonnull(mkdtemp(tmp_dir));
}

static void remove_tmp_dir(void)
{
    remove_tree(tmp_dir);
}

/* tmp_dir/name in one of 32 rotating buffers (enough for any one call's
 * arguments and the sweep's table) */
static const char *tpath(const char *name)
{
    static char paths[32][1024];
    static int next;
    char *p = paths[next++ % 32];
    snprintf(p, sizeof paths[0], "%s/%s", tmp_dir, name);
    return p;
}

static void make_dir(const char *name)
{
    ck_assert_int_eq(mkdir(tpath(name), 0700), 0);
}

static void write_file(const char *path, const void *data, size_t size)
{
    FILE *f = fopen(path, "wb");
    ck_assert_msg(f != NULL, "cannot write %s", path);
    ck_assert_uint_eq(fwrite(data, 1, size, f), size);
    ck_assert_int_eq(fclose(f), 0);
}

/* ------------------------------------------------------------ byte buffers */

typedef struct bytes {
    uint8_t *p;
    size_t n, cap;
} bytes;

static void put(bytes *b, const void *data, size_t n)
{
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 1024;
        b->p = realloc(b->p, b->cap);
        ck_assert_ptr_nonnull(b->p);
    }
    if (data != NULL)
        memcpy(b->p + b->n, data, n);
    else
        memset(b->p + b->n, 0, n);
    b->n += n;
}

/* appends a copy of the buffer's own first n bytes */
static void put_own_prefix(bytes *b, size_t n)
{
    put(b, NULL, n);
    memcpy(b->p + b->n - n, b->p, n);
}

static void put_byte(bytes *b, uint8_t v)
{
    put(b, &v, 1);
}

static void put_be32(bytes *b, uint32_t v)
{
    uint8_t x[4] = { (uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v };
    put(b, x, 4);
}

/* gzip in memory with zlib's deflate (windowBits 15 + 16: the gzip wrapper) */
static bytes gzip_of(const uint8_t *data, size_t n)
{
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    ck_assert_int_eq(deflateInit2(&zs, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY), Z_OK);
    bytes out = { NULL, 0, 0 };
    out.cap = deflateBound(&zs, (uLong)n);
    out.p = malloc(out.cap);
    zs.next_in = (Bytef *)(uintptr_t)data;
    zs.avail_in = (uInt)n;
    zs.next_out = out.p;
    zs.avail_out = (uInt)out.cap;
    ck_assert_int_eq(deflate(&zs, Z_FINISH), Z_STREAM_END);
    out.n = zs.total_out;
    deflateEnd(&zs);
    return out;
}

/* a .gz file through zlib's own gzip file writer */
static void write_gz_file(const char *path, const uint8_t *data, size_t n)
{
    gzFile f = gzopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(gzwrite(f, data, (unsigned)n), (int)n);
    ck_assert_int_eq(gzclose(f), Z_OK);
}

/* ------------------------------------------------------------------- IDX */

static uint8_t idx_pixel(size_t image, size_t j)
{
    return (uint8_t)(image * 31 + j * 7 + (j * j) % 13);
}

static int32_t idx_label(size_t image)
{
    return (int32_t)((image * 3 + 1) % 7);
}

static bytes idx_images(uint32_t n, uint32_t rows, uint32_t cols)
{
    bytes b = { NULL, 0, 0 };
    put_byte(&b, 0);
    put_byte(&b, 0);
    put_byte(&b, 0x08);
    put_byte(&b, 3);
    put_be32(&b, n);
    put_be32(&b, rows);
    put_be32(&b, cols);
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < (size_t)rows * cols; j++)
            put_byte(&b, idx_pixel(i, j));
    return b;
}

static bytes idx_labels(uint32_t n)
{
    bytes b = { NULL, 0, 0 };
    put_byte(&b, 0);
    put_byte(&b, 0);
    put_byte(&b, 0x08);
    put_byte(&b, 1);
    put_be32(&b, n);
    for (size_t i = 0; i < n; i++)
        put_byte(&b, (uint8_t)idx_label(i));
    return b;
}

enum { IDX_N = 9, IDX_ROWS = 4, IDX_COLS = 6 };

static void write_idx_pair(const char *images, const char *labels, bool gz_images, bool gz_labels)
{
    bytes im = idx_images(IDX_N, IDX_ROWS, IDX_COLS), lb = idx_labels(IDX_N);
    if (gz_images)
        write_gz_file(images, im.p, im.n);
    else
        write_file(images, im.p, im.n);
    if (gz_labels)
        write_gz_file(labels, lb.p, lb.n);
    else
        write_file(labels, lb.p, lb.n);
    free(im.p);
    free(lb.p);
}

static void check_idx_data(const mislas_dataset *d, int32_t expected_classes)
{
    ck_assert_ptr_nonnull(d);
    ck_assert_uint_eq(mislas_dataset_size(d), IDX_N);
    ck_assert_int_eq(mislas_dataset_num_classes(d), expected_classes);
    int32_t c, h, w;
    ck_assert_status(mislas_dataset_shape(d, &c, &h, &w), MISLAS_OK);
    ck_assert_int_eq(c, 1);
    ck_assert_int_eq(h, IDX_ROWS);
    ck_assert_int_eq(w, IDX_COLS);
    const int32_t *labels = mislas_dataset_labels(d);
    for (size_t i = 0; i < IDX_N; i++) {
        ck_assert_int_eq(labels[i], idx_label(i));
        const uint8_t *im = mislas_dataset_image(d, i);
        for (size_t j = 0; j < IDX_ROWS * IDX_COLS; j++)
            ck_assert_uint_eq(im[j], idx_pixel(i, j));
    }
    ck_assert_ptr_null(mislas_dataset_image(d, IDX_N));
}

/* ------------------------------------------------------------------ CIFAR */

enum { PIXELS = 3072, REC10 = 3073, REC100 = 3074 };

/* Image number `global` of a made-up CIFAR set: pixels and labels derived from it. */
static uint8_t cifar_pixel(size_t global, size_t j)
{
    return (uint8_t)(global * 17 + j * 5 + j / 1024);
}

static int32_t cifar10_label(size_t global)
{
    return (int32_t)((global * 7 + 2) % 10);
}

static int32_t cifar100_fine(size_t global)
{
    return (int32_t)((global * 37 + 11) % 100);
}

static int32_t cifar100_coarse(size_t global)
{
    return cifar100_fine(global) / 5;
}

/* records first .. first + n - 1 */
static bytes cifar_batch(int k, size_t first, size_t n)
{
    bytes b = { NULL, 0, 0 };
    for (size_t g = first; g < first + n; g++) {
        if (k == 10) {
            put_byte(&b, (uint8_t)cifar10_label(g));
        } else {
            put_byte(&b, (uint8_t)cifar100_coarse(g));
            put_byte(&b, (uint8_t)cifar100_fine(g));
        }
        for (size_t j = 0; j < PIXELS; j++)
            put_byte(&b, cifar_pixel(g, j));
    }
    return b;
}

/* CIFAR-10: five training batches of unequal sizes (whole records are all
 * the reader asks for), then the test batch; global numbers run on. */
static const size_t TRAIN10[5] = { 3, 1, 2, 2, 4 };
enum { TRAIN10_N = 12, TEST10_N = 5, TRAIN100_N = 6, TEST100_N = 4, TEST10_FIRST = 100, TEST100_FIRST = 200 };
static const char *const BATCH_NAMES[5] = { "data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin",
    "data_batch_4.bin", "data_batch_5.bin" };

static void write_cifar10_folder(const char *folder)
{
    char name[256];
    size_t first = 0;
    for (int f = 0; f < 5; f++) {
        bytes b = cifar_batch(10, first, TRAIN10[f]);
        snprintf(name, sizeof name, "%s/%s", folder, BATCH_NAMES[f]);
        write_file(tpath(name), b.p, b.n);
        free(b.p);
        first += TRAIN10[f];
    }
    bytes t = cifar_batch(10, TEST10_FIRST, TEST10_N);
    snprintf(name, sizeof name, "%s/test_batch.bin", folder);
    write_file(tpath(name), t.p, t.n);
    free(t.p);
}

static void write_cifar100_folder(const char *folder)
{
    char name[256];
    bytes b = cifar_batch(100, 0, TRAIN100_N), t = cifar_batch(100, TEST100_FIRST, TEST100_N);
    snprintf(name, sizeof name, "%s/train.bin", folder);
    write_file(tpath(name), b.p, b.n);
    snprintf(name, sizeof name, "%s/test.bin", folder);
    write_file(tpath(name), t.p, t.n);
    free(b.p);
    free(t.p);
}

static void check_cifar(const mislas_dataset *d, int k, size_t n, size_t first)
{
    ck_assert_ptr_nonnull(d);
    ck_assert_uint_eq(mislas_dataset_size(d), n);
    ck_assert_int_eq(mislas_dataset_num_classes(d), k);
    int32_t c, h, w;
    ck_assert_status(mislas_dataset_shape(d, &c, &h, &w), MISLAS_OK);
    ck_assert_int_eq(c, 3);
    ck_assert_int_eq(h, 32);
    ck_assert_int_eq(w, 32);
    const int32_t *labels = mislas_dataset_labels(d);
    for (size_t i = 0; i < n; i++) {
        size_t g = first + i;
        ck_assert_int_eq(labels[i], k == 10 ? cifar10_label(g) : cifar100_fine(g));
        const uint8_t *im = mislas_dataset_image(d, i);
        for (size_t j = 0; j < PIXELS; j++)
            ck_assert_uint_eq(im[j], cifar_pixel(g, j));
    }
}

/* -------------------------------------------------------------------- tar */

/* One ustar header, checksum included. `prefix` may be NULL. */
static void tar_header(uint8_t h[512], const char *name, const char *prefix, size_t size, char type)
{
    memset(h, 0, 512);
    ck_assert_uint_le(strlen(name), 100);
    memcpy(h, name, strlen(name));
    snprintf((char *)h + 100, 8, "%07o", 0644u);
    snprintf((char *)h + 108, 8, "%07o", 1000u);
    snprintf((char *)h + 116, 8, "%07o", 1000u);
    snprintf((char *)h + 124, 12, "%011lo", (unsigned long)size);
    snprintf((char *)h + 136, 12, "%011lo", 1262304000ul);
    h[156] = (uint8_t)type;
    memcpy(h + 257, "ustar", 6);
    memcpy(h + 263, "00", 2);
    memcpy(h + 265, "user", 4);
    memcpy(h + 297, "user", 4);
    if (prefix != NULL) {
        ck_assert_uint_le(strlen(prefix), 155);
        memcpy(h + 345, prefix, strlen(prefix));
    }
    memset(h + 148, ' ', 8);
    unsigned sum = 0;
    for (int i = 0; i < 512; i++)
        sum += h[i];
    snprintf((char *)h + 148, 7, "%06o", sum);
    h[155] = ' ';
}

static void tar_add(bytes *tar, const char *name, const char *prefix, const void *data, size_t size, char type)
{
    uint8_t h[512];
    tar_header(h, name, prefix, size, type);
    put(tar, h, 512);
    if (size > 0) {
        put(tar, data, size);
        put(tar, NULL, (512 - size % 512) % 512);
    }
}

/* A GNU long-name entry naming the next member. */
static void tar_add_long_name(bytes *tar, const char *long_name)
{
    tar_add(tar, "././@LongLink", NULL, long_name, strlen(long_name) + 1, 'L');
}

static void tar_end(bytes *tar)
{
    put(tar, NULL, 1024);
}

/* cifar-10-binary.tar.gz's layout: a folder entry, the batches, and the
 * text files, in an order of their own. `skip` names a batch to leave out. */
static bytes cifar10_tar(const char *skip)
{
    bytes tar = { NULL, 0, 0 };
    tar_add(&tar, "cifar-10-batches-bin/", NULL, NULL, 0, '5');
    const char *meta = "airplane\nautomobile\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n";
    tar_add(&tar, "cifar-10-batches-bin/batches.meta.txt", NULL, meta, strlen(meta), '0');
    size_t first[5] = { 0 };
    for (int f = 1; f < 5; f++)
        first[f] = first[f - 1] + TRAIN10[f - 1];
    const int order[5] = { 2, 0, 4, 1, 3 };
    for (int o = 0; o < 5; o++) {
        int f = order[o];
        if (skip != NULL && strcmp(skip, BATCH_NAMES[f]) == 0)
            continue;
        bytes b = cifar_batch(10, first[f], TRAIN10[f]);
        char name[128];
        snprintf(name, sizeof name, "cifar-10-batches-bin/%s", BATCH_NAMES[f]);
        if (f == 4) {   /* this one through the ustar prefix field */
            tar_add(&tar, BATCH_NAMES[f], "cifar-10-batches-bin", b.p, b.n, '0');
        } else {
            tar_add(&tar, name, NULL, b.p, b.n, f == 3 ? '\0' : '0');
        }
        free(b.p);
    }
    bytes t = cifar_batch(10, TEST10_FIRST, TEST10_N);
    /* the test batch under a GNU long name */
    tar_add_long_name(&tar, "cifar-10-batches-bin/a-folder-name-long-enough-to-need-the-gnu-long-name-entry"
            "-because-it-does-not-fit-in-one-hundred-bytes/test_batch.bin");
    tar_add(&tar, "cifar-10-batches-bin/a-folder-name-long-enough-to-need-the-gnu-long-name-entry-bec",
            NULL, t.p, t.n, '0');
    free(t.p);
    const char *readme = "<html>not the data</html>\n";
    tar_add(&tar, "cifar-10-batches-bin/readme.html", NULL, readme, strlen(readme), '0');
    tar_end(&tar);
    return tar;
}

static bytes cifar100_tar(void)
{
    bytes tar = { NULL, 0, 0 };
    tar_add(&tar, "cifar-100-binary/", NULL, NULL, 0, '5');
    const char *names = "apple\naquarium_fish\n";
    tar_add(&tar, "cifar-100-binary/coarse_label_names.txt", NULL, names, strlen(names), '0');
    bytes t = cifar_batch(100, TEST100_FIRST, TEST100_N), b = cifar_batch(100, 0, TRAIN100_N);
    tar_add(&tar, "cifar-100-binary/test.bin", NULL, t.p, t.n, '0');
    tar_add(&tar, "cifar-100-binary/train.bin", NULL, b.p, b.n, '0');
    free(t.p);
    free(b.p);
    tar_end(&tar);
    return tar;
}

static void write_gz_of(const char *path, const bytes *b)
{
    bytes gz = gzip_of(b->p, b->n);
    write_file(path, gz.p, gz.n);
    free(gz.p);
}

/* ------------------------------------------------------------ failure checks */

static char not_null_marker;
#define NOT_NULL ((mislas_dataset *)(void *)&not_null_marker)

/* rc must be `expected`, *d NULL, and the message must contain each of the
 * NULL-terminated strings. */
static void expect_error_at(int line, const char *call, int rc, int expected, mislas_dataset *const *d, ...)
{
    const char *msg = mislas_last_error();
    ck_assert_msg(rc == expected, "line %d: %s returned %d (%s), expected %d (%s); last error: %s",
            line, call, rc, mislas_status_string(rc), expected, mislas_status_string(expected), msg);
    ck_assert_msg(*d == NULL, "line %d: %s left *out set after failing", line, call);
    va_list ap;
    va_start(ap, d);
    for (const char *s = va_arg(ap, const char *); s != NULL; s = va_arg(ap, const char *))
        ck_assert_msg(strstr(msg, s) != NULL, "line %d: %s: the message \"%s\" does not mention \"%s\"",
                line, call, msg, s);
    va_end(ap);
}
#define EXPECT_ERROR(call, expected, dptr, ...) \
    expect_error_at(__LINE__, #call, (call), (expected), (dptr), __VA_ARGS__, (const char *)NULL)

/* ------------------------------------------------------------------ IDX tests */

START_TEST(idx_plain_round_trip)
{
    write_idx_pair(tpath("im-idx3-ubyte"), tpath("lb-idx1-ubyte"), false, false);
    mislas_dataset *d = NOT_NULL;
    ck_assert_status(mislas_dataset_load_idx(&d, tpath("im-idx3-ubyte"), tpath("lb-idx1-ubyte"), 10), MISLAS_OK);
    check_idx_data(d, 10);
    int64_t counts[10];
    ck_assert_status(mislas_dataset_class_counts(d, counts), MISLAS_OK);
    int64_t expected[10] = { 0 };
    for (size_t i = 0; i < IDX_N; i++)
        expected[idx_label(i)]++;
    for (int c = 0; c < 10; c++)
        ck_assert_int_eq(counts[c], expected[c]);
    mislas_dataset_free(d);
    /* num_classes 0: the largest label + 1 (labels 0..6 here) */
    ck_assert_status(mislas_dataset_load_idx(&d, tpath("im-idx3-ubyte"), tpath("lb-idx1-ubyte"), 0), MISLAS_OK);
    check_idx_data(d, 7);
    mislas_dataset_free(d);
}
END_TEST

START_TEST(idx_gz_round_trip)
{
    /* zlib's gzip writer, the usual names */
    write_idx_pair(tpath("im-idx3-ubyte.gz"), tpath("lb-idx1-ubyte.gz"), true, true);
    mislas_dataset *d = NOT_NULL;
    ck_assert_status(mislas_dataset_load_idx(&d, tpath("im-idx3-ubyte.gz"), tpath("lb-idx1-ubyte.gz"), 10), MISLAS_OK);
    check_idx_data(d, 10);
    mislas_dataset_free(d);
    /* told apart by content, not by name: gzip under a plain name, plain
     * bytes under a .gz name, and a mixed pair */
    write_idx_pair(tpath("gz-inside"), tpath("plain-inside.gz"), true, false);
    ck_assert_status(mislas_dataset_load_idx(&d, tpath("gz-inside"), tpath("plain-inside.gz"), 0), MISLAS_OK);
    check_idx_data(d, 7);
    mislas_dataset_free(d);
    /* two concatenated gzip members (gzip -c a b) decompress to the joined data */
    bytes im = idx_images(IDX_N, IDX_ROWS, IDX_COLS);
    size_t half = im.n / 2;
    bytes a = gzip_of(im.p, half), b = gzip_of(im.p + half, im.n - half);
    put(&a, b.p, b.n);
    write_file(tpath("two-members.gz"), a.p, a.n);
    ck_assert_status(mislas_dataset_load_idx(&d, tpath("two-members.gz"), tpath("plain-inside.gz"), 0), MISLAS_OK);
    check_idx_data(d, 7);
    mislas_dataset_free(d);
    free(im.p);
    free(a.p);
    free(b.p);
}
END_TEST

/* A child process that writes `first` into the FIFO at path_a, then
 * `second` (if not NULL) into the one at path_b, each as one stream a
 * reader sees as a pipe; a reader that stops early ends its writes (EPIPE). */
static pid_t feed_fifos(const char *path_a, const bytes *first, const char *path_b, const bytes *second)
{
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid > 0)
        return pid;
    signal(SIGPIPE, SIG_IGN);
    const char *paths[2] = { path_a, path_b };
    const bytes *data[2] = { first, second };
    for (int i = 0; i < 2 && data[i] != NULL; i++) {
        int fd = open(paths[i], O_WRONLY);
        for (size_t done = 0; fd >= 0 && done < data[i]->n;) {
            ssize_t wrote = write(fd, data[i]->p + done, data[i]->n - done);
            if (wrote <= 0)
                _exit(0);
            done += (size_t)wrote;
        }
        if (fd >= 0)
            close(fd);
    }
    _exit(0);
}

/* Files that are not regular (a FIFO here; a device, a pipe from another
 * program) are read header first too: a good pair loads as from disk, data
 * after the announced end is counted and refused with the same message, and
 * a bad magic number ends the read after the header, however much the
 * writer has left to send (64 MiB here). */
START_TEST(idx_through_fifos)
{
    const char *ip = tpath("images.fifo"), *lp = tpath("labels.fifo");
    ck_assert_int_eq(mkfifo(ip, 0600), 0);
    ck_assert_int_eq(mkfifo(lp, 0600), 0);
    bytes im = idx_images(IDX_N, IDX_ROWS, IDX_COLS), lb = idx_labels(IDX_N);
    mislas_dataset *d = NOT_NULL;
    pid_t child = feed_fifos(ip, &im, lp, &lb);
    ck_assert_status(mislas_dataset_load_idx(&d, ip, lp, 10), MISLAS_OK);
    ck_assert_int_eq(waitpid(child, NULL, 0), child);
    check_idx_data(d, 10);
    mislas_dataset_free(d);

    bytes longer = { NULL, 0, 0 };
    put(&longer, im.p, im.n);
    put(&longer, "12345", 5);
    d = NOT_NULL;
    child = feed_fifos(ip, &longer, NULL, NULL);
    EXPECT_ERROR(mislas_dataset_load_idx(&d, ip, lp, 10), MISLAS_ERR_FORMAT, &d,
            "5 bytes follow the data, from byte offset 232");
    ck_assert_int_eq(waitpid(child, NULL, 0), child);

    bytes bad = { NULL, 0, 0 };
    put_be32(&bad, 0x00000803 + 0x100);
    bad.n = (size_t)64 << 20;
    bad.p = realloc(bad.p, bad.n);
    ck_assert_ptr_nonnull(bad.p);
    memset(bad.p + 4, 0, bad.n - 4);
    child = feed_fifos(ip, &bad, NULL, NULL);
    EXPECT_ERROR(mislas_dataset_load_idx(&d, ip, lp, 10), MISLAS_ERR_FORMAT, &d,
            "bad magic number 00 00 09 03 at byte offset 0");
    ck_assert_int_eq(waitpid(child, NULL, 0), child);
    free(im.p);
    free(lb.p);
    free(longer.p);
    free(bad.p);
}
END_TEST

/* Writes `data` (possibly gzipped) as the images or labels file of an
 * otherwise good pair and checks the load fails as expected. */
static void idx_case(int line, const bytes *images, const bytes *labels, int32_t k, bool gz,
        const char *needle1, const char *needle2)
{
    const char *ip = tpath(gz ? "case-images.gz" : "case-images"), *lp = tpath(gz ? "case-labels.gz" : "case-labels");
    if (gz) {
        write_gz_of(ip, images);
        write_gz_of(lp, labels);
    } else {
        write_file(ip, images->p, images->n);
        write_file(lp, labels->p, labels->n);
    }
    mislas_dataset *d = NOT_NULL;
    int rc = mislas_dataset_load_idx(&d, ip, lp, k);
    char call[64];
    snprintf(call, sizeof call, "idx case at line %d%s", line, gz ? " (gzip)" : "");
    expect_error_at(line, call, rc, MISLAS_ERR_FORMAT, &d, needle1, needle2, (const char *)NULL);
}

START_TEST(idx_malformed)
{
    for (int gz = 0; gz < 2; gz++) {
        const char *images_name = gz ? "case-images.gz" : "case-images";
        const char *labels_name = gz ? "case-labels.gz" : "case-labels";
        bytes good_im = idx_images(IDX_N, IDX_ROWS, IDX_COLS), good_lb = idx_labels(IDX_N);
        const size_t image_bytes = IDX_N * IDX_ROWS * IDX_COLS;

        /* bad magic: another element type, another number of dimensions,
         * a nonzero first byte, and the two files swapped */
        bytes im = idx_images(IDX_N, IDX_ROWS, IDX_COLS);
        im.p[2] = 0x09;
        idx_case(__LINE__, &im, &good_lb, 10, gz, images_name, "byte offset 0");
        im.p[2] = 0x08;
        im.p[3] = 2;
        idx_case(__LINE__, &im, &good_lb, 10, gz, images_name, "magic");
        im.p[3] = 3;
        im.p[0] = 1;
        idx_case(__LINE__, &im, &good_lb, 10, gz, images_name, "magic");
        idx_case(__LINE__, &good_lb, &good_im, 10, gz, images_name, "byte offset 0");
        free(im.p);
        bytes lb = idx_labels(IDX_N);
        lb.p[3] = 3;
        idx_case(__LINE__, &good_im, &lb, 10, gz, labels_name, "magic");
        free(lb.p);

        /* short header: inside the magic, inside the dimensions; an empty file */
        bytes cut = { good_im.p, 2, 0 };
        idx_case(__LINE__, &cut, &good_lb, 10, gz, images_name, "byte offset 2");
        cut.n = 10;
        idx_case(__LINE__, &cut, &good_lb, 10, gz, images_name, "byte offset 10");
        cut.n = 0;
        idx_case(__LINE__, &cut, &good_lb, 10, gz, images_name, "short header");
        cut.p = good_lb.p;
        cut.n = 6;
        idx_case(__LINE__, &good_im, &cut, 10, gz, labels_name, "byte offset 6");

        /* short data: the last image cut, a label missing */
        char at[64];
        cut.p = good_im.p;
        cut.n = good_im.n - 5;
        snprintf(at, sizeof at, "byte offset %zu", good_im.n - 5);
        idx_case(__LINE__, &cut, &good_lb, 10, gz, images_name, at);
        cut.p = good_lb.p;
        cut.n = good_lb.n - 1;
        snprintf(at, sizeof at, "byte offset %zu", good_lb.n - 1);
        idx_case(__LINE__, &good_im, &cut, 10, gz, labels_name, at);
        /* bytes after the data */
        bytes longer = { NULL, 0, 0 };
        put(&longer, good_im.p, good_im.n);
        put(&longer, "xyz", 3);
        snprintf(at, sizeof at, "byte offset %zu", 16 + image_bytes);
        idx_case(__LINE__, &longer, &good_lb, 10, gz, images_name, at);
        free(longer.p);
        /* a zero dimension */
        im = idx_images(IDX_N, IDX_ROWS, IDX_COLS);
        memset(im.p + 8, 0, 4);
        idx_case(__LINE__, &im, &good_lb, 10, gz, images_name, "byte offset 8");
        free(im.p);

        /* a label out of range: with K = 3 the first is label 1 (4), at byte 8 + 1 */
        ck_assert_int_eq(idx_label(0), 1);
        ck_assert_int_eq(idx_label(1), 4);
        idx_case(__LINE__, &good_im, &good_lb, 3, gz, labels_name, "byte offset 9");
        lb = idx_labels(IDX_N);
        lb.p[8 + 5] = 200;
        idx_case(__LINE__, &good_im, &lb, 10, gz, labels_name, "byte offset 13");
        free(lb.p);

        /* images and labels counts differ: both files named */
        lb = idx_labels(IDX_N - 1);
        idx_case(__LINE__, &good_im, &lb, 10, gz, images_name, labels_name);
        free(lb.p);
        free(good_im.p);
        free(good_lb.p);
    }
    /* offsets in a gzip file's message are said to be in the decompressed data */
    bytes im = idx_images(IDX_N, IDX_ROWS, IDX_COLS), lb = idx_labels(IDX_N);
    im.n -= 1;
    idx_case(__LINE__, &im, &lb, 10, true, "decompressed", "case-images.gz");
    free(im.p);
    free(lb.p);
}
END_TEST

START_TEST(corrupt_gzip)
{
    bytes im = idx_images(IDX_N, IDX_ROWS, IDX_COLS), lb = idx_labels(IDX_N);
    bytes gz = gzip_of(im.p, im.n);
    write_file(tpath("labels"), lb.p, lb.n);
    mislas_dataset *d = NOT_NULL;
    /* flipped bytes in the middle of the deflate data */
    bytes bad = { NULL, 0, 0 };
    put(&bad, gz.p, gz.n);
    for (size_t i = gz.n / 2; i < gz.n / 2 + 4; i++)
        bad.p[i] ^= 0xa5;
    write_file(tpath("flipped.gz"), bad.p, bad.n);
    EXPECT_ERROR(mislas_dataset_load_idx(&d, tpath("flipped.gz"), tpath("labels"), 10), MISLAS_ERR_FORMAT, &d,
            "flipped.gz", "compressed byte offset");
    /* a wrong CRC-32 in the trailer */
    memcpy(bad.p, gz.p, gz.n);
    bad.p[gz.n - 6] ^= 1;
    write_file(tpath("crc.gz"), bad.p, bad.n);
    EXPECT_ERROR(mislas_dataset_load_idx(&d, tpath("crc.gz"), tpath("labels"), 10), MISLAS_ERR_FORMAT, &d,
            "crc.gz", "compressed byte offset");
    /* an unknown compression method in the header (byte 2) */
    memcpy(bad.p, gz.p, gz.n);
    bad.p[2] = 7;
    write_file(tpath("method.gz"), bad.p, bad.n);
    EXPECT_ERROR(mislas_dataset_load_idx(&d, tpath("method.gz"), tpath("labels"), 10), MISLAS_ERR_FORMAT, &d,
            "method.gz", "offset");
    /* truncated: cut in the middle, and just the trailer missing */
    write_file(tpath("half.gz"), gz.p, gz.n / 2);
    char at[64];
    snprintf(at, sizeof at, "compressed byte offset %zu", gz.n / 2);
    EXPECT_ERROR(mislas_dataset_load_idx(&d, tpath("half.gz"), tpath("labels"), 10), MISLAS_ERR_FORMAT, &d,
            "half.gz", "truncated", at);
    write_file(tpath("no-trailer.gz"), gz.p, gz.n - 8);
    snprintf(at, sizeof at, "compressed byte offset %zu", gz.n - 8);
    EXPECT_ERROR(mislas_dataset_load_idx(&d, tpath("no-trailer.gz"), tpath("labels"), 10), MISLAS_ERR_FORMAT, &d,
            "no-trailer.gz", "truncated", at);
    write_file(tpath("magic-only.gz"), gz.p, 2);
    EXPECT_ERROR(mislas_dataset_load_idx(&d, tpath("magic-only.gz"), tpath("labels"), 10), MISLAS_ERR_FORMAT, &d,
            "magic-only.gz", "truncated");
    /* bytes that are not gzip after the stream */
    memcpy(bad.p, gz.p, gz.n);
    put(&bad, "junk", 4);
    write_file(tpath("junk.gz"), bad.p, bad.n);
    snprintf(at, sizeof at, "compressed byte offset %zu", gz.n);
    EXPECT_ERROR(mislas_dataset_load_idx(&d, tpath("junk.gz"), tpath("labels"), 10), MISLAS_ERR_FORMAT, &d,
            "junk.gz", at);
    /* a corrupt labels file is named as the labels file */
    bytes lgz = gzip_of(lb.p, lb.n);
    write_file(tpath("images"), im.p, im.n);
    write_file(tpath("labels-cut.gz"), lgz.p, lgz.n - 3);
    EXPECT_ERROR(mislas_dataset_load_idx(&d, tpath("images"), tpath("labels-cut.gz"), 10), MISLAS_ERR_FORMAT, &d,
            "labels-cut.gz", "truncated");
    free(lgz.p);
    free(bad.p);
    free(gz.p);
    free(im.p);
    free(lb.p);
}
END_TEST

START_TEST(missing_files_and_arguments)
{
    write_idx_pair(tpath("images"), tpath("labels"), false, false);
    mislas_dataset *d = NOT_NULL;
    EXPECT_ERROR(mislas_dataset_load_idx(&d, tpath("no-such-images"), tpath("labels"), 10), MISLAS_ERR_IO, &d,
            "no-such-images", "No such file");
    EXPECT_ERROR(mislas_dataset_load_idx(&d, tpath("images"), tpath("no-such-labels"), 10), MISLAS_ERR_IO, &d,
            "no-such-labels");
    EXPECT_ERROR(mislas_dataset_load_idx(&d, tmp_dir, tpath("labels"), 10), MISLAS_ERR_IO, &d, tmp_dir);
    EXPECT_ERROR(mislas_dataset_load_idx(&d, NULL, tpath("labels"), 10), MISLAS_ERR_INVALID_ARGUMENT, &d,
            "images_path");
    EXPECT_ERROR(mislas_dataset_load_idx(&d, tpath("images"), NULL, 10), MISLAS_ERR_INVALID_ARGUMENT, &d,
            "labels_path");
    EXPECT_ERROR(mislas_dataset_load_idx(&d, tpath("images"), tpath("labels"), -1), MISLAS_ERR_INVALID_ARGUMENT, &d,
            "num_classes");
    ck_assert_status(mislas_dataset_load_idx(NULL, tpath("images"), tpath("labels"), 10), MISLAS_ERR_INVALID_ARGUMENT);

    EXPECT_ERROR(mislas_dataset_load_cifar(&d, tpath("no-such-folder"), 10, MISLAS_SPLIT_TRAIN), MISLAS_ERR_IO, &d,
            "no-such-folder");
    /* a folder with nothing of CIFAR in it: both places looked at are named */
    EXPECT_ERROR(mislas_dataset_load_cifar(&d, tmp_dir, 10, MISLAS_SPLIT_TRAIN), MISLAS_ERR_IO, &d,
            "data_batch_1.bin", "cifar-10-batches-bin");
    EXPECT_ERROR(mislas_dataset_load_cifar(&d, tmp_dir, 100, MISLAS_SPLIT_TEST), MISLAS_ERR_IO, &d,
            "test.bin", "cifar-100-binary");
    /* one batch file missing */
    make_dir("cifar-10-batches-bin");
    write_cifar10_folder("cifar-10-batches-bin");
    ck_assert_int_eq(unlink(tpath("cifar-10-batches-bin/data_batch_3.bin")), 0);
    EXPECT_ERROR(mislas_dataset_load_cifar(&d, tmp_dir, 10, MISLAS_SPLIT_TRAIN), MISLAS_ERR_IO, &d,
            "cifar-10-batches-bin/data_batch_3.bin");
    ck_assert_status(mislas_dataset_load_cifar(&d, tmp_dir, 10, MISLAS_SPLIT_TEST), MISLAS_OK);
    mislas_dataset_free(d);
    d = NOT_NULL;
    EXPECT_ERROR(mislas_dataset_load_cifar(&d, tmp_dir, 20, MISLAS_SPLIT_TRAIN), MISLAS_ERR_INVALID_ARGUMENT, &d,
            "num_classes");
    EXPECT_ERROR(mislas_dataset_load_cifar(&d, tmp_dir, 10, (mislas_split)7), MISLAS_ERR_INVALID_ARGUMENT, &d,
            "split");
    EXPECT_ERROR(mislas_dataset_load_cifar(&d, NULL, 10, MISLAS_SPLIT_TRAIN), MISLAS_ERR_INVALID_ARGUMENT, &d,
            "path");
    ck_assert_status(mislas_dataset_load_cifar(NULL, tmp_dir, 10, MISLAS_SPLIT_TEST), MISLAS_ERR_INVALID_ARGUMENT);
}
END_TEST

/* ---------------------------------------------------------------- CIFAR tests */

START_TEST(cifar10_folder)
{
    make_dir("c10");
    write_cifar10_folder("c10");
    mislas_dataset *d = NOT_NULL;
    ck_assert_status(mislas_dataset_load_cifar(&d, tpath("c10"), 10, MISLAS_SPLIT_TRAIN), MISLAS_OK);
    check_cifar(d, 10, TRAIN10_N, 0);       /* batch 1's records first, then 2, ... */
    mislas_dataset_free(d);
    ck_assert_status(mislas_dataset_load_cifar(&d, tpath("c10"), 10, MISLAS_SPLIT_TEST), MISLAS_OK);
    check_cifar(d, 10, TEST10_N, TEST10_FIRST);
    mislas_dataset_free(d);
    /* the parent of cifar-10-batches-bin, with and without a trailing slash */
    make_dir("parent");
    make_dir("parent/cifar-10-batches-bin");
    write_cifar10_folder("parent/cifar-10-batches-bin");
    ck_assert_status(mislas_dataset_load_cifar(&d, tpath("parent"), 10, MISLAS_SPLIT_TRAIN), MISLAS_OK);
    check_cifar(d, 10, TRAIN10_N, 0);
    mislas_dataset_free(d);
    ck_assert_status(mislas_dataset_load_cifar(&d, tpath("parent/"), 10, MISLAS_SPLIT_TEST), MISLAS_OK);
    check_cifar(d, 10, TEST10_N, TEST10_FIRST);
    mislas_dataset_free(d);
    /* and by name */
    ck_assert_status(mislas_dataset_open(&d, "cifar10", tpath("parent"), MISLAS_SPLIT_TRAIN), MISLAS_OK);
    check_cifar(d, 10, TRAIN10_N, 0);
    mislas_dataset_free(d);
}
END_TEST

START_TEST(cifar100_folder)
{
    make_dir("c100");
    write_cifar100_folder("c100");
    mislas_dataset *d = NOT_NULL;
    ck_assert_status(mislas_dataset_load_cifar(&d, tpath("c100"), 100, MISLAS_SPLIT_TRAIN), MISLAS_OK);
    check_cifar(d, 100, TRAIN100_N, 0);     /* fine labels, which the coarse ones are not */
    ck_assert_int_ne(mislas_dataset_labels(d)[1], cifar100_coarse(1));
    mislas_dataset_free(d);
    ck_assert_status(mislas_dataset_load_cifar(&d, tpath("c100"), 100, MISLAS_SPLIT_TEST), MISLAS_OK);
    check_cifar(d, 100, TEST100_N, TEST100_FIRST);
    mislas_dataset_free(d);
    make_dir("p");
    make_dir("p/cifar-100-binary");
    write_cifar100_folder("p/cifar-100-binary");
    ck_assert_status(mislas_dataset_open(&d, "cifar100", tpath("p"), MISLAS_SPLIT_TEST), MISLAS_OK);
    check_cifar(d, 100, TEST100_N, TEST100_FIRST);
    mislas_dataset_free(d);
}
END_TEST

START_TEST(cifar_archives)
{
    bytes t10 = cifar10_tar(NULL), t100 = cifar100_tar();
    write_gz_of(tpath("cifar-10-binary.tar.gz"), &t10);
    write_gz_of(tpath("cifar-100-binary.tar.gz"), &t100);
    write_file(tpath("cifar-10-binary.tar"), t10.p, t10.n);
    mislas_dataset *d = NOT_NULL;
    ck_assert_status(mislas_dataset_load_cifar(&d, tpath("cifar-10-binary.tar.gz"), 10, MISLAS_SPLIT_TRAIN), MISLAS_OK);
    check_cifar(d, 10, TRAIN10_N, 0);       /* in batch order, not archive order */
    mislas_dataset_free(d);
    ck_assert_status(mislas_dataset_load_cifar(&d, tpath("cifar-10-binary.tar.gz"), 10, MISLAS_SPLIT_TEST), MISLAS_OK);
    check_cifar(d, 10, TEST10_N, TEST10_FIRST);
    mislas_dataset_free(d);
    ck_assert_status(mislas_dataset_load_cifar(&d, tpath("cifar-10-binary.tar"), 10, MISLAS_SPLIT_TRAIN), MISLAS_OK);
    check_cifar(d, 10, TRAIN10_N, 0);
    mislas_dataset_free(d);
    ck_assert_status(mislas_dataset_load_cifar(&d, tpath("cifar-100-binary.tar.gz"), 100, MISLAS_SPLIT_TRAIN), MISLAS_OK);
    check_cifar(d, 100, TRAIN100_N, 0);
    mislas_dataset_free(d);
    ck_assert_status(mislas_dataset_open(&d, "cifar100", tpath("cifar-100-binary.tar.gz"), MISLAS_SPLIT_TEST), MISLAS_OK);
    check_cifar(d, 100, TEST100_N, TEST100_FIRST);
    mislas_dataset_free(d);
    free(t10.p);
    free(t100.p);
}
END_TEST

static void write_batch_bytes(const char *folder, const char *file, const bytes *b)
{
    char name[256];
    snprintf(name, sizeof name, "%s/%s", folder, file);
    write_file(tpath(name), b->p, b->n);
}

START_TEST(cifar_malformed)
{
    make_dir("c10");
    write_cifar10_folder("c10");
    make_dir("c100");
    write_cifar100_folder("c100");
    mislas_dataset *d = NOT_NULL;
    char at[64];
    /* a partial record: two records and 100 bytes */
    bytes b = cifar_batch(10, 0, 2);
    put_own_prefix(&b, 100);
    write_batch_bytes("c10", "data_batch_2.bin", &b);
    snprintf(at, sizeof at, "byte offset %d", 2 * REC10);
    EXPECT_ERROR(mislas_dataset_load_cifar(&d, tpath("c10"), 10, MISLAS_SPLIT_TRAIN), MISLAS_ERR_FORMAT, &d,
            "data_batch_2.bin", "partial record", at);
    /* one byte short of a record */
    b.n = REC10 - 1;
    write_batch_bytes("c10", "data_batch_2.bin", &b);
    EXPECT_ERROR(mislas_dataset_load_cifar(&d, tpath("c10"), 10, MISLAS_SPLIT_TRAIN), MISLAS_ERR_FORMAT, &d,
            "data_batch_2.bin", "byte offset 0");
    /* empty */
    b.n = 0;
    write_batch_bytes("c10", "data_batch_2.bin", &b);
    EXPECT_ERROR(mislas_dataset_load_cifar(&d, tpath("c10"), 10, MISLAS_SPLIT_TRAIN), MISLAS_ERR_FORMAT, &d,
            "data_batch_2.bin", "no records");
    free(b.p);
    /* label 10 in record 2 of the test batch */
    b = cifar_batch(10, 0, 4);
    b.p[2 * REC10] = 10;
    write_batch_bytes("c10", "test_batch.bin", &b);
    snprintf(at, sizeof at, "byte offset %d", 2 * REC10);
    EXPECT_ERROR(mislas_dataset_load_cifar(&d, tpath("c10"), 10, MISLAS_SPLIT_TEST), MISLAS_ERR_FORMAT, &d,
            "test_batch.bin", "label 10", at);
    free(b.p);
    /* CIFAR-100: a coarse label of 20, a fine label of 100 */
    b = cifar_batch(100, 0, 3);
    b.p[1 * REC100] = 20;
    write_batch_bytes("c100", "train.bin", &b);
    snprintf(at, sizeof at, "byte offset %d", REC100);
    EXPECT_ERROR(mislas_dataset_load_cifar(&d, tpath("c100"), 100, MISLAS_SPLIT_TRAIN), MISLAS_ERR_FORMAT, &d,
            "train.bin", "coarse label 20", at);
    b.p[1 * REC100] = 19;
    b.p[2 * REC100 + 1] = 100;
    write_batch_bytes("c100", "train.bin", &b);
    snprintf(at, sizeof at, "byte offset %d", 2 * REC100 + 1);
    EXPECT_ERROR(mislas_dataset_load_cifar(&d, tpath("c100"), 100, MISLAS_SPLIT_TRAIN), MISLAS_ERR_FORMAT, &d,
            "train.bin", "fine label 100", at);
    free(b.p);
    /* CIFAR-10 files read as CIFAR-100: 3073-byte records are not whole 3074-byte ones */
    make_dir("c100/wrong");
    b = cifar_batch(10, 0, 5);
    write_batch_bytes("c100/wrong", "test.bin", &b);
    free(b.p);
    snprintf(at, sizeof at, "byte offset %d", 4 * REC100);
    EXPECT_ERROR(mislas_dataset_load_cifar(&d, tpath("c100/wrong"), 100, MISLAS_SPLIT_TEST), MISLAS_ERR_FORMAT, &d,
            "test.bin", at);
}
END_TEST

START_TEST(tar_malformed)
{
    mislas_dataset *d = NOT_NULL;
    char at[128];
    /* a missing member */
    bytes t = cifar10_tar("data_batch_3.bin");
    write_gz_of(tpath("cifar-10-binary.tar.gz"), &t);
    EXPECT_ERROR(mislas_dataset_load_cifar(&d, tpath("cifar-10-binary.tar.gz"), 10, MISLAS_SPLIT_TRAIN),
            MISLAS_ERR_FORMAT, &d, "cifar-10-binary.tar.gz has no member data_batch_3.bin");
    ck_assert_status(mislas_dataset_load_cifar(&d, tpath("cifar-10-binary.tar.gz"), 10, MISLAS_SPLIT_TEST), MISLAS_OK);
    mislas_dataset_free(d);
    d = NOT_NULL;
    free(t.p);

    /* a header whose checksum no longer matches: the third header (after the
     * folder entry and batches.meta.txt's header and one data block) */
    t = cifar10_tar(NULL);
    const size_t third = 512 + 512 + 512;
    ck_assert_uint_eq(t.p[third + 156], '0');
    t.p[third + 30] ^= 0x01;    /* inside the name, changes nothing else */
    write_gz_of(tpath("bad-sum.tar.gz"), &t);
    snprintf(at, sizeof at, "byte offset %zu", third);
    EXPECT_ERROR(mislas_dataset_load_cifar(&d, tpath("bad-sum.tar.gz"), 10, MISLAS_SPLIT_TRAIN), MISLAS_ERR_FORMAT, &d,
            "bad-sum.tar.gz", "checksum", at, "decompressed");
    t.p[third + 30] ^= 0x01;
    /* a checksum field that is not a number */
    memcpy(t.p + third + 148, "xx", 2);
    write_file(tpath("bad-field.tar"), t.p, t.n);
    EXPECT_ERROR(mislas_dataset_load_cifar(&d, tpath("bad-field.tar"), 10, MISLAS_SPLIT_TRAIN), MISLAS_ERR_FORMAT, &d,
            "bad-field.tar", at);
    free(t.p);

    /* the archive cut inside a member's data: its size runs past the end */
    t = cifar10_tar(NULL);
    write_gz_of(tpath("cut.tar.gz"), &(bytes){ t.p, third + 512 + 1000, 0 });
    EXPECT_ERROR(mislas_dataset_load_cifar(&d, tpath("cut.tar.gz"), 10, MISLAS_SPLIT_TRAIN), MISLAS_ERR_FORMAT, &d,
            "cut.tar.gz", "truncated", at);
    /* cut inside a header, and cut between members (no end-of-archive block) */
    write_gz_of(tpath("cut-header.tar.gz"), &(bytes){ t.p, third + 100, 0 });
    snprintf(at, sizeof at, "byte offset %zu", third);
    EXPECT_ERROR(mislas_dataset_load_cifar(&d, tpath("cut-header.tar.gz"), 10, MISLAS_SPLIT_TRAIN), MISLAS_ERR_FORMAT,
            &d, "cut-header.tar.gz", "truncated", at);
    write_gz_of(tpath("cut-between.tar.gz"), &(bytes){ t.p, third, 0 });
    EXPECT_ERROR(mislas_dataset_load_cifar(&d, tpath("cut-between.tar.gz"), 10, MISLAS_SPLIT_TRAIN), MISLAS_ERR_FORMAT,
            &d, "cut-between.tar.gz", "truncated", at);
    /* the .tar.gz itself truncated */
    bytes gz = gzip_of(t.p, t.n);
    write_file(tpath("short.tar.gz"), gz.p, gz.n - 100);
    EXPECT_ERROR(mislas_dataset_load_cifar(&d, tpath("short.tar.gz"), 10, MISLAS_SPLIT_TRAIN), MISLAS_ERR_FORMAT, &d,
            "short.tar.gz", "truncated", "compressed byte offset");
    /* and corrupt inside */
    for (size_t i = gz.n / 3; i < gz.n / 3 + 8; i++)
        gz.p[i] ^= 0x5a;
    write_file(tpath("corrupt.tar.gz"), gz.p, gz.n);
    EXPECT_ERROR(mislas_dataset_load_cifar(&d, tpath("corrupt.tar.gz"), 10, MISLAS_SPLIT_TRAIN), MISLAS_ERR_FORMAT, &d,
            "corrupt.tar.gz", "compressed byte offset");
    free(gz.p);
    free(t.p);

    /* a bad record inside an archive member: the member and both offsets named */
    t = (bytes){ NULL, 0, 0 };
    bytes b = cifar_batch(100, 0, 2);
    put_own_prefix(&b, 10);
    tar_add(&t, "cifar-100-binary/train.bin", NULL, b.p, b.n, '0');
    tar_end(&t);
    write_gz_of(tpath("partial.tar.gz"), &t);
    snprintf(at, sizeof at, "byte offset %d of member cifar-100-binary/train.bin (byte offset %d", 2 * REC100,
            512 + 2 * REC100);
    EXPECT_ERROR(mislas_dataset_load_cifar(&d, tpath("partial.tar.gz"), 100, MISLAS_SPLIT_TRAIN), MISLAS_ERR_FORMAT,
            &d, "partial.tar.gz", "partial record", at);
    free(b.p);
    free(t.p);

    /* not an archive at all: a batch file given as the path */
    make_dir("c10");
    write_cifar10_folder("c10");
    EXPECT_ERROR(mislas_dataset_load_cifar(&d, tpath("c10/test_batch.bin"), 10, MISLAS_SPLIT_TEST), MISLAS_ERR_FORMAT,
            &d, "test_batch.bin", "not a tar archive", "byte offset 0");
}
END_TEST

/* ------------------------------------------------------------- open by name */

/* A folder where an IDX file should be is named as such, not as missing. */
START_TEST(a_folder_in_place_of_an_idx_file)
{
    make_dir("fm");
    write_idx_pair(tpath("fm/train-images-idx3-ubyte"), tpath("fm/train-labels-idx1-ubyte"), false, false);
    make_dir("fm/t10k-images-idx3-ubyte");
    write_idx_pair(tpath("fm/unused-images"), tpath("fm/t10k-labels-idx1-ubyte"), false, false);
    mislas_dataset *d = NOT_NULL;
    EXPECT_ERROR(mislas_dataset_open(&d, "fashion-mnist", tpath("fm"), MISLAS_SPLIT_TEST), MISLAS_ERR_IO, &d,
            "t10k-images-idx3-ubyte is a folder, not an IDX file");
    /* a folder named as the .gz: the plain file beside it is read; with
     * no plain file, the folder is what the message names */
    make_dir("fm/train-labels-idx1-ubyte.gz");
    ck_assert_status(mislas_dataset_open(&d, "fashion-mnist", tpath("fm"), MISLAS_SPLIT_TRAIN), MISLAS_OK);
    mislas_dataset_free(d);
    ck_assert_int_eq(unlink(tpath("fm/train-labels-idx1-ubyte")), 0);
    d = NOT_NULL;
    EXPECT_ERROR(mislas_dataset_open(&d, "fashion-mnist", tpath("fm"), MISLAS_SPLIT_TRAIN), MISLAS_ERR_IO, &d,
            "train-labels-idx1-ubyte.gz is a folder, not an IDX file");
}
END_TEST

START_TEST(open_by_name)
{
    mislas_dataset *d = NOT_NULL;
    /* a Fashion-MNIST-like folder: training files gzipped, test files plain */
    make_dir("fm");
    write_idx_pair(tpath("fm/train-images-idx3-ubyte.gz"), tpath("fm/train-labels-idx1-ubyte.gz"), true, true);
    write_idx_pair(tpath("fm/t10k-images-idx3-ubyte"), tpath("fm/t10k-labels-idx1-ubyte"), false, false);
    ck_assert_status(mislas_dataset_open(&d, "fashion-mnist", tpath("fm"), MISLAS_SPLIT_TRAIN), MISLAS_OK);
    check_idx_data(d, 10);
    mislas_dataset_free(d);
    ck_assert_status(mislas_dataset_open(&d, "mnist", tpath("fm"), MISLAS_SPLIT_TEST), MISLAS_OK);
    check_idx_data(d, 10);
    mislas_dataset_free(d);
    /* the .gz name is tried first: a broken plain file beside it is not read */
    write_file(tpath("fm/train-images-idx3-ubyte"), "junk", 4);
    ck_assert_status(mislas_dataset_open(&d, "fashion-mnist", tpath("fm"), MISLAS_SPLIT_TRAIN), MISLAS_OK);
    mislas_dataset_free(d);
    d = NOT_NULL;
    /* a reader's failure keeps the file and offset, under open's name */
    write_file(tpath("fm/t10k-labels-idx1-ubyte"), "\0\0\x08\x01", 4);
    EXPECT_ERROR(mislas_dataset_open(&d, "fashion-mnist", tpath("fm"), MISLAS_SPLIT_TEST), MISLAS_ERR_FORMAT, &d,
            "mislas_dataset_open", "t10k-labels-idx1-ubyte", "byte offset 4");
    /* missing files: IO, with advice */
    make_dir("empty");
    EXPECT_ERROR(mislas_dataset_open(&d, "fashion-mnist", tpath("empty"), MISLAS_SPLIT_TRAIN), MISLAS_ERR_IO, &d,
            "train-images-idx3-ubyte", "empty", "data_dir");
    EXPECT_ERROR(mislas_dataset_open(&d, "mnist", tpath("empty"), MISLAS_SPLIT_TEST), MISLAS_ERR_IO, &d,
            "t10k-images-idx3-ubyte", "data_dir");
    EXPECT_ERROR(mislas_dataset_open(&d, "cifar10", tpath("empty"), MISLAS_SPLIT_TRAIN), MISLAS_ERR_IO, &d,
            "data_batch_1.bin", "mislas_dataset_open");
    if (access(FASHION_MNIST_DIR, F_OK) != 0)
        EXPECT_ERROR(mislas_dataset_open(&d, "fashion-mnist", NULL, MISLAS_SPLIT_TRAIN), MISLAS_ERR_IO, &d,
                "dataset-fashion-mnist", "data_dir");
    /* no default folder, unknown names, bad arguments */
    EXPECT_ERROR(mislas_dataset_open(&d, "mnist", NULL, MISLAS_SPLIT_TRAIN), MISLAS_ERR_INVALID_ARGUMENT, &d,
            "data_dir");
    EXPECT_ERROR(mislas_dataset_open(&d, "cifar100", NULL, MISLAS_SPLIT_TRAIN), MISLAS_ERR_INVALID_ARGUMENT, &d,
            "data_dir");
    EXPECT_ERROR(mislas_dataset_open(&d, "imagenet", tpath("fm"), MISLAS_SPLIT_TRAIN), MISLAS_ERR_INVALID_ARGUMENT,
            &d, "imagenet", "fashion-mnist", "mnist", "cifar10", "cifar100");
    EXPECT_ERROR(mislas_dataset_open(&d, NULL, NULL, MISLAS_SPLIT_TRAIN), MISLAS_ERR_INVALID_ARGUMENT, &d, "name");
    EXPECT_ERROR(mislas_dataset_open(&d, "mnist", tpath("fm"), (mislas_split)-1), MISLAS_ERR_INVALID_ARGUMENT, &d,
            "split");
    ck_assert_status(mislas_dataset_open(NULL, "mnist", tpath("fm"), MISLAS_SPLIT_TRAIN), MISLAS_ERR_INVALID_ARGUMENT);
}
END_TEST

/* ---------------------------------------------------- the real Fashion-MNIST */

START_TEST(real_fashion_mnist)
{
    if (access(FASHION_MNIST_DIR, F_OK) != 0)
        return;     /* Debian's dataset-fashion-mnist is not installed */
    mislas_dataset *train = NULL, *test = NULL, *lt = NULL;
    ck_assert_status(mislas_dataset_open(&train, "fashion-mnist", NULL, MISLAS_SPLIT_TRAIN), MISLAS_OK);
    ck_assert_uint_eq(mislas_dataset_size(train), 60000);
    ck_assert_int_eq(mislas_dataset_num_classes(train), 10);
    int32_t c, h, w;
    ck_assert_status(mislas_dataset_shape(train, &c, &h, &w), MISLAS_OK);
    ck_assert_int_eq(c, 1);
    ck_assert_int_eq(h, 28);
    ck_assert_int_eq(w, 28);
    int64_t counts[10], expected[10];
    ck_assert_status(mislas_dataset_class_counts(train, counts), MISLAS_OK);
    for (int k = 0; k < 10; k++)
        ck_assert_int_eq(counts[k], 6000);
    /* the first training image is an ankle boot (9), the second a T-shirt (0) */
    ck_assert_int_eq(mislas_dataset_labels(train)[0], 9);
    ck_assert_int_eq(mislas_dataset_labels(train)[1], 0);

    /* IF 100, exponential: 6000, 3596, 2156, ..., 60 images, 14886 in all */
    ck_assert_status(mislas_dataset_long_tail(&lt, train, 0.01, MISLAS_IMBALANCE_EXP, 0), MISLAS_OK);
    ck_assert_status(mislas_long_tail_counts(expected, 10, 6000, 0.01, MISLAS_IMBALANCE_EXP), MISLAS_OK);
    ck_assert_status(mislas_dataset_class_counts(lt, counts), MISLAS_OK);
    int64_t total = 0;
    for (int k = 0; k < 10; k++) {
        ck_assert_int_eq(counts[k], expected[k]);
        total += expected[k];
    }
    ck_assert_int_eq(expected[0], 6000);
    ck_assert_int_eq(expected[9], 60);
    ck_assert_int_eq(total, 14886);
    ck_assert_uint_eq(mislas_dataset_size(lt), 14886);
    mislas_dataset_free(lt);
    mislas_dataset_free(train);

    ck_assert_status(mislas_dataset_open(&test, "fashion-mnist", NULL, MISLAS_SPLIT_TEST), MISLAS_OK);
    ck_assert_uint_eq(mislas_dataset_size(test), 10000);
    ck_assert_status(mislas_dataset_class_counts(test, counts), MISLAS_OK);
    for (int k = 0; k < 10; k++)
        ck_assert_int_eq(counts[k], 1000);
    mislas_dataset_free(test);
}
END_TEST

/* -------------------------------------------------- allocation-failure sweep */

typedef struct load_args {
    const char *path, *labels;
    int kind;       /* 0 IDX, 10 or 100 CIFAR */
    mislas_split split;
} load_args;

static int attempt_load(void *ctx)
{
    const load_args *a = ctx;
    mislas_dataset *d = NOT_NULL;
    int rc = a->kind == 0 ? mislas_dataset_load_idx(&d, a->path, a->labels, 10)
            : mislas_dataset_load_cifar(&d, a->path, a->kind, a->split);
    if (rc != MISLAS_OK)
        ck_assert_ptr_null(d);
    mislas_dataset_free(d);
    return rc;
}

START_TEST(allocation_failure_sweep)
{
    write_idx_pair(tpath("images"), tpath("labels"), false, false);
    write_idx_pair(tpath("images.gz"), tpath("labels.gz"), true, true);
    /* two gzip members: the trailer's size hint is only the second's, so the
     * output grows and zlib allocates its window between calls */
    bytes im = idx_images(IDX_N, IDX_ROWS, IDX_COLS);
    bytes a = gzip_of(im.p, 20), b = gzip_of(im.p + 20, im.n - 20);
    put(&a, b.p, b.n);
    write_file(tpath("two-members.gz"), a.p, a.n);
    free(im.p);
    free(a.p);
    free(b.p);
    make_dir("c10");
    write_cifar10_folder("c10");
    bytes t10 = cifar10_tar(NULL), t100 = cifar100_tar();
    write_gz_of(tpath("cifar-10-binary.tar.gz"), &t10);
    write_gz_of(tpath("cifar-100-binary.tar.gz"), &t100);
    free(t10.p);
    free(t100.p);
    const load_args cases[] = {
        { tpath("images"), tpath("labels"), 0, MISLAS_SPLIT_TRAIN },
        { tpath("images.gz"), tpath("labels.gz"), 0, MISLAS_SPLIT_TRAIN },
        { tpath("two-members.gz"), tpath("labels"), 0, MISLAS_SPLIT_TRAIN },
        { tpath("c10"), NULL, 10, MISLAS_SPLIT_TRAIN },
        { tpath("cifar-10-binary.tar.gz"), NULL, 10, MISLAS_SPLIT_TRAIN },
        { tpath("cifar-100-binary.tar.gz"), NULL, 100, MISLAS_SPLIT_TEST },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        long calls = test_allocation_sweep(attempt_load, (void *)&cases[i]);
        ck_assert_int_ge(calls, 3);     /* the file(s), the labels, the data set */
    }
}
END_TEST

static Suite *readers_suite(void)
{
    Suite *s = suite_create("readers");
    TCase *tc = tcase_create("readers");
    tcase_add_unchecked_fixture(tc, make_root_dir, remove_root_dir);
    tcase_add_checked_fixture(tc, make_tmp_dir, remove_tmp_dir);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, idx_plain_round_trip);
    tcase_add_test(tc, idx_gz_round_trip);
    tcase_add_test(tc, idx_through_fifos);
    tcase_add_test(tc, idx_malformed);
    tcase_add_test(tc, corrupt_gzip);
    tcase_add_test(tc, missing_files_and_arguments);
    tcase_add_test(tc, cifar10_folder);
    tcase_add_test(tc, cifar100_folder);
    tcase_add_test(tc, cifar_archives);
    tcase_add_test(tc, cifar_malformed);
    tcase_add_test(tc, tar_malformed);
    tcase_add_test(tc, open_by_name);
    tcase_add_test(tc, a_folder_in_place_of_an_idx_file);
    tcase_add_test(tc, real_fashion_mnist);
    tcase_add_test(tc, allocation_failure_sweep);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return test_run_suite(readers_suite());
}
