/* The library's worker threads: results independent of the thread count,
 * callers on several threads at once, and fork() after the pool started. */
#include "testutil.h"

#include <pthread.h>
#include <stdio.h>

#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

enum { N = 3000, K = 257 };   /* large enough to be shared out, K not a lane multiple */

typedef struct outputs {
    float loss;
    float *grad;
    mislas_calib_summary summary;
} outputs;

static float *logits;
static int32_t *targets;

static void make_inputs(void)
{
    logits = malloc((size_t)N * K * sizeof *logits);
    targets = malloc(N * sizeof *targets);
    for (size_t i = 0; i < (size_t)N * K; i++)
        logits[i] = (float)(20.0 * test_uniform() - 10.0);
    for (size_t i = 0; i < N; i++)
        targets[i] = (int32_t)(test_uniform() * K);
}

static void free_inputs(void)
{
    free(logits);
    free(targets);
}

/* Everything threaded in the library, on the shared inputs. */
static int compute(outputs *o)
{
    mislas_loss *loss = NULL;
    mislas_calib *calib = NULL;
    int rc = mislas_loss_new_label_smoothing(&loss, K, 0.1f);
    if (rc == MISLAS_OK)
        rc = mislas_calib_new(&calib, K, 15);
    o->grad = malloc((size_t)N * K * sizeof *o->grad);
    if (rc == MISLAS_OK)
        rc = mislas_loss_compute(loss, logits, targets, N, &o->loss, o->grad);
    if (rc == MISLAS_OK)
        rc = mislas_calib_add_logits(calib, logits, targets, N);
    mislas_calib_summary_init(&o->summary);
    if (rc == MISLAS_OK)
        rc = mislas_calib_summarize(calib, &o->summary);
    mislas_loss_free(loss);
    mislas_calib_free(calib);
    return rc;
}

static int same(const outputs *a, const outputs *b)
{
    return memcmp(&a->loss, &b->loss, sizeof a->loss) == 0 &&
           memcmp(a->grad, b->grad, (size_t)N * K * sizeof *a->grad) == 0 &&
           memcmp(&a->summary, &b->summary, sizeof a->summary) == 0;
}

START_TEST(thread_count_is_settable)
{
    ck_assert_int_ge(mislas_num_threads(), 1);
    ck_assert_status(mislas_set_num_threads(3), MISLAS_OK);
    ck_assert_int_eq(mislas_num_threads(), 3);
    ck_assert_status(mislas_set_num_threads(-1), MISLAS_ERR_INVALID_ARGUMENT);
    ck_assert_status(mislas_set_num_threads(100000), MISLAS_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_nonnull(strstr(mislas_last_error(), "n = 100000"));
    ck_assert_int_eq(mislas_num_threads(), 3);
    ck_assert_status(mislas_set_num_threads(0), MISLAS_OK);
    ck_assert_int_ge(mislas_num_threads(), 1);
}
END_TEST

START_TEST(results_do_not_depend_on_the_thread_count)
{
    make_inputs();
    outputs one, many;
    ck_assert_status(mislas_set_num_threads(1), MISLAS_OK);
    ck_assert_status(compute(&one), MISLAS_OK);
    const int32_t counts[] = { 2, 3, 7, 16 };
    for (size_t i = 0; i < sizeof counts / sizeof counts[0]; i++) {
        ck_assert_status(mislas_set_num_threads(counts[i]), MISLAS_OK);
        ck_assert_status(compute(&many), MISLAS_OK);
        ck_assert_msg(same(&one, &many), "%d threads differ from 1", (int)counts[i]);
        free(many.grad);
    }
    free(one.grad);
    mislas_set_num_threads(0);
    free_inputs();
}
END_TEST

static void *compute_in_thread(void *arg)
{
    outputs *o = arg;
    return compute(o) == MISLAS_OK ? o : NULL;
}

START_TEST(callers_on_several_threads)
{
    make_inputs();
    outputs reference, results[4];
    ck_assert_status(compute(&reference), MISLAS_OK);
    pthread_t threads[4];
    for (int t = 0; t < 4; t++)
        ck_assert_int_eq(pthread_create(&threads[t], NULL, compute_in_thread, &results[t]), 0);
    for (int t = 0; t < 4; t++) {
        void *r;
        ck_assert_int_eq(pthread_join(threads[t], &r), 0);
        ck_assert_ptr_nonnull(r);
        ck_assert(same(&reference, &results[t]));
        free(results[t].grad);
    }
    free(reference.grad);
    free_inputs();
}
END_TEST

START_TEST(fork_after_the_pool_started)
{
    make_inputs();
    ck_assert_status(mislas_set_num_threads(2), MISLAS_OK);
    outputs parent;
    ck_assert_status(compute(&parent), MISLAS_OK);     /* the workers are running now */
    fflush(NULL);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        alarm(20);                                     /* a hang fails the test instead of blocking it */
        outputs child;
        int ok = compute(&child) == MISLAS_OK && same(&parent, &child);
        free(child.grad);
        free(parent.grad);
        free_inputs();
        exit(ok ? 0 : 1);                              /* exit, not _exit: the child's pool shuts down too */
    }
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFEXITED(status), "the child did not exit normally (signal %d)",
                  WIFSIGNALED(status) ? WTERMSIG(status) : 0);
    ck_assert_int_eq(WEXITSTATUS(status), 0);
    /* and the parent's pool still works */
    outputs again;
    ck_assert_status(compute(&again), MISLAS_OK);
    ck_assert(same(&parent, &again));
    free(parent.grad);
    free(again.grad);
    free_inputs();
}
END_TEST

/* LeakSanitizer asks this hook at exit whether to check (no effect in
 * builds without it). */
static volatile int leak_check_off;
int __lsan_is_turned_off(void);
int __lsan_is_turned_off(void)
{
    return leak_check_off;
}

/* A main thread that ends with pthread_exit: the process must still end,
 * which needs the idle workers to leave on their own. */
#if defined(__SANITIZE_THREAD__)
#define UNDER_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define UNDER_TSAN 1
#endif
#endif

START_TEST(idle_workers_let_the_process_end)
{
#ifdef UNDER_TSAN
    return;     /* ThreadSanitizer's runtime itself crashes when main calls pthread_exit */
#endif
    fflush(NULL);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        alarm(30);                       /* a hang shows up as SIGALRM */
        make_inputs();
        ck_assert_status(mislas_set_num_threads(2), MISLAS_OK);
        outputs o;
        int rc = compute(&o);
        free(o.grad);
        free_inputs();
        if (rc != MISLAS_OK)
            exit(1);
        /* main's frame, which holds Check's runner, goes away with
         * pthread_exit: what it pointed to is no leak of ours */
        leak_check_off = 1;
        pthread_exit(NULL);
    }
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the process did not end by itself (status %d)", status);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("threads");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, thread_count_is_settable);
    tcase_add_test(tc, results_do_not_depend_on_the_thread_count);
    tcase_add_test(tc, callers_on_several_threads);
    tcase_add_test(tc, fork_after_the_pool_started);
    tcase_add_test(tc, idle_workers_let_the_process_end);
    suite_add_tcase(s, tc);
    return test_run_suite(s);
}
