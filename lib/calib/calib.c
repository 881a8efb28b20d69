/* Streaming calibration metrics (docs/method.md, "Calibration"). The state is a
 * handful of sums per bin, so memory is O(num_bins) whatever the sample
 * count. A batch is turned into per-sample records chunk by chunk (in
 * parallel), then the records are added to the sums one by one in sample
 * order: the result does not depend on the batch split or the thread count.
 * Sums are updated in a private copy and committed only when the whole batch
 * was valid, so a failing call adds nothing. */
#include <mislas/calib.h>

#include "util/util.h"

#include <float.h>
#include <math.h>
#include <string.h>

/* Records per chunk, and the fewest values worth waking a thread for. */
enum { CHUNK = 2048, ELEMENTS_PER_THREAD = 1 << 14 };

typedef struct sums {
    uint64_t count, correct;
    uint64_t confidence_only;   /* samples without probabilities (no NLL/Brier) */
    double confidence, nll, brier;
} sums;

typedef struct record {
    double confidence, nll, brier;
    int32_t prediction;
    int32_t bad;                /* index of the first bad value + 1, 0 if fine */
} record;

struct mislas_calib {
    int32_t num_classes, num_bins;
    double *edges;              /* num_bins + 1 */
    /* committed state */
    sums total;
    uint64_t *bin_count, *bin_correct;
    double *bin_confidence;
    /* working copies for the batch being added, and its records */
    uint64_t *work_count, *work_correct;
    double *work_confidence;
    record *records;            /* CHUNK */
};

int mislas_calib_new(mislas_calib **out, int32_t num_classes, int32_t num_bins)
{
    static const char fn[] = "mislas_calib_new";
    MISLASI_CHECK_NOT_NULL(fn, out);
    *out = NULL;
    if (num_classes < 1)
        return mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT, "%s: num_classes = %d, need at least 1", fn, (int)num_classes);
    if (num_bins < 1)
        return mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT, "%s: num_bins = %d, need at least 1", fn, (int)num_bins);
    mislas_calib *c = mislasi_calloc(1, sizeof *c);
    if (c == NULL)
        return mislasi_fail(MISLAS_ERR_OUT_OF_MEMORY, "%s: out of memory", fn);
    size_t b = (size_t)num_bins;
    c->num_classes = num_classes;
    c->num_bins = num_bins;
    c->edges = mislasi_calloc(b + 1, sizeof *c->edges);
    c->bin_count = mislasi_calloc(b, sizeof *c->bin_count);
    c->bin_correct = mislasi_calloc(b, sizeof *c->bin_correct);
    c->bin_confidence = mislasi_calloc(b, sizeof *c->bin_confidence);
    c->work_count = mislasi_calloc(b, sizeof *c->work_count);
    c->work_correct = mislasi_calloc(b, sizeof *c->work_correct);
    c->work_confidence = mislasi_calloc(b, sizeof *c->work_confidence);
    c->records = mislasi_calloc(CHUNK, sizeof *c->records);
    if (!c->edges || !c->bin_count || !c->bin_correct || !c->bin_confidence || !c->work_count ||
        !c->work_correct || !c->work_confidence || !c->records) {
        mislas_calib_free(c);
        return mislasi_fail(MISLAS_ERR_OUT_OF_MEMORY, "%s: out of memory for %d bins", fn, (int)num_bins);
    }
    /* NumPy's linspace(0, 1, B + 1): b * (1 / B), the last edge exactly 1 */
    double step = 1.0 / (double)num_bins;
    for (size_t i = 0; i < b; i++)
        c->edges[i] = (double)i * step;
    c->edges[b] = 1.0;
    *out = c;
    return MISLAS_OK;
}

void mislas_calib_free(mislas_calib *c)
{
    if (c == NULL)
        return;
    mislasi_free(c->edges);
    mislasi_free(c->bin_count);
    mislasi_free(c->bin_correct);
    mislasi_free(c->bin_confidence);
    mislasi_free(c->work_count);
    mislasi_free(c->work_correct);
    mislasi_free(c->work_confidence);
    mislasi_free(c->records);
    mislasi_free(c);
}

void mislas_calib_reset(mislas_calib *c)
{
    if (c == NULL)
        return;
    size_t b = (size_t)c->num_bins;
    memset(&c->total, 0, sizeof c->total);
    memset(c->bin_count, 0, b * sizeof *c->bin_count);
    memset(c->bin_correct, 0, b * sizeof *c->bin_correct);
    memset(c->bin_confidence, 0, b * sizeof *c->bin_confidence);
}

int mislas_calib_merge(mislas_calib *dst, const mislas_calib *src)
{
    static const char fn[] = "mislas_calib_merge";
    MISLASI_CHECK_NOT_NULL(fn, dst);
    MISLASI_CHECK_NOT_NULL(fn, src);
    if (dst->num_classes != src->num_classes || dst->num_bins != src->num_bins)
        return mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT,
                "%s: dst has %d classes and %d bins, src %d classes and %d bins", fn,
                (int)dst->num_classes, (int)dst->num_bins, (int)src->num_classes, (int)src->num_bins);
    sums *t = &dst->total;
    const sums *u = &src->total;
    t->count += u->count;
    t->correct += u->correct;
    t->confidence_only += u->confidence_only;
    t->confidence += u->confidence;
    t->nll += u->nll;
    t->brier += u->brier;
    for (size_t b = 0; b < (size_t)dst->num_bins; b++) {
        dst->bin_count[b] += src->bin_count[b];
        dst->bin_correct[b] += src->bin_correct[b];
        dst->bin_confidence[b] += src->bin_confidence[b];
    }
    return MISLAS_OK;
}

int32_t mislas_calib_num_bins(const mislas_calib *c)
{
    return c == NULL ? -1 : c->num_bins;
}

int32_t mislas_calib_num_classes(const mislas_calib *c)
{
    return c == NULL ? -1 : c->num_classes;
}

/* The bin of a confidence as np.digitize(conf, edges, right=True) - 1 finds it:
 * edges[b] < conf <= edges[b + 1]; -1 for a confidence of 0 (in no bin). */
static int32_t bin_of(const mislas_calib *c, double confidence)
{
    int32_t lo = 0, hi = c->num_bins;   /* first edge >= confidence, in [0, B] */
    while (lo < hi) {
        int32_t mid = lo + (hi - lo) / 2;
        if (c->edges[mid] >= confidence)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo - 1;
}

typedef enum source { FROM_LOGITS, FROM_PROBS, FROM_CONFIDENCES } source;

typedef struct batch {
    source kind;
    const float *rows;          /* logits or probabilities, n x K */
    const double *confidences;
    const int32_t *predictions;
    const int32_t *targets;
} batch;

/* One sample's record; bad = 1 + the offending column (or 1 for a confidence). */
static record make_record(const mislasi_rowmath *rm, const batch *in, size_t i, size_t k)
{
    record r = { 0.0, NAN, NAN, 0, 0 };
    int32_t y = in->targets[i];
    if (in->kind == FROM_CONFIDENCES) {
        double conf = in->confidences[i];
        if (!(conf >= 0.0 && conf <= 1.0))
            r.bad = 1;
        r.confidence = conf;
        r.prediction = in->predictions[i];
        return r;
    }
    const float *z = in->rows + i * k;
    float m;
    if (!rm->max(z, k, &m) || (in->kind == FROM_PROBS && !rm->in_unit(z, k))) {
        size_t j = 0;
        while (j < k && isfinite(z[j]) && (in->kind == FROM_LOGITS || (z[j] >= 0.0f && z[j] <= 1.0f)))
            j++;
        r.bad = (int32_t)j + 1;
        return r;
    }
    r.prediction = (int32_t)rm->find(z, k, m);
    if (in->kind == FROM_LOGITS) {
        mislasi_row_sums s = rm->exp_squares(z, k, m);
        double log_s = log((double)s.exp_sum);
        double log_py = ((double)z[y] - m) - log_s;
        double py = exp(log_py);
        double inv_s = 1.0 / (double)s.exp_sum;
        r.confidence = (double)(1.0f / s.exp_sum);  /* as a float32 softmax gives it */
        r.nll = -log_py;
        r.brier = (double)s.exp_sq_sum * inv_s * inv_s - 2.0 * py + 1.0;
    } else {
        double py = z[y];
        r.confidence = m;
        r.nll = -log(py > FLT_MIN ? py : FLT_MIN);
        r.brier = (double)rm->sum_squares(z, k) - 2.0 * py + 1.0;
    }
    return r;
}

typedef struct chunk_job {
    const mislasi_rowmath *rm;
    const batch *in;
    size_t start, k;
    record *records;
} chunk_job;

static void chunk_records(void *ctx, size_t begin, size_t end)
{
    const chunk_job *c = ctx;
    for (size_t j = begin; j < end; j++)
        c->records[j] = make_record(c->rm, c->in, c->start + j, c->k);
}

static int add_batch(mislas_calib *c, const char *fn, const batch *in, size_t n)
{
    const size_t k = (size_t)c->num_classes, b = (size_t)c->num_bins;
    if (in->rows != NULL && n > SIZE_MAX / sizeof(float) / k)
        return mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT, "%s: n = %zu rows of %zu values overflow size_t", fn, n, k);
    size_t bad = mislasi_find_bad_label(in->targets, n, c->num_classes);
    if (bad < n)
        return mislasi_fail_bad_label(fn, "targets", in->targets, bad, c->num_classes);
    if (in->predictions != NULL && (bad = mislasi_find_bad_label(in->predictions, n, c->num_classes)) < n)
        return mislasi_fail_bad_label(fn, "predictions", in->predictions, bad, c->num_classes);

    sums total = c->total;
    memcpy(c->work_count, c->bin_count, b * sizeof *c->bin_count);
    memcpy(c->work_correct, c->bin_correct, b * sizeof *c->bin_correct);
    memcpy(c->work_confidence, c->bin_confidence, b * sizeof *c->bin_confidence);
    chunk_job job = { mislasi_rowmath_get(), in, 0, k, c->records };
    /* bare confidences are too cheap to share out */
    const size_t grain = in->kind == FROM_CONFIDENCES ? CHUNK
        : k >= ELEMENTS_PER_THREAD ? 1 : ELEMENTS_PER_THREAD / k;

    for (size_t start = 0; start < n; start += CHUNK) {
        size_t len = n - start < CHUNK ? n - start : CHUNK;
        const record *rec = c->records;
        job.start = start;
        mislasi_parallel_for(len, grain, chunk_records, &job);
        for (size_t j = 0; j < len; j++) {
            const record *r = &rec[j];
            size_t i = start + j;
            if (r->bad) {
                if (in->kind == FROM_CONFIDENCES)
                    return mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT, "%s: confidences[%zu] = %g is not in [0, 1]",
                            fn, i, r->confidence);
                size_t col = (size_t)r->bad - 1;
                float v = in->rows[i * k + col];
                return mislasi_fail(isfinite(v) ? MISLAS_ERR_INVALID_ARGUMENT : MISLAS_ERR_NUMERIC,
                        "%s: %s[%zu][%zu] = %g is %s", fn, in->kind == FROM_LOGITS ? "logits" : "probs", i, col,
                        (double)v, isfinite(v) ? "not a probability in [0, 1]" : "not finite");
            }
            int correct = r->prediction == in->targets[i];
            total.count++;
            total.correct += (uint64_t)correct;
            total.confidence += r->confidence;
            if (in->kind == FROM_CONFIDENCES) {
                total.confidence_only++;
            } else {
                total.nll += r->nll;
                total.brier += r->brier;
            }
            int32_t bin = bin_of(c, r->confidence);
            if (bin >= 0) {
                c->work_count[bin]++;
                c->work_correct[bin] += (uint64_t)correct;
                c->work_confidence[bin] += r->confidence;
            }
        }
    }
    c->total = total;
    memcpy(c->bin_count, c->work_count, b * sizeof *c->bin_count);
    memcpy(c->bin_correct, c->work_correct, b * sizeof *c->bin_correct);
    memcpy(c->bin_confidence, c->work_confidence, b * sizeof *c->bin_confidence);
    return MISLAS_OK;
}

int mislas_calib_add_logits(mislas_calib *c, const float *logits, const int32_t *targets, size_t n)
{
    static const char fn[] = "mislas_calib_add_logits";
    MISLASI_CHECK_NOT_NULL(fn, c);
    if (n == 0)
        return MISLAS_OK;    /* an empty batch adds nothing (docs/api.md, "Rules") */
    MISLASI_CHECK_NOT_NULL(fn, logits);
    MISLASI_CHECK_NOT_NULL(fn, targets);
    batch in = { FROM_LOGITS, logits, NULL, NULL, targets };
    return add_batch(c, fn, &in, n);
}

int mislas_calib_add_probs(mislas_calib *c, const float *probs, const int32_t *targets, size_t n)
{
    static const char fn[] = "mislas_calib_add_probs";
    MISLASI_CHECK_NOT_NULL(fn, c);
    if (n == 0)
        return MISLAS_OK;
    MISLASI_CHECK_NOT_NULL(fn, probs);
    MISLASI_CHECK_NOT_NULL(fn, targets);
    batch in = { FROM_PROBS, probs, NULL, NULL, targets };
    return add_batch(c, fn, &in, n);
}

int mislas_calib_add_confidences(mislas_calib *c, const double *confidences,
        const int32_t *predictions, const int32_t *targets, size_t n)
{
    static const char fn[] = "mislas_calib_add_confidences";
    MISLASI_CHECK_NOT_NULL(fn, c);
    if (n == 0)
        return MISLAS_OK;
    MISLASI_CHECK_NOT_NULL(fn, confidences);
    MISLASI_CHECK_NOT_NULL(fn, predictions);
    MISLASI_CHECK_NOT_NULL(fn, targets);
    batch in = { FROM_CONFIDENCES, NULL, confidences, predictions, targets };
    return add_batch(c, fn, &in, n);
}

void mislas_calib_summary_init(mislas_calib_summary *s)
{
    if (s == NULL)
        return;
    memset(s, 0, sizeof *s);
    s->struct_size = sizeof *s;
}

static double bin_gap(const mislas_calib *c, size_t b)
{
    if (c->bin_count[b] == 0)
        return 0.0;
    double n = (double)c->bin_count[b];
    return fabs((double)c->bin_correct[b] / n - c->bin_confidence[b] / n);
}

int mislas_calib_summarize(const mislas_calib *c, mislas_calib_summary *out)
{
    static const char fn[] = "mislas_calib_summarize";
    MISLASI_CHECK_NOT_NULL(fn, c);
    MISLASI_CHECK_NOT_NULL(fn, out);
    int status = mislasi_check_output(fn, "out", out->struct_size);
    if (status != MISLAS_OK)
        return status;
    mislas_calib_summary s;
    mislas_calib_summary_init(&s);
    const sums *t = &c->total;
    double n = (double)t->count;
    uint64_t binned = 0;
    double weighted_gap = 0.0, weighted_square = 0.0, max_gap = 0.0;
    for (size_t b = 0; b < (size_t)c->num_bins; b++) {
        double gap = bin_gap(c, b);
        binned += c->bin_count[b];
        weighted_gap += gap * (double)c->bin_count[b];
        weighted_square += gap * gap * (double)c->bin_count[b];
        max_gap = gap > max_gap ? gap : max_gap;
    }
    int with_probs = t->count > 0 && t->confidence_only == 0;
    s.count = t->count;
    s.accuracy = t->count ? (double)t->correct / n : NAN;
    s.avg_confidence = t->count ? t->confidence / n : NAN;
    s.ece = binned ? weighted_gap / (double)binned : NAN;
    s.mce = binned ? max_gap : NAN;
    s.rms = binned ? sqrt(weighted_square / (double)binned) : NAN;
    s.nll = with_probs ? t->nll / n : NAN;
    s.brier = with_probs ? t->brier / n : NAN;
    mislasi_write_output(out, &s, sizeof s);
    return MISLAS_OK;
}

int mislas_calib_bins(const mislas_calib *c, mislas_calib_bin *bins, int32_t num_bins)
{
    static const char fn[] = "mislas_calib_bins";
    MISLASI_CHECK_NOT_NULL(fn, c);
    MISLASI_CHECK_NOT_NULL(fn, bins);
    if (num_bins != c->num_bins)
        return mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT, "%s: num_bins = %d but the object has %d bins",
                fn, (int)num_bins, (int)c->num_bins);
    for (size_t b = 0; b < (size_t)num_bins; b++) {
        double n = (double)c->bin_count[b];
        bins[b].lower = c->edges[b];
        bins[b].upper = c->edges[b + 1];
        bins[b].count = c->bin_count[b];
        bins[b].accuracy = n > 0 ? (double)c->bin_correct[b] / n : 0.0;
        bins[b].confidence = n > 0 ? c->bin_confidence[b] / n : 0.0;
    }
    return MISLAS_OK;
}
