/* mixup on an assembled batch (docs/method.md, "Mixup"): one lambda from
 * Beta(alpha, alpha) and one permutation per batch, drawn from
 * (seed, batch_id) with the library's own generator. The images are mixed in
 * place by walking the permutation's cycles, which needs one spare image
 * rather than a copy of the batch. */
#include <mislas/mixup.h>

#include "data.h"
#include "util/util.h"

#include <math.h>
#include <string.h>

enum { TAG_MIXUP = 31 };

void mislasi_mixup_draw(size_t n, float alpha, uint64_t seed, uint64_t batch_id, uint32_t *perm, float *lambda)
{
    mislasi_rng r;
    mislasi_rng_init(&r, seed, TAG_MIXUP, batch_id);
    *lambda = (float)mislasi_rng_beta(&r, alpha, alpha);
    for (size_t i = 0; i < n; i++)
        perm[i] = (uint32_t)i;
    mislasi_rng_shuffle_u32(&r, perm, n);
}

/* 1 - lambda is taken from the float lambda handed back, so that callers can
 * redo it */
void mislasi_mixup_pair(float *x, const float *other, size_t size, float lambda)
{
    const float a = lambda, b = (float)(1.0 - (double)a);
    for (size_t e = 0; e < size; e++)
        x[e] = a * x[e] + b * other[e];
}

int mislas_mixup(float *images, int32_t *labels_b, float *lambda_out, const int32_t *labels,
        size_t n, size_t image_size, float alpha, uint64_t seed, uint64_t batch_id)
{
    static const char fn[] = "mislas_mixup";
    if (n == 0)
        return MISLAS_OK;    /* an empty batch mixes nothing (docs/api.md, "Rules") */
    MISLASI_CHECK_NOT_NULL(fn, images);
    MISLASI_CHECK_NOT_NULL(fn, labels);
    MISLASI_CHECK_NOT_NULL(fn, labels_b);
    MISLASI_CHECK_NOT_NULL(fn, lambda_out);
    if (n > UINT32_MAX)
        return mislasi_fail(MISLAS_ERR_UNSUPPORTED, "%s: n = %zu, at most %u images per batch", fn, n, UINT32_MAX);
    if (image_size == 0 || image_size > SIZE_MAX / sizeof(float) / n)
        return mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT, "%s: image_size = %zu with n = %zu is not a valid size",
                fn, image_size, n);
    if (isnan(alpha) || isinf(alpha))
        return mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT, "%s: alpha = %g is not finite", fn, (double)alpha);
    if (alpha <= 0.0f) {
        memmove(labels_b, labels, n * sizeof *labels);
        *lambda_out = 1.0f;
        return MISLAS_OK;
    }
    uint32_t *perm = mislasi_calloc(n, sizeof *perm);
    float *spare = mislasi_alloc(image_size * sizeof *spare);
    if (perm == NULL || spare == NULL) {
        mislasi_free(perm);
        mislasi_free(spare);
        return mislasi_fail(MISLAS_ERR_OUT_OF_MEMORY, "%s: out of memory", fn);
    }
    float a;
    mislasi_mixup_draw(n, alpha, seed, batch_id, perm, &a);
    for (size_t i = 0; i < n; i++)
        labels_b[i] = labels[perm[i]];
    /* x[i] = lambda x[i] + (1 - lambda) x[perm[i]], every partner as it was
     * before the mixing */
    for (size_t start = 0; start < n; start++) {
        if (perm[start] == UINT32_MAX)
            continue;
        memcpy(spare, images + start * image_size, image_size * sizeof *spare);
        size_t i = start;
        for (;;) {
            size_t j = perm[i];
            const float *other = j == start ? spare : images + j * image_size;
            mislasi_mixup_pair(images + i * image_size, other, image_size, a);
            perm[i] = UINT32_MAX;          /* done */
            if (j == start)
                break;
            i = j;
        }
    }
    *lambda_out = a;
    mislasi_free(perm);
    mislasi_free(spare);
    return MISLAS_OK;
}
