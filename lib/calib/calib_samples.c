/* Calibration metrics that rank or bin every sample, so they take the whole
 * set at once (calib.c's streaming object keeps only per-bin sums). */
#include <mislas/calib.h>

#include "util/util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int check_set(const char *fn, const float *logits, const int32_t *targets, size_t n, int32_t num_classes,
        int32_t num_bins)
{
    if (num_bins < 1)
        return mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT, "%s: num_bins = %d, need at least 1", fn, (int)num_bins);
    return mislasi_check_logit_set(fn, logits, targets, n, num_classes);
}

typedef struct scored {
    double confidence;
    int correct;
} scored;

static int by_confidence(const void *a, const void *b)
{
    double x = ((const scored *)a)->confidence, y = ((const scored *)b)->confidence;
    return (x > y) - (x < y);
}

int mislas_calib_adaptive_ece(double *ece, const float *logits, const int32_t *targets, size_t n,
        int32_t num_classes, int32_t num_bins)
{
    static const char fn[] = "mislas_calib_adaptive_ece";
    MISLASI_CHECK_NOT_NULL(fn, ece);
    int rc = check_set(fn, logits, targets, n, num_classes, num_bins);
    if (rc != MISLAS_OK)
        return rc;
    scored *s = mislasi_calloc(n, sizeof *s);
    if (s == NULL)
        return mislasi_fail(MISLAS_ERR_OUT_OF_MEMORY, "%s: out of memory for %zu samples", fn, n);
    const mislasi_rowmath *rm = mislasi_rowmath_get();
    const size_t k = (size_t)num_classes;
    for (size_t i = 0; i < n; i++) {
        const float *z = logits + i * k;
        float m;
        rm->max(z, k, &m);
        /* the confidence and prediction mislas_calib_add_logits uses */
        s[i].confidence = (double)(1.0f / rm->exp_squares(z, k, m).exp_sum);
        s[i].correct = (int32_t)rm->find(z, k, m) == targets[i];
    }
    /* ties are equal keys, so their order after qsort cannot matter: they
     * end up in one bin below */
    qsort(s, n, sizeof *s, by_confidence);
    double total = 0.0;
    size_t begin = 0;
    for (int32_t b = 1; b <= num_bins && begin < n; b++) {
        size_t end = b == num_bins ? n : (size_t)((double)n * b / num_bins);
        while (end < n && end > 0 && s[end].confidence == s[end - 1].confidence)
            end++;
        if (end <= begin)
            continue;
        double correct = 0.0, confidence = 0.0;
        for (size_t i = begin; i < end; i++) {
            correct += s[i].correct;
            confidence += s[i].confidence;
        }
        total += fabs(correct - confidence);
        begin = end;
    }
    mislasi_free(s);
    *ece = total / (double)n;
    return MISLAS_OK;
}

int mislas_calib_classwise_ece(double *ece, const float *logits, const int32_t *targets, size_t n,
        int32_t num_classes, int32_t num_bins)
{
    static const char fn[] = "mislas_calib_classwise_ece";
    MISLASI_CHECK_NOT_NULL(fn, ece);
    int rc = check_set(fn, logits, targets, n, num_classes, num_bins);
    if (rc != MISLAS_OK)
        return rc;
    const size_t k = (size_t)num_classes, bins = (size_t)num_bins;
    if (k > SIZE_MAX / bins / sizeof(double))
        return mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT, "%s: %zu classes x %zu bins overflow size_t", fn, k, bins);
    /* per class and bin: the samples of that class (n_b freq_b) and the
     * probabilities (n_b conf_b), whose difference is all ECE_k needs */
    double *hits = mislasi_calloc(k * bins, sizeof *hits), *prob = mislasi_calloc(k * bins, sizeof *prob);
    double *p = mislasi_calloc(k, sizeof *p);
    if (hits == NULL || prob == NULL || p == NULL) {
        mislasi_free(hits);
        mislasi_free(prob);
        mislasi_free(p);
        return mislasi_fail(MISLAS_ERR_OUT_OF_MEMORY, "%s: out of memory for %zu classes x %zu bins", fn, k, bins);
    }
    for (size_t i = 0; i < n; i++) {
        const float *z = logits + i * k;
        double m = z[0], sum = 0.0;
        for (size_t j = 1; j < k; j++)
            m = z[j] > m ? z[j] : m;
        for (size_t j = 0; j < k; j++)
            sum += p[j] = exp((double)z[j] - m);
        for (size_t j = 0; j < k; j++) {
            double pj = p[j] / sum;
            size_t b = (size_t)(pj * (double)bins);
            b = b < bins ? b : bins - 1;
            hits[j * bins + b] += targets[i] == (int32_t)j;
            prob[j * bins + b] += pj;
        }
    }
    double total = 0.0;
    for (size_t j = 0; j < k; j++) {
        double class_ece = 0.0;
        for (size_t b = 0; b < bins; b++)
            class_ece += fabs(hits[j * bins + b] - prob[j * bins + b]);
        total += class_ece / (double)n;
    }
    mislasi_free(hits);
    mislasi_free(prob);
    mislasi_free(p);
    *ece = total / (double)k;
    return MISLAS_OK;
}
