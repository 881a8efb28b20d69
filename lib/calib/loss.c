/* Every loss of loss.h as one object (docs/method.md, "Label-aware smoothing",
 * for the first three). With m = max_j u_j and S = sum_j exp(u_j - m), the
 * smoothing part is stable for logits of any finite magnitude:
 *   (1 - eps_y) (log S - (u_y - m)) + eps_y (log S - mean_j (u_j - m))
 * and its gradient is p_j - eps_y / K - (1 - eps_y) [j == y].
 *
 * Two paths compute it. Cross-entropy, label smoothing and LAS take the fast
 * one: u = z, one softmax per row serves both mixup targets. Everything else
 * (scale, offsets, margins, focusing, weights) takes the general one, which
 * needs, per target, the sum of the other classes' exponentials exactly
 * (1 - p_y for the focal factor, the target's margin-lowered logit for
 * LDAM): it is summed apart rather than taken as S - e_y, which would lose
 * all of it when p_y rounds to 1. A batch is processed in two passes so that
 * a bad logit anywhere is found before any output is written. */
#include <mislas/loss.h>

#include "util/util.h"

#include <math.h>
#include <stdbool.h>
#include <string.h>

struct mislas_loss {
    int32_t num_classes;
    float *smoothing;       /* eps_c, num_classes */
    float scale;            /* s */
    float gamma;            /* focal loss's focusing parameter */
    float max_offset;       /* max_c |o_c| */
    float *offset;          /* o_c, or NULL */
    float *margin;          /* Delta_c, or NULL */
    float *weight;          /* w_c, or NULL */
    mislas_reduction reduction;
    /* per-row scratch, grown on demand */
    size_t capacity;
    float *row_max, *row_min;
    double *row_loss;
    /* the general path's rows when no gradient is asked for: parts x K */
    size_t scratch_parts;
    float *scratch;
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
    l->scale = 1.0f;
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

/* A per-class array of the loss, or NULL after recording the failure. */
static float *class_array(const char *fn, int32_t num_classes)
{
    float *a = mislasi_calloc((size_t)num_classes, sizeof *a);
    if (a == NULL)
        mislasi_fail(MISLAS_ERR_OUT_OF_MEMORY, "%s: out of memory for %d classes", fn, (int)num_classes);
    return a;
}

int mislas_loss_new_focal(mislas_loss **out, int32_t num_classes, float gamma)
{
    static const char fn[] = "mislas_loss_new_focal";
    MISLASI_CHECK_NOT_NULL(fn, out);
    *out = NULL;
    if (!(gamma >= 0.0f && gamma <= 1e3f))
        return mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT, "%s: gamma = %g is not in [0, 1000]", fn, (double)gamma);
    int rc = new_uniform(fn, out, num_classes, 0.0f);
    if (rc == MISLAS_OK)
        (*out)->gamma = gamma;
    return rc;
}

void mislas_ldam_options_init(mislas_ldam_options *opts)
{
    if (opts == NULL)
        return;
    memset(opts, 0, sizeof *opts);
    opts->struct_size = sizeof *opts;
    opts->max_margin = 0.5f;
    opts->scale = 30.0f;
}

int mislas_loss_new_ldam(mislas_loss **out, const int64_t *class_counts, int32_t num_classes,
        const mislas_ldam_options *opts)
{
    static const char fn[] = "mislas_loss_new_ldam";
    MISLASI_CHECK_NOT_NULL(fn, out);
    *out = NULL;
    MISLASI_CHECK_NOT_NULL(fn, class_counts);
    mislas_ldam_options o;
    mislas_ldam_options_init(&o);
    int rc;
    if (opts != NULL && (rc = mislasi_read_options(fn, &o, sizeof o, opts)) != MISLAS_OK)
        return rc;
    if (!(o.max_margin >= 0.0f && o.max_margin <= 1e3f))
        return mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT, "%s: opts->max_margin = %g is not in [0, 1000]", fn,
                (double)o.max_margin);
    if (!(o.scale > 0.0f && o.scale <= 1e6f))
        return mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT, "%s: opts->scale = %g is not in (0, 1e6]", fn, (double)o.scale);
    if ((rc = mislasi_check_positive_counts(fn, class_counts, num_classes)) != MISLAS_OK)
        return rc;
    mislas_loss *l = NULL;
    if ((rc = loss_alloc(fn, &l, num_classes)) != MISLAS_OK)
        return rc;
    if ((l->margin = class_array(fn, num_classes)) == NULL) {
        mislas_loss_free(l);
        return MISLAS_ERR_OUT_OF_MEMORY;
    }
    /* the rarest class has the largest N^(-1/4); it gets max_margin */
    int64_t n_min = class_counts[0];
    for (int32_t c = 1; c < num_classes; c++)
        n_min = class_counts[c] < n_min ? class_counts[c] : n_min;
    for (int32_t c = 0; c < num_classes; c++)
        l->margin[c] = (float)(o.max_margin * pow((double)n_min / (double)class_counts[c], 0.25));
    l->scale = o.scale;
    *out = l;
    return MISLAS_OK;
}

int mislas_loss_new_logit_adjusted(mislas_loss **out, const int64_t *class_counts, int32_t num_classes, float tau)
{
    static const char fn[] = "mislas_loss_new_logit_adjusted";
    MISLASI_CHECK_NOT_NULL(fn, out);
    *out = NULL;
    MISLASI_CHECK_NOT_NULL(fn, class_counts);
    if (!(tau >= 0.0f && tau <= 1e3f))
        return mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT, "%s: tau = %g is not in [0, 1000]", fn, (double)tau);
    int rc = mislasi_check_positive_counts(fn, class_counts, num_classes);
    mislas_loss *l = NULL;
    if (rc == MISLAS_OK)
        rc = loss_alloc(fn, &l, num_classes);
    if (rc != MISLAS_OK)
        return rc;
    if ((l->offset = class_array(fn, num_classes)) == NULL) {
        mislas_loss_free(l);
        return MISLAS_ERR_OUT_OF_MEMORY;
    }
    double total = 0.0;
    for (int32_t c = 0; c < num_classes; c++)
        total += (double)class_counts[c];
    for (int32_t c = 0; c < num_classes; c++) {
        l->offset[c] = (float)(tau * log((double)class_counts[c] / total));
        l->max_offset = fmaxf(l->max_offset, fabsf(l->offset[c]));
    }
    *out = l;
    return MISLAS_OK;
}

int mislas_loss_set_class_weights(mislas_loss *loss, const float *weights, mislas_reduction reduction)
{
    static const char fn[] = "mislas_loss_set_class_weights";
    MISLASI_CHECK_NOT_NULL(fn, loss);
    if ((unsigned)reduction > MISLAS_REDUCE_WEIGHTED_MEAN)
        return mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT, "%s: reduction = %d is not a mislas_reduction", fn,
                (int)reduction);
    if (weights == NULL) {
        mislasi_free(loss->weight);
        loss->weight = NULL;
        loss->reduction = reduction;
        return MISLAS_OK;
    }
    bool any = false;
    for (int32_t c = 0; c < loss->num_classes; c++) {
        if (!(weights[c] >= 0.0f && weights[c] <= 3.402823466e38f))
            return mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT, "%s: weights[%d] = %g, need a finite weight >= 0", fn,
                    (int)c, (double)weights[c]);
        any = any || weights[c] > 0.0f;
    }
    if (!any)
        return mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT, "%s: every weight is 0", fn);
    if (loss->weight == NULL && (loss->weight = class_array(fn, loss->num_classes)) == NULL)
        return MISLAS_ERR_OUT_OF_MEMORY;
    memcpy(loss->weight, weights, (size_t)loss->num_classes * sizeof *weights);
    loss->reduction = reduction;
    return MISLAS_OK;
}

/* The effective-number weights, for a caller-checked beta and counts. */
static void effective_number_weights(float *weights, const int64_t *counts, int32_t num_classes, double beta)
{
    double total = 0.0;
    for (int32_t c = 0; c < num_classes; c++)
        total += (1.0 - beta) / -expm1((double)counts[c] * log(beta));
    for (int32_t c = 0; c < num_classes; c++)
        weights[c] = (float)((1.0 - beta) / -expm1((double)counts[c] * log(beta)) / total * num_classes);
}

static int check_beta(const char *fn, double beta)
{
    if (!(beta >= 0.0 && beta < 1.0))
        return mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT, "%s: beta = %g is not in [0, 1)", fn, beta);
    return MISLAS_OK;
}

int mislas_loss_class_balanced_weights(float *weights, const int64_t *class_counts, int32_t num_classes, double beta)
{
    static const char fn[] = "mislas_loss_class_balanced_weights";
    MISLASI_CHECK_NOT_NULL(fn, weights);
    MISLASI_CHECK_NOT_NULL(fn, class_counts);
    int rc;
    if ((rc = check_beta(fn, beta)) != MISLAS_OK || (rc = mislasi_check_positive_counts(fn, class_counts, num_classes)) != MISLAS_OK)
        return rc;
    if (beta == 0.0) {  /* 1 - 0^N = 1 for every N >= 1; log(0) is not needed */
        for (int32_t c = 0; c < num_classes; c++)
            weights[c] = 1.0f;
        return MISLAS_OK;
    }
    effective_number_weights(weights, class_counts, num_classes, beta);
    return MISLAS_OK;
}

int mislas_loss_drw_weights(float *weights, const int64_t *class_counts, int32_t num_classes, double beta,
        int32_t epoch, int32_t start_epoch)
{
    static const char fn[] = "mislas_loss_drw_weights";
    MISLASI_CHECK_NOT_NULL(fn, weights);
    MISLASI_CHECK_NOT_NULL(fn, class_counts);
    if (epoch < 0 || start_epoch < 0)
        return mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT, "%s: epoch = %d and start_epoch = %d, need both >= 0", fn,
                (int)epoch, (int)start_epoch);
    int rc;
    if ((rc = check_beta(fn, beta)) != MISLAS_OK || (rc = mislasi_check_positive_counts(fn, class_counts, num_classes)) != MISLAS_OK)
        return rc;
    return mislas_loss_class_balanced_weights(weights, class_counts, num_classes, epoch < start_epoch ? 0.0 : beta);
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

/* ------------------------------------------------------------ general path */

static bool is_plain(const mislas_loss *l)
{
    return l->scale == 1.0f && l->gamma == 0.0f && l->offset == NULL && l->margin == NULL && l->weight == NULL;
}

static int reserve_scratch(mislas_loss *l, const char *fn, size_t parts)
{
    if (parts <= l->scratch_parts)
        return MISLAS_OK;
    float *scratch = mislasi_calloc(parts * (size_t)l->num_classes, sizeof *scratch);
    if (scratch == NULL)
        return mislasi_fail(MISLAS_ERR_OUT_OF_MEMORY, "%s: out of memory for %zu rows of scratch", fn, parts);
    mislasi_free(l->scratch);
    l->scratch = scratch;
    l->scratch_parts = parts;
    return MISLAS_OK;
}

typedef struct general_job {
    const mislasi_rowmath *rm;
    mislas_loss *l;
    const float *logits;
    const int32_t *ta, *tb;
    float *grad;
    size_t n, k, parts;
    double ca, cb;              /* lambda / norm_a, (1 - lambda) / norm_b */
} general_job;

/* One mixup term's share of a row: its loss, and its gradient with respect
 * to u as a e_j + b on every class but the target, whose entry is
 * a ey + b - fix (ey: the target's exponential lowered by its margin). */
typedef struct term_out {
    double loss, a, b, ey, fix;
} term_out;

/* e: exp(u_j - m) with u unlowered by any margin; u_y, the target's u. */
static term_out row_term(const mislas_loss *l, const float *e, size_t k, int32_t y, double u_y, double m,
        double exp_sum, double shifted_sum, double c)
{
    term_out t = {0};
    if (c == 0.0)
        return t;
    const double d = l->margin != NULL ? (double)l->scale * l->margin[y] : 0.0;
    t.ey = d > 0.0 ? e[y] * exp(-d) : e[y];
    double others, sum;
    /* S - e_y loses nothing that matters while e_y is at most half of S;
     * beyond that the others are summed apart */
    if ((l->gamma > 0.0f || d > 0.0) && e[y] > 0.5 * exp_sum) {
        others = 0.0;
        for (size_t j = 0; j < k; j++)
            others += j == (size_t)y ? 0.0 : (double)e[j];
        sum = others + t.ey;
    } else {
        others = exp_sum - e[y];
        sum = others + t.ey;
    }
    if (!(sum > 0.0))   /* one class only, its margin-lowered exponential underflowed: p_y = 1 */
        return t;
    const double log_s = log(sum), eps = l->smoothing[y];
    double nll = log_s - (u_y - d - m);
    nll = nll > 0.0 ? nll : 0.0;
    double focal = 1.0, dfocal = 1.0;   /* (1 - p_y)^gamma and the gradient's factor */
    if (l->gamma > 0.0f) {
        const double g = l->gamma, q = t.ey / sum, rest = others / sum;
        focal = pow(rest, g);
        /* d/du of (1-q)^g (-log q) is (p - [y]) ((1-q)^g + g q (-log q) (1-q)^(g-1)) */
        dfocal = rest > 0.0 ? focal + g * q * nll * pow(rest, g - 1.0) : 0.0;
    }
    t.loss = (1.0 - eps) * focal * nll + eps * (log_s - (shifted_sum - d) / (double)k);
    t.a = c * (dfocal * (1.0 - eps) + eps) / sum;
    t.b = -c * eps / (double)k;
    t.fix = c * dfocal * (1.0 - eps);
    return t;
}

/* The gradient at class y, one of the targets, summed in double: with a
 * margin, e_y can exceed the lowered sum by e^(s Delta), and adding a
 * correction to the float a e_y + b would cancel catastrophically. */
static float target_gradient(int32_t y, float e_y, int32_t ya, const term_out *ta, int32_t yb, const term_out *tb,
        double s)
{
    double g = ta->b + tb->b;
    g += ya == y ? ta->a * ta->ey - ta->fix : ta->a * e_y;
    g += yb == y ? tb->a * tb->ey - tb->fix : tb->a * e_y;
    return (float)(s * g);
}

static void general_rows(void *ctx, size_t begin, size_t end)
{
    const general_job *j = ctx;
    const mislas_loss *l = j->l;
    const size_t k = j->k;
    const float s = l->scale;
    for (size_t part = begin; part < end; part++) {
        for (size_t i = part * j->n / j->parts; i < (part + 1) * j->n / j->parts; i++) {
            const float *z = j->logits + i * k;
            float *u = j->grad != NULL ? j->grad + i * k : l->scratch + part * k;
            /* u may be z itself (grad == logits): each element is read before written */
            for (size_t c = 0; c < k; c++)
                u[c] = s * (z[c] + (l->offset != NULL ? l->offset[c] : 0.0f));
            const int32_t ya = j->ta[i], yb = j->tb[i];
            const double u_a = u[ya], u_b = u[yb];
            float m, lowest;
            j->rm->range(u, k, &m, &lowest);
            /* as in the fast path: a row spread over ~1e37 / K is summed in double */
            double shifted = 0.0;
            const bool wide = ((double)m - (double)lowest) * (double)k > 1e37;
            for (size_t c = 0; wide && c < k; c++)
                shifted += (double)u[c] - m;
            mislasi_row_sums rs = j->rm->exp(u, k, m, u);
            if (!wide)
                shifted = rs.shifted_sum;
            const double wa = l->weight != NULL ? l->weight[ya] : 1.0, wb = l->weight != NULL ? l->weight[yb] : 1.0;
            term_out ta = row_term(l, u, k, ya, u_a, m, rs.exp_sum, shifted, j->ca * wa);
            term_out tb = row_term(l, u, k, yb, u_b, m, rs.exp_sum, shifted, j->cb * wb);
            l->row_loss[i] = j->ca * wa * ta.loss + j->cb * wb * tb.loss;
            if (j->grad != NULL) {
                const float ga = target_gradient(ya, u[ya], ya, &ta, yb, &tb, s);
                const float gb = target_gradient(yb, u[yb], ya, &ta, yb, &tb, s);
                j->rm->affine(u, k, (float)(s * (ta.a + tb.a)), (float)(s * (ta.b + tb.b)));
                u[ya] = ga;
                u[yb] = gb;
            }
        }
    }
}

/* The general path's pass 2 (pass 1 has checked every logit). */
static int compute_general(mislas_loss *l, const char *fn, const float *logits, const int32_t *ta,
        const int32_t *tb, float lambda, size_t n, float *grad)
{
    const size_t k = (size_t)l->num_classes;
    /* u = s (z + o) must stay finite */
    for (size_t i = 0; i < n; i++) {
        double reach = fmax(fabs((double)l->row_max[i]), fabs((double)l->row_min[i])) + l->max_offset;
        if (fmax(reach, reach * l->scale) > 3.402823466e38)
            return mislasi_fail(MISLAS_ERR_NUMERIC, "%s: logits[%zu] reach %g; times the loss's scale %g they "
                    "overflow float", fn, i, reach, (double)l->scale);
    }
    double norm_a = (double)n, norm_b = (double)n;
    if (l->weight != NULL && l->reduction == MISLAS_REDUCE_WEIGHTED_MEAN) {
        norm_a = norm_b = 0.0;
        for (size_t i = 0; i < n; i++) {
            norm_a += l->weight[ta[i]];
            norm_b += l->weight[tb[i]];
        }
        const bool a_undefined = lambda > 0.0f && norm_a == 0.0, b_undefined = lambda < 1.0f && norm_b == 0.0;
        if (a_undefined || b_undefined)
            return mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT, "%s: every target of the batch%s has weight 0, so "
                    "the weighted mean is undefined", fn, a_undefined ? "" : " (targets_b)");
    }
    size_t parts = (size_t)mislas_num_threads();
    const size_t useful = (n * k + ELEMENTS_PER_THREAD - 1) / ELEMENTS_PER_THREAD;
    parts = parts < useful ? parts : useful;
    parts = parts < n ? parts : n;
    int rc;
    if (grad == NULL && (rc = reserve_scratch(l, fn, parts)) != MISLAS_OK)
        return rc;
    general_job job = {
        mislasi_rowmath_get(), l, logits, ta, tb, grad, n, k, parts,
        lambda > 0.0f ? (double)lambda / norm_a : 0.0, lambda < 1.0f ? (1.0 - (double)lambda) / norm_b : 0.0,
    };
    mislasi_parallel_for(parts, 1, general_rows, &job);
    return MISLAS_OK;
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
    const bool plain = is_plain(l);
    if (plain)
        mislasi_parallel_for(n, grain, rows_loss, &job);
    else if ((rc = compute_general(l, fn, logits, ta, tb, lambda, n, grad)) != MISLAS_OK)
        return rc;
    if (loss_out != NULL) {
        double total = 0.0;
        for (size_t i = 0; i < n; i++)
            total += l->row_loss[i];
        *loss_out = (float)(plain ? total * job.inv_n : total);
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
    mislasi_free(loss->offset);
    mislasi_free(loss->margin);
    mislasi_free(loss->weight);
    mislasi_free(loss->scratch);
    mislasi_free(loss);
}
