/* mislas_long_tail_counts: class counts of the long-tailed training sets.
 *
 * Every expected table below was computed independently of the library, with
 * Python's float arithmetic exactly as the MiSLAS reference
 * (imbalance_cifar.py, get_img_num_per_cls) does:
 *
 *   python3 -c "print([int(n_max * imb ** (i / (K - 1.0))) for i in range(K)])"
 *
 * and pasted here. Their sums reproduce the totals published for
 * CIFAR-10-LT / CIFAR-100-LT (12406 / 13996 / 20431 and 10847 / 12608 / 19573
 * for IF 100 / 50 / 10), which are asserted separately. */
#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define SENTINEL ((int64_t)-777)
#define MAX_K 128

static void fill_sentinel(int64_t *counts, size_t n)
{
    for (size_t i = 0; i < n; i++)
        counts[i] = SENTINEL;
}

static int64_t sum_of(const int64_t *v, int k)
{
    int64_t s = 0;
    for (int i = 0; i < k; i++)
        s += v[i];
    return s;
}

/* Runs the call and compares class by class; the slot after the last class
 * must stay untouched. */
static void check_counts(int32_t k, int64_t n_max, double imb, mislas_imbalance type,
        const int64_t *expected, const char *what)
{
    int64_t counts[MAX_K + 1];
    ck_assert_int_le(k, MAX_K);
    fill_sentinel(counts, MAX_K + 1);
    ck_assert_status(mislas_long_tail_counts(counts, k, n_max, imb, type), MISLAS_OK);
    for (int32_t i = 0; i < k; i++)
        ck_assert_msg(counts[i] == expected[i], "%s: class %d has %lld, expected %lld",
            what, (int)i, (long long)counts[i], (long long)expected[i]);
    ck_assert_msg(counts[k] == SENTINEL, "%s: wrote past the last class", what);
}

/* ---- exp profile: CIFAR-10 (K = 10, 5000 per class) ---- */

static const int64_t cifar10_if100[10] = {5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50};
static const int64_t cifar10_if50[10] = {5000, 3237, 2096, 1357, 878, 568, 368, 238, 154, 100};
static const int64_t cifar10_if10[10] = {5000, 3871, 2997, 2320, 1796, 1391, 1077, 834, 645, 500};

START_TEST(test_exp_cifar10)
{
    check_counts(10, 5000, 0.01, MISLAS_IMBALANCE_EXP, cifar10_if100, "CIFAR-10-LT IF100");
    check_counts(10, 5000, 0.02, MISLAS_IMBALANCE_EXP, cifar10_if50, "CIFAR-10-LT IF50");
    check_counts(10, 5000, 0.1, MISLAS_IMBALANCE_EXP, cifar10_if10, "CIFAR-10-LT IF10");
}
END_TEST

/* ---- exp profile: CIFAR-100 (K = 100, 500 per class) ---- */

static const int64_t cifar100_if100[100] = {
    500, 477, 455, 434, 415, 396, 378, 361, 344, 328, 314, 299, 286, 273, 260, 248, 237, 226, 216, 206,
    197, 188, 179, 171, 163, 156, 149, 142, 135, 129, 123, 118, 112, 107, 102, 98, 93, 89, 85, 81,
    77, 74, 70, 67, 64, 61, 58, 56, 53, 51, 48, 46, 44, 42, 40, 38, 36, 35, 33, 32,
    30, 29, 27, 26, 25, 24, 23, 22, 21, 20, 19, 18, 17, 16, 15, 15, 14, 13, 13, 12,
    12, 11, 11, 10, 10, 9, 9, 8, 8, 7, 7, 7, 6, 6, 6, 6, 5, 5, 5, 5};
static const int64_t cifar100_if50[100] = {
    500, 480, 462, 444, 426, 410, 394, 379, 364, 350, 336, 323, 311, 299, 287, 276, 265, 255, 245, 235,
    226, 218, 209, 201, 193, 186, 178, 172, 165, 158, 152, 146, 141, 135, 130, 125, 120, 115, 111, 107,
    102, 98, 95, 91, 87, 84, 81, 78, 75, 72, 69, 66, 64, 61, 59, 56, 54, 52, 50, 48,
    46, 44, 43, 41, 39, 38, 36, 35, 34, 32, 31, 30, 29, 27, 26, 25, 24, 23, 22, 22,
    21, 20, 19, 18, 18, 17, 16, 16, 15, 14, 14, 13, 13, 12, 12, 11, 11, 10, 10, 10};
static const int64_t cifar100_if10[100] = {
    500, 488, 477, 466, 455, 445, 434, 424, 415, 405, 396, 387, 378, 369, 361, 352, 344, 336, 328, 321,
    314, 306, 299, 292, 286, 279, 273, 266, 260, 254, 248, 243, 237, 232, 226, 221, 216, 211, 206, 201,
    197, 192, 188, 183, 179, 175, 171, 167, 163, 159, 156, 152, 149, 145, 142, 139, 135, 132, 129, 126,
    123, 121, 118, 115, 112, 110, 107, 105, 102, 100, 98, 95, 93, 91, 89, 87, 85, 83, 81, 79,
    77, 75, 74, 72, 70, 69, 67, 66, 64, 63, 61, 60, 58, 57, 56, 54, 53, 52, 51, 50};

START_TEST(test_exp_cifar100)
{
    check_counts(100, 500, 0.01, MISLAS_IMBALANCE_EXP, cifar100_if100, "CIFAR-100-LT IF100");
    check_counts(100, 500, 0.02, MISLAS_IMBALANCE_EXP, cifar100_if50, "CIFAR-100-LT IF50");
    check_counts(100, 500, 0.1, MISLAS_IMBALANCE_EXP, cifar100_if10, "CIFAR-100-LT IF10");
}
END_TEST

/* ---- exp profile: Fashion-MNIST (K = 10, 6000 per class) ---- */

static const int64_t fmnist_if100[10] = {6000, 3596, 2156, 1292, 774, 464, 278, 166, 100, 60};
static const int64_t fmnist_if50[10] = {6000, 3884, 2515, 1628, 1054, 682, 442, 286, 185, 120};
static const int64_t fmnist_if10[10] = {6000, 4645, 3596, 2784, 2156, 1669, 1292, 1000, 774, 600};

START_TEST(test_exp_fashion_mnist)
{
    check_counts(10, 6000, 0.01, MISLAS_IMBALANCE_EXP, fmnist_if100, "Fashion-MNIST-LT IF100");
    check_counts(10, 6000, 0.02, MISLAS_IMBALANCE_EXP, fmnist_if50, "Fashion-MNIST-LT IF50");
    check_counts(10, 6000, 0.1, MISLAS_IMBALANCE_EXP, fmnist_if10, "Fashion-MNIST-LT IF10");
    /* totals of the Python tables */
    ck_assert_int_eq(sum_of(fmnist_if100, 10), 14886);
    ck_assert_int_eq(sum_of(fmnist_if50, 10), 16796);
    ck_assert_int_eq(sum_of(fmnist_if10, 10), 24516);
}
END_TEST

/* The published sizes of the long-tailed CIFAR training sets, from the
 * library's own counts (the tables above are checked class by class). */
START_TEST(test_published_totals)
{
    static const struct { int32_t k; int64_t n_max; double imb; int64_t total; } cases[] = {
        {10, 5000, 0.01, 12406}, {10, 5000, 0.02, 13996}, {10, 5000, 0.1, 20431},
        {100, 500, 0.01, 10847}, {100, 500, 0.02, 12608}, {100, 500, 0.1, 19573},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        int64_t counts[MAX_K];
        ck_assert_status(mislas_long_tail_counts(counts, cases[c].k, cases[c].n_max, cases[c].imb,
            MISLAS_IMBALANCE_EXP), MISLAS_OK);
        int64_t total = sum_of(counts, cases[c].k);
        ck_assert_msg(total == cases[c].total, "K = %d, IF %g: total %lld, published %lld",
            (int)cases[c].k, 1.0 / cases[c].imb, (long long)total, (long long)cases[c].total);
    }
    /* and the hard-coded tables agree with the published totals too */
    ck_assert_int_eq(sum_of(cifar10_if100, 10), 12406);
    ck_assert_int_eq(sum_of(cifar10_if50, 10), 13996);
    ck_assert_int_eq(sum_of(cifar10_if10, 10), 20431);
    ck_assert_int_eq(sum_of(cifar100_if100, 100), 10847);
    ck_assert_int_eq(sum_of(cifar100_if50, 100), 12608);
    ck_assert_int_eq(sum_of(cifar100_if10, 100), 19573);
}
END_TEST

START_TEST(test_exp_edge_cases)
{
    /* K = 1: the single class keeps max_per_class (the formula would divide 0 by 0) */
    static const int64_t one[1] = {500};
    check_counts(1, 500, 0.01, MISLAS_IMBALANCE_EXP, one, "exp K=1");
    /* K = 2: [n_max, int(n_max * imb)]; 100 * 0.29 = 28.999999999999996 in
     * double, so truncation gives 28 (Python: int(100 * 0.29 ** (1 / 1.0))) */
    static const int64_t two[2] = {100, 28};
    check_counts(2, 100, 0.29, MISLAS_IMBALANCE_EXP, two, "exp K=2");
    /* imb_factor = 1 is balanced: pow(1, x) = 1 exactly */
    static const int64_t flat[6] = {777, 777, 777, 777, 777, 777};
    check_counts(6, 777, 1.0, MISLAS_IMBALANCE_EXP, flat, "exp IF 1");
    /* max_per_class = 1 stays 1 for the head, tail truncates to 0 */
    static const int64_t tiny[3] = {1, 0, 0};
    check_counts(3, 1, 0.5, MISLAS_IMBALANCE_EXP, tiny, "exp n_max 1");
    /* a large n_max, exactly representable: IF 1 keeps it exactly */
    const int64_t big = (int64_t)1 << 40;
    const int64_t bigs[3] = {big, big, big};
    check_counts(3, big, 1.0, MISLAS_IMBALANCE_EXP, bigs, "exp n_max 2^40");
}
END_TEST

/* ---- step profile: classes i < K/2 (integer division) keep n_max, the
 * others int(n_max * imb) ---- */

START_TEST(test_step)
{
    static const int64_t c10[10] = {5000, 5000, 5000, 5000, 5000, 50, 50, 50, 50, 50};
    check_counts(10, 5000, 0.01, MISLAS_IMBALANCE_STEP, c10, "step K=10 IF100");
    static const int64_t c100_if10[100] = {
        500, 500, 500, 500, 500, 500, 500, 500, 500, 500, 500, 500, 500, 500, 500, 500, 500, 500, 500, 500,
        500, 500, 500, 500, 500, 500, 500, 500, 500, 500, 500, 500, 500, 500, 500, 500, 500, 500, 500, 500,
        500, 500, 500, 500, 500, 500, 500, 500, 500, 500, 50, 50, 50, 50, 50, 50, 50, 50, 50, 50,
        50, 50, 50, 50, 50, 50, 50, 50, 50, 50, 50, 50, 50, 50, 50, 50, 50, 50, 50, 50,
        50, 50, 50, 50, 50, 50, 50, 50, 50, 50, 50, 50, 50, 50, 50, 50, 50, 50, 50, 50};
    check_counts(100, 500, 0.1, MISLAS_IMBALANCE_STEP, c100_if10, "step K=100 IF10");
    /* odd K = 7: K/2 = 3 head classes, 4 tail classes; int(1000 * 0.3) = 300 */
    static const int64_t c7[7] = {1000, 1000, 1000, 300, 300, 300, 300};
    check_counts(7, 1000, 0.3, MISLAS_IMBALANCE_STEP, c7, "step K=7");
    /* odd K = 5 with truncation: int(100 * 0.29) = 28 (100 * 0.29 = 28.999999999999996) */
    static const int64_t c5[5] = {100, 100, 28, 28, 28};
    check_counts(5, 100, 0.29, MISLAS_IMBALANCE_STEP, c5, "step K=5");
    /* K = 3: one head class */
    static const int64_t c3[3] = {6000, 60, 60};
    check_counts(3, 6000, 0.01, MISLAS_IMBALANCE_STEP, c3, "step K=3");
    /* K = 1: a single class cannot be imbalanced; it keeps n_max, as with exp */
    static const int64_t c1[1] = {500};
    check_counts(1, 500, 0.1, MISLAS_IMBALANCE_STEP, c1, "step K=1");
    /* imb = 1: everything n_max */
    static const int64_t c4[4] = {9, 9, 9, 9};
    check_counts(4, 9, 1.0, MISLAS_IMBALANCE_STEP, c4, "step IF 1");
}
END_TEST

START_TEST(test_none)
{
    static const int64_t c4[4] = {123, 123, 123, 123};
    check_counts(4, 123, 0.01, MISLAS_IMBALANCE_NONE, c4, "none K=4");
    static const int64_t c1[1] = {5000};
    check_counts(1, 5000, 0.5, MISLAS_IMBALANCE_NONE, c1, "none K=1");
    static const int64_t c3[3] = {1, 1, 1};
    check_counts(3, 1, 1.0, MISLAS_IMBALANCE_NONE, c3, "none n_max 1");
    /* INT64_MAX is not a double: it must still come back as itself */
    static const int64_t cmax[2] = {INT64_MAX, INT64_MAX};
    check_counts(2, INT64_MAX, 1.0, MISLAS_IMBALANCE_NONE, cmax, "none n_max INT64_MAX");
    check_counts(2, INT64_MAX, 1.0, MISLAS_IMBALANCE_EXP, cmax, "exp IF 1 n_max INT64_MAX");
}
END_TEST

/* ---- invalid arguments ---- */

/* The call must fail with INVALID_ARGUMENT, name `arg` in the message and
 * leave every slot of counts as it was. */
static void check_rejected(int64_t *counts, int32_t k, int64_t n_max, double imb, mislas_imbalance type,
        const char *arg)
{
    int64_t buf[MAX_K];
    fill_sentinel(buf, MAX_K);
    int64_t *target = counts == NULL ? NULL : buf;
    int rc = mislas_long_tail_counts(target, k, n_max, imb, type);
    ck_assert_msg(rc == MISLAS_ERR_INVALID_ARGUMENT, "k=%d n_max=%lld imb=%g type=%d: status %d, expected %d",
        (int)k, (long long)n_max, imb, (int)type, rc, MISLAS_ERR_INVALID_ARGUMENT);
    const char *msg = mislas_last_error();
    ck_assert_ptr_nonnull(msg);
    ck_assert_msg(msg[0] != '\0', "empty error message");
    ck_assert_msg(strstr(msg, arg) != NULL, "message \"%s\" does not name %s", msg, arg);
    for (int i = 0; i < MAX_K; i++)
        ck_assert_msg(buf[i] == SENTINEL, "counts[%d] was written (%lld) by a failing call", i, (long long)buf[i]);
}

START_TEST(test_invalid_arguments)
{
    int64_t dummy[1];
    check_rejected(NULL, 10, 5000, 0.01, MISLAS_IMBALANCE_EXP, "counts");
    check_rejected(dummy, 0, 5000, 0.01, MISLAS_IMBALANCE_EXP, "num_classes");
    check_rejected(dummy, -1, 5000, 0.01, MISLAS_IMBALANCE_EXP, "num_classes");
    check_rejected(dummy, INT32_MIN, 5000, 0.01, MISLAS_IMBALANCE_STEP, "num_classes");
    check_rejected(dummy, 10, 0, 0.01, MISLAS_IMBALANCE_EXP, "max_per_class");
    check_rejected(dummy, 10, -5, 0.01, MISLAS_IMBALANCE_EXP, "max_per_class");
    check_rejected(dummy, 10, 5000, 0.0, MISLAS_IMBALANCE_EXP, "imb_factor");
    check_rejected(dummy, 10, 5000, -0.0, MISLAS_IMBALANCE_EXP, "imb_factor");
    check_rejected(dummy, 10, 5000, -0.5, MISLAS_IMBALANCE_EXP, "imb_factor");
    check_rejected(dummy, 10, 5000, 1.0000001, MISLAS_IMBALANCE_EXP, "imb_factor");
    check_rejected(dummy, 10, 5000, 100.0, MISLAS_IMBALANCE_EXP, "imb_factor"); /* "IF 100" given the wrong way */
    check_rejected(dummy, 10, 5000, NAN, MISLAS_IMBALANCE_EXP, "imb_factor");
    check_rejected(dummy, 10, 5000, INFINITY, MISLAS_IMBALANCE_STEP, "imb_factor");
    check_rejected(dummy, 10, 5000, -INFINITY, MISLAS_IMBALANCE_NONE, "imb_factor");
    check_rejected(dummy, 10, 5000, 0.01, (mislas_imbalance)3, "type");
    check_rejected(dummy, 10, 5000, 0.01, (mislas_imbalance)-1, "type");
    check_rejected(dummy, 10, 5000, 0.01, (mislas_imbalance)1000, "type");
    /* NONE ignores imb_factor in the formula, yet it is still validated */
    check_rejected(dummy, 10, 5000, 2.0, MISLAS_IMBALANCE_NONE, "imb_factor");
}
END_TEST

static Suite *longtail_suite(void)
{
    Suite *s = suite_create("longtail");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_exp_cifar10);
    tcase_add_test(tc, test_exp_cifar100);
    tcase_add_test(tc, test_exp_fashion_mnist);
    tcase_add_test(tc, test_published_totals);
    tcase_add_test(tc, test_exp_edge_cases);
    tcase_add_test(tc, test_step);
    tcase_add_test(tc, test_none);
    tcase_add_test(tc, test_invalid_arguments);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return test_run_suite(longtail_suite());
}
