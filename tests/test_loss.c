/* Losses: smoothing factors against docs/method.md's formulas, values against
 * cases worked by hand, gradients against central finite differences. */
#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const double PI = 3.14159265358979323846;

/* ---------------------------------------------------------------- LAS factors */

static const int64_t CIFAR10_IF100[10] = { 5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50 };

static double t_of(int64_t n) { return (double)(n - 50) / (5000.0 - 50.0); }

static void check_shape(mislas_las_shape shape, float power, double (*formula)(double t, double h, double tl, double p))
{
    mislas_las_options o;
    mislas_las_options_init(&o);
    o.shape = shape;
    o.power = power;
    o.smooth_head = 0.4f;
    o.smooth_tail = 0.1f;
    mislas_loss *l = NULL;
    float eps[10];
    ck_assert_status(mislas_loss_new_label_aware_smoothing(&l, CIFAR10_IF100, 10, &o), MISLAS_OK);
    ck_assert_status(mislas_loss_class_smoothing(l, eps), MISLAS_OK);
    for (int c = 0; c < 10; c++)
        ck_assert_close(eps[c], formula(t_of(CIFAR10_IF100[c]), 0.4f, 0.1f, power), 1e-7, 0);
    /* the endpoints are exactly head and tail, whatever the shape */
    ck_assert_close(eps[0], 0.4, 1e-7, 0);
    ck_assert_close(eps[9], 0.1, 1e-7, 0);
    mislas_loss_free(l);
}

static double concave(double t, double h, double tl, double p) { (void)p; return tl + (h - tl) * sin(PI * t / 2); }
static double linear(double t, double h, double tl, double p) { (void)p; return tl + (h - tl) * t; }
static double convex(double t, double h, double tl, double p) { (void)p; return h + (h - tl) * sin(1.5 * PI + PI * t / 2); }
static double power(double t, double h, double tl, double p) { return tl + (h - tl) * pow(t, p); }

START_TEST(las_factors_follow_the_formulas)
{
    check_shape(MISLAS_LAS_CONCAVE, 1.0f, concave);
    check_shape(MISLAS_LAS_LINEAR, 1.0f, linear);
    check_shape(MISLAS_LAS_CONVEX, 1.0f, convex);
    check_shape(MISLAS_LAS_POWER, 2.0f, power);
    check_shape(MISLAS_LAS_POWER, 0.5f, power);
}
END_TEST

START_TEST(las_factors_at_worked_points)
{
    /* counts 0, 50, 100: t = 0, 1/2, 1 */
    const int64_t counts[3] = { 100, 50, 0 };
    float eps[3];
    mislas_las_options o;
    mislas_las_options_init(&o);
    o.smooth_head = 0.3f;
    o.smooth_tail = 0.0f;
    struct { mislas_las_shape shape; float power; double middle; } cases[] = {
        { MISLAS_LAS_CONCAVE, 1, 0.3 * 0.70710678118654752 },       /* sin(pi/4) */
        { MISLAS_LAS_LINEAR, 1, 0.15 },
        { MISLAS_LAS_CONVEX, 1, 0.3 - 0.3 * 0.70710678118654752 },  /* sin(7pi/4) = -sqrt(2)/2 */
        { MISLAS_LAS_POWER, 2, 0.075 },
        { MISLAS_LAS_POWER, 3, 0.0375 },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        mislas_loss *l = NULL;
        o.shape = cases[i].shape;
        o.power = cases[i].power;
        ck_assert_status(mislas_loss_new_label_aware_smoothing(&l, counts, 3, &o), MISLAS_OK);
        ck_assert_status(mislas_loss_class_smoothing(l, eps), MISLAS_OK);
        ck_assert_close(eps[0], 0.3, 1e-7, 0);
        ck_assert_close(eps[1], cases[i].middle, 1e-7, 0);
        ck_assert_close(eps[2], 0.0, 1e-7, 0);
        mislas_loss_free(l);
    }
}
END_TEST

START_TEST(las_with_equal_counts_is_all_head)
{
    const int64_t counts[4] = { 7, 7, 7, 7 };
    for (int shape = 0; shape <= 3; shape++) {
        mislas_las_options o;
        mislas_las_options_init(&o);
        o.shape = (mislas_las_shape)shape;
        o.smooth_head = 0.25f;
        o.smooth_tail = 0.05f;
        mislas_loss *l = NULL;
        float eps[4];
        ck_assert_status(mislas_loss_new_label_aware_smoothing(&l, counts, 4, &o), MISLAS_OK);
        ck_assert_status(mislas_loss_class_smoothing(l, eps), MISLAS_OK);
        for (int c = 0; c < 4; c++)
            ck_assert_float_eq(eps[c], 0.25f);
        mislas_loss_free(l);
    }
}
END_TEST

/* ---------------------------------------------------------------- values by hand */

START_TEST(values_worked_by_hand)
{
    mislas_loss *ce = NULL, *ls = NULL;
    ck_assert_status(mislas_loss_new_cross_entropy(&ce, 3), MISLAS_OK);
    ck_assert_status(mislas_loss_new_label_smoothing(&ls, 3, 0.3f), MISLAS_OK);
    const float z[3] = { 1, 2, 3 };
    const int32_t y2 = 2, y0 = 0;
    float loss;
    /* log-sum-exp(1,2,3) = 3 + log(1 + e^-1 + e^-2) = 3.40760596444438 */
    const double lse = 3.40760596444438;
    ck_assert_status(mislas_loss_compute(ce, z, &y2, 1, &loss, NULL), MISLAS_OK);
    ck_assert_close(loss, lse - 3, 1e-6, 0);
    ck_assert_status(mislas_loss_compute(ce, z, &y0, 1, &loss, NULL), MISLAS_OK);
    ck_assert_close(loss, lse - 1, 1e-6, 0);
    /* LS: 0.7 (lse - 3) + 0.3 (lse - mean(1,2,3)) = lse - 2.7 */
    ck_assert_status(mislas_loss_compute(ls, z, &y2, 1, &loss, NULL), MISLAS_OK);
    ck_assert_close(loss, lse - 2.7, 1e-6, 0);

    /* two equal logits: log 2 for either target; batch mean of two rows */
    const float z2[4] = { 0, 0, 5, 5 };
    const int32_t t2[2] = { 0, 1 };
    mislas_loss *ce2 = NULL;
    ck_assert_status(mislas_loss_new_cross_entropy(&ce2, 2), MISLAS_OK);
    float grad[4];
    ck_assert_status(mislas_loss_compute(ce2, z2, t2, 2, &loss, grad), MISLAS_OK);
    ck_assert_close(loss, log(2.0), 1e-7, 0);
    /* d/dz = (p - onehot) / n = (0.5 - 1) / 2 and 0.5 / 2 */
    ck_assert_close(grad[0], -0.25, 1e-7, 0);
    ck_assert_close(grad[1], 0.25, 1e-7, 0);
    ck_assert_close(grad[2], 0.25, 1e-7, 0);
    ck_assert_close(grad[3], -0.25, 1e-7, 0);
    mislas_loss_free(ce);
    mislas_loss_free(ls);
    mislas_loss_free(ce2);
}
END_TEST

START_TEST(huge_logits_are_stable)
{
    mislas_loss *ce = NULL;
    ck_assert_status(mislas_loss_new_cross_entropy(&ce, 3), MISLAS_OK);
    float loss, grad[3];
    const float z[3] = { 1000.0f, 0.0f, -1000.0f };
    int32_t y = 0;
    ck_assert_status(mislas_loss_compute(ce, z, &y, 1, &loss, grad), MISLAS_OK);
    ck_assert_close(loss, 0.0, 1e-6, 0);
    y = 2;
    ck_assert_status(mislas_loss_compute(ce, z, &y, 1, &loss, grad), MISLAS_OK);
    ck_assert_close(loss, 2000.0, 0, 1e-6);
    ck_assert_close(grad[0], 1.0, 1e-6, 0);
    ck_assert_close(grad[2], -1.0, 1e-6, 0);

    /* 1e30 and the float range's ends */
    const float w[2] = { 1e30f, -1e30f };
    y = 1;
    mislas_loss_free(ce);
    mislas_loss *ce2 = NULL;
    ck_assert_status(mislas_loss_new_cross_entropy(&ce2, 2), MISLAS_OK);
    ck_assert_status(mislas_loss_compute(ce2, w, &y, 1, &loss, grad), MISLAS_OK);
    ck_assert_close(loss, 2e30, 0, 1e-6);
    ck_assert_close(grad[0], 1.0, 1e-6, 0);
    ck_assert_close(grad[1], -1.0, 1e-6, 0);

    /* logits near the float range's ends, whose differences overflow float:
     * LS 0.1 on (3e38, -3e38), target 0: 0.1 * (0 - mean(0, -6e38)) = 3e37;
     * on (1e38, -1e38 x 3), K = 4: 0.1 * 1.5e38 = 1.5e37 */
    mislas_loss *ls2 = NULL, *ls4 = NULL;
    ck_assert_status(mislas_loss_new_label_smoothing(&ls2, 2, 0.1f), MISLAS_OK);
    ck_assert_status(mislas_loss_new_label_smoothing(&ls4, 4, 0.1f), MISLAS_OK);
    const float edge2[2] = { 3e38f, -3e38f }, edge4[4] = { 1e38f, -1e38f, -1e38f, -1e38f };
    y = 0;
    ck_assert_status(mislas_loss_compute(ls2, edge2, &y, 1, &loss, grad), MISLAS_OK);
    ck_assert_close(loss, 0.1 * 0.5 * (3e38 + 3e38), 0, 1e-6);
    ck_assert_close(grad[0], 1.0 - 0.9 - 0.05, 1e-7, 0);        /* p - eps/K - (1 - eps) */
    float grad4[4];
    ck_assert_status(mislas_loss_compute(ls4, edge4, &y, 1, &loss, grad4), MISLAS_OK);
    ck_assert_close(loss, 0.1 * 0.25 * 3 * 2e38, 0, 1e-6);
    mislas_loss_free(ls2);
    mislas_loss_free(ls4);

    /* shift invariance at magnitude 1e4: (1,2,3) + 10000 is exact in float */
    const float s[3] = { 10001.0f, 10002.0f, 10003.0f };
    mislas_loss *ls = NULL;
    ck_assert_status(mislas_loss_new_label_smoothing(&ls, 3, 0.3f), MISLAS_OK);
    y = 2;
    ck_assert_status(mislas_loss_compute(ls, s, &y, 1, &loss, NULL), MISLAS_OK);
    ck_assert_close(loss, 3.40760596444438 - 2.7, 1e-6, 0);
    mislas_loss_free(ce2);
    mislas_loss_free(ls);
}
END_TEST

/* ---------------------------------------------------------------- gradients */

typedef struct fd_case {
    mislas_loss *loss;
    const int32_t *ta, *tb;
    float lambda;
    int mixup;
} fd_case;

static float eval_loss(const fd_case *fc, const float *z, size_t n, float *grad)
{
    float loss = NAN;
    int rc = fc->mixup ? mislas_loss_compute_mixup(fc->loss, z, fc->ta, fc->tb, fc->lambda, n, &loss, grad)
                       : mislas_loss_compute(fc->loss, z, fc->ta, n, &loss, grad);
    ck_assert_msg(rc == MISLAS_OK, "%s", mislas_last_error());
    return loss;
}

/* Central differences of the float loss. With h = 1e-2 on logits of order 1
 * the truncation error is h^2/6 |f'''| < 2e-5 (softmax derivatives are
 * bounded by 1), and float rounding of a loss near 1 (6e-8) divided by 2h
 * adds < 1e-5: 1e-4 bounds the difference with room to spare, while a wrong
 * term (a missing 1/n, eps/K or lambda) is off by more than 1e-2. */
static void check_gradient(const fd_case *fc, size_t n, size_t k)
{
    float *z = malloc(n * k * sizeof *z), *g = malloc(n * k * sizeof *g);
    for (size_t i = 0; i < n * k; i++)
        z[i] = (float)(4.0 * test_uniform() - 2.0);
    eval_loss(fc, z, n, g);
    const float h = 1e-2f;
    for (size_t i = 0; i < n * k; i++) {
        float keep = z[i];
        z[i] = keep + h;
        double up = eval_loss(fc, z, n, NULL);
        z[i] = keep - h;
        double down = eval_loss(fc, z, n, NULL);
        z[i] = keep;
        double fd = (up - down) / (2.0 * (double)h);
        ck_assert_msg(fabs(fd - g[i]) < 1e-4, "element %zu: analytic %.7g, finite difference %.7g", i, (double)g[i], fd);
    }
    /* each row's gradient sums to zero: p sums to 1, the targets' weights too */
    for (size_t r = 0; r < n; r++) {
        double sum = 0;
        for (size_t j = 0; j < k; j++)
            sum += g[r * k + j];
        ck_assert_close(sum, 0.0, 1e-6, 0);
    }
    free(z);
    free(g);
}

START_TEST(gradients_match_finite_differences)
{
    enum { N = 3, K = 5 };
    const int32_t ta[N] = { 0, 4, 2 }, tb[N] = { 3, 4, 1 };
    const int64_t counts[K] = { 500, 120, 40, 9, 2 };
    mislas_loss *losses[7];
    ck_assert_status(mislas_loss_new_cross_entropy(&losses[0], K), MISLAS_OK);
    ck_assert_status(mislas_loss_new_label_smoothing(&losses[1], K, 0.2f), MISLAS_OK);
    for (int shape = 0; shape <= 3; shape++) {
        mislas_las_options o;
        mislas_las_options_init(&o);
        o.shape = (mislas_las_shape)shape;
        o.power = 2.0f;
        ck_assert_status(mislas_loss_new_label_aware_smoothing(&losses[2 + shape], counts, K, &o), MISLAS_OK);
    }
    ck_assert_status(mislas_loss_new_label_smoothing(&losses[6], K, 1.0f), MISLAS_OK);
    for (int i = 0; i < 7; i++) {
        fd_case plain = { losses[i], ta, ta, 1.0f, 0 };
        check_gradient(&plain, N, K);
        fd_case mixed = { losses[i], ta, tb, 0.3f, 1 };
        check_gradient(&mixed, N, K);
        fd_case ends = { losses[i], ta, tb, 0.0f, 1 };
        check_gradient(&ends, N, K);
        mislas_loss_free(losses[i]);
    }
}
END_TEST

START_TEST(gradients_of_a_large_batch)
{
    /* wide rows exercise the vector kernels' full lanes and tails */
    enum { N = 2, K = 37 };
    const int32_t ta[N] = { 36, 5 };
    mislas_loss *ls = NULL;
    ck_assert_status(mislas_loss_new_label_smoothing(&ls, K, 0.1f), MISLAS_OK);
    fd_case fc = { ls, ta, ta, 1.0f, 0 };
    check_gradient(&fc, N, K);
    mislas_loss_free(ls);
}
END_TEST

/* ---------------------------------------------------------------- special cases */

static void random_batch(float *z, int32_t *y, size_t n, size_t k, double scale)
{
    for (size_t i = 0; i < n * k; i++)
        z[i] = (float)(scale * (2.0 * test_uniform() - 1.0));
    for (size_t i = 0; i < n; i++)
        y[i] = (int32_t)(test_uniform() * (double)k);
}

START_TEST(ce_and_ls_are_las_special_cases)
{
    enum { N = 64, K = 20 };
    static float z[N * K], g1[N * K], g2[N * K];
    int32_t y[N];
    int64_t counts[K];
    random_batch(z, y, N, K, 6.0);
    for (int c = 0; c < K; c++)
        counts[c] = 1000 / (c + 1);
    mislas_las_options o;
    mislas_las_options_init(&o);
    float l1, l2;
    const float eps[3] = { 0.0f, 0.1f, 0.35f };
    for (int i = 0; i < 3; i++) {
        mislas_loss *uniform = NULL, *las = NULL;
        if (eps[i] == 0.0f)
            ck_assert_status(mislas_loss_new_cross_entropy(&uniform, K), MISLAS_OK);
        else
            ck_assert_status(mislas_loss_new_label_smoothing(&uniform, K, eps[i]), MISLAS_OK);
        o.smooth_head = o.smooth_tail = eps[i];
        ck_assert_status(mislas_loss_new_label_aware_smoothing(&las, counts, K, &o), MISLAS_OK);
        ck_assert_status(mislas_loss_compute(uniform, z, y, N, &l1, g1), MISLAS_OK);
        ck_assert_status(mislas_loss_compute(las, z, y, N, &l2, g2), MISLAS_OK);
        ck_assert_float_eq(l1, l2);
        ck_assert_int_eq(memcmp(g1, g2, sizeof g1), 0);
        mislas_loss_free(uniform);
        mislas_loss_free(las);
    }
}
END_TEST

/* LS against its textbook form: cross-entropy with the target distribution
 * (1 - eps) onehot + eps / K, computed here in double. */
START_TEST(ls_equals_cross_entropy_with_soft_targets)
{
    enum { N = 16, K = 7 };
    float z[N * K];
    int32_t y[N];
    random_batch(z, y, N, K, 8.0);
    mislas_loss *ls = NULL;
    ck_assert_status(mislas_loss_new_label_smoothing(&ls, K, 0.2f), MISLAS_OK);
    float loss;
    ck_assert_status(mislas_loss_compute(ls, z, y, N, &loss, NULL), MISLAS_OK);
    double expected = 0;
    for (int i = 0; i < N; i++) {
        double m = -INFINITY, s = 0;
        for (int j = 0; j < K; j++)
            m = fmax(m, z[i * K + j]);
        for (int j = 0; j < K; j++)
            s += exp(z[i * K + j] - m);
        for (int j = 0; j < K; j++) {
            double q = (j == y[i] ? 0.8 : 0.0) + 0.2 / K;
            expected += -q * (z[i * K + j] - m - log(s));
        }
    }
    ck_assert_close(loss, expected / N, 1e-5, 1e-6);
    mislas_loss_free(ls);
}
END_TEST

START_TEST(mixup_combines_two_losses)
{
    enum { N = 32, K = 9 };
    static float z[N * K], ga[N * K], gb[N * K], gm[N * K];
    int32_t ya[N], yb[N];
    random_batch(z, ya, N, K, 5.0);
    for (int i = 0; i < N; i++)
        yb[i] = ya[(i * 7 + 3) % N];     /* a permutation of the batch's labels */
    const int64_t counts[K] = { 900, 500, 300, 160, 80, 40, 20, 10, 5 };
    mislas_loss *las = NULL;
    ck_assert_status(mislas_loss_new_label_aware_smoothing(&las, counts, K, NULL), MISLAS_OK);
    float la, lb, lm;
    ck_assert_status(mislas_loss_compute(las, z, ya, N, &la, ga), MISLAS_OK);
    ck_assert_status(mislas_loss_compute(las, z, yb, N, &lb, gb), MISLAS_OK);
    const float lambdas[4] = { 0.0f, 0.25f, 0.8f, 1.0f };
    for (int t = 0; t < 4; t++) {
        double lam = lambdas[t];
        ck_assert_status(mislas_loss_compute_mixup(las, z, ya, yb, lambdas[t], N, &lm, gm), MISLAS_OK);
        ck_assert_close(lm, lam * la + (1 - lam) * lb, 1e-6, 1e-6);
        for (int i = 0; i < N * K; i++)
            ck_assert_close(gm[i], lam * ga[i] + (1 - lam) * gb[i], 1e-8, 1e-5);
    }
    /* lambda = 1 is the plain loss, bit for bit */
    ck_assert_status(mislas_loss_compute_mixup(las, z, ya, yb, 1.0f, N, &lm, gm), MISLAS_OK);
    ck_assert_float_eq(lm, la);
    ck_assert_int_eq(memcmp(gm, ga, sizeof gm), 0);
    mislas_loss_free(las);
}
END_TEST

START_TEST(gradient_in_place)
{
    enum { N = 40, K = 37 };
    static float z[N * K], copy[N * K], g[N * K];
    int32_t ya[N], yb[N];
    random_batch(z, ya, N, K, 7.0);
    for (int i = 0; i < N; i++)
        yb[i] = ya[(i + 5) % N];
    mislas_loss *ls = NULL;
    ck_assert_status(mislas_loss_new_label_smoothing(&ls, K, 0.2f), MISLAS_OK);
    float separate, in_place;
    ck_assert_status(mislas_loss_compute_mixup(ls, z, ya, yb, 0.6f, N, &separate, g), MISLAS_OK);
    memcpy(copy, z, sizeof z);
    ck_assert_status(mislas_loss_compute_mixup(ls, copy, ya, yb, 0.6f, N, &in_place, copy), MISLAS_OK);
    ck_assert_float_eq(separate, in_place);
    ck_assert_int_eq(memcmp(g, copy, sizeof g), 0);
    mislas_loss_free(ls);
}
END_TEST

START_TEST(loss_out_is_optional)
{
    float z[4] = { 1, 2, 3, 4 }, g[4];
    int32_t y = 1;
    mislas_loss *ce = NULL;
    ck_assert_status(mislas_loss_new_cross_entropy(&ce, 4), MISLAS_OK);
    ck_assert_status(mislas_loss_compute(ce, z, &y, 1, NULL, g), MISLAS_OK);
    ck_assert_close(g[1], exp(2.0) / (exp(1.0) + exp(2.0) + exp(3.0) + exp(4.0)) - 1.0, 1e-6, 0);
    ck_assert_int_eq(mislas_loss_num_classes(ce), 4);
    mislas_loss_free(ce);
}
END_TEST

/* ---------------------------------------------------------------- bad input */

START_TEST(bad_inputs_are_refused_and_touch_nothing)
{
    enum { K = 4 };
    float z[2 * K] = { 0.5f, 1, 2, 3, 4, 5, 6, 7 };
    int32_t y[2] = { 1, 2 }, yb[2] = { 0, 3 };
    float grad[2 * K], loss = 42.0f;
    for (int i = 0; i < 2 * K; i++)
        grad[i] = -9.0f;
    mislas_loss *l = NULL;
    ck_assert_status(mislas_loss_new_cross_entropy(&l, K), MISLAS_OK);

    z[6] = NAN;
    ck_assert_status(mislas_loss_compute(l, z, y, 2, &loss, grad), MISLAS_ERR_NUMERIC);
    ck_assert_ptr_nonnull(strstr(mislas_last_error(), "logits[1][2]"));
    z[6] = INFINITY;
    ck_assert_status(mislas_loss_compute(l, z, y, 2, &loss, grad), MISLAS_ERR_NUMERIC);
    z[6] = -INFINITY;
    ck_assert_status(mislas_loss_compute_mixup(l, z, y, yb, 0.5f, 2, &loss, grad), MISLAS_ERR_NUMERIC);
    z[6] = 6;

    y[1] = K;
    ck_assert_status(mislas_loss_compute(l, z, y, 2, &loss, grad), MISLAS_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_nonnull(strstr(mislas_last_error(), "targets[1] = 4"));
    y[1] = -1;
    ck_assert_status(mislas_loss_compute(l, z, y, 2, &loss, grad), MISLAS_ERR_INVALID_ARGUMENT);
    y[1] = 2;
    yb[0] = 99;
    ck_assert_status(mislas_loss_compute_mixup(l, z, y, yb, 0.5f, 2, &loss, grad), MISLAS_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_nonnull(strstr(mislas_last_error(), "targets_b[0]"));
    yb[0] = 0;
    ck_assert_status(mislas_loss_compute_mixup(l, z, y, yb, NAN, 2, &loss, grad), MISLAS_ERR_INVALID_ARGUMENT);
    ck_assert_status(mislas_loss_compute_mixup(l, z, y, yb, 1.5f, 2, &loss, grad), MISLAS_ERR_INVALID_ARGUMENT);
    ck_assert_status(mislas_loss_compute_mixup(l, z, y, yb, -0.1f, 2, &loss, grad), MISLAS_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_nonnull(strstr(mislas_last_error(), "lambda"));

    ck_assert_status(mislas_loss_compute(l, z, y, 0, &loss, grad), MISLAS_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_nonnull(strstr(mislas_last_error(), "n = 0"));
    ck_assert_status(mislas_loss_compute(NULL, z, y, 2, &loss, grad), MISLAS_ERR_INVALID_ARGUMENT);
    ck_assert_status(mislas_loss_compute(l, NULL, y, 2, &loss, grad), MISLAS_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_nonnull(strstr(mislas_last_error(), "logits"));
    ck_assert_status(mislas_loss_compute(l, z, NULL, 2, &loss, grad), MISLAS_ERR_INVALID_ARGUMENT);
    ck_assert_status(mislas_loss_compute_mixup(l, z, y, NULL, 0.5f, 2, &loss, grad), MISLAS_ERR_INVALID_ARGUMENT);
    ck_assert_status(mislas_loss_compute(l, z, y, SIZE_MAX / 2, &loss, grad), MISLAS_ERR_INVALID_ARGUMENT);

    /* nothing was written by any failing call */
    ck_assert_float_eq(loss, 42.0f);
    for (int i = 0; i < 2 * K; i++)
        ck_assert_float_eq(grad[i], -9.0f);
    mislas_loss_free(l);
}
END_TEST

START_TEST(bad_constructor_arguments)
{
    mislas_loss *l = (mislas_loss *)1;
    ck_assert_status(mislas_loss_new_cross_entropy(NULL, 3), MISLAS_ERR_INVALID_ARGUMENT);
    ck_assert_status(mislas_loss_new_cross_entropy(&l, 0), MISLAS_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_null(l);
    ck_assert_ptr_nonnull(strstr(mislas_last_error(), "mislas_loss_new_cross_entropy: num_classes"));
    ck_assert_status(mislas_loss_new_label_smoothing(&l, 3, -0.1f), MISLAS_ERR_INVALID_ARGUMENT);
    ck_assert_status(mislas_loss_new_label_smoothing(&l, 3, 1.01f), MISLAS_ERR_INVALID_ARGUMENT);
    ck_assert_status(mislas_loss_new_label_smoothing(&l, 3, NAN), MISLAS_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_nonnull(strstr(mislas_last_error(), "epsilon"));

    int64_t counts[3] = { 10, 5, 1 };
    mislas_las_options o;
    mislas_las_options_init(&o);
    ck_assert_status(mislas_loss_new_label_aware_smoothing(&l, NULL, 3, &o), MISLAS_ERR_INVALID_ARGUMENT);
    ck_assert_status(mislas_loss_new_label_aware_smoothing(&l, counts, 0, &o), MISLAS_ERR_INVALID_ARGUMENT);
    o.smooth_head = 2.0f;
    ck_assert_status(mislas_loss_new_label_aware_smoothing(&l, counts, 3, &o), MISLAS_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_nonnull(strstr(mislas_last_error(), "smooth_head"));
    mislas_las_options_init(&o);
    o.smooth_tail = NAN;
    ck_assert_status(mislas_loss_new_label_aware_smoothing(&l, counts, 3, &o), MISLAS_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_nonnull(strstr(mislas_last_error(), "smooth_tail"));
    mislas_las_options_init(&o);
    o.shape = (mislas_las_shape)7;
    ck_assert_status(mislas_loss_new_label_aware_smoothing(&l, counts, 3, &o), MISLAS_ERR_INVALID_ARGUMENT);
    o.shape = MISLAS_LAS_POWER;
    o.power = 0.0f;
    ck_assert_status(mislas_loss_new_label_aware_smoothing(&l, counts, 3, &o), MISLAS_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_nonnull(strstr(mislas_last_error(), "power"));
    o.power = INFINITY;
    ck_assert_status(mislas_loss_new_label_aware_smoothing(&l, counts, 3, &o), MISLAS_ERR_INVALID_ARGUMENT);
    counts[2] = -1;
    ck_assert_status(mislas_loss_new_label_aware_smoothing(&l, counts, 3, NULL), MISLAS_ERR_INVALID_ARGUMENT);
    counts[0] = counts[1] = counts[2] = 0;
    ck_assert_status(mislas_loss_new_label_aware_smoothing(&l, counts, 3, NULL), MISLAS_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_null(l);

    float eps[3];
    ck_assert_status(mislas_loss_class_smoothing(NULL, eps), MISLAS_ERR_INVALID_ARGUMENT);
}
END_TEST

/* ---------------------------------------------------------------- out of memory */

static int make_las(void *ctx)
{
    (void)ctx;
    const int64_t counts[5] = { 50, 20, 10, 5, 1 };
    mislas_loss *l = NULL;
    int rc = mislas_loss_new_label_aware_smoothing(&l, counts, 5, NULL);
    ck_assert(rc == MISLAS_OK ? l != NULL : l == NULL);
    mislas_loss_free(l);
    return rc;
}

static int make_ce(void *ctx)
{
    (void)ctx;
    mislas_loss *l = NULL;
    int rc = mislas_loss_new_cross_entropy(&l, 100);
    mislas_loss_free(l);
    return rc;
}

/* compute grows its scratch on the first batch: that allocation can fail too */
static int compute_fresh(void *ctx)
{
    (void)ctx;
    mislas_loss *l = NULL;
    int rc = mislas_loss_new_label_smoothing(&l, 3, 0.1f);
    if (rc != MISLAS_OK)
        return rc;
    const float z[6] = { 1, 2, 3, 4, 5, 6 };
    const int32_t y[2] = { 0, 2 };
    float loss = -1.0f;
    rc = mislas_loss_compute(l, z, y, 2, &loss, NULL);
    ck_assert(rc == MISLAS_OK ? loss > 0 : loss == -1.0f);
    mislas_loss_free(l);
    return rc;
}

START_TEST(allocation_failures_are_clean)
{
    ck_assert_int_gt(test_allocation_sweep(make_las, NULL), 0);
    ck_assert_int_gt(test_allocation_sweep(make_ce, NULL), 0);
    ck_assert_int_gt(test_allocation_sweep(compute_fresh, NULL), 2);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("loss");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, las_factors_follow_the_formulas);
    tcase_add_test(tc, las_factors_at_worked_points);
    tcase_add_test(tc, las_with_equal_counts_is_all_head);
    tcase_add_test(tc, values_worked_by_hand);
    tcase_add_test(tc, huge_logits_are_stable);
    tcase_add_test(tc, gradients_match_finite_differences);
    tcase_add_test(tc, gradients_of_a_large_batch);
    tcase_add_test(tc, ce_and_ls_are_las_special_cases);
    tcase_add_test(tc, ls_equals_cross_entropy_with_soft_targets);
    tcase_add_test(tc, mixup_combines_two_losses);
    tcase_add_test(tc, gradient_in_place);
    tcase_add_test(tc, loss_out_is_optional);
    tcase_add_test(tc, bad_inputs_are_refused_and_touch_nothing);
    tcase_add_test(tc, bad_constructor_arguments);
    tcase_add_test(tc, allocation_failures_are_clean);
    suite_add_tcase(s, tc);
    return test_run_suite(s);
}
