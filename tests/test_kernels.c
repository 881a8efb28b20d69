/* The row kernels behind the losses and calibration: every instruction-set
 * copy this CPU can run gives the same bits as the generic one, and the
 * polynomial exp stays within a few ulp of the C library's double exp.
 * This suite links the static archive to reach the internal kernel tables. */
#include "util/rowmath.h"
#include "testutil.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

START_TEST(every_copy_gives_the_same_bits)
{
    const mislasi_rowmath *generic = mislasi_rowmath_named("generic");
    ck_assert_ptr_nonnull(generic);
    const char *names[] = { "avx2", "avx512" };
    enum { MAXK = 1037 };
    static float x[MAXK], e1[MAXK], e2[MAXK], a1[MAXK], a2[MAXK];
    int compared = 0;
    for (size_t s = 0; s < 2; s++) {
        const mislasi_rowmath *other = mislasi_rowmath_named(names[s]);
        if (other == NULL)
            continue;   /* not supported by this CPU */
        compared++;
        for (size_t k = 1; k <= MAXK; k += (k < 40 ? 1 : 97)) {
            for (size_t j = 0; j < k; j++)
                x[j] = (float)(60.0 * test_uniform() - 30.0);
            float m1, m2, lo1, lo2, m3;
            ck_assert(generic->range(x, k, &m1, &lo1));
            ck_assert(other->range(x, k, &m2, &lo2));
            ck_assert(other->max(x, k, &m3));
            ck_assert_int_eq(memcmp(&m1, &m2, sizeof m1), 0);
            ck_assert_int_eq(memcmp(&m1, &m3, sizeof m1), 0);
            ck_assert_int_eq(memcmp(&lo1, &lo2, sizeof lo1), 0);
            mislasi_row_sums s1 = generic->exp(x, k, m1, e1), s2 = other->exp(x, k, m2, e2);
            ck_assert_int_eq(memcmp(&s1, &s2, sizeof s1), 0);
            mislasi_row_sums w1 = generic->exp_squares(x, k, m1), w2 = other->exp_squares(x, k, m2);
            ck_assert_int_eq(memcmp(&w1, &w2, sizeof w1), 0);
            ck_assert_int_eq(memcmp(&w1.exp_sum, &s1.exp_sum, sizeof w1.exp_sum), 0);
            ck_assert_int_eq(memcmp(e1, e2, k * sizeof *e1), 0);
            ck_assert_uint_eq(generic->find(x, k, m1), other->find(x, k, m2));
            memcpy(a1, x, k * sizeof *x);
            memcpy(a2, x, k * sizeof *x);
            generic->affine(a1, k, 0.37f, -1.5f);
            other->affine(a2, k, 0.37f, -1.5f);
            ck_assert_int_eq(memcmp(a1, a2, k * sizeof *a1), 0);
            float q1 = generic->sum_squares(x, k), q2 = other->sum_squares(x, k);
            ck_assert_int_eq(memcmp(&q1, &q2, sizeof q1), 0);
            ck_assert_int_eq(generic->in_unit(e1, k), other->in_unit(e2, k));
        }
    }
    /* the CPU-chosen set is one of these */
    ck_assert_ptr_nonnull(mislasi_rowmath_get());
    ck_assert_ptr_null(mislasi_rowmath_named("sse9"));
    (void)compared;
}
END_TEST

START_TEST(exp_is_accurate)
{
    const mislasi_rowmath *rm = mislasi_rowmath_get();
    enum { K = 4096 };
    static float x[K], e[K];
    for (size_t j = 0; j < K; j++)
        x[j] = (float)(-90.0 * test_uniform());
    x[0] = 0.0f;
    x[1] = -87.0f;
    rm->exp(x, K, 0.0f, e);
    ck_assert_float_eq(e[0], 1.0f);
    double worst = 0;
    for (size_t j = 0; j < K; j++) {
        double want = exp((double)x[j]);
        if (want < FLT_MIN) {
            ck_assert(e[j] >= 0.0f && e[j] <= 2 * FLT_MIN);   /* flushed to about FLT_MIN, never subnormal junk */
            continue;
        }
        double rel = fabs(e[j] - want) / want;
        worst = rel > worst ? rel : worst;
    }
    ck_assert_msg(worst < 3.0 * FLT_EPSILON, "worst relative error %g", worst);
}
END_TEST

START_TEST(max_flags_non_finite_values)
{
    const mislasi_rowmath *rm = mislasi_rowmath_get();
    float x[33];
    for (size_t j = 0; j < 33; j++)
        x[j] = (float)j;
    float m, lo;
    ck_assert(rm->range(x, 33, &m, &lo));
    ck_assert_float_eq(m, 32.0f);
    ck_assert_float_eq(lo, 0.0f);
    x[20] = -5.0f;      /* in the tail-free first block pair */
    x[32] = -9.0f;      /* in the tail */
    ck_assert(rm->range(x, 33, &m, &lo));
    ck_assert_float_eq(lo, -9.0f);
    x[32] = 32.0f;
    ck_assert(rm->range(x, 33, &m, &lo));
    ck_assert_float_eq(lo, -5.0f);
    x[20] = 20.0f;
    const float bad[3] = { NAN, INFINITY, -INFINITY };
    const size_t where[3] = { 0, 15, 32 };   /* a full lane block and the tail */
    for (size_t b = 0; b < 3; b++)
        for (size_t w = 0; w < 3; w++) {
            float keep = x[where[w]];
            x[where[w]] = bad[b];
            ck_assert(!rm->max(x, 33, &m));
            ck_assert(!rm->range(x, 33, &m, &lo));
            x[where[w]] = keep;
        }
    ck_assert_uint_eq(rm->find(x, 33, 17.0f), 17);
    ck_assert_uint_eq(rm->find(x, 33, 0.5f), 33);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("kernels");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, every_copy_gives_the_same_bits);
    tcase_add_test(tc, exp_is_accurate);
    tcase_add_test(tc, max_flags_non_finite_values);
    suite_add_tcase(s, tc);
    return test_run_suite(s);
}
