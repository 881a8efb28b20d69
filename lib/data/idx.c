/* IDX files (MNIST, Fashion-MNIST), plain or gzip-compressed.
 *
 * An IDX file: two zero bytes, a type byte (0x08: unsigned bytes, the only
 * type read here), the number of dimensions, each dimension as a big-endian
 * uint32, then the data row-major. Images are n x rows x cols (3 dimensions),
 * labels n (1 dimension). The file must hold exactly the data the header
 * announces. Offsets in messages are byte offsets in the file, or in the
 * decompressed data for a gzip file (the message says which). */
#include "data.h"
#include "util/util.h"

#include <string.h>

static const char FN[] = "mislas_dataset_load_idx";

typedef struct idx_file {
    const char *path;
    uint8_t *bytes;
    size_t size;
    bool gz;
    uint32_t dims[3];
    size_t data_at;     /* where the data starts */
} idx_file;

static const char *offset_note(const idx_file *f)
{
    return f->gz ? " of the decompressed data" : "";
}

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

/* The header of an IDX file of `ndims` dimensions, as a mislasi_header_check:
 * its magic number and dimensions, checked before the data is read. */
typedef struct idx_expect {
    idx_file *f;
    int ndims;
    const char *what;       /* "image" or "label", for the message */
    size_t data_size;       /* what the dimensions announce */
} idx_expect;

static int check_header(void *ctx, const uint8_t *b, size_t got, size_t *total)
{
    idx_expect *e = ctx;
    idx_file *f = e->f;
    const int ndims = e->ndims;
    const size_t header = 4 + 4 * (size_t)ndims;
    if (got < 4)
        return mislasi_fail(MISLAS_ERR_FORMAT,
                "%s: %s: short header: the file ends at byte offset %zu%s, inside the 4-byte magic number",
                FN, f->path, got, offset_note(f));
    if (b[0] != 0 || b[1] != 0 || b[2] != 0x08 || b[3] != ndims)
        return mislasi_fail(MISLAS_ERR_FORMAT,
                "%s: %s: bad magic number %02x %02x %02x %02x at byte offset 0%s; an IDX %s file starts "
                "00 00 08 %02x (unsigned bytes, %d dimension%s)", FN, f->path, b[0], b[1], b[2], b[3],
                offset_note(f), e->what, ndims, ndims, ndims == 1 ? "" : "s");
    if (got < header)
        return mislasi_fail(MISLAS_ERR_FORMAT,
                "%s: %s: short header: the file ends at byte offset %zu%s, inside the %zu-byte header",
                FN, f->path, got, offset_note(f), header);
    size_t expected = 1;
    for (int i = 0; i < ndims; i++) {
        f->dims[i] = be32(b + 4 + 4 * i);
        if (f->dims[i] == 0)
            return mislasi_fail(MISLAS_ERR_FORMAT, "%s: %s: dimension %d is 0 at byte offset %d%s",
                    FN, f->path, i, 4 + 4 * i, offset_note(f));
        if (f->dims[i] > (uint32_t)INT32_MAX || expected > (SIZE_MAX - header) / f->dims[i])
            return mislasi_fail(MISLAS_ERR_FORMAT,
                    "%s: %s: dimension %d is %lu at byte offset %d%s, too large", FN, f->path, i,
                    (unsigned long)f->dims[i], 4 + 4 * i, offset_note(f));
        expected *= f->dims[i];
    }
    f->data_at = header;
    e->data_size = expected;
    *total = header + expected;
    return MISLAS_OK;
}

/* Reads an IDX file of `ndims` dimensions, header first, and checks that
 * the data that follows is exactly as long as the header says. */
static int read_idx(idx_file *f, int ndims, const char *what)
{
    idx_expect e = {.f = f, .ndims = ndims, .what = what};
    int rc = mislasi_read_expected(FN, f->path, true, 4 + 4 * (size_t)ndims, check_header, &e, &f->bytes, &f->size,
            &f->gz);
    if (rc != MISLAS_OK)
        return rc;
    size_t have = f->size - f->data_at, expected = e.data_size;
    if (have < expected)
        return mislasi_fail(MISLAS_ERR_FORMAT,
                "%s: %s: short data: the header announces %zu bytes of data but the file ends at byte "
                "offset %zu%s (%zu byte%s short)", FN, f->path, expected, f->size, offset_note(f), expected - have,
                expected - have == 1 ? "" : "s");
    if (have > expected)
        return mislasi_fail(MISLAS_ERR_FORMAT,
                "%s: %s: %zu bytes follow the data, from byte offset %zu%s: not the file the header describes",
                FN, f->path, have - expected, f->data_at + expected, offset_note(f));
    return MISLAS_OK;
}

static void release(idx_file *f)
{
    mislasi_free(f->bytes);
    f->bytes = NULL;
}

int mislas_dataset_load_idx(mislas_dataset **out, const char *images_path,
        const char *labels_path, int32_t num_classes)
{
    MISLASI_CHECK_NOT_NULL(FN, out);
    *out = NULL;
    MISLASI_CHECK_NOT_NULL(FN, images_path);
    MISLASI_CHECK_NOT_NULL(FN, labels_path);
    if (num_classes < 0)
        return mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT, "%s: num_classes = %d is negative", FN, (int)num_classes);

    idx_file images = { .path = images_path }, labels = { .path = labels_path };
    int rc = read_idx(&images, 3, "image");
    if (rc == MISLAS_OK)
        rc = read_idx(&labels, 1, "label");
    if (rc == MISLAS_OK && images.dims[0] != labels.dims[0])
        rc = mislasi_fail(MISLAS_ERR_FORMAT,
                "%s: count mismatch: %s holds %lu images (byte offset 4) but %s holds %lu labels (byte offset 4)",
                FN, images_path, (unsigned long)images.dims[0], labels_path, (unsigned long)labels.dims[0]);
    const size_t n = images.dims[0];
    if (rc == MISLAS_OK && num_classes > 0) {
        const uint8_t *l = labels.bytes + labels.data_at;
        for (size_t i = 0; i < n; i++) {
            if (l[i] >= num_classes) {
                rc = mislasi_fail(MISLAS_ERR_FORMAT,
                        "%s: %s: label %zu is %d at byte offset %zu%s, outside [0, %d)", FN, labels_path, i,
                        (int)l[i], labels.data_at + i, offset_note(&labels), (int)num_classes);
                break;
            }
        }
    }
    for (int i = 1; i < 3 && rc == MISLAS_OK; i++)
        if (images.dims[i] > MISLAS_DATASET_MAX_SIDE)
            rc = mislasi_fail(MISLAS_ERR_UNSUPPORTED, "%s: %s: image side %lu at byte offset %d is above %d",
                    FN, images_path, (unsigned long)images.dims[i], 4 + 4 * i, MISLAS_DATASET_MAX_SIDE);
    int32_t *label_values = NULL;
    if (rc == MISLAS_OK) {
        label_values = mislasi_calloc(n, sizeof *label_values);
        if (label_values == NULL)
            rc = mislasi_fail(MISLAS_ERR_OUT_OF_MEMORY, "%s: out of memory for %zu labels", FN, n);
    }
    if (rc != MISLAS_OK) {
        release(&images);
        release(&labels);
        return rc;
    }
    for (size_t i = 0; i < n; i++)
        label_values[i] = labels.bytes[labels.data_at + i];
    release(&labels);
    /* The pixels stay in the buffer they were read into, moved down over the
     * header: no second copy of a large file. */
    uint8_t *pixels = images.bytes;
    memmove(pixels, pixels + images.data_at, images.size - images.data_at);
    images.bytes = NULL;
    return mislasi_dataset_adopt(out, FN, images_path, pixels, label_values, n,
            1, (int32_t)images.dims[1], (int32_t)images.dims[2], num_classes);
}
