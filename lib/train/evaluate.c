/* Evaluation of a model on a test set (train.h): calibration state, top-1,
 * per-class accuracy and the Many / Medium / Few splits of METHOD.md. */
#include <mislas/train.h>

#include "internal.h"
#include "model_internal.h"
#include "threads.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* METHOD.md's splits by training count. */
enum { MANY_ABOVE = 100, FEW_BELOW = 20 };

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

static void tally_batch(tally *t, const float *logits, const int32_t *labels, size_t n, int32_t k)
{
    for (size_t i = 0; i < n; i++) {
        const float *row = logits + i * (size_t)k;
        int32_t best = 0;
        for (int32_t j = 1; j < k; j++)
            if (row[j] > row[best])
                best = j;
        t->totals[labels[i]]++;
        t->hits[labels[i]] += best == labels[i];
        t->correct += best == labels[i];
    }
    t->count += n;
}

/* Mean class accuracy over the classes whose training count is in
 * [lo, hi] and that have test images; NaN when there are none. */
static double split_accuracy(const tally *t, const int64_t *counts, int32_t k, int64_t lo, int64_t hi,
        int32_t *classes)
{
    double sum = 0;
    int32_t used = 0;
    for (int32_t c = 0; c < k; c++) {
        if (counts[c] < lo || counts[c] > hi || t->totals[c] == 0)
            continue;
        sum += (double)t->hits[c] / (double)t->totals[c];
        used++;
    }
    *classes = used;
    return used > 0 ? sum / used : NAN;
}

static int run_batches(const char *fn, mislas_model *model, const mislas_dataset *test, const mislas_eval_options *o,
        mislas_calib *calib, tally *t)
{
    size_t n = mislas_dataset_size(test), batch = (size_t)o->batch_size;
    int32_t k = model->opts.num_classes;
    size_t image_size = (size_t)model->opts.in_channels * (size_t)model->opts.height * (size_t)model->opts.width;
    if (batch > n)
        batch = n;
    size_t *indices = mislasi_calloc(batch, sizeof *indices);
    float *images = mislasi_calloc(batch, image_size * sizeof *images);
    float *logits = mislasi_calloc(batch, (size_t)k * sizeof *logits);
    int32_t *labels = mislasi_calloc(batch, sizeof *labels);
    int status = MISLAS_OK;
    if (indices == NULL || images == NULL || logits == NULL || labels == NULL)
        status = mislasi_fail(MISLAS_ERR_OUT_OF_MEMORY, "%s: out of memory for the batch buffers", fn);
    mislas_batch_options bo;
    mislas_batch_options_init(&bo);
    bo.mean = o->mean;
    bo.std = o->std;
    double start = mislasi_seconds();
    size_t steps = (n + batch - 1) / batch;
    mislas_progress p = {.struct_size = sizeof p, .stage = 0, .epochs = 1, .steps = steps};
    for (size_t s = 0; status == MISLAS_OK && s < steps; s++) {
        size_t first = s * batch, m = n - first < batch ? n - first : batch;
        for (size_t i = 0; i < m; i++)
            indices[i] = first + i;
        status = mislas_dataset_batch(test, indices, m, &bo, 0, images, labels);
        if (status == MISLAS_OK)
            status = mislas_model_predict(model, images, m, logits);
        if (status == MISLAS_OK)
            status = mislas_calib_add_logits(calib, logits, labels, m);
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
        p.epoch_done = s + 1 == steps;
        if (o->progress != NULL && o->progress(&p, o->progress_data) != 0 && s + 1 < steps)
            status = mislasi_fail(MISLAS_ERR_CANCELLED, "%s: cancelled by the progress callback after %zu images",
                    fn, (size_t)t->count);
    }
    mislasi_free(indices);
    mislasi_free(images);
    mislasi_free(logits);
    mislasi_free(labels);
    return status;
}

int mislas_evaluate(mislas_model *model, const mislas_dataset *test, const mislas_eval_options *opts,
        mislas_calib *calib, double *class_accuracy, mislas_eval_report *report)
{
    static const char fn[] = "mislas_evaluate";
    MISLASI_CHECK_NOT_NULL(fn, model);
    MISLASI_CHECK_NOT_NULL(fn, test);
    MISLASI_CHECK_NOT_NULL(fn, report);
    mislas_eval_options o;
    mislas_eval_options_init(&o);
    if (opts != NULL) {
        int status = mislasi_read_options(fn, &o, sizeof o, opts);
        if (status != MISLAS_OK)
            return status;
    }
    if (report->struct_size < sizeof(size_t) || report->struct_size > 4096)
        return mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT,
                "%s: report->struct_size %zu is implausible (call mislas_eval_report_init first)", fn,
                report->struct_size);
    mislas_eval_report out;
    mislas_eval_report_init(&out);
    int status = MISLAS_OK;
    status = mislasi_model_fits_data(fn, model, test);
    if (status != MISLAS_OK)
        return status;
    int32_t k = model->opts.num_classes;
    if (o.batch_size < 1)
        return mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT, "%s: batch_size = %d must be positive", fn,
                (int)o.batch_size);
    if (mislas_dataset_size(test) == 0)
        return mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT, "%s: the test set is empty", fn);
    for (int32_t i = 0; o.train_counts != NULL && i < k; i++)
        if (o.train_counts[i] < 0)
            return mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT, "%s: train_counts[%d] = %lld is negative", fn, (int)i,
                    (long long)o.train_counts[i]);
    if (calib != NULL && mislas_calib_num_classes(calib) != k)
        return mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT, "%s: calib was made for %d classes, the model has %d", fn,
                (int)mislas_calib_num_classes(calib), (int)k);

    mislas_calib *own = NULL;
    if (calib == NULL) {
        status = mislas_calib_new(&own, k, 15);
        if (status != MISLAS_OK)
            return mislasi_fail_within(status, fn);
        calib = own;
    }
    tally t = {.hits = mislasi_calloc((size_t)k, sizeof *t.hits), .totals = mislasi_calloc((size_t)k, sizeof *t.totals)};
    if (t.hits == NULL || t.totals == NULL)
        status = mislasi_fail(MISLAS_ERR_OUT_OF_MEMORY, "%s: out of memory", fn);
    if (status == MISLAS_OK)
        status = run_batches(fn, model, test, &o, calib, &t);
    mislas_calib_summary s;
    mislas_calib_summary_init(&s);
    if (status == MISLAS_OK)
        status = mislas_calib_summarize(calib, &s);
    if (status == MISLAS_OK) {
        out.count = t.count;
        out.top1 = (double)t.correct / (double)t.count;
        out.ece = s.ece;
        out.mce = s.mce;
        out.nll = s.nll;
        out.brier = s.brier;
        const int64_t *counts = o.train_counts != NULL ? o.train_counts : model->class_counts;
        if (counts != NULL) {
            out.many = split_accuracy(&t, counts, k, MANY_ABOVE + 1, INT64_MAX, &out.many_classes);
            out.medium = split_accuracy(&t, counts, k, FEW_BELOW, MANY_ABOVE, &out.medium_classes);
            out.few = split_accuracy(&t, counts, k, 0, FEW_BELOW - 1, &out.few_classes);
        } else {
            out.many = out.medium = out.few = NAN;
        }
        for (int32_t i = 0; class_accuracy != NULL && i < k; i++)
            class_accuracy[i] = t.totals[i] > 0 ? (double)t.hits[i] / (double)t.totals[i] : NAN;
        out.struct_size = report->struct_size;
        memcpy(report, &out, report->struct_size < sizeof out ? report->struct_size : sizeof out);
    }
    mislasi_free(t.hits);
    mislasi_free(t.totals);
    mislas_calib_free(own);
    return status;
}
