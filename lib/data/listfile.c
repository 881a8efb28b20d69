/* List-file data sets (dataset.h, "list files"; docs/data.md): the lines
 * "relative/path label" of the MiSLAS reference's data_txt lists, joined to a
 * root folder as os.path.join does, labels renumbered by training count with
 * the reference's class map, and every file's header checked before anything
 * trains on it. Pixels are decoded later, batch by batch (list_batch.c). */
#include "data.h"
#include "image.h"
#include "util/util.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Files probed per parallel call: the progress callback runs between calls.
 * MAX_CLASSES is a model's (mislas_model_new): a label beyond it could only
 * make a set no model can train on, after a class map of gigabytes. */
enum { PROBE_CHUNK_MIN = 256, PROBE_PROGRESS_CALLS = 100, MAX_CLASSES = 1 << 20 };

void mislas_dataset_list_options_init(mislas_dataset_list_options *o)
{
    if (o == NULL)
        return;
    memset(o, 0, sizeof *o);
    o->struct_size = sizeof *o;
    o->height = 224;
    o->width = 224;
    o->resize = 256;
    o->scale_min = 0.08f;
    o->jitter = 0.4f;
    o->check_files = 1;
}

void mislasi_list_free(mislasi_list *l)
{
    if (l == NULL)
        return;
    mislasi_free(l->paths);
    mislasi_free(l->offsets);
    mislasi_free(l->old_to_new);
    mislasi_free(l);
}

static int check_options(const char *fn, const mislas_dataset_list_options *o)
{
    if (o->num_classes < 0 || o->num_classes > MAX_CLASSES)
        return mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT, "%s: opts->num_classes = %d is not in [0, %d]", fn,
                (int)o->num_classes, (int)MAX_CLASSES);
    if (o->height < 1 || o->width < 1 || o->height > MISLASI_IMAGE_MAX_SIDE || o->width > MISLASI_IMAGE_MAX_SIDE)
        return mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT, "%s: opts->height x width = %d x %d is not within [1, %d]",
                fn, (int)o->height, (int)o->width, (int)MISLASI_IMAGE_MAX_SIDE);
    /* torchvision's CenterCrop pads an image smaller than the crop; the
     * reference never needs that, and we do not reproduce it */
    int32_t side = o->height > o->width ? o->height : o->width;
    if (o->resize < side || o->resize > MISLASI_IMAGE_MAX_SIDE)
        return mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT,
                "%s: opts->resize = %d must be within [%d, %d]: the centre crop of %d x %d must fit in the resized image",
                fn, (int)o->resize, (int)side, (int)MISLASI_IMAGE_MAX_SIDE, (int)o->height, (int)o->width);
    if (!(o->scale_min > 0.0f && o->scale_min <= 1.0f))
        return mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT, "%s: opts->scale_min = %g is not in (0, 1]", fn,
                (double)o->scale_min);
    if (!(o->jitter >= 0.0f && o->jitter <= 1.0f))
        return mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT, "%s: opts->jitter = %g is not in [0, 1]", fn,
                (double)o->jitter);
    return MISLAS_OK;
}

/* Python's str.split() separators. */
static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* One line's first two fields: the path [*path, *path + *path_len) and the
 * label. Returns 0 for a blank line, 1 for an entry, -1 for a malformed one
 * (*why says what is wrong). */
static int parse_line(const char *line, size_t len, const char **path, size_t *path_len, long *label,
        const char **why)
{
    size_t i = 0;
    while (i < len && is_space(line[i]))
        i++;
    if (i == len)
        return 0;
    *path = line + i;
    while (i < len && !is_space(line[i]))
        i++;
    *path_len = (size_t)(line + i - *path);
    while (i < len && is_space(line[i]))
        i++;
    if (i == len) {
        *why = "has a path but no label";
        return -1;
    }
    char digits[24];
    size_t start = i;
    while (i < len && !is_space(line[i]))
        i++;
    size_t field = i - start;
    if (field >= sizeof digits) {
        *why = "has a label that is not an integer in range";
        return -1;
    }
    memcpy(digits, line + start, field);
    digits[field] = '\0';
    char *end;
    errno = 0;
    *label = strtol(digits, &end, 10);
    if (*end != '\0' || errno != 0 || end == digits) {
        *why = "has a label that is not an integer in range";
        return -1;
    }
    if (memchr(*path, '\0', *path_len) != NULL) {
        *why = "has a NUL byte in its path";
        return -1;
    }
    return 1;
}

/* The parsed list: paths joined to root, labels as the file gives them. */
typedef struct parsed {
    char *paths;
    size_t *offsets;
    int32_t *labels;
    size_t n;
} parsed;

static void parsed_free(parsed *p)
{
    mislasi_free(p->paths);
    mislasi_free(p->offsets);
    mislasi_free(p->labels);
    memset(p, 0, sizeof *p);
}

/* Walks the file's lines; with p->paths NULL only counts entries and bytes. */
static int walk_lines(const char *fn, const char *list_path, const char *root, const uint8_t *text, size_t size,
        parsed *p, size_t *entries, size_t *bytes)
{
    size_t n = 0, at = 0, line_no = 0;
    for (size_t pos = 0; pos < size;) {
        const char *line = (const char *)text + pos;
        const uint8_t *nl = memchr(text + pos, '\n', size - pos);
        size_t len = nl != NULL ? (size_t)(nl - (text + pos)) : size - pos;
        pos += len + (nl != NULL);
        line_no++;
        const char *path = NULL, *why = NULL;
        size_t path_len = 0;
        long label = 0;
        int kind = parse_line(line, len, &path, &path_len, &label, &why);
        if (kind == 0)
            continue;
        if (kind < 0)
            return mislasi_fail(MISLAS_ERR_FORMAT, "%s: %s, line %zu %s", fn, list_path, line_no, why);
        if (label < 0 || label >= MAX_CLASSES)
            return mislasi_fail(MISLAS_ERR_FORMAT, "%s: %s, line %zu: label %ld is outside [0, %d), the classes a "
                    "model may have", fn, list_path, line_no, label, (int)MAX_CLASSES);
        /* os.path.join(root, path): an absolute path stands alone */
        char rel[MISLASI_PATH_MAX], joined[MISLASI_PATH_MAX];
        bool fits = path_len < sizeof rel;
        if (fits) {
            memcpy(rel, path, path_len);
            rel[path_len] = '\0';
            fits = mislasi_path_join(joined, sizeof joined, rel[0] == '/' ? "" : root, rel);
        }
        if (!fits)
            return mislasi_fail(MISLAS_ERR_FORMAT, "%s: %s, line %zu: the path is longer than %d bytes",
                    fn, list_path, line_no, (int)MISLASI_PATH_MAX - 1);
        size_t joined_size = strlen(joined) + 1;
        if (p->paths != NULL) {
            memcpy(p->paths + at, joined, joined_size);
            p->offsets[n] = at;
            p->labels[n] = (int32_t)label;
        }
        at += joined_size;
        n++;
    }
    *entries = n;
    *bytes = at;
    return MISLAS_OK;
}

static int parse_list(const char *fn, const char *root, const char *list_path, parsed *p)
{
    uint8_t *text = NULL;
    size_t size = 0;
    int rc = mislasi_read_file(fn, list_path, &text, &size);
    if (rc != MISLAS_OK)
        return rc;
    size_t n = 0, bytes = 0;
    rc = walk_lines(fn, list_path, root, text, size, p, &n, &bytes);
    if (rc == MISLAS_OK && n == 0)
        rc = mislasi_fail(MISLAS_ERR_FORMAT, "%s: %s lists no image", fn, list_path);
    if (rc == MISLAS_OK) {
        p->paths = mislasi_alloc(bytes);
        p->offsets = mislasi_calloc(n, sizeof *p->offsets);
        p->labels = mislasi_calloc(n, sizeof *p->labels);
        if (p->paths == NULL || p->offsets == NULL || p->labels == NULL)
            rc = mislasi_fail(MISLAS_ERR_OUT_OF_MEMORY, "%s: out of memory for the %zu entries of %s", fn, n, list_path);
        else
            rc = walk_lines(fn, list_path, root, text, size, p, &p->n, &bytes);
    }
    mislasi_free(text);
    if (rc != MISLAS_OK)
        parsed_free(p);
    return rc;
}

/* ---- the files' check ---------------------------------------------------- */

typedef struct probe_job {
    const parsed *p;
    size_t base;        /* the chunk's first entry */
    int8_t *bad;        /* n: the probe's status (nonzero where the file failed) */
} probe_job;

static void probe_range(void *ctx, size_t begin, size_t end)
{
    const probe_job *j = ctx;
    for (size_t i = j->base + begin; i < j->base + end; i++)
        j->bad[i] = (int8_t)mislasi_image_probe(j->p->paths + j->p->offsets[i], NULL, NULL);
}

/* Probes every file on the library's threads, a chunk at a time so that the
 * progress callback runs on this thread between chunks; returns how many
 * failed, their statuses in bad[]. Running out of memory is not the file's
 * fault: it fails the opening (*status). */
static size_t probe_all(const char *fn, const parsed *p, const mislas_dataset_list_options *o, int8_t *bad, int *status)
{
    size_t chunk = p->n / PROBE_PROGRESS_CALLS;
    chunk = chunk < PROBE_CHUNK_MIN ? PROBE_CHUNK_MIN : chunk;
    for (size_t begin = 0; begin < p->n; begin += chunk) {
        size_t end = begin + chunk < p->n ? begin + chunk : p->n;
        probe_job job = { p, begin, bad };
        mislasi_parallel_for(end - begin, 1, probe_range, &job);
        if (o->progress != NULL)
            o->progress(end, p->n, o->progress_data);
    }
    size_t count = 0;
    *status = MISLAS_OK;
    for (size_t i = 0; i < p->n; i++) {
        count += bad[i] != 0;
        if (bad[i] == MISLAS_ERR_OUT_OF_MEMORY && *status == MISLAS_OK)
            *status = mislasi_fail(MISLAS_ERR_OUT_OF_MEMORY, "%s: out of memory reading the header of %s", fn,
                    p->paths + p->offsets[i]);
    }
    return count;
}

/* Refuses the set for its first bad file, whose message the workers could
 * not keep (messages are per thread): the probe is repeated here. */
static int refuse_bad(const char *fn, const char *list_path, const parsed *p, const int8_t *bad, size_t bad_count)
{
    size_t first = 0;
    while (!bad[first])
        first++;
    int rc = mislasi_image_probe(p->paths + p->offsets[first], NULL, NULL);
    if (rc == MISLAS_OK)        /* the file changed since: say so rather than nothing */
        rc = mislasi_fail(bad[first], "%s changed while it was being checked", p->paths + p->offsets[first]);
    char prefix[MISLASI_PATH_MAX + 256];
    snprintf(prefix, sizeof prefix, "%s: %s: %zu of its %zu files cannot be read as images "
            "(skip_bad leaves them out); the first, entry %zu", fn, list_path, bad_count, p->n, first + 1);
    return mislasi_fail_within(rc, prefix);
}

/* Drops the flagged entries, keeping the order of the rest. */
static void drop_bad(parsed *p, const int8_t *bad)
{
    size_t kept = 0;
    for (size_t i = 0; i < p->n; i++) {
        if (bad[i])
            continue;
        p->offsets[kept] = p->offsets[i];
        p->labels[kept] = p->labels[i];
        kept++;
    }
    p->n = kept;
}

/* ---- the data set -------------------------------------------------------- */

/* A data set around a list; takes `l` and `labels` whatever happens. */
static int adopt_list(mislas_dataset **out, const char *fn, mislasi_list *l, int32_t *labels, size_t n,
        int32_t num_classes)
{
    mislas_dataset *d = mislasi_calloc(1, sizeof *d);
    if (d == NULL) {
        mislasi_list_free(l);
        mislasi_free(labels);
        return mislasi_fail(MISLAS_ERR_OUT_OF_MEMORY, "%s: out of memory", fn);
    }
    d->n = n;
    d->channels = 3;
    d->height = l->o.height;
    d->width = l->o.width;
    d->num_classes = num_classes;
    d->image_size = (size_t)3 * (size_t)l->o.height * (size_t)l->o.width;
    d->labels = labels;
    d->owned_labels = labels;
    d->list = l;
    *out = d;
    return MISLAS_OK;
}

/* The class count, and labels mapped into the new numbering. */
static int map_classes(const char *fn, const char *list_path, const mislas_dataset *train, const mislas_dataset_list_options *o,
        parsed *p, int32_t **old_to_new, int32_t *num_classes)
{
    int32_t k = train != NULL ? train->num_classes : o->num_classes;
    if (k == 0) {
        for (size_t i = 0; i < p->n; i++)
            k = p->labels[i] >= k ? p->labels[i] + 1 : k;
    }
    for (size_t i = 0; i < p->n; i++)
        if (p->labels[i] >= k)
            return mislasi_fail(MISLAS_ERR_FORMAT, "%s: %s: entry %zu (%s) has label %d, outside [0, %d)%s",
                    fn, list_path, i + 1, p->paths + p->offsets[i], (int)p->labels[i], (int)k,
                    train != NULL ? " (the training set's classes)" : "");
    int32_t *map = mislasi_calloc((size_t)k, sizeof *map);
    if (map == NULL)
        return mislasi_fail(MISLAS_ERR_OUT_OF_MEMORY, "%s: out of memory for %d classes", fn, (int)k);
    if (train != NULL) {
        memcpy(map, train->list->old_to_new, (size_t)k * sizeof *map);
    } else {
        int64_t *counts = mislasi_calloc((size_t)k, sizeof *counts);
        if (counts == NULL) {
            mislasi_free(map);
            return mislasi_fail(MISLAS_ERR_OUT_OF_MEMORY, "%s: out of memory for %d classes", fn, (int)k);
        }
        for (size_t i = 0; i < p->n; i++)
            counts[p->labels[i]]++;
        mislas_long_tail_class_map(map, NULL, counts, k);
        mislasi_free(counts);
    }
    for (size_t i = 0; i < p->n; i++)
        p->labels[i] = map[p->labels[i]];
    *old_to_new = map;
    *num_classes = k;
    return MISLAS_OK;
}

int mislas_dataset_open_list(mislas_dataset **out, const char *root, const char *list_path,
        const mislas_dataset *class_map_of, const mislas_dataset_list_options *opts)
{
    static const char fn[] = "mislas_dataset_open_list";
    MISLASI_CHECK_NOT_NULL(fn, out);
    *out = NULL;
    MISLASI_CHECK_NOT_NULL(fn, root);
    MISLASI_CHECK_NOT_NULL(fn, list_path);
    mislas_dataset_list_options o;
    mislas_dataset_list_options_init(&o);
    int rc;
    if (opts != NULL && (rc = mislasi_read_options(fn, &o, sizeof o, opts)) != MISLAS_OK)
        return rc;
    if ((rc = check_options(fn, &o)) != MISLAS_OK)
        return rc;
    if (class_map_of != NULL && class_map_of->list == NULL)
        return mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT,
                "%s: class_map_of is not a list-file set: its classes were never renumbered", fn);
    if (class_map_of != NULL && o.num_classes != 0 && o.num_classes != class_map_of->num_classes)
        return mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT,
                "%s: opts->num_classes = %d but class_map_of has %d classes", fn, (int)o.num_classes,
                (int)class_map_of->num_classes);
    if (mislasi_path_kind_of(root) != MISLASI_PATH_DIR)
        return mislasi_fail(MISLAS_ERR_IO, "%s: the root %s is not a folder", fn, root);
    parsed p = { 0 };
    if ((rc = parse_list(fn, root, list_path, &p)) != MISLAS_OK)
        return rc;
    size_t skipped = 0;
    if (o.check_files) {
        int8_t *bad = mislasi_calloc(p.n, sizeof *bad);
        if (bad == NULL) {
            parsed_free(&p);
            return mislasi_fail(MISLAS_ERR_OUT_OF_MEMORY, "%s: out of memory for %zu entries", fn, p.n);
        }
        size_t bad_count = probe_all(fn, &p, &o, bad, &rc);
        if (rc == MISLAS_OK && bad_count > 0 && !o.skip_bad)
            rc = refuse_bad(fn, list_path, &p, bad, bad_count);
        else if (rc == MISLAS_OK && bad_count == p.n)
            rc = mislasi_fail(MISLAS_ERR_FORMAT, "%s: %s: none of its %zu files can be read as an image",
                    fn, list_path, p.n);
        else if (rc == MISLAS_OK && bad_count > 0)
            drop_bad(&p, bad);
        skipped = bad_count;
        mislasi_free(bad);
    }
    mislasi_list *l = rc == MISLAS_OK ? mislasi_calloc(1, sizeof *l) : NULL;
    if (rc == MISLAS_OK && l == NULL)
        rc = mislasi_fail(MISLAS_ERR_OUT_OF_MEMORY, "%s: out of memory", fn);
    int32_t k = 0;
    if (rc == MISLAS_OK)
        rc = map_classes(fn, list_path, class_map_of, &o, &p, &l->old_to_new, &k);
    if (rc != MISLAS_OK) {
        mislasi_list_free(l);
        parsed_free(&p);
        return rc;
    }
    l->paths = p.paths;
    l->offsets = p.offsets;
    l->skipped = skipped;
    l->o = o;
    l->o.progress = NULL;       /* the opening's alone: not kept past it */
    l->o.progress_data = NULL;
    return adopt_list(out, fn, l, p.labels, p.n, k);
}

int mislasi_list_subset(mislas_dataset **out, const char *fn, const mislas_dataset *d,
        const size_t *indices, size_t n)
{
    const mislasi_list *src = d->list;
    size_t bytes = 0;
    for (size_t i = 0; i < n; i++)
        bytes += strlen(src->paths + src->offsets[indices[i]]) + 1;
    mislasi_list *l = mislasi_calloc(1, sizeof *l);
    int32_t *labels = mislasi_calloc(n, sizeof *labels);
    if (l != NULL) {
        l->paths = mislasi_alloc(bytes);
        l->offsets = mislasi_calloc(n, sizeof *l->offsets);
        l->old_to_new = mislasi_calloc((size_t)d->num_classes, sizeof *l->old_to_new);
    }
    if (l == NULL || labels == NULL || l->paths == NULL || l->offsets == NULL || l->old_to_new == NULL) {
        mislasi_list_free(l);
        mislasi_free(labels);
        return mislasi_fail(MISLAS_ERR_OUT_OF_MEMORY, "%s: out of memory for %zu images", fn, n);
    }
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        const char *path = src->paths + src->offsets[indices[i]];
        size_t len = strlen(path) + 1;
        memcpy(l->paths + at, path, len);
        l->offsets[i] = at;
        at += len;
        labels[i] = d->labels[indices[i]];
    }
    memcpy(l->old_to_new, src->old_to_new, (size_t)d->num_classes * sizeof *l->old_to_new);
    l->o = src->o;
    return adopt_list(out, fn, l, labels, n, d->num_classes);
}

size_t mislas_dataset_files_skipped(const mislas_dataset *d)
{
    return d == NULL || d->list == NULL ? 0 : d->list->skipped;
}

const int32_t *mislas_dataset_class_map(const mislas_dataset *d)
{
    return d == NULL || d->list == NULL ? NULL : d->list->old_to_new;
}

const char *mislas_dataset_path(const mislas_dataset *d, size_t index)
{
    return d == NULL || d->list == NULL || index >= d->n ? NULL : d->list->paths + d->list->offsets[index];
}
