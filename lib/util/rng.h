/* The library's own random numbers: the same seed gives the same stream on
 * every platform, and any stream can be derived from (seed, tag, index)
 * without drawing the ones before it. */
#ifndef MISLAS_RNG_H
#define MISLAS_RNG_H

#include <stddef.h>
#include <stdint.h>

typedef struct mislasi_rng {
    uint64_t state;
} mislasi_rng;

/* A well-mixed 64-bit function of three keys (splitmix64 finaliser chain). */
uint64_t mislasi_hash3(uint64_t seed, uint64_t tag, uint64_t index);
/* Folds n bytes into the FNV-1a hash *h (start from 0xcbf29ce484222325):
 * the digest a resumed training run must find unchanged. */
void mislasi_digest_bytes(uint64_t *h, const void *p, size_t n);
void mislasi_rng_init(mislasi_rng *r, uint64_t seed, uint64_t tag, uint64_t index);
uint64_t mislasi_rng_next(mislasi_rng *r);
/* Uniform in [0, bound), bound >= 1, exactly (rejection, no modulo bias). */
uint64_t mislasi_rng_below(mislasi_rng *r, uint64_t bound);
/* Uniform double in [0, 1) with 53 random bits. */
double mislasi_rng_uniform(mislasi_rng *r);
/* Standard normal (Box-Muller). */
double mislasi_rng_normal(mislasi_rng *r);
/* Beta(a, b), a, b > 0, through two Gamma variates (Marsaglia-Tsang, with
 * the shape < 1 boost done in log space so tiny shapes cannot give 0 / 0). */
double mislasi_rng_beta(mislasi_rng *r, double a, double b);
/* Shuffles values[0..n-1] in place (Fisher-Yates). */
void mislasi_rng_shuffle_u32(mislasi_rng *r, uint32_t *values, size_t n);

#endif
