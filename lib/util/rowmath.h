/* Vector kernels over one row of K floats (a row of logits or probabilities),
 * the inner loops of the losses and calibration metrics. They exist once per
 * instruction set (generic x86-64 or other CPUs, AVX2, AVX-512); the one
 * isa.h chooses is used. All copies give bit-identical results. */
#ifndef MISLAS_ROWMATH_H
#define MISLAS_ROWMATH_H

#include <stdbool.h>
#include <stddef.h>

typedef struct mislasi_row_sums {
    float exp_sum;      /* sum_j exp(x_j - m) */
    float shifted_sum;  /* sum_j (x_j - m), from exp only */
    float exp_sq_sum;   /* sum_j exp(x_j - m)^2, from exp_squares only */
} mislasi_row_sums;

typedef struct mislasi_rowmath {
    /* Largest element; false if any element is NaN or infinite (max unset then). */
    bool (*max)(const float *x, size_t k, float *max_out);
    /* The same, with the smallest element too. */
    bool (*range)(const float *x, size_t k, float *max_out, float *min_out);
    /* e_j = exp(x_j - m) for m >= max(x), written to e (may be NULL, or x
     * itself: each block is read before it is written), with exp_sum and
     * shifted_sum. exp is a degree-6 polynomial within 2 ulp
     * of expf; arguments below -87.3 give 2^-126 rather than a subnormal. */
    mislasi_row_sums (*exp)(const float *x, size_t k, float m, float *e);
    /* The same pass for calibration: exp_sum and exp_sq_sum, nothing written. */
    mislasi_row_sums (*exp_squares)(const float *x, size_t k, float m);
    /* First index whose element equals value (k if none). */
    size_t (*find)(const float *x, size_t k, float value);
    /* x_j = x_j * a + b */
    void (*affine)(float *x, size_t k, float a, float b);
    /* true when every element lies in [0, 1] (NaN fails). */
    bool (*in_unit)(const float *x, size_t k);
    /* sum_j x_j^2 */
    float (*sum_squares)(const float *x, size_t k);
} mislasi_rowmath;

/* The kernels for this CPU (chosen once, on first use). */
const mislasi_rowmath *mislasi_rowmath_get(void);
/* The kernels for a named set ("generic", "avx2", "avx512"), or NULL when it
 * is unknown, not built, or not supported by this CPU. */
const mislasi_rowmath *mislasi_rowmath_named(const char *isa);

#endif
