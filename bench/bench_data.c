/* The list-file data path (docs/data.md): JPEGs decoded and transformed per
 * core, for the training transform (RandomResizedCrop(224), flip,
 * ColorJitter) and the test transform (Resize(256), CenterCrop(224)),
 * against PIL + torchvision doing the same on the same files
 * (bench/pytorch_data.py, run by bench/run, writes them and the baseline);
 * then the share of a ResNet-50 training step (batch 16, 224 x 224, 2
 * threads) spent waiting for its batch, which the trainer makes on a thread
 * of its own during the step before (the bar: under 5 %), and the
 * same for an evaluation of the set.
 *
 * Usage: bench_data [--quick]; the JPEG folder (with its list.txt) is
 * MISLAS_BENCH_DATA_DIR, without which it prints nothing but why. */
#define _POSIX_C_SOURCE 200809L

#include <mislas/mislas.h>

#include "benchutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { BATCH = 32, STEP_BATCH = 16 };

#define CHECK(call) do { \
        int rc_ = (call); \
        if (rc_ != MISLAS_OK) { \
            fprintf(stderr, "bench_data: %s failed: %s\n", #call, mislas_last_error()); \
            exit(EXIT_FAILURE); \
        } \
    } while (0)

static const float MEAN[3] = { 0.485f, 0.456f, 0.406f }, STD[3] = { 0.229f, 0.224f, 0.225f };

/* Images per second through mislas_dataset_batch on one thread, the best of
 * `reps` passes over the whole set. */
static double rate(const mislas_dataset *d, int augment, int reps)
{
    size_t n = mislas_dataset_size(d);
    float *images = malloc((size_t)BATCH * 3 * 224 * 224 * sizeof *images);
    size_t idx[BATCH];
    mislas_dataset_batch_options bo;
    mislas_dataset_batch_options_init(&bo);
    bo.augment = augment;
    bo.mean = MEAN;
    bo.std = STD;
    double best = 0;
    for (int r = 0; r < reps; r++) {
        double start = bench_now();
        for (size_t first = 0; first < n; first += BATCH) {
            size_t m = n - first < BATCH ? n - first : BATCH;
            for (size_t i = 0; i < m; i++)
                idx[i] = first + i;
            CHECK(mislas_dataset_batch(d, idx, m, &bo, (uint64_t)(r * 1000 + first), images, NULL));
        }
        double ips = (double)n / (bench_now() - start);
        best = ips > best ? ips : best;
    }
    free(images);
    return best;
}

static void print_rate(const char *what, double ours, const char *key)
{
    double theirs = bench_baseline(key);
    printf("  %-22s %7.0f images/s per core", what, ours);
    if (isnan(theirs))
        printf("   (no PIL + torchvision baseline)\n");
    else
        printf("   PIL + torchvision %6.0f   %.2fx\n", theirs, ours / theirs);
}

typedef struct wait_log {
    double wait, start, elapsed;
    size_t steps;
} wait_log;

static int log_wait(const mislas_progress *p, void *user)
{
    wait_log *w = user;
    w->wait = p->data_wait_seconds;
    w->elapsed = bench_now() - w->start;
    w->steps = p->step;
    return 0;
}

int main(int argc, char **argv)
{
    int quick = argc > 1 && strcmp(argv[1], "--quick") == 0;
    const char *folder = getenv("MISLAS_BENCH_DATA_DIR");
    if (folder == NULL || folder[0] == '\0') {
        printf("bench_data: skipped: MISLAS_BENCH_DATA_DIR names no folder of JPEGs (bench/run makes one with "
               "bench/pytorch_data.py)\n");
        return 0;
    }
    char list[4096];
    snprintf(list, sizeof list, "%s/list.txt", folder);
    mislas_dataset_list_options lo;
    mislas_dataset_list_options_init(&lo);
    lo.num_classes = 10;
    mislas_dataset *d = NULL;
    double start = bench_now();
    CHECK(mislas_dataset_open_list(&d, folder, list, NULL, &lo));
    double opened = bench_now() - start;
    size_t n = mislas_dataset_size(d);
    int32_t threads = mislas_num_threads();
    printf("JPEG data path (%zu files of %s; headers checked at %.0f files/s on %d threads)\n", n, folder,
            (double)n / opened, (int)threads);
    mislas_set_num_threads(1);
    print_rate("training transform", rate(d, 1, quick ? 2 : 3), "data_train_images_per_s");
    print_rate("test transform", rate(d, 0, quick ? 2 : 3), "data_test_images_per_s");
    mislas_set_num_threads(threads < 2 ? threads : 2);

    /* a few ResNet-50 steps on these files: the time spent waiting for data */
    mislas_model_options mo;
    mislas_model_options_init(&mo);
    mo.arch = MISLAS_RESNET50;
    mo.in_channels = 3;
    mo.height = mo.width = 224;
    mo.num_classes = 10;
    mislas_model *m = NULL;
    CHECK(mislas_model_new(&m, &mo));
    size_t steps = quick ? 3 : 6;
    mislas_dataset *part = NULL;
    size_t *idx = malloc(steps * STEP_BATCH * sizeof *idx);
    for (size_t i = 0; i < steps * STEP_BATCH; i++)
        idx[i] = i % n;
    CHECK(mislas_dataset_subset(&part, d, idx, steps * STEP_BATCH));
    mislas_train_stage1_options so;
    mislas_train_stage1_options_init(&so);
    so.epochs = 1;
    so.batch_size = STEP_BATCH;
    so.warmup_epochs = 0;
    so.mixup_alpha = 0.2f;
    so.mean = MEAN;
    so.std = STD;
    wait_log w = { 0, bench_now(), 0, 0 };
    so.progress = log_wait;
    so.progress_data = &w;
    CHECK(mislas_train_stage1(m, part, &so));
    printf("  ResNet-50 training, batch %d, %d threads: %.2f s per step (%.1f images/s), %.1f %% of it waiting "
            "for data\n", STEP_BATCH, (int)mislas_num_threads(), w.elapsed / (double)w.steps,
            (double)(w.steps * STEP_BATCH) / w.elapsed, 100.0 * w.wait / w.elapsed);

    /* and the evaluation of the whole set, with the test transform */
    mislas_eval_options eo;
    mislas_eval_options_init(&eo);
    eo.batch_size = 32;
    eo.mean = MEAN;
    eo.std = STD;
    w = (wait_log){ 0, bench_now(), 0, 0 };
    eo.progress = log_wait;
    eo.progress_data = &w;
    mislas_eval_report report;
    mislas_eval_report_init(&report);
    CHECK(mislas_eval_run(m, d, &eo, NULL, NULL, &report));
    printf("  ResNet-50 evaluation, batch 32, %d threads: %.1f images/s, %.1f %% of the time waiting for data\n",
            (int)mislas_num_threads(), (double)n / w.elapsed, 100.0 * w.wait / w.elapsed);
    free(idx);
    mislas_model_free(m);
    mislas_dataset_free(part);
    mislas_dataset_free(d);
    return 0;
}
