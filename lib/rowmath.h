/* Vector kernels over one row of K floats (a row of logits or probabilities),
 * the inner loops of the losses and calibration metrics. Each is compiled
 * for AVX-512, AVX2 and baseline x86-64 and picked at load time; all three
 * give bit-identical results (16 logical lanes, fixed reduction order, no FMA
 * contraction). */
#ifndef MISLAS_ROWMATH_H
#define MISLAS_ROWMATH_H

#include <stdbool.h>
#include <stddef.h>

/* Largest element; false if any element is NaN or infinite (max unset then). */
bool mislasi_row_max(const float *x, size_t k, float *max_out);

typedef struct mislasi_row_sums {
    float exp_sum;      /* sum_j exp(x_j - m) */
    float shifted_sum;  /* sum_j (x_j - m) */
    float exp_sq_sum;   /* sum_j exp(x_j - m)^2 */
} mislasi_row_sums;
/* e_j = exp(x_j - m) for m >= max(x), written to e (may be NULL, may not
 * alias x), with the three sums. exp is a degree-6 polynomial, within 2 ulp
 * of expf; arguments below -87.3 give 2^-126 rather than a subnormal. */
mislasi_row_sums mislasi_row_exp(const float *x, size_t k, float m, float *e);

/* First index whose element equals value (k if none). */
size_t mislasi_row_find(const float *x, size_t k, float value);

/* x_j = x_j * a + b */
void mislasi_row_affine(float *x, size_t k, float a, float b);

/* true when every element lies in [0, 1] (NaN fails). */
bool mislasi_row_in_unit(const float *x, size_t k);

/* sum_j x_j^2 */
float mislasi_row_sum_squares(const float *x, size_t k);

#endif
