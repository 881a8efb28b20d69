/* CIFAR-10 and CIFAR-100, binary version, from their folder or straight from
 * the .tar.gz archive they are distributed as.
 *
 * CIFAR-10 record: 1 label byte (0..9), then 3072 pixel bytes: the 32 x 32
 * red plane, then green, then blue, each row-major. The training set is
 * data_batch_1.bin .. data_batch_5.bin, the test set test_batch.bin, all in
 * cifar-10-batches-bin/ inside cifar-10-binary.tar.gz.
 * CIFAR-100 record: coarse label (0..19), fine label (0..99), 3072 pixels as
 * above; train.bin and test.bin in cifar-100-binary/ inside
 * cifar-100-binary.tar.gz. The fine label is the one kept.
 *
 * A batch file must hold whole records and at least one; how many is not
 * checked (the real files hold 10000 each, or 50000 for CIFAR-100's
 * train.bin), so that shortened copies for tests and experiments load too. */
#define _POSIX_C_SOURCE 200809L
#include "data.h"
#include "util/util.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static const char FN[] = "mislas_dataset_load_cifar";

enum { PIXELS = 3 * 32 * 32, MAX_FILES = 5 };

typedef struct layout {
    int32_t num_classes;
    size_t record;                  /* bytes per record */
    const char *folder;             /* the data's folder, in the archive and under a parent */
    const char *files[MAX_FILES];
    size_t count;
} layout;

static layout layout_of(int32_t num_classes, mislas_split split)
{
    layout l;
    memset(&l, 0, sizeof l);
    l.num_classes = num_classes;
    if (num_classes == 10) {
        l.record = 1 + PIXELS;
        l.folder = "cifar-10-batches-bin";
        if (split == MISLAS_SPLIT_TRAIN) {
            static const char *const train[MAX_FILES] = { "data_batch_1.bin", "data_batch_2.bin",
                "data_batch_3.bin", "data_batch_4.bin", "data_batch_5.bin" };
            memcpy(l.files, train, sizeof train);
            l.count = MAX_FILES;
        } else {
            l.files[0] = "test_batch.bin";
            l.count = 1;
        }
    } else {
        l.record = 2 + PIXELS;
        l.folder = "cifar-100-binary";
        l.files[0] = split == MISLAS_SPLIT_TRAIN ? "train.bin" : "test.bin";
        l.count = 1;
    }
    return l;
}

/* One batch file's bytes and where they came from, for messages. */
typedef struct batch {
    const uint8_t *bytes;
    size_t size;
    uint8_t *owned;                 /* the buffer to release (folder mode) */
    const char *source;             /* the file, or the archive */
    const char *member;             /* the member's name in the archive, or NULL */
    size_t member_at;               /* the member's offset in the archive */
    bool decompressed;              /* the archive was gzip-compressed */
} batch;

/* "byte offset N", and for an archive member also where that is in the archive. */
static const char *where(char *buf, size_t cap, const batch *b, size_t offset)
{
    if (b->member == NULL)
        snprintf(buf, cap, "byte offset %zu", offset);
    else
        snprintf(buf, cap, "byte offset %zu of member %s (byte offset %zu of the %sarchive)",
                offset, b->member, b->member_at + offset, b->decompressed ? "decompressed " : "");
    return buf;
}

/* Whole records, at least one, every label in range. */
static int check_batch(const layout *l, const batch *b)
{
    char at[700];
    if (b->size == 0)
        return mislasi_fail(MISLAS_ERR_FORMAT,
                "%s: %s: no records at %s: a CIFAR-%d batch file holds whole %zu-byte records, at least one",
                FN, b->source, where(at, sizeof at, b, 0), (int)l->num_classes, l->record);
    if (b->size % l->record != 0) {
        size_t partial = b->size - b->size % l->record;
        return mislasi_fail(MISLAS_ERR_FORMAT,
                "%s: %s: partial record at %s: %zu bytes is not a whole number of %zu-byte CIFAR-%d records",
                FN, b->source, where(at, sizeof at, b, partial), b->size, l->record, (int)l->num_classes);
    }
    const size_t n = b->size / l->record;
    for (size_t i = 0; i < n; i++) {
        const uint8_t *r = b->bytes + i * l->record;
        if (l->num_classes == 10 && r[0] >= 10)
            return mislasi_fail(MISLAS_ERR_FORMAT, "%s: %s: record %zu has label %d at %s, outside [0, 10)",
                    FN, b->source, i, (int)r[0], where(at, sizeof at, b, i * l->record));
        if (l->num_classes == 100 && r[0] >= 20)
            return mislasi_fail(MISLAS_ERR_FORMAT, "%s: %s: record %zu has coarse label %d at %s, outside [0, 20)",
                    FN, b->source, i, (int)r[0], where(at, sizeof at, b, i * l->record));
        if (l->num_classes == 100 && r[1] >= 100)
            return mislasi_fail(MISLAS_ERR_FORMAT, "%s: %s: record %zu has fine label %d at %s, outside [0, 100)",
                    FN, b->source, i, (int)r[1], where(at, sizeof at, b, i * l->record + 1));
    }
    return MISLAS_OK;
}

/* The data set from checked batches, in the order given. */
static int assemble(mislas_dataset **out, const layout *l, const batch *batches, size_t count, const char *path)
{
    size_t n = 0;
    for (size_t f = 0; f < count; f++)
        n += batches[f].size / l->record;
    if (n > SIZE_MAX / PIXELS)
        return mislasi_fail(MISLAS_ERR_UNSUPPORTED, "%s: %s: %zu images are too many for this machine", FN, path, n);
    uint8_t *pixels = mislasi_alloc(n * PIXELS);
    int32_t *labels = mislasi_calloc(n, sizeof *labels);
    if (pixels == NULL || labels == NULL) {
        mislasi_free(pixels);
        mislasi_free(labels);
        return mislasi_fail(MISLAS_ERR_OUT_OF_MEMORY, "%s: out of memory for %zu images", FN, n);
    }
    const size_t label_at = l->num_classes == 100 ? 1 : 0, pixels_at = l->record - PIXELS;
    size_t i = 0;
    for (size_t f = 0; f < count; f++) {
        const size_t records = batches[f].size / l->record;
        for (size_t j = 0; j < records; j++, i++) {
            const uint8_t *r = batches[f].bytes + j * l->record;
            labels[i] = r[label_at];
            memcpy(pixels + i * PIXELS, r + pixels_at, PIXELS);
        }
    }
    return mislasi_dataset_adopt(out, FN, path, pixels, labels, n, 3, 32, 32, l->num_classes);
}

/* The batch files from a folder, each read, checked and kept until all are in. */
static int load_folder(mislas_dataset **out, const layout *l, const char *dir)
{
    batch batches[MAX_FILES];
    memset(batches, 0, sizeof batches);
    char path[MISLASI_PATH_MAX];
    int rc = MISLAS_OK;
    for (size_t f = 0; f < l->count && rc == MISLAS_OK; f++) {
        if (!mislasi_path_join(path, sizeof path, dir, l->files[f])) {
            rc = mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT, "%s: path is too long: %s", FN, dir);
            break;
        }
        batch *b = &batches[f];
        rc = mislasi_read_file(FN, path, &b->owned, &b->size);
        if (rc != MISLAS_OK)
            break;
        b->bytes = b->owned;
        b->source = path;
        rc = check_batch(l, b);
    }
    if (rc == MISLAS_OK)
        rc = assemble(out, l, batches, l->count, dir);
    for (size_t i = 0; i < MAX_FILES; i++)
        mislasi_free(batches[i].owned);
    return rc;
}

/* The batch files as members of a tar archive, gzip-compressed or not. */
static int load_archive(mislas_dataset **out, const layout *l, const char *path)
{
    uint8_t *tar;
    size_t size;
    bool gz;
    int rc = mislasi_read_maybe_gzip(FN, path, &tar, &size, &gz);
    if (rc != MISLAS_OK)
        return rc;
    batch batches[MAX_FILES];
    memset(batches, 0, sizeof batches);
    mislasi_tar_member member;
    for (size_t f = 0; f < l->count && rc == MISLAS_OK; f++) {
        rc = mislasi_tar_find(FN, path, gz, tar, size, l->files[f], &member);
        if (rc != MISLAS_OK)
            break;
        batch *b = &batches[f];
        b->bytes = tar + member.offset;
        b->size = member.size;
        b->source = path;
        b->member = member.name;
        b->member_at = member.offset;
        b->decompressed = gz;
        rc = check_batch(l, b);
        b->member = NULL;       /* member.name is reused by the next lookup */
    }
    if (rc == MISLAS_OK)
        rc = assemble(out, l, batches, l->count, path);
    mislasi_free(tar);
    return rc;
}

int mislas_dataset_load_cifar(mislas_dataset **out, const char *path, int32_t num_classes, mislas_split split)
{
    MISLASI_CHECK_NOT_NULL(FN, out);
    *out = NULL;
    MISLASI_CHECK_NOT_NULL(FN, path);
    if (num_classes != 10 && num_classes != 100)
        return mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT,
                "%s: num_classes = %d; CIFAR-10 has 10 classes and CIFAR-100 100", FN, (int)num_classes);
    if (split != MISLAS_SPLIT_TRAIN && split != MISLAS_SPLIT_TEST)
        return mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT, "%s: split = %d is not a mislas_split", FN, (int)split);
    const layout l = layout_of(num_classes, split);
    switch (mislasi_path_kind_of(path)) {
    case MISLASI_PATH_FILE:
        return load_archive(out, &l, path);
    case MISLASI_PATH_DIR:
        break;
    default: {
        char why[128];
        if (strerror_r(errno, why, sizeof why) != 0)
            snprintf(why, sizeof why, "error %d", errno);
        return mislasi_fail(MISLAS_ERR_IO, "%s: cannot open %s: %s", FN, path, why);
    }
    }
    /* the folder with the batch files, or its parent */
    char first[MISLASI_PATH_MAX], sub[MISLASI_PATH_MAX];
    if (!mislasi_path_join(first, sizeof first, path, l.files[0]) || !mislasi_path_join(sub, sizeof sub, path, l.folder))
        return mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT, "%s: path is too long: %s", FN, path);
    if (mislasi_path_kind_of(first) == MISLASI_PATH_FILE)
        return load_folder(out, &l, path);
    if (!mislasi_path_join(first, sizeof first, sub, l.files[0]))
        return mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT, "%s: path is too long: %s", FN, path);
    if (mislasi_path_kind_of(first) == MISLASI_PATH_FILE)
        return load_folder(out, &l, sub);
    return mislasi_fail(MISLAS_ERR_IO,
            "%s: no %s in %s nor in %s: give the folder of the CIFAR-%d binary version "
            "(https://www.cs.toronto.edu/~kriz/cifar.html), its parent, or the %s archive",
            FN, l.files[0], path, sub, (int)num_classes,
            num_classes == 10 ? "cifar-10-binary.tar.gz" : "cifar-100-binary.tar.gz");
}
