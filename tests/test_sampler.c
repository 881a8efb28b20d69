/* Samplers: index streams for long-tailed training (sampler.h; docs/method.md,
 * "Class-aware sampler").
 *
 * Nothing here compares the library with its own earlier output. The
 * structural properties (permutations, class visits, per-class item cycles,
 * per-epoch balance) are checked against what sampler.h / docs/method.md and the
 * MiSLAS reference sampler (ClassAwareSampler, class_aware_sample_generator)
 * prescribe; the i.i.d. kinds are checked against class probabilities
 * computed here from the class sizes; set_epoch and chunking are checked
 * against sequential drawing, which is what the header promises they equal. */
#include "testutil.h"

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------ */
/* test data                                                                 */

typedef struct dataset {
    int32_t k;
    size_t n;
    int32_t *labels;
    int64_t *counts;   /* class sizes, k of them */
    int32_t present;   /* classes with at least one sample */
    int64_t largest;
} dataset;

static uint64_t test_splitmix(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Labels with the given class sizes, in a scrambled order (so that a class's
 * dataset indices are not contiguous). The scramble is the test's own. */
static dataset make_dataset(const int64_t *counts, int32_t k, uint64_t scramble)
{
    dataset d;
    memset(&d, 0, sizeof d);
    d.k = k;
    d.counts = malloc((size_t)k * sizeof *d.counts);
    ck_assert_ptr_nonnull(d.counts);
    for (int32_t c = 0; c < k; c++) {
        d.counts[c] = counts[c];
        d.n += (size_t)counts[c];
        d.present += counts[c] > 0;
        d.largest = counts[c] > d.largest ? counts[c] : d.largest;
    }
    d.labels = malloc(d.n * sizeof *d.labels);
    ck_assert_ptr_nonnull(d.labels);
    size_t i = 0;
    for (int32_t c = 0; c < k; c++)
        for (int64_t j = 0; j < counts[c]; j++)
            d.labels[i++] = c;
    uint64_t st = scramble;
    for (size_t m = d.n; m > 1; m--) {
        size_t j = (size_t)(test_splitmix(&st) % m);
        int32_t t = d.labels[m - 1];
        d.labels[m - 1] = d.labels[j];
        d.labels[j] = t;
    }
    return d;
}

static void free_dataset(dataset *d)
{
    free(d->labels);
    free(d->counts);
}

static mislas_sampler *new_sampler(const dataset *d, mislas_sampler_kind kind, uint64_t seed,
        int32_t spc, size_t epoch_length, int32_t total_epochs)
{
    mislas_sampler_options o;
    mislas_sampler_options_init(&o);
    o.kind = kind;
    o.seed = seed;
    if (spc > 0)
        o.samples_per_class = spc;
    o.epoch_length = epoch_length;
    if (total_epochs > 0)
        o.total_epochs = total_epochs;
    mislas_sampler *s = NULL;
    ck_assert_status(mislas_sampler_new(&s, d->labels, d->n, d->k, &o), MISLAS_OK);
    ck_assert_ptr_nonnull(s);
    return s;
}

static size_t *draw(mislas_sampler *s, size_t count)
{
    size_t *v = malloc(count * sizeof *v);
    ck_assert_ptr_nonnull(v);
    ck_assert_status(mislas_sampler_next(s, v, count), MISLAS_OK);
    return v;
}

/* The same number of indices, drawn in odd-sized chunks. */
static size_t *draw_chunked(mislas_sampler *s, size_t count)
{
    static const size_t chunks[] = {1, 3, 7, 2, 13, 5, 31, 1, 64, 11, 97, 4, 129, 17};
    size_t *v = malloc(count * sizeof *v);
    ck_assert_ptr_nonnull(v);
    size_t done = 0;
    for (size_t c = 0; done < count; c++) {
        size_t len = chunks[c % (sizeof chunks / sizeof chunks[0])];
        len = len > count - done ? count - done : len;
        ck_assert_status(mislas_sampler_next(s, v + done, len), MISLAS_OK);
        done += len;
    }
    return v;
}

static void assert_same_stream(const size_t *a, const size_t *b, size_t count, const char *what)
{
    for (size_t i = 0; i < count; i++)
        ck_assert_msg(a[i] == b[i], "%s: streams differ at position %zu (%zu vs %zu)", what, i, a[i], b[i]);
}

static int same_stream(const size_t *a, const size_t *b, size_t count)
{
    return memcmp(a, b, count * sizeof *a) == 0;
}

static const char *kind_name(mislas_sampler_kind k)
{
    switch (k) {
    case MISLAS_SAMPLER_INSTANCE: return "instance";
    case MISLAS_SAMPLER_CLASS_AWARE: return "class-aware";
    case MISLAS_SAMPLER_SQRT: return "sqrt";
    case MISLAS_SAMPLER_PROGRESSIVE: return "progressive";
    case MISLAS_SAMPLER_REVERSED: return "reversed";
    }
    return "?";
}

static const mislas_sampler_kind all_kinds[] = {
    MISLAS_SAMPLER_INSTANCE, MISLAS_SAMPLER_CLASS_AWARE, MISLAS_SAMPLER_SQRT,
    MISLAS_SAMPLER_PROGRESSIVE, MISLAS_SAMPLER_REVERSED};
#define NUM_KINDS (sizeof all_kinds / sizeof all_kinds[0])

/* ------------------------------------------------------------------------ */
/* structural checks                                                         */

/* stream[from .. from + n) is a permutation of 0..n-1 */
static void assert_permutation(const size_t *stream, size_t from, size_t n, const char *what)
{
    unsigned char *seen = calloc(n, 1);
    ck_assert_ptr_nonnull(seen);
    for (size_t i = from; i < from + n; i++) {
        ck_assert_msg(stream[i] < n, "%s: index %zu at position %zu is out of range", what, stream[i], i);
        ck_assert_msg(!seen[stream[i]], "%s: index %zu appears twice in the block starting at %zu",
            what, stream[i], from);
        seen[stream[i]] = 1;
    }
    free(seen);
}

/* The class-aware sampler as docs/method.md and the MiSLAS reference define it:
 * - each epoch of L positions is cut into visits of spc positions from its
 *   start (a visit cut by the epoch's end shows fewer), each visit one class;
 * - visits, numbered across epochs, come from shuffled cycles of the classes
 *   with samples: every aligned group of K' consecutive visits holds each of
 *   the K' present classes exactly once;
 * - a visit takes spc consecutive items of its class's own cycle stream; the
 *   reference pulls them as one tuple (next(zip(*[it] * spc))), so a visit cut
 *   by the epoch's end still consumes spc items. Within every cycle of n_c
 *   items, the shown ones are distinct members of c (all n_c of them when the
 *   cycle is fully shown);
 * - per epoch, class frequencies are equal when spc * K' divides L, and
 *   differ by a bounded amount otherwise. */
static void check_class_aware_stream(const dataset *d, const size_t *stream, size_t total, size_t L,
        size_t spc, const char *what)
{
    const size_t kp = (size_t)d->present;
    for (size_t i = 0; i < total; i++) {
        ck_assert_msg(stream[i] < d->n, "%s: index %zu at %zu out of range", what, stream[i], i);
        ck_assert_msg(d->counts[d->labels[stream[i]]] > 0, "%s: impossible", what);
    }

    /* visits */
    size_t cap = total + 1;   /* a visit shows at least one position */
    int32_t *vclass = malloc(cap * sizeof *vclass);
    size_t *vstart = malloc(cap * sizeof *vstart), *vlen = malloc(cap * sizeof *vlen);
    ck_assert(vclass && vstart && vlen);
    size_t nv = 0;
    for (size_t e0 = 0; e0 < total; e0 += L) {
        for (size_t off = 0; off < L && e0 + off < total; off += spc) {
            size_t start = e0 + off;
            size_t len = L - off < spc ? L - off : spc;
            len = total - start < len ? total - start : len;
            int32_t c = d->labels[stream[start]];
            for (size_t j = 1; j < len; j++)
                ck_assert_msg(d->labels[stream[start + j]] == c,
                    "%s: position %zu (epoch %zu, offset %zu) is class %d inside a visit of class %d that began at %zu",
                    what, start + j, e0 / L, off + j, (int)d->labels[stream[start + j]], (int)c, start);
            ck_assert(nv < cap);
            vclass[nv] = c;
            vstart[nv] = start;
            vlen[nv] = len;
            nv++;
        }
    }

    /* class cycles */
    unsigned char *seen = calloc((size_t)d->k, 1);
    ck_assert_ptr_nonnull(seen);
    for (size_t g = 0; (g + 1) * kp <= nv; g++) {
        memset(seen, 0, (size_t)d->k);
        for (size_t v = g * kp; v < (g + 1) * kp; v++) {
            ck_assert_msg(!seen[vclass[v]], "%s: class %d visited twice in class cycle %zu (visit %zu, position %zu)",
                what, (int)vclass[v], g, v, vstart[v]);
            seen[vclass[v]] = 1;
        }
    }
    free(seen);

    /* item cycles, per class */
    uint64_t *consumed = calloc((size_t)d->k, sizeof *consumed);
    int64_t *last_cycle = malloc(d->n * sizeof *last_cycle);
    ck_assert(consumed && last_cycle);
    for (size_t i = 0; i < d->n; i++)
        last_cycle[i] = -1;
    for (size_t v = 0; v < nv; v++) {
        int32_t c = vclass[v];
        for (size_t j = 0; j < vlen[v]; j++) {
            size_t idx = stream[vstart[v] + j];
            int64_t q = (int64_t)((consumed[c] + j) / (uint64_t)d->counts[c]);
            ck_assert_msg(last_cycle[idx] < q,
                "%s: index %zu (class %d) drawn twice in item cycle %lld of its class (position %zu)",
                what, idx, (int)c, (long long)q, vstart[v] + j);
            last_cycle[idx] = q;
        }
        consumed[c] += spc;
    }
    free(consumed);
    free(last_cycle);

    /* per-epoch class frequencies */
    int64_t *freq = malloc((size_t)d->k * sizeof *freq);
    ck_assert_ptr_nonnull(freq);
    const int aligned = L % (spc * kp) == 0;
    const int64_t bound = aligned ? (int64_t)spc : (int64_t)(L % spc ? 3 * spc - 1 : 2 * spc);
    for (size_t e0 = 0; e0 + L <= total; e0 += L) {
        memset(freq, 0, (size_t)d->k * sizeof *freq);
        for (size_t i = e0; i < e0 + L; i++)
            freq[d->labels[stream[i]]]++;
        int64_t lo = INT64_MAX, hi = 0;
        for (int32_t c = 0; c < d->k; c++) {
            if (d->counts[c] == 0)
                continue;
            lo = freq[c] < lo ? freq[c] : lo;
            hi = freq[c] > hi ? freq[c] : hi;
            if (aligned)
                ck_assert_msg(freq[c] == (int64_t)(L / kp), "%s: epoch %zu: class %d drawn %lld times, expected %zu",
                    what, e0 / L, (int)c, (long long)freq[c], L / kp);
        }
        ck_assert_msg(hi - lo <= bound, "%s: epoch %zu: class frequencies range %lld..%lld (bound %lld)",
            what, e0 / L, (long long)lo, (long long)hi, (long long)bound);
    }
    free(freq);
    free(vclass);
    free(vstart);
    free(vlen);
}

/* set_epoch(e) then next == epochs 0..e-1 drawn, then epoch e (and on into
 * e + 1), from a fresh sampler; in any order of e, backwards included. */
static void check_set_epoch(const dataset *d, mislas_sampler_kind kind, int32_t spc, size_t epoch_length,
        int32_t total_epochs)
{
    mislas_sampler *a = new_sampler(d, kind, 99, spc, epoch_length, total_epochs);
    const size_t L = mislas_sampler_epoch_length(a);
    const int32_t max_e = 7;
    size_t *ref = draw(a, (size_t)(max_e + 2) * L);
    mislas_sampler_free(a);

    mislas_sampler *b = new_sampler(d, kind, 99, spc, epoch_length, total_epochs);
    size_t *got = malloc((L + L / 2 + 1) * sizeof *got);
    ck_assert_ptr_nonnull(got);
    static const int32_t order[] = {3, 1, 5, 0, 7, 2, 6, 4, 4, 0};
    char what[96];
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++) {
        int32_t e = order[i];
        ck_assert_status(mislas_sampler_set_epoch(b, e), MISLAS_OK);
        ck_assert_int_eq(mislas_sampler_epoch(b), e);
        size_t len = L + L / 2 + 1;   /* into the next epoch */
        ck_assert_status(mislas_sampler_next(b, got, len), MISLAS_OK);
        snprintf(what, sizeof what, "%s, set_epoch(%d) (step %zu)", kind_name(kind), (int)e, i);
        assert_same_stream(got, ref + (size_t)e * L, len, what);
        ck_assert_int_eq(mislas_sampler_epoch(b), e + 1);
    }
    /* jump back from the middle of a visit / an epoch */
    ck_assert_status(mislas_sampler_set_epoch(b, 2), MISLAS_OK);
    ck_assert_status(mislas_sampler_next(b, got, 3), MISLAS_OK);
    ck_assert_status(mislas_sampler_set_epoch(b, 1), MISLAS_OK);
    ck_assert_status(mislas_sampler_next(b, got, L), MISLAS_OK);
    snprintf(what, sizeof what, "%s, set_epoch(1) after 3 draws of epoch 2", kind_name(kind));
    assert_same_stream(got, ref + L, L, what);
    mislas_sampler_free(b);

    /* set_epoch(0) on a sampler that has drawn a little, and set_epoch(1)
     * right after creation */
    mislas_sampler *c = new_sampler(d, kind, 99, spc, epoch_length, total_epochs);
    ck_assert_status(mislas_sampler_next(c, got, 5), MISLAS_OK);
    ck_assert_status(mislas_sampler_set_epoch(c, 0), MISLAS_OK);
    ck_assert_status(mislas_sampler_next(c, got, L), MISLAS_OK);
    snprintf(what, sizeof what, "%s, set_epoch(0) after 5 draws", kind_name(kind));
    assert_same_stream(got, ref, L, what);
    mislas_sampler_free(c);
    c = new_sampler(d, kind, 99, spc, epoch_length, total_epochs);
    ck_assert_status(mislas_sampler_set_epoch(c, 1), MISLAS_OK);
    ck_assert_status(mislas_sampler_next(c, got, L), MISLAS_OK);
    snprintf(what, sizeof what, "%s, set_epoch(1) on a fresh sampler", kind_name(kind));
    assert_same_stream(got, ref + L, L, what);
    mislas_sampler_free(c);
    free(got);
    free(ref);
}

/* empirical class frequencies within 3 standard errors of p[] (exactly 0
 * where p is 0) */
static void check_class_frequencies(const dataset *d, const size_t *stream, size_t total, const double *p,
        const char *what)
{
    int64_t *freq = calloc((size_t)d->k, sizeof *freq);
    ck_assert_ptr_nonnull(freq);
    for (size_t i = 0; i < total; i++) {
        ck_assert_msg(stream[i] < d->n, "%s: index %zu out of range", what, stream[i]);
        freq[d->labels[stream[i]]]++;
    }
    double sum_p = 0.0;
    for (int32_t c = 0; c < d->k; c++) {
        sum_p += p[c];
        double f = (double)freq[c] / (double)total;
        if (p[c] == 0.0) {
            ck_assert_msg(freq[c] == 0, "%s: class %d (target 0) drawn %lld times", what, (int)c, (long long)freq[c]);
            continue;
        }
        double se = sqrt(p[c] * (1.0 - p[c]) / (double)total);
        ck_assert_msg(fabs(f - p[c]) <= 3.0 * se,
            "%s: class %d frequency %.6f, target %.6f, |diff| = %.2f standard errors",
            what, (int)c, f, p[c], fabs(f - p[c]) / se);
    }
    ck_assert_msg(fabs(sum_p - 1.0) < 1e-12, "%s: targets sum to %.17g", what, sum_p);
    free(freq);
}

/* within each class, draws roughly uniform over its members: every member of
 * a class expected >= 20 times is drawn (miss probability <= e^-20), and
 * members expected >= 100 times are drawn within a factor 1.5 of that */
static void check_within_class(const dataset *d, const size_t *stream, size_t total, const double *p,
        const char *what)
{
    int64_t *hits = calloc(d->n, sizeof *hits);
    ck_assert_ptr_nonnull(hits);
    for (size_t i = 0; i < total; i++)
        hits[stream[i]]++;
    int checked = 0;
    for (size_t i = 0; i < d->n; i++) {
        int32_t c = d->labels[i];
        double expected = (double)total * p[c] / (double)d->counts[c];
        if (expected >= 20.0) {
            checked++;
            ck_assert_msg(hits[i] > 0, "%s: index %zu of class %d (%lld members, expected %.1f draws) never drawn",
                what, i, (int)c, (long long)d->counts[c], expected);
        }
        if (expected >= 100.0)
            ck_assert_msg(hits[i] >= 0.5 * expected && hits[i] <= 1.5 * expected,
                "%s: index %zu of class %d drawn %lld times, expected about %.1f",
                what, i, (int)c, (long long)hits[i], expected);
    }
    ck_assert_msg(checked > 0, "%s: no class large enough to check", what);
    free(hits);
}

/* ------------------------------------------------------------------------ */
/* options and trivial accessors                                             */

START_TEST(test_options_init)
{
    mislas_sampler_options o;
    memset(&o, 0xAB, sizeof o);
    mislas_sampler_options_init(&o);
    ck_assert_uint_eq(o.struct_size, sizeof o);
    ck_assert_int_eq(o.kind, MISLAS_SAMPLER_INSTANCE);
    ck_assert_uint_eq(o.seed, 0);
    ck_assert_int_eq(o.samples_per_class, 4);
    ck_assert_uint_eq(o.epoch_length, 0);
    ck_assert_int_eq(o.total_epochs, 1);
    mislas_sampler_options_init(NULL);   /* no crash */
}
END_TEST

START_TEST(test_null_accessors)
{
    mislas_sampler_free(NULL);
    ck_assert_uint_eq(mislas_sampler_epoch_length(NULL), 0);
    ck_assert_int_eq(mislas_sampler_epoch(NULL), -1);
}
END_TEST

/* opts NULL means the defaults: INSTANCE, seed 0, natural length n */
START_TEST(test_null_options_are_defaults)
{
    static const int64_t counts[] = {37, 20, 9, 4, 1};
    dataset d = make_dataset(counts, 5, 1);
    mislas_sampler *s = NULL;
    ck_assert_status(mislas_sampler_new(&s, d.labels, d.n, d.k, NULL), MISLAS_OK);
    ck_assert_uint_eq(mislas_sampler_epoch_length(s), d.n);
    size_t *a = draw(s, 3 * d.n);
    for (size_t e = 0; e < 3; e++)
        assert_permutation(a, e * d.n, d.n, "opts NULL");
    mislas_sampler *t = new_sampler(&d, MISLAS_SAMPLER_INSTANCE, 0, 0, 0, 0);
    size_t *b = draw(t, 3 * d.n);
    assert_same_stream(a, b, 3 * d.n, "opts NULL vs INSTANCE seed 0");
    free(a);
    free(b);
    mislas_sampler_free(s);
    mislas_sampler_free(t);
    free_dataset(&d);
}
END_TEST

START_TEST(test_epoch_tracking)
{
    static const int64_t counts[] = {37, 20, 9, 4, 1};
    dataset d = make_dataset(counts, 5, 2);
    for (size_t kk = 0; kk < NUM_KINDS; kk++) {
        mislas_sampler *s = new_sampler(&d, all_kinds[kk], 5, 0, 0, 10);
        size_t L = mislas_sampler_epoch_length(s);
        size_t expected_len = all_kinds[kk] == MISLAS_SAMPLER_CLASS_AWARE ? 37 * 5 : d.n;
        ck_assert_uint_eq(L, expected_len);
        size_t *buf = malloc(3 * L * sizeof *buf);
        ck_assert_int_eq(mislas_sampler_epoch(s), 0);
        ck_assert_status(mislas_sampler_next(s, buf, L - 1), MISLAS_OK);
        ck_assert_int_eq(mislas_sampler_epoch(s), 0);
        ck_assert_status(mislas_sampler_next(s, buf, 1), MISLAS_OK);
        ck_assert_int_eq(mislas_sampler_epoch(s), 1);
        ck_assert_status(mislas_sampler_next(s, buf, 2 * L + 1), MISLAS_OK);
        ck_assert_int_eq(mislas_sampler_epoch(s), 3);
        ck_assert_status(mislas_sampler_set_epoch(s, 1), MISLAS_OK);
        ck_assert_int_eq(mislas_sampler_epoch(s), 1);
        ck_assert_status(mislas_sampler_set_epoch(s, 40), MISLAS_OK);
        ck_assert_int_eq(mislas_sampler_epoch(s), 40);
        ck_assert_status(mislas_sampler_next(s, buf, L), MISLAS_OK);
        ck_assert_int_eq(mislas_sampler_epoch(s), 41);
        /* the farthest epoch is reachable and gives valid indices */
        ck_assert_status(mislas_sampler_set_epoch(s, INT32_MAX), MISLAS_OK);
        ck_assert_int_eq(mislas_sampler_epoch(s), INT32_MAX);
        ck_assert_status(mislas_sampler_next(s, buf, L), MISLAS_OK);
        for (size_t i = 0; i < L; i++)
            ck_assert_uint_lt(buf[i], d.n);
        free(buf);
        mislas_sampler_free(s);
    }
    free_dataset(&d);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* INSTANCE                                                                  */

START_TEST(test_instance_permutations)
{
    const size_t n = 1000;
    int64_t counts[10];
    for (int c = 0; c < 10; c++)
        counts[c] = 100;
    dataset d = make_dataset(counts, 10, 3);
    mislas_sampler *s = new_sampler(&d, MISLAS_SAMPLER_INSTANCE, 42, 0, 0, 0);
    ck_assert_uint_eq(mislas_sampler_epoch_length(s), n);
    const size_t epochs = 6;
    size_t *v = draw(s, epochs * n);
    for (size_t e = 0; e < epochs; e++) {
        assert_permutation(v, e * n, n, "instance epoch");
        if (e > 0)
            ck_assert_msg(!same_stream(v + (e - 1) * n, v + e * n, n), "epochs %zu and %zu are identical", e - 1, e);
    }
    /* a shuffle, not the identity */
    size_t fixed = 0;
    for (size_t i = 0; i < n; i++)
        fixed += v[i] == i;
    ck_assert_msg(fixed < 20, "epoch 0 leaves %zu of %zu indices in place", fixed, n);

    /* odd chunks across epoch boundaries: the same stream */
    mislas_sampler *t = new_sampler(&d, MISLAS_SAMPLER_INSTANCE, 42, 0, 0, 0);
    size_t *w = draw_chunked(t, epochs * n);
    assert_same_stream(v, w, epochs * n, "instance, chunked vs one call");
    free(v);
    free(w);
    mislas_sampler_free(s);
    mislas_sampler_free(t);
    free_dataset(&d);
}
END_TEST

/* epoch_length != n: consecutive permutations follow each other, so every
 * aligned block of n positions is a permutation whatever L is */
START_TEST(test_instance_custom_length)
{
    static const int64_t counts[] = {500, 300, 150, 50};
    dataset d = make_dataset(counts, 4, 4);
    static const size_t lengths[] = {300, 1700, 1};
    for (size_t li = 0; li < 3; li++) {
        mislas_sampler *s = new_sampler(&d, MISLAS_SAMPLER_INSTANCE, 7, 0, lengths[li], 0);
        ck_assert_uint_eq(mislas_sampler_epoch_length(s), lengths[li]);
        size_t *v = draw(s, 4 * d.n);
        for (size_t b = 0; b < 4; b++)
            assert_permutation(v, b * d.n, d.n, "instance, custom length");
        free(v);
        mislas_sampler_free(s);
    }
    check_set_epoch(&d, MISLAS_SAMPLER_INSTANCE, 0, 300, 0);
    check_set_epoch(&d, MISLAS_SAMPLER_INSTANCE, 0, 1700, 0);
    check_set_epoch(&d, MISLAS_SAMPLER_INSTANCE, 0, 0, 0);
    free_dataset(&d);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* CLASS_AWARE                                                               */

START_TEST(test_class_aware_long_tail)
{
    static const int64_t counts[] = {100, 50, 20, 5, 1};
    dataset d = make_dataset(counts, 5, 5);
    /* samples_per_class left at its default (4) */
    mislas_sampler *s = new_sampler(&d, MISLAS_SAMPLER_CLASS_AWARE, 11, 0, 0, 0);
    const size_t L = mislas_sampler_epoch_length(s);
    ck_assert_uint_eq(L, 100 * 5);   /* N_max * K */
    const size_t epochs = 6;
    size_t *v = draw(s, epochs * L);
    /* L = 500 is a multiple of spc * K = 20: every class exactly 100 per epoch */
    check_class_aware_stream(&d, v, epochs * L, L, 4, "class-aware {100,50,20,5,1}");
    for (size_t e = 1; e < epochs; e++)
        ck_assert_msg(!same_stream(v + (e - 1) * L, v + e * L, L), "epochs %zu and %zu are identical", e - 1, e);

    /* the class cycle is reshuffled: the first visits of cycles are not all
     * the same class (25 cycles per epoch) */
    int32_t first = d.labels[v[0]];
    int varied = 0;
    for (size_t g = 1; g < L / (4 * 5); g++)
        varied |= d.labels[v[g * 20]] != first;
    ck_assert_msg(varied, "every class cycle starts with class %d", (int)first);

    /* class 0's item cycles are reshuffled: its first 100 draws and its next
     * 100 are both permutations (checked above) but not in the same order */
    size_t *c0 = malloc(epochs * L * sizeof *c0);
    size_t m = 0;
    for (size_t i = 0; i < epochs * L; i++)
        if (d.labels[v[i]] == 0)
            c0[m++] = v[i];
    ck_assert_uint_eq(m, epochs * 100);
    ck_assert_msg(!same_stream(c0, c0 + 100, 100), "class 0's first two item cycles are in the same order");
    free(c0);

    /* chunked drawing gives the same stream */
    mislas_sampler *t = new_sampler(&d, MISLAS_SAMPLER_CLASS_AWARE, 11, 4, 0, 0);
    size_t *w = draw_chunked(t, epochs * L);
    assert_same_stream(v, w, epochs * L, "class-aware, chunked vs one call");
    free(w);
    free(v);
    mislas_sampler_free(s);
    mislas_sampler_free(t);

    check_set_epoch(&d, MISLAS_SAMPLER_CLASS_AWARE, 4, 0, 0);
    free_dataset(&d);
}
END_TEST

/* The stage-2 length (docs/method.md, "Stage-2 epoch length"): (ceil(N / 128) + 1) * 128 for batch 128 */
START_TEST(test_class_aware_stage2_length)
{
    /* CIFAR-10-LT IF 100 at 500 per class (python:
     * [int(500 * 0.01 ** (i / 9.0)) for i in range(10)]), N = 1236 */
    static const int64_t counts[] = {500, 299, 179, 107, 64, 38, 23, 13, 8, 5};
    dataset d = make_dataset(counts, 10, 6);
    ck_assert_uint_eq(d.n, 1236);
    const size_t stage2 = ((d.n + 127) / 128 + 1) * 128;
    ck_assert_uint_eq(stage2, 1408);

    mislas_sampler *nat = new_sampler(&d, MISLAS_SAMPLER_CLASS_AWARE, 3, 0, 0, 0);
    ck_assert_uint_eq(mislas_sampler_epoch_length(nat), 500 * 10);
    mislas_sampler_free(nat);

    mislas_sampler *s = new_sampler(&d, MISLAS_SAMPLER_CLASS_AWARE, 3, 0, stage2, 0);
    ck_assert_uint_eq(mislas_sampler_epoch_length(s), stage2);
    size_t *v = draw(s, 5 * stage2);
    /* 1408 = 352 visits, not a multiple of K = 10: the class cycles run on
     * across epochs; 1408 % 4 == 0, so no visit is cut */
    check_class_aware_stream(&d, v, 5 * stage2, stage2, 4, "class-aware, stage-2 length");
    ck_assert_int_eq(mislas_sampler_epoch(s), 5);
    free(v);
    mislas_sampler_free(s);
    check_set_epoch(&d, MISLAS_SAMPLER_CLASS_AWARE, 4, stage2, 0);
    free_dataset(&d);
}
END_TEST

/* epoch lengths that cut the last visit of an epoch */
START_TEST(test_class_aware_cut_visits)
{
    static const int64_t counts[] = {10, 4, 1, 1};
    dataset d = make_dataset(counts, 4, 7);
    static const size_t lengths[] = {10, 38, 41, 0};
    static const int32_t spcs[] = {4, 3, 7};
    for (size_t li = 0; li < 4; li++)
        for (size_t si = 0; si < 3; si++) {
            mislas_sampler *s = new_sampler(&d, MISLAS_SAMPLER_CLASS_AWARE, 21, spcs[si], lengths[li], 0);
            size_t L = mislas_sampler_epoch_length(s);
            ck_assert_uint_eq(L, lengths[li] ? lengths[li] : 40);
            size_t total = 12 * L + 5;
            size_t *v = draw(s, total);
            char what[80];
            snprintf(what, sizeof what, "class-aware, L = %zu, spc = %d", L, (int)spcs[si]);
            check_class_aware_stream(&d, v, total, L, (size_t)spcs[si], what);
            free(v);
            mislas_sampler_free(s);
            check_set_epoch(&d, MISLAS_SAMPLER_CLASS_AWARE, spcs[si], lengths[li], 0);
        }
    free_dataset(&d);

    /* one class of 8 images, spc 4, L = 10: each epoch is 3 visits that
     * consume 12 items of the class's cycle stream (the reference pulls a
     * visit's 4 items at once), so epoch e shows items [12e, 12e + 10); in
     * even epochs its first 8 positions are one whole cycle */
    static const int64_t one[] = {8};
    dataset o = make_dataset(one, 1, 8);
    mislas_sampler *s = new_sampler(&o, MISLAS_SAMPLER_CLASS_AWARE, 5, 4, 10, 0);
    size_t *v = draw(s, 10 * 10);
    for (size_t e = 0; e < 10; e += 2)
        assert_permutation(v, e * 10, 8, "class-aware K = 1, cut visits consume their items");
    check_class_aware_stream(&o, v, 100, 10, 4, "class-aware K = 1, n = 8, L = 10");
    free(v);
    mislas_sampler_free(s);
    free_dataset(&o);
}
END_TEST

START_TEST(test_class_aware_spc_1_and_3)
{
    static const int64_t counts[] = {12, 6, 3};
    dataset d = make_dataset(counts, 3, 9);
    static const int32_t spcs[] = {1, 3};
    for (size_t si = 0; si < 2; si++) {
        mislas_sampler *s = new_sampler(&d, MISLAS_SAMPLER_CLASS_AWARE, 17, spcs[si], 0, 0);
        size_t L = mislas_sampler_epoch_length(s);
        ck_assert_uint_eq(L, 36);    /* N_max * K = 12 * 3, independent of spc */
        size_t *v = draw(s, 20 * L);
        char what[64];
        snprintf(what, sizeof what, "class-aware {12,6,3}, spc = %d", (int)spcs[si]);
        /* 36 is a multiple of spc * K (3 and 9): 12 per class per epoch */
        check_class_aware_stream(&d, v, 20 * L, L, (size_t)spcs[si], what);
        free(v);
        mislas_sampler_free(s);
        check_set_epoch(&d, MISLAS_SAMPLER_CLASS_AWARE, spcs[si], 0, 0);
    }
    /* spc = 1: every group of K draws is one of each class */
    mislas_sampler *s = new_sampler(&d, MISLAS_SAMPLER_CLASS_AWARE, 17, 1, 0, 0);
    size_t *v = draw(s, 36);
    for (size_t g = 0; g < 12; g++) {
        int mask = 0;
        for (size_t i = 0; i < 3; i++)
            mask |= 1 << d.labels[v[3 * g + i]];
        ck_assert_msg(mask == 7, "spc 1: draws %zu..%zu are not one of each class", 3 * g, 3 * g + 2);
    }
    free(v);
    mislas_sampler_free(s);
    free_dataset(&d);
}
END_TEST

START_TEST(test_class_aware_single_class)
{
    static const int64_t counts[] = {9};
    dataset d = make_dataset(counts, 1, 10);
    mislas_sampler *s = new_sampler(&d, MISLAS_SAMPLER_CLASS_AWARE, 1, 0, 0, 0);
    ck_assert_uint_eq(mislas_sampler_epoch_length(s), 9);
    size_t *v = draw(s, 90);
    check_class_aware_stream(&d, v, 90, 9, 4, "class-aware, one class of 9");
    free(v);
    mislas_sampler_free(s);
    check_set_epoch(&d, MISLAS_SAMPLER_CLASS_AWARE, 4, 0, 0);
    free_dataset(&d);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* SQRT / REVERSED / PROGRESSIVE                                             */

#define IID_DRAWS 200000

/* {400, 200, 0, 100, 50, 20, 10, 5, 2, 1}: class 2 empty */
static const int64_t iid_counts[] = {400, 200, 0, 100, 50, 20, 10, 5, 2, 1};
#define IID_K 10

START_TEST(test_sqrt_frequencies)
{
    dataset d = make_dataset(iid_counts, IID_K, 11);
    mislas_sampler *s = new_sampler(&d, MISLAS_SAMPLER_SQRT, 2024, 0, 0, 0);
    ck_assert_uint_eq(mislas_sampler_epoch_length(s), d.n);
    size_t *v = draw(s, IID_DRAWS);
    double p[IID_K], z = 0.0;
    for (int c = 0; c < IID_K; c++)
        z += sqrt((double)iid_counts[c]);
    for (int c = 0; c < IID_K; c++)
        p[c] = sqrt((double)iid_counts[c]) / z;
    check_class_frequencies(&d, v, IID_DRAWS, p, "sqrt");
    check_within_class(&d, v, IID_DRAWS, p, "sqrt");
    free(v);
    mislas_sampler_free(s);
    check_set_epoch(&d, MISLAS_SAMPLER_SQRT, 0, 0, 0);
    free_dataset(&d);
}
END_TEST

START_TEST(test_reversed_frequencies)
{
    dataset d = make_dataset(iid_counts, IID_K, 12);
    mislas_sampler *s = new_sampler(&d, MISLAS_SAMPLER_REVERSED, 2025, 0, 0, 0);
    ck_assert_uint_eq(mislas_sampler_epoch_length(s), d.n);
    size_t *v = draw(s, IID_DRAWS);
    double p[IID_K], z = 0.0;
    for (int c = 0; c < IID_K; c++)
        z += iid_counts[c] ? 1.0 / (double)iid_counts[c] : 0.0;
    for (int c = 0; c < IID_K; c++)
        p[c] = iid_counts[c] ? (1.0 / (double)iid_counts[c]) / z : 0.0;
    check_class_frequencies(&d, v, IID_DRAWS, p, "reversed");
    check_within_class(&d, v, IID_DRAWS, p, "reversed");
    free(v);
    mislas_sampler_free(s);
    check_set_epoch(&d, MISLAS_SAMPLER_REVERSED, 0, 0, 0);
    free_dataset(&d);
}
END_TEST

/* class probability (1 - t) N_c / N + t / K, t = min(epoch / 10, 1) */
static void progressive_target(const int64_t *counts, int k, size_t n, double t, double *p)
{
    for (int c = 0; c < k; c++)
        p[c] = (1.0 - t) * (double)counts[c] / (double)n + t / (double)k;
}

START_TEST(test_progressive_frequencies)
{
    static const int64_t counts[] = {400, 200, 100, 50, 20, 10, 5, 2, 1};
    const int k = 9;
    dataset d = make_dataset(counts, k, 13);
    double p[9];
    char what[64];
    /* one long epoch so that all draws belong to the epoch under test */
    mislas_sampler *s = new_sampler(&d, MISLAS_SAMPLER_PROGRESSIVE, 77, 0, IID_DRAWS, 10);
    ck_assert_uint_eq(mislas_sampler_epoch_length(s), IID_DRAWS);
    static const int32_t epochs[] = {0, 5, 10, 12, 3};
    for (size_t i = 0; i < sizeof epochs / sizeof epochs[0]; i++) {
        int32_t e = epochs[i];
        if (i > 0)   /* epoch 0 straight after creation */
            ck_assert_status(mislas_sampler_set_epoch(s, e), MISLAS_OK);
        size_t *v = draw(s, IID_DRAWS);
        double t = e >= 10 ? 1.0 : e / 10.0;
        progressive_target(counts, k, d.n, t, p);
        snprintf(what, sizeof what, "progressive, epoch %d of 10", (int)e);
        check_class_frequencies(&d, v, IID_DRAWS, p, what);
        if (e == 0 || e == 10)
            check_within_class(&d, v, IID_DRAWS, p, what);
        free(v);
    }
    mislas_sampler_free(s);

    /* natural length n: from epoch 10 on, every epoch is class-balanced */
    s = new_sampler(&d, MISLAS_SAMPLER_PROGRESSIVE, 78, 0, 0, 10);
    ck_assert_uint_eq(mislas_sampler_epoch_length(s), d.n);
    ck_assert_status(mislas_sampler_set_epoch(s, 10), MISLAS_OK);
    size_t *v = draw(s, IID_DRAWS);
    progressive_target(counts, k, d.n, 1.0, p);
    check_class_frequencies(&d, v, IID_DRAWS, p, "progressive, natural length, epochs 10..");
    free(v);
    mislas_sampler_free(s);

    /* total_epochs = 1 (the default): class-balanced from epoch 1 */
    s = new_sampler(&d, MISLAS_SAMPLER_PROGRESSIVE, 79, 0, IID_DRAWS, 0);
    ck_assert_status(mislas_sampler_set_epoch(s, 1), MISLAS_OK);
    v = draw(s, IID_DRAWS);
    check_class_frequencies(&d, v, IID_DRAWS, p, "progressive, total_epochs 1, epoch 1");
    free(v);
    mislas_sampler_free(s);

    check_set_epoch(&d, MISLAS_SAMPLER_PROGRESSIVE, 0, 0, 4);
    free_dataset(&d);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* empty classes                                                             */

START_TEST(test_empty_classes)
{
    /* classes 1, 3 and 5 (the last) have no samples */
    static const int64_t counts[] = {30, 0, 7, 0, 1, 0};
    dataset d = make_dataset(counts, 6, 14);
    ck_assert_int_eq(d.present, 3);
    for (size_t kk = 0; kk < NUM_KINDS; kk++) {
        mislas_sampler_kind kind = all_kinds[kk];
        mislas_sampler *s = new_sampler(&d, kind, 123, 0, 0, 1);
        size_t L = mislas_sampler_epoch_length(s);
        /* class-aware: N_max * (non-empty classes) = 30 * 3, not 30 * 6 */
        ck_assert_uint_eq(L, kind == MISLAS_SAMPLER_CLASS_AWARE ? 90 : d.n);
        size_t total = kind == MISLAS_SAMPLER_CLASS_AWARE || kind == MISLAS_SAMPLER_INSTANCE ? 20 * L : IID_DRAWS;
        size_t *v = draw(s, total);
        double p[6] = {0};
        char what[64];
        snprintf(what, sizeof what, "%s with empty classes", kind_name(kind));
        switch (kind) {
        case MISLAS_SAMPLER_INSTANCE:
            for (size_t e = 0; e < 20; e++)
                assert_permutation(v, e * L, d.n, what);
            break;
        case MISLAS_SAMPLER_CLASS_AWARE:
            /* 90 is not a multiple of 4: visits are cut at every epoch's end */
            check_class_aware_stream(&d, v, total, L, 4, what);
            break;
        case MISLAS_SAMPLER_SQRT: {
            double z = sqrt(30.0) + sqrt(7.0) + 1.0;
            p[0] = sqrt(30.0) / z; p[2] = sqrt(7.0) / z; p[4] = 1.0 / z;
            check_class_frequencies(&d, v, total, p, what);
            break;
        }
        case MISLAS_SAMPLER_REVERSED: {
            double z = 1.0 / 30.0 + 1.0 / 7.0 + 1.0;
            p[0] = (1.0 / 30.0) / z; p[2] = (1.0 / 7.0) / z; p[4] = 1.0 / z;
            check_class_frequencies(&d, v, total, p, what);
            break;
        }
        case MISLAS_SAMPLER_PROGRESSIVE:
            /* epochs 0.. with total_epochs 1: epoch 0 (38 draws) is
             * instance-balanced, all later ones uniform over the three
             * non-empty classes */
            for (size_t i = 0; i < total; i++)
                ck_assert_uint_lt(v[i], d.n);
            p[0] = p[2] = p[4] = 1.0 / 3.0;
            check_class_frequencies(&d, v + L, total - L, p, what);
            break;
        }
        free(v);
        mislas_sampler_free(s);
    }
    /* progressive half-way (t = 1/2): (1 - t) N_c / n + t / K sums to 1 over
     * the classes that can be drawn only if K counts the non-empty classes
     * (3 here, not 6), so that is the K of the mix */
    mislas_sampler *s = new_sampler(&d, MISLAS_SAMPLER_PROGRESSIVE, 6, 0, IID_DRAWS, 2);
    ck_assert_status(mislas_sampler_set_epoch(s, 1), MISLAS_OK);
    size_t *v = draw(s, IID_DRAWS);
    double p[6] = {0};
    for (int c = 0; c < 6; c++)
        p[c] = counts[c] ? 0.5 * (double)counts[c] / (double)d.n + 0.5 / 3.0 : 0.0;
    check_class_frequencies(&d, v, IID_DRAWS, p, "progressive with empty classes, t = 1/2");
    free(v);
    mislas_sampler_free(s);

    /* spc 1 with empty classes: every group of 3 draws is one of each */
    s = new_sampler(&d, MISLAS_SAMPLER_CLASS_AWARE, 5, 1, 0, 0);
    ck_assert_uint_eq(mislas_sampler_epoch_length(s), 90);
    v = draw(s, 180);
    check_class_aware_stream(&d, v, 180, 90, 1, "class-aware spc 1, empty classes");
    free(v);
    mislas_sampler_free(s);
    free_dataset(&d);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* determinism                                                               */

START_TEST(test_determinism)
{
    static const int64_t counts[] = {37, 20, 9, 4, 1};
    dataset d = make_dataset(counts, 5, 15);
    for (size_t kk = 0; kk < NUM_KINDS; kk++) {
        mislas_sampler_kind kind = all_kinds[kk];
        mislas_sampler *a = new_sampler(&d, kind, 12345, 0, 0, 3);
        mislas_sampler *b = new_sampler(&d, kind, 12345, 0, 0, 3);
        mislas_sampler *c = new_sampler(&d, kind, 12346, 0, 0, 3);
        mislas_sampler *e = new_sampler(&d, kind, 12345, 0, 0, 3);
        size_t total = 5 * mislas_sampler_epoch_length(a) + 3;
        size_t *va = draw(a, total), *vb = draw(b, total), *vc = draw(c, total);
        size_t *ve = draw_chunked(e, total);
        char what[64];
        snprintf(what, sizeof what, "%s, same seed", kind_name(kind));
        assert_same_stream(va, vb, total, what);
        snprintf(what, sizeof what, "%s, chunked", kind_name(kind));
        assert_same_stream(va, ve, total, what);
        ck_assert_msg(!same_stream(va, vc, total), "%s: seeds 12345 and 12346 give the same stream", kind_name(kind));
        /* seed 0 vs seed 1 too */
        mislas_sampler *z0 = new_sampler(&d, kind, 0, 0, 0, 3), *z1 = new_sampler(&d, kind, 1, 0, 0, 3);
        size_t *v0 = draw(z0, total), *v1 = draw(z1, total);
        ck_assert_msg(!same_stream(v0, v1, total), "%s: seeds 0 and 1 give the same stream", kind_name(kind));
        /* the sampler keeps its own copy of the labels */
        int32_t *labels = malloc(d.n * sizeof *labels);
        memcpy(labels, d.labels, d.n * sizeof *labels);
        mislas_sampler_options o;
        mislas_sampler_options_init(&o);
        o.kind = kind;
        o.seed = 12345;
        o.total_epochs = 3;
        mislas_sampler *f = NULL;
        ck_assert_status(mislas_sampler_new(&f, labels, d.n, d.k, &o), MISLAS_OK);
        memset(labels, 0xFF, d.n * sizeof *labels);
        free(labels);
        size_t *vf = draw(f, total);
        snprintf(what, sizeof what, "%s, labels freed after creation", kind_name(kind));
        assert_same_stream(va, vf, total, what);
        free(va); free(vb); free(vc); free(ve); free(v0); free(v1); free(vf);
        mislas_sampler_free(a); mislas_sampler_free(b); mislas_sampler_free(c);
        mislas_sampler_free(e); mislas_sampler_free(z0); mislas_sampler_free(z1); mislas_sampler_free(f);
    }
    free_dataset(&d);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* invalid arguments                                                         */

static void expect_failure(int rc, int expected, const char *name, const char *what)
{
    ck_assert_msg(rc == expected, "%s: status %d (%s), expected %d; last error: %s",
        what, rc, mislas_status_string(rc), expected, mislas_last_error());
    const char *msg = mislas_last_error();
    ck_assert_msg(msg != NULL && msg[0] != '\0', "%s: empty error message", what);
    if (name != NULL)
        ck_assert_msg(strstr(msg, name) != NULL, "%s: message \"%s\" does not name %s", what, msg, name);
}

/* a non-NULL value for *out, to see that a failing call resets it */
static char not_null_target;
#define NOT_NULL ((mislas_sampler *)(void *)&not_null_target)

/* mislas_sampler_new with the given options must fail and set *out = NULL */
static void expect_new_fails(const int32_t *labels, size_t n, int32_t k, const mislas_sampler_options *o,
        int expected, const char *name, const char *what)
{
    mislas_sampler *s = NOT_NULL;
    int rc = mislas_sampler_new(&s, labels, n, k, o);
    if (rc == MISLAS_OK)
        mislas_sampler_free(s);
    expect_failure(rc, expected, name, what);
    ck_assert_msg(s == NULL, "%s: *out was not set to NULL", what);
}

START_TEST(test_invalid_new)
{
    int32_t labels[8] = {0, 1, 2, 0, 1, 2, 0, 1};
    mislas_sampler_options o;
    mislas_sampler_options_init(&o);
    mislas_sampler *s = NOT_NULL;

    expect_failure(mislas_sampler_new(NULL, labels, 8, 3, &o), MISLAS_ERR_INVALID_ARGUMENT, "out", "out NULL");
    for (size_t kk = 0; kk < NUM_KINDS; kk++) {
        o.kind = all_kinds[kk];
        expect_new_fails(NULL, 8, 3, &o, MISLAS_ERR_INVALID_ARGUMENT, "labels", "labels NULL");
        expect_new_fails(labels, 0, 3, &o, MISLAS_ERR_INVALID_ARGUMENT, "n", "n = 0");
        expect_new_fails(labels, 8, 0, &o, MISLAS_ERR_INVALID_ARGUMENT, "num_classes", "num_classes = 0");
        expect_new_fails(labels, 8, -2, &o, MISLAS_ERR_INVALID_ARGUMENT, "num_classes", "num_classes = -2");
        /* labels[i] outside [0, K): the message names labels[i] */
        labels[5] = 3;
        expect_new_fails(labels, 8, 3, &o, MISLAS_ERR_INVALID_ARGUMENT, "labels[5]", "labels[5] = K");
        labels[5] = -1;
        expect_new_fails(labels, 8, 3, &o, MISLAS_ERR_INVALID_ARGUMENT, "labels[5]", "labels[5] = -1");
        labels[5] = 2;
        labels[0] = INT32_MAX;
        expect_new_fails(labels, 8, 3, &o, MISLAS_ERR_INVALID_ARGUMENT, "labels[0]", "labels[0] = INT32_MAX");
        labels[0] = 0;
        /* only the first n labels are read: a bad one beyond n is fine */
        labels[7] = 99;
        ck_assert_status(mislas_sampler_new(&s, labels, 7, 3, &o), MISLAS_OK);
        mislas_sampler_free(s);
        labels[7] = 1;
    }
    mislas_sampler_options_init(&o);
    o.kind = (mislas_sampler_kind)5;
    expect_new_fails(labels, 8, 3, &o, MISLAS_ERR_INVALID_ARGUMENT, "kind", "kind = 5");
    o.kind = (mislas_sampler_kind)-1;
    expect_new_fails(labels, 8, 3, &o, MISLAS_ERR_INVALID_ARGUMENT, "kind", "kind = -1");

    mislas_sampler_options_init(&o);
    o.kind = MISLAS_SAMPLER_CLASS_AWARE;
    o.samples_per_class = 0;
    expect_new_fails(labels, 8, 3, &o, MISLAS_ERR_INVALID_ARGUMENT, "samples_per_class", "samples_per_class = 0");
    o.samples_per_class = -4;
    expect_new_fails(labels, 8, 3, &o, MISLAS_ERR_INVALID_ARGUMENT, "samples_per_class", "samples_per_class = -4");

    mislas_sampler_options_init(&o);
    o.kind = MISLAS_SAMPLER_PROGRESSIVE;
    o.total_epochs = 0;
    expect_new_fails(labels, 8, 3, &o, MISLAS_ERR_INVALID_ARGUMENT, "total_epochs", "total_epochs = 0");
    o.total_epochs = -1;
    expect_new_fails(labels, 8, 3, &o, MISLAS_ERR_INVALID_ARGUMENT, "total_epochs", "total_epochs = -1");

    /* struct_size 0 and too small to hold struct_size itself */
    mislas_sampler_options_init(&o);
    o.struct_size = 0;
    expect_new_fails(labels, 8, 3, &o, MISLAS_ERR_INVALID_ARGUMENT, "struct_size", "struct_size = 0");
    o.struct_size = 4;
    expect_new_fails(labels, 8, 3, &o, MISLAS_ERR_INVALID_ARGUMENT, "struct_size", "struct_size = 4");
}
END_TEST

START_TEST(test_options_struct_size)
{
    static const int64_t counts[] = {12, 6, 3};
    dataset d = make_dataset(counts, 3, 16);

    /* a caller built against newer headers: a larger struct whose extra
     * bytes are zero is accepted, a non-zero extra byte is not */
    struct { mislas_sampler_options o; unsigned char extra[24]; } big;
    memset(&big, 0, sizeof big);
    mislas_sampler_options_init(&big.o);
    big.o.struct_size = sizeof big;
    big.o.kind = MISLAS_SAMPLER_CLASS_AWARE;
    big.o.seed = 8;
    mislas_sampler *s = NULL;
    ck_assert_status(mislas_sampler_new(&s, d.labels, d.n, d.k, &big.o), MISLAS_OK);
    ck_assert_uint_eq(mislas_sampler_epoch_length(s), 36);
    size_t *v = draw(s, 10 * 36);
    check_class_aware_stream(&d, v, 360, 36, 4, "larger options struct");
    free(v);
    mislas_sampler_free(s);
    for (size_t i = 0; i < sizeof big.extra; i += 7) {
        big.extra[i] = 1;
        expect_new_fails(d.labels, d.n, d.k, &big.o, MISLAS_ERR_UNSUPPORTED, NULL, "non-zero extra option byte");
        big.extra[i] = 0;
    }

    /* a caller built against older headers: fields past struct_size are not
     * read and keep their defaults (spc 4, natural length) */
    mislas_sampler_options o;
    mislas_sampler_options_init(&o);
    o.struct_size = offsetof(mislas_sampler_options, samples_per_class);
    o.kind = MISLAS_SAMPLER_CLASS_AWARE;
    o.seed = 8;
    o.samples_per_class = 0;     /* invalid if it were read */
    o.epoch_length = 7;
    o.total_epochs = -3;
    s = NULL;
    ck_assert_status(mislas_sampler_new(&s, d.labels, d.n, d.k, &o), MISLAS_OK);
    ck_assert_uint_eq(mislas_sampler_epoch_length(s), 36);
    v = draw(s, 360);
    check_class_aware_stream(&d, v, 360, 36, 4, "older options struct");
    free(v);
    mislas_sampler_free(s);
    free_dataset(&d);
}
END_TEST

START_TEST(test_invalid_next_and_set_epoch)
{
    static const int64_t counts[] = {37, 20, 9, 4, 1};
    dataset d = make_dataset(counts, 5, 17);
    for (size_t kk = 0; kk < NUM_KINDS; kk++) {
        mislas_sampler_kind kind = all_kinds[kk];
        mislas_sampler *r = new_sampler(&d, kind, 4, 0, 0, 2);
        size_t *ref = draw(r, 40);
        mislas_sampler_free(r);

        mislas_sampler *s = new_sampler(&d, kind, 4, 0, 0, 2);
        size_t buf[40];
        expect_failure(mislas_sampler_next(NULL, buf, 4), MISLAS_ERR_INVALID_ARGUMENT, "s", "next, s NULL");
        expect_failure(mislas_sampler_next(s, NULL, 4), MISLAS_ERR_INVALID_ARGUMENT, "indices", "next, indices NULL");
        ck_assert_status(mislas_sampler_next(s, NULL, 0), MISLAS_OK);    /* an empty request draws nothing */
        ck_assert_status(mislas_sampler_next(s, buf, 5), MISLAS_OK);
        expect_failure(mislas_sampler_set_epoch(NULL, 1), MISLAS_ERR_INVALID_ARGUMENT, "s", "set_epoch, s NULL");
        expect_failure(mislas_sampler_set_epoch(s, -1), MISLAS_ERR_INVALID_ARGUMENT, "epoch", "set_epoch(-1)");
        expect_failure(mislas_sampler_set_epoch(s, INT32_MIN), MISLAS_ERR_INVALID_ARGUMENT, "epoch",
            "set_epoch(INT32_MIN)");
        ck_assert_status(mislas_sampler_next(s, buf + 5, 0), MISLAS_OK);
        /* failed calls and empty requests moved nothing */
        ck_assert_int_eq(mislas_sampler_epoch(s), 0);
        ck_assert_status(mislas_sampler_next(s, buf + 5, 35), MISLAS_OK);
        char what[64];
        snprintf(what, sizeof what, "%s after failed calls", kind_name(kind));
        assert_same_stream(buf, ref, 40, what);
        free(ref);
        mislas_sampler_free(s);
    }
    free_dataset(&d);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* allocation failures                                                       */

typedef struct sweep_ctx {
    const dataset *d;
    mislas_sampler_kind kind;
} sweep_ctx;

static int sweep_attempt(void *p)
{
    const sweep_ctx *ctx = p;
    mislas_sampler_options o;
    mislas_sampler_options_init(&o);
    o.kind = ctx->kind;
    o.seed = 3;
    o.total_epochs = 5;
    mislas_sampler *s = NOT_NULL;
    int rc = mislas_sampler_new(&s, ctx->d->labels, ctx->d->n, ctx->d->k, &o);
    if (rc != MISLAS_OK) {
        ck_assert_msg(s == NULL, "%s: failed creation left *out non-NULL", kind_name(ctx->kind));
        return rc;
    }
    size_t buf[64];
    int rc2 = mislas_sampler_next(s, buf, 64);
    int rc3 = mislas_sampler_set_epoch(s, 3);
    int rc4 = mislas_sampler_next(s, buf, 64);
    mislas_sampler_free(s);
    ck_assert_int_eq(rc2, MISLAS_OK);
    ck_assert_int_eq(rc3, MISLAS_OK);
    ck_assert_int_eq(rc4, MISLAS_OK);
    return rc;
}

START_TEST(test_allocation_failures)
{
    static const int64_t counts[] = {30, 0, 7, 3, 1};
    dataset d = make_dataset(counts, 5, 18);
    for (size_t kk = 0; kk < NUM_KINDS; kk++) {
        sweep_ctx ctx = {&d, all_kinds[kk]};
        long allocs = test_allocation_sweep(sweep_attempt, &ctx);
        ck_assert_msg(allocs >= 1, "%s: creation made no allocation", kind_name(all_kinds[kk]));
    }
    free_dataset(&d);
}
END_TEST

/* ------------------------------------------------------------------------ */

static Suite *sampler_suite(void)
{
    Suite *s = suite_create("sampler");
    TCase *api = tcase_create("api");
    tcase_add_test(api, test_options_init);
    tcase_add_test(api, test_null_accessors);
    tcase_add_test(api, test_null_options_are_defaults);
    tcase_add_test(api, test_epoch_tracking);
    tcase_add_test(api, test_invalid_new);
    tcase_add_test(api, test_options_struct_size);
    tcase_add_test(api, test_invalid_next_and_set_epoch);
    tcase_add_test(api, test_allocation_failures);
    suite_add_tcase(s, api);

    TCase *instance = tcase_create("instance");
    tcase_add_test(instance, test_instance_permutations);
    tcase_add_test(instance, test_instance_custom_length);
    suite_add_tcase(s, instance);

    TCase *ca = tcase_create("class_aware");
    tcase_add_test(ca, test_class_aware_long_tail);
    tcase_add_test(ca, test_class_aware_stage2_length);
    tcase_add_test(ca, test_class_aware_cut_visits);
    tcase_add_test(ca, test_class_aware_spc_1_and_3);
    tcase_add_test(ca, test_class_aware_single_class);
    suite_add_tcase(s, ca);

    TCase *iid = tcase_create("iid");
    tcase_add_test(iid, test_sqrt_frequencies);
    tcase_add_test(iid, test_reversed_frequencies);
    tcase_add_test(iid, test_progressive_frequencies);
    suite_add_tcase(s, iid);

    TCase *misc = tcase_create("misc");
    tcase_add_test(misc, test_empty_classes);
    tcase_add_test(misc, test_determinism);
    suite_add_tcase(s, misc);
    return s;
}

int main(void)
{
    return test_run_suite(sampler_suite());
}
