/* Post-hoc fixes of a trained model's classifier z = s * (W f + b): they
 * change s, W or b through the tensor interface, so a checkpoint saved
 * afterwards carries them and every consumer sees the fixed logits. */
#include <mislas/model.h>

#include "util/util.h"

#include <math.h>
#include <string.h>

/* The classifier's tensors as copies: s (K), b (K), W (K x D, when wanted). */
typedef struct head {
    size_t k, d;
    float *scales, *bias, *weight;
} head;

static void head_free(head *h)
{
    mislasi_free(h->scales);
    mislasi_free(h->bias);
    mislasi_free(h->weight);
}

static int head_read(const char *fn, const mislas_model *m, head *h, bool with_weight)
{
    memset(h, 0, sizeof *h);
    h->k = (size_t)mislas_model_num_classes(m);
    h->d = (size_t)mislas_model_feature_dim(m);
    h->scales = mislasi_calloc(h->k, sizeof *h->scales);
    h->bias = mislasi_calloc(h->k, sizeof *h->bias);
    if (with_weight)
        h->weight = mislasi_calloc(h->k * h->d, sizeof *h->weight);
    if (h->scales == NULL || h->bias == NULL || (with_weight && h->weight == NULL)) {
        head_free(h);
        return mislasi_fail(MISLAS_ERR_OUT_OF_MEMORY, "%s: out of memory for the classifier", fn);
    }
    int rc = mislas_model_get_tensor(m, "learned_norm", h->scales, h->k);
    if (rc == MISLAS_OK)
        rc = mislas_model_get_tensor(m, "fc.bias", h->bias, h->k);
    if (rc == MISLAS_OK && with_weight)
        rc = mislas_model_get_tensor(m, "fc.weight", h->weight, h->k * h->d);
    if (rc != MISLAS_OK) {
        head_free(h);
        return mislasi_fail_within(rc, fn);
    }
    return MISLAS_OK;
}

/* Writes the tensors back; every value was checked finite before, so only
 * the first write could fail, and then nothing has changed. */
static int head_write(const char *fn, mislas_model *m, const head *h)
{
    int rc = h->weight != NULL ? mislas_model_set_tensor(m, "fc.weight", h->weight, h->k * h->d) : MISLAS_OK;
    if (rc == MISLAS_OK)
        rc = mislas_model_set_tensor(m, "fc.bias", h->bias, h->k);
    if (rc == MISLAS_OK)
        rc = mislas_model_set_tensor(m, "learned_norm", h->scales, h->k);
    return rc == MISLAS_OK ? MISLAS_OK : mislasi_fail_within(rc, fn);
}

static bool finite_all(const float *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(v[i]))
            return false;
    return true;
}

int mislas_model_scale_logits(mislas_model *model, const float *scale, const float *bias)
{
    static const char fn[] = "mislas_model_scale_logits";
    MISLASI_CHECK_NOT_NULL(fn, model);
    head h;
    int rc = head_read(fn, model, &h, false);
    if (rc != MISLAS_OK)
        return rc;
    for (size_t j = 0; j < h.k && rc == MISLAS_OK; j++) {
        if (scale != NULL && !(scale[j] != 0.0f && isfinite(scale[j])))
            rc = mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT, "%s: scale[%zu] = %g, need a finite, nonzero scale", fn,
                    j, (double)scale[j]);
        else if (bias != NULL && !isfinite(bias[j]))
            rc = mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT, "%s: bias[%zu] = %g is not finite", fn, j, (double)bias[j]);
    }
    /* a z + c = (a s) (W f + b + c / (a s)) */
    for (size_t j = 0; j < h.k && rc == MISLAS_OK; j++) {
        double s = (double)h.scales[j] * (scale != NULL ? scale[j] : 1.0f);
        double c = bias != NULL ? bias[j] : 0.0;
        if (c != 0.0 && s == 0.0)
            rc = mislasi_fail(MISLAS_ERR_STATE, "%s: class %zu's scale s is 0, so no bias can be added", fn, j);
        else if (s != 0.0 && !(fabs(s) >= 1.17549435e-38))
            rc = mislasi_fail(MISLAS_ERR_NUMERIC, "%s: class %zu's scale s would underflow float (%g)", fn, j, s);
        h.scales[j] = (float)s;
        h.bias[j] = (float)(h.bias[j] + (c != 0.0 ? c / s : 0.0));
    }
    if (rc == MISLAS_OK && !(finite_all(h.scales, h.k) && finite_all(h.bias, h.k)))
        rc = mislasi_fail(MISLAS_ERR_NUMERIC, "%s: the scaled classifier overflows float", fn);
    if (rc == MISLAS_OK)
        rc = head_write(fn, model, &h);
    head_free(&h);
    return rc;
}

int mislas_model_tau_normalize(mislas_model *model, float tau)
{
    static const char fn[] = "mislas_model_tau_normalize";
    MISLASI_CHECK_NOT_NULL(fn, model);
    if (!(tau >= 0.0f && tau <= 10.0f))
        return mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT, "%s: tau = %g is not in [0, 10]", fn, (double)tau);
    head h;
    int rc = head_read(fn, model, &h, true);
    if (rc != MISLAS_OK)
        return rc;
    for (size_t j = 0; j < h.k; j++) {
        float *w = h.weight + j * h.d;
        double norm = 0.0;
        for (size_t i = 0; i < h.d; i++)
            norm += (double)w[i] * w[i];
        norm = sqrt(norm);
        if (norm == 0.0)    /* a zero row stays zero */
            continue;
        double f = pow(norm, -(double)tau);
        for (size_t i = 0; i < h.d; i++)
            w[i] = (float)(w[i] * f);
    }
    if (!finite_all(h.weight, h.k * h.d))
        rc = mislasi_fail(MISLAS_ERR_NUMERIC, "%s: the normalised weights overflow float", fn);
    if (rc == MISLAS_OK)
        rc = head_write(fn, model, &h);
    head_free(&h);
    return rc;
}

int mislas_model_adjust_logits_by_prior(mislas_model *model, const int64_t *class_counts, int32_t num_classes,
        float tau)
{
    static const char fn[] = "mislas_model_adjust_logits_by_prior";
    MISLASI_CHECK_NOT_NULL(fn, model);
    MISLASI_CHECK_NOT_NULL(fn, class_counts);
    if (num_classes != mislas_model_num_classes(model))
        return mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT, "%s: num_classes = %d but the model has %d", fn,
                (int)num_classes, (int)mislas_model_num_classes(model));
    if (!(tau >= 0.0f && tau <= 1e3f))
        return mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT, "%s: tau = %g is not in [0, 1000]", fn, (double)tau);
    int rc = mislasi_check_positive_counts(fn, class_counts, num_classes);
    if (rc != MISLAS_OK)
        return rc;
    double total = 0.0;
    for (int32_t c = 0; c < num_classes; c++)
        total += (double)class_counts[c];
    float *offset = mislasi_calloc((size_t)num_classes, sizeof *offset);
    if (offset == NULL)
        return mislasi_fail(MISLAS_ERR_OUT_OF_MEMORY, "%s: out of memory", fn);
    for (int32_t c = 0; c < num_classes; c++)
        offset[c] = (float)(-tau * log((double)class_counts[c] / total));
    rc = mislas_model_scale_logits(model, NULL, offset);
    mislasi_free(offset);
    return rc == MISLAS_OK ? MISLAS_OK : mislasi_fail_within(rc, fn);
}
