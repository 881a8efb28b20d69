/* The library from several threads at once, as docs/robustness.md says it
 * may be used (run under ThreadSanitizer by scripts/test): shared read-only
 * data sets; per-thread models, optimisers, losses, samplers and calibration
 * objects; calibration states merged after the join; checkpoints loaded from
 * one file and saved to separate files at the same time; each thread's own
 * last error. Every thread's numbers must equal the same work done on one
 * thread, bit for bit, and the merged calibration the merge done in order. */
#define _GNU_SOURCE
#include "testutil.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { THREADS = 4, K = 4, SIDE = 8, IMAGE = SIDE * SIDE, BATCH = 8, STEPS = 3 };
static const int64_t COUNTS[K] = { 30, 12, 8, 6 };
static const float MEAN[1] = { 0.3f }, STD[1] = { 0.25f };

static mislas_dataset *shared_data;     /* read by every thread */
static char dir[64], shared_checkpoint[128];

/* What one worker computes: a few SGD steps with label-aware smoothing on
 * batches from its own sampler, its logits into its own calibration object,
 * a checkpoint of its own, and an evaluation. */
typedef struct work {
    int id;
    float losses[STEPS];
    float logits[BATCH * K];
    mislas_calib *calib;
    mislas_eval_report report;
    char error[128];
    int status;
} work;

static int run_work(work *w)
{
    mislas_model *m = NULL;
    mislas_optimizer *opt = NULL;
    mislas_loss *loss = NULL;
    mislas_sampler *sampler = NULL;
    int rc = mislas_checkpoint_load(&m, NULL, shared_checkpoint);
    if (rc == MISLAS_OK)
        rc = mislas_optimizer_new_sgd(&opt, m, NULL);
    if (rc == MISLAS_OK)
        rc = mislas_loss_new_label_aware_smoothing(&loss, COUNTS, K, NULL);
    mislas_sampler_options so;
    mislas_sampler_options_init(&so);
    so.kind = MISLAS_SAMPLER_CLASS_AWARE;
    so.seed = (uint64_t)w->id;
    if (rc == MISLAS_OK)
        rc = mislas_sampler_new(&sampler, mislas_dataset_labels(shared_data), mislas_dataset_size(shared_data),
                K, &so);
    if (rc == MISLAS_OK)
        rc = mislas_calib_new(&w->calib, K, 15);
    mislas_dataset_batch_options bo;
    mislas_dataset_batch_options_init(&bo);
    bo.augment = 1;
    bo.mean = MEAN;
    bo.std = STD;
    bo.seed = (uint64_t)w->id;
    float x[BATCH * IMAGE], grad[BATCH * K];
    int32_t y[BATCH];
    size_t idx[BATCH];
    for (int s = 0; rc == MISLAS_OK && s < STEPS; s++) {
        rc = mislas_sampler_next(sampler, idx, BATCH);
        if (rc == MISLAS_OK)
            rc = mislas_dataset_batch(shared_data, idx, BATCH, &bo, (uint64_t)s, x, y);
        if (rc == MISLAS_OK)
            rc = mislas_model_forward(m, x, BATCH, w->logits);
        if (rc == MISLAS_OK)
            rc = mislas_loss_compute(loss, w->logits, y, BATCH, &w->losses[s], grad);
        if (rc == MISLAS_OK)
            rc = mislas_model_backward(m, grad);
        if (rc == MISLAS_OK)
            rc = mislas_optimizer_step(opt);
        if (rc == MISLAS_OK)
            rc = mislas_calib_add_logits(w->calib, w->logits, y, BATCH);
    }
    char path[160];
    snprintf(path, sizeof path, "%s/worker-%d.ck", dir, w->id);
    if (rc == MISLAS_OK)
        rc = mislas_checkpoint_save(m, opt, path);
    mislas_eval_report_init(&w->report);
    if (rc == MISLAS_OK)
        rc = mislas_eval_run(m, shared_data, NULL, NULL, NULL, &w->report);
    /* this thread's last error is its own, whatever the others fail with */
    float bad_logits[K] = { 0, 0, 0, 0 };
    int32_t bad_target = K + w->id;
    if (rc == MISLAS_OK && mislas_loss_compute(loss, bad_logits, &bad_target, 1, NULL, NULL) != MISLAS_ERR_INVALID_ARGUMENT)
        rc = -100;
    snprintf(w->error, sizeof w->error, "%s", mislas_last_error());
    mislas_sampler_free(sampler);
    mislas_loss_free(loss);
    mislas_optimizer_free(opt);
    mislas_model_free(m);
    return rc;
}

static void *thread_main(void *arg)
{
    work *w = arg;
    w->status = run_work(w);
    return NULL;
}

static void setup(void)
{
    test_make_dir(dir, "mislas-concurrency");
    snprintf(shared_checkpoint, sizeof shared_checkpoint, "%s/shared.ck", dir);
    shared_data = test_quadrant_dataset(COUNTS, K, SIDE);
    mislas_model *m = test_new_model(MISLAS_RESNET20, 1, SIDE, SIDE, K, 5);
    ck_assert_status(mislas_checkpoint_save(m, NULL, shared_checkpoint), MISLAS_OK);
    mislas_model_free(m);
}

static void teardown(void)
{
    mislas_dataset_free(shared_data);
    test_remove_dir(dir);
}

static void check_same(const work *a, const work *b)
{
    ck_assert_int_eq(a->status, MISLAS_OK);
    ck_assert_int_eq(b->status, MISLAS_OK);
    ck_assert_msg(memcmp(a->losses, b->losses, sizeof a->losses) == 0, "worker %d: the losses differ", a->id);
    ck_assert_msg(memcmp(a->logits, b->logits, sizeof a->logits) == 0, "worker %d: the logits differ", a->id);
    ck_assert_msg(memcmp(&a->report.top1, &b->report.top1, sizeof a->report.top1) == 0 &&
            memcmp(&a->report.ece, &b->report.ece, sizeof a->report.ece) == 0,
            "worker %d: the evaluation differs", a->id);
}

START_TEST(threads_with_their_own_objects_match_one_thread)
{
    /* the same work, one worker after another on this thread */
    work alone[THREADS], together[THREADS];
    for (int t = 0; t < THREADS; t++) {
        alone[t] = (work){ .id = t };
        alone[t].status = run_work(&alone[t]);
        ck_assert_msg(alone[t].status == MISLAS_OK, "worker %d alone: %s", t, alone[t].error);
    }
    /* and all at once, with the library's own pool used by whichever gets it */
    ck_assert_status(mislas_set_num_threads(2), MISLAS_OK);
    pthread_t threads[THREADS];
    for (int t = 0; t < THREADS; t++) {
        together[t] = (work){ .id = t };
        ck_assert_int_eq(pthread_create(&threads[t], NULL, thread_main, &together[t]), 0);
    }
    for (int t = 0; t < THREADS; t++)
        ck_assert_int_eq(pthread_join(threads[t], NULL), 0);
    for (int t = 0; t < THREADS; t++) {
        check_same(&together[t], &alone[t]);
        char want[64];
        snprintf(want, sizeof want, "targets[0] = %d", K + t);
        ck_assert_msg(strstr(together[t].error, want) != NULL, "worker %d's last error is another's: %s", t,
                together[t].error);
        /* the checkpoints written at the same time are each whole */
        char path[160];
        snprintf(path, sizeof path, "%s/worker-%d.ck", dir, t);
        mislas_model *back = NULL;
        ck_assert_status(mislas_checkpoint_load(&back, NULL, path), MISLAS_OK);
        mislas_model_free(back);
    }

    /* calibration states merged after the join: the same as merging the
     * one-thread objects in the same order, and counts exact */
    mislas_calib *merged_together = NULL, *merged_alone = NULL;
    ck_assert_status(mislas_calib_new(&merged_together, K, 15), MISLAS_OK);
    ck_assert_status(mislas_calib_new(&merged_alone, K, 15), MISLAS_OK);
    for (int t = 0; t < THREADS; t++) {
        ck_assert_status(mislas_calib_merge(merged_together, together[t].calib), MISLAS_OK);
        ck_assert_status(mislas_calib_merge(merged_alone, alone[t].calib), MISLAS_OK);
        mislas_calib_free(together[t].calib);
        mislas_calib_free(alone[t].calib);
    }
    mislas_calib_summary a, b;
    mislas_calib_summary_init(&a);
    mislas_calib_summary_init(&b);
    ck_assert_status(mislas_calib_summarize(merged_together, &a), MISLAS_OK);
    ck_assert_status(mislas_calib_summarize(merged_alone, &b), MISLAS_OK);
    ck_assert_int_eq((int)a.count, THREADS * STEPS * BATCH);
    ck_assert(memcmp(&a.ece, &b.ece, sizeof a.ece) == 0 && memcmp(&a.nll, &b.nll, sizeof a.nll) == 0);
    mislas_calib_free(merged_together);
    mislas_calib_free(merged_alone);
    mislas_set_num_threads(0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("concurrency");
    TCase *tc = tcase_create("concurrency");
    tcase_add_unchecked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, threads_with_their_own_objects_match_one_thread);
    suite_add_tcase(s, tc);
    return test_run_suite(s);
}
