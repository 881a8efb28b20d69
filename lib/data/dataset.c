/* The data set object: construction from memory, accessors and subsets
 * (docs/method.md, "Long-tailed training set"). Readers of files live in
 * their own files and hand their arrays over through mislasi_dataset_adopt. */
#include "data.h"
#include "util/util.h"

#include <string.h>

enum { TAG_SUBSET = 11 };

/* `source` names the file the shape came from, or is NULL. */
static int check_shape(const char *fn, const char *source, size_t n, int32_t channels, int32_t height,
        int32_t width, size_t *image_size)
{
    const char *sep = source != NULL ? ": " : "";
    source = source != NULL ? source : "";
    if (channels < 1 || height < 1 || width < 1)
        return mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT, "%s: %s%sshape %d x %d x %d has an empty side",
                fn, source, sep, (int)channels, (int)height, (int)width);
    if (channels > MISLAS_DATASET_MAX_SIDE || height > MISLAS_DATASET_MAX_SIDE || width > MISLAS_DATASET_MAX_SIDE)
        return mislasi_fail(MISLAS_ERR_UNSUPPORTED, "%s: %s%sshape %d x %d x %d has a side above %d",
                fn, source, sep, (int)channels, (int)height, (int)width, MISLAS_DATASET_MAX_SIDE);
    size_t size = (size_t)channels * (size_t)height;
    if (size > SIZE_MAX / (size_t)width || size * (size_t)width > SIZE_MAX / (n ? n : 1))
        return mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT, "%s: %s%s%zu images of %d x %d x %d overflow size_t",
                fn, source, sep, n, (int)channels, (int)height, (int)width);
    *image_size = size * (size_t)width;
    return MISLAS_OK;
}

static int32_t largest_label(const int32_t *labels, size_t n)
{
    int32_t m = -1;
    for (size_t i = 0; i < n; i++)
        m = labels[i] > m ? labels[i] : m;
    return m;
}

/* A data set around arrays it may or may not own; checks everything. */
static int make(mislas_dataset **out, const char *fn, const char *source,
        const uint8_t *pixels, const int32_t *labels, size_t n,
        int32_t channels, int32_t height, int32_t width, int32_t num_classes)
{
    size_t image_size = 0;
    int rc = check_shape(fn, source, n, channels, height, width, &image_size);
    if (rc != MISLAS_OK)
        return rc;
    if (n == 0)
        return mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT, "%s: %s%sn = 0, a data set needs images",
                fn, source ? source : "", source ? ": " : "");
    if (num_classes < 0)
        return mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT, "%s: num_classes = %d is negative", fn, (int)num_classes);
    bool counted = num_classes == 0;
    if (counted) {
        int32_t largest = largest_label(labels, n);
        if (largest < 0 || largest == INT32_MAX)
            return mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT, "%s: %s%sthe largest label, %d, gives no class count",
                    fn, source ? source : "", source ? ": " : "", (int)largest);
        num_classes = largest + 1;
    }
    size_t bad = mislasi_find_bad_label(labels, n, num_classes);
    if (bad < n && counted)     /* only a negative label can be outside the classes counted from the largest */
        return mislasi_fail(source != NULL ? MISLAS_ERR_FORMAT : MISLAS_ERR_INVALID_ARGUMENT,
                "%s: %s%slabel %zu is %d: labels are class indices, from 0", fn, source ? source : "",
                source ? ": " : "", bad, (int)labels[bad]);
    if (bad < n) {
        if (source != NULL)
            return mislasi_fail(MISLAS_ERR_FORMAT, "%s: %s: label %zu is %d, outside [0, %d)",
                    fn, source, bad, (int)labels[bad], (int)num_classes);
        return mislasi_fail_bad_label(fn, "labels", labels, bad, num_classes);
    }
    mislas_dataset *d = mislasi_calloc(1, sizeof *d);
    if (d == NULL)
        return mislasi_fail(MISLAS_ERR_OUT_OF_MEMORY, "%s: out of memory", fn);
    d->n = n;
    d->channels = channels;
    d->height = height;
    d->width = width;
    d->num_classes = num_classes;
    d->image_size = image_size;
    d->pixels = pixels;
    d->labels = labels;
    *out = d;
    return MISLAS_OK;
}

int mislasi_dataset_adopt(mislas_dataset **out, const char *fn, const char *source,
        uint8_t *pixels, int32_t *labels, size_t n,
        int32_t channels, int32_t height, int32_t width, int32_t num_classes)
{
    *out = NULL;
    int rc = make(out, fn, source, pixels, labels, n, channels, height, width, num_classes);
    if (rc != MISLAS_OK) {
        mislasi_free(pixels);
        mislasi_free(labels);
        return rc;
    }
    (*out)->owned_pixels = pixels;
    (*out)->owned_labels = labels;
    return MISLAS_OK;
}

int mislas_dataset_from_memory(mislas_dataset **out, const uint8_t *pixels,
        const int32_t *labels, size_t n, int32_t channels, int32_t height, int32_t width,
        int32_t num_classes, mislas_ownership ownership)
{
    static const char fn[] = "mislas_dataset_from_memory";
    MISLASI_CHECK_NOT_NULL(fn, out);
    *out = NULL;
    MISLASI_CHECK_NOT_NULL(fn, pixels);
    MISLASI_CHECK_NOT_NULL(fn, labels);
    if (ownership != MISLAS_COPY && ownership != MISLAS_BORROW)
        return mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT, "%s: ownership = %d is not a mislas_ownership",
                fn, (int)ownership);
    if (ownership == MISLAS_BORROW)
        return make(out, fn, NULL, pixels, labels, n, channels, height, width, num_classes);
    size_t image_size = 0;
    int rc = check_shape(fn, NULL, n, channels, height, width, &image_size);
    if (rc != MISLAS_OK)
        return rc;
    uint8_t *own_pixels = mislasi_alloc(n * image_size);
    int32_t *own_labels = mislasi_calloc(n ? n : 1, sizeof *own_labels);
    if (own_pixels == NULL || own_labels == NULL) {
        mislasi_free(own_pixels);
        mislasi_free(own_labels);
        return mislasi_fail(MISLAS_ERR_OUT_OF_MEMORY, "%s: out of memory for %zu images", fn, n);
    }
    memcpy(own_pixels, pixels, n * image_size);
    memcpy(own_labels, labels, n * sizeof *labels);
    return mislasi_dataset_adopt(out, fn, NULL, own_pixels, own_labels, n, channels, height, width, num_classes);
}

void mislas_dataset_free(mislas_dataset *d)
{
    if (d == NULL)
        return;
    mislasi_free(d->owned_pixels);
    mislasi_free(d->owned_labels);
    mislasi_list_free(d->list);
    mislasi_free(d);
}

size_t mislas_dataset_size(const mislas_dataset *d)
{
    return d == NULL ? 0 : d->n;
}

int32_t mislas_dataset_num_classes(const mislas_dataset *d)
{
    return d == NULL ? -1 : d->num_classes;
}

int mislas_dataset_shape(const mislas_dataset *d, int32_t *channels, int32_t *height, int32_t *width)
{
    MISLASI_CHECK_NOT_NULL("mislas_dataset_shape", d);
    if (channels != NULL)
        *channels = d->channels;
    if (height != NULL)
        *height = d->height;
    if (width != NULL)
        *width = d->width;
    return MISLAS_OK;
}

const int32_t *mislas_dataset_labels(const mislas_dataset *d)
{
    return d == NULL ? NULL : d->labels;
}

const uint8_t *mislas_dataset_image(const mislas_dataset *d, size_t index)
{
    return d == NULL || d->pixels == NULL || index >= d->n ? NULL : d->pixels + index * d->image_size;
}

int mislas_dataset_class_counts(const mislas_dataset *d, int64_t *counts)
{
    static const char fn[] = "mislas_dataset_class_counts";
    MISLASI_CHECK_NOT_NULL(fn, d);
    MISLASI_CHECK_NOT_NULL(fn, counts);
    memset(counts, 0, (size_t)d->num_classes * sizeof *counts);
    for (size_t i = 0; i < d->n; i++)
        counts[d->labels[i]]++;
    return MISLAS_OK;
}

/* The images at `indices`, copied (a list-file set's paths); `fn` names the
 * public call. */
static int gather(mislas_dataset **out, const char *fn, const mislas_dataset *d, const size_t *indices, size_t n)
{
    if (n > SIZE_MAX / d->image_size)
        return mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT, "%s: %zu images overflow size_t", fn, n);
    for (size_t i = 0; i < n; i++)
        if (indices[i] >= d->n)
            return mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT, "%s: indices[%zu] = %zu is outside [0, %zu)",
                    fn, i, indices[i], d->n);
    if (d->list != NULL)
        return mislasi_list_subset(out, fn, d, indices, n);
    uint8_t *pixels = mislasi_alloc(n * d->image_size);
    int32_t *labels = mislasi_calloc(n, sizeof *labels);
    if (pixels == NULL || labels == NULL) {
        mislasi_free(pixels);
        mislasi_free(labels);
        return mislasi_fail(MISLAS_ERR_OUT_OF_MEMORY, "%s: out of memory for %zu images", fn, n);
    }
    for (size_t i = 0; i < n; i++) {
        memcpy(pixels + i * d->image_size, d->pixels + indices[i] * d->image_size, d->image_size);
        labels[i] = d->labels[indices[i]];
    }
    return mislasi_dataset_adopt(out, fn, NULL, pixels, labels, n, d->channels, d->height, d->width, d->num_classes);
}

int mislas_dataset_subset(mislas_dataset **out, const mislas_dataset *d, const size_t *indices, size_t n)
{
    static const char fn[] = "mislas_dataset_subset";
    MISLASI_CHECK_NOT_NULL(fn, out);
    *out = NULL;
    MISLASI_CHECK_NOT_NULL(fn, d);
    MISLASI_CHECK_NOT_NULL(fn, indices);
    if (n == 0)
        return mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT, "%s: n = 0, a data set needs images", fn);
    return gather(out, fn, d, indices, n);
}

/* A new array of d's images per class, or NULL (out of memory, reported). */
static int64_t *new_class_counts(const char *fn, const mislas_dataset *d)
{
    int64_t *counts = mislasi_calloc((size_t)d->num_classes, sizeof *counts);
    if (counts == NULL)
        mislasi_fail(MISLAS_ERR_OUT_OF_MEMORY, "%s: out of memory", fn);
    else
        mislas_dataset_class_counts(d, counts);
    return counts;
}

static int subset_by_counts(mislas_dataset **out, const char *fn, const mislas_dataset *d,
        const int64_t *counts, uint64_t seed)
{
    if (d->n > UINT32_MAX)
        return mislasi_fail(MISLAS_ERR_UNSUPPORTED, "%s: %zu images, at most %u are supported", fn, d->n, UINT32_MAX);
    const size_t k = (size_t)d->num_classes;
    int64_t *have = new_class_counts(fn, d);
    if (have == NULL)
        return MISLAS_ERR_OUT_OF_MEMORY;
    size_t total = 0;
    for (size_t c = 0; c < k; c++) {
        if (counts[c] < 0 || counts[c] > have[c]) {
            int64_t want = counts[c], got = have[c];
            mislasi_free(have);
            return mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT, "%s: counts[%zu] = %lld but the class has %lld images",
                    fn, c, (long long)want, (long long)got);
        }
        total += (size_t)counts[c];
    }
    if (total == 0) {
        mislasi_free(have);
        return mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT, "%s: the counts keep no image", fn);
    }
    /* indices grouped by class in data set order, then each class shuffled */
    size_t *start = mislasi_calloc(k + 1, sizeof *start);
    size_t *members = mislasi_calloc(d->n, sizeof *members);
    uint32_t *order = mislasi_calloc(d->n, sizeof *order);
    size_t *kept = mislasi_calloc(total, sizeof *kept);
    int rc = MISLAS_OK;
    if (start == NULL || members == NULL || order == NULL || kept == NULL) {
        rc = mislasi_fail(MISLAS_ERR_OUT_OF_MEMORY, "%s: out of memory for %zu images", fn, d->n);
    } else {
        for (size_t c = 0; c < k; c++)
            start[c + 1] = start[c] + (size_t)have[c];
        memset(have, 0, k * sizeof *have);
        for (size_t i = 0; i < d->n; i++) {
            int32_t c = d->labels[i];
            members[start[c] + (size_t)have[c]++] = i;
        }
        size_t at = 0;
        for (size_t c = 0; c < k; c++) {
            size_t size = start[c + 1] - start[c];
            for (size_t j = 0; j < size; j++)
                order[j] = (uint32_t)j;
            mislasi_rng r;
            mislasi_rng_init(&r, seed, TAG_SUBSET, c);
            mislasi_rng_shuffle_u32(&r, order, size);
            for (int64_t j = 0; j < counts[c]; j++)
                kept[at++] = members[start[c] + order[j]];
        }
        rc = gather(out, fn, d, kept, total);
    }
    mislasi_free(have);
    mislasi_free(start);
    mislasi_free(members);
    mislasi_free(order);
    mislasi_free(kept);
    return rc;
}

int mislas_dataset_subset_by_counts(mislas_dataset **out, const mislas_dataset *d,
        const int64_t *counts, uint64_t seed)
{
    static const char fn[] = "mislas_dataset_subset_by_counts";
    MISLASI_CHECK_NOT_NULL(fn, out);
    *out = NULL;
    MISLASI_CHECK_NOT_NULL(fn, d);
    MISLASI_CHECK_NOT_NULL(fn, counts);
    return subset_by_counts(out, fn, d, counts, seed);
}

int mislas_dataset_long_tail(mislas_dataset **out, const mislas_dataset *d,
        double imb_factor, mislas_imbalance type, uint64_t seed)
{
    static const char fn[] = "mislas_dataset_long_tail";
    MISLASI_CHECK_NOT_NULL(fn, out);
    *out = NULL;
    MISLASI_CHECK_NOT_NULL(fn, d);
    const size_t k = (size_t)d->num_classes;
    int64_t *counts = new_class_counts(fn, d);
    if (counts == NULL)
        return MISLAS_ERR_OUT_OF_MEMORY;
    int64_t n_max = 0;
    for (size_t c = 0; c < k; c++)
        n_max = counts[c] > n_max ? counts[c] : n_max;
    int64_t *targets = mislasi_calloc(k, sizeof *targets);
    if (targets == NULL) {
        mislasi_free(counts);
        return mislasi_fail(MISLAS_ERR_OUT_OF_MEMORY, "%s: out of memory", fn);
    }
    int rc = mislas_long_tail_counts(targets, d->num_classes, n_max, imb_factor, type);
    if (rc != MISLAS_OK) {
        rc = mislasi_fail_within(rc, fn);      /* name the call the user made */
    } else {
        /* a class already thinner than its target keeps what it has */
        for (size_t c = 0; c < k; c++)
            targets[c] = targets[c] < counts[c] ? targets[c] : counts[c];
        rc = subset_by_counts(out, fn, d, targets, seed);
    }
    mislasi_free(targets);
    mislasi_free(counts);
    return rc;
}

/* Bulk content (pixels or paths) folded 8 bytes at a time: a byte-wise hash
 * of CIFAR's 150 MB would cost a second. */
static uint64_t fold_words(uint64_t acc, const uint8_t *p, size_t n)
{
    size_t j = 0;
    for (; j + 8 <= n; j += 8) {
        uint64_t word;
        memcpy(&word, p + j, 8);
        acc = (acc ^ word) * 0x9e3779b97f4a7c15ull;
        acc ^= acc >> 29;
    }
    for (; j < n; j++)
        acc = (acc ^ p[j]) * 0x9e3779b97f4a7c15ull;
    return acc;
}

void mislasi_dataset_digest(uint64_t *h, const mislas_dataset *d)
{
    uint64_t n = d->n;
    mislasi_digest_bytes(h, &n, sizeof n);
    mislasi_digest_bytes(h, &d->channels, sizeof d->channels);
    mislasi_digest_bytes(h, &d->height, sizeof d->height);
    mislasi_digest_bytes(h, &d->width, sizeof d->width);
    mislasi_digest_bytes(h, d->labels, d->n * sizeof *d->labels);
    uint64_t acc = 0;
    for (size_t i = 0; i < d->n; i++) {
        if (d->list != NULL) {
            const char *path = d->list->paths + d->list->offsets[i];
            acc = fold_words(acc, (const uint8_t *)path, strlen(path) + 1);
        } else {
            acc = fold_words(acc, d->pixels + i * d->image_size, d->image_size);
        }
    }
    if (d->list != NULL) {      /* the transforms' settings make the batches too */
        const mislas_dataset_list_options *o = &d->list->o;
        int32_t ints[3] = { o->resize, o->height, o->width };
        float floats[2] = { o->scale_min, o->jitter };
        mislasi_digest_bytes(h, ints, sizeof ints);
        mislasi_digest_bytes(h, floats, sizeof floats);
    }
    mislasi_digest_bytes(h, &acc, sizeof acc);
}
