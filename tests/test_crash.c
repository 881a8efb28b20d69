/* Crash safety: a process killed with SIGKILL at a random moment while it
 * writes checkpoints leaves, at the checkpoint's path, the old or the new
 * checkpoint whole, never a mixture or a torn file; and a training run
 * killed at random moments, again and again, then resumed, ends with the
 * same checkpoint, byte for byte, as a run that was never interrupted.
 *
 * All the writing and training happens in forked children, so the parent
 * (which only sleeps, kills and reads files) never holds threads across a
 * fork. MISLAS_CRASH_ROUNDS scales the number of kills (default 1), for
 * long runs or a slow machine (valgrind). */
#define _GNU_SOURCE
#include "testutil.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum { K = 4, SIDE = 8 };
static const int64_t TRAIN_COUNTS[K] = { 60, 20, 12, 8 };
static const float MEAN[1] = { 0.3f }, STD[1] = { 0.25f };

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void sleep_seconds(double s)
{
    struct timespec t = { (time_t)s, (long)((s - (double)(time_t)s) * 1e9) };
    while (nanosleep(&t, &t) != 0)
        continue;
}

static int rounds_scale(void)
{
    const char *s = getenv("MISLAS_CRASH_ROUNDS");
    int n = s != NULL ? atoi(s) : 1;
    return n > 0 ? n : 1;
}

/* Kills the child with SIGKILL (it may have finished already) and reaps it. */
static void kill_and_reap(pid_t child)
{
    kill(child, SIGKILL);
    int status;
    ck_assert_int_eq(waitpid(child, &status, 0), child);
}

/* Runs fn(arg) in a child and waits for it; the child's exit status must be 0. */
static void in_child(void (*fn)(void *), void *arg)
{
    pid_t child = fork();
    ck_assert_int_ge(child, 0);
    if (child == 0) {
        fn(arg);
        _exit(0);
    }
    int status;
    ck_assert_int_eq(waitpid(child, &status, 0), child);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "a child failed (status 0x%x)", status);
}

/* ------------------------------------------------- killed while saving */

typedef struct saver {
    const char *path;
    mislas_model *models[2];
} saver;

/* Saves the two models in turn, forever (until killed). */
static void save_forever(void *arg)
{
    const saver *s = arg;
    for (unsigned i = 1;; i++)
        if (mislas_checkpoint_save(s->models[i & 1], NULL, s->path) != MISLAS_OK)
            _exit(3);
}

START_TEST(a_kill_during_a_save_leaves_the_old_or_the_new_file)
{
    char dir[64], path[128];
    test_make_dir(dir, "mislas-crash");
    snprintf(path, sizeof path, "%s/model.ck", dir);
    saver s = { path, { test_new_model(MISLAS_RESNET20, 1, SIDE, SIDE, K, 1),
                        test_new_model(MISLAS_RESNET20, 1, SIDE, SIDE, K, 2) } };
    unsigned char *bytes[2];
    size_t sizes[2];
    double start = now();
    for (int i = 0; i < 2; i++) {
        ck_assert_status(mislas_checkpoint_save(s.models[i], NULL, path), MISLAS_OK);
        bytes[i] = test_read_file(path, &sizes[i]);
        ck_assert_ptr_nonnull(bytes[i]);
    }
    double save_time = (now() - start) / 2;

    int rounds = 100 * rounds_scale(), seen[2] = { 0, 0 };
    for (int r = 0; r < rounds; r++) {
        pid_t child = fork();
        ck_assert_int_ge(child, 0);
        if (child == 0)
            save_forever(&s);
        /* anywhere in the first few saves: serialising, compressing,
         * writing, syncing or renaming */
        sleep_seconds(test_uniform() * 4 * save_time);
        kill_and_reap(child);
        int which = test_file_equals(path, bytes[0], sizes[0]) ? 0
                : test_file_equals(path, bytes[1], sizes[1]) ? 1 : -1;
        ck_assert_msg(which >= 0, "round %d: the file is neither checkpoint whole", r);
        seen[which]++;
        mislas_model *back = NULL;
        ck_assert_status(mislas_checkpoint_load(&back, NULL, path), MISLAS_OK);
        mislas_model_free(back);
    }
    /* the kills landed at different points: both files were seen */
    ck_assert_msg(seen[0] > 0 && seen[1] > 0, "the kills saw only one file (%d / %d)", seen[0], seen[1]);
    free(bytes[0]);
    free(bytes[1]);
    mislas_model_free(s.models[0]);
    mislas_model_free(s.models[1]);
    test_remove_dir(dir);   /* with any temporary file a killed writer left */
}
END_TEST

/* -------------------------------------------------- killed while training */

typedef struct trainer {
    const mislas_dataset *data;     /* made once, in the parent */
    const char *path;
    int resume;
} trainer;

static void train(void *arg)
{
    const trainer *t = arg;
    mislas_model *m = test_new_model(MISLAS_RESNET20, 1, SIDE, SIDE, K, 3);
    mislas_train_stage1_options o;
    mislas_train_stage1_options_init(&o);
    o.epochs = 4;
    o.batch_size = 16;
    o.lr = 0.05;
    o.warmup_epochs = 1;
    o.mean = MEAN;
    o.std = STD;
    o.seed = 9;
    o.checkpoint_path = t->path;
    o.resume = t->resume;
    int rc = mislas_train_stage1(m, t->data, &o);
    mislas_model_free(m);
    if (rc != MISLAS_OK) {
        fprintf(stderr, "training failed: %s\n", mislas_last_error());
        _exit(3);
    }
}

START_TEST(a_run_killed_again_and_again_resumes_to_the_same_bits)
{
    char dir[64], straight[128], killed[128];
    test_make_dir(dir, "mislas-crash");
    snprintf(straight, sizeof straight, "%s/straight.ck", dir);
    snprintf(killed, sizeof killed, "%s/killed.ck", dir);
    mislas_dataset *d = test_quadrant_dataset(TRAIN_COUNTS, K, SIDE);
    double start = now();
    in_child(train, &(trainer){ d, straight, 0 });
    double run_time = now() - start;
    size_t straight_size;
    unsigned char *straight_bytes = test_read_file(straight, &straight_size);
    ck_assert_ptr_nonnull(straight_bytes);

    int rounds = 4 * rounds_scale(), kills = 0;
    for (int r = 0; r < rounds; r++) {
        unlink(killed);
        int32_t done_before = 0;
        /* three kills at random moments, each run resuming the last */
        for (int k = 0; k < 3; k++) {
            pid_t child = fork();
            ck_assert_int_ge(child, 0);
            if (child == 0) {
                train(&(trainer){ d, killed, 1 });
                _exit(0);
            }
            sleep_seconds(test_uniform() * 0.6 * run_time);
            kill_and_reap(child);
            kills++;
            if (access(killed, F_OK) == 0) {
                int32_t stage = 0, done = -1;
                ck_assert_msg(mislas_checkpoint_training(&stage, &done, NULL, killed) == MISLAS_OK,
                        "round %d, kill %d: the checkpoint is broken: %s", r, k, mislas_last_error());
                ck_assert_int_eq(stage, 1);
                ck_assert_int_ge(done, done_before);    /* no kill loses a finished epoch */
                done_before = done;
            }
        }
        in_child(train, &(trainer){ d, killed, 1 });
        ck_assert_msg(test_file_equals(killed, straight_bytes, straight_size),
                "round %d: killed three times and resumed, the run ends elsewhere", r);
    }
    ck_assert_int_eq(kills, 3 * rounds);
    free(straight_bytes);
    mislas_dataset_free(d);
    test_remove_dir(dir);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("crash");
    TCase *tc = tcase_create("crash");
    tcase_set_timeout(tc, 1200);
    tcase_add_test(tc, a_kill_during_a_save_leaves_the_old_or_the_new_file);
    tcase_add_test(tc, a_run_killed_again_and_again_resumes_to_the_same_bits);
    suite_add_tcase(s, tc);
    return test_run_suite(s);
}
