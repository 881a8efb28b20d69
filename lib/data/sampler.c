/* Samplers as pure functions of (seed, position): every shuffle and every
 * draw is seeded from the seed and its own cycle or position number, so
 * set_epoch can jump anywhere without replaying the stream. Only the
 * class-aware sampler carries state across positions (how far each class's
 * cycle has been consumed); a jump rebuilds it from the class-cycle count. */
#include <mislas/sampler.h>

#include "util/util.h"

#include <math.h>
#include <string.h>

enum { TAG_INSTANCE = 1, TAG_CLASS_CYCLE = 2, TAG_ITEM_CYCLE = 3, TAG_DRAW = 4 };
static const uint64_t NONE = UINT64_MAX;

struct mislas_sampler {
    mislas_sampler_options opts;
    size_t n;
    size_t epoch_length;
    uint32_t num_classes;           /* K as given */
    uint32_t num_present;           /* classes with at least one sample */
    uint64_t position;              /* index of the next draw in the stream */

    uint32_t *present;              /* the classes with samples, ascending */
    size_t *class_start;            /* num_classes + 1 offsets into members */
    uint32_t *members;              /* dataset indices grouped by class */

    /* INSTANCE: the permutation in use and its number */
    uint32_t *perm;
    uint64_t perm_number;

    /* CLASS_AWARE */
    uint32_t *class_cycle;          /* the present classes, shuffled */
    uint64_t class_cycle_number;
    uint32_t *item_cycles;          /* per class, its members shuffled */
    uint64_t *item_cycle_number;    /* per class */
    uint64_t *consumed;             /* per class: samples taken so far */
    uint32_t visit_class;           /* class of the current visit */
    uint64_t visit_base;            /* its consumed count when the visit began */

    /* SQRT / REVERSED / PROGRESSIVE: cumulative class weights */
    double *cumulative;             /* num_present */
    int64_t cumulative_epoch;       /* PROGRESSIVE: the epoch they were built for */
};

void mislas_sampler_options_init(mislas_sampler_options *o)
{
    if (o == NULL)
        return;
    memset(o, 0, sizeof *o);
    o->struct_size = sizeof *o;
    o->kind = MISLAS_SAMPLER_INSTANCE;
    o->samples_per_class = 4;
    o->total_epochs = 1;
}

void mislas_sampler_free(mislas_sampler *s)
{
    if (s == NULL)
        return;
    mislasi_free(s->present);
    mislasi_free(s->class_start);
    mislasi_free(s->members);
    mislasi_free(s->perm);
    mislasi_free(s->class_cycle);
    mislasi_free(s->item_cycles);
    mislasi_free(s->item_cycle_number);
    mislasi_free(s->consumed);
    mislasi_free(s->cumulative);
    mislasi_free(s);
}

static size_t class_size(const mislas_sampler *s, uint32_t c)
{
    return s->class_start[c + 1] - s->class_start[c];
}

/* Class weights of the i.i.d. kinds at `epoch`, as a running sum. */
static void build_cumulative(mislas_sampler *s, int64_t epoch)
{
    double t = 0.0;
    if (s->opts.kind == MISLAS_SAMPLER_PROGRESSIVE) {
        t = (double)epoch / (double)s->opts.total_epochs;
        t = t > 1.0 ? 1.0 : t;
    }
    double running = 0.0;
    for (uint32_t i = 0; i < s->num_present; i++) {
        double count = (double)class_size(s, s->present[i]), w;
        switch (s->opts.kind) {
        case MISLAS_SAMPLER_SQRT: w = sqrt(count); break;
        case MISLAS_SAMPLER_REVERSED: w = 1.0 / count; break;
        default: w = (1.0 - t) * count / (double)s->n + t / (double)s->num_present; break;
        }
        running += w;
        s->cumulative[i] = running;
    }
    s->cumulative_epoch = epoch;
}

static void shuffle_identity(uint32_t *out, size_t n, uint64_t seed, uint64_t tag, uint64_t number)
{
    for (size_t i = 0; i < n; i++)
        out[i] = (uint32_t)i;
    mislasi_rng r;
    mislasi_rng_init(&r, seed, tag, number);
    mislasi_rng_shuffle_u32(&r, out, n);
}

/* The class-aware sampler's state at the start of epoch e: each epoch has
 * ceil(L / spc) visits, each taking spc samples (a visit cut by the epoch's
 * end still consumes them all, as the reference's generator does). */
static void class_aware_jump(mislas_sampler *s, uint64_t epoch)
{
    uint64_t spc = (uint64_t)s->opts.samples_per_class;
    uint64_t visits_per_epoch = (s->epoch_length + spc - 1) / spc;
    uint64_t visits = epoch * visits_per_epoch;
    uint64_t cycle = visits / s->num_present, into = visits % s->num_present;
    shuffle_identity(s->class_cycle, s->num_present, s->opts.seed, TAG_CLASS_CYCLE, cycle);
    s->class_cycle_number = cycle;
    for (uint32_t i = 0; i < s->num_present; i++) {
        uint32_t c = s->present[s->class_cycle[i]];
        s->consumed[c] = (cycle + (i < into ? 1 : 0)) * spc;
        s->item_cycle_number[c] = NONE;
    }
}

static uint32_t class_aware_draw(mislas_sampler *s, uint64_t pos)
{
    uint64_t spc = (uint64_t)s->opts.samples_per_class;
    uint64_t offset = pos % s->epoch_length;
    uint64_t j = offset % spc;
    if (j == 0) { /* a new visit: the next class of the class cycle */
        uint64_t visits_per_epoch = (s->epoch_length + spc - 1) / spc;
        uint64_t visit = (pos / s->epoch_length) * visits_per_epoch + offset / spc;
        uint64_t cycle = visit / s->num_present;
        if (cycle != s->class_cycle_number) {
            shuffle_identity(s->class_cycle, s->num_present, s->opts.seed, TAG_CLASS_CYCLE, cycle);
            s->class_cycle_number = cycle;
        }
        s->visit_class = s->present[s->class_cycle[visit % s->num_present]];
        s->visit_base = s->consumed[s->visit_class];
        s->consumed[s->visit_class] += spc;
    }
    uint32_t c = s->visit_class;
    size_t size = class_size(s, c);
    uint64_t item = s->visit_base + j;
    uint64_t cycle = item / size;
    uint32_t *items = s->item_cycles + s->class_start[c];
    if (cycle != s->item_cycle_number[c]) {
        shuffle_identity(items, size, mislasi_hash3(s->opts.seed, TAG_ITEM_CYCLE, c), TAG_ITEM_CYCLE, cycle);
        s->item_cycle_number[c] = cycle;
    }
    return s->members[s->class_start[c] + items[item % size]];
}

static uint32_t iid_draw(mislas_sampler *s, uint64_t pos)
{
    if (s->opts.kind == MISLAS_SAMPLER_PROGRESSIVE) {
        int64_t epoch = (int64_t)(pos / s->epoch_length);
        if (epoch != s->cumulative_epoch)
            build_cumulative(s, epoch);
    }
    mislasi_rng r;
    mislasi_rng_init(&r, s->opts.seed, TAG_DRAW, pos);
    double u = mislasi_rng_uniform(&r) * s->cumulative[s->num_present - 1];
    uint32_t lo = 0, hi = s->num_present - 1;     /* first running sum > u */
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (s->cumulative[mid] > u)
            hi = mid;
        else
            lo = mid + 1;
    }
    uint32_t c = s->present[lo];
    return s->members[s->class_start[c] + mislasi_rng_below(&r, class_size(s, c))];
}

static uint32_t instance_draw(mislas_sampler *s, uint64_t pos)
{
    uint64_t number = pos / s->n;
    if (number != s->perm_number) {
        shuffle_identity(s->perm, s->n, s->opts.seed, TAG_INSTANCE, number);
        s->perm_number = number;
    }
    return s->perm[pos % s->n];
}

static int sampler_alloc(mislas_sampler *s)
{
    size_t k = s->num_classes;
    s->present = mislasi_calloc(k, sizeof *s->present);
    s->class_start = mislasi_calloc(k + 1, sizeof *s->class_start);
    s->members = mislasi_calloc(s->n, sizeof *s->members);
    if (!s->present || !s->class_start || !s->members)
        return MISLAS_ERR_OUT_OF_MEMORY;
    switch (s->opts.kind) {
    case MISLAS_SAMPLER_INSTANCE:
        s->perm = mislasi_calloc(s->n, sizeof *s->perm);
        return s->perm ? MISLAS_OK : MISLAS_ERR_OUT_OF_MEMORY;
    case MISLAS_SAMPLER_CLASS_AWARE:
        s->class_cycle = mislasi_calloc(k, sizeof *s->class_cycle);
        s->item_cycles = mislasi_calloc(s->n, sizeof *s->item_cycles);
        s->item_cycle_number = mislasi_calloc(k, sizeof *s->item_cycle_number);
        s->consumed = mislasi_calloc(k, sizeof *s->consumed);
        return s->class_cycle && s->item_cycles && s->item_cycle_number && s->consumed
            ? MISLAS_OK : MISLAS_ERR_OUT_OF_MEMORY;
    default:
        s->cumulative = mislasi_calloc(k, sizeof *s->cumulative);
        return s->cumulative ? MISLAS_OK : MISLAS_ERR_OUT_OF_MEMORY;
    }
}

static int check_options(const char *fn, const mislas_sampler_options *o)
{
    if ((unsigned)o->kind > MISLAS_SAMPLER_REVERSED)
        return mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT, "%s: opts->kind = %d is not a mislas_sampler_kind", fn, (int)o->kind);
    if (o->kind == MISLAS_SAMPLER_CLASS_AWARE && o->samples_per_class < 1)
        return mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT, "%s: opts->samples_per_class = %d, need at least 1",
                fn, (int)o->samples_per_class);
    if (o->kind == MISLAS_SAMPLER_PROGRESSIVE && o->total_epochs < 1)
        return mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT, "%s: opts->total_epochs = %d, need at least 1",
                fn, (int)o->total_epochs);
    return MISLAS_OK;
}

int mislas_sampler_new(mislas_sampler **out, const int32_t *labels, size_t n,
        int32_t num_classes, const mislas_sampler_options *opts)
{
    static const char fn[] = "mislas_sampler_new";
    MISLASI_CHECK_NOT_NULL(fn, out);
    *out = NULL;
    MISLASI_CHECK_NOT_NULL(fn, labels);
    mislas_sampler_options o;
    mislas_sampler_options_init(&o);
    int rc;
    if (opts != NULL && (rc = mislasi_read_options(fn, &o, sizeof o, opts)) != MISLAS_OK)
        return rc;
    if ((rc = check_options(fn, &o)) != MISLAS_OK)
        return rc;
    if (n == 0)
        return mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT, "%s: n = 0, there is nothing to sample", fn);
    if (n > UINT32_MAX)
        return mislasi_fail(MISLAS_ERR_UNSUPPORTED, "%s: n = %zu, at most %u samples are supported", fn, n, UINT32_MAX);
    if (num_classes < 1)
        return mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT, "%s: num_classes = %d, need at least 1", fn, (int)num_classes);
    size_t bad = mislasi_find_bad_label(labels, n, num_classes);
    if (bad < n)
        return mislasi_fail_bad_label(fn, "labels", labels, bad, num_classes);

    mislas_sampler *s = mislasi_calloc(1, sizeof *s);
    if (s == NULL)
        return mislasi_fail(MISLAS_ERR_OUT_OF_MEMORY, "%s: out of memory", fn);
    s->opts = o;
    s->n = n;
    s->num_classes = (uint32_t)num_classes;
    if (sampler_alloc(s) != MISLAS_OK) {
        mislas_sampler_free(s);
        return mislasi_fail(MISLAS_ERR_OUT_OF_MEMORY, "%s: out of memory for %zu samples of %d classes",
                fn, n, (int)num_classes);
    }
    /* group the indices by class, keeping dataset order within a class */
    for (size_t i = 0; i < n; i++)
        s->class_start[labels[i] + 1]++;
    size_t largest = 0;
    for (uint32_t c = 0; c < s->num_classes; c++) {
        size_t size = s->class_start[c + 1];
        largest = size > largest ? size : largest;
        if (size > 0)
            s->present[s->num_present++] = c;
        s->class_start[c + 1] += s->class_start[c];
    }
    for (size_t i = 0; i < n; i++) {
        uint32_t c = (uint32_t)labels[i];
        /* class_start[c] advances as the class fills; restored below */
        s->members[s->class_start[c]++] = (uint32_t)i;
    }
    for (uint32_t c = s->num_classes; c > 0; c--)
        s->class_start[c] = s->class_start[c - 1];
    s->class_start[0] = 0;

    size_t natural = o.kind == MISLAS_SAMPLER_CLASS_AWARE ? largest * s->num_present : n;
    s->epoch_length = o.epoch_length ? o.epoch_length : natural;
    s->perm_number = NONE;
    s->class_cycle_number = NONE;
    s->cumulative_epoch = -1;
    if (o.kind == MISLAS_SAMPLER_CLASS_AWARE)
        class_aware_jump(s, 0);
    else if (o.kind != MISLAS_SAMPLER_INSTANCE)
        build_cumulative(s, 0);
    *out = s;
    return MISLAS_OK;
}

size_t mislas_sampler_epoch_length(const mislas_sampler *s)
{
    return s == NULL ? 0 : s->epoch_length;
}

int32_t mislas_sampler_epoch(const mislas_sampler *s)
{
    if (s == NULL)
        return -1;
    uint64_t e = s->position / s->epoch_length;
    return e > INT32_MAX ? INT32_MAX : (int32_t)e;
}

int mislas_sampler_set_epoch(mislas_sampler *s, int32_t epoch)
{
    static const char fn[] = "mislas_sampler_set_epoch";
    MISLASI_CHECK_NOT_NULL(fn, s);
    if (epoch < 0)
        return mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT, "%s: epoch = %d is negative", fn, (int)epoch);
    if ((uint64_t)epoch > UINT64_MAX / 2 / s->epoch_length)
        return mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT, "%s: epoch = %d is beyond the stream's length", fn, (int)epoch);
    s->position = (uint64_t)epoch * s->epoch_length;
    if (s->opts.kind == MISLAS_SAMPLER_CLASS_AWARE)
        class_aware_jump(s, (uint64_t)epoch);
    return MISLAS_OK;
}

int mislas_sampler_next(mislas_sampler *s, size_t *indices, size_t count)
{
    static const char fn[] = "mislas_sampler_next";
    MISLASI_CHECK_NOT_NULL(fn, s);
    if (count == 0)
        return MISLAS_OK;    /* an empty request draws nothing (docs/api.md, "Rules") */
    MISLASI_CHECK_NOT_NULL(fn, indices);
    for (size_t i = 0; i < count; i++) {
        uint64_t pos = s->position++;
        uint32_t index;
        switch (s->opts.kind) {
        case MISLAS_SAMPLER_INSTANCE: index = instance_draw(s, pos); break;
        case MISLAS_SAMPLER_CLASS_AWARE: index = class_aware_draw(s, pos); break;
        default: index = iid_draw(s, pos); break;
        }
        indices[i] = index;
    }
    return MISLAS_OK;
}
