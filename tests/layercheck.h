/* Helpers of the layer suites (test_layers.c, test_conv.c): guarded
 * buffers, random fills and bit-for-bit comparisons. */
#ifndef MISLAS_LAYERCHECK_H
#define MISLAS_LAYERCHECK_H

#include <stddef.h>
#include <stdint.h>

/* Tolerances are in units of U = 2^-24, the unit roundoff of float. */
#define U 0x1p-24

enum { GUARD = 16 };
/* what a guard holds */
#define SENTINEL (-12345.25f)

/* n floats of NaN followed by GUARD sentinels; check_guard fails the test
 * if any sentinel changed, refill_nan sets the n floats to NaN again. */
float *alloc_guarded(size_t n);
void refill_nan(float *p, size_t n);
void check_guard(const float *p, size_t n, const char *what);

float *alloc_floats(size_t n);
double *alloc_doubles(size_t n);    /* zeroed */
float *copy_floats(const float *src, size_t n);
/* uniform in [lo, hi) from test_uniform */
void fill_uniform(float *p, size_t n, double lo, double hi);
/* a random index below n */
size_t pick(size_t n);

/* got within tol of want; a NaN fails */
void expect_close(const char *what, size_t i, double got, double want, double tol);
void expect_same_bits(const char *what, const float *got, const float *want, size_t n);

/* L = sum R y in double */
double dot_rf(const float *r, const float *y, size_t n);

void set_threads(int32_t n);

#endif
