/* Helpers of the layer suites (layercheck.h). */
#include "layercheck.h"
#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

float *alloc_guarded(size_t n)
{
    float *p = malloc((n + GUARD) * sizeof *p);
    ck_assert_ptr_nonnull(p);
    for (size_t i = 0; i < n; i++)
        p[i] = NAN;
    for (size_t i = 0; i < GUARD; i++)
        p[n + i] = SENTINEL;
    return p;
}

void refill_nan(float *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = NAN;
}

void check_guard(const float *p, size_t n, const char *what)
{
    const float sentinel = SENTINEL;
    for (size_t i = 0; i < GUARD; i++)
        ck_assert_msg(memcmp(&p[n + i], &sentinel, sizeof sentinel) == 0,
            "%s: written past its end (%zu floats), at +%zu", what, n, i);
}

float *alloc_floats(size_t n)
{
    float *p = malloc((n ? n : 1) * sizeof *p);
    ck_assert_ptr_nonnull(p);
    return p;
}

double *alloc_doubles(size_t n)
{
    double *p = calloc(n ? n : 1, sizeof *p);
    ck_assert_ptr_nonnull(p);
    return p;
}

float *copy_floats(const float *src, size_t n)
{
    float *p = alloc_floats(n);
    memcpy(p, src, n * sizeof *p);
    return p;
}

void fill_uniform(float *p, size_t n, double lo, double hi)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (float)(lo + (hi - lo) * test_uniform());
}

size_t pick(size_t n)
{
    size_t i = (size_t)(test_uniform() * (double)n);
    return i < n ? i : n - 1;
}

void expect_close(const char *what, size_t i, double got, double want, double tol)
{
    if (!(fabs(got - want) <= tol))
        ck_abort_msg("%s[%zu] = %.9g, expected %.9g (|diff| %.3g > tolerance %.3g)",
            what, i, got, want, fabs(got - want), tol);
}

void expect_same_bits(const char *what, const float *got, const float *want, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (memcmp(&got[i], &want[i], sizeof *got) != 0)
            ck_abort_msg("%s[%zu] = %.9g, bits differ from %.9g", what, i, (double)got[i], (double)want[i]);
}

double dot_rf(const float *r, const float *y, size_t n)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++)
        s += (double)r[i] * y[i];
    return s;
}

void set_threads(int32_t n)
{
    ck_assert_status(mislas_set_num_threads(n), MISLAS_OK);
}
