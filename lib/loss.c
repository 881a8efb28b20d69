/* Cross-entropy, label smoothing and label-aware smoothing as one loss with a
 * per-class smoothing factor eps_c (METHOD.md, "Label-aware smoothing"):
 *   L(z, y) = (1 - eps_y) (log S - (z_y - m)) + eps_y (log S - mean_j (z_j - m))
 * with m = max_j z_j and S = sum_j exp(z_j - m), which is stable for logits
 * of any finite magnitude. Its gradient is
 *   dL/dz_j = p_j - eps_y / K - (1 - eps_y) [j == y].
 * A batch is processed in two passes so that a bad logit anywhere is found
 * before any output is written. */
#include <mislas/loss.h>

#include "internal.h"
#include "rowmath.h"
#include "threads.h"

#include <math.h>
#include <stdbool.h>
#include <string.h>

struct mislas_loss {
    int32_t num_classes;
    float *smoothing;       /* eps_c, num_classes */
    /* per-row scratch, grown on demand */
    size_t capacity;
    float *row_max, *row_min;
    double *row_loss;
};

/* Fewer logits than this per thread are not worth waking a thread for. */
enum { ELEMENTS_PER_THREAD = 1 << 14 };

void mislas_las_options_init(mislas_las_options *opts)
{
    if (opts == NULL)
        return;
    memset(opts, 0, sizeof *opts);
    opts->struct_size = sizeof *opts;
    opts->smooth_head = 0.4f;
    opts->smooth_tail = 0.1f;
    opts->shape = MISLAS_LAS_CONCAVE;
    opts->power = 1.0f;
}

static int check_factor(const char *fn, const char *name, float value)
{
    if (!(value >= 0.0f && value <= 1.0f))
        return mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT, "%s: %s = %g is not in [0, 1]", fn, name, (double)value);
    return MISLAS_OK;
}

/* Allocates a loss whose smoothing factors the caller then fills in. */
static int loss_alloc(const char *fn, mislas_loss **out, int32_t num_classes)
{
    if (num_classes < 1)
        return mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT, "%s: num_classes = %d, need at least 1", fn, (int)num_classes);
    mislas_loss *l = mislasi_calloc(1, sizeof *l);
    if (l == NULL)
        return mislasi_fail(MISLAS_ERR_OUT_OF_MEMORY, "%s: out of memory", fn);
    l->num_classes = num_classes;
    l->smoothing = mislasi_calloc((size_t)num_classes, sizeof *l->smoothing);
    if (l->smoothing == NULL) {
        mislas_loss_free(l);
        return mislasi_fail(MISLAS_ERR_OUT_OF_MEMORY, "%s: out of memory for %d classes", fn, (int)num_classes);
    }
    *out = l;
    return MISLAS_OK;
}

/* A loss whose every class has the same smoothing factor. */
static int new_uniform(const char *fn, mislas_loss **out, int32_t num_classes, float epsilon)
{
    MISLASI_CHECK_NOT_NULL(fn, out);
    *out = NULL;
    int rc = check_factor(fn, "epsilon", epsilon);
    mislas_loss *l = NULL;
    if (rc == MISLAS_OK)
        rc = loss_alloc(fn, &l, num_classes);
    if (rc != MISLAS_OK)
        return rc;
    for (int32_t c = 0; c < num_classes; c++)
        l->smoothing[c] = epsilon;
    *out = l;
    return MISLAS_OK;
}

int mislas_loss_new_label_smoothing(mislas_loss **out, int32_t num_classes, float epsilon)
{
    return new_uniform("mislas_loss_new_label_smoothing", out, num_classes, epsilon);
}

int mislas_loss_new_cross_entropy(mislas_loss **out, int32_t num_classes)
{
    return new_uniform("mislas_loss_new_cross_entropy", out, num_classes, 0.0f);
}

/* eps for one class, in double, in the reference's order of operations. */
static double las_factor(const mislas_las_options *o, double count, double n_min, double n_max)
{
    double head = o->smooth_head, tail = o->smooth_tail;
    const double pi = 3.14159265358979323846;
    if (n_max == n_min) /* the reference divides by zero here; every class is a head class */
        return head;
    switch (o->shape) {
    case MISLAS_LAS_LINEAR:
        return tail + (head - tail) * (count - n_min) / (n_max - n_min);
    case MISLAS_LAS_CONVEX:
        return head + (head - tail) * sin(1.5 * pi + (count - n_min) * pi / (2 * (n_max - n_min)));
    case MISLAS_LAS_POWER:
        return tail + (head - tail) * pow((count - n_min) / (n_max - n_min), o->power);
    case MISLAS_LAS_CONCAVE:
    default:
        return tail + (head - tail) * sin((count - n_min) * pi / (2 * (n_max - n_min)));
    }
}

int mislas_loss_new_label_aware_smoothing(mislas_loss **out, const int64_t *class_counts,
        int32_t num_classes, const mislas_las_options *opts)
{
    static const char fn[] = "mislas_loss_new_label_aware_smoothing";
    MISLASI_CHECK_NOT_NULL(fn, out);
    *out = NULL;
    MISLASI_CHECK_NOT_NULL(fn, class_counts);
    mislas_las_options o;
    mislas_las_options_init(&o);
    int rc;
    if (opts != NULL && (rc = mislasi_read_options(fn, &o, sizeof o, opts)) != MISLAS_OK)
        return rc;
    if ((rc = check_factor(fn, "opts->smooth_head", o.smooth_head)) != MISLAS_OK ||
        (rc = check_factor(fn, "opts->smooth_tail", o.smooth_tail)) != MISLAS_OK)
        return rc;
    if ((unsigned)o.shape > MISLAS_LAS_POWER)
        return mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT, "%s: opts->shape = %d is not a mislas_las_shape", fn, (int)o.shape);
    if (o.shape == MISLAS_LAS_POWER && !(o.power > 0.0f && o.power <= 3.402823466e38f))
        return mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT, "%s: opts->power = %g, need a finite power > 0", fn, (double)o.power);
    if (num_classes < 1)
        return mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT, "%s: num_classes = %d, need at least 1", fn, (int)num_classes);
    int64_t n_min = class_counts[0], n_max = class_counts[0];
    for (int32_t c = 0; c < num_classes; c++) {
        if (class_counts[c] < 0)
            return mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT, "%s: class_counts[%d] = %lld is negative",
                    fn, (int)c, (long long)class_counts[c]);
        n_min = class_counts[c] < n_min ? class_counts[c] : n_min;
        n_max = class_counts[c] > n_max ? class_counts[c] : n_max;
    }
    if (n_max == 0)
        return mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT, "%s: every class count is 0", fn);
    mislas_loss *l = NULL;
    if ((rc = loss_alloc(fn, &l, num_classes)) != MISLAS_OK)
        return rc;
    for (int32_t c = 0; c < num_classes; c++) {
        double eps = las_factor(&o, (double)class_counts[c], (double)n_min, (double)n_max);
        /* sin() can overshoot an endpoint by an ulp; keep eps a valid weight */
        l->smoothing[c] = (float)(eps < 0.0 ? 0.0 : eps > 1.0 ? 1.0 : eps);
    }
    *out = l;
    return MISLAS_OK;
}

int mislas_loss_class_smoothing(const mislas_loss *loss, float *smoothing)
{
    static const char fn[] = "mislas_loss_class_smoothing";
    MISLASI_CHECK_NOT_NULL(fn, loss);
    MISLASI_CHECK_NOT_NULL(fn, smoothing);
    memcpy(smoothing, loss->smoothing, (size_t)loss->num_classes * sizeof *smoothing);
    return MISLAS_OK;
}

int32_t mislas_loss_num_classes(const mislas_loss *loss)
{
    return loss == NULL ? -1 : loss->num_classes;
}

static int reserve_rows(mislas_loss *l, const char *fn, size_t n)
{
    if (n <= l->capacity)
        return MISLAS_OK;
    float *row_max = mislasi_calloc(n, sizeof *row_max), *row_min = mislasi_calloc(n, sizeof *row_min);
    double *row_loss = mislasi_calloc(n, sizeof *row_loss);
    if (row_max == NULL || row_min == NULL || row_loss == NULL) {
        mislasi_free(row_max);
        mislasi_free(row_min);
        mislasi_free(row_loss);
        return mislasi_fail(MISLAS_ERR_OUT_OF_MEMORY, "%s: out of memory for a batch of %zu rows", fn, n);
    }
    mislasi_free(l->row_max);
    mislasi_free(l->row_min);
    mislasi_free(l->row_loss);
    l->row_max = row_max;
    l->row_min = row_min;
    l->row_loss = row_loss;
    l->capacity = n;
    return MISLAS_OK;
}

/* One batch, shared by the threads that work on its rows. */
typedef struct batch_job {
    const mislasi_rowmath *rm;
    mislas_loss *l;
    const float *logits;
    const int32_t *ta, *tb;
    float *grad;
    size_t k;
    double wa, wb;              /* lambda, 1 - lambda */
    double inv_n, inv_k;
} batch_job;

static void rows_max(void *ctx, size_t begin, size_t end)
{
    const batch_job *b = ctx;
    for (size_t i = begin; i < end; i++)
        if (!b->rm->range(b->logits + i * b->k, b->k, &b->l->row_max[i], &b->l->row_min[i]))
            b->l->row_max[i] = NAN;
}

static void rows_loss(void *ctx, size_t begin, size_t end)
{
    const batch_job *b = ctx;
    const size_t k = b->k;
    const float *eps = b->l->smoothing;
    for (size_t i = begin; i < end; i++) {
        const float *z = b->logits + i * k;
        float m = b->l->row_max[i];
        int32_t ya = b->ta[i], yb = b->tb[i];
        /* read before the gradient may overwrite the row (grad == logits) */
        double za = (double)z[ya] - m, zb = (double)z[yb] - m;
        /* sum_j (z_j - m) overflows the kernel's float lanes only for logits
         * spread over ~1e38 / K; such a row is summed here in double */
        const bool wide = ((double)m - (double)b->l->row_min[i]) * (double)k > 1e37;
        double shifted = 0.0;
        for (size_t j = 0; wide && j < k; j++)
            shifted += (double)z[j] - m;
        float *g = b->grad != NULL ? b->grad + i * k : NULL;
        mislasi_row_sums s = b->rm->exp(z, k, m, g);
        if (!wide)
            shifted = s.shifted_sum;
        double log_s = log((double)s.exp_sum);
        double smooth = log_s - shifted * b->inv_k;
        double ea = eps[ya], eb = eps[yb];
        double la = (1.0 - ea) * (log_s - za) + ea * smooth;
        double lb = (1.0 - eb) * (log_s - zb) + eb * smooth;
        b->l->row_loss[i] = b->wa * la + (b->wb == 0.0 ? 0.0 : b->wb * lb);
        if (g != NULL) {
            b->rm->affine(g, k, (float)(b->inv_n / (double)s.exp_sum),
                    (float)(-(b->wa * ea + b->wb * eb) * b->inv_k * b->inv_n));
            g[ya] -= (float)(b->wa * (1.0 - ea) * b->inv_n);
            g[yb] -= (float)(b->wb * (1.0 - eb) * b->inv_n);
        }
    }
}

/* Both public calls land here; the plain loss is the mixup criterion with
 * lambda = 1 and targets_b = targets_a. */
static int compute(mislas_loss *l, const char *fn, const float *logits,
        const int32_t *ta, const int32_t *tb, float lambda,
        size_t n, float *loss_out, float *grad)
{
    const size_t k = (size_t)l->num_classes;
    if (n == 0)
        return mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT, "%s: n = 0, the batch is empty", fn);
    if (n > SIZE_MAX / sizeof(float) / k)
        return mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT, "%s: n = %zu rows of %zu logits overflow size_t", fn, n, k);
    if (!(lambda >= 0.0f && lambda <= 1.0f))
        return mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT, "%s: lambda = %g is not in [0, 1]", fn, (double)lambda);
    size_t bad = mislasi_find_bad_label(ta, n, l->num_classes);
    if (bad < n)
        return mislasi_fail_bad_label(fn, tb == ta ? "targets" : "targets_a", ta, bad, l->num_classes);
    if ((bad = mislasi_find_bad_label(tb, n, l->num_classes)) < n)
        return mislasi_fail_bad_label(fn, "targets_b", tb, bad, l->num_classes);
    int rc = reserve_rows(l, fn, n);
    if (rc != MISLAS_OK)
        return rc;

    batch_job job = {
        mislasi_rowmath_get(), l, logits, ta, tb, grad, k,
        lambda, 1.0 - (double)lambda, 1.0 / (double)n, 1.0 / (double)k,
    };
    const size_t grain = k >= ELEMENTS_PER_THREAD ? 1 : ELEMENTS_PER_THREAD / k;

    /* Pass 1: every row's maximum, NaN marking a row with a non-finite logit. */
    mislasi_parallel_for(n, grain, rows_max, &job);
    for (size_t i = 0; i < n; i++) {
        if (isnan(l->row_max[i])) {
            size_t j = 0;
            while (j < k && isfinite(logits[i * k + j]))
                j++;
            return mislasi_fail(MISLAS_ERR_NUMERIC, "%s: logits[%zu][%zu] = %g is not finite", fn, i, j,
                    (double)logits[i * k + j]);
        }
    }
    /* Pass 2: the loss of every row and, when asked, its gradient. */
    mislasi_parallel_for(n, grain, rows_loss, &job);
    if (loss_out != NULL) {
        double total = 0.0;
        for (size_t i = 0; i < n; i++)
            total += l->row_loss[i];
        *loss_out = (float)(total * job.inv_n);
    }
    return MISLAS_OK;
}

int mislas_loss_compute(mislas_loss *loss, const float *logits, const int32_t *targets,
        size_t n, float *loss_out, float *grad_logits)
{
    static const char fn[] = "mislas_loss_compute";
    MISLASI_CHECK_NOT_NULL(fn, loss);
    MISLASI_CHECK_NOT_NULL(fn, logits);
    MISLASI_CHECK_NOT_NULL(fn, targets);
    return compute(loss, fn, logits, targets, targets, 1.0f, n, loss_out, grad_logits);
}

int mislas_loss_compute_mixup(mislas_loss *loss, const float *logits,
        const int32_t *targets_a, const int32_t *targets_b, float lambda,
        size_t n, float *loss_out, float *grad_logits)
{
    static const char fn[] = "mislas_loss_compute_mixup";
    MISLASI_CHECK_NOT_NULL(fn, loss);
    MISLASI_CHECK_NOT_NULL(fn, logits);
    MISLASI_CHECK_NOT_NULL(fn, targets_a);
    MISLASI_CHECK_NOT_NULL(fn, targets_b);
    return compute(loss, fn, logits, targets_a, targets_b, lambda, n, loss_out, grad_logits);
}

void mislas_loss_free(mislas_loss *loss)
{
    if (loss == NULL)
        return;
    mislasi_free(loss->smoothing);
    mislasi_free(loss->row_max);
    mislasi_free(loss->row_min);
    mislasi_free(loss->row_loss);
    mislasi_free(loss);
}
