/* The long-tail losses (focal, LDAM, logit adjustment, class weights, DRW):
 * values against a direct double-precision evaluation of each paper's
 * formula, gradients against finite differences of that evaluation and of
 * the library's own loss, and cases worked by hand. */
#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------- the direct formula */

/* Everything a loss of loss.h can be, spelled out for the reference. */
typedef struct spec {
    int32_t k;
    double scale, gamma;
    double offset[8], margin[8], eps[8], weight[8];
    int weighted_mean;
} spec;

static spec plain_spec(int32_t k)
{
    spec s = {.k = k, .scale = 1.0};
    for (int32_t c = 0; c < k; c++)
        s.weight[c] = 1.0;
    return s;
}

/* One sample's loss straight from the definition: softmax of u, then
 * (1 - eps)(1 - p_y)^gamma (-log p_y) + eps mean_j(-log p_j). */
static double sample_loss(const spec *s, const double *z, int32_t y)
{
    double u[8], m = -INFINITY, total = 0.0;
    for (int32_t j = 0; j < s->k; j++) {
        u[j] = s->scale * (z[j] + s->offset[j] - (j == y ? s->margin[y] : 0.0));
        m = fmax(m, u[j]);
    }
    for (int32_t j = 0; j < s->k; j++)
        total += exp(u[j] - m);
    double mean_nll = 0.0;
    for (int32_t j = 0; j < s->k; j++)
        mean_nll += (m + log(total) - u[j]) / s->k;
    double nll = m + log(total) - u[y], p = exp(-nll);
    return (1.0 - s->eps[y]) * pow(1.0 - p, s->gamma) * nll + s->eps[y] * mean_nll;
}

/* The batch loss of the mixup criterion (lambda 1 for a plain batch). */
static double reference_loss(const spec *s, const double *z, const int32_t *ta, const int32_t *tb,
        double lambda, size_t n)
{
    double sum_a = 0, sum_b = 0, norm_a = 0, norm_b = 0;
    for (size_t i = 0; i < n; i++) {
        sum_a += s->weight[ta[i]] * sample_loss(s, z + i * s->k, ta[i]);
        sum_b += s->weight[tb[i]] * sample_loss(s, z + i * s->k, tb[i]);
        norm_a += s->weighted_mean ? s->weight[ta[i]] : 1.0;
        norm_b += s->weighted_mean ? s->weight[tb[i]] : 1.0;
    }
    return lambda * sum_a / norm_a + (lambda < 1.0 ? (1.0 - lambda) * sum_b / norm_b : 0.0);
}

/* The library's loss on z (n x k floats). */
static double library_loss(mislas_loss *l, const float *z, const int32_t *ta, const int32_t *tb, float lambda,
        size_t n, float *grad)
{
    float loss = NAN;
    int rc = tb == NULL ? mislas_loss_compute(l, z, ta, n, &loss, grad)
                        : mislas_loss_compute_mixup(l, z, ta, tb, lambda, n, &loss, grad);
    ck_assert_msg(rc == MISLAS_OK, "%s", mislas_last_error());
    return loss;
}

/* Checks value and gradient of `l` (which must be what `s` describes) on
 * random logits of the given spread: the value against the direct formula,
 * the gradient against central differences of the direct formula in double
 * (h = 1e-5 / scale: truncation ~h^2 |f'''| and rounding ~1e-16 / h are both
 * far below the 2e-5 allowed, which a wrong factor of any term exceeds). */
static void check_against_formula(mislas_loss *l, const spec *s, const int32_t *ta, const int32_t *tb,
        float lambda, size_t n, double spread)
{
    const size_t k = (size_t)s->k, len = n * k;
    float *z = malloc(len * sizeof *z), *g = malloc(len * sizeof *g);
    double *zd = malloc(len * sizeof *zd);
    for (size_t i = 0; i < len; i++) {
        z[i] = (float)(spread * (2.0 * test_uniform() - 1.0));
        zd[i] = z[i];
    }
    const int32_t *tb_ref = tb != NULL ? tb : ta;
    const double lam = tb != NULL ? lambda : 1.0;
    double value = library_loss(l, z, ta, tb, lambda, n, g);
    ck_assert_close(value, reference_loss(s, zd, ta, tb_ref, lam, n), 1e-6, 2e-6);
    const double h = 1e-5 / s->scale;
    for (size_t i = 0; i < len; i++) {
        double keep = zd[i];
        zd[i] = keep + h;
        double up = reference_loss(s, zd, ta, tb_ref, lam, n);
        zd[i] = keep - h;
        double down = reference_loss(s, zd, ta, tb_ref, lam, n);
        zd[i] = keep;
        double fd = (up - down) / (2 * h);
        ck_assert_msg(fabs(fd - g[i]) < 2e-5 + 1e-4 * fabs(fd), "element %zu: analytic %.8g, finite difference %.8g",
                i, (double)g[i], fd);
    }
    /* the library's own float loss differentiated numerically agrees too
     * (a coarser check: float rounding of the loss over 2h) */
    const float hf = (float)(1e-2 / s->scale);
    for (size_t i = 0; i < len; i += 3) {
        float keep = z[i];
        z[i] = keep + hf;
        double up = library_loss(l, z, ta, tb, lambda, n, NULL);
        z[i] = keep - hf;
        double down = library_loss(l, z, ta, tb, lambda, n, NULL);
        z[i] = keep;
        double fd = (up - down) / (2.0 * (double)hf);
        ck_assert_msg(fabs(fd - g[i]) < 2e-3 * s->scale, "element %zu: analytic %.8g, float finite difference %.8g",
                i, (double)g[i], fd);
    }
    free(z);
    free(g);
    free(zd);
}

enum { N = 4, K = 5 };
static const int32_t TA[N] = { 0, 4, 2, 4 }, TB[N] = { 3, 4, 1, 0 };
static const int64_t COUNTS[K] = { 500, 120, 40, 9, 2 };

/* a loss plain, under mixup, and at mixup's two end points */
static void check_all_ways(mislas_loss *l, const spec *s, double spread)
{
    check_against_formula(l, s, TA, NULL, 1.0f, N, spread);
    check_against_formula(l, s, TA, TB, 0.3f, N, spread);
    check_against_formula(l, s, TA, TB, 0.0f, N, spread);
    check_against_formula(l, s, TA, TB, 1.0f, N, spread);
}

/* ------------------------------------------------------------------ focal */

START_TEST(focal_matches_the_formula)
{
    const float gammas[] = { 0.0f, 0.5f, 1.0f, 2.0f, 5.0f };
    for (size_t i = 0; i < sizeof gammas / sizeof gammas[0]; i++) {
        mislas_loss *l = NULL;
        ck_assert_status(mislas_loss_new_focal(&l, K, gammas[i]), MISLAS_OK);
        spec s = plain_spec(K);
        s.gamma = gammas[i];
        check_all_ways(l, &s, 3.0);
        mislas_loss_free(l);
    }
}
END_TEST

START_TEST(focal_worked_by_hand)
{
    /* z = (0, log 3), y = 0: p_0 = 1/4, so FL = (3/4)^2 log 4 */
    const float z[2] = { 0.0f, (float)log(3.0) };
    const int32_t y = 0;
    mislas_loss *l = NULL;
    ck_assert_status(mislas_loss_new_focal(&l, 2, 2.0f), MISLAS_OK);
    float loss, g[2];
    ck_assert_status(mislas_loss_compute(l, z, &y, 1, &loss, g), MISLAS_OK);
    ck_assert_close(loss, 0.5625 * log(4.0), 1e-6, 1e-6);
    /* dFL/dz_0 = (p_0 - 1) ((1-q)^2 + 2 q log(1/q) (1-q)) with q = 1/4 */
    double factor = 0.5625 + 2 * 0.25 * log(4.0) * 0.75;
    ck_assert_close(g[0], -0.75 * factor, 1e-6, 1e-6);
    ck_assert_close(g[1], 0.75 * factor, 1e-6, 1e-6);
    mislas_loss_free(l);
}
END_TEST

START_TEST(focal_is_stable_at_certainty)
{
    /* row 0: p_0 rounds to 1 in float, yet 1 - p_0 = 2 e^-30 is kept;
     * row 1: a confident miss, loss about 30 */
    const float z[6] = { 30.0f, 0.0f, 0.0f, 0.0f, 0.0f, 30.0f };
    const double zd[6] = { 30, 0, 0, 0, 0, 30 };
    const int32_t y[2] = { 0, 0 };
    const float gammas[] = { 0.5f, 2.0f };
    for (size_t i = 0; i < 2; i++) {
        mislas_loss *l = NULL;
        ck_assert_status(mislas_loss_new_focal(&l, 3, gammas[i]), MISLAS_OK);
        float loss, g[6];
        ck_assert_status(mislas_loss_compute(l, z, y, 2, &loss, g), MISLAS_OK);
        spec s = plain_spec(3);
        s.gamma = gammas[i];
        ck_assert_close(loss, reference_loss(&s, zd, y, y, 1.0, 2), 0, 1e-5);
        for (int j = 0; j < 6; j++)
            ck_assert(isfinite(g[j]));
        double rest = 2 * exp(-30.0), q = 1 - rest;
        double f0 = pow(rest, gammas[i]) + gammas[i] * q * -log(q) * pow(rest, gammas[i] - 1.0);
        ck_assert_close(g[1], 0.5 * exp(-30.0) * f0, 0, 1e-4);
        mislas_loss_free(l);
    }
}
END_TEST

/* ------------------------------------------------------------------- LDAM */

START_TEST(ldam_margins_follow_counts)
{
    /* the rarest class (1 image) gets max_margin 0.5; 16 images 0.5/2, 81 images 0.5/3 */
    const int64_t counts[3] = { 16, 1, 81 };
    mislas_ldam_options o;
    mislas_ldam_options_init(&o);
    ck_assert_float_eq(o.max_margin, 0.5f);
    ck_assert_float_eq(o.scale, 30.0f);
    o.scale = 1.0f;
    mislas_loss *l = NULL;
    ck_assert_status(mislas_loss_new_ldam(&l, counts, 3, &o), MISLAS_OK);
    /* with s = 1 and z = 0 the target's logit is lowered by its margin d:
     * L = log(e^-d + 2) + d */
    const float z[3] = { 0, 0, 0 };
    const int32_t y[3] = { 0, 1, 2 };
    const double d[3] = { 0.25, 0.5, 0.5 / 3 };
    for (int c = 0; c < 3; c++) {
        float loss;
        ck_assert_status(mislas_loss_compute(l, z, y + c, 1, &loss, NULL), MISLAS_OK);
        ck_assert_close(loss, log(exp(-d[c]) + 2) + d[c], 1e-6, 1e-6);
    }
    mislas_loss_free(l);
}
END_TEST

static spec ldam_spec(double max_margin, double scale)
{
    spec s = plain_spec(K);
    s.scale = scale;
    for (int32_t c = 0; c < K; c++)
        s.margin[c] = max_margin * pow(2.0 / (double)COUNTS[c], 0.25);
    return s;
}

START_TEST(ldam_matches_the_formula)
{
    const float scales[] = { 1.0f, 30.0f };
    for (int i = 0; i < 2; i++) {
        mislas_ldam_options o;
        mislas_ldam_options_init(&o);
        o.scale = scales[i];
        mislas_loss *l = NULL;
        ck_assert_status(mislas_loss_new_ldam(&l, COUNTS, K, &o), MISLAS_OK);
        spec s = ldam_spec(0.5, scales[i]);
        check_all_ways(l, &s, 1.0);
        mislas_loss_free(l);
    }
}
END_TEST

START_TEST(ldam_drw_under_mixup)
{
    mislas_loss *l = NULL;
    ck_assert_status(mislas_loss_new_ldam(&l, COUNTS, K, NULL), MISLAS_OK);
    spec s = ldam_spec(0.5, 30.0);
    s.weighted_mean = 1;
    float w[K];
    for (int epoch = 0; epoch <= 2; epoch += 2) {
        ck_assert_status(mislas_loss_drw_weights(w, COUNTS, K, 0.9999, epoch, 1), MISLAS_OK);
        ck_assert_status(mislas_loss_set_class_weights(l, w, MISLAS_REDUCE_WEIGHTED_MEAN), MISLAS_OK);
        for (int c = 0; c < K; c++)
            s.weight[c] = w[c];
        check_all_ways(l, &s, 0.5);
    }
    mislas_loss_free(l);
}
END_TEST

/* ------------------------------------------------------- logit adjustment */

START_TEST(logit_adjusted_matches_the_formula)
{
    const float taus[] = { 0.0f, 0.5f, 1.0f, 2.0f };
    double total = 0;
    for (int c = 0; c < K; c++)
        total += (double)COUNTS[c];
    for (int i = 0; i < 4; i++) {
        mislas_loss *l = NULL;
        ck_assert_status(mislas_loss_new_logit_adjusted(&l, COUNTS, K, taus[i]), MISLAS_OK);
        spec s = plain_spec(K);
        for (int c = 0; c < K; c++)
            s.offset[c] = taus[i] * log((double)COUNTS[c] / total);
        check_all_ways(l, &s, 3.0);
        mislas_loss_free(l);
    }
}
END_TEST

START_TEST(balanced_softmax_is_cross_entropy_on_shifted_logits)
{
    /* tau = 1: softmax(z + log N) does not depend on the counts' scale, and
     * is cross-entropy on the shifted logits */
    int64_t scaled[K];
    for (int c = 0; c < K; c++)
        scaled[c] = 7 * COUNTS[c];
    mislas_loss *bs = NULL, *bs7 = NULL, *ce = NULL;
    ck_assert_status(mislas_loss_new_logit_adjusted(&bs, COUNTS, K, 1.0f), MISLAS_OK);
    ck_assert_status(mislas_loss_new_logit_adjusted(&bs7, scaled, K, 1.0f), MISLAS_OK);
    ck_assert_status(mislas_loss_new_cross_entropy(&ce, K), MISLAS_OK);
    float z[N * K], shifted[N * K], g1[N * K], g2[N * K], g3[N * K];
    for (int i = 0; i < N * K; i++) {
        z[i] = (float)(4 * test_uniform() - 2);
        shifted[i] = (float)(z[i] + log((double)COUNTS[i % K]));
    }
    double a = library_loss(bs, z, TA, TB, 0.6f, N, g1);
    double b = library_loss(bs7, z, TA, TB, 0.6f, N, g2);
    double c = library_loss(ce, shifted, TA, TB, 0.6f, N, g3);
    ck_assert_close(a, b, 1e-6, 1e-6);
    ck_assert_close(a, c, 1e-6, 1e-6);
    for (int i = 0; i < N * K; i++) {
        ck_assert_close(g1[i], g2[i], 1e-7, 1e-6);
        ck_assert_close(g1[i], g3[i], 1e-7, 1e-6);
    }
    mislas_loss_free(bs);
    mislas_loss_free(bs7);
    mislas_loss_free(ce);
}
END_TEST

/* ---------------------------------------------------------- class weights */

START_TEST(class_balanced_weights_worked_by_hand)
{
    /* counts 1 and 2, beta 1/2: raw 0.5/0.5 = 1 and 0.5/0.75 = 2/3, sum 5/3,
     * scaled to sum 2: 6/5 and 4/5 */
    const int64_t counts[2] = { 1, 2 };
    float w[2];
    ck_assert_status(mislas_loss_class_balanced_weights(w, counts, 2, 0.5), MISLAS_OK);
    ck_assert_close(w[0], 1.2, 1e-7, 0);
    ck_assert_close(w[1], 0.8, 1e-7, 0);
    ck_assert_status(mislas_loss_class_balanced_weights(w, counts, 2, 0.0), MISLAS_OK);
    ck_assert_float_eq(w[0], 1.0f);
    ck_assert_float_eq(w[1], 1.0f);
    /* beta -> 1 tends to inverse frequency, normalised: 4/3 and 2/3 */
    ck_assert_status(mislas_loss_class_balanced_weights(w, counts, 2, 1.0 - 1e-9), MISLAS_OK);
    ck_assert_close(w[0], 4.0 / 3.0, 1e-6, 0);
    ck_assert_close(w[1], 2.0 / 3.0, 1e-6, 0);
    /* CIFAR-10-LT's beta 0.9999 on large counts */
    const int64_t big[2] = { 5000, 50 };
    ck_assert_status(mislas_loss_class_balanced_weights(w, big, 2, 0.9999), MISLAS_OK);
    double r0 = 1e-4 / (1 - pow(0.9999, 5000)), r1 = 1e-4 / (1 - pow(0.9999, 50));
    ck_assert_close(w[0], 2 * r0 / (r0 + r1), 1e-7, 1e-6);
    ck_assert_close(w[1], 2 * r1 / (r0 + r1), 1e-7, 1e-6);
    /* DRW: ones before the start epoch, the weights from it on */
    float d[2];
    ck_assert_status(mislas_loss_drw_weights(d, big, 2, 0.9999, 159, 160), MISLAS_OK);
    ck_assert_float_eq(d[0], 1.0f);
    ck_assert_float_eq(d[1], 1.0f);
    ck_assert_status(mislas_loss_drw_weights(d, big, 2, 0.9999, 160, 160), MISLAS_OK);
    ck_assert_float_eq(d[0], w[0]);
    ck_assert_float_eq(d[1], w[1]);
}
END_TEST

START_TEST(weights_apply_to_every_loss)
{
    float w[K];
    ck_assert_status(mislas_loss_class_balanced_weights(w, COUNTS, K, 0.99), MISLAS_OK);
    for (int reduction = 0; reduction <= 1; reduction++) {
        mislas_loss *each[3] = { NULL, NULL, NULL };
        ck_assert_status(mislas_loss_new_cross_entropy(&each[0], K), MISLAS_OK);
        ck_assert_status(mislas_loss_new_label_aware_smoothing(&each[1], COUNTS, K, NULL), MISLAS_OK);
        ck_assert_status(mislas_loss_new_focal(&each[2], K, 1.5f), MISLAS_OK);
        float eps[K];
        ck_assert_status(mislas_loss_class_smoothing(each[1], eps), MISLAS_OK);
        for (int i = 0; i < 3; i++) {
            ck_assert_status(mislas_loss_set_class_weights(each[i], w, (mislas_reduction)reduction), MISLAS_OK);
            spec s = plain_spec(K);
            s.weighted_mean = reduction;
            s.gamma = i == 2 ? 1.5 : 0.0;
            for (int c = 0; c < K; c++) {
                s.weight[c] = w[c];
                s.eps[c] = i == 1 ? eps[c] : 0.0;
            }
            check_all_ways(each[i], &s, 3.0);
            mislas_loss_free(each[i]);
        }
    }
}
END_TEST

START_TEST(weighted_mean_worked_by_hand)
{
    /* two samples, each of loss log 2, of class 0 (w 3) and class 1 (w 1):
     * mean (3 log 2 + log 2) / 2 = 2 log 2, weighted mean log 2 */
    const float z[4] = { 0, 0, 0, 0 };
    const int32_t y[2] = { 0, 1 };
    const float w[2] = { 3, 1 };
    mislas_loss *l = NULL;
    float loss;
    ck_assert_status(mislas_loss_new_cross_entropy(&l, 2), MISLAS_OK);
    ck_assert_status(mislas_loss_set_class_weights(l, w, MISLAS_REDUCE_MEAN), MISLAS_OK);
    ck_assert_status(mislas_loss_compute(l, z, y, 2, &loss, NULL), MISLAS_OK);
    ck_assert_close(loss, 2 * log(2.0), 1e-7, 1e-7);
    ck_assert_status(mislas_loss_set_class_weights(l, w, MISLAS_REDUCE_WEIGHTED_MEAN), MISLAS_OK);
    ck_assert_status(mislas_loss_compute(l, z, y, 2, &loss, NULL), MISLAS_OK);
    ck_assert_close(loss, log(2.0), 1e-7, 1e-7);
    /* NULL weights: plain cross-entropy again, bit for bit */
    mislas_loss *ce = NULL;
    float plain, again;
    const float z2[4] = { 0.3f, -1.2f, 2.5f, 0.25f };
    ck_assert_status(mislas_loss_new_cross_entropy(&ce, 2), MISLAS_OK);
    ck_assert_status(mislas_loss_compute(ce, z2, y, 2, &plain, NULL), MISLAS_OK);
    ck_assert_status(mislas_loss_set_class_weights(l, NULL, MISLAS_REDUCE_MEAN), MISLAS_OK);
    ck_assert_status(mislas_loss_compute(l, z2, y, 2, &again, NULL), MISLAS_OK);
    ck_assert_float_eq(plain, again);
    mislas_loss_free(l);
    mislas_loss_free(ce);
}
END_TEST

/* ------------------------------------------------------ paths and threads */

START_TEST(general_path_is_thread_count_independent_and_in_place)
{
    enum { ROWS = 300, CLASSES = 97 };
    const size_t bytes = ROWS * CLASSES * sizeof(float);
    float *z = malloc(bytes), *g1 = malloc(bytes), *g2 = malloc(bytes);
    int32_t ya[ROWS], yb[ROWS];
    int64_t counts[CLASSES];
    for (int c = 0; c < CLASSES; c++)
        counts[c] = 1 + (int64_t)(1000 * exp(-c / 20.0));
    for (int i = 0; i < ROWS * CLASSES; i++)
        z[i] = (float)(6 * test_uniform() - 3);
    for (int i = 0; i < ROWS; i++) {
        ya[i] = (int32_t)(test_uniform() * CLASSES);
        yb[i] = (int32_t)(test_uniform() * CLASSES);
    }
    mislas_loss *l = NULL;
    ck_assert_status(mislas_loss_new_ldam(&l, counts, CLASSES, NULL), MISLAS_OK);
    float a, b, c;
    int32_t threads = mislas_num_threads();
    ck_assert_status(mislas_set_num_threads(1), MISLAS_OK);
    ck_assert_status(mislas_loss_compute_mixup(l, z, ya, yb, 0.7f, ROWS, &a, g1), MISLAS_OK);
    ck_assert_status(mislas_set_num_threads(3), MISLAS_OK);
    ck_assert_status(mislas_loss_compute_mixup(l, z, ya, yb, 0.7f, ROWS, &b, g2), MISLAS_OK);
    ck_assert_float_eq(a, b);
    ck_assert_mem_eq(g1, g2, bytes);
    /* no gradient: the scratch rows give the same loss */
    ck_assert_status(mislas_loss_compute_mixup(l, z, ya, yb, 0.7f, ROWS, &c, NULL), MISLAS_OK);
    ck_assert_float_eq(a, c);
    /* in place */
    memcpy(g2, z, bytes);
    ck_assert_status(mislas_loss_compute_mixup(l, g2, ya, yb, 0.7f, ROWS, &c, g2), MISLAS_OK);
    ck_assert_float_eq(a, c);
    ck_assert_mem_eq(g1, g2, bytes);
    ck_assert_status(mislas_set_num_threads(threads), MISLAS_OK);
    mislas_loss_free(l);
    free(z);
    free(g1);
    free(g2);
}
END_TEST

/* --------------------------------------------------------------- bad input */

START_TEST(bad_arguments_are_refused)
{
    mislas_loss *l = (mislas_loss *)&l;
    const int64_t zero[2] = { 5, 0 }, ok[2] = { 5, 1 };
    ck_assert_status(mislas_loss_new_focal(&l, 2, -1.0f), MISLAS_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_null(l);
    ck_assert_status(mislas_loss_new_focal(&l, 2, NAN), MISLAS_ERR_INVALID_ARGUMENT);
    ck_assert_status(mislas_loss_new_focal(&l, 0, 1.0f), MISLAS_ERR_INVALID_ARGUMENT);
    ck_assert_status(mislas_loss_new_ldam(&l, zero, 2, NULL), MISLAS_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_nonnull(strstr(mislas_last_error(), "class_counts[1] = 0"));
    ck_assert_status(mislas_loss_new_ldam(&l, NULL, 2, NULL), MISLAS_ERR_INVALID_ARGUMENT);
    mislas_ldam_options o;
    mislas_ldam_options_init(&o);
    o.scale = 0.0f;
    ck_assert_status(mislas_loss_new_ldam(&l, ok, 2, &o), MISLAS_ERR_INVALID_ARGUMENT);
    o.struct_size = 3;
    ck_assert_status(mislas_loss_new_ldam(&l, ok, 2, &o), MISLAS_ERR_INVALID_ARGUMENT);
    ck_assert_status(mislas_loss_new_logit_adjusted(&l, zero, 2, 1.0f), MISLAS_ERR_INVALID_ARGUMENT);
    ck_assert_status(mislas_loss_new_logit_adjusted(&l, ok, 2, -0.5f), MISLAS_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_null(l);
    float w[2];
    ck_assert_status(mislas_loss_class_balanced_weights(w, ok, 2, 1.0), MISLAS_ERR_INVALID_ARGUMENT);
    ck_assert_status(mislas_loss_class_balanced_weights(w, zero, 2, 0.9), MISLAS_ERR_INVALID_ARGUMENT);
    ck_assert_status(mislas_loss_drw_weights(w, ok, 2, 0.9, -1, 0), MISLAS_ERR_INVALID_ARGUMENT);

    ck_assert_status(mislas_loss_new_cross_entropy(&l, 2), MISLAS_OK);
    const float negative[2] = { -1, 1 }, none[2] = { 0, 0 }, nan_w[2] = { NAN, 1 };
    ck_assert_status(mislas_loss_set_class_weights(l, negative, MISLAS_REDUCE_MEAN), MISLAS_ERR_INVALID_ARGUMENT);
    ck_assert_status(mislas_loss_set_class_weights(l, none, MISLAS_REDUCE_MEAN), MISLAS_ERR_INVALID_ARGUMENT);
    ck_assert_status(mislas_loss_set_class_weights(l, nan_w, MISLAS_REDUCE_MEAN), MISLAS_ERR_INVALID_ARGUMENT);
    ck_assert_status(mislas_loss_set_class_weights(l, negative, (mislas_reduction)7), MISLAS_ERR_INVALID_ARGUMENT);
    ck_assert_status(mislas_loss_set_class_weights(NULL, NULL, MISLAS_REDUCE_MEAN), MISLAS_ERR_INVALID_ARGUMENT);
    /* a weighted mean over targets that all weigh 0 is undefined; nothing is written */
    const float w01[2] = { 0, 1 };
    ck_assert_status(mislas_loss_set_class_weights(l, w01, MISLAS_REDUCE_WEIGHTED_MEAN), MISLAS_OK);
    const float z[2] = { 1, 2 };
    const int32_t y = 0;
    float loss = -7.0f, g[2] = { -7.0f, -7.0f };
    ck_assert_status(mislas_loss_compute(l, z, &y, 1, &loss, g), MISLAS_ERR_INVALID_ARGUMENT);
    ck_assert(loss == -7.0f && g[0] == -7.0f && g[1] == -7.0f);
    mislas_loss_free(l);

    /* lambda = 0: targets_a do not count, so their zero weights are fine */
    ck_assert_status(mislas_loss_new_cross_entropy(&l, 2), MISLAS_OK);
    ck_assert_status(mislas_loss_set_class_weights(l, w01, MISLAS_REDUCE_WEIGHTED_MEAN), MISLAS_OK);
    const int32_t y1 = 1;
    ck_assert_status(mislas_loss_compute_mixup(l, z, &y, &y1, 0.0f, 1, &loss, g), MISLAS_OK);
    ck_assert_close(loss, log(1 + exp(-1.0)), 1e-6, 1e-6);
    mislas_loss_free(l);
    loss = -7.0f;
    g[0] = g[1] = -7.0f;

    /* one class and a margin that underflows its exponential: p_y is still 1 */
    const int64_t one[1] = { 4 };
    mislas_ldam_options big;
    mislas_ldam_options_init(&big);
    big.max_margin = 1000.0f;
    big.scale = 1e6f;
    ck_assert_status(mislas_loss_new_ldam(&l, one, 1, &big), MISLAS_OK);
    float lone = -1.0f, gone = -1.0f;
    ck_assert_status(mislas_loss_compute(l, z, &y, 1, &lone, &gone), MISLAS_OK);
    ck_assert(lone == 0.0f && gone == 0.0f);
    mislas_loss_free(l);

    /* LDAM's scale must not overflow the logits: an error, nothing written */
    ck_assert_status(mislas_loss_new_ldam(&l, ok, 2, NULL), MISLAS_OK);
    const float huge[2] = { 3e37f, 1.0f };
    ck_assert_status(mislas_loss_compute(l, huge, &y, 1, &loss, g), MISLAS_ERR_NUMERIC);
    ck_assert(loss == -7.0f && g[0] == -7.0f);
    const float nan_z[2] = { NAN, 1.0f };
    ck_assert_status(mislas_loss_compute(l, nan_z, &y, 1, &loss, g), MISLAS_ERR_NUMERIC);
    const int32_t bad_y = 2;
    ck_assert_status(mislas_loss_compute(l, z, &bad_y, 1, &loss, g), MISLAS_ERR_INVALID_ARGUMENT);
    ck_assert(loss == -7.0f && g[0] == -7.0f);
    mislas_loss_free(l);
}
END_TEST

/* ----------------------------------------------------------- out of memory */

static int make_each(void *ctx)
{
    (void)ctx;
    mislas_loss *a = NULL, *b = NULL, *c = NULL;
    int rc = mislas_loss_new_ldam(&a, COUNTS, K, NULL);
    if (rc == MISLAS_OK)
        rc = mislas_loss_new_logit_adjusted(&b, COUNTS, K, 1.0f);
    if (rc == MISLAS_OK)
        rc = mislas_loss_new_focal(&c, K, 2.0f);
    float w[K];
    if (rc == MISLAS_OK)
        rc = mislas_loss_class_balanced_weights(w, COUNTS, K, 0.999);
    if (rc == MISLAS_OK)
        rc = mislas_loss_set_class_weights(c, w, MISLAS_REDUCE_WEIGHTED_MEAN);
    float z[N * K] = { 0 }, loss = -1.0f;
    /* no gradient asked: the general path's scratch is allocated too */
    if (rc == MISLAS_OK)
        rc = mislas_loss_compute_mixup(a, z, TA, TB, 0.5f, N, &loss, NULL);
    if (rc == MISLAS_OK)
        rc = mislas_loss_compute(c, z, TA, N, &loss, NULL);
    ck_assert(rc != MISLAS_OK || loss > 0);
    mislas_loss_free(a);
    mislas_loss_free(b);
    mislas_loss_free(c);
    return rc;
}

START_TEST(allocation_failures_are_clean)
{
    ck_assert_int_gt(test_allocation_sweep(make_each, NULL), 6);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("lt_losses");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, focal_matches_the_formula);
    tcase_add_test(tc, focal_worked_by_hand);
    tcase_add_test(tc, focal_is_stable_at_certainty);
    tcase_add_test(tc, ldam_margins_follow_counts);
    tcase_add_test(tc, ldam_matches_the_formula);
    tcase_add_test(tc, ldam_drw_under_mixup);
    tcase_add_test(tc, logit_adjusted_matches_the_formula);
    tcase_add_test(tc, balanced_softmax_is_cross_entropy_on_shifted_logits);
    tcase_add_test(tc, class_balanced_weights_worked_by_hand);
    tcase_add_test(tc, weights_apply_to_every_loss);
    tcase_add_test(tc, weighted_mean_worked_by_hand);
    tcase_add_test(tc, general_path_is_thread_count_independent_and_in_place);
    tcase_add_test(tc, bad_arguments_are_refused);
    tcase_add_test(tc, allocation_failures_are_clean);
    suite_add_tcase(s, tc);
    return test_run_suite(s);
}
