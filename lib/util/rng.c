/* splitmix64 as both the generator and the key-mixing function: it passes
 * BigCrush, needs 8 bytes of state, and makes counter-based derivation of
 * independent streams trivial, which is what set_epoch-style jumps need. */
#include "rng.h"

#include <math.h>

__extension__ typedef unsigned __int128 u128;

static const uint64_t GOLDEN = 0x9e3779b97f4a7c15ULL;

static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void mislasi_digest_bytes(uint64_t *h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) {
        *h ^= b[i];
        *h *= 0x100000001b3ull;
    }
}

uint64_t mislasi_hash3(uint64_t seed, uint64_t tag, uint64_t index)
{
    uint64_t h = mix64(seed + GOLDEN);
    h = mix64(h ^ (tag + 2 * GOLDEN));
    return mix64(h ^ (index + 3 * GOLDEN));
}

void mislasi_rng_init(mislasi_rng *r, uint64_t seed, uint64_t tag, uint64_t index)
{
    r->state = mislasi_hash3(seed, tag, index);
}

uint64_t mislasi_rng_next(mislasi_rng *r)
{
    r->state += GOLDEN;
    return mix64(r->state);
}

uint64_t mislasi_rng_below(mislasi_rng *r, uint64_t bound)
{
    /* Lemire's multiply-shift; reject the few low products that would bias. */
    u128 m = (u128)mislasi_rng_next(r) * bound;
    uint64_t low = (uint64_t)m;
    if (low < bound) {
        uint64_t threshold = (0 - bound) % bound;
        while (low < threshold) {
            m = (u128)mislasi_rng_next(r) * bound;
            low = (uint64_t)m;
        }
    }
    return (uint64_t)(m >> 64);
}

double mislasi_rng_uniform(mislasi_rng *r)
{
    return (double)(mislasi_rng_next(r) >> 11) * 0x1.0p-53;
}

void mislasi_rng_shuffle_u32(mislasi_rng *r, uint32_t *values, size_t n)
{
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)mislasi_rng_below(r, i);
        uint32_t t = values[i - 1];
        values[i - 1] = values[j];
        values[j] = t;
    }
}

double mislasi_rng_normal(mislasi_rng *r)
{
    double u = 1.0 - mislasi_rng_uniform(r);   /* (0, 1]: log is finite */
    double v = mislasi_rng_uniform(r);
    return sqrt(-2.0 * log(u)) * cos(6.283185307179586476925 * v);
}

/* log of a Gamma(k, 1) variate. */
static double log_gamma_variate(mislasi_rng *r, double k)
{
    double boost = 0.0;
    if (k < 1.0) { /* Gamma(k) = Gamma(k + 1) * U^(1/k) */
        boost = log(1.0 - mislasi_rng_uniform(r)) / k;
        k += 1.0;
    }
    double d = k - 1.0 / 3.0, c = 1.0 / sqrt(9.0 * d);
    for (;;) {
        double x = mislasi_rng_normal(r), v = 1.0 + c * x;
        if (v <= 0.0)
            continue;
        v = v * v * v;
        double u = 1.0 - mislasi_rng_uniform(r);
        if (u < 1.0 - 0.0331 * x * x * x * x || log(u) < 0.5 * x * x + d * (1.0 - v + log(v)))
            return log(d * v) + boost;
    }
}

double mislasi_rng_beta(mislasi_rng *r, double a, double b)
{
    double lx = log_gamma_variate(r, a), ly = log_gamma_variate(r, b);
    return 1.0 / (1.0 + exp(ly - lx));         /* X / (X + Y) */
}
