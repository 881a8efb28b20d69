/* A training loop you already have, with libmislas dropped in.
 *
 * Softmax regression on synthetic long-tailed data made right here: ten
 * Gaussian classes whose training counts fall from 500 to 5 (IF 100). The
 * loop is plain C; the library supplies the batches (a class-aware sampler),
 * the loss and its gradient (label-aware smoothing from the class counts) and
 * the calibration report (accuracy and ECE on a balanced test set).
 *
 * Build against the installed library:
 *   cc train_loop_with_las.c $(pkg-config --cflags --libs mislas) -lm -o train_loop_with_las
 */
#include <mislas/mislas.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { K = 10, D = 16, TEST_PER_CLASS = 200, BATCH = 64, EPOCHS = 15 };

#define CHECK(call) do { \
        int rc_ = (call); \
        if (rc_ != MISLAS_OK) { \
            fprintf(stderr, "%s failed: %s (%s)\n", #call, mislas_last_error(), mislas_status_string(rc_)); \
            exit(1); \
        } \
    } while (0)

/* The program's own random numbers (xorshift64* and Box-Muller). */
static unsigned long long rng = 42;
static double uniform(void)
{
    rng ^= rng >> 12; rng ^= rng << 25; rng ^= rng >> 27;
    return (double)((rng * 2685821657736338717ULL) >> 11) / 9007199254740992.0;
}
static double gaussian(void)
{
    double u = uniform() + 1e-300, v = uniform();
    return sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v);
}

typedef struct data { float *x; int32_t *y; size_t n; } data;

static data make_data(const float *means, const int64_t *counts)
{
    data d = { NULL, NULL, 0 };
    for (int c = 0; c < K; c++)
        d.n += (size_t)counts[c];
    d.x = malloc(d.n * D * sizeof *d.x);
    d.y = malloc(d.n * sizeof *d.y);
    size_t i = 0;
    for (int c = 0; c < K; c++)
        for (int64_t j = 0; j < counts[c]; j++, i++) {
            d.y[i] = c;
            for (int f = 0; f < D; f++)
                d.x[i * D + f] = means[c * D + f] + (float)gaussian();
        }
    return d;
}

/* logits[r][c] = W[c] . x[r] + b[c] */
static void forward(const float *w, const float *b, const float *x, size_t rows, float *logits)
{
    for (size_t r = 0; r < rows; r++)
        for (int c = 0; c < K; c++) {
            float z = b[c];
            for (int f = 0; f < D; f++)
                z += w[c * D + f] * x[r * D + f];
            logits[r * K + c] = z;
        }
}

int main(void)
{
    float means[K * D];
    for (int i = 0; i < K * D; i++)
        means[i] = (float)(0.9 * gaussian());
    int64_t train_counts[K], test_counts[K];
    CHECK(mislas_long_tail_counts(train_counts, K, 500, 0.01, MISLAS_IMBALANCE_EXP));
    for (int c = 0; c < K; c++)
        test_counts[c] = TEST_PER_CLASS;
    data train = make_data(means, train_counts), test = make_data(means, test_counts);
    printf("libmislas %s: %zu training samples (%lld ... %lld per class), %zu test samples\n",
           mislas_version(), train.n, (long long)train_counts[0], (long long)train_counts[K - 1], test.n);

    /* What the library provides: batches, loss + gradient, calibration. */
    mislas_sampler_options so;
    mislas_sampler_options_init(&so);
    so.kind = MISLAS_SAMPLER_CLASS_AWARE;
    so.seed = 7;
    mislas_sampler *sampler = NULL;
    CHECK(mislas_sampler_new(&sampler, train.y, train.n, K, &so));
    mislas_las_options lo;
    mislas_las_options_init(&lo);          /* concave shape */
    /* Less smoothing than the paper's CIFAR values (0.3 / 0.0): these classes
     * are easy to tell apart, and over-smoothing makes a model underconfident. */
    lo.smooth_head = 0.1f;
    lo.smooth_tail = 0.0f;
    mislas_loss *loss = NULL;
    CHECK(mislas_loss_new_label_aware_smoothing(&loss, train_counts, K, &lo));
    mislas_calib *calib = NULL;
    CHECK(mislas_calib_new(&calib, K, 15));

    float w[K * D] = { 0 }, b[K] = { 0 };
    float xb[BATCH * D], logits[BATCH * K], grad[BATCH * K];
    int32_t yb[BATCH];
    size_t idx[BATCH];
    float *test_logits = malloc(test.n * K * sizeof *test_logits);
    const float lr = 0.2f;
    size_t steps = mislas_sampler_epoch_length(sampler) / BATCH;

    for (int epoch = 0; epoch < EPOCHS; epoch++) {
        double loss_sum = 0;
        for (size_t step = 0; step < steps; step++) {
            CHECK(mislas_sampler_next(sampler, idx, BATCH));
            for (int r = 0; r < BATCH; r++) {
                memcpy(xb + r * D, train.x + idx[r] * D, D * sizeof *xb);
                yb[r] = train.y[idx[r]];
            }
            forward(w, b, xb, BATCH, logits);
            float value;
            CHECK(mislas_loss_compute(loss, logits, yb, BATCH, &value, grad));
            loss_sum += value;
            /* grad is d(mean loss)/d(logits): chain it through the linear layer */
            for (int r = 0; r < BATCH; r++)
                for (int c = 0; c < K; c++) {
                    float g = grad[r * K + c];
                    b[c] -= lr * g;
                    for (int f = 0; f < D; f++)
                        w[c * D + f] -= lr * g * xb[r * D + f];
                }
        }
        mislas_calib_reset(calib);
        forward(w, b, test.x, test.n, test_logits);
        CHECK(mislas_calib_add_logits(calib, test_logits, test.y, test.n));
        mislas_calib_summary s;
        mislas_calib_summary_init(&s);
        CHECK(mislas_calib_summarize(calib, &s));
        printf("epoch %d: train loss %.4f  test accuracy %5.2f%%  ECE %5.2f%%  NLL %.4f\n",
               epoch + 1, loss_sum / (double)steps, 100 * s.accuracy, 100 * s.ece, s.nll);
    }

    free(test_logits);
    free(train.x); free(train.y); free(test.x); free(test.y);
    mislas_calib_free(calib);
    mislas_loss_free(loss);
    mislas_sampler_free(sampler);
    return 0;
}
