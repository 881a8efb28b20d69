/* Evaluation of a model on a test set (train.h): calibration state, top-1,
 * per-class accuracy and the Many / Medium / Few splits (docs/method.md, "Class splits"). */
#include <mislas/long_tail.h>
#include <mislas/eval.h>

#include "prefetch.h"

#include "model/model.h"
#include "util/util.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

void mislas_eval_options_init(mislas_eval_options *o)
{
    if (o == NULL)
        return;
    memset(o, 0, sizeof *o);
    o->struct_size = sizeof *o;
    o->batch_size = 256;
}

void mislas_eval_report_init(mislas_eval_report *r)
{
    if (r == NULL)
        return;
    memset(r, 0, sizeof *r);
    r->struct_size = sizeof *r;
}

typedef struct tally {
    uint64_t *hits, *totals;    /* per class */
    uint64_t correct, count;
} tally;

static int tally_new(const char *fn, tally *t, int32_t k)
{
    *t = (tally){.hits = mislasi_calloc((size_t)k, sizeof *t->hits),
                 .totals = mislasi_calloc((size_t)k, sizeof *t->totals)};
    return t->hits != NULL && t->totals != NULL ? MISLAS_OK
            : mislasi_fail(MISLAS_ERR_OUT_OF_MEMORY, "%s: out of memory", fn);
}

static void tally_free(tally *t)
{
    mislasi_free(t->hits);
    mislasi_free(t->totals);
}

static void tally_batch(tally *t, const float *logits, const int32_t *labels, size_t n, int32_t k)
{
    for (size_t i = 0; i < n; i++) {
        bool hit = mislasi_arg_max(logits + i * (size_t)k, (size_t)k) == (size_t)labels[i];
        t->totals[labels[i]]++;
        t->hits[labels[i]] += hit;
        t->correct += hit;
    }
    t->count += n;
}

/* Many / Medium / Few (mislas_long_tail_shots, or by index with the options'
 * medium_from and few_from): the mean class accuracy over each group's
 * classes that have test images, NaN for a group with none. */
static int split_accuracies(const char *fn, const tally *t, const int64_t *counts, const mislas_eval_options *o,
        int32_t k, mislas_eval_report *r)
{
    mislas_shot *shots = mislasi_calloc((size_t)k, sizeof *shots);
    if (shots == NULL)
        return mislasi_fail(MISLAS_ERR_OUT_OF_MEMORY, "%s: out of memory", fn);
    if (o->medium_from > 0) {
        for (int32_t c = 0; c < k; c++)
            shots[c] = c < o->medium_from ? MISLAS_SHOT_MANY : c < o->few_from ? MISLAS_SHOT_MEDIUM : MISLAS_SHOT_FEW;
    } else {
        mislas_long_tail_shots(shots, counts, k);   /* counts were checked: cannot fail */
    }
    double sum[3] = {0, 0, 0};
    int32_t used[3] = {0, 0, 0};
    for (int32_t c = 0; c < k; c++) {
        if (t->totals[c] == 0)
            continue;
        sum[shots[c]] += (double)t->hits[c] / (double)t->totals[c];
        used[shots[c]]++;
    }
    mislasi_free(shots);
    double *mean[3] = {&r->many, &r->medium, &r->few};
    int32_t *classes[3] = {&r->many_classes, &r->medium_classes, &r->few_classes};
    for (int g = 0; g < 3; g++) {
        *mean[g] = used[g] > 0 ? sum[g] / used[g] : NAN;
        *classes[g] = used[g];
    }
    return MISLAS_OK;
}

/* Images in the test set's step s. */
static size_t step_size(size_t n, size_t batch, size_t s)
{
    return n - s * batch < batch ? n - s * batch : batch;
}

/* The images of step s this rank makes (one process: all), into indices;
 * returns how many. */
static size_t step_indices(size_t n, size_t batch, size_t s, const mislas_comm *comm, size_t quantum,
        size_t *indices)
{
    size_t first = 0, m = step_size(n, batch, s);
    if (comm != NULL)
        mislasi_share_of(m, quantum, comm->size, comm->rank, &first, &m);
    for (size_t i = 0; i < m; i++)
        indices[i] = s * batch + first + i;
    return m;
}

/* Every rank's status made one (one process: its own). */
static int agree(const char *fn, mislas_comm *comm, int status)
{
    return comm != NULL ? mislasi_comm_agree(fn, comm, status) : status;
}

/* With a communicator each rank makes and predicts its share of every
 * batch; the whole batch's logits come back to every rank, which adds them
 * to its calibration state (calib, may be NULL) in the same order as one
 * process, and copies them to all_logits (n x K, may be NULL). */
static int run_batches(const char *fn, mislas_model *model, const mislas_dataset *test, const mislas_eval_options *o,
        mislas_calib *calib, tally *t, float *all_logits)
{
    size_t n = mislas_dataset_size(test), batch = (size_t)o->batch_size;
    int32_t k = mislas_model_num_classes(model);
    mislas_comm *comm = o->comm;
    size_t quantum = mislasi_model_quantum(model);
    if (batch > n)
        batch = n;
    mislas_dataset_batch_options bo;
    mislas_dataset_batch_options_init(&bo);
    bo.mean = o->mean;
    bo.std = o->std;
    size_t *indices = mislasi_calloc(batch, sizeof *indices);
    float *logits = mislasi_calloc(batch, (size_t)k * sizeof *logits);
    int32_t *labels_whole = mislasi_calloc(batch, sizeof *labels_whole);
    mislasi_prefetch prefetch;      /* the next batch is made while the model predicts */
    int status = MISLAS_OK;
    if (indices == NULL || logits == NULL || labels_whole == NULL) {
        memset(&prefetch, 0, sizeof prefetch);
        status = mislasi_fail(MISLAS_ERR_OUT_OF_MEMORY, "%s: out of memory for the batch buffers", fn);
    } else {
        status = mislasi_prefetch_init(&prefetch, fn, test, &bo, batch);
    }
    status = agree(fn, comm, status);
    if (status == MISLAS_OK && comm != NULL) {
        uint64_t shape[3] = {n, batch, (uint64_t)k};
        status = mislasi_comm_same(fn, comm, shape, sizeof shape, "test set, batch size or classes");
        comm->waited = 0;
    }
    double start = mislasi_seconds();
    size_t steps = (n + batch - 1) / batch;
    mislas_progress p = {.struct_size = sizeof p, .stage = 0, .epochs = 1, .steps = steps};
    if (status == MISLAS_OK)
        mislasi_prefetch_start(&prefetch, indices, NULL, step_indices(n, batch, 0, comm, quantum, indices), 0);
    const int32_t *all_labels = mislas_dataset_labels(test);
    for (size_t s = 0; status == MISLAS_OK && s < steps; s++) {
        size_t first = s * batch, m = step_size(n, batch, s);
        float *images;
        int32_t *labels;
        status = agree(fn, comm, mislasi_prefetch_take(&prefetch, &images, &labels));
        if (status == MISLAS_OK && s + 1 < steps)
            mislasi_prefetch_start(&prefetch, indices, NULL,
                    step_indices(n, batch, s + 1, comm, quantum, indices), 0);
        if (status == MISLAS_OK) {
            mislasi_share sh = {.comm = comm, .whole = m, .n = m};
            if (comm != NULL) {
                mislasi_share_of(m, quantum, comm->size, comm->rank, &sh.first, &sh.n);
                memcpy(labels_whole, all_labels + first, m * sizeof *labels_whole);
                labels = labels_whole;
            }
            status = mislasi_model_forward_shared(model, images, &sh, logits, false);
        }
        if (status == MISLAS_OK && calib != NULL)
            status = mislas_calib_add_logits(calib, logits, labels, m);
        if (status == MISLAS_OK && all_logits != NULL)
            memcpy(all_logits + first * (size_t)k, logits, m * (size_t)k * sizeof *logits);
        if (status != MISLAS_OK) {
            char prefix[96];
            snprintf(prefix, sizeof prefix, "%s: test images %zu..%zu", fn, first, first + m - 1);
            status = mislasi_fail_within(status, prefix);
            break;
        }
        tally_batch(t, logits, labels, m, k);
        double elapsed = mislasi_seconds() - start;
        p.step = s + 1;
        p.accuracy = (double)t->correct / (double)t->count;
        p.images_per_second = (double)t->count / fmax(elapsed, 1e-9);
        p.data_wait_seconds = prefetch.waited;
        p.comm_wait_seconds = comm != NULL ? comm->waited : 0.0;
        p.epoch_done = s + 1 == steps;
        if (o->progress != NULL && o->progress(&p, o->progress_data) != 0 && s + 1 < steps)
            status = mislasi_fail(MISLAS_ERR_CANCELLED, "%s: cancelled by the progress callback after %zu images",
                    fn, (size_t)t->count);
        status = agree(fn, comm, status);
    }
    mislasi_prefetch_free(&prefetch);
    mislasi_free(indices);
    mislasi_free(logits);
    mislasi_free(labels_whole);
    return status;
}

/* The caller's options read into *o (opts NULL: the defaults), and the
 * checks made before any image is run: the options, the test set against
 * the model, and a caller's calib (may be NULL) against its classes. */
static int read_eval_options(const char *fn, const mislas_model *model, const mislas_dataset *test,
        const mislas_eval_options *opts, const mislas_calib *calib, mislas_eval_options *o)
{
    mislas_eval_options_init(o);
    int status = opts != NULL ? mislasi_read_options(fn, o, sizeof *o, opts) : MISLAS_OK;
    if (status == MISLAS_OK)
        status = mislasi_model_fits_data(fn, model, test);
    if (status != MISLAS_OK)
        return status;
    int32_t k = mislas_model_num_classes(model);
    if (o->batch_size < 1)
        return mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT, "%s: batch_size = %d must be positive", fn,
                (int)o->batch_size);
    if (mislas_dataset_size(test) == 0)
        return mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT, "%s: the test set is empty", fn);
    for (int32_t i = 0; o->train_counts != NULL && i < k; i++)
        if (o->train_counts[i] < 0)
            return mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT, "%s: train_counts[%d] = %lld is negative", fn, (int)i,
                    (long long)o->train_counts[i]);
    if (o->medium_from != 0 || o->few_from != 0) {
        if (!(o->medium_from > 0 && o->medium_from <= o->few_from && o->few_from <= k))
            return mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT,
                    "%s: medium_from = %d and few_from = %d must satisfy 0 < medium_from <= few_from <= K = %d",
                    fn, (int)o->medium_from, (int)o->few_from, (int)k);
    }
    if (calib != NULL && mislas_calib_num_classes(calib) != k)
        return mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT, "%s: calib was made for %d classes, the model has %d", fn,
                (int)mislas_calib_num_classes(calib), (int)k);
    return MISLAS_OK;
}

/* The report's figures from the tally and the calibration summary; the
 * splits need training counts: the options', else the model's, else NaN. */
static int make_report(const char *fn, const mislas_model *model, const mislas_eval_options *o, const tally *t,
        const mislas_calib_summary *s, mislas_eval_report *out)
{
    int32_t k = mislas_model_num_classes(model);
    out->count = t->count;
    out->top1 = (double)t->correct / (double)t->count;
    out->ece = s->ece;
    out->mce = s->mce;
    out->nll = s->nll;
    out->brier = s->brier;
    out->many = out->medium = out->few = NAN;
    if (o->train_counts != NULL || o->medium_from > 0)
        return split_accuracies(fn, t, o->train_counts, o, k, out);
    int64_t *counts = mislasi_calloc((size_t)k, sizeof *counts);
    if (counts == NULL)
        return mislasi_fail(MISLAS_ERR_OUT_OF_MEMORY, "%s: out of memory", fn);
    int status = MISLAS_OK;
    if (mislas_model_class_counts(model, counts, k) == MISLAS_OK)   /* fails when the model has none */
        status = split_accuracies(fn, t, counts, o, k, out);
    mislasi_free(counts);
    return status;
}

int mislas_eval_run(mislas_model *model, const mislas_dataset *test, const mislas_eval_options *opts,
        mislas_calib *calib, double *class_accuracy, mislas_eval_report *report)
{
    static const char fn[] = "mislas_eval_run";
    MISLASI_CHECK_NOT_NULL(fn, model);
    MISLASI_CHECK_NOT_NULL(fn, test);
    MISLASI_CHECK_NOT_NULL(fn, report);
    mislas_eval_options o;
    int status = read_eval_options(fn, model, test, opts, calib, &o);
    if (status == MISLAS_OK)
        status = mislasi_check_output(fn, "report", report->struct_size);
    if (status != MISLAS_OK)
        return status;
    int32_t k = mislas_model_num_classes(model);
    mislas_calib *own = NULL;
    if (calib == NULL) {
        status = mislas_calib_new(&own, k, 15);
        if (status != MISLAS_OK)
            return mislasi_fail_within(status, fn);
        calib = own;
    }
    tally t;
    status = tally_new(fn, &t, k);
    if (status == MISLAS_OK)
        status = run_batches(fn, model, test, &o, calib, &t, NULL);
    mislas_calib_summary s;
    mislas_calib_summary_init(&s);
    if (status == MISLAS_OK)
        status = mislas_calib_summarize(calib, &s);
    mislas_eval_report out;
    mislas_eval_report_init(&out);
    if (status == MISLAS_OK)
        status = make_report(fn, model, &o, &t, &s, &out);
    if (status == MISLAS_OK) {
        for (int32_t i = 0; class_accuracy != NULL && i < k; i++)
            class_accuracy[i] = t.totals[i] > 0 ? (double)t.hits[i] / (double)t.totals[i] : NAN;
        mislasi_write_output(report, &out, sizeof out);
    }
    tally_free(&t);
    mislas_calib_free(own);
    return status;
}

int mislas_eval_logits(mislas_model *model, const mislas_dataset *data, const mislas_eval_options *opts,
        float *logits)
{
    static const char fn[] = "mislas_eval_logits";
    MISLASI_CHECK_NOT_NULL(fn, model);
    MISLASI_CHECK_NOT_NULL(fn, data);
    MISLASI_CHECK_NOT_NULL(fn, logits);
    mislas_eval_options o;
    int status = read_eval_options(fn, model, data, opts, NULL, &o);
    if (status != MISLAS_OK)
        return status;
    tally t;    /* feeds the progress callback's running accuracy */
    status = tally_new(fn, &t, mislas_model_num_classes(model));
    if (status == MISLAS_OK)
        status = run_batches(fn, model, data, &o, NULL, &t, logits);
    tally_free(&t);
    return status;
}
