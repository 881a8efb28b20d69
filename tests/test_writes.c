/* Every way a write can fail, injected under the library's checkpoint
 * writes (faultyio.c, linked into this program, interposes write, fsync,
 * close and rename): a full disk at every point of the file (ENOSPC, EDQUOT,
 * EFBIG), EIO, a write that returns 0, failing fsync, close and rename. Each
 * must give MISLAS_ERR_IO naming the file and the cause, leave the previous
 * file byte for byte as it was (or no file, if there was none) and leave no
 * temporary file behind; legal short writes must lose nothing. A training
 * run whose checkpoint write fails stops with MISLAS_ERR_IO, keeps the last
 * epoch's checkpoint, and resumes from it to the same bits as a run that
 * never failed. A link at the path stays a link (its file is replaced), and
 * a FIFO or device is written in place. */
#define _GNU_SOURCE
#include "faultyio.h"
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

enum { K = 4, SIDE = 8 };
static const int64_t TRAIN_COUNTS[K] = { 60, 20, 12, 8 };
static const float MEAN[1] = { 0.3f }, STD[1] = { 0.25f };

typedef struct fixture {
    char dir[64], path[128];
    mislas_model *old_model, *new_model;
    unsigned char *old_bytes, *new_bytes;
    size_t old_size, new_size;
} fixture;

/* The bytes a plain save of m writes (saved once without faults). */
static unsigned char *saved_bytes(const char *dir, const mislas_model *m, size_t *size)
{
    char path[128];
    snprintf(path, sizeof path, "%s/reference.ck", dir);
    ck_assert_status(mislas_checkpoint_save(m, NULL, path), MISLAS_OK);
    unsigned char *bytes = test_read_file(path, size);
    ck_assert_ptr_nonnull(bytes);
    unlink(path);
    return bytes;
}

static void fixture_open(fixture *f)
{
    test_make_dir(f->dir, "mislas-writes");
    snprintf(f->path, sizeof f->path, "%s/model.ck", f->dir);
    f->old_model = test_new_model(MISLAS_RESNET20, 1, SIDE, SIDE, K, 1);
    f->new_model = test_new_model(MISLAS_RESNET20, 1, SIDE, SIDE, K, 2);
    f->old_bytes = saved_bytes(f->dir, f->old_model, &f->old_size);
    f->new_bytes = saved_bytes(f->dir, f->new_model, &f->new_size);
    ck_assert(f->old_size != f->new_size || memcmp(f->old_bytes, f->new_bytes, f->old_size) != 0);
}

static void fixture_close(fixture *f)
{
    free(f->old_bytes);
    free(f->new_bytes);
    mislas_model_free(f->old_model);
    mislas_model_free(f->new_model);
    test_remove_dir(f->dir);
}

typedef struct fault {
    faultyio_op op;
    int error;
    long long after;
} fault;

static const char *op_name(faultyio_op op)
{
    static const char *names[] = { "off", "write", "short write", "chunked write", "fsync", "close", "rename" };
    return names[op];
}

/* Saves the new model over (with_old) the old file or over nothing, with
 * the fault armed, and checks everything the failure must leave behind. */
static void check_failing_save(fixture *f, fault x, int with_old)
{
    unlink(f->path);
    if (with_old)
        ck_assert_status(mislas_checkpoint_save(f->old_model, NULL, f->path), MISLAS_OK);
    faultyio_arm(x.op, x.error, x.after);
    int rc = mislas_checkpoint_save(f->new_model, NULL, f->path);
    long long injected = faultyio_disarm();
    const char *why = x.op == FAULTYIO_SHORT ? strerror(ENOSPC) : strerror(x.error);
    ck_assert_msg(injected > 0, "%s fault after %lld was never reached", op_name(x.op), x.after);
    ck_assert_msg(rc == MISLAS_ERR_IO, "%s %s after %lld: status %d (%s), expected MISLAS_ERR_IO",
            op_name(x.op), why, x.after, rc, mislas_status_string(rc));
    ck_assert_msg(strstr(mislas_last_error(), f->path) != NULL && strstr(mislas_last_error(), why) != NULL,
            "the message does not name the file and the cause: %s", mislas_last_error());
    if (with_old) {
        ck_assert_msg(test_file_equals(f->path, f->old_bytes, f->old_size),
                "%s %s after %lld: the previous file changed", op_name(x.op), why, x.after);
        mislas_model *back = NULL;
        ck_assert_status(mislas_checkpoint_load(&back, NULL, f->path), MISLAS_OK);
        mislas_model_free(back);
    } else {
        ck_assert_msg(access(f->path, F_OK) != 0, "a failed save without a previous file left one");
    }
    ck_assert_msg(test_dir_entries(f->dir) == (with_old ? 1 : 0),
            "%s after %lld: a temporary file was left behind", op_name(x.op), x.after);
}

START_TEST(a_full_disk_at_every_point_keeps_the_old_file)
{
    fixture f;
    fixture_open(&f);
    /* the disk fills after `after` bytes: at the start, in the first
     * buffer, at 64 points through the file and at the very last byte */
    long long step = (long long)f.new_size / 64 + 1;
    for (long long after = 0; after < (long long)f.new_size; after += after < 4 ? 1 : step) {
        check_failing_save(&f, (fault){FAULTYIO_WRITE, ENOSPC, after}, 1);
        check_failing_save(&f, (fault){FAULTYIO_SHORT, 0, after}, (int)(after & 1));
    }
    check_failing_save(&f, (fault){FAULTYIO_WRITE, ENOSPC, (long long)f.new_size - 1}, 1);
    check_failing_save(&f, (fault){FAULTYIO_SHORT, 0, (long long)f.new_size - 1}, 1);
    fixture_close(&f);
}
END_TEST

START_TEST(every_kind_of_failure_is_an_io_error)
{
    fixture f;
    fixture_open(&f);
    long long half = (long long)f.new_size / 2;
    const fault faults[] = {
        {FAULTYIO_WRITE, EIO, 0}, {FAULTYIO_WRITE, EIO, half}, {FAULTYIO_WRITE, EDQUOT, half},
        {FAULTYIO_WRITE, EFBIG, 4096}, {FAULTYIO_FSYNC, EIO, 0}, {FAULTYIO_CLOSE, EIO, 0},
        {FAULTYIO_RENAME, EXDEV, 0}, {FAULTYIO_RENAME, EIO, 0}, {FAULTYIO_RENAME, EROFS, 0},
    };
    for (size_t i = 0; i < sizeof faults / sizeof faults[0]; i++)
        for (int with_old = 0; with_old <= 1; with_old++)
            check_failing_save(&f, faults[i], with_old);
    fixture_close(&f);
}
END_TEST

/* Short writes are legal: the writer must go on until all is written. */
START_TEST(short_writes_lose_nothing)
{
    fixture f;
    fixture_open(&f);
    const long long chunks[] = { 1 << 16, 4093, 7 };
    for (size_t i = 0; i < sizeof chunks / sizeof chunks[0]; i++) {
        ck_assert_status(mislas_checkpoint_save(f.old_model, NULL, f.path), MISLAS_OK);
        faultyio_arm(FAULTYIO_CHUNK, 0, chunks[i]);
        ck_assert_status(mislas_checkpoint_save(f.new_model, NULL, f.path), MISLAS_OK);
        faultyio_disarm();
        ck_assert_msg(test_file_equals(f.path, f.new_bytes, f.new_size),
                "writes of %lld bytes at most gave another file", chunks[i]);
    }
    /* and a disk that fills exactly at the end is not full */
    faultyio_arm(FAULTYIO_WRITE, ENOSPC, (long long)f.new_size);
    ck_assert_status(mislas_checkpoint_save(f.new_model, NULL, f.path), MISLAS_OK);
    ck_assert_int_eq((int)faultyio_disarm(), 0);
    ck_assert(test_file_equals(f.path, f.new_bytes, f.new_size));
    fixture_close(&f);
}
END_TEST

/* --------------------------------------------------- training checkpoints */

typedef struct arm_after_epoch {
    int32_t epoch;          /* arm once this epoch's checkpoint is written */
    fault fault;
} arm_after_epoch;

static int arm_at_epoch_end(const mislas_progress *p, void *user)
{
    const arm_after_epoch *a = user;
    if (p->epoch_done && p->epoch == a->epoch)
        faultyio_arm(a->fault.op, a->fault.error, a->fault.after);
    return 0;
}

static void stage1_options(mislas_train_stage1_options *o, const char *checkpoint)
{
    mislas_train_stage1_options_init(o);
    o->epochs = 2;
    o->batch_size = 32;
    o->lr = 0.05;
    o->warmup_epochs = 1;
    o->mean = MEAN;
    o->std = STD;
    o->seed = 5;
    o->checkpoint_path = checkpoint;
}

START_TEST(a_failed_epoch_checkpoint_stops_the_run_and_resumes_exactly)
{
    char dir[64], straight[128], failing[128];
    test_make_dir(dir, "mislas-writes");
    snprintf(straight, sizeof straight, "%s/straight.ck", dir);
    snprintf(failing, sizeof failing, "%s/failing.ck", dir);
    mislas_dataset *d = test_quadrant_dataset(TRAIN_COUNTS, K, SIDE);
    mislas_train_stage1_options o;

    mislas_model *m = test_new_model(MISLAS_RESNET20, 1, SIDE, SIDE, K, 3);
    stage1_options(&o, straight);
    ck_assert_status(mislas_train_stage1(m, d, &o), MISLAS_OK);
    mislas_model_free(m);
    size_t straight_size;
    unsigned char *straight_bytes = test_read_file(straight, &straight_size);
    ck_assert_ptr_nonnull(straight_bytes);

    const fault faults[] = { {FAULTYIO_WRITE, ENOSPC, 1000}, {FAULTYIO_FSYNC, EIO, 0}, {FAULTYIO_RENAME, EIO, 0} };
    for (size_t i = 0; i < sizeof faults / sizeof faults[0]; i++) {
        unlink(failing);
        m = test_new_model(MISLAS_RESNET20, 1, SIDE, SIDE, K, 3);
        arm_after_epoch arm = { 0, faults[i] };
        stage1_options(&o, failing);
        o.progress = arm_at_epoch_end;
        o.progress_data = &arm;
        ck_assert_status(mislas_train_stage1(m, d, &o), MISLAS_ERR_IO);
        ck_assert(faultyio_disarm() > 0);
        ck_assert_ptr_nonnull(strstr(mislas_last_error(), failing));
        mislas_model_free(m);
        int32_t done = -1;
        ck_assert_status(mislas_checkpoint_training(NULL, &done, NULL, failing), MISLAS_OK);
        ck_assert_int_eq(done, 1);
        ck_assert_int_eq(test_dir_entries(dir), 2);

        m = test_new_model(MISLAS_RESNET20, 1, SIDE, SIDE, K, 3);
        stage1_options(&o, failing);
        o.resume = 1;
        ck_assert_status(mislas_train_stage1(m, d, &o), MISLAS_OK);
        mislas_model_free(m);
        ck_assert_msg(test_file_equals(failing, straight_bytes, straight_size),
                "after a failed write (%s) and a resume the run differs from one that never failed",
                op_name(faults[i].op));
    }
    free(straight_bytes);
    mislas_dataset_free(d);
    test_remove_dir(dir);
}
END_TEST

/* What is at a path and the bytes of the file a link leads to. */
static bool is_link(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0 && S_ISLNK(st.st_mode);
}

static void expect_file_bytes(const char *path, const unsigned char *bytes, size_t size)
{
    size_t got = 0;
    unsigned char *read = test_read_file(path, &got);
    ck_assert_msg(read != NULL && got == size && memcmp(read, bytes, size) == 0,
            "%s does not hold the checkpoint's bytes", path);
    free(read);
}

/* A symbolic link at the path stays a link: the file it leads to is
 * replaced (atomically, beside it) or made, whether the link is absolute,
 * relative, dangling or one of a chain. */
START_TEST(a_link_stays_a_link_and_its_file_is_replaced)
{
    fixture f;
    fixture_open(&f);
    char real[160], link[160], chain[160], dangling[160], made[160];
    snprintf(real, sizeof real, "%s/real.ck", f.dir);
    snprintf(link, sizeof link, "%s/link.ck", f.dir);
    snprintf(chain, sizeof chain, "%s/chain.ck", f.dir);
    snprintf(dangling, sizeof dangling, "%s/dangling.ck", f.dir);
    snprintf(made, sizeof made, "%s/made.ck", f.dir);
    ck_assert_status(mislas_checkpoint_save(f.old_model, NULL, real), MISLAS_OK);
    ck_assert_int_eq(symlink(real, link), 0);           /* absolute */
    ck_assert_int_eq(symlink("link.ck", chain), 0);     /* relative, to a link */
    ck_assert_int_eq(symlink("made.ck", dangling), 0);  /* to nothing yet */
    ck_assert_status(mislas_checkpoint_save(f.new_model, NULL, chain), MISLAS_OK);
    ck_assert(is_link(link) && is_link(chain));
    expect_file_bytes(real, f.new_bytes, f.new_size);
    ck_assert_status(mislas_checkpoint_save(f.old_model, NULL, link), MISLAS_OK);
    ck_assert(is_link(link));
    expect_file_bytes(real, f.old_bytes, f.old_size);
    ck_assert_status(mislas_checkpoint_save(f.new_model, NULL, dangling), MISLAS_OK);
    ck_assert(is_link(dangling));
    expect_file_bytes(made, f.new_bytes, f.new_size);
    /* the loader follows the link to the same model */
    mislas_model *loaded = NULL;
    ck_assert_status(mislas_checkpoint_load(&loaded, NULL, dangling), MISLAS_OK);
    mislas_model_free(loaded);
    fixture_close(&f);
}
END_TEST

/* A FIFO, and a device reached through a link (/dev/null: the test never
 * names it directly, so the old behaviour would only have replaced the
 * link), are written in place: the FIFO's reader gets the checkpoint's
 * bytes, and both stay what they were. */
START_TEST(devices_and_fifos_are_written_not_replaced)
{
    fixture f;
    fixture_open(&f);
    char fifo[160], copy[160], null_link[160];
    snprintf(fifo, sizeof fifo, "%s/pipe.ck", f.dir);
    snprintf(copy, sizeof copy, "%s/from-the-pipe", f.dir);
    snprintf(null_link, sizeof null_link, "%s/null", f.dir);
    ck_assert_int_eq(mkfifo(fifo, 0600), 0);
    pid_t reader = fork();
    ck_assert_int_ge(reader, 0);
    if (reader == 0) {
        int in = open(fifo, O_RDONLY), out = open(copy, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        char buf[4096];
        ssize_t n;
        while (in >= 0 && out >= 0 && (n = read(in, buf, sizeof buf)) > 0)
            if (write(out, buf, (size_t)n) != n)
                _exit(1);
        _exit(in >= 0 && out >= 0 && close(out) == 0 ? 0 : 1);
    }
    ck_assert_status(mislas_checkpoint_save(f.new_model, NULL, fifo), MISLAS_OK);
    int status = -1;
    ck_assert_int_eq(waitpid(reader, &status, 0), reader);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    struct stat st;
    ck_assert(lstat(fifo, &st) == 0 && S_ISFIFO(st.st_mode));
    expect_file_bytes(copy, f.new_bytes, f.new_size);

    if (stat("/dev/null", &st) == 0 && S_ISCHR(st.st_mode)) {
        ck_assert_int_eq(symlink("/dev/null", null_link), 0);
        ck_assert_status(mislas_checkpoint_save(f.new_model, NULL, null_link), MISLAS_OK);
        ck_assert(is_link(null_link));
        ck_assert(stat("/dev/null", &st) == 0 && S_ISCHR(st.st_mode));
    }
    fixture_close(&f);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("writes");
    TCase *tc = tcase_create("writes");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, a_full_disk_at_every_point_keeps_the_old_file);
    tcase_add_test(tc, every_kind_of_failure_is_an_io_error);
    tcase_add_test(tc, short_writes_lose_nothing);
    tcase_add_test(tc, a_failed_epoch_checkpoint_stops_the_run_and_resumes_exactly);
    tcase_add_test(tc, a_link_stays_a_link_and_its_file_is_replaced);
    tcase_add_test(tc, devices_and_fifos_are_written_not_replaced);
    suite_add_tcase(s, tc);
    return test_run_suite(s);
}
