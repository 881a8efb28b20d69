/* mislas_long_tail_counts: class counts of the long-tailed training sets
 * (mislas_long_tail_class_map's cases are at the end).
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

/* ---- mislas_long_tail_class_map: the reference's renumbering by count ----
 *
 * Worked by hand from the algorithm NumPy 1.x's argsort(kind='quicksort')
 * uses on int64 (see lib/data/classmap.c); tests/classmap_check.py compares
 * thousands of vectors with NumPy itself. */

/* Calls the function with both outputs and with each alone; all three must
 * agree with the expected arrays, and nothing past num_classes is written. */
static void check_class_map(const int64_t *counts, int32_t k, const int32_t *want_new_to_old,
        const char *what)
{
    int32_t o2n[MAX_K + 1], n2o[MAX_K + 1], only[MAX_K + 1], want_o2n[MAX_K];
    ck_assert_int_le(k, MAX_K);
    for (int32_t i = 0; i < k; i++)
        want_o2n[want_new_to_old[i]] = i;
    for (int32_t i = 0; i <= MAX_K; i++)
        o2n[i] = n2o[i] = -7;
    ck_assert_status(mislas_long_tail_class_map(o2n, n2o, counts, k), MISLAS_OK);
    for (int32_t i = 0; i < k; i++) {
        ck_assert_msg(n2o[i] == want_new_to_old[i], "%s: new_to_old[%d] = %d, expected %d",
            what, (int)i, (int)n2o[i], (int)want_new_to_old[i]);
        ck_assert_msg(o2n[i] == want_o2n[i], "%s: old_to_new[%d] = %d, expected %d",
            what, (int)i, (int)o2n[i], (int)want_o2n[i]);
    }
    ck_assert_msg(o2n[k] == -7 && n2o[k] == -7, "%s: wrote past the last class", what);
    only[k] = -7;
    ck_assert_status(mislas_long_tail_class_map(only, NULL, counts, k), MISLAS_OK);
    ck_assert_msg(memcmp(only, want_o2n, (size_t)k * sizeof only[0]) == 0, "%s: old_to_new alone differs", what);
    ck_assert_msg(only[k] == -7, "%s: old_to_new alone: wrote past the last class", what);
    ck_assert_status(mislas_long_tail_class_map(NULL, only, counts, k), MISLAS_OK);
    ck_assert_msg(memcmp(only, want_new_to_old, (size_t)k * sizeof only[0]) == 0,
        "%s: new_to_old alone differs", what);
    ck_assert_msg(only[k] == -7, "%s: new_to_old alone: wrote past the last class", what);
}

START_TEST(test_class_map_by_hand)
{
    /* one class */
    static const int64_t one[1] = {5};
    static const int32_t one_map[1] = {0};
    check_class_map(one, 1, one_map, "one class");
    /* distinct counts: 10 (class 1), 7 (class 2), 3 (class 0); old_to_new is
     * {2, 0, 1}, not the same permutation, so the direction is checked */
    static const int64_t three[3] = {3, 10, 7};
    static const int32_t three_map[3] = {1, 2, 0};
    check_class_map(three, 3, three_map, "three distinct");
    /* up to 16 classes NumPy only insertion-sorts, which is stable: equal
     * counts keep their original order (9: 1, 3; 5: 0, 2, 5; 0: 4) */
    static const int64_t six[6] = {5, 9, 5, 9, 0, 5};
    static const int32_t six_map[6] = {1, 3, 0, 2, 5, 4};
    check_class_map(six, 6, six_map, "six with ties");
    int64_t equal[17];
    int32_t identity[16];
    for (int i = 0; i < 17; i++)
        equal[i] = 40;
    for (int i = 0; i < 16; i++)
        identity[i] = i;
    check_class_map(equal, 16, identity, "16 equal");
    /* 17 equal counts: one partition. Middle 8; the median of three swaps
     * nothing (no key is strictly less); 8 goes to slot 15 (15 to slot 8).
     * Both scans stop at every entry (equal to the pivot), so slots 1..7 are
     * swapped with 14..8: slot 7 gets 15 and slot 8 gets 7. They meet at 8,
     * which is swapped with slot 15 (the pivot, class 8), leaving
     * 0 14 13 12 11 10 9 15 | 8 | 6 5 4 3 2 1 7 16;
     * both sides have 8 entries and are insertion-sorted unchanged. */
    static const int32_t equal17_map[17] = {0, 14, 13, 12, 11, 10, 9, 15, 8, 6, 5, 4, 3, 2, 1, 7, 16};
    check_class_map(equal, 17, equal17_map, "17 equal");
    /* 17 classes of 1 image but class 16 with 5: the median of three moves
     * class 16 to slot 0 and class 0 to the middle (the pivot, count 1), then
     * the scans swap as above: 16 14 13 12 11 10 9 15 | 0 | 6 5 4 3 2 1 7 8 */
    int64_t head_last[17];
    for (int i = 0; i < 17; i++)
        head_last[i] = 1;
    head_last[16] = 5;
    static const int32_t head_last_map[17] = {16, 14, 13, 12, 11, 10, 9, 15, 0, 6, 5, 4, 3, 2, 1, 7, 8};
    check_class_map(head_last, 17, head_last_map, "17 with the head last");
    /* empty classes and the largest count */
    static const int64_t extremes[4] = {0, INT64_MAX, 0, 1};
    static const int32_t extremes_map[4] = {1, 3, 0, 2};
    check_class_map(extremes, 4, extremes_map, "0 and INT64_MAX");
}
END_TEST

static uint64_t xorshift(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* Whatever the tie order: a permutation, counts non-increasing along it,
 * the two outputs inverse to each other, each alone the same as together;
 * up to ~10^6 classes (the sort's stack stays within its bound). */
START_TEST(test_class_map_properties)
{
    uint64_t seed = 0x9e3779b97f4a7c15ULL;
    static const int32_t sizes[] = {2, 15, 16, 17, 18, 33, 100, 365, 1000, 8142, 1 << 20};
    for (size_t t = 0; t < sizeof sizes / sizeof sizes[0]; t++) {
        int32_t k = sizes[t];
        int64_t *counts = malloc((size_t)k * sizeof *counts);
        int32_t *o2n = malloc((size_t)k * sizeof *o2n), *n2o = malloc((size_t)k * sizeof *n2o);
        int32_t *alone = malloc((size_t)k * sizeof *alone);
        ck_assert(counts && o2n && n2o && alone);
        uint64_t levels = 1 + xorshift(&seed) % 6;
        for (int32_t c = 0; c < k; c++)
            counts[c] = (int64_t)(xorshift(&seed) % levels) * 37;
        ck_assert_status(mislas_long_tail_class_map(o2n, n2o, counts, k), MISLAS_OK);
        for (int32_t i = 0; i < k; i++) {
            ck_assert_msg(n2o[i] >= 0 && n2o[i] < k, "k = %d: new_to_old[%d] = %d", (int)k, (int)i, (int)n2o[i]);
            ck_assert_msg(o2n[n2o[i]] == i, "k = %d: old_to_new is not the inverse at %d", (int)k, (int)i);
            if (i > 0)
                ck_assert_msg(counts[n2o[i - 1]] >= counts[n2o[i]], "k = %d: counts increase at %d", (int)k, (int)i);
        }
        ck_assert_status(mislas_long_tail_class_map(alone, NULL, counts, k), MISLAS_OK);
        ck_assert(memcmp(alone, o2n, (size_t)k * sizeof *alone) == 0);
        ck_assert_status(mislas_long_tail_class_map(NULL, alone, counts, k), MISLAS_OK);
        ck_assert(memcmp(alone, n2o, (size_t)k * sizeof *alone) == 0);
        free(counts);
        free(o2n);
        free(n2o);
        free(alone);
    }
}
END_TEST

/* Must fail with INVALID_ARGUMENT naming `arg`, writing nothing. */
static void check_map_rejected(const int64_t *counts, int32_t k, int32_t *o2n, int32_t *n2o, const char *arg)
{
    int32_t before_o2n[4] = {-7, -7, -7, -7}, before_n2o[4] = {-7, -7, -7, -7};
    if (o2n != NULL)
        memcpy(o2n, before_o2n, sizeof before_o2n);
    if (n2o != NULL && n2o != o2n)
        memcpy(n2o, before_n2o, sizeof before_n2o);
    ck_assert_status(mislas_long_tail_class_map(o2n, n2o, counts, k), MISLAS_ERR_INVALID_ARGUMENT);
    const char *msg = mislas_last_error();
    ck_assert_msg(msg != NULL && strstr(msg, arg) != NULL, "message \"%s\" does not name %s", msg ? msg : "", arg);
    for (int i = 0; i < 4; i++) {
        ck_assert_msg(o2n == NULL || o2n[i] == -7, "old_to_new[%d] written by a failing call", i);
        ck_assert_msg(n2o == NULL || n2o[i] == -7, "new_to_old[%d] written by a failing call", i);
    }
}

START_TEST(test_class_map_invalid)
{
    static const int64_t counts[4] = {3, 1, 4, 1};
    static const int64_t negative[4] = {3, 1, 4, -1};
    int32_t a[4], b[4];
    check_map_rejected(NULL, 4, a, b, "counts");
    check_map_rejected(counts, 4, NULL, NULL, "old_to_new and new_to_old are both NULL");
    check_map_rejected(counts, 4, a, a, "same array");
    check_map_rejected(counts, 0, a, b, "num_classes");
    check_map_rejected(counts, -1, a, NULL, "num_classes");
    check_map_rejected(counts, INT32_MIN, NULL, b, "num_classes");
    check_map_rejected(negative, 4, a, b, "counts[3] = -1");
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
    tcase_add_test(tc, test_class_map_by_hand);
    tcase_add_test(tc, test_class_map_properties);
    tcase_add_test(tc, test_class_map_invalid);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return test_run_suite(longtail_suite());
}
