/* Calibration beyond the streaming object: RMS calibration error, adaptive
 * and classwise ECE worked by hand (ties included), temperature and vector
 * scaling recovering known parameters from synthetic logits, and the
 * post-hoc classifier fixes checked on a model's predictions. */
#include "testutil.h"

#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

/* Two-class logits whose softmax confidence in class 0 is p (p >= 1/2). */
static void two_class_logits(float *z, double p)
{
    z[0] = (float)log(p / (1 - p));
    z[1] = 0.0f;
}

START_TEST(rms_calibration_error_by_hand)
{
    /* confidences 0.6, 0.6 (one right) and 0.7 (right). With 2 bins all
     * three share (0.5, 1]: accuracy 2/3, confidence 1.9/3, one gap. */
    mislas_calib *c = NULL;
    ck_assert_status(mislas_calib_new(&c, 2, 2), MISLAS_OK);
    const double conf[3] = { 0.6, 0.6, 0.7 };
    const int32_t pred[3] = { 0, 0, 0 }, y[3] = { 0, 1, 0 };
    ck_assert_status(mislas_calib_add_confidences(c, conf, pred, y, 3), MISLAS_OK);
    mislas_calib_summary s;
    mislas_calib_summary_init(&s);
    ck_assert_status(mislas_calib_summarize(c, &s), MISLAS_OK);
    ck_assert_close(s.rms, 0.1 / 3, 1e-12, 0);
    ck_assert_close(s.ece, s.rms, 1e-12, 0);
    mislas_calib_free(c);
    /* 10 bins: (0.5, 0.6] has 2 samples, gap 0.1; (0.6, 0.7] 1 sample, gap 0.3 */
    ck_assert_status(mislas_calib_new(&c, 2, 10), MISLAS_OK);
    ck_assert_status(mislas_calib_add_confidences(c, conf, pred, y, 3), MISLAS_OK);
    ck_assert_status(mislas_calib_summarize(c, &s), MISLAS_OK);
    ck_assert_close(s.rms, sqrt((2 * 0.01 + 0.09) / 3), 1e-12, 0);
    ck_assert_close(s.ece, (2 * 0.1 + 0.3) / 3, 1e-12, 0);
    /* a caller built against the summary before rms gets nothing past its end */
    unsigned char old[sizeof(mislas_calib_summary)];
    memset(old, 0xAB, sizeof old);
    size_t old_size = offsetof(mislas_calib_summary, rms);
    memcpy(old, &old_size, sizeof old_size);
    ck_assert_status(mislas_calib_summarize(c, (mislas_calib_summary *)(void *)old), MISLAS_OK);
    for (size_t i = old_size; i < sizeof old; i++)
        ck_assert_uint_eq(old[i], 0xAB);
    mislas_calib_free(c);
}
END_TEST

START_TEST(adaptive_ece_by_hand)
{
    /* confidences 0.9 (wrong), 0.8, 0.7, 0.6 (right), 2 bins of 2:
     * {0.6, 0.7}: |2 - 1.3| and {0.8, 0.9}: |1 - 1.7| -> (0.7 + 0.7) / 4 */
    float z[8];
    const double p[4] = { 0.9, 0.8, 0.7, 0.6 };
    for (int i = 0; i < 4; i++)
        two_class_logits(z + 2 * i, p[i]);
    const int32_t y[4] = { 1, 0, 0, 0 };
    double ece;
    ck_assert_status(mislas_calib_adaptive_ece(&ece, z, y, 4, 2, 2), MISLAS_OK);
    ck_assert_close(ece, 0.35, 1e-6, 0);
    /* one bin: |3 - 3| / 4 = 0 */
    ck_assert_status(mislas_calib_adaptive_ece(&ece, z, y, 4, 2, 1), MISLAS_OK);
    ck_assert_close(ece, 0.0, 1e-6, 0);
    /* 4 bins: every sample alone: (0.9 + 0.2 + 0.3 + 0.4) / 4 */
    ck_assert_status(mislas_calib_adaptive_ece(&ece, z, y, 4, 2, 4), MISLAS_OK);
    ck_assert_close(ece, 1.8 / 4, 1e-6, 0);
}
END_TEST

START_TEST(adaptive_ece_keeps_ties_together)
{
    /* three samples at 0.75 (two right) and one at 0.95 (right), 2 bins: the
     * cut at position 2 would split the tie; it moves to 3, giving bins
     * {0.75 x 3} and {0.95}: (|2 - 2.25| + |1 - 0.95|) / 4 in every order */
    const double p[4] = { 0.75, 0.75, 0.75, 0.95 };
    const int32_t right[4] = { 1, 0, 1, 1 };
    int order[4] = { 0, 1, 2, 3 };
    for (int perm = 0; perm < 24; perm++) {
        /* the perm-th permutation of 4 items (factorial number system) */
        int pool[4] = { 0, 1, 2, 3 }, left = 4, code = perm;
        for (int i = 0; i < 4; i++) {
            int fact = 1;
            for (int f = 2; f < left; f++)
                fact *= f;
            int pick = code / fact;
            code %= fact;
            order[i] = pool[pick];
            memmove(pool + pick, pool + pick + 1, (size_t)(left - pick - 1) * sizeof *pool);
            left--;
        }
        float z[8];
        int32_t y[4];
        for (int i = 0; i < 4; i++) {
            two_class_logits(z + 2 * i, p[order[i]]);
            y[i] = right[order[i]] ? 0 : 1;
        }
        double ece;
        ck_assert_status(mislas_calib_adaptive_ece(&ece, z, y, 4, 2, 2), MISLAS_OK);
        ck_assert_close(ece, (0.25 + 0.05) / 4, 1e-6, 0);
    }
    /* all tied: one bin whatever num_bins says */
    const float same[6] = { 1, 0, 1, 0, 1, 0 };
    const int32_t y3[3] = { 0, 0, 1 };
    double ece;
    ck_assert_status(mislas_calib_adaptive_ece(&ece, same, y3, 3, 2, 3), MISLAS_OK);
    double conf = 1.0 / (1.0 + exp(-1.0));
    ck_assert_close(ece, fabs(2.0 - 3 * conf) / 3, 1e-6, 0);
}
END_TEST

START_TEST(classwise_ece_by_hand)
{
    /* two samples, 2 classes, 2 bins [0, .5) and [.5, 1]:
     * sample A p = (0.8, 0.2), y = 0; sample B p = (0.4, 0.6), y = 0.
     * class 0: bin 1 {A}: |1 - 0.8| ; bin 0 {B}: |1 - 0.4| -> (0.2 + 0.6) / 2 = 0.4
     * class 1: bin 0 {A}: |0 - 0.2| ; bin 1 {B}: |0 - 0.6| -> 0.4; mean 0.4 */
    float z[4];
    two_class_logits(z, 0.8);
    z[2] = 0.0f;
    z[3] = (float)log(1.5);
    const int32_t y[2] = { 0, 0 };
    double ece;
    ck_assert_status(mislas_calib_classwise_ece(&ece, z, y, 2, 2, 2), MISLAS_OK);
    ck_assert_close(ece, 0.4, 1e-6, 0);
    /* one bin: class 0 |2 - 1.2| / 2 = 0.4, class 1 |0 - 0.8| / 2 = 0.4 */
    ck_assert_status(mislas_calib_classwise_ece(&ece, z, y, 2, 2, 1), MISLAS_OK);
    ck_assert_close(ece, 0.4, 1e-6, 0);
    /* three classes, perfectly calibrated one-hot-ish predictions: ~0 */
    const float sure[6] = { 60, 0, 0, 0, 0, 60 };
    const int32_t ys[2] = { 0, 2 };
    ck_assert_status(mislas_calib_classwise_ece(&ece, sure, ys, 2, 3, 10), MISLAS_OK);
    ck_assert_close(ece, 0.0, 1e-12, 0);
}
END_TEST

/* ------------------------------------------------------ synthetic logits */

/* n samples of K classes whose true (calibrated) logits are w; labels drawn
 * from softmax(w); the logits handed out are a_j w_j + c_j. */
static void synthetic(size_t n, int32_t k, const double *a, const double *c, float *z, int32_t *y)
{
    double *w = malloc((size_t)k * sizeof *w);
    for (size_t i = 0; i < n; i++) {
        double sum = 0.0;
        for (int32_t j = 0; j < k; j++) {
            w[j] = 3.0 * test_uniform() - 1.5 + (j == (int32_t)(i % (size_t)k) ? 2.0 : 0.0);
            sum += exp(w[j]);
        }
        double u = test_uniform() * sum, acc = 0.0;
        y[i] = k - 1;
        for (int32_t j = 0; j < k; j++) {
            acc += exp(w[j]);
            if (u < acc) {
                y[i] = j;
                break;
            }
        }
        for (int32_t j = 0; j < k; j++)
            z[i * (size_t)k + (size_t)j] = (float)(a[j] * w[j] + c[j]);
    }
    free(w);
}

/* The objective vector scaling minimises, written out apart from the
 * library's; temperature scaling's NLL is its case a = 1/T, c = 0, l2 = 0. */
static double vector_objective(const float *z, const int32_t *y, size_t n, int32_t k, const double *a,
        const double *c, double l2, double a0)
{
    double total = 0.0;
    for (size_t i = 0; i < n; i++) {
        double m = -INFINITY, s = 0.0;
        for (int32_t j = 0; j < k; j++)
            m = fmax(m, a[j] * z[i * (size_t)k + (size_t)j] + c[j]);
        for (int32_t j = 0; j < k; j++)
            s += exp(a[j] * z[i * (size_t)k + (size_t)j] + c[j] - m);
        total += m + log(s) - (a[y[i]] * z[i * (size_t)k + (size_t)y[i]] + c[y[i]]);
    }
    double penalty = 0.0;
    for (int32_t j = 0; j < k; j++)
        penalty += (a[j] - a0) * (a[j] - a0) + c[j] * c[j];
    return total / (double)n + 0.5 * l2 * penalty;
}

static double mean_nll(const float *z, const int32_t *y, size_t n, int32_t k, double t)
{
    double *a = malloc(2 * (size_t)k * sizeof *a), *c = a + k;
    for (int32_t j = 0; j < k; j++) {
        a[j] = 1.0 / t;
        c[j] = 0.0;
    }
    double nll = vector_objective(z, y, n, k, a, c, 0.0, 0.0);
    free(a);
    return nll;
}

START_TEST(temperature_scaling_recovers_a_known_temperature)
{
    enum { NS = 40000, KS = 5 };
    float *z = malloc(NS * KS * sizeof *z);
    int32_t *y = malloc(NS * sizeof *y);
    const double truths[2] = { 2.5, 0.6 };
    for (int t = 0; t < 2; t++) {
        double a[KS], c[KS] = { 0 };
        for (int j = 0; j < KS; j++)
            a[j] = truths[t];
        synthetic(NS, KS, a, c, z, y);
        double temperature = 0;
        ck_assert_status(mislas_calib_fit_temperature(&temperature, z, y, NS, KS, NULL), MISLAS_OK);
        /* sampling noise of 40,000 labels: a few tenths of a percent */
        ck_assert_close(temperature, truths[t], 0, 0.02);
        /* and it is the NLL's minimum: nudging it either way costs */
        double best = mean_nll(z, y, NS, KS, temperature);
        ck_assert(best <= mean_nll(z, y, NS, KS, temperature * 1.001));
        ck_assert(best <= mean_nll(z, y, NS, KS, temperature / 1.001));
    }
    free(z);
    free(y);
}
END_TEST

START_TEST(vector_scaling_recovers_known_scales_and_biases)
{
    enum { NS = 40000, KS = 4 };
    float *z = malloc(NS * KS * sizeof *z);
    int32_t *y = malloc(NS * sizeof *y);
    const double a[KS] = { 2.0, 1.0, 0.5, 1.5 }, c[KS] = { 0.5, -0.3, 0.0, 1.0 };
    synthetic(NS, KS, a, c, z, y);
    float scale[KS], bias[KS];
    ck_assert_status(mislas_calib_fit_vector_scaling(scale, bias, z, y, NS, KS, NULL), MISLAS_OK);
    /* z = a w + c, so w = z / a - c / a: scale 1 / a_j, bias -c_j / a_j,
     * up to one constant shared by every bias (softmax ignores it) */
    double shift = bias[0] - (-c[0] / a[0]);
    for (int j = 0; j < KS; j++) {
        ck_assert_close(scale[j], 1.0 / a[j], 0.03, 0.03);
        ck_assert_close(bias[j] - shift, -c[j] / a[j], 0.05, 0);
    }
    /* a heavy l2 pins vector scaling to temperature scaling's 1/T, zero biases */
    double t;
    ck_assert_status(mislas_calib_fit_temperature(&t, z, y, NS, KS, NULL), MISLAS_OK);
    mislas_calib_fit_options o;
    mislas_calib_fit_options_init(&o);
    o.l2 = 1e5;
    ck_assert_status(mislas_calib_fit_vector_scaling(scale, bias, z, y, NS, KS, &o), MISLAS_OK);
    for (int j = 0; j < KS; j++) {
        ck_assert_close(scale[j], 1.0 / t, 1e-4, 0);
        ck_assert_close(bias[j], 0.0, 1e-4, 0);
    }
    free(z);
    free(y);
}
END_TEST

/* What a barely trained network gave on a small held-out split (a ResNet-20
 * after 2 epochs on the examples check's data, 2 images per class): logits
 * in the hundreds for some classes and near 1 for others, every row nearly
 * the same vector. The NLL is far stiffer along some scales than along the
 * biases; an L-BFGS on the raw parameters crawled there and ran out of its
 * 500 iterations. */
START_TEST(vector_scaling_copes_with_logits_in_the_hundreds)
{
    enum { NS = 20, KS = 10 };
    static const float z[NS * KS] = {
        116.64, 3.2715, -14.34, -3.2638, 27.832, 107.76, 64.081, -116.79, 2.2648, -190.98,
        111.64, 2.8027, -14.082, -3.3843, 26.574, 103.31, 61.289, -111.53, 2.2373, -182.39,
        162.71, 6.5855, -15.464, -0.51567, 38.747, 151.14, 90.222, -166.65, 3.5248, -274.52,
        153.32, 5.96, -14.891, -0.77554, 36.291, 142.55, 85.178, -156.62, 3.662, -258.29,
        167.36, 5.0511, -16.206, 0.98898, 38.98, 157.38, 95.153, -171.82, 5.1124, -285.15,
        171.02, 5.3366, -16.305, 1.1536, 39.92, 160.62, 97.262, -175.77, 4.8922, -291.55,
        139.67, 2.2509, -14.711, -0.65351, 32.171, 130.52, 78.959, -142.24, 3.7231, -233.95,
        140.45, 2.5249, -14.815, -1.0032, 32.448, 131.22, 79.311, -142.92, 3.6054, -235.08,
        91.381, -2.5958, -14.379, -4.0842, 21.951, 85.458, 51.202, -89.34, 2.3962, -146.79,
        85.971, -2.3809, -13.671, -4.0724, 20.972, 80.208, 48.03, -83.937, 2.1778, -137.86,
        84.878, -3.1839, -15.095, -6.4169, 17.904, 83.701, 50.994, -80.879, 4.4432, -138.09,
        87.229, -3.1791, -15.432, -6.5107, 18.387, 85.824, 52.385, -83.23, 4.4382, -141.96,
        114.13, -2.8208, -17.28, -6.1664, 24.259, 113.25, 70.197, -111.48, 6.8276, -192.02,
        114.92, -2.8495, -17.393, -6.2432, 24.339, 114.17, 70.851, -111.95, 7.068, -193.37,
        124.96, -4.3829, -18.992, -5.4528, 25.88, 126.18, 79.512, -122.47, 9.0834, -213.62,
        122.95, -4.4404, -18.842, -5.2095, 25.489, 124.18, 78.252, -120.81, 8.9423, -210.51,
        106.58, -5.3241, -17.418, -5.7043, 21.928, 106.8, 67.479, -103.87, 7.4441, -179.09,
        104.62, -5.5621, -17.236, -5.5938, 21.54, 104.61, 66.01, -102.04, 7.1834, -175.36,
        72.705, -7.1823, -15.371, -6.7033, 16.263, 72.376, 44.774, -67.716, 4.5804, -116.41,
        69.131, -6.9373, -14.65, -6.297, 15.593, 68.427, 42.176, -64.555, 4.1254, -110.28
    };
    int32_t y[NS];
    for (int i = 0; i < NS; i++)
        y[i] = i / 2;
    mislas_calib_fit_options o;
    mislas_calib_fit_options_init(&o);
    o.l2 = 0.1;
    double t;
    ck_assert_status(mislas_calib_fit_temperature(&t, z, y, NS, KS, NULL), MISLAS_OK);
    float scale[KS], bias[KS];
    ck_assert_status(mislas_calib_fit_vector_scaling(scale, bias, z, y, NS, KS, &o), MISLAS_OK);
    /* a minimum: a step along any one parameter, sized to what it does to
     * the logits, raises the objective */
    double a[KS], c[KS];
    for (int j = 0; j < KS; j++) {
        a[j] = scale[j];
        c[j] = bias[j];
    }
    const double best = vector_objective(z, y, NS, KS, a, c, o.l2, 1.0 / t);
    for (int j = 0; j < KS; j++) {
        double rms = 0.0;
        for (int i = 0; i < NS; i++)
            rms += (double)z[i * KS + j] * z[i * KS + j] / NS;
        const double step[2] = { 1e-3 / sqrt(rms), 1e-3 };
        for (int which = 0; which < 2; which++) {
            double *p = which == 0 ? &a[j] : &c[j];
            for (int sign = -1; sign <= 1; sign += 2) {
                const double keep = *p;
                *p += sign * step[which];
                ck_assert(vector_objective(z, y, NS, KS, a, c, o.l2, 1.0 / t) >= best - 1e-12);
                *p = keep;
            }
        }
    }
}
END_TEST

START_TEST(fits_refuse_what_they_cannot_fit)
{
    double t = -1;
    float s[2], b[2];
    /* separable: the target always wins by a margin, the NLL falls as T -> 0 */
    const float sep[4] = { 2, 0, 0, 2 };
    const int32_t y[2] = { 0, 1 }, wrong[2] = { 1, 0 };
    ck_assert_status(mislas_calib_fit_temperature(&t, sep, y, 2, 2, NULL), MISLAS_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_nonnull(strstr(mislas_last_error(), "separate"));
    /* anti-informative: no positive T */
    ck_assert_status(mislas_calib_fit_temperature(&t, sep, wrong, 2, 2, NULL), MISLAS_ERR_INVALID_ARGUMENT);
    ck_assert(t == -1);
    const float nan_z[4] = { NAN, 0, 0, 1 };
    ck_assert_status(mislas_calib_fit_temperature(&t, nan_z, y, 2, 2, NULL), MISLAS_ERR_NUMERIC);
    const int32_t bad[2] = { 0, 2 };
    ck_assert_status(mislas_calib_fit_temperature(&t, sep, bad, 2, 2, NULL), MISLAS_ERR_INVALID_ARGUMENT);
    ck_assert_status(mislas_calib_fit_temperature(&t, sep, y, 0, 2, NULL), MISLAS_ERR_INVALID_ARGUMENT);
    mislas_calib_fit_options o;
    mislas_calib_fit_options_init(&o);
    o.max_iterations = 0;
    ck_assert_status(mislas_calib_fit_temperature(&t, sep, y, 2, 2, &o), MISLAS_ERR_INVALID_ARGUMENT);
    ck_assert_status(mislas_calib_fit_vector_scaling(s, b, sep, y, 2, 2, &o), MISLAS_ERR_INVALID_ARGUMENT);
    ck_assert_status(mislas_calib_fit_vector_scaling(s, b, nan_z, y, 2, 2, NULL), MISLAS_ERR_NUMERIC);
    mislas_calib_fit_options_init(&o);
    o.l2 = -1;
    ck_assert_status(mislas_calib_fit_vector_scaling(s, b, sep, y, 2, 2, &o), MISLAS_ERR_INVALID_ARGUMENT);
    /* the iteration limit reached first: an error, nothing written */
    mislas_calib_fit_options_init(&o);
    o.max_iterations = 1;
    s[0] = -7.0f;
    ck_assert_status(mislas_calib_fit_vector_scaling(s, b, sep, y, 2, 2, &o), MISLAS_ERR_STATE);
    ck_assert(s[0] == -7.0f);
    const float mixed[6] = { 2, 0, 0, 1, 1, 0.5f };
    const int32_t y3[3] = { 0, 1, 1 };
    t = -1;
    ck_assert_status(mislas_calib_fit_temperature(&t, mixed, y3, 3, 2, &o), MISLAS_ERR_STATE);
    ck_assert(t == -1);
    /* separable data have no finite minimum; a little l2 gives one */
    mislas_calib_fit_options_init(&o);
    o.l2 = 0.1;
    ck_assert_status(mislas_calib_fit_vector_scaling(s, b, sep, y, 2, 2, &o), MISLAS_OK);
    ck_assert(isfinite(s[0]) && isfinite(b[0]));
    double ece;
    ck_assert_status(mislas_calib_adaptive_ece(&ece, sep, y, 2, 2, 0), MISLAS_ERR_INVALID_ARGUMENT);
    ck_assert_status(mislas_calib_classwise_ece(&ece, sep, bad, 2, 2, 5), MISLAS_ERR_INVALID_ARGUMENT);
    ck_assert_status(mislas_calib_classwise_ece(&ece, nan_z, y, 2, 2, 5), MISLAS_ERR_NUMERIC);
    ck_assert_status(mislas_calib_adaptive_ece(&ece, NULL, y, 2, 2, 5), MISLAS_ERR_INVALID_ARGUMENT);
}
END_TEST

/* ---------------------------------------------------- post-hoc on a model */

enum { SIDE = 8, CLASSES = 3, IMAGES = 4 };

static void predict(mislas_model *m, const float *x, float *z)
{
    ck_assert_status(mislas_model_predict(m, x, IMAGES, z), MISLAS_OK);
}

START_TEST(posthoc_fixes_change_the_logits_as_promised)
{
    mislas_model *m = test_new_model(MISLAS_RESNET20, 1, SIDE, SIDE, CLASSES, 3);
    float x[IMAGES * SIDE * SIDE], before[IMAGES * CLASSES], after[IMAGES * CLASSES];
    for (size_t i = 0; i < sizeof x / sizeof x[0]; i++)
        x[i] = (float)(2 * test_uniform() - 1);
    predict(m, x, before);
    /* scale and bias */
    const float scale[CLASSES] = { 0.5f, 2.0f, 1.0f }, bias[CLASSES] = { 0.25f, -1.0f, 3.0f };
    ck_assert_status(mislas_model_scale_logits(m, scale, bias), MISLAS_OK);
    predict(m, x, after);
    for (int i = 0; i < IMAGES * CLASSES; i++)
        ck_assert_close(after[i], scale[i % CLASSES] * before[i] + bias[i % CLASSES], 1e-5, 1e-5);
    /* temperature alone, then prior adjustment: z / 2 - 0.5 log(pi) */
    memcpy(before, after, sizeof after);
    const float half[CLASSES] = { 0.5f, 0.5f, 0.5f };
    ck_assert_status(mislas_model_scale_logits(m, half, NULL), MISLAS_OK);
    const int64_t counts[CLASSES] = { 60, 30, 10 };
    ck_assert_status(mislas_model_adjust_logits_by_prior(m, counts, CLASSES, 0.5f), MISLAS_OK);
    predict(m, x, after);
    for (int i = 0; i < IMAGES * CLASSES; i++)
        ck_assert_close(after[i], 0.5 * before[i] - 0.5 * log(counts[i % CLASSES] / 100.0), 1e-5, 1e-5);
    /* tau-normalisation: row norms become norm^(1 - tau) */
    float norms[CLASSES], normed[CLASSES];
    ck_assert_status(mislas_model_classifier_norms(m, norms), MISLAS_OK);
    ck_assert_status(mislas_model_tau_normalize(m, 0.75f), MISLAS_OK);
    ck_assert_status(mislas_model_classifier_norms(m, normed), MISLAS_OK);
    for (int j = 0; j < CLASSES; j++)
        ck_assert_close(normed[j], pow(norms[j], 0.25), 1e-6, 1e-5);
    ck_assert_status(mislas_model_tau_normalize(m, 1.0f), MISLAS_OK);
    ck_assert_status(mislas_model_classifier_norms(m, normed), MISLAS_OK);
    for (int j = 0; j < CLASSES; j++)
        ck_assert_close(normed[j], 1.0, 1e-6, 0);
    /* refusals leave the model as it was */
    const float tiny[CLASSES] = { 1e-30f, 1, 1 };
    ck_assert_status(mislas_model_scale_logits(m, tiny, NULL), MISLAS_OK);
    predict(m, x, before);
    const float zero[CLASSES] = { 1, 0, 1 }, inf[CLASSES] = { 0, INFINITY, 0 };
    ck_assert_status(mislas_model_scale_logits(m, zero, NULL), MISLAS_ERR_INVALID_ARGUMENT);
    ck_assert_status(mislas_model_scale_logits(m, tiny, NULL), MISLAS_ERR_NUMERIC);   /* s would be ~1e-60 */
    ck_assert_status(mislas_model_scale_logits(m, NULL, inf), MISLAS_ERR_INVALID_ARGUMENT);
    ck_assert_status(mislas_model_tau_normalize(m, -1.0f), MISLAS_ERR_INVALID_ARGUMENT);
    const int64_t bad_counts[CLASSES] = { 60, 0, 10 };
    ck_assert_status(mislas_model_adjust_logits_by_prior(m, bad_counts, CLASSES, 1.0f), MISLAS_ERR_INVALID_ARGUMENT);
    ck_assert_status(mislas_model_adjust_logits_by_prior(m, counts, 2, 1.0f), MISLAS_ERR_INVALID_ARGUMENT);
    predict(m, x, after);
    ck_assert_mem_eq(before, after, sizeof after);
    mislas_model_free(m);
}
END_TEST

/* ----------------------------------------------------------- out of memory */

static int fit_everything(void *ctx)
{
    (void)ctx;
    float z[12];
    int32_t y[6];
    const double a[2] = { 1.5, 1.5 }, c[2] = { 0, 0 };
    synthetic(6, 2, a, c, z, y);
    double ece, t;
    float s[2], b[2];
    int rc = mislas_calib_adaptive_ece(&ece, z, y, 6, 2, 3);
    if (rc == MISLAS_OK)
        rc = mislas_calib_classwise_ece(&ece, z, y, 6, 2, 3);
    if (rc == MISLAS_OK) {
        int t_rc = mislas_calib_fit_temperature(&t, z, y, 6, 2, NULL);
        ck_assert(t_rc == MISLAS_OK || t_rc == MISLAS_ERR_INVALID_ARGUMENT);
        rc = mislas_calib_fit_vector_scaling(s, b, z, y, 6, 2, NULL);
        rc = rc == MISLAS_ERR_STATE ? MISLAS_OK : rc;
    }
    return rc;
}

static int posthoc_fresh(void *ctx)
{
    (void)ctx;
    mislas_model *m = NULL;
    mislas_model_options o;
    mislas_model_options_init(&o);
    o.in_channels = 1;
    o.height = o.width = SIDE;
    o.num_classes = CLASSES;
    o.arch = MISLAS_RESNET20;
    int rc = mislas_model_new(&m, &o);
    const int64_t counts[CLASSES] = { 5, 4, 3 };
    if (rc == MISLAS_OK)
        rc = mislas_model_tau_normalize(m, 1.0f);
    if (rc == MISLAS_OK)
        rc = mislas_model_adjust_logits_by_prior(m, counts, CLASSES, 1.0f);
    mislas_model_free(m);
    return rc;
}

START_TEST(allocation_failures_are_clean)
{
    ck_assert_int_gt(test_allocation_sweep(fit_everything, NULL), 3);
    ck_assert_int_gt(test_allocation_sweep(posthoc_fresh, NULL), 3);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("recalib");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, rms_calibration_error_by_hand);
    tcase_add_test(tc, adaptive_ece_by_hand);
    tcase_add_test(tc, adaptive_ece_keeps_ties_together);
    tcase_add_test(tc, classwise_ece_by_hand);
    tcase_add_test(tc, temperature_scaling_recovers_a_known_temperature);
    tcase_add_test(tc, vector_scaling_recovers_known_scales_and_biases);
    tcase_add_test(tc, vector_scaling_copes_with_logits_in_the_hundreds);
    tcase_add_test(tc, fits_refuse_what_they_cannot_fit);
    tcase_add_test(tc, posthoc_fixes_change_the_logits_as_promised);
    tcase_add_test(tc, allocation_failures_are_clean);
    suite_add_tcase(s, tc);
    return test_run_suite(s);
}
