/* Streaming calibration metrics inside an evaluation loop you already have.
 *
 * The loop below stands in for a caller's own evaluation: batch by batch it
 * produces logits (here from a synthetic ten-class model that is
 * over-confident on purpose: the labels follow the softmax of its "honest"
 * logits, but it reports them multiplied by 2.5) and feeds them to a
 * mislas_calib object, which keeps O(num_bins) sums however many samples go
 * through. Partway through and at the end it reads top-1, ECE, MCE, NLL and
 * Brier, then prints the reliability bins. A second object fed the same
 * batches divided by 2.5 (temperature 2.5) shows the ECE falling to ~0.
 *
 * Build against the installed library:
 *   cc streaming_ece.c $(pkg-config --cflags --libs mislas) -lm -o streaming_ece
 */
#include <mislas/mislas.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

enum { K = 10, BATCH = 250, BATCHES = 40, BINS = 10, BAR = 40 };
#define OVERCONFIDENCE 2.5f

#define CHECK(call) do { \
        int rc_ = (call); \
        if (rc_ != MISLAS_OK) { \
            fprintf(stderr, "%s failed: %s (%s)\n", #call, mislas_last_error(), mislas_status_string(rc_)); \
            exit(1); \
        } \
    } while (0)

/* The program's own random numbers: a 64-bit LCG (Knuth's MMIX constants),
 * top 24 bits as a float in [0, 1). Integer-only, so the same on every platform. */
static uint64_t lcg = 2024;
static float uniform(void)
{
    lcg = lcg * 6364136223846793005ULL + 1442695040888963407ULL;
    return (float)(lcg >> 40) / 16777216.0f;
}

/* One batch of the caller's "model". Its honest logits h are random (noise
 * in (-1.5, 1.5) per class, plus a margin in [1, 5) on one class) and the
 * label is drawn from softmax(h), so h is calibrated by construction; the
 * model reports OVERCONFIDENCE * h, sharper than the truth. */
static void model_batch(float *logits, int32_t *labels, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        float h[K], p[K], sum = 0.0f;
        int favourite = (int)(uniform() * K);
        float margin = 1.0f + 4.0f * uniform();
        for (int c = 0; c < K; c++) {
            h[c] = 1.5f * (uniform() + uniform() - 1.0f) + (c == favourite ? margin : 0.0f);
            p[c] = expf(h[c]);
            sum += p[c];
            logits[i * K + (size_t)c] = OVERCONFIDENCE * h[c];
        }
        float u = uniform() * sum;
        labels[i] = K - 1;
        for (int c = 0; c < K - 1; c++)
            if ((u -= p[c]) < 0.0f) {
                labels[i] = c;
                break;
            }
    }
}

static void print_summary(const char *what, const mislas_calib *calib)
{
    mislas_calib_summary s;
    mislas_calib_summary_init(&s);      /* sets struct_size: the fields this program knows */
    CHECK(mislas_calib_summarize(calib, &s));
    printf("%-22s n=%5llu  top-1 %5.2f%%  conf %5.2f%%  ECE %5.2f%%  MCE %5.2f%%  NLL %.4f  Brier %.4f\n",
           what, (unsigned long long)s.count, 100 * s.accuracy, 100 * s.avg_confidence,
           100 * s.ece, 100 * s.mce, s.nll, s.brier);
}

int main(void)
{
    mislas_calib *calib = NULL, *scaled = NULL;
    CHECK(mislas_calib_new(&calib, K, BINS));
    CHECK(mislas_calib_new(&scaled, K, BINS));

    static float logits[BATCH * K];
    int32_t labels[BATCH];
    printf("libmislas %s: %d batches of %d samples, %d classes, %d bins\n",
           mislas_version(), BATCHES, BATCH, K, BINS);

    /* The caller's evaluation loop: one add per batch, nothing kept per sample. */
    for (int b = 0; b < BATCHES; b++) {
        model_batch(logits, labels, BATCH);
        CHECK(mislas_calib_add_logits(calib, logits, labels, BATCH));
        for (int i = 0; i < BATCH * K; i++)      /* the same batch at temperature 2.5 */
            logits[i] /= OVERCONFIDENCE;
        CHECK(mislas_calib_add_logits(scaled, logits, labels, BATCH));
        if ((b + 1) % 10 == 0 && b + 1 < BATCHES) {
            char what[32];
            snprintf(what, sizeof what, "after %d batches:", b + 1);
            print_summary(what, calib);
        }
    }
    print_summary("final:", calib);
    print_summary("final, logits / 2.5:", scaled);

    mislas_calib_bin bins[BINS];
    CHECK(mislas_calib_bins(calib, bins, mislas_calib_num_bins(calib)));
    printf("\nreliability bins ('#' = accuracy, '-' = the gap up to the mean confidence):\n");
    printf("  confidence     count  accuracy  confidence  0%%%*s100%%\n", BAR - 5, "");
    for (int b = 0; b < BINS; b++) {
        const mislas_calib_bin *bin = &bins[b];
        char bar[BAR + 1];
        int acc = (int)(bin->accuracy * BAR + 0.5), conf = (int)(bin->confidence * BAR + 0.5);
        for (int j = 0; j < BAR; j++)
            bar[j] = j < acc ? '#' : j < conf ? '-' : ' ';
        bar[BAR] = '\0';
        if (bin->count == 0)
            printf("  (%.2f, %.2f]  %6llu         -           -  |\n", bin->lower, bin->upper, 0ULL);
        else
            printf("  (%.2f, %.2f]  %6llu   %6.2f%%     %6.2f%%  |%s|\n", bin->lower, bin->upper,
                   (unsigned long long)bin->count, 100 * bin->accuracy, 100 * bin->confidence, bar);
    }

    mislas_calib_free(scaled);
    mislas_calib_free(calib);
    return 0;
}
