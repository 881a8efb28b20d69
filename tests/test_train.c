/* The two training stages and evaluation (train.h) end to end on a tiny
 * synthetic long-tailed set with ResNet-20: what each stage may and may not
 * change in the model, the data accounting and schedules against values
 * worked out by hand, checkpoints and a bit-identical resume, cancelling,
 * evaluation against a closed form, and bad arguments. */
#define _XOPEN_SOURCE 700     /* access */

#include "testutil.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum { K = 4, SIDE = 8 };
static const int64_t TRAIN_COUNTS[K] = { 120, 40, 25, 15 };    /* Many, Medium, Medium, Few */
static const float MEAN[1] = { 0.3f }, STD[1] = { 0.25f };

/* ---------------------------------------------------------------- helpers */

static mislas_dataset *make_dataset(const int64_t *counts)
{
    return test_quadrant_dataset(counts, K, SIDE);
}

static mislas_model *new_model(uint64_t seed)
{
    return test_new_model(MISLAS_RESNET20, 1, SIDE, SIDE, K, seed);
}

/* Every tensor's values, by the model's tensor index. */
typedef struct snapshot {
    int32_t count;
    float *values[128];
    size_t sizes[128];
    const char *names[128];
} snapshot;

static snapshot take(const mislas_model *m)
{
    snapshot s = { .count = mislas_model_num_tensors(m) };
    ck_assert_int_le(s.count, 128);
    for (int32_t t = 0; t < s.count; t++) {
        ck_assert_status(mislas_model_tensor_info(m, t, &s.names[t], &s.sizes[t]), MISLAS_OK);
        s.values[t] = malloc(s.sizes[t] * sizeof(float));
        ck_assert_status(mislas_model_get_tensor(m, s.names[t], s.values[t], s.sizes[t]), MISLAS_OK);
    }
    return s;
}

static void release(snapshot *s)
{
    for (int32_t t = 0; t < s->count; t++)
        free(s->values[t]);
}

static bool same_tensor(const snapshot *a, const snapshot *b, int32_t t)
{
    return memcmp(a->values[t], b->values[t], a->sizes[t] * sizeof(float)) == 0;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

static bool is_running_stat(const char *name)
{
    return ends_with(name, "running_mean") || ends_with(name, "running_var");
}

static bool is_classifier(const char *name)
{
    return strcmp(name, "fc.weight") == 0 || strcmp(name, "fc.bias") == 0;
}

static char tmp_dir[64];

static void make_tmp_dir(void)
{
    test_make_dir(tmp_dir, "mislas-train");
}

static void tmp_path(char *out, size_t cap, const char *name)
{
    snprintf(out, cap, "%s/%s", tmp_dir, name);
}

static void remove_tmp_dir(void)
{
    test_remove_dir(tmp_dir);
}

static void stage1_defaults(mislas_train_stage1_options *o, int32_t epochs)
{
    mislas_train_stage1_options_init(o);
    o->epochs = epochs;
    o->batch_size = 32;
    o->lr = 0.05;
    o->warmup_epochs = 1;
    o->mean = MEAN;
    o->std = STD;
    o->seed = 7;
}

static void stage2_defaults(mislas_train_stage2_options *o, mislas_stage2_method method, int32_t epochs)
{
    mislas_train_stage2_options_init(o);
    o->method = method;
    o->epochs = epochs;
    o->batch_size = 32;
    o->mean = MEAN;
    o->std = STD;
    o->seed = 11;
}

/* What a progress callback saw. */
typedef struct seen {
    int calls, epochs_closed;
    size_t steps_in_epoch[16], last_step[16];
    double lr[16], accuracy[16];
    int cancel_epoch;           /* 0-based; -1 never */
    size_t cancel_step;
} seen;

static int watch(const mislas_progress *p, void *user)
{
    seen *s = user;
    s->calls++;
    ck_assert_int_eq((int)p->struct_size, (int)sizeof *p);
    ck_assert_int_lt(p->epoch, 16);
    ck_assert(p->step >= 1 && p->step <= p->steps);
    ck_assert(isfinite(p->loss) && p->loss >= 0);
    ck_assert(p->accuracy >= 0 && p->accuracy <= 1);
    ck_assert(p->images_per_second > 0);
    if (p->epoch_done) {
        ck_assert_int_eq((int)p->step, (int)p->steps);
        s->epochs_closed++;
        s->accuracy[p->epoch] = p->accuracy;
    }
    s->steps_in_epoch[p->epoch] = p->steps;
    s->last_step[p->epoch] = p->step;
    s->lr[p->epoch] = p->lr;
    return p->epoch == s->cancel_epoch && p->step == s->cancel_step && !p->epoch_done;
}

/* ---------------------------------------------------------------- stage 1 */

/* The reference decays after epochs 160 and 180 of 200; worked by hand for
 * shorter runs: 30 -> 24, 27; 7 -> 5.6, 6.3 -> 5, 6; 5 -> 4, 4.5 -> 4 (the
 * repeat dropped); 1 -> 0.8, 0.9 -> none. */
START_TEST(stage1_default_milestones_scale_the_reference_schedule)
{
    static const struct { int32_t epochs, count, m[2]; } cases[] = {
        { 200, 2, { 160, 180 } }, { 30, 2, { 24, 27 } }, { 7, 2, { 5, 6 } }, { 10, 2, { 8, 9 } },
        { 5, 1, { 4, 0 } }, { 2, 1, { 1, 0 } }, { 1, 0, { 0, 0 } },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int32_t m[MISLAS_TRAIN_STAGE1_MILESTONES_MAX] = { 0, 0 }, count = -1;
        ck_assert_status(mislas_train_stage1_milestones(m, &count, cases[i].epochs), MISLAS_OK);
        ck_assert_int_eq(count, cases[i].count);
        for (int32_t j = 0; j < count; j++)
            ck_assert_int_eq(m[j], cases[i].m[j]);
    }
    int32_t m[MISLAS_TRAIN_STAGE1_MILESTONES_MAX], count;
    ck_assert_status(mislas_train_stage1_milestones(m, &count, 0), MISLAS_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_nonnull(strstr(mislas_last_error(), "epochs = 0"));
    ck_assert_status(mislas_train_stage1_milestones(NULL, &count, 10), MISLAS_ERR_INVALID_ARGUMENT);
    ck_assert_status(mislas_train_stage1_milestones(m, NULL, 10), MISLAS_ERR_INVALID_ARGUMENT);

    /* and they are what a run without milestones decays at: 7 epochs, lr
     * 0.1 through epoch 5, x 0.1 after epochs 5 and 6 */
    mislas_dataset *d = make_dataset(TRAIN_COUNTS);
    mislas_model *model = new_model(1);
    seen s = { .cancel_epoch = -1 };
    mislas_train_stage1_options o;
    stage1_defaults(&o, 7);
    o.batch_size = 100;
    o.lr = 0.1;
    o.warmup_epochs = 0;
    o.progress = watch;
    o.progress_data = &s;
    ck_assert_status(mislas_train_stage1(model, d, &o), MISLAS_OK);
    for (int e = 0; e < 5; e++)
        ck_assert_close(s.lr[e], 0.1, 1e-15, 0);
    ck_assert_close(s.lr[5], 0.01, 1e-15, 0);
    ck_assert_close(s.lr[6], 0.001, 1e-15, 0);
    mislas_model_free(model);
    mislas_dataset_free(d);
}
END_TEST

START_TEST(stage1_accounting_schedule_and_checkpoint)
{
    make_tmp_dir();
    char path[128];
    tmp_path(path, sizeof path, "s1.ck");
    mode_t mask = umask(027);
    mislas_dataset *d = make_dataset(TRAIN_COUNTS);     /* 200 images */
    mislas_model *m = new_model(1);
    seen s = { .cancel_epoch = -1 };
    mislas_train_stage1_options o;
    stage1_defaults(&o, 4);
    o.batch_size = 48;
    o.lr = 0.1;
    o.warmup_epochs = 2;
    const int32_t milestones[] = { 3 };
    o.milestones = milestones;
    o.num_milestones = 1;
    o.checkpoint_path = path;
    o.progress = watch;
    o.progress_data = &s;
    ck_assert_status(mislas_train_stage1(m, d, &o), MISLAS_OK);
    /* 200 = 4 x 48 + 8: five batches, the last partial one included */
    ck_assert_int_eq(s.epochs_closed, 4);
    ck_assert_int_eq(s.calls, 4 * 5 + 4);
    for (int e = 0; e < 4; e++)
        ck_assert_int_eq((int)s.steps_in_epoch[e], 5);
    /* warm-up e/2 x 0.1 for e = 1, 2; 0.1 until epoch 3; x0.1 after */
    ck_assert_close(s.lr[0], 0.05, 1e-15, 0);
    ck_assert_close(s.lr[1], 0.1, 1e-15, 0);
    ck_assert_close(s.lr[2], 0.1, 1e-15, 0);
    ck_assert_close(s.lr[3], 0.01, 1e-15, 0);
    /* made as open(path, O_CREAT, 0666) would make it, not mkstemp's 0600 */
    struct stat st;
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_int_eq((int)(st.st_mode & 0777), 0640);
    int32_t stage, done, epochs;
    ck_assert_status(mislas_checkpoint_training(&stage, &done, &epochs, path), MISLAS_OK);
    ck_assert_int_eq(stage, 1);
    ck_assert_int_eq(done, 4);
    ck_assert_int_eq(epochs, 4);
    int64_t counts[K];
    ck_assert_status(mislas_model_class_counts(m, counts, K), MISLAS_OK);
    for (int c = 0; c < K; c++)
        ck_assert_int_eq((int)counts[c], (int)TRAIN_COUNTS[c]);
    /* the checkpoint holds the trained model itself */
    mislas_model *loaded = NULL;
    ck_assert_status(mislas_checkpoint_load(&loaded, NULL, path), MISLAS_OK);
    snapshot a = take(m), b = take(loaded);
    for (int32_t t = 0; t < a.count; t++)
        ck_assert_msg(same_tensor(&a, &b, t), "%s differs in the checkpoint", a.names[t]);
    release(&a);
    release(&b);
    mislas_model_free(loaded);

    /* 193 = 4 x 48 + 1: batch norm cannot train on one image, so four batches */
    int64_t odd[K] = { 113, 40, 25, 15 };
    mislas_dataset *d2 = make_dataset(odd);
    memset(&s, 0, sizeof s);
    s.cancel_epoch = -1;
    o.epochs = 1;
    o.checkpoint_path = NULL;
    ck_assert_status(mislas_train_stage1(m, d2, &o), MISLAS_OK);
    ck_assert_int_eq((int)s.steps_in_epoch[0], 4);
    umask(mask);
    mislas_dataset_free(d2);
    mislas_model_free(m);
    mislas_dataset_free(d);
    remove_tmp_dir();
}
END_TEST

START_TEST(stage1_learns_the_classes)
{
    mislas_dataset *d = make_dataset(TRAIN_COUNTS);
    const int64_t balanced[K] = { 25, 25, 25, 25 };
    mislas_dataset *test = make_dataset(balanced);
    mislas_model *m = new_model(2);
    seen s = { .cancel_epoch = -1 };
    mislas_train_stage1_options o;
    stage1_defaults(&o, 6);
    o.mixup_alpha = 0;
    o.augment = 0;      /* a 4-pixel shift would move the 4 x 4 quadrants themselves */
    o.progress = watch;
    o.progress_data = &s;
    ck_assert_status(mislas_train_stage1(m, d, &o), MISLAS_OK);
    ck_assert_msg(s.accuracy[5] > 0.9, "last epoch's training accuracy %.3f", s.accuracy[5]);
    ck_assert_msg(s.accuracy[5] > s.accuracy[0], "no progress: %.3f -> %.3f", s.accuracy[0], s.accuracy[5]);
    mislas_eval_options eo;
    mislas_eval_options_init(&eo);
    eo.mean = MEAN;
    eo.std = STD;
    mislas_eval_report r;
    mislas_eval_report_init(&r);
    ck_assert_status(mislas_eval_run(m, test, &eo, NULL, NULL, &r), MISLAS_OK);
    ck_assert_msg(r.top1 > 0.85, "test top-1 %.3f", r.top1);
    ck_assert_int_eq((int)r.count, 100);
    mislas_model_free(m);
    mislas_dataset_free(test);
    mislas_dataset_free(d);
}
END_TEST

/* The same run on 1 and 2 threads, and twice on 2: the same bits. */
START_TEST(stage1_is_deterministic_across_threads)
{
    mislas_dataset *d = make_dataset(TRAIN_COUNTS);
    snapshot runs[3];
    const int32_t threads[3] = { 1, 2, 2 };
    for (int i = 0; i < 3; i++) {
        ck_assert_status(mislas_set_num_threads(threads[i]), MISLAS_OK);
        mislas_model *m = new_model(3);
        mislas_train_stage1_options o;
        stage1_defaults(&o, 2);
        ck_assert_status(mislas_train_stage1(m, d, &o), MISLAS_OK);
        runs[i] = take(m);
        mislas_model_free(m);
    }
    for (int i = 1; i < 3; i++) {
        for (int32_t t = 0; t < runs[0].count; t++)
            ck_assert_msg(same_tensor(&runs[0], &runs[i], t), "run %d: %s differs", i, runs[0].names[t]);
        release(&runs[i]);
    }
    release(&runs[0]);
    mislas_set_num_threads(0);
    mislas_dataset_free(d);
}
END_TEST

/* ------------------------------------------------------- a communicator */

/* A transport of one rank, in this process: an allgather, a broadcast from
 * itself and a wait have nothing to move; sends and receives never happen
 * (rank 0 of 1 has no neighbour). `fail_after` > 0 makes that many calls
 * succeed and the next fail. */
typedef struct solo {
    int calls, fail_after;
} solo;

static int solo_count(solo *t)
{
    t->calls++;
    return t->fail_after > 0 && t->calls > t->fail_after ? MISLAS_ERR_IO : MISLAS_OK;
}
static int solo_allgather(void *impl, void *buffer, const size_t *offsets)
{
    (void)buffer; (void)offsets;
    return solo_count(impl);
}
static int solo_broadcast(void *impl, void *buffer, size_t bytes, int32_t root)
{
    (void)buffer; (void)bytes;
    ck_assert_int_eq(root, 0);
    return solo_count(impl);
}
static int solo_wait(void *impl) { return solo_count(impl); }
static int solo_receive(void *impl, void *buffer, size_t bytes, int32_t tag)
{
    (void)impl; (void)buffer; (void)bytes; (void)tag;
    ck_abort_msg("rank 0 of 1 received");
    return MISLAS_ERR_STATE;
}
static int solo_send(void *impl, const void *buffer, size_t bytes, int32_t tag)
{
    (void)impl; (void)buffer; (void)bytes; (void)tag;
    ck_abort_msg("rank 0 of 1 sent");
    return MISLAS_ERR_STATE;
}
static const char *solo_message(void *impl) { (void)impl; return "the wire is cut"; }

static mislas_comm *solo_comm(solo *t)
{
    mislas_comm_ops ops = {.struct_size = sizeof ops, .allgather = solo_allgather, .send_next = solo_send,
                           .receive_previous = solo_receive, .broadcast_start = solo_broadcast,
                           .wait = solo_wait, .message = solo_message};
    mislas_comm *c = NULL;
    ck_assert_status(mislas_comm_new(&c, 0, 1, &ops, t), MISLAS_OK);
    return c;
}

/* Training and evaluating through a communicator of one rank runs every
 * exchange's code (the shares, the gathers, the chains' ends) and must give
 * the bits of no communicator at all; a transport's failure fails the call,
 * naming the rank, the operation and the transport's message. */
START_TEST(a_communicator_of_one_rank_gives_the_same_bits)
{
    mislas_dataset *d = make_dataset(TRAIN_COUNTS);
    snapshot runs[2];
    mislas_eval_report reports[2];
    solo t = {0};
    mislas_comm *c = solo_comm(&t);
    for (int i = 0; i < 2; i++) {
        mislas_model *m = new_model(5);
        mislas_train_stage1_options o1;
        stage1_defaults(&o1, 2);
        o1.comm = i == 0 ? NULL : c;
        ck_assert_status(mislas_train_stage1(m, d, &o1), MISLAS_OK);
        mislas_train_stage2_options o2;
        mislas_train_stage2_options_init(&o2);
        o2.epochs = 1;
        o2.batch_size = 16;
        o2.mean = MEAN;
        o2.std = STD;
        o2.comm = o1.comm;
        ck_assert_status(mislas_train_stage2(m, d, &o2), MISLAS_OK);
        mislas_eval_options eo;
        mislas_eval_options_init(&eo);
        eo.mean = MEAN;
        eo.std = STD;
        eo.batch_size = 7;
        eo.comm = o1.comm;
        mislas_eval_report_init(&reports[i]);
        ck_assert_status(mislas_eval_run(m, d, &eo, NULL, NULL, &reports[i]), MISLAS_OK);
        runs[i] = take(m);
        mislas_model_free(m);
    }
    for (int32_t k = 0; k < runs[0].count; k++)
        ck_assert_msg(same_tensor(&runs[0], &runs[1], k), "through a communicator: %s differs", runs[0].names[k]);
    ck_assert(reports[0].top1 == reports[1].top1 && reports[0].ece == reports[1].ece
              && reports[0].nll == reports[1].nll);
    ck_assert_int_gt(t.calls, 0);
    release(&runs[0]);
    release(&runs[1]);

    /* the transport fails at its third call: inside the first step */
    t = (solo){.fail_after = 2};
    mislas_model *m = new_model(5);
    mislas_train_stage1_options o1;
    stage1_defaults(&o1, 1);
    o1.comm = c;
    ck_assert_status(mislas_train_stage1(m, d, &o1), MISLAS_ERR_IO);
    ck_assert_msg(strstr(mislas_last_error(), "rank 0 of 1") != NULL
                  && strstr(mislas_last_error(), "the wire is cut") != NULL, "%s", mislas_last_error());
    mislas_model_free(m);
    mislas_comm_free(c);
    mislas_dataset_free(d);
}
END_TEST

START_TEST(comm_new_refuses_a_bad_transport)
{
    mislas_comm_ops ops = {.struct_size = sizeof ops, .allgather = solo_allgather, .send_next = solo_send,
                           .receive_previous = solo_receive, .broadcast_start = solo_broadcast, .wait = solo_wait};
    mislas_comm *c = (mislas_comm *)&ops;
    ck_assert_status(mislas_comm_new(&c, 0, 1, NULL, NULL), MISLAS_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_null(c);
    ck_assert_status(mislas_comm_new(&c, 2, 2, &ops, NULL), MISLAS_ERR_INVALID_ARGUMENT);
    ck_assert_status(mislas_comm_new(&c, -1, 2, &ops, NULL), MISLAS_ERR_INVALID_ARGUMENT);
    ck_assert_status(mislas_comm_new(&c, 0, 0, &ops, NULL), MISLAS_ERR_INVALID_ARGUMENT);
    ops.wait = NULL;
    ck_assert_status(mislas_comm_new(&c, 0, 1, &ops, NULL), MISLAS_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_nonnull(strstr(mislas_last_error(), "wait"));
    ck_assert_status(mislas_comm_new(NULL, 0, 1, &ops, NULL), MISLAS_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(mislas_comm_rank(NULL), 0);
    ck_assert_int_eq(mislas_comm_size(NULL), 1);
}
END_TEST

/* ------------------------------------------------------------ resume exact */

/* Train `epochs` straight into path a; then the same run cancelled in epoch
 * `cancel_epoch` and resumed into path b. Both must agree bit for bit. */
static void check_resume(int stage, mislas_stage2_method method, int shift_bn)
{
    make_tmp_dir();
    char a[128], b[128];
    tmp_path(a, sizeof a, "a.ck");
    tmp_path(b, sizeof b, "b.ck");
    mislas_dataset *d = make_dataset(TRAIN_COUNTS);
    mislas_model *base = new_model(4);
    mislas_train_stage1_options o1;
    stage1_defaults(&o1, stage == 1 ? 3 : 1);
    if (stage == 2)
        ck_assert_status(mislas_train_stage1(base, d, &o1), MISLAS_OK);
    snapshot start = take(base);
    mislas_train_stage2_options o2;
    stage2_defaults(&o2, method, 3);
    o2.shift_bn = shift_bn;

    mislas_model *straight = new_model(4), *resumed = new_model(4);
    for (int32_t t = 0; t < start.count; t++) {
        ck_assert_status(mislas_model_set_tensor(straight, start.names[t], start.values[t], start.sizes[t]), MISLAS_OK);
        ck_assert_status(mislas_model_set_tensor(resumed, start.names[t], start.values[t], start.sizes[t]), MISLAS_OK);
    }
    seen s = { .cancel_epoch = 1, .cancel_step = 2 };
    if (stage == 1) {
        o1.checkpoint_path = a;
        ck_assert_status(mislas_train_stage1(straight, d, &o1), MISLAS_OK);
        o1.checkpoint_path = b;
        o1.progress = watch;
        o1.progress_data = &s;
        ck_assert_status(mislas_train_stage1(resumed, d, &o1), MISLAS_ERR_CANCELLED);
        ck_assert_ptr_nonnull(strstr(mislas_last_error(), "cancelled"));
        int32_t done;
        ck_assert_status(mislas_checkpoint_training(NULL, &done, NULL, b), MISLAS_OK);
        ck_assert_int_eq(done, 1);
        mislas_model_free(resumed);
        resumed = new_model(4);      /* as a fresh process would make it */
        o1.progress = NULL;
        o1.resume = 1;
        ck_assert_status(mislas_train_stage1(resumed, d, &o1), MISLAS_OK);
    } else {
        o2.checkpoint_path = a;
        ck_assert_status(mislas_train_stage2(straight, d, &o2), MISLAS_OK);
        o2.checkpoint_path = b;
        o2.progress = watch;
        o2.progress_data = &s;
        ck_assert_status(mislas_train_stage2(resumed, d, &o2), MISLAS_ERR_CANCELLED);
        mislas_model_free(resumed);
        resumed = new_model(4);
        for (int32_t t = 0; t < start.count; t++)
            ck_assert_status(mislas_model_set_tensor(resumed, start.names[t], start.values[t], start.sizes[t]),
                    MISLAS_OK);
        o2.progress = NULL;
        o2.resume = 1;
        ck_assert_status(mislas_train_stage2(resumed, d, &o2), MISLAS_OK);
    }
    snapshot x = take(straight), y = take(resumed);
    for (int32_t t = 0; t < x.count; t++)
        ck_assert_msg(same_tensor(&x, &y, t), "stage %d: %s differs after the resume", stage, x.names[t]);
    /* and the files, momentum included: byte for byte */
    FILE *fa = fopen(a, "rb"), *fb = fopen(b, "rb");
    ck_assert_ptr_nonnull(fa);
    ck_assert_ptr_nonnull(fb);
    int ca, cb;
    long at = 0;
    do {
        ca = fgetc(fa);
        cb = fgetc(fb);
        ck_assert_msg(ca == cb, "the checkpoints differ at byte %ld", at);
        at++;
    } while (ca != EOF);
    fclose(fa);
    fclose(fb);

    /* resuming a finished run changes nothing and calls back nothing */
    seen none = { .cancel_epoch = -1 };
    if (stage == 1) {
        o1.progress = watch;
        o1.progress_data = &none;
        ck_assert_status(mislas_train_stage1(resumed, d, &o1), MISLAS_OK);
    } else {
        o2.progress = watch;
        o2.progress_data = &none;
        ck_assert_status(mislas_train_stage2(resumed, d, &o2), MISLAS_OK);
    }
    ck_assert_int_eq(none.calls, 0);
    release(&x);
    release(&y);
    release(&start);
    mislas_model_free(straight);
    mislas_model_free(resumed);
    mislas_model_free(base);
    mislas_dataset_free(d);
    remove_tmp_dir();
}

START_TEST(stage1_resume_is_bit_identical)
{
    check_resume(1, MISLAS_STAGE2_MISLAS, 1);
}
END_TEST

START_TEST(stage2_resume_is_bit_identical)
{
    check_resume(2, MISLAS_STAGE2_MISLAS, 1);
    check_resume(2, MISLAS_STAGE2_CRT, 0);
}
END_TEST

START_TEST(resume_refuses_another_run_or_a_broken_file)
{
    make_tmp_dir();
    char path[128];
    tmp_path(path, sizeof path, "c.ck");
    mislas_dataset *d = make_dataset(TRAIN_COUNTS);
    mislas_model *m = new_model(5);
    mislas_train_stage1_options o;
    stage1_defaults(&o, 2);
    o.checkpoint_path = path;
    ck_assert_status(mislas_train_stage1(m, d, &o), MISLAS_OK);
    snapshot before = take(m);
    o.resume = 1;
    o.lr = 0.02;                        /* another run */
    ck_assert_status(mislas_train_stage1(m, d, &o), MISLAS_ERR_STATE);
    ck_assert_ptr_nonnull(strstr(mislas_last_error(), path));
    o.lr = 0.05;
    o.epochs = 3;                       /* a longer run is another run too */
    ck_assert_status(mislas_train_stage1(m, d, &o), MISLAS_ERR_STATE);
    o.epochs = 2;
    mislas_train_stage2_options o2;           /* a stage-2 resume from a stage-1 file */
    stage2_defaults(&o2, MISLAS_STAGE2_LWS, 1);
    o2.checkpoint_path = path;
    o2.resume = 1;
    ck_assert_status(mislas_train_stage2(m, d, &o2), MISLAS_ERR_STATE);
    ck_assert_ptr_nonnull(strstr(mislas_last_error(), "stage-1"));
    mislas_model_free(m);
    m = new_model(5);

    /* a byte flipped in the middle: refused, and the file is left alone */
    FILE *f = fopen(path, "r+b");
    ck_assert_ptr_nonnull(f);
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, size / 2, SEEK_SET);
    int c = fgetc(f);
    fseek(f, size / 2, SEEK_SET);
    fputc(c ^ 0x20, f);
    fclose(f);
    ck_assert_status(mislas_train_stage1(m, d, &o), MISLAS_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(mislas_last_error(), path));
    struct stat st;
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_int_eq((long)st.st_size, size);
    release(&before);
    mislas_model_free(m);
    mislas_dataset_free(d);
    remove_tmp_dir();
}
END_TEST

START_TEST(cancelling_stops_cleanly)
{
    make_tmp_dir();
    char path[128];
    tmp_path(path, sizeof path, "c.ck");
    mislas_dataset *d = make_dataset(TRAIN_COUNTS);
    mislas_model *m = new_model(6);
    seen s = { .cancel_epoch = 0, .cancel_step = 2 };
    mislas_train_stage1_options o;
    stage1_defaults(&o, 2);
    o.checkpoint_path = path;
    o.progress = watch;
    o.progress_data = &s;
    ck_assert_status(mislas_train_stage1(m, d, &o), MISLAS_ERR_CANCELLED);
    ck_assert_int_eq(s.calls, 2);
    ck_assert_int_eq(access(path, F_OK), -1);   /* no epoch finished, so no file */
    /* the model is whole and usable */
    float logits[2 * K], x[2 * SIDE * SIDE] = { 0 };
    ck_assert_status(mislas_model_predict(m, x, 2, logits), MISLAS_OK);
    mislas_model_free(m);
    mislas_dataset_free(d);
    remove_tmp_dir();
}
END_TEST

/* ---------------------------------------------------------------- stage 2 */

/* Trains stage 2 on a stage-1 model and returns which tensors changed. */
typedef struct changes {
    bool conv, bn_affine, running, fc, scales;
    float scales_after[K];
} changes;

static changes stage2_changes(mislas_stage2_method method, int shift_bn, int las)
{
    mislas_dataset *d = make_dataset(TRAIN_COUNTS);
    mislas_model *m = new_model(8);
    mislas_train_stage1_options o1;
    stage1_defaults(&o1, 1);
    ck_assert_status(mislas_train_stage1(m, d, &o1), MISLAS_OK);
    snapshot before = take(m);
    mislas_train_stage2_options o2;
    stage2_defaults(&o2, method, 2);
    o2.shift_bn = shift_bn;
    o2.label_aware_smoothing = las;
    ck_assert_status(mislas_train_stage2(m, d, &o2), MISLAS_OK);
    snapshot after = take(m);
    changes c = { 0 };
    for (int32_t t = 0; t < before.count; t++) {
        bool changed = !same_tensor(&before, &after, t);
        const char *name = before.names[t];
        if (strcmp(name, "learned_norm") == 0)
            c.scales |= changed;
        else if (is_classifier(name))
            c.fc |= changed;
        else if (is_running_stat(name))
            c.running |= changed;
        else if (strstr(name, "bn") != NULL)
            c.bn_affine |= changed;
        else
            c.conv |= changed;
    }
    ck_assert_status(mislas_model_classifier_scales(m, c.scales_after), MISLAS_OK);
    ck_assert_int_eq(mislas_model_backbone_frozen(m), 1);
    release(&before);
    release(&after);
    mislas_model_free(m);
    mislas_dataset_free(d);
    return c;
}

START_TEST(lws_changes_only_the_scales)
{
    changes c = stage2_changes(MISLAS_STAGE2_LWS, 0, 0);
    ck_assert(c.scales);
    ck_assert(!c.fc && !c.conv && !c.bn_affine && !c.running);
}
END_TEST

START_TEST(shifted_bn_moves_only_the_running_statistics)
{
    changes c = stage2_changes(MISLAS_STAGE2_MISLAS, 1, 1);
    ck_assert(c.running);
    ck_assert(!c.conv && !c.bn_affine);
    ck_assert(c.fc && c.scales);
    /* without the shift the backbone does not move at all */
    c = stage2_changes(MISLAS_STAGE2_MISLAS, 0, 1);
    ck_assert(!c.running && !c.conv && !c.bn_affine);
    ck_assert(c.fc && c.scales);
}
END_TEST

START_TEST(crt_retrains_the_classifier_alone)
{
    changes c = stage2_changes(MISLAS_STAGE2_CRT, 0, 0);
    ck_assert(c.fc);
    ck_assert(!c.conv && !c.bn_affine && !c.running && !c.scales);
    for (int k = 0; k < K; k++)
        ck_assert_float_eq(c.scales_after[k], 1.0f);
}
END_TEST

START_TEST(stage2_epoch_length)
{
    mislas_dataset *d = make_dataset(TRAIN_COUNTS);
    mislas_model *m = new_model(9);
    seen s = { .cancel_epoch = -1 };
    mislas_train_stage2_options o;
    stage2_defaults(&o, MISLAS_STAGE2_MISLAS, 3);
    o.progress = watch;
    o.progress_data = &s;
    ck_assert_status(mislas_train_stage2(m, d, &o), MISLAS_OK);
    /* the reference's ceil(200 / 32) + 1 batches; cosine 0.1, 0.075, 0.025 */
    ck_assert_int_eq((int)s.steps_in_epoch[0], 8);
    ck_assert_close(s.lr[0], 0.1, 1e-15, 0);
    ck_assert_close(s.lr[1], 0.075, 1e-12, 0);
    ck_assert_close(s.lr[2], 0.025, 1e-12, 0);
    memset(&s, 0, sizeof s);
    s.cancel_epoch = -1;
    o.epochs = 1;
    o.epoch_steps = 3;
    ck_assert_status(mislas_train_stage2(m, d, &o), MISLAS_OK);
    ck_assert_int_eq((int)s.steps_in_epoch[0], 3);
    mislas_model_free(m);
    mislas_dataset_free(d);
}
END_TEST

/* --------------------------------------------------------------- evaluate */

/* A classifier with W = 0 and bias b e_1 predicts class 1 for every image
 * with confidence p = e^b / (e^b + 3): everything follows in closed form. */
START_TEST(evaluate_against_a_closed_form)
{
    const int64_t test_counts[K] = { 10, 10, 20, 0 };
    mislas_dataset *test = make_dataset(test_counts);
    mislas_model *m = new_model(10);
    float w[K * 64] = { 0 }, bias[K] = { 0, 2.0f, 0, 0 };
    ck_assert_int_eq(mislas_model_feature_dim(m), 64);
    ck_assert_status(mislas_model_set_tensor(m, "fc.weight", w, K * 64), MISLAS_OK);
    ck_assert_status(mislas_model_set_tensor(m, "fc.bias", bias, K), MISLAS_OK);
    mislas_eval_options o;
    mislas_eval_options_init(&o);
    o.batch_size = 7;       /* batches that do not divide the 40 images */
    o.mean = MEAN;
    o.std = STD;
    mislas_eval_report r;
    mislas_eval_report_init(&r);
    double class_acc[K];
    mislas_calib *calib = NULL;
    ck_assert_status(mislas_calib_new(&calib, K, 15), MISLAS_OK);

    /* no training counts anywhere: no split */
    ck_assert_status(mislas_eval_run(m, test, &o, calib, class_acc, &r), MISLAS_OK);
    ck_assert(isnan(r.many) && isnan(r.medium) && isnan(r.few));

    mislas_calib_reset(calib);
    ck_assert_status(mislas_model_set_class_counts(m, TRAIN_COUNTS, K), MISLAS_OK);
    ck_assert_status(mislas_eval_run(m, test, &o, calib, class_acc, &r), MISLAS_OK);
    double e2 = exp(2.0), p = e2 / (e2 + 3.0);
    ck_assert_int_eq((int)r.count, 40);
    ck_assert_close(r.top1, 0.25, 1e-12, 0);
    ck_assert_close(class_acc[0], 0.0, 0, 0);
    ck_assert_close(class_acc[1], 1.0, 0, 0);
    ck_assert_close(class_acc[2], 0.0, 0, 0);
    ck_assert(isnan(class_acc[3]));     /* no test image of class 3 */
    /* Many: class 0 (120); Medium: 1 (40) and 2 (25); Few: 3 (15), no test images */
    ck_assert_close(r.many, 0.0, 0, 0);
    ck_assert_close(r.medium, 0.5, 1e-12, 0);
    ck_assert(isnan(r.few));
    ck_assert_int_eq(r.many_classes, 1);
    ck_assert_int_eq(r.medium_classes, 2);
    ck_assert_int_eq(r.few_classes, 0);
    ck_assert_close(r.ece, fabs(p - 0.25), 1e-6, 0);
    ck_assert_close(r.mce, fabs(p - 0.25), 1e-6, 0);
    double nll = 0.25 * -log(p) + 0.75 * -log((1 - p) / 3);
    ck_assert_close(r.nll, nll, 1e-6, 0);
    mislas_calib_bin bins[15];
    ck_assert_status(mislas_calib_bins(calib, bins, 15), MISLAS_OK);
    int b = (int)ceil(p * 15) - 1;
    ck_assert_int_eq((int)bins[b].count, 40);

    /* train_counts given override the model's: all four classes Few */
    const int64_t few_only[K] = { 5, 5, 5, 5 };
    o.train_counts = few_only;
    ck_assert_status(mislas_eval_run(m, test, &o, NULL, NULL, &r), MISLAS_OK);
    ck_assert(isnan(r.many) && isnan(r.medium));
    ck_assert_close(r.few, 1.0 / 3.0, 1e-12, 0);
    mislas_calib_free(calib);
    mislas_model_free(m);
    mislas_dataset_free(test);
}
END_TEST

/* mislas_eval_logits gives, in the data set's order, the logits that
 * mislas_model_predict gives batch by batch on the normalised images, the
 * same bits through a communicator of one rank; it checks its arguments
 * first. */
START_TEST(eval_logits_are_the_predictions_in_order)
{
    const int64_t counts[K] = { 10, 10, 20, 3 };
    mislas_dataset *d = make_dataset(counts);
    mislas_model *m = new_model(3);
    const size_t n = mislas_dataset_size(d), image = SIDE * SIDE, batch = 7;
    float *want = malloc(n * K * sizeof *want), *got = malloc(n * K * sizeof *got), *images = malloc(batch * image
            * sizeof *images);
    size_t idx[7];
    mislas_dataset_batch_options bo;
    mislas_dataset_batch_options_init(&bo);
    bo.mean = MEAN;
    bo.std = STD;
    for (size_t first = 0; first < n; first += batch) {
        size_t len = n - first < batch ? n - first : batch;
        for (size_t i = 0; i < len; i++)
            idx[i] = first + i;
        ck_assert_status(mislas_dataset_batch(d, idx, len, &bo, 0, images, NULL), MISLAS_OK);
        ck_assert_status(mislas_model_predict(m, images, len, want + first * K), MISLAS_OK);
    }
    mislas_eval_options eo;
    mislas_eval_options_init(&eo);
    eo.batch_size = (int32_t)batch;     /* 43 images: a last batch of 1 */
    eo.mean = MEAN;
    eo.std = STD;
    solo t = {0};
    mislas_comm *c = solo_comm(&t);
    for (int through = 0; through < 2; through++) {
        eo.comm = through ? c : NULL;
        memset(got, 0xff, n * K * sizeof *got);
        ck_assert_status(mislas_eval_logits(m, d, &eo, got), MISLAS_OK);
        ck_assert_msg(memcmp(got, want, n * K * sizeof *got) == 0, "logits differ from predict's (comm: %d)",
                through);
    }
    ck_assert_int_gt(t.calls, 0);
    /* refusals, nothing written */
    memset(got, 0, n * K * sizeof *got);
    eo.comm = NULL;
    ck_assert_status(mislas_eval_logits(NULL, d, &eo, got), MISLAS_ERR_INVALID_ARGUMENT);
    ck_assert_status(mislas_eval_logits(m, NULL, &eo, got), MISLAS_ERR_INVALID_ARGUMENT);
    ck_assert_status(mislas_eval_logits(m, d, &eo, NULL), MISLAS_ERR_INVALID_ARGUMENT);
    eo.batch_size = 0;
    ck_assert_status(mislas_eval_logits(m, d, &eo, got), MISLAS_ERR_INVALID_ARGUMENT);
    mislas_model *rgb = test_new_model(MISLAS_RESNET20, 3, SIDE, SIDE, K, 1);
    eo.batch_size = 7;
    ck_assert_status(mislas_eval_logits(rgb, d, &eo, got), MISLAS_ERR_INVALID_ARGUMENT);
    for (size_t i = 0; i < n * K; i++)
        ck_assert(got[i] == 0.0f);
    mislas_model_free(rgb);
    mislas_comm_free(c);
    free(want);
    free(got);
    free(images);
    mislas_model_free(m);
    mislas_dataset_free(d);
}
END_TEST

/* ------------------------------------------------------------ bad input */

START_TEST(bad_arguments_are_refused)
{
    mislas_dataset *d = make_dataset(TRAIN_COUNTS);
    mislas_model *m = new_model(12);
    mislas_model *rgb = test_new_model(MISLAS_RESNET20, 3, SIDE, SIDE, K, 1);
    mislas_train_stage1_options o;
    stage1_defaults(&o, 1);
    ck_assert_status(mislas_train_stage1(NULL, d, &o), MISLAS_ERR_INVALID_ARGUMENT);
    ck_assert_status(mislas_train_stage1(m, NULL, &o), MISLAS_ERR_INVALID_ARGUMENT);
    ck_assert_status(mislas_train_stage1(rgb, d, &o), MISLAS_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_nonnull(strstr(mislas_last_error(), "1x8x8"));
    struct { const char *what; void (*change)(mislas_train_stage1_options *); } cases[] = {
        { "epochs", NULL }, { "batch_size", NULL }, { "lr", NULL }, { "momentum", NULL }, { "milestones", NULL },
        { "std", NULL }, { "schedule", NULL },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        mislas_train_stage1_options bad = o;
        static const int32_t backwards[] = { 5, 3 };
        static const float zero_std[] = { 0.0f };
        switch (i) {
        case 0: bad.epochs = 0; break;
        case 1: bad.batch_size = 1; break;
        case 2: bad.lr = NAN; break;
        case 3: bad.momentum = 1.0; break;
        case 4: bad.milestones = backwards; bad.num_milestones = 2; break;
        case 5: bad.std = zero_std; break;
        default: bad.schedule = (mislas_schedule)7; break;
        }
        ck_assert_status(mislas_train_stage1(m, d, &bad), MISLAS_ERR_INVALID_ARGUMENT);
        ck_assert_msg(strstr(mislas_last_error(), cases[i].what) != NULL, "case %s: %s", cases[i].what,
                mislas_last_error());
    }
    mislas_train_stage1_options garbage = o;
    garbage.struct_size = 3;
    ck_assert_status(mislas_train_stage1(m, d, &garbage), MISLAS_ERR_INVALID_ARGUMENT);

    mislas_train_stage2_options o2;
    stage2_defaults(&o2, (mislas_stage2_method)9, 1);
    ck_assert_status(mislas_train_stage2(m, d, &o2), MISLAS_ERR_INVALID_ARGUMENT);
    stage2_defaults(&o2, MISLAS_STAGE2_MISLAS, 1);
    o2.lr_factor = 0;
    ck_assert_status(mislas_train_stage2(m, d, &o2), MISLAS_ERR_INVALID_ARGUMENT);
    o2.lr_factor = 0.5;
    o2.smooth_head = 1.5f;
    ck_assert_status(mislas_train_stage2(m, d, &o2), MISLAS_ERR_INVALID_ARGUMENT);

    /* stage 1 on a model whose head was already set for stage 2 */
    ck_assert_status(mislas_model_set_head(m, MISLAS_HEAD_LWS, 0), MISLAS_OK);
    ck_assert_status(mislas_train_stage1(m, d, &o), MISLAS_ERR_STATE);

    mislas_eval_report r;
    mislas_eval_report_init(&r);
    ck_assert_status(mislas_eval_run(rgb, d, NULL, NULL, NULL, &r), MISLAS_ERR_INVALID_ARGUMENT);
    ck_assert_status(mislas_eval_run(m, d, NULL, NULL, NULL, NULL), MISLAS_ERR_INVALID_ARGUMENT);
    mislas_calib *wrong = NULL;
    ck_assert_status(mislas_calib_new(&wrong, K + 1, 15), MISLAS_OK);
    ck_assert_status(mislas_eval_run(m, d, NULL, wrong, NULL, &r), MISLAS_ERR_INVALID_ARGUMENT);
    mislas_calib_free(wrong);
    mislas_model_free(rgb);
    mislas_model_free(m);
    mislas_dataset_free(d);
}
END_TEST

/* ------------------------------------------------------ allocation failure */

typedef struct sweep_ctx {
    const mislas_dataset *d;
} sweep_ctx;

static int whole_method(void *ctx)
{
    const sweep_ctx *c = ctx;
    mislas_model_options mo;
    mislas_model_options_init(&mo);
    mo.arch = MISLAS_RESNET20;
    mo.in_channels = 1;
    mo.height = mo.width = SIDE;
    mo.num_classes = K;
    mislas_model *m = NULL;
    int status = mislas_model_new(&m, &mo);
    mislas_train_stage1_options o1;
    stage1_defaults(&o1, 1);
    o1.batch_size = 128;
    mislas_train_stage2_options o2;
    stage2_defaults(&o2, MISLAS_STAGE2_MISLAS, 1);
    o2.epoch_steps = 1;
    mislas_eval_report r;
    mislas_eval_report_init(&r);
    if (status == MISLAS_OK)
        status = mislas_train_stage1(m, c->d, &o1);
    if (status == MISLAS_OK)
        status = mislas_train_stage2(m, c->d, &o2);
    if (status == MISLAS_OK)
        status = mislas_eval_run(m, c->d, NULL, NULL, NULL, &r);
    mislas_model_free(m);
    return status;
}

START_TEST(allocation_failures_leave_nothing_behind)
{
    mislas_dataset *d = make_dataset(TRAIN_COUNTS);
    sweep_ctx c = { d };
    ck_assert_status(mislas_set_num_threads(1), MISLAS_OK);
    long allocations = test_allocation_sweep(whole_method, &c);
    ck_assert_int_gt(allocations, 10);
    mislas_set_num_threads(0);
    mislas_dataset_free(d);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("train");
    TCase *tc = tcase_create("train");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, stage1_default_milestones_scale_the_reference_schedule);
    tcase_add_test(tc, stage1_accounting_schedule_and_checkpoint);
    tcase_add_test(tc, stage1_learns_the_classes);
    tcase_add_test(tc, stage1_is_deterministic_across_threads);
    tcase_add_test(tc, stage1_resume_is_bit_identical);
    tcase_add_test(tc, stage2_resume_is_bit_identical);
    tcase_add_test(tc, resume_refuses_another_run_or_a_broken_file);
    tcase_add_test(tc, cancelling_stops_cleanly);
    tcase_add_test(tc, lws_changes_only_the_scales);
    tcase_add_test(tc, shifted_bn_moves_only_the_running_statistics);
    tcase_add_test(tc, crt_retrains_the_classifier_alone);
    tcase_add_test(tc, stage2_epoch_length);
    tcase_add_test(tc, evaluate_against_a_closed_form);
    tcase_add_test(tc, eval_logits_are_the_predictions_in_order);
    tcase_add_test(tc, bad_arguments_are_refused);
    tcase_add_test(tc, allocation_failures_leave_nothing_behind);
    tcase_add_test(tc, a_communicator_of_one_rank_gives_the_same_bits);
    tcase_add_test(tc, comm_new_refuses_a_bad_transport);
    suite_add_tcase(s, tc);
    return test_run_suite(s);
}
