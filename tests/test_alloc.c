/* Allocation failures across the whole public API, from one inventory.
 *
 * Every function the public headers declare is in the table below, in one
 * of two kinds, and the inventory test reads the headers to prove that none
 * is missing:
 *
 *   - NO_ALLOC: a probe calls it with the allocator failing at the very first
 *     allocation; it must succeed without allocating at all.
 *   - SWEPT: an allocation-failure sweep fails the k-th allocation for every
 *     k until the call succeeds. Each failing attempt must return
 *     MISLAS_ERR_OUT_OF_MEMORY (a constructor leaving *out NULL), leave no
 *     block alive once its objects are freed, and leave the object it worked
 *     on usable: the same call made again without failures succeeds and, for
 *     the calls that cannot have changed anything before they failed, gives
 *     exactly what a fresh object gives.
 *
 * The fixture's data set, model and files are made with the plain allocator
 * before any sweep. */
#define _GNU_SOURCE
#include "testutil.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum { K = 4, SIDE = 8, N = 4, IMAGE = SIDE * SIDE };
static const int64_t COUNTS[K] = { 24, 10, 6, 4 };
static const float MEAN[1] = { 0.3f }, STD[1] = { 0.25f };

static mislas_dataset *data;        /* the fixture, made once */
static float images[N * IMAGE];
static char dir[64], ck_path[128], idx_images[128], idx_labels[128], cifar_dir[128], stage1_path[128];
static const char *source_dir = ".";

/* ------------------------------------------------------------- digests */

typedef struct digest {
    uint64_t h;
} digest;

static void mix(digest *d, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        d->h = (d->h ^ b[i]) * 1099511628211ULL;
}

static void mix_tensor(digest *d, const mislas_model *m, const char *name)
{
    float v[4096];
    size_t count = 0;
    for (int32_t t = 0; t < mislas_model_num_tensors(m); t++) {
        const char *tn;
        size_t c;
        ck_assert_status(mislas_model_tensor_info(m, t, &tn, &c), MISLAS_OK);
        if (strcmp(tn, name) == 0)
            count = c;
    }
    ck_assert(count > 0 && count <= 4096);
    ck_assert_status(mislas_model_get_tensor(m, name, v, count), MISLAS_OK);
    mix(d, v, count * sizeof v[0]);
}

/* ------------------------------------------------------------ the sweeps */

/* One swept call: `make` builds what it works on (with the plain allocator;
 * NULL for calls that need nothing), `call` makes the call and folds what it
 * produced into a digest, `release` frees what make built. */
typedef struct swept {
    void *(*make)(void);
    int (*call)(void *object, digest *out);
    void (*release)(void *object);
    bool changes_before_failing;    /* a failure may leave partial work (training) */
} swept;

static void *nothing(void) { return NULL; }
static void release_nothing(void *p) { (void)p; }

static long sweep(const swept *s)
{
    digest want = { 14695981039346656037ULL };
    void *o = s->make();
    ck_assert_status(s->call(o, &want), MISLAS_OK);
    s->release(o);
    test_allocator a;
    for (long k = 1; k < 100000; k++) {
        o = s->make();
        digest got = { 14695981039346656037ULL };
        test_allocator_install(&a, k);
        int rc = s->call(o, &got);
        long calls = a.calls;
        ck_assert_status(mislas_set_allocator(NULL, NULL, NULL), MISLAS_OK);
        if (rc == MISLAS_OK) {
            ck_assert_msg(calls < k, "allocation %ld failed yet the call succeeded", k);
            ck_assert_msg(got.h == want.h, "the result differs under a counting allocator");
        } else {
            ck_assert_msg(rc == MISLAS_ERR_OUT_OF_MEMORY, "failing allocation %ld gave status %d (%s): %s", k, rc,
                    mislas_status_string(rc), mislas_last_error());
            /* the object still works, and (unless the call may have done part
             * of its work) as if the failed call had never been made */
            digest again = { 14695981039346656037ULL };
            ck_assert_msg(s->call(o, &again) == MISLAS_OK, "after failing allocation %ld the call fails: %s", k,
                    mislas_last_error());
            if (!s->changes_before_failing)
                ck_assert_msg(again.h == want.h, "after failing allocation %ld the object is not as it was", k);
        }
        s->release(o);
        ck_assert_msg(a.live == 0, "failing allocation %ld: %ld blocks still alive", k, a.live);
        if (rc == MISLAS_OK)
            return calls;
    }
    ck_abort_msg("the call never succeeded");
    return -1;
}

/* ------------------------------------------------------------ what they act on */

static mislas_model *plain_model(uint64_t seed)
{
    return test_new_model(MISLAS_RESNET20, 1, SIDE, SIDE, K, seed);
}

static void *make_model(void) { return plain_model(1); }
static void release_model(void *m) { mislas_model_free(m); }

/* a model after a training-mode forward pass (what backward and features need) */
static void *make_forwarded(void)
{
    mislas_model *m = plain_model(1);
    float z[N * K];
    ck_assert_status(mislas_model_forward(m, images, N, z), MISLAS_OK);
    return m;
}

typedef struct trained {
    mislas_model *m;
    mislas_optimizer *o;
} trained;

static void *make_with_gradient(void)
{
    trained *t = malloc(sizeof *t);
    t->m = make_forwarded();
    float g[N * K] = { 0.25f, -0.25f, 0, 0, 0, 0.5f, -0.5f };
    ck_assert_status(mislas_model_backward(t->m, g), MISLAS_OK);
    ck_assert_status(mislas_optimizer_new_sgd(&t->o, t->m, NULL), MISLAS_OK);
    return t;
}

static void release_trained(void *p)
{
    trained *t = p;
    mislas_optimizer_free(t->o);
    mislas_model_free(t->m);
    free(t);
}

static void *make_las(void)
{
    mislas_loss *l = NULL;
    ck_assert_status(mislas_loss_new_label_aware_smoothing(&l, COUNTS, K, NULL), MISLAS_OK);
    return l;
}

static void release_loss(void *l) { mislas_loss_free(l); }

static void *make_sampler(void)
{
    mislas_sampler_options o;
    mislas_sampler_options_init(&o);
    o.kind = MISLAS_SAMPLER_CLASS_AWARE;
    o.seed = 3;
    mislas_sampler *s = NULL;
    ck_assert_status(mislas_sampler_new(&s, mislas_dataset_labels(data), mislas_dataset_size(data), K, &o),
            MISLAS_OK);
    return s;
}


static void *make_calib(void)
{
    mislas_calib *c = NULL;
    ck_assert_status(mislas_calib_new(&c, K, 15), MISLAS_OK);
    return c;
}

static void release_calib(void *c) { mislas_calib_free(c); }

static const float LOGITS[N * K] = { 2, 0, -1, 0.5f, 0.1f, 1.5f, 0, -2, -1, 0, 3, 1, 0.2f, 0.3f, 0.1f, 1 };
static const int32_t TARGETS[N] = { 0, 1, 3, 3 }, OTHER_TARGETS[N] = { 1, 1, 2, 0 };

/* ------------------------------------------------------------ the calls */

static int call_model_new(void *o, digest *d)
{
    (void)o;
    mislas_model_options opts;
    mislas_model_options_init(&opts);
    opts.in_channels = 1;
    opts.height = opts.width = SIDE;
    opts.num_classes = K;
    opts.seed = 5;
    mislas_model *m = (mislas_model *)&opts;    /* not NULL: a failure must set it */
    int rc = mislas_model_new(&m, &opts);
    if (rc != MISLAS_OK) {
        ck_assert_ptr_null(m);
        return rc;
    }
    mix_tensor(d, m, "fc.weight");
    mislas_model_free(m);
    return rc;
}

static int call_forward(void *o, digest *d)
{
    float z[N * K];
    int rc = mislas_model_forward(o, images, N, z);
    if (rc == MISLAS_OK)
        mix(d, z, sizeof z);
    return rc;
}

static int call_predict(void *o, digest *d)
{
    float z[N * K];
    int rc = mislas_model_predict(o, images, N, z);
    if (rc == MISLAS_OK)
        mix(d, z, sizeof z);
    return rc;
}

static int call_set_class_counts(void *o, digest *d)
{
    int rc = mislas_model_set_class_counts(o, COUNTS, K);
    if (rc == MISLAS_OK) {
        int64_t c[K];
        ck_assert_status(mislas_model_class_counts(o, c, K), MISLAS_OK);
        mix(d, c, sizeof c);
    }
    return rc;
}

static int call_new_sgd(void *o, digest *d)
{
    trained *t = o;
    mislas_optimizer *opt = (mislas_optimizer *)t;
    int rc = mislas_optimizer_new_sgd(&opt, t->m, NULL);
    if (rc != MISLAS_OK) {
        ck_assert_ptr_null(opt);
        return rc;
    }
    size_t n = mislas_optimizer_group_size(opt, MISLAS_GROUP_BACKBONE);
    mix(d, &n, sizeof n);
    mislas_optimizer_free(opt);
    return rc;
}

static int call_loss_new(void *o, digest *d)
{
    (void)o;
    mislas_loss *l[3] = { NULL, NULL, NULL };
    int rc = MISLAS_OK;
    for (int i = 0; i < 3 && rc == MISLAS_OK; i++) {
        l[i] = (mislas_loss *)d;    /* not NULL: a failure must set it */
        rc = i == 0 ? mislas_loss_new_cross_entropy(&l[i], K)
                : i == 1 ? mislas_loss_new_label_smoothing(&l[i], K, 0.1f)
                : mislas_loss_new_label_aware_smoothing(&l[i], COUNTS, K, NULL);
        if (rc != MISLAS_OK)
            ck_assert_ptr_null(l[i]);
    }
    for (int i = 0; i < 3; i++) {
        if (l[i] == NULL)
            continue;
        float eps[K];
        ck_assert_status(mislas_loss_class_smoothing(l[i], eps), MISLAS_OK);
        mix(d, eps, sizeof eps);
        mislas_loss_free(l[i]);
    }
    return rc;
}

static int call_loss(void *o, digest *d)
{
    float loss, grad[N * K];
    int rc = mislas_loss_compute(o, LOGITS, TARGETS, N, &loss, grad);
    if (rc == MISLAS_OK)
        rc = mislas_loss_compute_mixup(o, LOGITS, TARGETS, OTHER_TARGETS, 0.3f, N, &loss, grad);
    if (rc == MISLAS_OK) {
        mix(d, &loss, sizeof loss);
        mix(d, grad, sizeof grad);
    }
    return rc;
}

static int call_lt_loss_new(void *o, digest *d)
{
    (void)o;
    mislas_loss *l[3] = { NULL, NULL, NULL };
    int rc = MISLAS_OK;
    for (int i = 0; i < 3 && rc == MISLAS_OK; i++) {
        l[i] = (mislas_loss *)d;    /* not NULL: a failure must set it */
        rc = i == 0 ? mislas_loss_new_focal(&l[i], K, 2.0f)
                : i == 1 ? mislas_loss_new_ldam(&l[i], COUNTS, K, NULL)
                : mislas_loss_new_logit_adjusted(&l[i], COUNTS, K, 1.0f);
        if (rc != MISLAS_OK)
            ck_assert_ptr_null(l[i]);
    }
    for (int i = 0; i < 3; i++) {
        float loss;
        if (rc == MISLAS_OK && (rc = mislas_loss_compute(l[i], LOGITS, TARGETS, N, &loss, NULL)) == MISLAS_OK)
            mix(d, &loss, sizeof loss);
        mislas_loss_free(l[i]);
    }
    return rc;
}

static int call_weighted_loss(void *o, digest *d)
{
    float w[K];
    ck_assert_status(mislas_loss_class_balanced_weights(w, COUNTS, K, 0.9), MISLAS_OK);
    int rc = mislas_loss_set_class_weights(o, w, MISLAS_REDUCE_WEIGHTED_MEAN);
    return rc == MISLAS_OK ? call_loss(o, d) : rc;
}

static int call_recalibration(void *o, digest *d)
{
    (void)o;
    double ece, cw, t;
    float scale[K], bias[K];
    int rc = mislas_calib_adaptive_ece(&ece, LOGITS, TARGETS, N, K, 3);
    if (rc == MISLAS_OK)
        rc = mislas_calib_classwise_ece(&cw, LOGITS, TARGETS, N, K, 3);
    if (rc == MISLAS_OK)
        rc = mislas_calib_fit_temperature(&t, LOGITS, TARGETS, N, K, NULL);
    if (rc == MISLAS_OK)
        rc = mislas_calib_fit_vector_scaling(scale, bias, LOGITS, TARGETS, N, K, NULL);
    if (rc == MISLAS_OK) {
        mix(d, &ece, sizeof ece);
        mix(d, &cw, sizeof cw);
        mix(d, &t, sizeof t);
        mix(d, scale, sizeof scale);
        mix(d, bias, sizeof bias);
    }
    return rc;
}

/* Each post-hoc fix alone, so that a failure must leave the model untouched. */
static int posthoc_digest(int rc, void *o, digest *d)
{
    mix_tensor(d, o, "fc.weight");
    mix_tensor(d, o, "fc.bias");
    mix_tensor(d, o, "learned_norm");
    return rc;
}

static int call_scale_logits(void *o, digest *d)
{
    const float scale[K] = { 0.5f, 0.75f, 1.0f, 2.0f }, bias[K] = { 0.1f, 0.2f, -0.3f, 0.0f };
    return posthoc_digest(mislas_model_scale_logits(o, scale, bias), o, d);
}

static int call_tau_normalize(void *o, digest *d)
{
    return posthoc_digest(mislas_model_tau_normalize(o, 0.5f), o, d);
}

static int call_adjust_by_prior(void *o, digest *d)
{
    return posthoc_digest(mislas_model_adjust_logits_by_prior(o, COUNTS, K, 1.0f), o, d);
}

static int call_sampler_new(void *o, digest *d)
{
    (void)o;
    mislas_sampler *s = (mislas_sampler *)d;
    int rc = mislas_sampler_new(&s, mislas_dataset_labels(data), mislas_dataset_size(data), K, NULL);
    if (rc != MISLAS_OK) {
        ck_assert_ptr_null(s);
        return rc;
    }
    size_t len = mislas_sampler_epoch_length(s);
    mix(d, &len, sizeof len);
    mislas_sampler_free(s);
    return rc;
}

/* A transport that moves nothing: mislas_comm_new only checks and keeps it. */
static int comm_moves_nothing(void *impl) { (void)impl; return MISLAS_OK; }
static int comm_gathers_nothing(void *impl, void *buffer, const size_t *offsets)
{
    (void)impl; (void)buffer; (void)offsets;
    return MISLAS_OK;
}
static int comm_passes_nothing(void *impl, void *buffer, size_t bytes, int32_t tag)
{
    (void)impl; (void)buffer; (void)bytes; (void)tag;
    return MISLAS_OK;
}
static int comm_sends_nothing(void *impl, const void *buffer, size_t bytes, int32_t tag)
{
    (void)impl; (void)buffer; (void)bytes; (void)tag;
    return MISLAS_OK;
}

static int call_comm_new(void *o, digest *d)
{
    (void)o;
    mislas_comm_ops ops = {.struct_size = sizeof ops, .allgather = comm_gathers_nothing,
                           .send_next = comm_sends_nothing, .receive_previous = comm_passes_nothing,
                           .broadcast_start = comm_passes_nothing, .wait = comm_moves_nothing};
    mislas_comm *c = (mislas_comm *)d;
    int rc = mislas_comm_new(&c, 2, 3, &ops, NULL);
    if (rc != MISLAS_OK) {
        ck_assert_ptr_null(c);
        return rc;
    }
    int32_t where[2] = {mislas_comm_rank(c), mislas_comm_size(c)};
    mix(d, where, sizeof where);
    mislas_comm_free(c);
    return rc;
}

static int call_calib_new(void *o, digest *d)
{
    (void)o;
    mislas_calib *c = (mislas_calib *)d;
    int rc = mislas_calib_new(&c, K, 10);
    if (rc != MISLAS_OK) {
        ck_assert_ptr_null(c);
        return rc;
    }
    int32_t b = mislas_calib_num_bins(c);
    mix(d, &b, sizeof b);
    mislas_calib_free(c);
    return rc;
}

static int call_calib(void *o, digest *d)
{
    float probs[N * K];
    for (int i = 0; i < N * K; i++)
        probs[i] = 0.25f;
    const double conf[N] = { 0.9, 0.6, 0.3, 0.99 };
    mislas_calib_reset(o);
    int rc = mislas_calib_add_logits(o, LOGITS, TARGETS, N);
    if (rc == MISLAS_OK)
        rc = mislas_calib_add_probs(o, probs, TARGETS, N);
    if (rc == MISLAS_OK)
        rc = mislas_calib_add_confidences(o, conf, OTHER_TARGETS, TARGETS, N);
    mislas_calib *other = NULL;
    if (rc == MISLAS_OK)
        rc = mislas_calib_new(&other, K, 15);
    if (rc == MISLAS_OK)
        rc = mislas_calib_add_logits(other, LOGITS, OTHER_TARGETS, N);
    if (rc == MISLAS_OK)
        rc = mislas_calib_merge(o, other);
    mislas_calib_free(other);
    if (rc == MISLAS_OK) {
        mislas_calib_summary s;
        mislas_calib_summary_init(&s);
        ck_assert_status(mislas_calib_summarize(o, &s), MISLAS_OK);
        mix(d, &s.ece, sizeof s.ece);
        mix(d, &s.count, sizeof s.count);
    }
    return rc;
}

static int call_from_memory(void *o, digest *d)
{
    (void)o;
    uint8_t px[3 * IMAGE];
    int32_t labels[3] = { 0, 2, 1 };
    for (int i = 0; i < 3 * IMAGE; i++)
        px[i] = (uint8_t)(i * 7);
    mislas_dataset *x = (mislas_dataset *)d;
    int rc = mislas_dataset_from_memory(&x, px, labels, 3, 1, SIDE, SIDE, K, MISLAS_COPY);
    if (rc != MISLAS_OK) {
        ck_assert_ptr_null(x);
        return rc;
    }
    mix(d, mislas_dataset_image(x, 1), IMAGE);
    mislas_dataset_free(x);
    return rc;
}

static int call_subsets(void *o, digest *d)
{
    (void)o;
    const size_t pick[3] = { 5, 0, 40 };
    const int64_t counts[K] = { 3, 2, 1, 1 };
    mislas_dataset *a = NULL, *b = NULL, *c = NULL;
    int rc = mislas_dataset_subset(&a, data, pick, 3);
    if (rc == MISLAS_OK)
        rc = mislas_dataset_subset_by_counts(&b, data, counts, 4);
    if (rc == MISLAS_OK)
        rc = mislas_dataset_long_tail(&c, data, 0.2, MISLAS_IMBALANCE_EXP, 4);
    if (rc == MISLAS_OK) {
        size_t sizes[3] = { mislas_dataset_size(a), mislas_dataset_size(b), mislas_dataset_size(c) };
        mix(d, sizes, sizeof sizes);
        mix(d, mislas_dataset_labels(b), mislas_dataset_size(b) * sizeof(int32_t));
    } else {
        ck_assert(c == NULL);
    }
    mislas_dataset_free(a);
    mislas_dataset_free(b);
    mislas_dataset_free(c);
    return rc;
}

/* A 12 x 10 JPEG (PIL, quality 80) for the list-file sweeps. */
static const unsigned char JPEG[] = {
    0xff, 0xd8, 0xff, 0xe0, 0x00, 0x10, 0x4a, 0x46, 0x49, 0x46, 0x00, 0x01, 0x01, 0x00, 0x00, 0x01,
    0x00, 0x01, 0x00, 0x00, 0xff, 0xdb, 0x00, 0x43, 0x00, 0x06, 0x04, 0x05, 0x06, 0x05, 0x04, 0x06,
    0x06, 0x05, 0x06, 0x07, 0x07, 0x06, 0x08, 0x0a, 0x10, 0x0a, 0x0a, 0x09, 0x09, 0x0a, 0x14, 0x0e,
    0x0f, 0x0c, 0x10, 0x17, 0x14, 0x18, 0x18, 0x17, 0x14, 0x16, 0x16, 0x1a, 0x1d, 0x25, 0x1f, 0x1a,
    0x1b, 0x23, 0x1c, 0x16, 0x16, 0x20, 0x2c, 0x20, 0x23, 0x26, 0x27, 0x29, 0x2a, 0x29, 0x19, 0x1f,
    0x2d, 0x30, 0x2d, 0x28, 0x30, 0x25, 0x28, 0x29, 0x28, 0xff, 0xdb, 0x00, 0x43, 0x01, 0x07, 0x07,
    0x07, 0x0a, 0x08, 0x0a, 0x13, 0x0a, 0x0a, 0x13, 0x28, 0x1a, 0x16, 0x1a, 0x28, 0x28, 0x28, 0x28,
    0x28, 0x28, 0x28, 0x28, 0x28, 0x28, 0x28, 0x28, 0x28, 0x28, 0x28, 0x28, 0x28, 0x28, 0x28, 0x28,
    0x28, 0x28, 0x28, 0x28, 0x28, 0x28, 0x28, 0x28, 0x28, 0x28, 0x28, 0x28, 0x28, 0x28, 0x28, 0x28,
    0x28, 0x28, 0x28, 0x28, 0x28, 0x28, 0x28, 0x28, 0x28, 0x28, 0x28, 0x28, 0x28, 0x28, 0xff, 0xc0,
    0x00, 0x11, 0x08, 0x00, 0x0a, 0x00, 0x0c, 0x03, 0x01, 0x22, 0x00, 0x02, 0x11, 0x01, 0x03, 0x11,
    0x01, 0xff, 0xc4, 0x00, 0x1f, 0x00, 0x00, 0x01, 0x05, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09,
    0x0a, 0x0b, 0xff, 0xc4, 0x00, 0xb5, 0x10, 0x00, 0x02, 0x01, 0x03, 0x03, 0x02, 0x04, 0x03, 0x05,
    0x05, 0x04, 0x04, 0x00, 0x00, 0x01, 0x7d, 0x01, 0x02, 0x03, 0x00, 0x04, 0x11, 0x05, 0x12, 0x21,
    0x31, 0x41, 0x06, 0x13, 0x51, 0x61, 0x07, 0x22, 0x71, 0x14, 0x32, 0x81, 0x91, 0xa1, 0x08, 0x23,
    0x42, 0xb1, 0xc1, 0x15, 0x52, 0xd1, 0xf0, 0x24, 0x33, 0x62, 0x72, 0x82, 0x09, 0x0a, 0x16, 0x17,
    0x18, 0x19, 0x1a, 0x25, 0x26, 0x27, 0x28, 0x29, 0x2a, 0x34, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3a,
    0x43, 0x44, 0x45, 0x46, 0x47, 0x48, 0x49, 0x4a, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59, 0x5a,
    0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6a, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78, 0x79, 0x7a,
    0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8a, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99,
    0x9a, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8, 0xa9, 0xaa, 0xb2, 0xb3, 0xb4, 0xb5, 0xb6, 0xb7,
    0xb8, 0xb9, 0xba, 0xc2, 0xc3, 0xc4, 0xc5, 0xc6, 0xc7, 0xc8, 0xc9, 0xca, 0xd2, 0xd3, 0xd4, 0xd5,
    0xd6, 0xd7, 0xd8, 0xd9, 0xda, 0xe1, 0xe2, 0xe3, 0xe4, 0xe5, 0xe6, 0xe7, 0xe8, 0xe9, 0xea, 0xf1,
    0xf2, 0xf3, 0xf4, 0xf5, 0xf6, 0xf7, 0xf8, 0xf9, 0xfa, 0xff, 0xc4, 0x00, 0x1f, 0x01, 0x00, 0x03,
    0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01,
    0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0xff, 0xc4, 0x00, 0xb5, 0x11, 0x00,
    0x02, 0x01, 0x02, 0x04, 0x04, 0x03, 0x04, 0x07, 0x05, 0x04, 0x04, 0x00, 0x01, 0x02, 0x77, 0x00,
    0x01, 0x02, 0x03, 0x11, 0x04, 0x05, 0x21, 0x31, 0x06, 0x12, 0x41, 0x51, 0x07, 0x61, 0x71, 0x13,
    0x22, 0x32, 0x81, 0x08, 0x14, 0x42, 0x91, 0xa1, 0xb1, 0xc1, 0x09, 0x23, 0x33, 0x52, 0xf0, 0x15,
    0x62, 0x72, 0xd1, 0x0a, 0x16, 0x24, 0x34, 0xe1, 0x25, 0xf1, 0x17, 0x18, 0x19, 0x1a, 0x26, 0x27,
    0x28, 0x29, 0x2a, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3a, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48, 0x49,
    0x4a, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59, 0x5a, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69,
    0x6a, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78, 0x79, 0x7a, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88,
    0x89, 0x8a, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9a, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6,
    0xa7, 0xa8, 0xa9, 0xaa, 0xb2, 0xb3, 0xb4, 0xb5, 0xb6, 0xb7, 0xb8, 0xb9, 0xba, 0xc2, 0xc3, 0xc4,
    0xc5, 0xc6, 0xc7, 0xc8, 0xc9, 0xca, 0xd2, 0xd3, 0xd4, 0xd5, 0xd6, 0xd7, 0xd8, 0xd9, 0xda, 0xe2,
    0xe3, 0xe4, 0xe5, 0xe6, 0xe7, 0xe8, 0xe9, 0xea, 0xf2, 0xf3, 0xf4, 0xf5, 0xf6, 0xf7, 0xf8, 0xf9,
    0xfa, 0xff, 0xda, 0x00, 0x0c, 0x03, 0x01, 0x00, 0x02, 0x11, 0x03, 0x11, 0x00, 0x3f, 0x00, 0xe1,
    0x34, 0x4f, 0x05, 0x7d, 0xdf, 0xdd, 0x7e, 0x95, 0xdb, 0x5a, 0x78, 0x2b, 0xf7, 0x0b, 0xfb, 0xaf,
    0xd2, 0xbb, 0x3d, 0x12, 0x34, 0xf9, 0x7e, 0x45, 0xfc, 0xab, 0xb6, 0xb4, 0x8d, 0x3c, 0x85, 0xf9,
    0x17, 0xf2, 0xaf, 0x17, 0x1d, 0x9d, 0x57, 0xe6, 0x27, 0x85, 0x38, 0x87, 0x13, 0xec, 0xbe, 0x47,
    0xff, 0xd9
};

/* A training list of four entries of that JPEG over two classes, an
 * evaluation list on its class map, a subset and both transforms' batches. */
static int call_list(void *o, digest *d)
{
    (void)o;
    char root[96], train[128], test[128];
    snprintf(root, sizeof root, "%s", dir);
    snprintf(train, sizeof train, "%s/train.txt", dir);
    snprintf(test, sizeof test, "%s/test.txt", dir);
    mislas_dataset_list_options lo;
    mislas_dataset_list_options_init(&lo);
    lo.height = lo.width = 8;
    lo.resize = 9;
    mislas_dataset *a = NULL, *b = NULL, *c = NULL;
    int rc = mislas_dataset_open_list(&a, root, train, NULL, &lo);
    if (rc == MISLAS_OK)
        rc = mislas_dataset_open_list(&b, root, test, a, &lo);
    const size_t pick[2] = { 3, 0 };
    if (rc == MISLAS_OK)
        rc = mislas_dataset_subset(&c, a, pick, 2);
    float x[2 * 3 * 8 * 8], y[2 * 3 * 8 * 8];
    mislas_dataset_batch_options bo;
    mislas_dataset_batch_options_init(&bo);
    if (rc == MISLAS_OK)
        rc = mislas_dataset_batch(b, pick, 2, &bo, 0, x, NULL);
    bo.augment = 1;
    if (rc == MISLAS_OK)
        rc = mislas_dataset_batch(c, pick + 1, 1, &bo, 5, y, NULL);
    if (rc == MISLAS_OK) {
        mix(d, x, sizeof x);
        mix(d, y, 3 * 8 * 8 * sizeof *y);
        mix(d, mislas_dataset_class_map(a), 2 * sizeof(int32_t));
        mix(d, mislas_dataset_labels(b), 4 * sizeof(int32_t));
        mix(d, mislas_dataset_path(c, 0), strlen(mislas_dataset_path(c, 0)));
        size_t skipped = mislas_dataset_files_skipped(a);
        mix(d, &skipped, sizeof skipped);
    }
    mislas_dataset_free(a);
    mislas_dataset_free(b);
    mislas_dataset_free(c);
    return rc;
}

static int call_batch_and_mixup(void *o, digest *d)
{
    (void)o;
    const size_t pick[N] = { 1, 30, 2, 43 };
    mislas_dataset_batch_options opts;
    mislas_dataset_batch_options_init(&opts);
    opts.augment = 1;
    opts.mean = MEAN;
    opts.std = STD;
    float x[N * IMAGE];
    int32_t y[N], yb[N];
    float lambda;
    int rc = mislas_dataset_batch(data, pick, N, &opts, 9, x, y);
    if (rc == MISLAS_OK)
        rc = mislas_mixup(x, yb, &lambda, y, N, IMAGE, 1.0f, 3, 9);
    if (rc == MISLAS_OK) {
        mix(d, x, sizeof x);
        mix(d, yb, sizeof yb);
    }
    return rc;
}

static int call_loaders(void *o, digest *d)
{
    (void)o;
    mislas_dataset *a = (mislas_dataset *)d, *b = (mislas_dataset *)d, *c = (mislas_dataset *)d;
    int rc = mislas_dataset_load_idx(&a, idx_images, idx_labels, K);
    if (rc != MISLAS_OK)
        ck_assert_ptr_null(a);
    if (rc == MISLAS_OK) {
        rc = mislas_dataset_load_cifar(&b, cifar_dir, 10, MISLAS_SPLIT_TEST);
        if (rc != MISLAS_OK)
            ck_assert_ptr_null(b);
    }
    if (rc == MISLAS_OK) {
        rc = mislas_dataset_open(&c, "mnist", dir, MISLAS_SPLIT_TRAIN);
        if (rc != MISLAS_OK)
            ck_assert_ptr_null(c);
    }
    if (rc == MISLAS_OK) {
        size_t sizes[3] = { mislas_dataset_size(a), mislas_dataset_size(b), mislas_dataset_size(c) };
        mix(d, sizes, sizeof sizes);
        mix(d, mislas_dataset_image(b, 1), 3 * 32 * 32);
    }
    if (a != (mislas_dataset *)d)
        mislas_dataset_free(a);
    if (b != (mislas_dataset *)d)
        mislas_dataset_free(b);
    if (c != (mislas_dataset *)d)
        mislas_dataset_free(c);
    return rc;
}

static int call_checkpoints(void *o, digest *d)
{
    trained *t = o;
    int rc = mislas_checkpoint_save(t->m, t->o, ck_path);
    mislas_model *m = (mislas_model *)d;
    mislas_optimizer *opt = (mislas_optimizer *)d;
    if (rc == MISLAS_OK) {
        rc = mislas_checkpoint_load(&m, &opt, ck_path);
        if (rc != MISLAS_OK) {
            ck_assert_ptr_null(m);
            ck_assert_ptr_null(opt);
        }
    } else {
        ck_assert_msg(access(ck_path, F_OK) != 0, "a failed save left a file");
    }
    int32_t stage = -1, done = -1, epochs = -1;
    if (rc == MISLAS_OK)
        rc = mislas_checkpoint_training(&stage, &done, &epochs, stage1_path);
    if (m != (mislas_model *)d && m != NULL) {
        mix_tensor(d, m, "fc.weight");
        int32_t run[3] = { stage, done, epochs };
        mix(d, run, sizeof run);
        mislas_optimizer_free(opt);
        mislas_model_free(m);
    }
    unlink(ck_path);
    return rc;
}

static void stage_options(mislas_train_stage1_options *o1, mislas_train_stage2_options *o2)
{
    mislas_train_stage1_options_init(o1);
    o1->epochs = 1;
    o1->batch_size = 16;
    o1->mean = MEAN;
    o1->std = STD;
    o1->seed = 2;
    mislas_train_stage2_options_init(o2);
    o2->epochs = 1;
    o2->batch_size = 16;
    o2->mean = MEAN;
    o2->std = STD;
    o2->seed = 3;
}

static void *make_stage1_model(void)
{
    mislas_model *m = NULL;
    ck_assert_status(mislas_checkpoint_load(&m, NULL, stage1_path), MISLAS_OK);
    return m;
}

/* With a checkpoint after the (only) epoch: a failure there comes after the
 * weights moved, so a retry is only required to work. */
static int call_stage1(void *o, digest *d)
{
    mislas_train_stage1_options o1;
    mislas_train_stage2_options o2;
    stage_options(&o1, &o2);
    o1.checkpoint_path = ck_path;
    int rc = mislas_train_stage1(o, data, &o1);
    unlink(ck_path);
    if (rc == MISLAS_OK)
        mix_tensor(d, o, "fc.weight");
    return rc;
}

/* Stage 2 allocates in its steps too (batch and loss buffers), so a failure
 * may come after the classifier moved: a retry is only required to work. */
static int call_stage2(void *o, digest *d)
{
    mislas_train_stage1_options o1;
    mislas_train_stage2_options o2;
    stage_options(&o1, &o2);
    int rc = mislas_train_stage2(o, data, &o2);
    if (rc == MISLAS_OK) {
        float s[K];
        ck_assert_status(mislas_model_classifier_scales(o, s), MISLAS_OK);
        mix(d, s, sizeof s);
        mix_tensor(d, o, "fc.weight");
    }
    return rc;
}

static int call_evaluate(void *o, digest *d)
{
    mislas_eval_report r;
    mislas_eval_report_init(&r);
    double per_class[K];
    mislas_calib *c = NULL;
    int rc = mislas_calib_new(&c, K, 15);
    if (rc == MISLAS_OK)
        rc = mislas_eval_run(o, data, NULL, c, per_class, &r);
    mislas_calib_free(c);
    if (rc == MISLAS_OK) {
        mix(d, &r.top1, sizeof r.top1);
        mix(d, &r.ece, sizeof r.ece);
        mix(d, per_class, sizeof per_class);
    }
    return rc;
}

static int call_eval_logits(void *o, digest *d)
{
    size_t n = mislas_dataset_size(data);
    float *logits = malloc(n * K * sizeof *logits);
    ck_assert_ptr_nonnull(logits);
    int rc = mislas_eval_logits(o, data, NULL, logits);
    if (rc == MISLAS_OK)
        mix(d, logits, n * K * sizeof *logits);
    free(logits);
    return rc;
}

/* ------------------------------------------------------------ no-alloc probes */

/* Every call here must succeed with the first allocation failing. */
static void probe_no_alloc(void)
{
    mislas_model *m = make_forwarded();
    ck_assert_status(mislas_model_set_class_counts(m, COUNTS, K), MISLAS_OK);
    trained *t = make_with_gradient();
    mislas_loss *l = make_las();
    mislas_sampler *s = make_sampler();
    mislas_calib *c = make_calib();
    ck_assert_status(mislas_calib_add_logits(c, LOGITS, TARGETS, N), MISLAS_OK);
    mislas_model *spare = plain_model(2);
    mislas_dataset *spare_data = NULL;
    ck_assert_status(mislas_dataset_subset(&spare_data, data, (size_t[]){ 1, 2 }, 2), MISLAS_OK);
    mislas_loss *spare_loss = make_las();
    mislas_sampler *spare_sampler = make_sampler();
    mislas_calib *spare_calib = make_calib();
    mislas_optimizer *spare_opt = NULL;
    ck_assert_status(mislas_optimizer_new_sgd(&spare_opt, spare, NULL), MISLAS_OK);

    test_allocator a;
    test_allocator_install(&a, 1);
    /* common.h, version, errors */
    ck_assert_ptr_nonnull(mislas_status_string(MISLAS_ERR_IO));
    ck_assert_ptr_nonnull(mislas_last_error());
    ck_assert_ptr_nonnull(mislas_version());
    ck_assert_ptr_nonnull(mislas_blas_kernels());
    ck_assert_status(mislas_set_num_threads(2), MISLAS_OK);    /* the pool's threads are not library memory */
    ck_assert_int_eq(mislas_num_threads(), 2);
    ck_assert_status(mislas_set_num_threads(1), MISLAS_OK);
    /* options */
    mislas_model_options mo;
    mislas_model_options_init(&mo);
    mislas_optimizer_sgd_options so;
    mislas_optimizer_sgd_options_init(&so);
    mislas_sampler_options sa;
    mislas_sampler_options_init(&sa);
    mislas_dataset_batch_options bo;
    mislas_dataset_batch_options_init(&bo);
    mislas_las_options lo;
    mislas_las_options_init(&lo);
    mislas_train_stage1_options s1;
    mislas_train_stage1_options_init(&s1);
    mislas_train_stage2_options s2;
    mislas_train_stage2_options_init(&s2);
    mislas_eval_options eo;
    mislas_eval_options_init(&eo);
    mislas_eval_report er;
    mislas_eval_report_init(&er);
    mislas_calib_summary cs;
    mislas_calib_summary_init(&cs);
    mislas_ldam_options ldo;
    mislas_ldam_options_init(&ldo);
    mislas_calib_fit_options fo;
    mislas_calib_fit_options_init(&fo);
    /* long tails and schedules */
    int64_t counts[K];
    mislas_shot shots[K];
    ck_assert_status(mislas_long_tail_counts(counts, K, 100, 0.1, MISLAS_IMBALANCE_EXP), MISLAS_OK);
    ck_assert_status(mislas_long_tail_shots(shots, counts, K), MISLAS_OK);
    int32_t old_to_new[K], new_to_old[K];
    ck_assert_status(mislas_long_tail_class_map(old_to_new, new_to_old, COUNTS, K), MISLAS_OK);
    ck_assert_status(mislas_long_tail_class_map(old_to_new, NULL, COUNTS, K), MISLAS_OK);
    const int32_t milestones[2] = { 3, 5 };
    ck_assert(mislas_schedule_multistep(0.1, 4, 1, milestones, 2, 0.1) > 0);
    ck_assert(mislas_schedule_cosine(0.1, 2, 10) > 0);
    int32_t default_milestones[MISLAS_TRAIN_STAGE1_MILESTONES_MAX], num_default_milestones;
    ck_assert_status(mislas_train_stage1_milestones(default_milestones, &num_default_milestones, 200), MISLAS_OK);
    /* data sets */
    int32_t ch, h, w;
    ck_assert_int_eq((int)mislas_dataset_size(data), 44);
    ck_assert_int_eq(mislas_dataset_num_classes(data), K);
    ck_assert_status(mislas_dataset_shape(data, &ch, &h, &w), MISLAS_OK);
    ck_assert_ptr_nonnull(mislas_dataset_labels(data));
    ck_assert_ptr_nonnull(mislas_dataset_image(data, 3));
    ck_assert_status(mislas_dataset_class_counts(data, counts), MISLAS_OK);
    /* losses */
    float eps[K];
    ck_assert_status(mislas_loss_class_smoothing(l, eps), MISLAS_OK);
    ck_assert_int_eq(mislas_loss_num_classes(l), K);
    float weights[K];
    ck_assert_status(mislas_loss_class_balanced_weights(weights, COUNTS, K, 0.99), MISLAS_OK);
    ck_assert_status(mislas_loss_drw_weights(weights, COUNTS, K, 0.99, 3, 2), MISLAS_OK);
    /* models */
    ck_assert_status(mislas_model_get_options(m, &mo), MISLAS_OK);
    ck_assert_int_eq(mislas_model_num_classes(m), K);
    ck_assert_int_eq(mislas_model_feature_dim(m), 64);
    ck_assert(mislas_model_num_parameters(m) > 0);
    ck_assert_status(mislas_model_set_mode(m, MISLAS_MODE_EVAL), MISLAS_OK);
    ck_assert_int_eq(mislas_model_mode(m), MISLAS_MODE_EVAL);
    ck_assert_status(mislas_model_set_mode(m, MISLAS_MODE_TRAIN), MISLAS_OK);
    ck_assert_int_eq(mislas_model_backbone_frozen(m), 0);
    ck_assert_int_eq(mislas_model_head(m), MISLAS_HEAD_LINEAR);
    ck_assert_status(mislas_model_freeze_backbone(m, 1), MISLAS_OK);
    ck_assert_int_eq(mislas_model_backbone_frozen(m), 1);
    ck_assert_status(mislas_model_freeze_backbone(m, 0), MISLAS_OK);
    float z[N * K], norms[K], scales[K], mean[16], var[16], v[K * 64];
    ck_assert_status(mislas_model_forward(m, images, N, z), MISLAS_OK);      /* its buffers exist */
    ck_assert_status(mislas_model_backward(m, z), MISLAS_OK);
    float f[N * 64];
    ck_assert_status(mislas_model_features(m, f, N), MISLAS_OK);
    ck_assert_status(mislas_model_classifier_norms(m, norms), MISLAS_OK);
    ck_assert_status(mislas_model_classifier_scales(m, scales), MISLAS_OK);
    ck_assert_int_gt(mislas_model_num_bn(m), 0);
    ck_assert_int_eq(mislas_model_bn_channels(m, 0), 16);
    ck_assert_status(mislas_model_bn_running_stats(m, 0, mean, var, 16), MISLAS_OK);
    const char *name;
    size_t count;
    ck_assert_int_gt(mislas_model_num_tensors(m), 0);
    ck_assert_status(mislas_model_tensor_info(m, 0, &name, &count), MISLAS_OK);
    ck_assert_status(mislas_model_get_tensor(m, "fc.weight", v, K * 64), MISLAS_OK);
    ck_assert_status(mislas_model_set_tensor(m, "fc.weight", v, K * 64), MISLAS_OK);
    ck_assert_status(mislas_model_get_gradient(t->m, "fc.weight", v, K * 64), MISLAS_OK);
    ck_assert_status(mislas_model_class_counts(m, counts, K), MISLAS_OK);
    /* communicators */
    ck_assert_int_eq(mislas_comm_rank(NULL), 0);
    ck_assert_int_eq(mislas_comm_size(NULL), 1);
    mislas_comm_free(NULL);
    ck_assert_status(mislas_comm_fail(MISLAS_ERR_IO, "a transport's own failure"), MISLAS_ERR_IO);
    /* optimisers */
    ck_assert_status(mislas_optimizer_set_lr(t->o, 0.05), MISLAS_OK);
    ck_assert(mislas_optimizer_lr(t->o) == 0.05);
    ck_assert(mislas_optimizer_steps(t->o) == 0);
    ck_assert_status(mislas_optimizer_step(t->o), MISLAS_OK);
    ck_assert(mislas_optimizer_steps(t->o) == 1);
    ck_assert(mislas_optimizer_group_size(t->o, MISLAS_GROUP_BACKBONE) > 0);
    ck_assert(mislas_optimizer_group_lr(t->o, MISLAS_GROUP_CLASSIFIER) > 0);
    /* samplers */
    size_t idx[8];
    ck_assert(mislas_sampler_epoch_length(s) > 0);
    ck_assert_status(mislas_sampler_set_epoch(s, 1), MISLAS_OK);
    ck_assert_int_eq(mislas_sampler_epoch(s), 1);
    ck_assert_status(mislas_sampler_next(s, idx, 8), MISLAS_OK);
    /* calibration */
    mislas_calib_bin bins[15];
    ck_assert_int_eq(mislas_calib_num_bins(c), 15);
    ck_assert_int_eq(mislas_calib_num_classes(c), K);
    ck_assert_status(mislas_calib_summarize(c, &cs), MISLAS_OK);
    ck_assert_status(mislas_calib_bins(c, bins, 15), MISLAS_OK);
    ck_assert_status(mislas_calib_add_logits(c, LOGITS, TARGETS, N), MISLAS_OK);
    ck_assert_status(mislas_calib_merge(c, spare_calib), MISLAS_OK);
    mislas_calib_reset(c);
    ck_assert_status(mislas_model_set_head(m, MISLAS_HEAD_LWS, 3), MISLAS_OK);
    ck_assert_status(mislas_model_predict(m, images, N, z), MISLAS_OK);
    /* releasing */
    mislas_optimizer_free(spare_opt);
    mislas_model_free(spare);
    mislas_dataset_free(spare_data);
    mislas_loss_free(spare_loss);
    mislas_sampler_free(spare_sampler);
    mislas_calib_free(spare_calib);
    /* and the allocator hook itself (put back right after) */
    long calls = a.calls;
    test_allocator_uninstall();
    ck_assert_msg(calls == 0, "the calls that must not allocate made %ld allocations", calls);

    mislas_calib_free(c);
    mislas_sampler_free(s);
    mislas_loss_free(l);
    release_trained(t);
    mislas_model_free(m);
}

/* ------------------------------------------------------------ the inventory */

typedef enum kind { NO_ALLOC, SWEPT } kind;

typedef struct entry {
    const char *name;
    kind kind;
    swept how;          /* SWEPT only */
} entry;

#define PROBED(fn) { #fn, NO_ALLOC, { 0 } }
#define SWEEP(fn, make, call, release, partial) { #fn, SWEPT, { make, call, release, partial } }

static const entry INVENTORY[] = {
    PROBED(mislas_status_string), PROBED(mislas_last_error), PROBED(mislas_version),
    PROBED(mislas_blas_kernels), PROBED(mislas_num_threads), PROBED(mislas_set_allocator),
    PROBED(mislas_set_num_threads),
    PROBED(mislas_model_options_init), PROBED(mislas_optimizer_sgd_options_init), PROBED(mislas_sampler_options_init),
    PROBED(mislas_dataset_batch_options_init), PROBED(mislas_las_options_init), PROBED(mislas_train_stage1_options_init),
    PROBED(mislas_train_stage2_options_init), PROBED(mislas_eval_options_init), PROBED(mislas_eval_report_init),
    PROBED(mislas_calib_summary_init),
    PROBED(mislas_long_tail_counts), PROBED(mislas_long_tail_shots), PROBED(mislas_long_tail_class_map),
    PROBED(mislas_schedule_multistep),
    PROBED(mislas_schedule_cosine), PROBED(mislas_train_stage1_milestones),
    /* data sets */
    SWEEP(mislas_dataset_from_memory, nothing, call_from_memory, release_nothing, false),
    SWEEP(mislas_dataset_load_idx, nothing, call_loaders, release_nothing, false),
    SWEEP(mislas_dataset_load_cifar, nothing, call_loaders, release_nothing, false),
    SWEEP(mislas_dataset_open, nothing, call_loaders, release_nothing, false),
    SWEEP(mislas_dataset_subset, nothing, call_subsets, release_nothing, false),
    SWEEP(mislas_dataset_subset_by_counts, nothing, call_subsets, release_nothing, false),
    SWEEP(mislas_dataset_long_tail, nothing, call_subsets, release_nothing, false),
    SWEEP(mislas_dataset_batch, nothing, call_batch_and_mixup, release_nothing, false),
    SWEEP(mislas_mixup, nothing, call_batch_and_mixup, release_nothing, false),
    SWEEP(mislas_dataset_open_list, nothing, call_list, release_nothing, false),
    PROBED(mislas_dataset_list_options_init), PROBED(mislas_dataset_files_skipped), PROBED(mislas_dataset_class_map),
    PROBED(mislas_dataset_path),
    PROBED(mislas_dataset_free), PROBED(mislas_dataset_size), PROBED(mislas_dataset_num_classes),
    PROBED(mislas_dataset_shape), PROBED(mislas_dataset_labels), PROBED(mislas_dataset_image),
    PROBED(mislas_dataset_class_counts),
    /* losses */
    SWEEP(mislas_loss_new_cross_entropy, nothing, call_loss_new, release_nothing, false),
    SWEEP(mislas_loss_new_label_smoothing, nothing, call_loss_new, release_nothing, false),
    SWEEP(mislas_loss_new_label_aware_smoothing, nothing, call_loss_new, release_nothing, false),
    SWEEP(mislas_loss_compute, make_las, call_loss, release_loss, false),
    SWEEP(mislas_loss_compute_mixup, make_las, call_loss, release_loss, false),
    PROBED(mislas_loss_class_smoothing), PROBED(mislas_loss_num_classes), PROBED(mislas_loss_free),
    SWEEP(mislas_loss_new_focal, nothing, call_lt_loss_new, release_nothing, false),
    SWEEP(mislas_loss_new_ldam, nothing, call_lt_loss_new, release_nothing, false),
    SWEEP(mislas_loss_new_logit_adjusted, nothing, call_lt_loss_new, release_nothing, false),
    SWEEP(mislas_loss_set_class_weights, make_las, call_weighted_loss, release_loss, false),
    PROBED(mislas_ldam_options_init), PROBED(mislas_loss_class_balanced_weights), PROBED(mislas_loss_drw_weights),
    /* models */
    SWEEP(mislas_model_new, nothing, call_model_new, release_nothing, false),
    SWEEP(mislas_model_forward, make_model, call_forward, release_model, false),
    SWEEP(mislas_model_predict, make_model, call_predict, release_model, false),
    PROBED(mislas_model_backward),
    PROBED(mislas_model_features),
    PROBED(mislas_model_set_head),
    SWEEP(mislas_model_set_class_counts, make_model, call_set_class_counts, release_model, false),
    PROBED(mislas_model_freeze_backbone),
    PROBED(mislas_model_free), PROBED(mislas_model_get_options), PROBED(mislas_model_num_classes),
    PROBED(mislas_model_feature_dim), PROBED(mislas_model_num_parameters), PROBED(mislas_model_set_mode),
    PROBED(mislas_model_mode), PROBED(mislas_model_backbone_frozen), PROBED(mislas_model_head),
    PROBED(mislas_model_classifier_norms), PROBED(mislas_model_classifier_scales),
    PROBED(mislas_model_num_bn), PROBED(mislas_model_bn_channels), PROBED(mislas_model_bn_running_stats),
    PROBED(mislas_model_num_tensors), PROBED(mislas_model_tensor_info), PROBED(mislas_model_get_tensor),
    PROBED(mislas_model_get_gradient), PROBED(mislas_model_set_tensor), PROBED(mislas_model_class_counts),
    SWEEP(mislas_model_scale_logits, make_model, call_scale_logits, release_model, false),
    SWEEP(mislas_model_tau_normalize, make_model, call_tau_normalize, release_model, false),
    SWEEP(mislas_model_adjust_logits_by_prior, make_model, call_adjust_by_prior, release_model, false),
    /* optimisers */
    SWEEP(mislas_optimizer_new_sgd, make_with_gradient, call_new_sgd, release_trained, false),
    PROBED(mislas_optimizer_step),
    PROBED(mislas_optimizer_free), PROBED(mislas_optimizer_set_lr), PROBED(mislas_optimizer_lr),
    PROBED(mislas_optimizer_steps), PROBED(mislas_optimizer_group_size), PROBED(mislas_optimizer_group_lr),
    /* samplers */
    SWEEP(mislas_sampler_new, nothing, call_sampler_new, release_nothing, false),
    PROBED(mislas_sampler_set_epoch),
    PROBED(mislas_sampler_next),
    PROBED(mislas_sampler_epoch_length), PROBED(mislas_sampler_epoch), PROBED(mislas_sampler_free),
    /* calibration */
    SWEEP(mislas_calib_new, nothing, call_calib_new, release_nothing, false),
    SWEEP(mislas_calib_add_logits, make_calib, call_calib, release_calib, false),
    SWEEP(mislas_calib_add_probs, make_calib, call_calib, release_calib, false),
    SWEEP(mislas_calib_add_confidences, make_calib, call_calib, release_calib, false),
    SWEEP(mislas_calib_merge, make_calib, call_calib, release_calib, false),
    PROBED(mislas_calib_summarize), PROBED(mislas_calib_bins), PROBED(mislas_calib_num_bins),
    PROBED(mislas_calib_num_classes), PROBED(mislas_calib_reset), PROBED(mislas_calib_free),
    SWEEP(mislas_calib_adaptive_ece, nothing, call_recalibration, release_nothing, false),
    SWEEP(mislas_calib_classwise_ece, nothing, call_recalibration, release_nothing, false),
    SWEEP(mislas_calib_fit_temperature, nothing, call_recalibration, release_nothing, false),
    SWEEP(mislas_calib_fit_vector_scaling, nothing, call_recalibration, release_nothing, false),
    PROBED(mislas_calib_fit_options_init),
    /* checkpoints */
    SWEEP(mislas_checkpoint_save, make_with_gradient, call_checkpoints, release_trained, false),
    SWEEP(mislas_checkpoint_load, make_with_gradient, call_checkpoints, release_trained, false),
    SWEEP(mislas_checkpoint_training, make_with_gradient, call_checkpoints, release_trained, false),
    /* training and evaluation */
    SWEEP(mislas_train_stage1, make_model, call_stage1, release_model, true),
    SWEEP(mislas_train_stage2, make_stage1_model, call_stage2, release_model, true),
    SWEEP(mislas_eval_run, make_stage1_model, call_evaluate, release_model, false),
    SWEEP(mislas_eval_logits, make_stage1_model, call_eval_logits, release_model, false),
    /* communicators */
    SWEEP(mislas_comm_new, nothing, call_comm_new, release_nothing, false),
    PROBED(mislas_comm_free), PROBED(mislas_comm_rank), PROBED(mislas_comm_size), PROBED(mislas_comm_fail),
};
enum { INVENTORY_SIZE = sizeof INVENTORY / sizeof INVENTORY[0] };

static const entry *find(const char *name)
{
    for (size_t i = 0; i < INVENTORY_SIZE; i++)
        if (strcmp(INVENTORY[i].name, name) == 0)
            return &INVENTORY[i];
    return NULL;
}

/* ------------------------------------------------------------ fixture files */

static void put_be32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

/* Five 28 x 28 IDX images and labels (named as MNIST's training files, for
 * mislas_dataset_open), and a CIFAR-10 folder of two images per batch. */
static void write_data_files(void)
{
    enum { n = 5 };
    unsigned char im[16 + n * 784], lb[8 + n];
    put_be32(im, 0x803);
    put_be32(im + 4, n);
    put_be32(im + 8, 28);
    put_be32(im + 12, 28);
    put_be32(lb, 0x801);
    put_be32(lb + 4, n);
    for (int i = 0; i < n * 784; i++)
        im[16 + i] = (unsigned char)(i * 13);
    for (int i = 0; i < n; i++)
        lb[8 + i] = (unsigned char)(i % K);
    snprintf(idx_images, sizeof idx_images, "%s/train-images-idx3-ubyte", dir);
    snprintf(idx_labels, sizeof idx_labels, "%s/train-labels-idx1-ubyte", dir);
    test_write_file(idx_images, im, sizeof im);
    test_write_file(idx_labels, lb, sizeof lb);
    char path[256];
    snprintf(cifar_dir, sizeof cifar_dir, "%s/cifar-10-batches-bin", dir);
    ck_assert_int_eq(mkdir(cifar_dir, 0755), 0);
    static unsigned char rec[2 * 3073];
    for (size_t i = 0; i < sizeof rec; i++)
        rec[i] = (unsigned char)(i * 5);
    rec[0] = 3;
    rec[3073] = 9;
    const char *names[] = { "data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin",
                            "data_batch_5.bin", "test_batch.bin" };
    for (int i = 0; i < 6; i++) {
        snprintf(path, sizeof path, "%s/%s", cifar_dir, names[i]);
        test_write_file(path, rec, sizeof rec);
    }
}

static void setup(void)
{
    test_make_dir(dir, "mislas-alloc");
    snprintf(ck_path, sizeof ck_path, "%s/sweep.ck", dir);
    snprintf(stage1_path, sizeof stage1_path, "%s/stage1.ck", dir);
    data = test_quadrant_dataset(COUNTS, K, SIDE);
    for (int i = 0; i < N * IMAGE; i++)
        images[i] = (float)(2 * test_uniform() - 1);
    write_data_files();
    char path[128];
    snprintf(path, sizeof path, "%s/a.jpg", dir);
    test_write_file(path, JPEG, sizeof JPEG);
    snprintf(path, sizeof path, "%s/train.txt", dir);
    test_write_file(path, "a.jpg 1\na.jpg 0\na.jpg 1\na.jpg 1\n", 32);
    snprintf(path, sizeof path, "%s/test.txt", dir);
    test_write_file(path, "a.jpg 0\na.jpg 1\na.jpg 0\na.jpg 1\n", 32);
    mislas_model *m = plain_model(4);
    mislas_train_stage1_options o1;
    mislas_train_stage2_options o2;
    stage_options(&o1, &o2);
    o1.checkpoint_path = stage1_path;
    ck_assert_status(mislas_train_stage1(m, data, &o1), MISLAS_OK);
    mislas_model_free(m);
    /* one thread: the sweeps count allocations, which must not depend on
     * which worker ran first */
    ck_assert_status(mislas_set_num_threads(1), MISLAS_OK);
}

static void teardown(void)
{
    mislas_dataset_free(data);
    char path[256];
    const char *names[] = { "data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin",
                            "data_batch_5.bin", "test_batch.bin" };
    for (int i = 0; i < 6; i++) {
        snprintf(path, sizeof path, "%s/%s", cifar_dir, names[i]);
        unlink(path);
    }
    rmdir(cifar_dir);
    test_remove_dir(dir);
}

/* ------------------------------------------------------------ the tests */

START_TEST(every_public_function_is_in_the_inventory)
{
    const char *headers[] = { "calib.h", "checkpoint.h", "comm.h", "common.h", "dataset.h", "eval.h", "long_tail.h",
                              "loss.h", "mixup.h", "model.h", "optimizer.h", "progress.h", "sampler.h", "schedule.h",
                              "train.h" };
    int declared = 0;
    bool used[INVENTORY_SIZE] = { false };
    for (size_t i = 0; i < sizeof headers / sizeof headers[0]; i++) {
        char path[512];
        snprintf(path, sizeof path, "%s/../include/mislas/%s", source_dir, headers[i]);
        size_t size;
        char *text = (char *)test_read_file(path, &size);
        ck_assert_msg(text != NULL, "cannot read %s", path);
        for (char *p = text; (p = strstr(p, "MISLAS_API ")) != NULL; p++) {
            char *open = strchr(p, '(');
            char *start = open;
            while (start > p && (start[-1] == '_' || (start[-1] >= 'a' && start[-1] <= 'z') ||
                                 (start[-1] >= '0' && start[-1] <= '9')))
                start--;
            char name[96];
            snprintf(name, sizeof name, "%.*s", (int)(open - start), start);
            if (strncmp(name, "mislas_", 7) != 0)
                continue;
            const entry *e = find(name);
            ck_assert_msg(e != NULL, "%s (%s) is not in the allocation inventory", name, headers[i]);
            used[e - INVENTORY] = true;
            declared++;
        }
        free(text);
    }
    for (size_t i = 0; i < INVENTORY_SIZE; i++)
        ck_assert_msg(used[i], "%s is in the inventory but no header declares it", INVENTORY[i].name);
    ck_assert_int_eq(declared, INVENTORY_SIZE);
}
END_TEST

START_TEST(the_calls_that_need_no_memory_make_no_allocation)
{
    probe_no_alloc();
}
END_TEST

START_TEST(every_allocating_call_survives_every_failing_allocation)
{
    const swept *done[INVENTORY_SIZE];
    size_t n_done = 0;
    for (size_t i = 0; i < INVENTORY_SIZE; i++) {
        if (INVENTORY[i].kind != SWEPT)
            continue;
        /* several functions share one sweep: run each sweep once */
        bool seen = false;
        for (size_t j = 0; j < n_done; j++)
            seen |= done[j]->call == INVENTORY[i].how.call && done[j]->make == INVENTORY[i].how.make;
        if (seen)
            continue;
        long allocations = sweep(&INVENTORY[i].how);
        ck_assert_msg(allocations > 0, "%s's sweep made no allocation: it belongs with the probes",
                INVENTORY[i].name);
        done[n_done++] = &INVENTORY[i].how;
    }
}
END_TEST

int main(int argc, char **argv)
{
    if (argc > 1)
        source_dir = argv[1];
    Suite *s = suite_create("alloc");
    TCase *tc = tcase_create("alloc");
    tcase_add_unchecked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 900);
    tcase_add_test(tc, every_public_function_is_in_the_inventory);
    tcase_add_test(tc, the_calls_that_need_no_memory_make_no_allocation);
    tcase_add_test(tc, every_allocating_call_survives_every_failing_allocation);
    suite_add_tcase(s, tc);
    return test_run_suite(s);
}
