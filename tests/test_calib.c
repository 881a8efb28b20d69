/* Calibration metrics against cases worked by hand, NumPy's bin edges and a
 * double-precision softmax written here. */
#include "testutil.h"

#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

static mislas_calib_summary summarize(const mislas_calib *c)
{
    mislas_calib_summary s;
    mislas_calib_summary_init(&s);
    ck_assert_status(mislas_calib_summarize(c, &s), MISLAS_OK);
    return s;
}

START_TEST(ece_and_mce_worked_by_hand)
{
    /* bin 14 (0.9333, 1]: 0.95 right, 0.97 wrong   -> acc 1/2, conf 0.96, gap 0.46
     * bin 8 (0.5333, 0.6]: 0.55 right, 0.58 right, 0.58 wrong -> acc 2/3, conf 0.57
     * bin 3 (0.2, 0.2667]: 0.25 wrong              -> acc 0, conf 0.25
     * ECE = (2 * 0.46 + 3 * |2/3 - 0.57| + 0.25) / 6 = 1.46 / 6, MCE = 0.46 */
    const double conf[6] = { 0.95, 0.97, 0.55, 0.58, 0.58, 0.25 };
    const int32_t pred[6] = { 0, 1, 0, 1, 1, 0 };
    const int32_t target[6] = { 0, 0, 0, 1, 0, 1 };
    mislas_calib *c = NULL;
    ck_assert_status(mislas_calib_new(&c, 2, 15), MISLAS_OK);
    ck_assert_status(mislas_calib_add_confidences(c, conf, pred, target, 6), MISLAS_OK);
    mislas_calib_summary s = summarize(c);
    ck_assert_uint_eq(s.count, 6);
    ck_assert_close(s.accuracy, 0.5, 1e-15, 0);
    ck_assert_close(s.avg_confidence, 3.88 / 6, 1e-15, 0);
    ck_assert_close(s.ece, 1.46 / 6, 1e-15, 0);
    ck_assert_close(s.mce, 0.46, 1e-15, 0);
    ck_assert(isnan(s.nll));
    ck_assert(isnan(s.brier));

    mislas_calib_bin bins[15];
    ck_assert_status(mislas_calib_bins(c, bins, 15), MISLAS_OK);
    for (int b = 0; b < 15; b++) {
        uint64_t expected = b == 14 ? 2 : b == 8 ? 3 : b == 3 ? 1 : 0;
        ck_assert_uint_eq(bins[b].count, expected);
        ck_assert_close(bins[b].lower, b / 15.0, 1e-15, 0);
        ck_assert_close(bins[b].upper, (b + 1) / 15.0, 1e-15, 0);
    }
    ck_assert_close(bins[8].accuracy, 2.0 / 3.0, 1e-15, 0);
    ck_assert_close(bins[8].confidence, 0.57, 1e-15, 0);
    ck_assert_double_eq(bins[0].accuracy, 0.0);
    ck_assert_double_eq(bins[14].upper, 1.0);
    mislas_calib_free(c);
}
END_TEST

START_TEST(edges_belong_to_the_bin_below)
{
    /* NumPy's linspace(0, 1, B + 1) edges: b * (1 / B), the last exactly 1 */
    for (int nb = 1; nb <= 20; nb++) {
        mislas_calib *c = NULL;
        ck_assert_status(mislas_calib_new(&c, 3, nb), MISLAS_OK);
        double *conf = malloc((size_t)(2 * nb + 1) * sizeof *conf);
        int32_t *zeros = calloc((size_t)(2 * nb + 1), sizeof *zeros);
        size_t n = 0;
        for (int b = 1; b <= nb; b++) {
            double edge = b == nb ? 1.0 : (double)b * (1.0 / nb);
            conf[n++] = edge;                                  /* -> bin b - 1 */
            if (b < nb)
                conf[n++] = nextafter(edge, 2.0);              /* -> bin b */
        }
        conf[n++] = 0.0;                                       /* in no bin */
        ck_assert_status(mislas_calib_add_confidences(c, conf, zeros, zeros, n), MISLAS_OK);
        mislas_calib_bin *bins = malloc((size_t)nb * sizeof *bins);
        ck_assert_status(mislas_calib_bins(c, bins, nb), MISLAS_OK);
        for (int b = 0; b < nb; b++)
            ck_assert_uint_eq(bins[b].count, (b == 0 ? 1 : 2));   /* its upper edge, and just above its lower */
        ck_assert_double_eq(bins[nb - 1].upper, 1.0);
        ck_assert_uint_eq(summarize(c).count, n);
        free(bins);
        free(conf);
        free(zeros);
        mislas_calib_free(c);
    }
}
END_TEST

START_TEST(zero_confidence_is_counted_but_not_binned)
{
    const double conf[2] = { 0.0, 0.5 };
    const int32_t pred[2] = { 1, 0 }, target[2] = { 1, 0 };
    mislas_calib *c = NULL;
    ck_assert_status(mislas_calib_new(&c, 2, 15), MISLAS_OK);
    ck_assert_status(mislas_calib_add_confidences(c, conf, pred, target, 2), MISLAS_OK);
    mislas_calib_summary s = summarize(c);
    ck_assert_uint_eq(s.count, 2);
    ck_assert_double_eq(s.accuracy, 1.0);
    ck_assert_close(s.ece, 0.5, 1e-15, 0);    /* over the one binned sample, not both */
    ck_assert_close(s.mce, 0.5, 1e-15, 0);
    mislas_calib_free(c);
}
END_TEST

START_TEST(logits_worked_by_hand)
{
    /* logits (0, ln 3): p = (1/4, 3/4), confidence 3/4, prediction 1 */
    const float z[4] = { 0.0f, (float)log(3.0), 0.0f, (float)log(3.0) };
    const int32_t y[2] = { 0, 1 };
    mislas_calib *c = NULL;
    ck_assert_status(mislas_calib_new(&c, 2, 15), MISLAS_OK);
    ck_assert_status(mislas_calib_add_logits(c, z, y, 2), MISLAS_OK);
    mislas_calib_summary s = summarize(c);
    ck_assert_close(s.accuracy, 0.5, 1e-15, 0);
    ck_assert_close(s.avg_confidence, 0.75, 1e-6, 0);
    /* NLL: (-log 1/4 - log 3/4) / 2; Brier: ((3/4)^2 * 2 + (1/4)^2 * 2) / 2 */
    ck_assert_close(s.nll, (log(4.0) + log(4.0 / 3.0)) / 2, 1e-6, 0);
    ck_assert_close(s.brier, (1.125 + 0.125) / 2, 1e-6, 0);
    /* both in bin 11 (0.7333, 0.8], one right: |1/2 - 3/4| */
    ck_assert_close(s.ece, 0.25, 1e-6, 0);

    /* the same through probabilities */
    const float p[4] = { 0.25f, 0.75f, 0.25f, 0.75f };
    mislas_calib *cp = NULL;
    ck_assert_status(mislas_calib_new(&cp, 2, 15), MISLAS_OK);
    ck_assert_status(mislas_calib_add_probs(cp, p, y, 2), MISLAS_OK);
    mislas_calib_summary sp = summarize(cp);
    ck_assert_close(sp.nll, s.nll, 1e-6, 0);
    ck_assert_close(sp.brier, s.brier, 1e-6, 0);
    ck_assert_close(sp.ece, s.ece, 1e-6, 0);
    mislas_calib_free(c);
    mislas_calib_free(cp);
}
END_TEST

START_TEST(certain_logits_give_confidence_one)
{
    const float z[3] = { 100.0f, -100.0f, 3.0f };
    const int32_t y = 0;
    mislas_calib *c = NULL;
    ck_assert_status(mislas_calib_new(&c, 3, 15), MISLAS_OK);
    ck_assert_status(mislas_calib_add_logits(c, z, &y, 1), MISLAS_OK);
    mislas_calib_bin bins[15];
    ck_assert_status(mislas_calib_bins(c, bins, 15), MISLAS_OK);
    ck_assert_uint_eq(bins[14].count, 1);
    ck_assert_double_eq(bins[14].confidence, 1.0);
    mislas_calib_summary s = summarize(c);
    ck_assert_double_eq(s.ece, 0.0);
    ck_assert_close(s.nll, 0.0, 1e-7, 0);
    mislas_calib_free(c);
}
END_TEST

START_TEST(ties_predict_the_first_class)
{
    const float z[6] = { 2, 2, 1, -1, 5, 5 };
    const int32_t y[2] = { 0, 2 };
    mislas_calib *c = NULL;
    ck_assert_status(mislas_calib_new(&c, 3, 10), MISLAS_OK);
    ck_assert_status(mislas_calib_add_logits(c, z, y, 2), MISLAS_OK);
    ck_assert_close(summarize(c).accuracy, 0.5, 0, 0);   /* row 0 right (class 0), row 1 wrong (class 1) */
    mislas_calib_free(c);
}
END_TEST

/* Softmax in double, here, against the library's float path. */
START_TEST(nll_and_brier_against_double_softmax)
{
    enum { N = 300, K = 23 };
    static float z[N * K];
    int32_t y[N];
    double nll = 0, brier = 0, conf_sum = 0;
    int correct = 0;
    for (int i = 0; i < N; i++) {
        y[i] = (int32_t)(test_uniform() * K);
        double m = -INFINITY, s = 0, q = 0;
        int arg = 0;
        for (int j = 0; j < K; j++) {
            z[i * K + j] = (float)(10.0 * test_uniform() - 5.0);
            if (z[i * K + j] > m) {
                m = z[i * K + j];
                arg = j;
            }
        }
        for (int j = 0; j < K; j++)
            s += exp(z[i * K + j] - m);
        for (int j = 0; j < K; j++) {
            double pj = exp(z[i * K + j] - m) / s;
            q += (pj - (j == y[i])) * (pj - (j == y[i]));
        }
        nll += -(z[i * K + y[i]] - m - log(s));
        brier += q;
        conf_sum += 1.0 / s;
        correct += arg == y[i];
    }
    mislas_calib *c = NULL;
    ck_assert_status(mislas_calib_new(&c, K, 15), MISLAS_OK);
    ck_assert_status(mislas_calib_add_logits(c, z, y, N), MISLAS_OK);
    mislas_calib_summary s = summarize(c);
    ck_assert_close(s.nll, nll / N, 1e-6, 1e-6);
    ck_assert_close(s.brier, brier / N, 1e-6, 1e-6);
    ck_assert_close(s.avg_confidence, conf_sum / N, 1e-6, 1e-6);
    ck_assert_close(s.accuracy, (double)correct / N, 0, 0);
    mislas_calib_free(c);
}
END_TEST

START_TEST(any_batch_split_gives_the_same_bits)
{
    enum { N = 5000, K = 10 };
    float *z = malloc(N * K * sizeof *z);
    int32_t *y = malloc(N * sizeof *y);
    for (int i = 0; i < N * K; i++)
        z[i] = (float)(12.0 * test_uniform() - 6.0);
    for (int i = 0; i < N; i++)
        y[i] = (int32_t)(test_uniform() * K);
    mislas_calib *whole = NULL, *parts = NULL;
    ck_assert_status(mislas_calib_new(&whole, K, 15), MISLAS_OK);
    ck_assert_status(mislas_calib_new(&parts, K, 15), MISLAS_OK);
    ck_assert_status(mislas_calib_add_logits(whole, z, y, N), MISLAS_OK);
    size_t at = 0, step = 1;
    while (at < N) {
        size_t len = step < N - at ? step : N - at;
        ck_assert_status(mislas_calib_add_logits(parts, z + at * K, y + at, len), MISLAS_OK);
        at += len;
        step = step * 3 + 1;          /* 1, 4, 13, 40, 121, 364, 1093, 3280 */
    }
    mislas_calib_summary a = summarize(whole), b = summarize(parts);
    ck_assert_int_eq(memcmp(&a, &b, sizeof a), 0);
    mislas_calib_bin ba[15], bb[15];
    ck_assert_status(mislas_calib_bins(whole, ba, 15), MISLAS_OK);
    ck_assert_status(mislas_calib_bins(parts, bb, 15), MISLAS_OK);
    ck_assert_int_eq(memcmp(ba, bb, sizeof ba), 0);

    /* reset forgets everything; adding again reproduces the same figures */
    mislas_calib_reset(parts);
    ck_assert_uint_eq(summarize(parts).count, 0);
    ck_assert_status(mislas_calib_add_logits(parts, z, y, N), MISLAS_OK);
    b = summarize(parts);
    ck_assert_int_eq(memcmp(&a, &b, sizeof a), 0);
    free(z);
    free(y);
    mislas_calib_free(whole);
    mislas_calib_free(parts);
}
END_TEST

START_TEST(merged_objects_add_up)
{
    enum { N = 3000, K = 12 };
    float *z = malloc(N * K * sizeof *z);
    int32_t *y = malloc(N * sizeof *y);
    for (int i = 0; i < N * K; i++)
        z[i] = (float)(10.0 * test_uniform() - 5.0);
    for (int i = 0; i < N; i++)
        y[i] = (int32_t)(test_uniform() * K);
    mislas_calib *whole = NULL, *first = NULL, *second = NULL, *other = NULL;
    ck_assert_status(mislas_calib_new(&whole, K, 15), MISLAS_OK);
    ck_assert_status(mislas_calib_new(&first, K, 15), MISLAS_OK);
    ck_assert_status(mislas_calib_new(&second, K, 15), MISLAS_OK);
    ck_assert_status(mislas_calib_add_logits(whole, z, y, N), MISLAS_OK);
    ck_assert_status(mislas_calib_add_logits(first, z, y, 1234), MISLAS_OK);
    ck_assert_status(mislas_calib_add_logits(second, z + 1234 * K, y + 1234, N - 1234), MISLAS_OK);
    ck_assert_status(mislas_calib_merge(first, second), MISLAS_OK);
    mislas_calib_summary a = summarize(whole), b = summarize(first);
    ck_assert_uint_eq(a.count, b.count);
    ck_assert_double_eq(a.accuracy, b.accuracy);      /* integer counts: exact */
    ck_assert_close(b.ece, a.ece, 1e-12, 0);
    ck_assert_close(b.mce, a.mce, 1e-12, 0);
    ck_assert_close(b.nll, a.nll, 1e-12, 1e-12);
    ck_assert_close(b.brier, a.brier, 1e-12, 1e-12);
    mislas_calib_bin ba[15], bb[15];
    ck_assert_status(mislas_calib_bins(whole, ba, 15), MISLAS_OK);
    ck_assert_status(mislas_calib_bins(first, bb, 15), MISLAS_OK);
    for (int i = 0; i < 15; i++)
        ck_assert_uint_eq(ba[i].count, bb[i].count);

    /* shapes must agree; a failed merge changes nothing */
    ck_assert_status(mislas_calib_new(&other, K, 10), MISLAS_OK);
    ck_assert_status(mislas_calib_merge(first, other), MISLAS_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_nonnull(strstr(mislas_last_error(), "bins"));
    ck_assert_status(mislas_calib_merge(NULL, other), MISLAS_ERR_INVALID_ARGUMENT);
    mislas_calib_summary c = summarize(first);
    ck_assert_int_eq(memcmp(&b, &c, sizeof b), 0);
    free(z);
    free(y);
    mislas_calib_free(whole);
    mislas_calib_free(first);
    mislas_calib_free(second);
    mislas_calib_free(other);
}
END_TEST

START_TEST(empty_summary_is_nan)
{
    mislas_calib *c = NULL;
    ck_assert_status(mislas_calib_new(&c, 4, 15), MISLAS_OK);
    mislas_calib_summary s = summarize(c);
    ck_assert_uint_eq(s.count, 0);
    ck_assert(isnan(s.accuracy) && isnan(s.ece) && isnan(s.mce) && isnan(s.nll) && isnan(s.brier));
    mislas_calib_free(c);
}
END_TEST

START_TEST(older_summary_struct_gets_its_prefix_only)
{
    const double conf[1] = { 0.9 };
    const int32_t zero[1] = { 0 };
    mislas_calib *c = NULL;
    ck_assert_status(mislas_calib_new(&c, 2, 15), MISLAS_OK);
    ck_assert_status(mislas_calib_add_confidences(c, conf, zero, zero, 1), MISLAS_OK);
    mislas_calib_summary s;
    memset(&s, 0x7f, sizeof s);
    s.struct_size = offsetof(mislas_calib_summary, ece);
    ck_assert_status(mislas_calib_summarize(c, &s), MISLAS_OK);
    ck_assert_uint_eq(s.count, 1);
    ck_assert_double_eq(s.accuracy, 1.0);
    ck_assert_uint_eq(s.struct_size, offsetof(mislas_calib_summary, ece));
    unsigned char tail[sizeof s - offsetof(mislas_calib_summary, ece)];
    memset(tail, 0x7f, sizeof tail);
    ck_assert_int_eq(memcmp((unsigned char *)&s + offsetof(mislas_calib_summary, ece), tail, sizeof tail), 0);
    mislas_calib_free(c);
}
END_TEST

START_TEST(bad_inputs_leave_the_state_alone)
{
    enum { K = 3 };
    float z[2 * K] = { 1, 2, 3, 4, 5, 6 };
    int32_t y[2] = { 0, 2 };
    mislas_calib *c = NULL;
    ck_assert_status(mislas_calib_new(&c, K, 15), MISLAS_OK);
    ck_assert_status(mislas_calib_add_logits(c, z, y, 2), MISLAS_OK);
    mislas_calib_summary before = summarize(c);

    z[5] = NAN;
    ck_assert_status(mislas_calib_add_logits(c, z, y, 2), MISLAS_ERR_NUMERIC);
    ck_assert_ptr_nonnull(strstr(mislas_last_error(), "logits[1][2]"));
    z[5] = -INFINITY;
    ck_assert_status(mislas_calib_add_logits(c, z, y, 2), MISLAS_ERR_NUMERIC);
    z[5] = 6;
    y[1] = 3;
    ck_assert_status(mislas_calib_add_logits(c, z, y, 2), MISLAS_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_nonnull(strstr(mislas_last_error(), "targets[1] = 3"));
    y[1] = 2;
    ck_assert_status(mislas_calib_add_logits(c, z, y, 0), MISLAS_OK);    /* empty: adds nothing */
    ck_assert_status(mislas_calib_add_logits(NULL, z, y, 2), MISLAS_ERR_INVALID_ARGUMENT);
    ck_assert_status(mislas_calib_add_logits(c, NULL, y, 2), MISLAS_ERR_INVALID_ARGUMENT);
    ck_assert_status(mislas_calib_add_logits(c, z, NULL, 2), MISLAS_ERR_INVALID_ARGUMENT);

    float p[2 * K] = { 0.2f, 0.3f, 0.5f, 0.1f, 1.5f, 0.0f };
    ck_assert_status(mislas_calib_add_probs(c, p, y, 2), MISLAS_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_nonnull(strstr(mislas_last_error(), "probs[1][1]"));
    p[4] = NAN;
    ck_assert_status(mislas_calib_add_probs(c, p, y, 2), MISLAS_ERR_NUMERIC);
    p[4] = -0.1f;
    ck_assert_status(mislas_calib_add_probs(c, p, y, 2), MISLAS_ERR_INVALID_ARGUMENT);

    double conf[2] = { 0.5, 1.01 };
    int32_t pred[2] = { 0, 1 };
    ck_assert_status(mislas_calib_add_confidences(c, conf, pred, y, 2), MISLAS_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_nonnull(strstr(mislas_last_error(), "confidences[1]"));
    conf[1] = NAN;
    ck_assert_status(mislas_calib_add_confidences(c, conf, pred, y, 2), MISLAS_ERR_INVALID_ARGUMENT);
    conf[1] = 0.7;
    pred[0] = -1;
    ck_assert_status(mislas_calib_add_confidences(c, conf, pred, y, 2), MISLAS_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_nonnull(strstr(mislas_last_error(), "predictions[0]"));
    ck_assert_status(mislas_calib_add_confidences(c, conf, NULL, y, 2), MISLAS_ERR_INVALID_ARGUMENT);

    mislas_calib_summary after = summarize(c);
    ck_assert_int_eq(memcmp(&before, &after, sizeof before), 0);

    mislas_calib_bin bins[16];
    ck_assert_status(mislas_calib_bins(c, bins, 16), MISLAS_ERR_INVALID_ARGUMENT);
    ck_assert_status(mislas_calib_bins(c, NULL, 15), MISLAS_ERR_INVALID_ARGUMENT);
    mislas_calib_summary s;
    memset(&s, 0, sizeof s);
    ck_assert_status(mislas_calib_summarize(c, &s), MISLAS_ERR_INVALID_ARGUMENT);
    ck_assert_status(mislas_calib_summarize(c, NULL), MISLAS_ERR_INVALID_ARGUMENT);

    mislas_calib *d = (mislas_calib *)1;
    ck_assert_status(mislas_calib_new(&d, 0, 15), MISLAS_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_null(d);
    ck_assert_status(mislas_calib_new(&d, 10, 0), MISLAS_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_nonnull(strstr(mislas_last_error(), "num_bins"));
    ck_assert_status(mislas_calib_new(NULL, 10, 15), MISLAS_ERR_INVALID_ARGUMENT);
    mislas_calib_free(c);
}
END_TEST

static int make_calib(void *ctx)
{
    (void)ctx;
    mislas_calib *c = NULL;
    int rc = mislas_calib_new(&c, 100, 15);
    ck_assert(rc == MISLAS_OK ? c != NULL : c == NULL);
    if (rc == MISLAS_OK) {
        const float z[3] = { 1, 2, 3 };
        const int32_t y = 1;
        ck_assert_status(mislas_calib_add_logits(c, z, &y, 0), MISLAS_OK);    /* empty: adds nothing */
    }
    mislas_calib_free(c);
    return rc;
}

START_TEST(allocation_failures_are_clean)
{
    ck_assert_int_gt(test_allocation_sweep(make_calib, NULL), 1);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("calib");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, ece_and_mce_worked_by_hand);
    tcase_add_test(tc, edges_belong_to_the_bin_below);
    tcase_add_test(tc, zero_confidence_is_counted_but_not_binned);
    tcase_add_test(tc, logits_worked_by_hand);
    tcase_add_test(tc, certain_logits_give_confidence_one);
    tcase_add_test(tc, ties_predict_the_first_class);
    tcase_add_test(tc, nll_and_brier_against_double_softmax);
    tcase_add_test(tc, any_batch_split_gives_the_same_bits);
    tcase_add_test(tc, merged_objects_add_up);
    tcase_add_test(tc, empty_summary_is_nan);
    tcase_add_test(tc, older_summary_struct_gets_its_prefix_only);
    tcase_add_test(tc, bad_inputs_leave_the_state_alone);
    tcase_add_test(tc, allocation_failures_are_clean);
    suite_add_tcase(s, tc);
    return test_run_suite(s);
}
