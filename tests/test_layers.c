/* The network layers (lib/nn/nn.h) against independent derivations: each
 * forward against a naive double-precision loop written here, each backward
 * against the exact gradient of L = sum(R * y) for a random R (derived by
 * hand and computed in double) and against central finite differences of
 * the library's own forward. Every output buffer starts as NaN (backward
 * functions write, never add), every buffer ends in a guard that must stay
 * untouched, and the multi-threaded layers must give the same bits for
 * every thread count. This suite links the static archive to reach the
 * internal layers.
 *
 * Tolerances are in units of U = 2^-24, the unit roundoff of float. A float
 * dot product or sum of K terms, in any order and with or without FMA, is
 * within gamma_K = K U / (1 - K U) of the exact value relative to the sum
 * of the terms' magnitudes (Higham, Accuracy and Stability of Numerical
 * Algorithms, 2nd ed., eq. 3.5); we use (K + 2) U, the slack covering the
 * denominator and a final rounding. These are worst-case bounds, so they
 * never fail by bad luck, yet an indexing error is off by whole terms
 * (~0.1 - 1) and fails by orders of magnitude. Batch norm's statistics are
 * the exception: there the bounds are accuracy requirements scaled by the
 * data's condition number (see bn_forward_train_matches_double), with the
 * margins measured on this library noted. */
#include "nn/nn.h"
#include "layercheck.h"
#include "testutil.h"

#include <float.h>
#include <math.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>


/* Images per backward slot, as a ResNet's quantum is (16 for CIFAR's). */
enum { BN_GROUP = 16 };

/* ---------------------------------------------- batch norm as one call each
 * The model calls batch norm in pieces (its moments per image); these put
 * the pieces together the same way, for checking the layer whole. */
static void bn_forward_train(const mislasi_bn_shape *s, const float *x, const float *gamma, const float *beta,
        float *running_mean, float *running_var, float *mean, float *invstd, float *y, bool relu)
{
    double *moments = alloc_doubles(s->n * s->c * 2);
    for (size_t i = 0; i < s->n; i++)
        mislasi_bn_image_moments(s, x + i * s->c * s->hw, moments + i * 2 * s->c);
    mislasi_bn_forward_train_moments(s, x, moments, s->n, gamma, beta, running_mean, running_var, mean, invstd, y,
            relu, NULL);
    free(moments);
}

/* The backward whole: its sums, then every image's dx (as the model runs
 * them, the second inside the convolution's backward). */
static void bn_backward(const mislasi_bn_shape *s, const float *x, const float *y, const float *dy,
        const float *gamma, const float *mean, const float *invstd, bool batch_stats, float *dx,
        float *dgamma, float *dbeta)
{
    float *coef = alloc_floats(3 * s->c);
    size_t groups = mislasi_bn_groups(s->n, BN_GROUP);
    double *slots = alloc_doubles(groups * 2 * s->c);
    mislasi_bn_backward_slots(s, BN_GROUP, x, y, dy, mean, slots);
    mislasi_bn_backward_finish(s->c, (double)(s->n * s->hw), groups, slots, gamma, invstd, batch_stats, coef, dgamma,
            dbeta);
    free(slots);
    mislasi_bn_shape image = {.n = 1, .c = s->c, .hw = s->hw};
    size_t size = s->c * s->hw;
    if (dx != NULL)
        for (size_t i = 0; i < s->n; i++)
            mislasi_bn_backward_image(&image, x + i * size, y == NULL ? NULL : y + i * size, dy + i * size, mean,
                    coef, dx + i * size);
    free(coef);
}

static void bn_forward_eval(const mislasi_bn_shape *s, const float *x, const float *gamma, const float *beta,
        const float *running_mean, const float *running_var, float *y, bool relu)
{
    float *scale = alloc_floats(2 * s->c);
    mislasi_bn_eval_affine(s->c, gamma, beta, running_mean, running_var, scale, scale + s->c);
    for (size_t i = 0; i < s->n; i++)
        mislasi_bn_affine_image(s, x + i * s->c * s->hw, scale, scale + s->c, y + i * s->c * s->hw, relu, NULL);
    free(scale);
}

/* ---------------------------------------------------------------- batch norm */

static const double BN_EPS = 1e-5;

/* The channel kinds of the batch-norm tests: centred, a large mean next to a
 * small spread (1000 + noise of standard deviation 0.1: float's spacing at
 * 1000 is 6e-5, so this checks the variance does not come from E[x^2] -
 * E[x]^2, which loses everything here), an offset, a constant (variance 0),
 * and a moderate offset. */
enum { BN_C = 5 };
static const float BN_GAMMA[BN_C] = { 1.5f, 0.7f, -0.8f, 2.0f, 1.1f };
static const float BN_BETA[BN_C] = { 0.2f, -1.0f, 0.5f, 3.0f, -0.3f };
static const float BN_RMEAN[BN_C] = { 0.1f, 900.0f, -2.0f, 0.0f, 1.0f };
static const float BN_RVAR[BN_C] = { 1.0f, 0.5f, 2.0f, 1.0f, 3.0f };

static float bn_value(size_t c)
{
    switch (c % BN_C) {
    case 0: return (float)(1.7 * (2 * test_uniform() - 1));
    case 1: return (float)(1000.0 + 0.1 * sqrt(12.0) * (test_uniform() - 0.5));
    case 2: return (float)(3.0 + 2.0 * test_uniform());
    case 3: return 2.5f;
    default: return (float)(-50.0 + 5.0 * test_uniform());
    }
}

/* NHWC: image i, pixel p, channel c */
#define BN_AT(s_, i_, c_, p_) (((i_) * (s_)->hw + (p_)) * (s_)->c + (c_))

static float *bn_input(const mislasi_bn_shape *s)
{
    float *x = alloc_floats(s->n * s->c * s->hw);
    for (size_t i = 0; i < s->n; i++)
        for (size_t c = 0; c < s->c; c++)
            for (size_t p = 0; p < s->hw; p++)
                x[BN_AT(s, i, c, p)] = bn_value(c);
    return x;
}

typedef struct bn_stats {
    double mean, var, invstd, max_abs, kappa;
} bn_stats;

/* Two-pass batch statistics in double (the data are floats: the sums are
 * exact to ~1e-16) and the channel's condition number kappa = max|x| /
 * sqrt(var + eps): relative changes of u in the inputs move the mean by up
 * to u max|x| and the normalised values by up to u kappa. */
static bn_stats bn_stats_of(const mislasi_bn_shape *s, const float *x, size_t c)
{
    double m = (double)(s->n * s->hw), sum = 0, sq = 0, mx = 0;
    for (size_t i = 0; i < s->n; i++)
        for (size_t p = 0; p < s->hw; p++) {
            double v = x[BN_AT(s, i, c, p)];
            sum += v;
            mx = fabs(v) > mx ? fabs(v) : mx;
        }
    bn_stats st = { .mean = sum / m, .max_abs = mx };
    for (size_t i = 0; i < s->n; i++)
        for (size_t p = 0; p < s->hw; p++) {
            double d = x[BN_AT(s, i, c, p)] - st.mean;
            sq += d * d;
        }
    st.var = sq / m;
    st.invstd = 1.0 / sqrt(st.var + BN_EPS);
    st.kappa = mx * st.invstd;
    return st;
}

/* Tolerances of the training statistics (justified at bn_forward_train_*). */
static double bn_mean_tol(const bn_stats *st) { return 4 * U * st->max_abs; }
static double bn_invstd_rel_tol(const bn_stats *st) { return 8 * U * (1 + st->kappa); }

/* The normalised output's tolerance at one value: the affine step a x + b
 * (or a (x - mean) + beta) in float has ~5 roundings, each within u of
 * |a x|, |a mean|, |beta| or |y|; the statistics' own errors add |a| times
 * the mean's and |a (x - mean)| times invstd's relative error. */
static double bn_y_tol(double x, double gamma, double beta, double mean, double invstd,
        double mean_tol, double invstd_rel_tol)
{
    double a = fabs(gamma * invstd);
    return 6 * U * (a * fabs(x) + a * fabs(mean) + fabs(beta) + fabs(gamma * (x - mean) * invstd))
           + a * mean_tol + a * fabs(x - mean) * invstd_rel_tol;
}

static const mislasi_bn_shape BN_SHAPES[] = {
    { 5, BN_C, 37 },    /* planes not a multiple of any vector width */
    { 2, BN_C, 64 },
    { 3, BN_C, 1 },     /* 1x1 planes (m = 3) */
    { 1, BN_C, 49 },    /* one image */
    { 16, BN_C, 64 },   /* m = 1024 */
    { 67, BN_C, 3 },    /* many small images */
};

/* Training forward. The saved mean is within 4 u max|x| of the exact one:
 * storing it in float costs u/2 |mean|, and a summation that keeps a few
 * ulps of the largest value (double accumulation, or short float partial
 * sums added in double) stays well inside; a plain float running sum over
 * m values could be off by m ulps and is what this accuracy requirement
 * rules out on the large-mean channel. invstd: relative changes of u in
 * the inputs move the variance by up to 2 u kappa relative (kappa =
 * max|x| / std, 1e4 on the large-mean channel), and an algorithm that
 * centres on a shift within ~2 std of the mean (a shifted one-pass sum, or
 * per-image shifted moments combined) carries the mean's error into the
 * variance at first order, 2 (2 std) (4 u max|x|) / var = 16 u
 * kappa, so invstd (half of that, relative) may be off by 8 u (1 + kappa):
 * 5e-7 on ordinary channels and 5e-3 on the large-mean one (measured:
 * 1e-7 there). E[x^2] - E[x]^2 in float would be off by ~u max|x|^2 / var
 * = 6 there, i.e. useless. */
static void check_bn_forward_train(const mislasi_bn_shape *s, bool relu)
{
    size_t count = s->n * s->c * s->hw;
    double m = (double)(s->n * s->hw);
    float *x = bn_input(s), *x0 = copy_floats(x, count);
    float rmean[BN_C], rvar[BN_C], mean[BN_C + GUARD], invstd[BN_C + GUARD];
    memcpy(rmean, BN_RMEAN, sizeof rmean);
    memcpy(rvar, BN_RVAR, sizeof rvar);
    float *y = alloc_guarded(count);
    for (size_t c = 0; c < BN_C + GUARD; c++)
        mean[c] = invstd[c] = c < BN_C ? NAN : SENTINEL;
    bn_forward_train(s, x, BN_GAMMA, BN_BETA, rmean, rvar, mean, invstd, y, relu);
    check_guard(y, count, "bn y");
    check_guard(mean, BN_C, "bn mean");
    check_guard(invstd, BN_C, "bn invstd");
    expect_same_bits("bn x (input)", x, x0, count);
    for (size_t c = 0; c < s->c; c++) {
        bn_stats st = bn_stats_of(s, x, c);
        double mtol = bn_mean_tol(&st), itol = bn_invstd_rel_tol(&st);
        expect_close("bn saved mean", c, mean[c], st.mean, mtol);
        expect_close("bn saved invstd", c, invstd[c], st.invstd, itol * st.invstd);
        /* running statistics: r = 0.9 r + 0.1 batch, the variance unbiased;
         * the batch values' tolerances scaled by 0.1, plus 2 u for the
         * float update itself */
        double want_rm = 0.9 * BN_RMEAN[c] + 0.1 * st.mean;
        expect_close("bn running mean", c, rmean[c], want_rm, 0.1 * mtol + 2 * U * fabs(want_rm));
        double unbiased = st.var * m / (m - 1);
        double want_rv = 0.9 * BN_RVAR[c] + 0.1 * unbiased;
        /* var + eps = 1 / invstd^2: the variance's error is twice invstd's
         * relative error times (var + eps) */
        double var_tol = 2.2 * itol * (st.var + BN_EPS) * m / (m - 1);
        expect_close("bn running var", c, rvar[c], want_rv, 0.1 * var_tol + 2 * U * fabs(want_rv));
        /* the outputs, and their mean and spread */
        double ymax_tol = 0, sum = 0, sq = 0;
        for (size_t i = 0; i < s->n; i++)
            for (size_t p = 0; p < s->hw; p++) {
                size_t at = BN_AT(s, i, c, p);
                double want = BN_GAMMA[c] * (x[at] - st.mean) * st.invstd + BN_BETA[c];
                double tol = bn_y_tol(x[at], BN_GAMMA[c], BN_BETA[c], st.mean, st.invstd, mtol, itol);
                ymax_tol = tol > ymax_tol ? tol : ymax_tol;
                if (relu) {
                    /* a ReLU after the affine step: negative pre-activations
                     * give exactly 0 (+0, not -0) */
                    if (want < -tol)
                        ck_assert_msg(memcmp(&y[at], &(float){0.0f}, sizeof(float)) == 0,
                            "bn relu y[%zu] = %g, expected +0", at, (double)y[at]);
                    else
                        expect_close("bn relu y", at, y[at], want > 0 ? want : 0, tol);
                } else {
                    expect_close("bn y", at, y[at], want, tol);
                }
                sum += y[at];
            }
        if (relu)
            continue;
        /* Each y is within ymax_tol, so the mean is within it of beta and
         * the standard deviation within it of |gamma| sqrt(var / (var + eps)). */
        double ymean = sum / m;
        for (size_t i = 0; i < s->n; i++)
            for (size_t p = 0; p < s->hw; p++) {
                double d = y[BN_AT(s, i, c, p)] - ymean;
                sq += d * d;
            }
        expect_close("bn output mean (= beta)", c, ymean, BN_BETA[c], ymax_tol + 1e-12);
        expect_close("bn output std (= |gamma|)", c, sqrt(sq / m),
            fabs(BN_GAMMA[c]) * sqrt(st.var / (st.var + BN_EPS)), ymax_tol + 1e-12);
    }
    free(x); free(x0); free(y);
}

START_TEST(bn_forward_train_matches_double)
{
    for (size_t i = 0; i < sizeof BN_SHAPES / sizeof BN_SHAPES[0]; i++) {
        check_bn_forward_train(&BN_SHAPES[i], false);
        check_bn_forward_train(&BN_SHAPES[i], true);
    }
}
END_TEST

/* The pieces the two forms are made of. Per-image moments against double:
 * the sum within (hw + 2) u of sum |x| (a float sum in any order), the sum
 * of squared deviations M2 within the variance allowance of the forward
 * test, 16 u (1 + kappa) (M2 + hw eps) (kappa = max|x| / sqrt(M2 / hw +
 * eps); measured: below 2 u (1 + kappa) (M2 + hw eps) up to 64 pixels,
 * 0.4 at 1024).
 * Then the composition: moments of each image + forward_train_moments is
 * forward_train, and eval_affine + affine_image per image is
 * forward_eval, bit for bit (the model uses the pieces, the tests above
 * the whole forms). eval_affine's scale is gamma / sqrt(var + eps) within
 * 2 u, its shift beta - mean scale within 2 u of |beta| + |mean scale|. */
/* A batch cut at a multiple of the group size gives each piece whole
 * slots: the pieces' slots laid end to end are the whole batch's bit for
 * bit, and the forward's moments of every image combined give the whole
 * batch's statistics to a piece that normalises only its own images (what
 * a batch shared between processes relies on). */
START_TEST(bn_pieces_of_a_cut_batch_are_the_whole_batch)
{
    static const mislasi_bn_shape shapes[] = { { 40, BN_C, 37 }, { 33, BN_C, 64 }, { 48, BN_C, 1 } };
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        const mislasi_bn_shape *s = &shapes[i];
        size_t image = s->c * s->hw, count = s->n * image, a = BN_GROUP, c = s->c;
        float *x = alloc_floats(count), *y = alloc_floats(count), *dy = alloc_floats(count);
        fill_uniform(x, count, -2, 3);
        fill_uniform(y, count, -1, 1);
        fill_uniform(dy, count, -1, 1);
        size_t groups = mislasi_bn_groups(s->n, BN_GROUP);
        double *whole = alloc_doubles(groups * 2 * c), *cut = alloc_doubles(groups * 2 * c);
        mislasi_bn_backward_slots(s, BN_GROUP, x, y, dy, BN_RMEAN, whole);
        mislasi_bn_shape sa = *s, sb = *s;
        sa.n = a;
        sb.n = s->n - a;
        mislasi_bn_backward_slots(&sa, BN_GROUP, x, y, dy, BN_RMEAN, cut);
        mislasi_bn_backward_slots(&sb, BN_GROUP, x + a * image, y + a * image, dy + a * image, BN_RMEAN,
                cut + mislasi_bn_groups(a, BN_GROUP) * 2 * c);
        ck_assert_msg(memcmp(whole, cut, groups * 2 * c * sizeof *whole) == 0, "bn slots of a cut batch differ");

        mislasi_bn_shape one = {.n = 1, .c = c, .hw = s->hw};
        double *moments = alloc_doubles(s->n * 2 * c);
        for (size_t k = 0; k < s->n; k++)
            mislasi_bn_image_moments(&one, x + k * image, moments + k * 2 * c);
        float rm1[BN_C], rv1[BN_C], m1[BN_C], i1[BN_C], rm2[BN_C], rv2[BN_C], m2[BN_C], i2[BN_C];
        memcpy(rm1, BN_RMEAN, sizeof rm1); memcpy(rm2, BN_RMEAN, sizeof rm2);
        memcpy(rv1, BN_RVAR, sizeof rv1); memcpy(rv2, BN_RVAR, sizeof rv2);
        float *y1 = alloc_floats(count), *y2 = alloc_floats(count);
        mislasi_bn_forward_train_moments(s, x, moments, s->n, BN_GAMMA, BN_BETA, rm1, rv1, m1, i1, y1, true, NULL);
        mislasi_bn_forward_train_moments(&sb, x + a * image, moments, s->n, BN_GAMMA, BN_BETA, rm2, rv2, m2, i2,
                y2 + a * image, true, NULL);
        expect_same_bits("bn cut batch: y", y2 + a * image, y1 + a * image, count - a * image);
        expect_same_bits("bn cut batch: mean", m2, m1, BN_C);
        expect_same_bits("bn cut batch: invstd", i2, i1, BN_C);
        expect_same_bits("bn cut batch: running var", rv2, rv1, BN_C);
        free(x); free(y); free(dy); free(whole); free(cut); free(moments); free(y1); free(y2);
    }
}
END_TEST

START_TEST(bn_pieces_match_double_and_compose_to_the_forms)
{
    static const mislasi_bn_shape shapes[] = { { 5, BN_C, 37 }, { 3, BN_C, 1 }, { 2, BN_C, 1024 }, { 16, BN_C, 64 } };
    for (size_t k = 0; k < sizeof shapes / sizeof shapes[0]; k++) {
        const mislasi_bn_shape *s = &shapes[k];
        mislasi_bn_shape one = { 1, s->c, s->hw };
        size_t count = s->n * s->c * s->hw, image = s->c * s->hw;
        float *x = bn_input(s);
        double *moments = alloc_doubles(2 * s->n * s->c + GUARD);
        for (size_t i = 0; i < GUARD; i++)
            moments[2 * s->n * s->c + i] = -7.0;
        for (size_t i = 0; i < s->n; i++)
            mislasi_bn_image_moments(&one, x + i * image, moments + 2 * i * s->c);
        for (size_t i = 0; i < GUARD; i++)
            ck_assert(moments[2 * s->n * s->c + i] == -7.0);
        for (size_t i = 0; i < s->n; i++)
            for (size_t c = 0; c < s->c; c++) {
                double sum = 0, abs_sum = 0, mx = 0, m2 = 0;
                for (size_t q = 0; q < s->hw; q++) {
                    double v = x[BN_AT(s, i, c, q)];
                    sum += v;
                    abs_sum += fabs(v);
                    mx = fabs(v) > mx ? fabs(v) : mx;
                }
                for (size_t q = 0; q < s->hw; q++) {
                    double v = x[BN_AT(s, i, c, q)];
                    m2 += (v - sum / (double)s->hw) * (v - sum / (double)s->hw);
                }
                double kappa = mx / sqrt(m2 / (double)s->hw + BN_EPS);
                const double *mo = moments + 2 * (i * s->c + c);
                expect_close("bn image moments: sum", i * s->c + c, mo[0], sum, ((double)s->hw + 2) * U * abs_sum);
                expect_close("bn image moments: M2", i * s->c + c, mo[1], m2,
                    16 * U * (1 + kappa) * (m2 + (double)s->hw * BN_EPS));
            }
        /* training form = its pieces */
        float *y1 = alloc_floats(count), *y2 = alloc_floats(count);
        float rm1[BN_C], rv1[BN_C], m1[BN_C], i1[BN_C], rm2[BN_C], rv2[BN_C], m2[BN_C], i2[BN_C];
        memcpy(rm1, BN_RMEAN, sizeof rm1); memcpy(rm2, BN_RMEAN, sizeof rm2);
        memcpy(rv1, BN_RVAR, sizeof rv1); memcpy(rv2, BN_RVAR, sizeof rv2);
        for (int relu = 0; relu <= 1; relu++) {
            bn_forward_train(s, x, BN_GAMMA, BN_BETA, rm1, rv1, m1, i1, y1, relu);
            mislasi_bn_forward_train_moments(s, x, moments, s->n, BN_GAMMA, BN_BETA, rm2, rv2, m2, i2, y2, relu, NULL);
            expect_same_bits("bn train from moments: y", y2, y1, count);
            expect_same_bits("bn train from moments: mean", m2, m1, BN_C);
            expect_same_bits("bn train from moments: invstd", i2, i1, BN_C);
            expect_same_bits("bn train from moments: running mean", rm2, rm1, BN_C);
            expect_same_bits("bn train from moments: running var", rv2, rv1, BN_C);
        }
        /* evaluation form = its pieces */
        float scale[BN_C + GUARD], shift[BN_C + GUARD];
        for (size_t c = 0; c < BN_C + GUARD; c++)
            scale[c] = shift[c] = c < BN_C ? NAN : SENTINEL;
        mislasi_bn_eval_affine(BN_C, BN_GAMMA, BN_BETA, BN_RMEAN, BN_RVAR, scale, shift);
        check_guard(scale, BN_C, "bn eval scale");
        check_guard(shift, BN_C, "bn eval shift");
        for (size_t c = 0; c < BN_C; c++) {
            double is = 1.0 / sqrt((double)BN_RVAR[c] + BN_EPS), sc = BN_GAMMA[c] * is;
            expect_close("bn eval scale", c, scale[c], sc, 2 * U * fabs(sc));
            expect_close("bn eval shift", c, shift[c], BN_BETA[c] - BN_RMEAN[c] * sc,
                2 * U * (fabs(BN_BETA[c]) + fabs(BN_RMEAN[c] * sc)));
        }
        for (int relu = 0; relu <= 1; relu++) {
            bn_forward_eval(s, x, BN_GAMMA, BN_BETA, BN_RMEAN, BN_RVAR, y1, relu);
            refill_nan(y2, count);
            for (size_t i = 0; i < s->n; i++)
                mislasi_bn_affine_image(&one, x + i * image, scale, shift, y2 + i * image, relu, NULL);
            expect_same_bits("bn eval from its pieces: y", y2, y1, count);
            /* and each value is scale x + shift (then ReLU): two roundings */
            for (size_t i = 0; i < s->n; i++)
                for (size_t c = 0; c < s->c; c++)
                    for (size_t q = 0; q < s->hw; q++) {
                        size_t at = BN_AT(s, i, c, q);
                        double v = (double)scale[c] * x[at] + shift[c];
                        expect_close("bn affine_image y", at, y2[at], relu && v < 0 ? 0 : v,
                            2 * U * (fabs((double)scale[c] * x[at]) + fabs(shift[c])));
                    }
        }
        free(x); free(moments); free(y1); free(y2);
    }
}
END_TEST

/* The fused ReLU is exactly max(0, the plain output), and leaves the saved
 * and running statistics alone: the same bits. */
START_TEST(bn_fused_relu_is_relu_of_the_plain_output)
{
    const mislasi_bn_shape *s = &BN_SHAPES[0];
    size_t count = s->n * s->c * s->hw;
    float *x = bn_input(s), *y1 = alloc_floats(count), *y2 = alloc_floats(count);
    float rm1[BN_C], rv1[BN_C], rm2[BN_C], rv2[BN_C], m1[BN_C], m2[BN_C], i1[BN_C], i2[BN_C];
    memcpy(rm1, BN_RMEAN, sizeof rm1); memcpy(rm2, BN_RMEAN, sizeof rm2);
    memcpy(rv1, BN_RVAR, sizeof rv1); memcpy(rv2, BN_RVAR, sizeof rv2);
    bn_forward_train(s, x, BN_GAMMA, BN_BETA, rm1, rv1, m1, i1, y1, false);
    bn_forward_train(s, x, BN_GAMMA, BN_BETA, rm2, rv2, m2, i2, y2, true);
    for (size_t i = 0; i < count; i++)
        y1[i] = y1[i] > 0.0f ? y1[i] : 0.0f;
    expect_same_bits("bn relu y", y2, y1, count);
    expect_same_bits("bn relu mean", m2, m1, BN_C);
    expect_same_bits("bn relu invstd", i2, i1, BN_C);
    expect_same_bits("bn relu running mean", rm2, rm1, BN_C);
    expect_same_bits("bn relu running var", rv2, rv1, BN_C);
    /* eval form too */
    bn_forward_eval(s, x, BN_GAMMA, BN_BETA, BN_RMEAN, BN_RVAR, y1, false);
    bn_forward_eval(s, x, BN_GAMMA, BN_BETA, BN_RMEAN, BN_RVAR, y2, true);
    for (size_t i = 0; i < count; i++)
        y1[i] = y1[i] > 0.0f ? y1[i] : 0.0f;
    expect_same_bits("bn eval relu y", y2, y1, count);
    free(x); free(y1); free(y2);
}
END_TEST

/* A single-valued channel (variance exactly 0) normalises to beta: invstd is
 * 1/sqrt(eps) and the centred values are 0, so y is beta up to the affine
 * step's rounding (|a x| ~ 316 |gamma x|, hence a few 1e-5). */
START_TEST(bn_constant_channel_gives_beta)
{
    const mislasi_bn_shape *s = &BN_SHAPES[0];
    float *x = bn_input(s), *y = alloc_floats(s->n * s->c * s->hw);
    float rm[BN_C], rv[BN_C], mean[BN_C], invstd[BN_C];
    memcpy(rm, BN_RMEAN, sizeof rm);
    memcpy(rv, BN_RVAR, sizeof rv);
    bn_forward_train(s, x, BN_GAMMA, BN_BETA, rm, rv, mean, invstd, y, false);
    ck_assert_float_eq(mean[3], 2.5f);
    ck_assert_close(invstd[3], 1.0 / sqrt(BN_EPS), 0, 2 * U);
    ck_assert_float_eq(rv[3], 0.9f * BN_RVAR[3]);      /* + 0.1 * 0 */
    for (size_t i = 0; i < s->n; i++)
        for (size_t p = 0; p < s->hw; p++)
            expect_close("bn constant channel y", BN_AT(s, i, 3, p), y[BN_AT(s, i, 3, p)], BN_BETA[3],
                bn_y_tol(2.5, BN_GAMMA[3], BN_BETA[3], 2.5, 1 / sqrt(BN_EPS), 0, 0));
    free(x); free(y);
}
END_TEST

/* Evaluation forward: y = gamma (x - running mean) / sqrt(running var +
 * eps) + beta; the running statistics are read, never written, and the
 * affine step's rounding is the only error (invstd from a float variance
 * is within u). mislasi_bn_eval_invstd is 1/sqrt(var + eps) to within 1 u. */
START_TEST(bn_forward_eval_uses_the_running_statistics)
{
    for (size_t k = 0; k < sizeof BN_SHAPES / sizeof BN_SHAPES[0]; k++) {
        const mislasi_bn_shape *s = &BN_SHAPES[k];
        size_t count = s->n * s->c * s->hw;
        float *x = bn_input(s), *x0 = copy_floats(x, count), *y = alloc_guarded(count);
        float rm[BN_C], rv[BN_C], inv[BN_C + GUARD];
        memcpy(rm, BN_RMEAN, sizeof rm);
        memcpy(rv, BN_RVAR, sizeof rv);
        for (int relu = 0; relu <= 1; relu++) {
            refill_nan(y, count);
            bn_forward_eval(s, x, BN_GAMMA, BN_BETA, rm, rv, y, relu);
            check_guard(y, count, "bn eval y");
            expect_same_bits("bn eval running mean", rm, BN_RMEAN, BN_C);
            expect_same_bits("bn eval running var", rv, BN_RVAR, BN_C);
            expect_same_bits("bn eval x (input)", x, x0, count);
            for (size_t c = 0; c < s->c; c++) {
                double invstd = 1.0 / sqrt((double)BN_RVAR[c] + BN_EPS);
                for (size_t i = 0; i < s->n; i++)
                    for (size_t p = 0; p < s->hw; p++) {
                        size_t at = BN_AT(s, i, c, p);
                        double want = BN_GAMMA[c] * (x[at] - (double)BN_RMEAN[c]) * invstd + BN_BETA[c];
                        if (relu)
                            want = want > 0 ? want : 0;
                        expect_close("bn eval y", at, y[at], want,
                            bn_y_tol(x[at], BN_GAMMA[c], BN_BETA[c], BN_RMEAN[c], invstd, 0, 2 * U));
                    }
            }
        }
        for (size_t c = 0; c < BN_C + GUARD; c++)
            inv[c] = c < BN_C ? NAN : SENTINEL;
        mislasi_bn_eval_invstd(BN_C, rv, inv);
        check_guard(inv, BN_C, "bn eval invstd");
        for (size_t c = 0; c < BN_C; c++)
            ck_assert_close(inv[c], 1.0 / sqrt((double)rv[c] + BN_EPS), 0, U);
        free(x); free(x0); free(y);
    }
}
END_TEST

/* The analytic gradients of L = sum R y in double, for the given (float)
 * mean and invstd, and the rounding bounds of a float computation of them.
 * With g = R masked by y > 0 (a fused ReLU), xhat = (x - mean) invstd:
 *   dbeta = sum g, dgamma = sum g xhat,
 *   dx = gamma invstd (g - [sum g / m + xhat sum(g xhat) / m]),
 * the bracket only with batch statistics (they depend on x: d mean / dx =
 * 1/m, d invstd / dx = -invstd^3 (x - mean) / m). */
typedef struct bn_grads {
    double *dx, *dx_tol, dgamma[BN_C], dgamma_tol[BN_C], dbeta[BN_C], dbeta_tol[BN_C];
} bn_grads;

static void bn_reference_grads(const mislasi_bn_shape *s, const float *x, const float *y, const float *dy,
        const float *mean, const float *invstd, bool batch_stats, bn_grads *out)
{
    double m = (double)(s->n * s->hw);
    for (size_t c = 0; c < s->c; c++) {
        double mu = mean[c], is = invstd[c], gamma = BN_GAMMA[c];
        double sg = 0, sgx = 0, abs_g = 0, abs_gx = 0;
        for (size_t i = 0; i < s->n; i++)
            for (size_t p = 0; p < s->hw; p++) {
                size_t at = BN_AT(s, i, c, p);
                double g = y == NULL || y[at] > 0 ? dy[at] : 0.0;
                sg += g;
                sgx += g * (x[at] - mu);
                abs_g += fabs(g);
                abs_gx += fabs(g * (x[at] - mu));
            }
        /* float sums of m terms: (m + 2) u of the magnitudes (header);
         * x - mean rounds once more, dgamma's product by invstd too */
        double sg_err = (m + 2) * U * abs_g, sgx_err = (m + 4) * U * abs_gx;
        out->dbeta[c] = sg;
        out->dbeta_tol[c] = sg_err;
        out->dgamma[c] = sgx * is;
        out->dgamma_tol[c] = sgx_err * is + U * fabs(sgx * is);
        double a = gamma * is;
        double bx = batch_stats ? -a * is * is * sgx / m : 0.0;
        double b0 = batch_stats ? -a * sg / m : 0.0;
        for (size_t i = 0; i < s->n; i++)
            for (size_t p = 0; p < s->hw; p++) {
                size_t at = BN_AT(s, i, c, p);
                double g = y == NULL || y[at] > 0 ? dy[at] : 0.0;
                double d = x[at] - mu;
                out->dx[at] = a * g + bx * d + b0;
                /* the three terms and their sum in float (~6 roundings of
                 * their sizes), plus the sums' errors carried through bx
                 * and b0 */
                out->dx_tol[at] = 6 * U * (fabs(a * g) + fabs(bx * d) + fabs(b0)) +
                    (batch_stats ? fabs(a) / m * (sg_err + is * is * fabs(d) * sgx_err) : 0.0);
            }
    }
}

typedef struct bn_fixture {
    mislasi_bn_shape s;
    size_t count;
    float *x, *y, *dy, mean[BN_C], invstd[BN_C];
} bn_fixture;

/* The forward whose outputs the backward takes: training form (saved batch
 * statistics) or evaluation form (running mean, eval invstd). */
static void bn_fixture_init(bn_fixture *f, const mislasi_bn_shape *s, bool train, bool relu)
{
    f->s = *s;
    f->count = s->n * s->c * s->hw;
    f->x = bn_input(s);
    f->y = alloc_floats(f->count);
    f->dy = alloc_floats(f->count);
    fill_uniform(f->dy, f->count, -1, 1);
    float rm[BN_C], rv[BN_C];
    memcpy(rm, BN_RMEAN, sizeof rm);
    memcpy(rv, BN_RVAR, sizeof rv);
    if (train) {
        bn_forward_train(s, f->x, BN_GAMMA, BN_BETA, rm, rv, f->mean, f->invstd, f->y, relu);
    } else {
        bn_forward_eval(s, f->x, BN_GAMMA, BN_BETA, rm, rv, f->y, relu);
        memcpy(f->mean, BN_RMEAN, sizeof f->mean);
        mislasi_bn_eval_invstd(BN_C, rv, f->invstd);
    }
}

static void bn_fixture_free(bn_fixture *f)
{
    free(f->x); free(f->y); free(f->dy);
}

/* Backward against the analytic gradients in double (tolerances at
 * bn_reference_grads), for batch statistics and fixed ones, with and
 * without a fused ReLU. Then: dgamma / dbeta = NULL, dx aliasing dy, and
 * pools of 1, 2, 3 threads all give the same bits. */
START_TEST(bn_backward_matches_the_analytic_gradient)
{
    for (size_t k = 0; k < sizeof BN_SHAPES / sizeof BN_SHAPES[0]; k++)
        for (int mode = 0; mode < 4; mode++) {
            bool batch_stats = mode & 1, relu = mode & 2;
            bn_fixture f;
            bn_fixture_init(&f, &BN_SHAPES[k], batch_stats, relu);
            const mislasi_bn_shape *s = &f.s;
            const float *ymask = relu ? f.y : NULL;
            bn_grads want = { .dx = alloc_doubles(f.count), .dx_tol = alloc_doubles(f.count) };
            bn_reference_grads(s, f.x, ymask, f.dy, f.mean, f.invstd, batch_stats, &want);
            float *dx = alloc_guarded(f.count), dgamma[BN_C + GUARD], dbeta[BN_C + GUARD];
            for (size_t c = 0; c < BN_C + GUARD; c++)
                dgamma[c] = dbeta[c] = c < BN_C ? NAN : SENTINEL;
            float *dy0 = copy_floats(f.dy, f.count), *x0 = copy_floats(f.x, f.count);
            set_threads(1);
            bn_backward(s, f.x, ymask, f.dy, BN_GAMMA, f.mean, f.invstd, batch_stats, dx, dgamma, dbeta);
            check_guard(dx, f.count, "bn dx");
            check_guard(dgamma, BN_C, "bn dgamma");
            check_guard(dbeta, BN_C, "bn dbeta");
            expect_same_bits("bn dy (input)", f.dy, dy0, f.count);
            expect_same_bits("bn x (input)", f.x, x0, f.count);
            for (size_t c = 0; c < BN_C; c++) {
                expect_close("bn dbeta", c, dbeta[c], want.dbeta[c], want.dbeta_tol[c]);
                expect_close("bn dgamma", c, dgamma[c], want.dgamma[c], want.dgamma_tol[c]);
            }
            for (size_t i = 0; i < f.count; i++)
                expect_close(batch_stats ? "bn dx (batch statistics)" : "bn dx (fixed statistics)",
                    i, dx[i], want.dx[i], want.dx_tol[i]);

            /* without dgamma / dbeta */
            float *dx2 = alloc_floats(f.count);
            refill_nan(dx2, f.count);
            bn_backward(s, f.x, ymask, f.dy, BN_GAMMA, f.mean, f.invstd, batch_stats, dx2, NULL, NULL);
            expect_same_bits("bn dx (dgamma, dbeta NULL)", dx2, dx, f.count);
            /* dx in dy's place */
            memcpy(dx2, f.dy, f.count * sizeof *dx2);
            float g2[BN_C], b2[BN_C];
            bn_backward(s, f.x, ymask, dx2, BN_GAMMA, f.mean, f.invstd, batch_stats, dx2, g2, b2);
            expect_same_bits("bn dx (aliasing dy)", dx2, dx, f.count);
            expect_same_bits("bn dgamma (dx aliasing dy)", g2, dgamma, BN_C);
            expect_same_bits("bn dbeta (dx aliasing dy)", b2, dbeta, BN_C);
            /* thread counts */
            for (int32_t pool = 2; pool <= 3; pool++) {
                set_threads(pool);
                refill_nan(dx2, f.count);
                bn_backward(s, f.x, ymask, f.dy, BN_GAMMA, f.mean, f.invstd, batch_stats, dx2, g2, b2);
                expect_same_bits("bn dx (threads)", dx2, dx, f.count);
                expect_same_bits("bn dgamma (threads)", g2, dgamma, BN_C);
                expect_same_bits("bn dbeta (threads)", b2, dbeta, BN_C);
            }
            free(dx); free(dx2); free(dy0); free(x0); free(want.dx); free(want.dx_tol);
            bn_fixture_free(&f);
        }
}
END_TEST

/* The forward's outputs do not depend on the thread count either. */
START_TEST(bn_forward_is_the_same_for_every_thread_count)
{
    const mislasi_bn_shape *s = &BN_SHAPES[4];
    size_t count = s->n * s->c * s->hw;
    float *x = bn_input(s), *y1 = alloc_floats(count), *y2 = alloc_floats(count);
    float rm1[BN_C], rv1[BN_C], m1[BN_C], i1[BN_C];
    memcpy(rm1, BN_RMEAN, sizeof rm1);
    memcpy(rv1, BN_RVAR, sizeof rv1);
    set_threads(1);
    bn_forward_train(s, x, BN_GAMMA, BN_BETA, rm1, rv1, m1, i1, y1, true);
    for (int32_t pool = 2; pool <= 3; pool++) {
        set_threads(pool);
        float rm2[BN_C], rv2[BN_C], m2[BN_C], i2[BN_C];
        memcpy(rm2, BN_RMEAN, sizeof rm2);
        memcpy(rv2, BN_RVAR, sizeof rv2);
        bn_forward_train(s, x, BN_GAMMA, BN_BETA, rm2, rv2, m2, i2, y2, true);
        expect_same_bits("bn train y (threads)", y2, y1, count);
        expect_same_bits("bn mean (threads)", m2, m1, BN_C);
        expect_same_bits("bn invstd (threads)", i2, i1, BN_C);
        expect_same_bits("bn running mean (threads)", rm2, rm1, BN_C);
        expect_same_bits("bn running var (threads)", rv2, rv1, BN_C);
    }
    set_threads(1);
    bn_forward_eval(s, x, BN_GAMMA, BN_BETA, BN_RMEAN, BN_RVAR, y1, false);
    set_threads(3);
    bn_forward_eval(s, x, BN_GAMMA, BN_BETA, BN_RMEAN, BN_RVAR, y2, false);
    expect_same_bits("bn eval y (threads)", y2, y1, count);
    free(x); free(y1); free(y2);
}
END_TEST

/* Every entry point of batch norm on one layer, the parameters repeating
 * BN_GAMMA, BN_BETA, BN_RMEAN, BN_RVAR over the channels: each image's
 * moments; the training form from them with a residual and a fused ReLU;
 * the evaluation form with the residual; the backward with batch
 * statistics (through the ReLU) and with fixed ones (no ReLU), dx written
 * over a copy of dy when dx_in_dy. out (bn_all_floats): y, the evaluation
 * form's y, dx with batch and with fixed statistics (n c hw each), then c
 * each of mean, invstd, running mean, running var, and dgamma, dbeta with
 * batch and with fixed statistics. */
static size_t bn_all_floats(const mislasi_bn_shape *s)
{
    return 4 * s->n * s->c * s->hw + 8 * s->c;
}

static void bn_all(const mislasi_bn_shape *s, const float *x, const float *dy, const float *residual,
        bool dx_in_dy, double *moments, float *out)
{
    size_t c = s->c, count = s->n * c * s->hw, image = c * s->hw;
    const mislasi_bn_shape one = { 1, c, s->hw };
    float *par = alloc_floats(4 * c), *eval = alloc_floats(3 * c);   /* scale, shift, invstd */
    for (size_t k = 0; k < c; k++) {
        par[k] = BN_GAMMA[k % BN_C];
        par[c + k] = BN_BETA[k % BN_C];
        par[2 * c + k] = BN_RMEAN[k % BN_C];
        par[3 * c + k] = BN_RVAR[k % BN_C];
    }
    float *y = out, *y_eval = out + count, *dx_batch = out + 2 * count, *dx_fixed = out + 3 * count;
    float *st = out + 4 * count;
    memcpy(st + 2 * c, par + 2 * c, 2 * c * sizeof *st);
    for (size_t i = 0; i < s->n; i++)
        mislasi_bn_image_moments(&one, x + i * image, moments + 2 * c * i);
    mislasi_bn_forward_train_moments(s, x, moments, s->n, par, par + c, st + 2 * c, st + 3 * c, st, st + c, y, true,
            residual);
    mislasi_bn_eval_affine(c, par, par + c, par + 2 * c, par + 3 * c, eval, eval + c);
    for (size_t i = 0; i < s->n; i++)
        mislasi_bn_affine_image(&one, x + i * image, eval, eval + c, y_eval + i * image, false, residual + i * image);
    mislasi_bn_eval_invstd(c, par + 3 * c, eval + 2 * c);
    if (dx_in_dy) {
        memcpy(dx_batch, dy, count * sizeof *dy);
        memcpy(dx_fixed, dy, count * sizeof *dy);
    }
    bn_backward(s, x, y, dx_in_dy ? dx_batch : dy, par, st, st + c, true, dx_batch, st + 4 * c, st + 5 * c);
    bn_backward(s, x, NULL, dx_in_dy ? dx_fixed : dy, par, par + 2 * c, eval + 2 * c, false, dx_fixed,
            st + 6 * c, st + 7 * c);
    free(par); free(eval);
}

static int failed_allocations;

static void *failing_alloc(size_t size, void *user)
{
    (void)size; (void)user;
    failed_allocations++;
    return NULL;
}

static void release_nothing(void *ptr, void *user)
{
    (void)ptr; (void)user;
    ck_abort_msg("released a block that was never allocated");
}

static void expect_same_moments(const char *what, const double *got, const double *want, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (memcmp(&got[i], &want[i], sizeof *got) != 0)
            ck_abort_msg("%s[%zu] = %.17g, bits differ from %.17g", what, i, got[i], want[i]);
}

/* Each channel is computed on its own (nothing is summed across
 * channels), so a wide layer, whose channels the library takes a few
 * hundred at a time in places, must give every channel the bits that a
 * 5-channel layer of the same values gives it (the forms checked against
 * double above): 70 images of 600 channels of 20 pixels, every run of 5
 * channels against the same 5 taken out alone, through every entry point
 * (bn_all). The wide layer then gives the same bits on pools of 1, 2 and
 * 3 threads and with dx in dy's place, and none of it allocates (the
 * layers' memory is the caller's): an allocator that fails is never
 * called. */
START_TEST(bn_wide_layer_is_its_channels_alone)
{
    const mislasi_bn_shape s = { 70, 600, 20 }, narrow = { 70, BN_C, 20 };
    size_t count = s.n * s.c * s.hw, ncount = narrow.n * narrow.c * narrow.hw;
    size_t floats = bn_all_floats(&s), nfloats = bn_all_floats(&narrow);
    float *x = bn_input(&s), *dy = alloc_floats(count), *r = alloc_floats(count);
    fill_uniform(dy, count, -1, 1);
    fill_uniform(r, count, -2, 2);
    double *moments = alloc_doubles(2 * s.n * s.c), *again_moments = alloc_doubles(2 * s.n * s.c);
    double *nmoments = alloc_doubles(2 * narrow.n * narrow.c);
    float *out = alloc_floats(floats), *again = alloc_floats(floats), *nout = alloc_floats(nfloats);
    float *nx = alloc_floats(ncount), *ndy = alloc_floats(ncount), *nr = alloc_floats(ncount);
    set_threads(1);
    bn_all(&s, x, dy, r, false, moments, out);
    for (size_t c0 = 0; c0 < s.c; c0 += BN_C) {
        for (size_t i = 0; i < s.n; i++)
            for (size_t p = 0; p < s.hw; p++)
                for (size_t k = 0; k < BN_C; k++) {
                    nx[BN_AT(&narrow, i, k, p)] = x[BN_AT(&s, i, c0 + k, p)];
                    ndy[BN_AT(&narrow, i, k, p)] = dy[BN_AT(&s, i, c0 + k, p)];
                    nr[BN_AT(&narrow, i, k, p)] = r[BN_AT(&s, i, c0 + k, p)];
                }
        bn_all(&narrow, nx, ndy, nr, false, nmoments, nout);
        for (size_t i = 0; i < s.n; i++)
            expect_same_moments("bn wide layer's moments vs its channels alone", moments + 2 * (i * s.c + c0),
                nmoments + 2 * i * BN_C, 2 * BN_C);
        static const char *const what[4] = { "bn wide layer's y vs its channels alone",
            "bn wide layer's eval y vs its channels alone", "bn wide layer's dx (batch statistics) vs its channels alone",
            "bn wide layer's dx (fixed statistics) vs its channels alone" };
        for (size_t t = 0; t < 4; t++)
            for (size_t i = 0; i < s.n; i++)
                for (size_t p = 0; p < s.hw; p++)
                    expect_same_bits(what[t], out + t * count + BN_AT(&s, i, c0, p),
                        nout + t * ncount + BN_AT(&narrow, i, 0, p), BN_C);
        for (size_t t = 0; t < 8; t++)
            expect_same_bits("bn wide layer's statistics and dgamma, dbeta vs its channels alone",
                out + 4 * count + t * s.c + c0, nout + 4 * ncount + t * BN_C, BN_C);
    }
    static const char *const runs[4] = { "bn wide layer, 1 thread", "bn wide layer, 2 threads",
        "bn wide layer, 3 threads, dx in dy's place", "bn wide layer, 3 threads, an allocator that fails" };
    for (int run = 0; run < 4; run++) {
        set_threads(run < 3 ? run + 1 : 3);
        failed_allocations = 0;
        if (run == 3)
            ck_assert_status(mislas_set_allocator(failing_alloc, release_nothing, NULL), MISLAS_OK);
        refill_nan(again, floats);
        bn_all(&s, x, dy, r, run == 2, again_moments, again);
        if (run == 3) {
            ck_assert_status(mislas_set_allocator(NULL, NULL, NULL), MISLAS_OK);
            ck_assert_msg(failed_allocations == 0, "batch norm asked for memory %d times", failed_allocations);
        }
        expect_same_moments(runs[run], again_moments, moments, 2 * s.n * s.c);
        expect_same_bits(runs[run], again, out, floats);
    }
    free(x); free(dy); free(r); free(moments); free(again_moments); free(nmoments);
    free(out); free(again); free(nout); free(nx); free(ndy); free(nr);
}
END_TEST

/* L = sum R y through the library's forward (training form on copies of
 * the running statistics, or evaluation form); pre (optional) gets the
 * outputs without ReLU, to detect kinks. */
static double bn_loss(const mislasi_bn_shape *s, const float *x, const float *gamma, const float *beta,
        bool train, bool relu, const float *r, float *y, float *pre)
{
    float rm[BN_C], rv[BN_C], mean[BN_C], invstd[BN_C];
    memcpy(rm, BN_RMEAN, sizeof rm);
    memcpy(rv, BN_RVAR, sizeof rv);
    size_t count = s->n * s->c * s->hw;
    if (train) {
        bn_forward_train(s, x, gamma, beta, rm, rv, mean, invstd, y, relu);
        if (pre != NULL)
            bn_forward_train(s, x, gamma, beta, rm, rv, mean, invstd, pre, false);
    } else {
        bn_forward_eval(s, x, gamma, beta, rm, rv, y, relu);
        if (pre != NULL)
            bn_forward_eval(s, x, gamma, beta, rm, rv, pre, false);
    }
    return dot_rf(r, y, count);
}

/* Is any pre-activation of channel c within margin of 0 (or of different
 * signs in the two)? Then a central difference may straddle the ReLU's kink. */
static bool bn_near_kink(const mislasi_bn_shape *s, size_t c, const float *a, const float *b, double margin)
{
    for (size_t i = 0; i < s->n; i++)
        for (size_t p = 0; p < s->hw; p++) {
            size_t at = BN_AT(s, i, c, p);
            if (fabs(a[at]) < margin || fabs(b[at]) < margin || (a[at] > 0) != (b[at] > 0))
                return true;
        }
    return false;
}

/* Backward against central differences of the library's forward, on the
 * ordinary channels (0, 2, 4; on the large-mean one an output's rounding,
 * ~u |a x| = 1e-3, swamps any difference quotient). Step h = 0.05 (std of
 * these channels 0.6 - 1.4). The quotient's error: each evaluation of L is
 * within sum |R| tol_y (bn_y_tol, the forward test's bound), so that over
 * the step; truncation, h^2/6 |L'''|, is measured by the same quotient on
 * the test's double model, and twice that is allowed. Entries whose
 * central difference would straddle a ReLU kink are skipped. */
START_TEST(bn_backward_matches_finite_differences)
{
    static const mislasi_bn_shape shapes[] = { { 3, BN_C, 25 }, { 2, BN_C, 1 } };
    const size_t channels[3] = { 0, 2, 4 };
    const double h = 0.05;
    int checked = 0, skipped = 0;
    set_threads(2);
    for (size_t k = 0; k < 2; k++)
        for (int mode = 0; mode < 4; mode++) {
            bool train = mode & 1, relu = mode & 2;
            const mislasi_bn_shape *s = &shapes[k];
            size_t count = s->n * s->c * s->hw;
            double m = (double)(s->n * s->hw);
            bn_fixture f;
            bn_fixture_init(&f, s, train, relu);
            float *dx = alloc_floats(count), dgamma[BN_C], dbeta[BN_C];
            float *y = alloc_floats(count), *pre_p = alloc_floats(count), *pre_m = alloc_floats(count);
            bn_backward(s, f.x, relu ? f.y : NULL, f.dy, BN_GAMMA, f.mean, f.invstd, train,
                    dx, dgamma, dbeta);
            float gamma[BN_C], beta[BN_C];
            memcpy(gamma, BN_GAMMA, sizeof gamma);
            memcpy(beta, BN_BETA, sizeof beta);
            for (size_t e = 0; e < 3 * 4; e++) {
                size_t c = channels[e % 3];
                int what = (int)(e / 3) % 4;     /* 0, 1: an x; 2: gamma; 3: beta */
                size_t i = BN_AT(s, pick(s->n), c, pick(s->hw));
                float *v = what < 2 ? &f.x[i] : what == 2 ? &gamma[c] : &beta[c];
                float keep = *v;
                float up = (float)(keep + h), down = (float)(keep - h);
                double step = (double)up - (double)down;
                /* the library's quotient, and the rounding bound of each L */
                *v = up;
                double lp = bn_loss(s, f.x, gamma, beta, train, relu, f.dy, y, pre_p);
                *v = down;
                double lm = bn_loss(s, f.x, gamma, beta, train, relu, f.dy, y, pre_m);
                if (relu && bn_near_kink(s, c, pre_p, pre_m, 1e-3)) {
                    *v = keep;
                    skipped++;
                    continue;
                }
                /* the double model's quotient (for the truncation error) and
                 * the rounding bound of the library's L at both ends */
                double quotient[2], rounding = 0;
                for (int side = 0; side < 2; side++) {
                    *v = side == 0 ? up : down;
                    bn_stats st = bn_stats_of(s, f.x, c);
                    double mtol = bn_mean_tol(&st), itol = bn_invstd_rel_tol(&st);
                    if (!train) {
                        st.mean = BN_RMEAN[c];
                        st.invstd = 1.0 / sqrt((double)BN_RVAR[c] + BN_EPS);
                        mtol = 0;
                        itol = 2 * U;
                    }
                    double lsum = 0;
                    for (size_t n = 0; n < s->n; n++)
                        for (size_t p = 0; p < s->hw; p++) {
                            size_t at = BN_AT(s, n, c, p);
                            double z = gamma[c] * (f.x[at] - st.mean) * st.invstd + beta[c];
                            lsum += f.dy[at] * (relu && z < 0 ? 0 : z);
                            rounding += fabs((double)f.dy[at]) *
                                bn_y_tol(f.x[at], gamma[c], beta[c], st.mean, st.invstd, mtol, itol);
                        }
                    quotient[side] = lsum;
                }
                *v = keep;
                double model_fd = (quotient[0] - quotient[1]) / step;
                /* the double model's exact derivative at the centre */
                double exact;
                {
                    bn_stats st = bn_stats_of(s, f.x, c);
                    double mu = train ? st.mean : BN_RMEAN[c];
                    double is = train ? st.invstd : 1.0 / sqrt((double)BN_RVAR[c] + BN_EPS);
                    double sg = 0, sgx = 0, gi = 0;
                    for (size_t n = 0; n < s->n; n++)
                        for (size_t p = 0; p < s->hw; p++) {
                            size_t at = BN_AT(s, n, c, p);
                            double xh = (f.x[at] - mu) * is;
                            double g = relu && gamma[c] * xh + beta[c] < 0 ? 0 : f.dy[at];
                            sg += g;
                            sgx += g * xh;
                            if (at == i)
                                gi = g;
                        }
                    double xh_i = (f.x[i] - mu) * is;
                    exact = what < 2 ? gamma[c] * is * (gi - (train ? sg / m + xh_i * sgx / m : 0))
                          : what == 2 ? sgx : sg;
                }
                double truncation = fabs(model_fd - exact);
                double lib_fd = (lp - lm) / step;
                double got = what < 2 ? dx[i] : what == 2 ? dgamma[c] : dbeta[c];
                double tol = 2 * rounding / step + 2 * truncation + 1e-7;
                if (!(fabs(lib_fd - got) <= tol))
                    ck_abort_msg("bn %s, %s, relu %d, n %zu hw %zu: %s[%zu] = %.9g, finite difference %.9g "
                        "(tolerance %.3g)", train ? "batch statistics" : "fixed statistics",
                        what < 2 ? "dx" : what == 2 ? "dgamma" : "dbeta", (int)relu, s->n, s->hw,
                        what < 2 ? "dx" : what == 2 ? "dgamma" : "dbeta", what < 2 ? i : c, got, lib_fd, tol);
                checked++;
            }
            free(dx); free(y); free(pre_p); free(pre_m);
            bn_fixture_free(&f);
        }
    ck_assert_msg(checked >= 3 * skipped && checked > 60, "%d checked, %d skipped at ReLU kinks", checked, skipped);
}
END_TEST

/* A normalisation is blind to shifting its input, so training forward +
 * backward on noise z and on 1000 + z (the shift exact in float: z is
 * taken as (1000 + z) - 1000, Sterbenz) must give the same y and dx: an
 * end-to-end accuracy test of the large-mean case. They differ only by
 * each run's errors: the statistics' (mean within mean_tol, invstd within
 * invstd_rel_tol, each run's own) carried through
 *   dx = gamma invstd (g - sum g / m - xhat sum(g xhat) / m)
 * (a relative error d of invstd scales dx by 1 + d and xhat by 1 + d, an
 * error e of the mean moves xhat by e invstd), plus each backward's own
 * rounding (bn_reference_grads). */
START_TEST(bn_is_blind_to_a_large_shift)
{
    static const mislasi_bn_shape shapes[] = { { 8, 1, 49 }, { 5, 1, 37 }, { 16, 1, 64 } };
    const float gamma = 0.7f, beta = -1.0f;
    for (size_t k = 0; k < sizeof shapes / sizeof shapes[0]; k++) {
        const mislasi_bn_shape *s = &shapes[k];
        size_t count = s->n * s->hw;
        double m = (double)count;
        float *xs = alloc_floats(count), *xc = alloc_floats(count), *r = alloc_floats(count);
        for (size_t i = 0; i < count; i++) {
            xs[i] = (float)(1000.0 + 0.1 * sqrt(12.0) * (test_uniform() - 0.5));
            xc[i] = xs[i] - 1000.0f;
        }
        fill_uniform(r, count, -1, 1);
        float *y[2], *dx[2], mean[2], invstd[2];
        bn_stats st[2];
        const float *in[2] = { xc, xs };
        double sum_g = 0;
        for (size_t i = 0; i < count; i++)
            sum_g += fabs(r[i]);
        for (int v = 0; v < 2; v++) {
            float rm = 0, rv = 1;
            y[v] = alloc_floats(count);
            dx[v] = alloc_floats(count);
            bn_forward_train(s, in[v], &gamma, &beta, &rm, &rv, &mean[v], &invstd[v], y[v], false);
            bn_backward(s, in[v], NULL, r, &gamma, &mean[v], &invstd[v], true, dx[v], NULL, NULL);
            st[v] = bn_stats_of(s, in[v], 0);
        }
        double d = bn_invstd_rel_tol(&st[0]) + bn_invstd_rel_tol(&st[1]);
        double e = (bn_mean_tol(&st[0]) + bn_mean_tol(&st[1])) * st[1].invstd;
        double a = fabs(gamma) * st[1].invstd, sum_gxh = 0;
        for (size_t i = 0; i < count; i++)
            sum_gxh += fabs(r[i] * (xc[i] - st[0].mean) * st[0].invstd);
        for (size_t i = 0; i < count; i++) {
            double xh = fabs(xc[i] - st[0].mean) * st[0].invstd;
            double y_tol = bn_y_tol(xc[i], gamma, beta, st[0].mean, st[0].invstd, bn_mean_tol(&st[0]),
                    bn_invstd_rel_tol(&st[0])) +
                bn_y_tol(xs[i], gamma, beta, st[1].mean, st[1].invstd, bn_mean_tol(&st[1]),
                    bn_invstd_rel_tol(&st[1]));
            expect_close("bn y of 1000 + z vs y of z", i, y[1][i], y[0][i], y_tol);
            /* |dx| <= a (|g| + sum|g| / m + xhat sum|g xhat| / m) */
            double dx_mag = a * (fabs(r[i]) + sum_g / m + xh * sum_gxh / m);
            double stats = d * dx_mag + a * ((xh * d + e) * sum_gxh / m + xh * sum_g * (xh * d + e) / m);
            double rounding = 6 * U * dx_mag * 2 + 2 * a * (m + 4) * U * (sum_g + xh * sum_gxh) / m;
            expect_close("bn dx of 1000 + z vs dx of z", i, dx[1][i], dx[0][i], stats + rounding);
        }
        for (int v = 0; v < 2; v++) {
            free(y[v]);
            free(dx[v]);
        }
        free(xs); free(xc); free(r);
    }
}
END_TEST

/* ---------------------------------------------------------------- element-wise */

/* The end of a residual block, relu(bn(x) + r), rides in BN's affine pass:
 * with scale 1 and shift 0 it is max(0, fl(x + r)) exactly (1 x and x + 0
 * are exact, so one rounding), with +0 for non-positive sums; relu_backward
 * keeps dy where y > 0 and writes +0 elsewhere (y = 0 counts as inactive). */
static void add_relu(size_t n, float *y, const float *r)
{
    const float one = 1.0f, zero = 0.0f;
    mislasi_bn_shape s = {.n = 1, .c = 1, .hw = n};
    mislasi_bn_affine_image(&s, y, &one, &zero, y, true, r);
}

START_TEST(add_relu_and_relu_backward_by_hand)
{
    float y[7] = { 1.0f, -2.0f, 0.5f, 3.0f, -0.25f, 0.0f, 1e-30f };
    const float r[7] = { 2.0f, 1.0f, -0.5f, -4.0f, 0.125f, 0.0f, -1e-30f };
    const float want[7] = { 3.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f };
    add_relu(7, y, r);
    for (size_t i = 0; i < 7; i++)
        ck_assert_msg(memcmp(&y[i], &want[i], sizeof *y) == 0, "add_relu[%zu] = %g, expected %g",
            i, (double)y[i], (double)want[i]);
    const float ys[6] = { 1.0f, 0.0f, -1.0f, 2.0f, 0.0f, 5.0f };
    float dy[6] = { 0.5f, 0.25f, -3.0f, -7.0f, -1.0f, 2.0f };
    const float dwant[6] = { 0.5f, 0.0f, 0.0f, -7.0f, 0.0f, 2.0f };
    mislasi_relu_backward(6, ys, dy);
    for (size_t i = 0; i < 6; i++)
        ck_assert_msg(memcmp(&dy[i], &dwant[i], sizeof *dy) == 0, "relu_backward[%zu] = %g, expected %g",
            i, (double)dy[i], (double)dwant[i]);
    /* count 0 touches nothing */
    mislasi_relu_backward(0, NULL, NULL);
    /* y += r only where the mask is positive */
    float acc[4] = { 1.0f, 1.0f, 1.0f, 1.0f };
    const float add[4] = { 0.5f, 0.25f, 2.0f, -3.0f }, mask[4] = { 1.0f, 0.0f, -1.0f, 1e-30f };
    const float acc_want[4] = { 1.5f, 1.0f, 1.0f, -2.0f };
    mislasi_add_masked(4, acc, add, mask);
    for (size_t i = 0; i < 4; i++)
        ck_assert_msg(memcmp(&acc[i], &acc_want[i], sizeof *acc) == 0, "add_masked[%zu] = %g, expected %g",
            i, (double)acc[i], (double)acc_want[i]);
}
END_TEST

/* The same on counts that the library splits over its threads (and ones
 * it does not), for pools of 1, 2 and 3: every element is one float
 * addition (or a select), so each must equal the same operation done here,
 * bit for bit. mislasi_add is y += r. */
START_TEST(eltwise_on_random_data_and_threads)
{
    static const size_t counts[] = { 1, 17, 1037, 100003, 262147 };
    for (size_t k = 0; k < sizeof counts / sizeof counts[0]; k++)
        for (int32_t pool = 1; pool <= 3; pool++) {
            size_t n = counts[k];
            set_threads(pool);
            float *y = alloc_guarded(n), *r = alloc_floats(n), *y0 = alloc_floats(n), *dy = alloc_guarded(n),
                  *dy0 = alloc_floats(n), *z = alloc_guarded(n);
            fill_uniform(y, n, -2, 2);
            fill_uniform(r, n, -2, 2);
            fill_uniform(dy, n, -1, 1);
            memcpy(y0, y, n * sizeof *y);
            memcpy(dy0, dy, n * sizeof *dy);
            memcpy(z, y, n * sizeof *y);
            mislasi_add(n, z, r);
            check_guard(z, n, "add y");
            add_relu(n, y, r);
            check_guard(y, n, "add_relu y");
            for (size_t i = 0; i < n; i++) {
                float v = y0[i] + r[i];
                float want = v > 0.0f ? v : 0.0f;
                if (memcmp(&y[i], &want, sizeof want) != 0)
                    ck_abort_msg("add_relu[%zu] = %g, expected %g (count %zu, %d threads)",
                        i, (double)y[i], (double)want, n, (int)pool);
                if (memcmp(&z[i], &v, sizeof v) != 0)
                    ck_abort_msg("add[%zu] = %g, expected %g (count %zu, %d threads)",
                        i, (double)z[i], (double)v, n, (int)pool);
            }
            mislasi_relu_backward(n, y, dy);
            check_guard(dy, n, "relu_backward dy");
            for (size_t i = 0; i < n; i++) {
                float want = y[i] > 0.0f ? dy0[i] : 0.0f;
                if (memcmp(&dy[i], &want, sizeof want) != 0)
                    ck_abort_msg("relu_backward[%zu] = %g, expected %g (count %zu, %d threads)",
                        i, (double)dy[i], (double)want, n, (int)pool);
            }
            free(y); free(r); free(y0); free(dy); free(dy0); free(z);
        }
    /* count 0 touches nothing */
    mislasi_add(0, NULL, NULL);
}
END_TEST

/* ---------------------------------------------------------------- option-A shortcut */

/* 2 images of 3x3 pixels of 2 channels -> 2x2 pixels of 4 channels:
 * pixels (0,0), (0,2), (2,0), (2,2) (indices 0, 2, 6, 8), one zero
 * channel each side. Input value = 100 image + 10 channel + pixel, laid
 * out NHWC (channels contiguous). */
START_TEST(shortcut_worked_by_hand)
{
    const mislasi_shortcut_shape s = { .n = 2, .c_in = 2, .h = 3, .w = 3, .c_out = 4 };
    float x[2 * 9 * 2], y[2 * 4 * 4 + GUARD];
    for (size_t n = 0; n < 2; n++)
        for (size_t p = 0; p < 9; p++)
            for (size_t c = 0; c < 2; c++)
                x[(n * 9 + p) * 2 + c] = (float)(100 * n + 10 * c + p);
    for (size_t i = 0; i < 32 + GUARD; i++)
        y[i] = i < 32 ? NAN : SENTINEL;
    /* per output pixel: zero, input channel 0, input channel 1, zero */
    static const float want[32] = {
        0, 0, 10, 0,      0, 2, 12, 0,      0, 6, 16, 0,      0, 8, 18, 0,          /* image 0 */
        0, 100, 110, 0,   0, 102, 112, 0,   0, 106, 116, 0,   0, 108, 118, 0,      /* image 1 */
    };
    mislasi_shortcut_a_forward(&s, x, y);
    check_guard(y, 32, "shortcut y");
    for (size_t i = 0; i < 32; i++)
        ck_assert_msg(memcmp(&y[i], &want[i], sizeof *y) == 0, "shortcut y[%zu] = %g, expected %g",
            i, (double)y[i], (double)want[i]);

    /* backward_add: dy = 1..32 (in memory order) onto dx = 0.5 everywhere;
     * input pixel 0, 2, 6, 8 of image n gets output pixel 0, 1, 2, 3's
     * channels 1 and 2, dy 16 n + 4 pixel + 2 and + 3 */
    float dy[32], dx[2 * 9 * 2 + GUARD];
    for (size_t i = 0; i < 32; i++)
        dy[i] = (float)(i + 1);
    for (size_t i = 0; i < 36 + GUARD; i++)
        dx[i] = i < 36 ? 0.5f : SENTINEL;
    static const float dwant[36] = {
        /* image 0: pixels 0..8, two channels each */
        2.5f, 3.5f,  .5f, .5f,  6.5f, 7.5f,  .5f, .5f,  .5f, .5f,  .5f, .5f,  10.5f, 11.5f,  .5f, .5f,  14.5f, 15.5f,
        /* image 1 */
        18.5f, 19.5f,  .5f, .5f,  22.5f, 23.5f,  .5f, .5f,  .5f, .5f,  .5f, .5f,  26.5f, 27.5f,  .5f, .5f,  30.5f, 31.5f,
    };
    mislasi_shortcut_a_backward_add(&s, dy, dx);
    check_guard(dx, 36, "shortcut dx");
    for (size_t i = 0; i < 36; i++)
        ck_assert_msg(dx[i] == dwant[i], "shortcut dx[%zu] = %g, expected %g", i, (double)dx[i], (double)dwant[i]);
}
END_TEST

/* Random shapes (odd and even sizes, c_out = c_in too; pools of 1, 2 and
 * 3 threads) against a naive copy; backward_add adds exactly dy at the copied positions (one float
 * addition each, compared bit for bit with the same addition) and leaves
 * the rest of dx alone; and it is the adjoint of forward: sum R y = sum x
 * dx_R, the same products summed in another order (double, 1e-12). The
 * map is linear, so the adjoint identity is the finite-difference check. */
START_TEST(shortcut_matches_a_naive_copy)
{
    static const mislasi_shortcut_shape shapes[] = {
        { 3, 3, 5, 4, 7 }, { 2, 4, 8, 8, 8 }, { 1, 2, 1, 1, 6 }, { 4, 16, 7, 9, 32 }, { 2, 5, 2, 3, 5 },
        { 37, 4, 6, 5, 8 },     /* enough images to be split over the threads */
    };
    for (size_t k = 0; k < 3 * sizeof shapes / sizeof shapes[0]; k++) {
        const mislasi_shortcut_shape *s = &shapes[k / 3];
        set_threads((int32_t)(k % 3) + 1);
        size_t oh = (s->h + 1) / 2, ow = (s->w + 1) / 2, pad = (s->c_out - s->c_in) / 2;
        size_t xs = s->n * s->c_in * s->h * s->w, ys = s->n * s->c_out * oh * ow;
        float *x = alloc_floats(xs), *y = alloc_guarded(ys), *r = alloc_floats(ys);
        float *dx = alloc_guarded(xs), *dx0 = alloc_floats(xs);
        fill_uniform(x, xs, -1, 1);
        fill_uniform(r, ys, -1, 1);
        mislasi_shortcut_a_forward(s, x, y);
        check_guard(y, ys, "shortcut y");
        for (size_t n = 0; n < s->n; n++)
            for (size_t c = 0; c < s->c_out; c++)
                for (size_t i = 0; i < oh; i++)
                    for (size_t j = 0; j < ow; j++) {
                        size_t o = ((n * oh + i) * ow + j) * s->c_out + c;
                        float want = c < pad || c >= pad + s->c_in ? 0.0f
                            : x[((n * s->h + 2 * i) * s->w + 2 * j) * s->c_in + c - pad];
                        ck_assert_msg(memcmp(&y[o], &want, sizeof want) == 0,
                            "shortcut y[%zu] = %g, expected %g", o, (double)y[o], (double)want);
                    }
        fill_uniform(dx, xs, -1, 1);
        memcpy(dx0, dx, xs * sizeof *dx);
        mislasi_shortcut_a_backward_add(s, r, dx);
        check_guard(dx, xs, "shortcut dx");
        double lhs = dot_rf(r, y, ys), rhs = 0, mag = 0;
        for (size_t n = 0; n < s->n; n++)
            for (size_t c = 0; c < s->c_in; c++)
                for (size_t i = 0; i < s->h; i++)
                    for (size_t j = 0; j < s->w; j++) {
                        size_t at = ((n * s->h + i) * s->w + j) * s->c_in + c;
                        float want = dx0[at];
                        double grad = 0;
                        if (i % 2 == 0 && j % 2 == 0) {
                            float g = r[((n * oh + i / 2) * ow + j / 2) * s->c_out + pad + c];
                            want = dx0[at] + g;
                            grad = g;
                        }
                        ck_assert_msg(memcmp(&dx[at], &want, sizeof want) == 0,
                            "shortcut dx[%zu] = %g, expected %g", at, (double)dx[at], (double)want);
                        rhs += x[at] * grad;
                        mag += fabs(x[at] * grad);
                    }
        ck_assert_close(lhs, rhs, 1e-12 * (1 + mag), 0);
        free(x); free(y); free(r); free(dx); free(dx0);
    }
}
END_TEST

/* ---------------------------------------------------------------- pooling */

/* NHWC: channel ch of pixel p (within its image) of image i, in an image of
 * `pixels` pixels of c channels */
#define PIX_AT(c_, pixels_, i_, ch_, p_) (((i_) * (pixels_) + (p_)) * (c_) + (ch_))

static void naive_maxpool(const mislasi_pool_shape *s, const float *x, float *y, int32_t *arg)
{
    size_t oh_n = (s->h + 2 * s->pad - s->k) / s->stride + 1, ow_n = (s->w + 2 * s->pad - s->k) / s->stride + 1;
    size_t plane = s->h * s->w;
    for (size_t n = 0; n < s->n; n++)
        for (size_t c = 0; c < s->c; c++)
            for (size_t oh = 0; oh < oh_n; oh++)
                for (size_t ow = 0; ow < ow_n; ow++) {
                    int32_t best = -1;
                    for (size_t i = 0; i < s->k; i++)
                        for (size_t j = 0; j < s->k; j++) {
                            long ih = (long)(oh * s->stride + i) - (long)s->pad;
                            long iw = (long)(ow * s->stride + j) - (long)s->pad;
                            if (ih < 0 || iw < 0 || ih >= (long)s->h || iw >= (long)s->w)
                                continue;
                            int32_t at = (int32_t)((size_t)ih * s->w + (size_t)iw);
                            /* the first maximum in row-major window order */
                            if (best < 0 || x[PIX_AT(s->c, plane, n, c, (size_t)at)] >
                                            x[PIX_AT(s->c, plane, n, c, (size_t)best)])
                                best = at;
                        }
                    size_t o = PIX_AT(s->c, oh_n * ow_n, n, c, oh * ow_n + ow);
                    arg[o] = best;
                    y[o] = x[PIX_AT(s->c, plane, n, c, (size_t)best)];
                }
}

static const mislasi_pool_shape POOL_SHAPES[] = {
    { 2, 3, 7, 7, 3, 2, 1 },    /* odd: 4x4 */
    { 3, 2, 8, 8, 3, 2, 1 },    /* even: 4x4, the last window half padding */
    { 1, 1, 1, 1, 3, 2, 1 },    /* one pixel */
    { 2, 2, 2, 5, 3, 2, 1 },
    { 2, 4, 16, 13, 3, 2, 1 },
    { 3, 19, 9, 6, 3, 2, 1 },   /* channels not a multiple of any vector width */
};

/* Values: random (ties unlikely), small integers (ties everywhere: the
 * first maximum in row-major window order wins) and all negative (the
 * padding is not a zero candidate), on pools of 1, 2 and 3 threads. y is a
 * copy: exact. */
START_TEST(maxpool_forward_matches_naive)
{
    for (size_t k = 0; k < sizeof POOL_SHAPES / sizeof POOL_SHAPES[0]; k++)
        for (int kind = 0; kind < 3; kind++) {
            const mislasi_pool_shape *s = &POOL_SHAPES[k];
            set_threads(kind + 1);
            size_t oh = mislasi_pool_out_h(s), ow = mislasi_pool_out_w(s);
            ck_assert_uint_eq(oh, (s->h + 1) / 2);      /* 3 / 2 / 1: ceil(h / 2) */
            ck_assert_uint_eq(ow, (s->w + 1) / 2);
            size_t xs = s->n * s->c * s->h * s->w, ys = s->n * s->c * oh * ow;
            float *x = alloc_floats(xs), *y = alloc_guarded(ys), *yw = alloc_floats(ys);
            int32_t *arg = malloc((ys + GUARD) * sizeof *arg), *argw = malloc(ys * sizeof *argw);
            for (size_t i = 0; i < ys + GUARD; i++)
                arg[i] = i < ys ? -7 : 0x5a5a5a5a;
            for (size_t i = 0; i < xs; i++)
                x[i] = kind == 0 ? (float)(2 * test_uniform() - 1)
                     : kind == 1 ? (float)(int)(3 * test_uniform())
                     : (float)(-1 - test_uniform());
            mislasi_maxpool_forward(s, x, y, arg);
            naive_maxpool(s, x, yw, argw);
            check_guard(y, ys, "maxpool y");
            for (size_t i = 0; i < GUARD; i++)
                ck_assert_int_eq(arg[ys + i], 0x5a5a5a5a);
            for (size_t i = 0; i < ys; i++) {
                ck_assert_msg(arg[i] == argw[i], "maxpool kind %d, h %zu w %zu: argmax[%zu] = %d, expected %d",
                    kind, s->h, s->w, i, (int)arg[i], (int)argw[i]);
                ck_assert_msg(y[i] == yw[i], "maxpool y[%zu] = %g, expected %g", i, (double)y[i], (double)yw[i]);
            }
            free(x); free(y); free(yw); free(arg); free(argw);
        }
}
END_TEST

/* A 4x4 image of two channels worked by hand (windows rows/cols {-1,0,1}
 * and {1,2,3}), laid out NHWC. Channel 0:     channel 1 (channel 0
 *     1 5 2 0                                   negated, but a 0 at (1,3)):
 *     3 4 9 9                                  -1 -5 -2  0
 *     7 0 1 8                                  -3 -4 -9  0
 *     6 7 2 3                                  -7  0 -1 -8
 *                                              -6 -7 -2 -3 */
START_TEST(maxpool_worked_by_hand)
{
    const mislasi_pool_shape s = { 1, 2, 4, 4, 3, 2, 1 };
    const float x[32] = {    /* per pixel: channel 0, channel 1 */
        1, -1,   5, -5,   2, -2,   0, 0,
        3, -3,   4, -4,   9, -9,   9, 0,
        7, -7,   0, 0,    1, -1,   8, -8,
        6, -6,   7, -7,   2, -2,   3, -3,
    };
    float y[8];
    int32_t arg[8];
    mislasi_maxpool_forward(&s, x, y, arg);
    /* channel 0: window 0: rows 0-1 cols 0-1: 5 at 1; window 1: rows 0-1 cols 1-3: 9 at 6 (first of
     * the two 9s); window 2: rows 1-3 cols 0-1: 7 at 8 (first of the two 7s); window 3: rows 1-3
     * cols 1-3: 9 at 6. Channel 1: -1 at 0; 0 at 3 (before the 0 at 7); 0 at 9; 0 at 7 (before
     * the 0 at 9). Per output pixel: channel 0, channel 1. */
    const float yw[8] = { 5, -1,   9, 0,   7, 0,   9, 0 };
    const int32_t aw[8] = { 1, 0,   6, 3,   8, 9,   6, 7 };
    for (size_t i = 0; i < 8; i++) {
        ck_assert_float_eq(y[i], yw[i]);
        ck_assert_int_eq(arg[i], aw[i]);
    }
    /* backward: dy routed to the argmax; in channel 0 two windows onto pixel 6 */
    const float dy[8] = { 1.0f, 16.0f,   2.0f, 32.0f,   4.0f, 64.0f,   8.0f, 128.0f };
    const float dwant[32] = {
        0, 16,   1, 0,    0, 0,    0, 32,
        0, 0,    0, 0,    10, 0,   0, 128,
        4, 0,    0, 64,   0, 0,    0, 0,
        0, 0,    0, 0,    0, 0,    0, 0,
    };
    float dx[32 + GUARD];
    for (size_t i = 0; i < 32 + GUARD; i++)
        dx[i] = i < 32 ? NAN : SENTINEL;
    mislasi_maxpool_backward(&s, dy, arg, dx);
    check_guard(dx, 32, "maxpool dx");
    for (size_t i = 0; i < 32; i++)
        ck_assert_msg(dx[i] == dwant[i], "maxpool dx[%zu] = %g, expected %g", i, (double)dx[i], (double)dwant[i]);
}
END_TEST

/* Backward: dx = dy scattered to the argmax (an input can win up to 4
 * overlapping windows: a float sum of <= 4 terms, within 4 u of their
 * magnitudes); and against central differences of the forward on distinct
 * values spaced 1e-2 apart with step 1e-3, where no window's maximum
 * changes hands, so the quotient is exact (L is linear there) up to the
 * double rounding of L (1e-12). */
START_TEST(maxpool_backward_matches_routing_and_finite_differences)
{
    for (size_t k = 0; k < sizeof POOL_SHAPES / sizeof POOL_SHAPES[0]; k++) {
        const mislasi_pool_shape *s = &POOL_SHAPES[k];
        size_t oh = mislasi_pool_out_h(s), ow = mislasi_pool_out_w(s), plane = s->h * s->w;
        size_t xs = s->n * s->c * plane, ys = s->n * s->c * oh * ow;
        float *x = alloc_floats(xs), *y = alloc_floats(ys), *dy = alloc_floats(ys), *dx = alloc_guarded(xs);
        int32_t *arg = malloc(ys * sizeof *arg), *argw = malloc(ys * sizeof *argw);
        /* a random permutation of 0..plane-1 per image and channel, times 1e-2 */
        for (size_t n = 0; n < s->n; n++)
            for (size_t c = 0; c < s->c; c++) {
                for (size_t i = 0; i < plane; i++)
                    x[PIX_AT(s->c, plane, n, c, i)] = (float)i;
                for (size_t i = plane; i > 1; i--) {
                    size_t j = pick(i);
                    float t = x[PIX_AT(s->c, plane, n, c, i - 1)];
                    x[PIX_AT(s->c, plane, n, c, i - 1)] = x[PIX_AT(s->c, plane, n, c, j)];
                    x[PIX_AT(s->c, plane, n, c, j)] = t;
                }
                for (size_t i = 0; i < plane; i++)
                    x[PIX_AT(s->c, plane, n, c, i)] *= 1e-2f;
            }
        fill_uniform(dy, ys, -1, 1);
        mislasi_maxpool_forward(s, x, y, arg);
        mislasi_maxpool_backward(s, dy, arg, dx);
        check_guard(dx, xs, "maxpool dx");
        naive_maxpool(s, x, y, argw);
        double *want = alloc_doubles(xs), *mag = alloc_doubles(xs);
        for (size_t n = 0; n < s->n; n++)
            for (size_t c = 0; c < s->c; c++)
                for (size_t o = 0; o < oh * ow; o++) {
                    size_t from = PIX_AT(s->c, oh * ow, n, c, o);
                    size_t to = PIX_AT(s->c, plane, n, c, (size_t)argw[from]);
                    want[to] += dy[from];
                    mag[to] += fabs(dy[from]);
                }
        for (size_t i = 0; i < xs; i++)
            expect_close("maxpool dx", i, dx[i], want[i], 4 * U * mag[i]);
        for (int e = 0; e < 8; e++) {
            size_t i = pick(xs);
            float keep = x[i], up = keep + 1e-3f, down = keep - 1e-3f;
            x[i] = up;
            mislasi_maxpool_forward(s, x, y, arg);
            double lp = dot_rf(dy, y, ys);
            x[i] = down;
            mislasi_maxpool_forward(s, x, y, arg);
            double lm = dot_rf(dy, y, ys);
            x[i] = keep;
            expect_close("maxpool dx vs finite difference", i, dx[i], (lp - lm) / ((double)up - down),
                4 * U * mag[i] + 1e-9);
        }
        free(x); free(y); free(dy); free(dx); free(arg); free(argw); free(want); free(mag);
    }
}
END_TEST

/* Average pooling: per image and channel the mean over the pixels (a sum
 * of hw values, within (hw + 2) u of their magnitudes in float, better in
 * double) and its backward dy / hw spread over the pixels (one division:
 * within u); the backward is the forward's adjoint (linear map: the finite
 * difference). NHWC input, on pools of 1, 2 and 3 threads; 300 channels
 * are more than the library takes at once. */
START_TEST(avgpool_matches_double)
{
    static const size_t shapes[][3] = { { 2, 3, 64 }, { 3, 5, 49 }, { 1, 1, 1 }, { 4, 7, 17 }, { 9, 300, 5 } };
    for (size_t k = 0; k < sizeof shapes / sizeof shapes[0]; k++) {
        size_t n = shapes[k][0], c = shapes[k][1], hw = shapes[k][2];
        set_threads((int32_t)(k % 3) + 1);
        float *x = alloc_floats(n * c * hw), *y = alloc_guarded(n * c), *dy = alloc_floats(n * c),
              *dx = alloc_guarded(n * c * hw);
        fill_uniform(x, n * c * hw, -1, 3);
        fill_uniform(dy, n * c, -1, 1);
        mislasi_avgpool_forward(n, c, hw, x, y);
        check_guard(y, n * c, "avgpool y");
        for (size_t i = 0; i < n; i++)
            for (size_t ch = 0; ch < c; ch++) {
                double sum = 0, mag = 0;
                for (size_t p = 0; p < hw; p++) {
                    sum += x[PIX_AT(c, hw, i, ch, p)];
                    mag += fabs(x[PIX_AT(c, hw, i, ch, p)]);
                }
                expect_close("avgpool y", i * c + ch, y[i * c + ch], sum / (double)hw,
                    ((double)hw + 2) * U * mag / (double)hw);
            }
        mislasi_avgpool_backward(n, c, hw, dy, dx);
        check_guard(dx, n * c * hw, "avgpool dx");
        double lhs = dot_rf(dy, y, n * c), rhs = 0, mag = 0;
        for (size_t i = 0; i < n; i++)
            for (size_t ch = 0; ch < c; ch++)
                for (size_t p = 0; p < hw; p++) {
                    size_t at = PIX_AT(c, hw, i, ch, p);
                    double g = dy[i * c + ch] / (double)hw;
                    expect_close("avgpool dx", at, dx[at], g, U * fabs(g));
                    rhs += (double)dx[at] * x[at];
                    mag += fabs(g * x[at]);
                }
        /* <avg(x), dy> = <x, avg^T(dy)>: both sides' float roundings (y's
         * and dx's, each within (hw + 2) u, resp. u, of their terms) */
        ck_assert_close(lhs, rhs, ((double)hw + 4) * U * mag + 1e-12, 0);
        free(x); free(y); free(dy); free(dx);
    }
}
END_TEST

/* ---------------------------------------------------------------- linear */

/* sum |R| (d + 3) u mag over the outputs: the bound of L's rounding */
static double linear_loss_rounding(size_t n, size_t d, size_t k, const float *x, const float *w,
        const float *b, const float *r)
{
    double total = 0;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < k; j++) {
            double mag = fabs(b[j]);
            for (size_t l = 0; l < d; l++)
                mag += fabs((double)x[i * d + l] * w[j * d + l]);
            total += fabs((double)r[i * k + j]) * ((double)d + 3) * U * mag;
        }
    return total;
}

/* y = x W^T + b against double: d products and the bias, (d + 3) u of the
 * magnitudes. Backward: dw[j, :] = sum over the batch of dy[i, j] x[i, :]
 * (n terms), db[j] = sum dy[:, j] (n terms), dx = dy W (k terms), each
 * within (terms + 2) u of its magnitudes; any of them NULL leaves the
 * others' bits unchanged. Then central differences of the forward: L is
 * linear in x, W and b, so the step (1) adds no truncation, only each L's
 * rounding, sum |R| (d + 3) u mag, twice over the step. */
START_TEST(linear_matches_double_and_finite_differences)
{
    static const size_t shapes[][3] = { { 7, 13, 5 }, { 1, 1, 1 }, { 64, 300, 10 }, { 3, 64, 100 } };
    for (size_t t = 0; t < sizeof shapes / sizeof shapes[0]; t++) {
        size_t n = shapes[t][0], d = shapes[t][1], k = shapes[t][2];
        float *x = alloc_floats(n * d), *w = alloc_floats(k * d), *b = alloc_floats(k), *dy = alloc_floats(n * k);
        fill_uniform(x, n * d, -1, 1);
        fill_uniform(w, k * d, -1, 1);
        fill_uniform(b, k, -1, 1);
        fill_uniform(dy, n * k, -1, 1);
        float *x0 = copy_floats(x, n * d), *w0 = copy_floats(w, k * d), *dy0 = copy_floats(dy, n * k);
        float *y = alloc_guarded(n * k);
        mislasi_linear_forward(n, d, k, x, w, b, y);
        check_guard(y, n * k, "linear y");
        for (size_t i = 0; i < n; i++)
            for (size_t j = 0; j < k; j++) {
                double sum = b[j], mag = fabs(b[j]);
                for (size_t l = 0; l < d; l++) {
                    sum += (double)x[i * d + l] * w[j * d + l];
                    mag += fabs((double)x[i * d + l] * w[j * d + l]);
                }
                expect_close("linear y", i * k + j, y[i * k + j], sum, ((double)d + 3) * U * mag);
            }
        float *dw = alloc_guarded(k * d), *db = alloc_guarded(k), *dx = alloc_guarded(n * d);
        mislasi_linear_backward(n, d, k, x, w, dy, dw, db, dx);
        check_guard(dw, k * d, "linear dw");
        check_guard(db, k, "linear db");
        check_guard(dx, n * d, "linear dx");
        expect_same_bits("linear x (input)", x, x0, n * d);
        expect_same_bits("linear w (input)", w, w0, k * d);
        expect_same_bits("linear dy (input)", dy, dy0, n * k);
        for (size_t j = 0; j < k; j++) {
            double sum = 0, mag = 0;
            for (size_t i = 0; i < n; i++) {
                sum += dy[i * k + j];
                mag += fabs(dy[i * k + j]);
            }
            expect_close("linear db", j, db[j], sum, ((double)n + 2) * U * mag);
            for (size_t l = 0; l < d; l++) {
                sum = 0, mag = 0;
                for (size_t i = 0; i < n; i++) {
                    sum += (double)dy[i * k + j] * x[i * d + l];
                    mag += fabs((double)dy[i * k + j] * x[i * d + l]);
                }
                expect_close("linear dw", j * d + l, dw[j * d + l], sum, ((double)n + 2) * U * mag);
            }
        }
        for (size_t i = 0; i < n; i++)
            for (size_t l = 0; l < d; l++) {
                double sum = 0, mag = 0;
                for (size_t j = 0; j < k; j++) {
                    sum += (double)dy[i * k + j] * w[j * d + l];
                    mag += fabs((double)dy[i * k + j] * w[j * d + l]);
                }
                expect_close("linear dx", i * d + l, dx[i * d + l], sum, ((double)k + 2) * U * mag);
            }
        /* NULLs */
        for (int mask = 0; mask < 7; mask++) {
            float *dw2 = alloc_floats(k * d), *db2 = alloc_floats(k), *dx2 = alloc_floats(n * d);
            refill_nan(dw2, k * d); refill_nan(db2, k); refill_nan(dx2, n * d);
            mislasi_linear_backward(n, d, k, x, w, dy, mask & 1 ? dw2 : NULL, mask & 2 ? db2 : NULL,
                mask & 4 ? dx2 : NULL);
            if (mask & 1) expect_same_bits("linear dw (NULLs)", dw2, dw, k * d);
            if (mask & 2) expect_same_bits("linear db (NULLs)", db2, db, k);
            if (mask & 4) expect_same_bits("linear dx (NULLs)", dx2, dx, n * d);
            free(dw2); free(db2); free(dx2);
        }
        /* finite differences */
        float *yp = alloc_floats(n * k);
        for (int e = 0; e < 9; e++) {
            int what = e % 3;
            float *v = what == 0 ? x : what == 1 ? w : b;
            size_t i = pick(what == 0 ? n * d : what == 1 ? k * d : k);
            float keep = v[i], ends[2] = { keep + 1.0f, keep - 1.0f };
            double l[2], rounding = 0;
            for (int side = 0; side < 2; side++) {
                v[i] = ends[side];
                mislasi_linear_forward(n, d, k, x, w, b, yp);
                l[side] = dot_rf(dy, yp, n * k);
                rounding += linear_loss_rounding(n, d, k, x, w, b, dy);
            }
            v[i] = keep;
            double step = (double)ends[0] - ends[1];
            double got = what == 0 ? dx[i] : what == 1 ? dw[i] : db[i];
            /* the analytic value's own bound, as above */
            double gmag = 0, terms;
            if (what == 0) {
                for (size_t j = 0; j < k; j++)
                    gmag += fabs((double)dy[(i / d) * k + j] * w[j * d + i % d]);
                terms = (double)k;
            } else if (what == 1) {
                for (size_t r = 0; r < n; r++)
                    gmag += fabs((double)dy[r * k + i / d] * x[r * d + i % d]);
                terms = (double)n;
            } else {
                for (size_t r = 0; r < n; r++)
                    gmag += fabs((double)dy[r * k + i]);
                terms = (double)n;
            }
            expect_close(what == 0 ? "linear dx vs finite difference" : what == 1 ? "linear dw vs finite difference"
                : "linear db vs finite difference", i, got, (l[0] - l[1]) / step,
                rounding / step + (terms + 2) * U * gmag);
        }
        free(x); free(w); free(b); free(dy); free(x0); free(w0); free(dy0); free(y);
        free(dw); free(db); free(dx); free(yp);
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("layers");
    TCase *bn = tcase_create("batchnorm");
    tcase_add_test(bn, bn_forward_train_matches_double);
    tcase_add_test(bn, bn_fused_relu_is_relu_of_the_plain_output);
    tcase_add_test(bn, bn_constant_channel_gives_beta);
    tcase_add_test(bn, bn_forward_eval_uses_the_running_statistics);
    tcase_add_test(bn, bn_backward_matches_the_analytic_gradient);
    tcase_add_test(bn, bn_forward_is_the_same_for_every_thread_count);
    tcase_add_test(bn, bn_backward_matches_finite_differences);
    tcase_add_test(bn, bn_is_blind_to_a_large_shift);
    tcase_add_test(bn, bn_pieces_match_double_and_compose_to_the_forms);
    tcase_add_test(bn, bn_pieces_of_a_cut_batch_are_the_whole_batch);
    tcase_add_test(bn, bn_wide_layer_is_its_channels_alone);
    suite_add_tcase(s, bn);
    TCase *other = tcase_create("other");
    tcase_add_test(other, add_relu_and_relu_backward_by_hand);
    tcase_add_test(other, eltwise_on_random_data_and_threads);
    tcase_add_test(other, shortcut_worked_by_hand);
    tcase_add_test(other, shortcut_matches_a_naive_copy);
    tcase_add_test(other, maxpool_forward_matches_naive);
    tcase_add_test(other, maxpool_worked_by_hand);
    tcase_add_test(other, maxpool_backward_matches_routing_and_finite_differences);
    tcase_add_test(other, avgpool_matches_double);
    tcase_add_test(other, linear_matches_double_and_finite_differences);
    suite_add_tcase(s, other);
    return test_run_suite(s);
}
