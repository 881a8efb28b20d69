/* Samplers: streams of dataset indices for long-tailed training.
 *
 * A sampler is an endless, seeded stream cut into epochs of
 * mislas_sampler_epoch_length() indices. The stream is a pure function of the
 * seed and the position in it: the same seed gives the same indices on every
 * platform, and mislas_sampler_set_epoch(s, e) jumps to the first index of
 * epoch e exactly as if epochs 0..e-1 had been drawn (so a resumed training
 * sees the same batches). A sampler is used by one thread at a time.
 *
 *   INSTANCE     each epoch (of natural length) is a fresh permutation of all
 *                n indices; consecutive permutations follow each other when
 *                epoch_length differs from n.
 *   CLASS_AWARE  MiSLAS's class-balanced sampler: classes are visited from a
 *                shuffled cycle of class ids (reshuffled when it ends); each
 *                visit takes samples_per_class consecutive indices from that
 *                class's own shuffled cycle of its samples. Cycles persist
 *                across epochs; each epoch starts a fresh visit, and a visit
 *                cut short by the end of an epoch still uses up its
 *                samples_per_class samples (as the reference's generator
 *                does). Class frequencies within an epoch are equal when
 *                its length is a multiple of samples_per_class * K, and
 *                otherwise differ by at most two visits. Natural epoch
 *                length: N_max * K (K = the classes that have samples).
 *   SQRT         i.i.d. draws: a class with probability proportional to
 *                sqrt(N_c), then one of its samples uniformly. Length n.
 *   PROGRESSIVE  i.i.d. draws, class probability
 *                (1 - t) N_c / n + t / K with t = min(epoch / total_epochs, 1)
 *                and K the classes that have samples:
 *                instance-balanced at epoch 0, class-balanced from epoch
 *                total_epochs on. Length n.
 *   REVERSED     i.i.d. draws, class probability proportional to 1 / N_c
 *                (BBN's reversed sampler). Length n.
 * Classes without samples are never drawn. */
#ifndef MISLAS_SAMPLER_H
#define MISLAS_SAMPLER_H

#include <mislas/common.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mislas_sampler mislas_sampler;

typedef enum mislas_sampler_kind {
    MISLAS_SAMPLER_INSTANCE = 0,      /* shuffle, each sample once per epoch */
    MISLAS_SAMPLER_CLASS_AWARE = 1,   /* MiSLAS's (docs/method.md) */
    MISLAS_SAMPLER_SQRT = 2,          /* class probability proportional to sqrt(N_c) */
    MISLAS_SAMPLER_PROGRESSIVE = 3,   /* instance -> class-balanced, linear in epoch/total */
    MISLAS_SAMPLER_REVERSED = 4       /* class probability proportional to 1/N_c (BBN) */
} mislas_sampler_kind;

typedef struct mislas_sampler_options {
    size_t struct_size;
    mislas_sampler_kind kind;   /* default MISLAS_SAMPLER_INSTANCE */
    uint64_t seed;              /* default 0 */
    int32_t samples_per_class;  /* CLASS_AWARE: consecutive draws per class visit, default 4 */
    size_t epoch_length;        /* 0 = the kind's natural length (default) */
    int32_t total_epochs;       /* PROGRESSIVE: epochs to reach class balance, >= 1, default 1 */
} mislas_sampler_options;
MISLAS_API void mislas_sampler_options_init(mislas_sampler_options *o);

/* labels[n] in [0, num_classes); the sampler keeps its own copy of what it
 * needs. opts NULL = defaults. */
MISLAS_API int mislas_sampler_new(mislas_sampler **out, const int32_t *labels, size_t n,
        int32_t num_classes, const mislas_sampler_options *opts);
/* Indices per epoch (0 for NULL). */
MISLAS_API size_t mislas_sampler_epoch_length(const mislas_sampler *s);
/* Positions the stream at the first index of epoch `epoch` (>= 0). */
MISLAS_API int mislas_sampler_set_epoch(mislas_sampler *s, int32_t epoch);
/* The epoch the next index belongs to (-1 for NULL). */
MISLAS_API int32_t mislas_sampler_epoch(const mislas_sampler *s);
/* the next `count` dataset indices of the stream; crosses epoch boundaries on its own.
 * count = 0 draws nothing (indices may then be NULL). */
MISLAS_API int mislas_sampler_next(mislas_sampler *s, size_t *indices, size_t count);
MISLAS_API void mislas_sampler_free(mislas_sampler *s);

#ifdef __cplusplus
}
#endif

#endif
