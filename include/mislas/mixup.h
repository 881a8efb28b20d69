/* mixup (Zhang et al., 2018) on an assembled batch, as stage 1 uses it
 * (docs/method.md, "mixup"). */
#ifndef MISLAS_MIXUP_H
#define MISLAS_MIXUP_H

#include <mislas/common.h>

#ifdef __cplusplus
extern "C" {
#endif

/* mixup on an assembled batch, in place: lambda ~ Beta(alpha, alpha) and a
 * random permutation p of the batch, both from (seed, batch_id);
 * images[i] = lambda * images[i] + (1 - lambda) * images[p[i]] and
 * labels_b[i] = labels[p[i]], so that mislas_loss_compute_mixup(loss,
 * logits, labels, labels_b, lambda, ...) is the mixup criterion.
 * alpha <= 0 means lambda = 1: images unchanged, labels_b = labels. n = 0
 * does nothing (not even *lambda_out) and succeeds.
 * image_size = C x H x W. *lambda_out receives lambda. labels_b must not
 * overlap labels. */
MISLAS_API int mislas_mixup(float *images, int32_t *labels_b, float *lambda_out,
        const int32_t *labels, size_t n, size_t image_size, float alpha, uint64_t seed,
        uint64_t batch_id);

#ifdef __cplusplus
}
#endif

#endif
