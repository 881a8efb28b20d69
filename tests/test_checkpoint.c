/* Checkpoints through the public API: round trips, resuming bit for bit,
 * the file format read back here as docs/checkpoint.md describes it, files
 * broken in every documented way (written here with zlib), atomic
 * replacement and allocation failures. */
#define _XOPEN_SOURCE 700     /* mkdtemp, lstat, setrlimit */

#include "testutil.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

/* ---------------------------------------------------------------- helpers */

static float *random_floats(size_t count)
{
    float *x = malloc(count * sizeof *x);
    for (size_t i = 0; i < count; i++)
        x[i] = (float)(4.0 * test_uniform() - 2.0);
    return x;
}

/* Forward, cross-entropy, backward, step. */
static void train_step(mislas_model *m, mislas_optimizer *opt, const float *x, size_t n, const int32_t *y)
{
    int32_t k = mislas_model_num_classes(m);
    float *z = malloc(n * (size_t)k * sizeof *z), *g = malloc(n * (size_t)k * sizeof *g), loss;
    mislas_loss *ce = NULL;
    ck_assert_status(mislas_loss_new_cross_entropy(&ce, k), MISLAS_OK);
    ck_assert_status(mislas_model_forward(m, x, n, z), MISLAS_OK);
    ck_assert_status(mislas_loss_compute(ce, z, y, n, &loss, g), MISLAS_OK);
    ck_assert_status(mislas_model_backward(m, g), MISLAS_OK);
    ck_assert_status(mislas_optimizer_step(opt), MISLAS_OK);
    mislas_loss_free(ce);
    free(z);
    free(g);
}

/* Whether two models hold the same tensors, bit for bit. */
static int same_tensors(const mislas_model *a, const mislas_model *b)
{
    int32_t n = mislas_model_num_tensors(a);
    if (n != mislas_model_num_tensors(b))
        return 0;
    for (int32_t t = 0; t < n; t++) {
        const char *na, *nb;
        size_t ca, cb;
        ck_assert_status(mislas_model_tensor_info(a, t, &na, &ca), MISLAS_OK);
        ck_assert_status(mislas_model_tensor_info(b, t, &nb, &cb), MISLAS_OK);
        if (strcmp(na, nb) != 0 || ca != cb)
            return 0;
        float *va = malloc(ca * sizeof *va), *vb = malloc(cb * sizeof *vb);
        ck_assert_status(mislas_model_get_tensor(a, na, va, ca), MISLAS_OK);
        ck_assert_status(mislas_model_get_tensor(b, nb, vb, cb), MISLAS_OK);
        int same = memcmp(va, vb, ca * sizeof *va) == 0;
        free(va);
        free(vb);
        if (!same)
            return 0;
    }
    return 1;
}

static void same_settings(const mislas_model *a, const mislas_model *b)
{
    mislas_model_options oa, ob;
    mislas_model_options_init(&oa);
    mislas_model_options_init(&ob);
    ck_assert_status(mislas_model_get_options(a, &oa), MISLAS_OK);
    ck_assert_status(mislas_model_get_options(b, &ob), MISLAS_OK);
    ck_assert_int_eq(oa.arch, ob.arch);
    ck_assert_int_eq(oa.in_channels, ob.in_channels);
    ck_assert_int_eq(oa.height, ob.height);
    ck_assert_int_eq(oa.width, ob.width);
    ck_assert_int_eq(oa.num_classes, ob.num_classes);
    ck_assert_uint_eq(oa.seed, ob.seed);
    ck_assert_int_eq(mislas_model_head(a), mislas_model_head(b));
    ck_assert_int_eq(mislas_model_mode(a), mislas_model_mode(b));
    ck_assert_int_eq(mislas_model_backbone_frozen(a), mislas_model_backbone_frozen(b));
    ck_assert_uint_eq(mislas_model_num_parameters(a), mislas_model_num_parameters(b));
}

static void same_optimizer(const mislas_optimizer *a, const mislas_optimizer *b)
{
    ck_assert(mislas_optimizer_lr(a) == mislas_optimizer_lr(b));
    ck_assert_uint_eq(mislas_optimizer_steps(a), mislas_optimizer_steps(b));
    for (int g = 0; g < 3; g++) {
        ck_assert_uint_eq(mislas_optimizer_group_size(a, (mislas_param_group)g),
            mislas_optimizer_group_size(b, (mislas_param_group)g));
        ck_assert(mislas_optimizer_group_lr(a, (mislas_param_group)g) == mislas_optimizer_group_lr(b, (mislas_param_group)g));
    }
}

/* A scratch folder per test, removed with everything in it. */
static char scratch[256];


static void remove_tree(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return;
    if (S_ISDIR(st.st_mode)) {
        chmod(path, 0700);
        DIR *d = opendir(path);
        if (d != NULL) {
            struct dirent *e;
            while ((e = readdir(d)) != NULL) {
                if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                    continue;
                char child[512];
                snprintf(child, sizeof child, "%s/%s", path, e->d_name);
                remove_tree(child);
            }
            closedir(d);
        }
        rmdir(path);
    } else {
        unlink(path);
    }
}

static void scratch_teardown(void)
{
    if (scratch[0] != '\0')
        remove_tree(scratch);
    scratch[0] = '\0';
}

static void scratch_setup(void)
{
    static int registered;
    /* a failed check ends the test's process through exit(): clean up there too */
    if (!registered)
        registered = atexit(scratch_teardown) == 0;
    const char *base = getenv("TMPDIR") != NULL ? getenv("TMPDIR") : "/tmp";
    snprintf(scratch, sizeof scratch, "%s/mislas-ckpt-XXXXXX", base);
    ck_assert_ptr_nonnull(mkdtemp(scratch));
}

static const char *in_scratch(const char *name)
{
    static char paths[8][512];
    static int next;
    char *p = paths[next++ % 8];
    snprintf(p, 512, "%s/%s", scratch, name);
    return p;
}

/* The names in a folder, sorted, joined by '/'. */
static void listing(const char *dir, char *out, size_t cap)
{
    char names[64][256];
    int n = 0;
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    struct dirent *e;
    while ((e = readdir(d)) != NULL && n < 64)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            snprintf(names[n++], sizeof names[0], "%s", e->d_name);
    closedir(d);
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++)
            if (strcmp(names[i], names[j]) > 0) {
                char t[256];
                memcpy(t, names[i], sizeof t);
                memcpy(names[i], names[j], sizeof t);
                memcpy(names[j], t, sizeof t);
            }
    out[0] = '\0';
    for (int i = 0; i < n; i++) {
        strncat(out, names[i], cap - strlen(out) - 1);
        strncat(out, "/", cap - strlen(out) - 1);
    }
}

typedef struct bytes {
    uint8_t *data;
    size_t size;
} bytes;

static bytes read_all(const char *path)
{
    bytes b;
    b.data = test_read_file(path, &b.size);
    ck_assert_msg(b.data != NULL, "cannot read %s", path);
    return b;
}

/* A load that must fail with `expect`, handing nothing back, with a
 * message; with `both`, also when the optimiser is not asked for. */
static void expect_load_fails_as(const char *path, int expect, const char *what, int both)
{
    mislas_model *m = (mislas_model *)(uintptr_t)1;
    mislas_optimizer *o = (mislas_optimizer *)(uintptr_t)1;
    int rc = mislas_checkpoint_load(&m, &o, path);
    ck_assert_msg(rc == expect, "%s: status %d (%s), expected %d; %s", what, rc, mislas_status_string(rc), expect,
        mislas_last_error());
    ck_assert_msg(m == NULL && o == NULL, "%s: something was handed back", what);
    ck_assert_msg(strlen(mislas_last_error()) > 0, "%s: no message", what);
    if (!both)
        return;
    m = (mislas_model *)(uintptr_t)1;
    rc = mislas_checkpoint_load(&m, NULL, path);
    ck_assert_msg(rc == expect, "%s (model only): status %d, expected %d", what, rc, expect);
    ck_assert_ptr_null(m);
}

static void expect_load_fails(const char *path, int expect, const char *what)
{
    expect_load_fails_as(path, expect, what, 1);
}

/* ---------------------------------------------------------------- the format, read and written here */

static uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t rd64(const uint8_t *p)
{
    return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32;
}

static void wr32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void wr64(uint8_t *p, uint64_t v)
{
    wr32(p, (uint32_t)v);
    wr32(p + 4, (uint32_t)(v >> 32));
}

static uint32_t crc(const void *p, size_t n)
{
    return (uint32_t)crc32(crc32(0L, Z_NULL, 0), p, (uInt)n);
}

static uint32_t tag(const char *t)
{
    return rd32((const uint8_t *)t);
}

/* A growing byte buffer for content. */
typedef struct buf {
    uint8_t *data;
    size_t size, cap;
} buf;

static void put(buf *b, const void *p, size_t n)
{
    if (n == 0)
        return;
    if (b->size + n > b->cap) {
        b->cap = (b->size + n) * 2 + 64;
        b->data = realloc(b->data, b->cap);
    }
    memcpy(b->data + b->size, p, n);
    b->size += n;
}

static void put_u16(buf *b, uint16_t v) { uint8_t x[2] = { (uint8_t)v, (uint8_t)(v >> 8) }; put(b, x, 2); }
static void put_u32(buf *b, uint32_t v) { uint8_t x[4]; wr32(x, v); put(b, x, 4); }
static void put_u64(buf *b, uint64_t v) { uint8_t x[8]; wr64(x, v); put(b, x, 8); }
static void put_f32(buf *b, float v) { uint32_t u; memcpy(&u, &v, 4); put_u32(b, u); }

/* A checkpoint's content as its sections. */
enum { MAX_SECTIONS = 1024 };
typedef struct section {
    uint32_t tag;
    buf body;
} section;

typedef struct content {
    section s[MAX_SECTIONS];
    int count;
} content;

/* The header's fields and the decompressed content of a file, checking
 * everything the document promises of a file the library wrote. */
static void parse_file(const bytes *file, content *c, uint8_t **raw_out, size_t *raw_size)
{
    ck_assert_uint_ge(file->size, 40);
    ck_assert_int_eq(memcmp(file->data, "MISLASCK", 8), 0);
    ck_assert_uint_eq(rd32(file->data + 8), 1);          /* version */
    ck_assert_uint_eq(rd32(file->data + 12), 0);         /* flags */
    uint64_t size = rd64(file->data + 16), packed = rd64(file->data + 24);
    ck_assert_uint_eq(packed, file->size - 40);            /* nothing follows the stream */
    ck_assert_uint_eq(rd32(file->data + 36), crc(file->data, 36));
    uLongf got = (uLongf)size;
    uint8_t *raw = malloc(size > 0 ? (size_t)size : 1);
    ck_assert_int_eq(uncompress(raw, &got, file->data + 40, (uLong)packed), Z_OK);
    ck_assert_uint_eq(got, size);
    ck_assert_uint_eq(rd32(file->data + 32), crc(raw, (size_t)size));
    c->count = 0;
    size_t at = 0;
    while (at < size) {
        ck_assert_uint_le(at + 12, size);
        ck_assert_int_lt(c->count, MAX_SECTIONS);
        section *s = &c->s[c->count++];
        s->tag = rd32(raw + at);
        uint64_t len = rd64(raw + at + 4);
        at += 12;
        ck_assert_uint_le(len, size - at);
        memset(&s->body, 0, sizeof s->body);
        put(&s->body, raw + at, (size_t)len);
        at += (size_t)len;
    }
    ck_assert_uint_eq(at, size);    /* content ends with its last section */
    if (raw_out != NULL) {
        *raw_out = raw;
        *raw_size = (size_t)size;
    } else {
        free(raw);
    }
}

static void content_free(content *c)
{
    for (int i = 0; i < c->count; i++)
        free(c->s[i].body.data);
    c->count = 0;
}

static void content_copy(content *dst, const content *src)
{
    dst->count = src->count;
    for (int i = 0; i < src->count; i++) {
        dst->s[i].tag = src->s[i].tag;
        memset(&dst->s[i].body, 0, sizeof dst->s[i].body);
        put(&dst->s[i].body, src->s[i].body.data, src->s[i].body.size);
    }
}

static void content_remove(content *c, int i)
{
    free(c->s[i].body.data);
    memmove(&c->s[i], &c->s[i + 1], (size_t)(c->count - i - 1) * sizeof c->s[0]);
    c->count--;
}

/* Inserts a copy of section `from` of src at position `at`. */
static void content_insert(content *c, int at, uint32_t t, const void *body, size_t size)
{
    ck_assert_int_lt(c->count, MAX_SECTIONS);
    memmove(&c->s[at + 1], &c->s[at], (size_t)(c->count - at) * sizeof c->s[0]);
    c->s[at].tag = t;
    memset(&c->s[at].body, 0, sizeof c->s[at].body);
    put(&c->s[at].body, body, size);
    c->count++;
}

/* The index of the TENS section naming `name`, or -1. */
static int find_tensor(const content *c, const char *name)
{
    for (int i = 0; i < c->count; i++)
        if (c->s[i].tag == tag("TENS")) {
            const uint8_t *b = c->s[i].body.data;
            uint16_t len = (uint16_t)(b[0] | b[1] << 8);
            if (len == strlen(name) && memcmp(b + 2, name, len) == 0)
                return i;
        }
    return -1;
}

static int find_tag(const content *c, const char *t)
{
    for (int i = 0; i < c->count; i++)
        if (c->s[i].tag == tag(t))
            return i;
    return -1;
}

/* The sections, compressed, behind a header as docs/checkpoint.md lays it
 * out. Level 0 (stored blocks, still a zlib stream as the format asks)
 * keeps the many broken files below cheap to write and read. */
static int zlib_level = 1;

static bytes build_file(const content *c)
{
    buf raw = { 0 };
    for (int i = 0; i < c->count; i++) {
        put_u32(&raw, c->s[i].tag);
        put_u64(&raw, c->s[i].body.size);
        put(&raw, c->s[i].body.data, c->s[i].body.size);
    }
    uLongf packed = compressBound((uLong)raw.size);
    bytes f = { malloc(40 + packed), 0 };
    ck_assert_int_eq(compress2(f.data + 40, &packed, raw.data, (uLong)raw.size, zlib_level), Z_OK);
    memcpy(f.data, "MISLASCK", 8);
    wr32(f.data + 8, 1);
    wr32(f.data + 12, 0);
    wr64(f.data + 16, raw.size);
    wr64(f.data + 24, packed);
    wr32(f.data + 32, crc(raw.data, raw.size));
    wr32(f.data + 36, crc(f.data, 36));
    f.size = 40 + packed;
    free(raw.data);
    return f;
}

static void write_content(const char *path, const content *c)
{
    bytes f = build_file(c);
    test_write_file(path, f.data, f.size);
    free(f.data);
}

/* A trained model with everything a file can hold: MiSLAS head, shifted BN,
 * frozen backbone, class counts, an optimiser with momentum after steps. */
typedef struct fixture {
    mislas_model *m;
    mislas_optimizer *o;
    float *x;
    int32_t y[4];
} fixture;

enum { FX_N = 4, FX_C = 1, FX_S = 8, FX_K = 3 };

static void fixture_make(fixture *f, int stage2)
{
    f->m = test_new_model(MISLAS_RESNET20, FX_C, FX_S, FX_S, FX_K, 1234);
    f->x = random_floats(FX_N * FX_C * FX_S * FX_S);
    for (int i = 0; i < FX_N; i++)
        f->y[i] = i % FX_K;
    mislas_optimizer *o1 = test_new_sgd(f->m, 0.1, 0.9, 2e-4, 1.0);
    for (int i = 0; i < 2; i++)
        train_step(f->m, o1, f->x, FX_N, f->y);
    if (!stage2) {
        f->o = o1;
        return;
    }
    mislas_optimizer_free(o1);
    const int64_t counts[FX_K] = { 500, 50, 5 };
    ck_assert_status(mislas_model_set_class_counts(f->m, counts, FX_K), MISLAS_OK);
    ck_assert_status(mislas_model_set_head(f->m, MISLAS_HEAD_MISLAS, 0), MISLAS_OK);
    ck_assert_status(mislas_model_set_mode(f->m, MISLAS_MODE_SHIFTED_BN), MISLAS_OK);
    ck_assert_status(mislas_model_freeze_backbone(f->m, 1), MISLAS_OK);
    f->o = test_new_sgd(f->m, 0.05, 0.9, 5e-4, 0.2);
    for (int i = 0; i < 2; i++)
        train_step(f->m, f->o, f->x, FX_N, f->y);
    ck_assert_status(mislas_optimizer_set_lr(f->o, 0.0375), MISLAS_OK);
}

static void fixture_free(fixture *f)
{
    mislas_optimizer_free(f->o);
    mislas_model_free(f->m);
    free(f->x);
}

/* ---------------------------------------------------------------- round trips */

/* One more step from the original and from the loaded pair must agree bit
 * for bit: the momentum buffers, lr, weight decay and factors came back. */
static void continue_both(mislas_model *a, mislas_optimizer *oa, mislas_model *b, mislas_optimizer *ob,
        const float *x, const int32_t *y)
{
    train_step(a, oa, x, FX_N, y);
    train_step(b, ob, x, FX_N, y);
    ck_assert(same_tensors(a, b));
    same_optimizer(oa, ob);
}

START_TEST(round_trip_stage1)
{
    fixture f;
    fixture_make(&f, 0);
    const char *path = in_scratch("stage1.ckpt");
    ck_assert_status(mislas_checkpoint_save(f.m, f.o, path), MISLAS_OK);
    mislas_model *m = NULL;
    mislas_optimizer *o = NULL;
    ck_assert_status(mislas_checkpoint_load(&m, &o, path), MISLAS_OK);
    ck_assert_ptr_nonnull(m);
    ck_assert_ptr_nonnull(o);
    ck_assert(same_tensors(f.m, m));
    same_settings(f.m, m);
    same_optimizer(f.o, o);
    ck_assert_uint_eq(mislas_optimizer_steps(o), 2);
    int64_t counts[FX_K];
    ck_assert_status(mislas_model_class_counts(m, counts, FX_K), MISLAS_ERR_STATE);
    /* a loaded model has no forward to go back through */
    ck_assert_status(mislas_model_backward(m, f.x), MISLAS_ERR_STATE);
    continue_both(f.m, f.o, m, o, f.x, f.y);
    mislas_optimizer_free(o);
    mislas_model_free(m);

    /* the model alone from a file with an optimiser */
    ck_assert_status(mislas_checkpoint_load(&m, NULL, path), MISLAS_OK);
    ck_assert(same_tensors(f.m, m) == 0);   /* f.m took a step since */
    mislas_model_free(m);

    /* a file without one: *optimizer is NULL */
    ck_assert_status(mislas_checkpoint_save(f.m, NULL, path), MISLAS_OK);
    o = (mislas_optimizer *)(uintptr_t)1;
    ck_assert_status(mislas_checkpoint_load(&m, &o, path), MISLAS_OK);
    ck_assert_ptr_null(o);
    ck_assert(same_tensors(f.m, m));
    same_settings(f.m, m);
    mislas_model_free(m);
    fixture_free(&f);
}
END_TEST

START_TEST(round_trip_stage2)
{
    fixture f;
    fixture_make(&f, 1);
    const char *path = in_scratch("stage2.ckpt");
    ck_assert_status(mislas_checkpoint_save(f.m, f.o, path), MISLAS_OK);
    mislas_model *m = NULL;
    mislas_optimizer *o = NULL;
    ck_assert_status(mislas_checkpoint_load(&m, &o, path), MISLAS_OK);
    ck_assert(same_tensors(f.m, m));
    same_settings(f.m, m);
    ck_assert_int_eq(mislas_model_head(m), MISLAS_HEAD_MISLAS);
    ck_assert_int_eq(mislas_model_mode(m), MISLAS_MODE_SHIFTED_BN);
    ck_assert_int_eq(mislas_model_backbone_frozen(m), 1);
    same_optimizer(f.o, o);
    ck_assert(mislas_optimizer_lr(o) == 0.0375);
    ck_assert(mislas_optimizer_group_lr(o, MISLAS_GROUP_CLASSIFIER) == 0.0375 * 0.2);
    ck_assert_uint_eq(mislas_optimizer_group_size(o, MISLAS_GROUP_BACKBONE), 0);
    ck_assert_uint_eq(mislas_optimizer_group_size(o, MISLAS_GROUP_SCALES), FX_K);
    int64_t counts[FX_K];
    ck_assert_status(mislas_model_class_counts(m, counts, FX_K), MISLAS_OK);
    ck_assert(counts[0] == 500 && counts[1] == 50 && counts[2] == 5);
    /* the scales learned and came back */
    float s[FX_K];
    ck_assert_status(mislas_model_classifier_scales(m, s), MISLAS_OK);
    ck_assert(s[0] != 1.0f || s[1] != 1.0f || s[2] != 1.0f);
    continue_both(f.m, f.o, m, o, f.x, f.y);
    mislas_optimizer_free(o);
    mislas_model_free(m);

    /* saving the loaded pair again gives the same content */
    ck_assert_status(mislas_checkpoint_save(f.m, f.o, path), MISLAS_OK);
    ck_assert_status(mislas_checkpoint_load(&m, &o, path), MISLAS_OK);
    const char *again = in_scratch("again.ckpt");
    ck_assert_status(mislas_checkpoint_save(m, o, again), MISLAS_OK);
    bytes a = read_all(path), b = read_all(again);
    ck_assert_uint_eq(a.size, b.size);
    ck_assert_int_eq(memcmp(a.data, b.data, a.size), 0);
    free(a.data);
    free(b.data);
    mislas_optimizer_free(o);
    mislas_model_free(m);
    fixture_free(&f);
}
END_TEST

START_TEST(round_trip_imagenet_and_heads)
{
    /* an ImageNet model (projection and max-pool names), each head and mode */
    const mislas_head heads[4] = { MISLAS_HEAD_LINEAR, MISLAS_HEAD_CRT, MISLAS_HEAD_LWS, MISLAS_HEAD_MISLAS };
    for (int h = 0; h < 4; h++) {
        mislas_model *a = test_new_model(h == 0 ? MISLAS_RESNET10 : MISLAS_RESNET20, 2, 12, 10, 7, 40 + (uint64_t)h);
        ck_assert_status(mislas_model_set_head(a, heads[h], 3), MISLAS_OK);
        ck_assert_status(mislas_model_set_mode(a, (mislas_mode)(h % 3)), MISLAS_OK);
        ck_assert_status(mislas_model_freeze_backbone(a, h >= 2), MISLAS_OK);
        mislas_optimizer *oa = test_new_sgd(a, 0.01 * (h + 1), 0.5, 1e-3, 0.5);
        const char *path = in_scratch("heads.ckpt");
        ck_assert_status(mislas_checkpoint_save(a, oa, path), MISLAS_OK);
        mislas_model *b = NULL;
        mislas_optimizer *ob = NULL;
        ck_assert_status(mislas_checkpoint_load(&b, &ob, path), MISLAS_OK);
        ck_assert(same_tensors(a, b));
        same_settings(a, b);
        same_optimizer(oa, ob);
        mislas_optimizer_free(oa);
        mislas_optimizer_free(ob);
        mislas_model_free(a);
        mislas_model_free(b);
    }
}
END_TEST

/* ---------------------------------------------------------------- resuming */

/* N steps straight against k steps, save, free everything, load, N - k
 * steps: the same weights, running statistics and logits, bit for bit,
 * with the lr following a cosine schedule set before every step. */
START_TEST(resume_is_bit_identical)
{
    enum { N = 8, C = 3, S = 16, K = 4, STEPS = 6, CUT = 3 };
    float *x = random_floats(N * C * S * S);
    int32_t y[N];
    for (int i = 0; i < N; i++)
        y[i] = (int32_t)(test_uniform() * K);
    float za[N * K], zb[N * K];

    mislas_model *a = test_new_model(MISLAS_RESNET20, C, S, S, K, 77);
    mislas_optimizer *oa = test_new_sgd(a, 0.1, 0.9, 5e-4, 1.0);
    for (int s = 0; s < STEPS; s++) {
        ck_assert_status(mislas_optimizer_set_lr(oa, mislas_schedule_cosine(0.1, s, STEPS)), MISLAS_OK);
        train_step(a, oa, x + (size_t)(s % 2) * (N / 2) * C * S * S, N / 2, y + (s % 2) * (N / 2));
    }
    ck_assert_status(mislas_model_forward(a, x, N, za), MISLAS_OK);

    mislas_model *b = test_new_model(MISLAS_RESNET20, C, S, S, K, 77);
    mislas_optimizer *ob = test_new_sgd(b, 0.1, 0.9, 5e-4, 1.0);
    for (int s = 0; s < CUT; s++) {
        ck_assert_status(mislas_optimizer_set_lr(ob, mislas_schedule_cosine(0.1, s, STEPS)), MISLAS_OK);
        train_step(b, ob, x + (size_t)(s % 2) * (N / 2) * C * S * S, N / 2, y + (s % 2) * (N / 2));
    }
    const char *path = in_scratch("resume.ckpt");
    ck_assert_status(mislas_checkpoint_save(b, ob, path), MISLAS_OK);
    mislas_optimizer_free(ob);
    mislas_model_free(b);
    b = NULL;
    ob = NULL;
    ck_assert_status(mislas_checkpoint_load(&b, &ob, path), MISLAS_OK);
    ck_assert_uint_eq(mislas_optimizer_steps(ob), CUT);
    for (int s = CUT; s < STEPS; s++) {
        ck_assert_status(mislas_optimizer_set_lr(ob, mislas_schedule_cosine(0.1, s, STEPS)), MISLAS_OK);
        train_step(b, ob, x + (size_t)(s % 2) * (N / 2) * C * S * S, N / 2, y + (s % 2) * (N / 2));
    }
    ck_assert_status(mislas_model_forward(b, x, N, zb), MISLAS_OK);
    ck_assert(same_tensors(a, b));
    ck_assert_int_eq(memcmp(za, zb, sizeof za), 0);
    same_optimizer(oa, ob);
    ck_assert_uint_eq(mislas_optimizer_steps(ob), STEPS);
    /* and in EVAL mode, which reads the running statistics */
    ck_assert_status(mislas_model_set_mode(a, MISLAS_MODE_EVAL), MISLAS_OK);
    ck_assert_status(mislas_model_set_mode(b, MISLAS_MODE_EVAL), MISLAS_OK);
    ck_assert_status(mislas_model_forward(a, x, N, za), MISLAS_OK);
    ck_assert_status(mislas_model_forward(b, x, N, zb), MISLAS_OK);
    ck_assert_int_eq(memcmp(za, zb, sizeof za), 0);
    mislas_optimizer_free(oa);
    mislas_optimizer_free(ob);
    mislas_model_free(a);
    mislas_model_free(b);
    free(x);
}
END_TEST

/* ---------------------------------------------------------------- the documented layout */

/* The library's file read back with zlib as docs/checkpoint.md describes
 * it: header, MODL first with the model's settings, one TENS per tensor in
 * the model's order with the reference's dims and the values get_tensor
 * gives, CNTS, OPTM with the groups' sizes; and the file rebuilt here from
 * those sections loads into the same model. */
START_TEST(file_follows_the_document)
{
    fixture f;
    fixture_make(&f, 1);
    const char *path = in_scratch("doc.ckpt");
    ck_assert_status(mislas_checkpoint_save(f.m, f.o, path), MISLAS_OK);
    bytes file = read_all(path);
    static content c;
    parse_file(&file, &c, NULL, NULL);
    int32_t nt = mislas_model_num_tensors(f.m);
    ck_assert_int_eq(c.count, 1 + nt + 2);
    /* MODL */
    ck_assert_uint_eq(c.s[0].tag, tag("MODL"));
    ck_assert_uint_eq(c.s[0].body.size, 40);
    const uint8_t *md = c.s[0].body.data;
    ck_assert_uint_eq(rd32(md), MISLAS_RESNET20);
    ck_assert_uint_eq(rd32(md + 4), FX_C);
    ck_assert_uint_eq(rd32(md + 8), FX_S);
    ck_assert_uint_eq(rd32(md + 12), FX_S);
    ck_assert_uint_eq(rd32(md + 16), FX_K);
    ck_assert_uint_eq(rd32(md + 20), MISLAS_HEAD_MISLAS);
    ck_assert_uint_eq(rd32(md + 24), MISLAS_MODE_SHIFTED_BN);
    ck_assert_uint_eq(rd32(md + 28), 1);
    ck_assert_uint_eq(rd64(md + 32), 1234);
    /* TENS, in the model's order */
    for (int32_t t = 0; t < nt; t++) {
        const char *name;
        size_t count;
        ck_assert_status(mislas_model_tensor_info(f.m, t, &name, &count), MISLAS_OK);
        const section *s = &c.s[1 + t];
        ck_assert_uint_eq(s->tag, tag("TENS"));
        const uint8_t *b = s->body.data;
        size_t len = (size_t)(b[0] | b[1] << 8);
        ck_assert_uint_eq(len, strlen(name));
        ck_assert_int_eq(memcmp(b + 2, name, len), 0);
        uint32_t ndim = rd32(b + 2 + len);
        uint64_t prod = 1, dims[4];
        ck_assert(ndim >= 1 && ndim <= 4);
        for (uint32_t d = 0; d < ndim; d++)
            prod *= dims[d] = rd64(b + 6 + len + 8 * d);
        ck_assert_uint_eq(prod, count);
        ck_assert_uint_eq(s->body.size, 6 + len + 8 * ndim + 4 * count);
        /* dims as PyTorch has them */
        if (strcmp(name, "conv1.weight") == 0)
            ck_assert(ndim == 4 && dims[0] == 16 && dims[1] == FX_C && dims[2] == 3 && dims[3] == 3);
        else if (strcmp(name, "layer2.0.conv1.weight") == 0)
            ck_assert(ndim == 4 && dims[0] == 32 && dims[1] == 16 && dims[2] == 3 && dims[3] == 3);
        else if (strcmp(name, "fc.weight") == 0)
            ck_assert(ndim == 2 && dims[0] == FX_K && dims[1] == 64);
        else if (strstr(name, "conv") == NULL)
            ck_assert_uint_eq(ndim, 1);
        float *v = malloc(count * sizeof *v);
        ck_assert_status(mislas_model_get_tensor(f.m, name, v, count), MISLAS_OK);
        ck_assert_int_eq(memcmp(b + 6 + len + 8 * ndim, v, 4 * count), 0);    /* little-endian host */
        free(v);
    }
    /* CNTS */
    const section *cn = &c.s[1 + nt];
    ck_assert_uint_eq(cn->tag, tag("CNTS"));
    ck_assert_uint_eq(cn->body.size, 4 + 8 * FX_K);
    ck_assert_uint_eq(rd32(cn->body.data), FX_K);
    ck_assert_uint_eq(rd64(cn->body.data + 4), 500);
    ck_assert_uint_eq(rd64(cn->body.data + 20), 5);
    /* OPTM: the classifier's and the scales' groups (backbone frozen) */
    const section *op = &c.s[2 + nt];
    ck_assert_uint_eq(op->tag, tag("OPTM"));
    const uint8_t *ob = op->body.data;
    double lr, mom, wd, fac;
    memcpy(&lr, ob, 8);
    memcpy(&mom, ob + 8, 8);
    memcpy(&wd, ob + 16, 8);
    memcpy(&fac, ob + 24, 8);
    ck_assert(lr == 0.0375 && mom == 0.9 && wd == 5e-4 && fac == 0.2);
    ck_assert_uint_eq(rd64(ob + 32), 2);
    ck_assert_uint_eq(rd32(ob + 40), 2);
    ck_assert_uint_eq(rd32(ob + 44), MISLAS_GROUP_CLASSIFIER);
    ck_assert_uint_eq(rd64(ob + 48), 64 * FX_K + FX_K);
    size_t at = 56 + 4 * (64 * FX_K + FX_K);
    ck_assert_uint_eq(rd32(ob + at), MISLAS_GROUP_SCALES);
    ck_assert_uint_eq(rd64(ob + at + 4), FX_K);
    ck_assert_uint_eq(op->body.size, at + 12 + 4 * FX_K);

    /* rebuilt here, it loads into the same model */
    write_content(in_scratch("rebuilt.ckpt"), &c);
    mislas_model *m = NULL;
    mislas_optimizer *o = NULL;
    ck_assert_status(mislas_checkpoint_load(&m, &o, in_scratch("rebuilt.ckpt")), MISLAS_OK);
    ck_assert(same_tensors(f.m, m));
    same_optimizer(f.o, o);
    mislas_optimizer_free(o);
    mislas_model_free(m);
    content_free(&c);
    free(file.data);
    fixture_free(&f);
}
END_TEST

/* ---------------------------------------------------------------- broken files */

/* A valid file of a small model with every section, for the cases below. */
static bytes valid_file(content *c)
{
    fixture f;
    fixture_make(&f, 1);
    const char *path = in_scratch("valid.ckpt");
    ck_assert_status(mislas_checkpoint_save(f.m, f.o, path), MISLAS_OK);
    fixture_free(&f);
    bytes b = read_all(path);
    if (c != NULL)
        parse_file(&b, c, NULL, NULL);
    return b;
}

START_TEST(truncated_and_extended_files)
{
    bytes good = valid_file(NULL);
    const char *path = in_scratch("cut.ckpt");
    size_t cuts[64];
    int n = 0;
    const size_t fixed[] = { 0, 1, 7, 8, 12, 35, 36, 39, 40, 41, 42, 100, 1000 };
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
        cuts[n++] = fixed[i];
    cuts[n++] = good.size / 2;
    cuts[n++] = good.size - 2;
    cuts[n++] = good.size - 1;
    while (n < 40)
        cuts[n++] = 40 + (size_t)(test_uniform() * (double)(good.size - 40));
    for (int i = 0; i < n; i++) {
        test_write_file(path, good.data, cuts[i]);
        char what[64];
        snprintf(what, sizeof what, "cut at %zu of %zu", cuts[i], good.size);
        expect_load_fails(path, MISLAS_ERR_FORMAT, what);
    }
    /* one byte more, or a second copy appended */
    uint8_t *longer = malloc(2 * good.size);
    memcpy(longer, good.data, good.size);
    longer[good.size] = 0;
    test_write_file(path, longer, good.size + 1);
    expect_load_fails(path, MISLAS_ERR_FORMAT, "one byte appended");
    memcpy(longer + good.size, good.data, good.size);
    test_write_file(path, longer, 2 * good.size);
    expect_load_fails(path, MISLAS_ERR_FORMAT, "two copies");
    /* the header's sizes rewritten to match a truncated stream */
    size_t cut = good.size - 100;
    memcpy(longer, good.data, cut);
    wr64(longer + 24, cut - 40);
    wr32(longer + 36, crc(longer, 36));
    test_write_file(path, longer, cut);
    expect_load_fails(path, MISLAS_ERR_FORMAT, "truncated stream, consistent header");
    free(longer);
    free(good.data);
}
END_TEST

/* Every single-bit flip is caught: in the header by its CRC (or the magic,
 * version, flags and size checks), in the stream by zlib, the sizes or the
 * content's CRC; no flip leaves a file that loads (the CRCs see to it). */
START_TEST(single_bit_flips)
{
    bytes good = valid_file(NULL);
    const char *path = in_scratch("flip.ckpt");
    uint8_t *f = malloc(good.size);
    size_t positions[400];
    int n = 0;
    for (size_t i = 0; i < 40; i++)
        positions[n++] = i;         /* every header byte, all 8 bits below */
    for (size_t i = 40; i < 48; i++)
        positions[n++] = i;         /* the zlib header */
    positions[n++] = good.size - 1; /* the adler-32 trailer */
    positions[n++] = good.size - 4;
    while (n < 110)
        positions[n++] = 48 + (size_t)(test_uniform() * (double)(good.size - 48));
    for (int i = 0; i < n; i++)
        for (int bit = 0; bit < 8; bit++) {
            if (positions[i] >= 40 + 8 && bit != (i % 8))
                continue;   /* one bit per sampled body byte, all bits of header bytes */
            memcpy(f, good.data, good.size);
            f[positions[i]] ^= (uint8_t)(1u << bit);
            test_write_file(path, f, good.size);
            char what[64];
            snprintf(what, sizeof what, "bit %d of byte %zu flipped", bit, positions[i]);
            expect_load_fails_as(path, MISLAS_ERR_FORMAT, what, positions[i] < 40);
        }
    free(f);
    free(good.data);
}
END_TEST

/* Header fields changed with the header's CRC recomputed, so that the
 * check of the field itself must catch them. */
static void header_case(const bytes *good, size_t offset, const void *value, size_t size, const char *what,
        const char *message_part)
{
    uint8_t *f = malloc(good->size);
    memcpy(f, good->data, good->size);
    memcpy(f + offset, value, size);
    wr32(f + 36, crc(f, 36));
    const char *path = in_scratch("header.ckpt");
    test_write_file(path, f, good->size);
    expect_load_fails(path, MISLAS_ERR_FORMAT, what);
    if (message_part != NULL)
        ck_assert_msg(strstr(mislas_last_error(), message_part) != NULL, "%s: message \"%s\"", what,
            mislas_last_error());
    free(f);
}

START_TEST(header_fields)
{
    bytes good = valid_file(NULL);
    uint8_t v[8];
    wr32(v, 2);
    header_case(&good, 8, v, 4, "version 2", "version 2");
    wr32(v, 0);
    header_case(&good, 8, v, 4, "version 0", "version");
    wr32(v, 0x80000001u);
    header_case(&good, 8, v, 4, "version 0x80000001", "version");
    for (int bit = 0; bit < 32; bit++) {
        wr32(v, 1u << bit);
        header_case(&good, 12, v, 4, "a flag", "flags");
    }
    header_case(&good, 0, "MISLASCL", 8, "magic", NULL);
    header_case(&good, 0, "mislasck", 8, "magic in lower case", NULL);
    uint64_t size = rd64(good.data + 16);
    wr64(v, size + 1);
    header_case(&good, 16, v, 8, "content size + 1", NULL);
    wr64(v, size - 1);
    header_case(&good, 16, v, 8, "content size - 1", NULL);
    wr64(v, 0);
    header_case(&good, 16, v, 8, "content size 0", NULL);
    wr64(v, UINT64_MAX);
    header_case(&good, 16, v, 8, "content size 2^64 - 1", NULL);
    wr64(v, (uint64_t)1 << 40);
    header_case(&good, 16, v, 8, "content size 1 TB", NULL);
    wr64(v, rd64(good.data + 24) + 1);
    header_case(&good, 24, v, 8, "compressed size + 1", NULL);
    wr64(v, UINT64_MAX);
    header_case(&good, 24, v, 8, "compressed size 2^64 - 1", NULL);
    wr32(v, rd32(good.data + 32) ^ 1u);
    header_case(&good, 32, v, 4, "content CRC", "checksum");
    /* the header CRC itself wrong */
    uint8_t *f = malloc(good.size);
    memcpy(f, good.data, good.size);
    f[36] ^= 0x40;
    test_write_file(in_scratch("crc.ckpt"), f, good.size);
    expect_load_fails(in_scratch("crc.ckpt"), MISLAS_ERR_FORMAT, "header CRC");
    ck_assert_ptr_nonnull(strstr(mislas_last_error(), "checksum"));
    free(f);
    free(good.data);
}
END_TEST

START_TEST(foreign_files)
{
    const char *path = in_scratch("foreign");
    test_write_file(path, "", 0);
    expect_load_fails(path, MISLAS_ERR_FORMAT, "empty file");
    const uint8_t png[] = { 0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 0, 0, 0, 13, 'I', 'H', 'D', 'R',
                            0, 0, 0, 1, 0, 0, 0, 1, 8, 2, 0, 0, 0, 0x90, 0x77, 0x53, 0xde, 0, 0, 0,
                            0, 0, 0, 0, 0, 0, 0, 0, 0 };
    test_write_file(path, png, sizeof png);
    expect_load_fails(path, MISLAS_ERR_FORMAT, "a PNG");
    uint8_t zeros[4096] = { 0 };
    test_write_file(path, zeros, 40);
    expect_load_fails(path, MISLAS_ERR_FORMAT, "40 zero bytes");
    test_write_file(path, zeros, sizeof zeros);
    expect_load_fails(path, MISLAS_ERR_FORMAT, "4096 zero bytes");
    test_write_file(path, "MISLASCK", 8);
    expect_load_fails(path, MISLAS_ERR_FORMAT, "the magic alone");
    /* a valid checkpoint gzip-compressed as a whole */
    bytes good = valid_file(NULL);
    const char *gz = in_scratch("ckpt.gz");
    gzFile g = gzopen(gz, "wb");
    ck_assert_ptr_nonnull(g);
    ck_assert_int_eq(gzwrite(g, good.data, (unsigned)good.size), (int)good.size);
    ck_assert_int_eq(gzclose(g), Z_OK);
    expect_load_fails(gz, MISLAS_ERR_FORMAT, "a gzip file");
    /* random bytes */
    uint8_t *noise = malloc(good.size);
    for (size_t i = 0; i < good.size; i++)
        noise[i] = (uint8_t)(test_uniform() * 256);
    test_write_file(path, noise, good.size);
    expect_load_fails(path, MISLAS_ERR_FORMAT, "random bytes");
    /* the header of a valid file before another stream */
    memcpy(noise, good.data, 40);
    test_write_file(path, noise, good.size);
    expect_load_fails(path, MISLAS_ERR_FORMAT, "valid header, random stream");
    free(noise);
    free(good.data);
    /* not there: an I/O error, not a format error; a folder neither */
    expect_load_fails(in_scratch("no-such-file"), MISLAS_ERR_IO, "missing file");
    ck_assert_ptr_nonnull(strstr(mislas_last_error(), "no-such-file"));
    mkdir(in_scratch("a-folder"), 0700);
    mislas_model *m = NULL;
    int rc = mislas_checkpoint_load(&m, NULL, in_scratch("a-folder"));
    ck_assert_msg(rc == MISLAS_ERR_IO || rc == MISLAS_ERR_FORMAT, "a folder: status %d", rc);
    ck_assert_ptr_null(m);
    /* arguments */
    ck_assert_status(mislas_checkpoint_load(&m, NULL, NULL), MISLAS_ERR_INVALID_ARGUMENT);
    ck_assert_status(mislas_checkpoint_load(NULL, NULL, path), MISLAS_ERR_INVALID_ARGUMENT);
}
END_TEST

/* Files whose compressed stream and checksums are fine but whose content
 * breaks the format, built here from a valid file's sections. */
typedef void (*mutation)(content *c);

static void check_mutation(const content *good, mutation mutate, const char *what)
{
    static content c;
    content_copy(&c, good);
    mutate(&c);
    const char *path = in_scratch("mutated.ckpt");
    write_content(path, &c);
    /* an OPTM section is checked even when the optimiser is not wanted */
    expect_load_fails_as(path, MISLAS_ERR_FORMAT, what, strstr(what, "OPTM") != NULL);
    content_free(&c);
}

static void set_tensor_value(content *c, const char *name, size_t index, float v)
{
    int i = find_tensor(c, name);
    ck_assert_int_ge(i, 0);
    uint8_t *b = c->s[i].body.data;
    size_t len = (size_t)(b[0] | b[1] << 8);
    uint32_t ndim = rd32(b + 2 + len);
    memcpy(b + 6 + len + 8 * ndim + 4 * index, &v, 4);
}

static void m_nothing(content *c) { (void)c; }
static void m_missing_tensor(content *c) { content_remove(c, find_tensor(c, "layer2.1.bn2.running_var")); }
static void m_missing_fc(content *c) { content_remove(c, find_tensor(c, "fc.weight")); }
static void m_no_tensors(content *c)
{
    while (find_tag(c, "TENS") >= 0)
        content_remove(c, find_tag(c, "TENS"));
}
static void m_duplicate_tensor(content *c)
{
    int i = find_tensor(c, "layer1.0.conv1.weight");
    content_insert(c, i + 1, tag("TENS"), c->s[i].body.data, c->s[i].body.size);
}
static void m_duplicate_at_end(content *c)
{
    int i = find_tensor(c, "bn1.weight");
    content_insert(c, c->count, tag("TENS"), c->s[i].body.data, c->s[i].body.size);
}
static void m_unknown_name(content *c)
{
    /* same length, so only the name is wrong */
    int i = find_tensor(c, "layer3.2.conv2.weight");
    memcpy(c->s[i].body.data + 2, "layer3.3", 8);
}
static void m_name_with_nul(content *c)
{
    int i = find_tensor(c, "bn1.bias");
    c->s[i].body.data[2 + 3] = '\0';    /* "bn1\0bias" */
}
static void m_name_too_long(content *c)
{
    int i = find_tensor(c, "bn1.bias");
    buf b = { 0 };
    char name[300];
    memset(name, 'x', sizeof name);
    put_u16(&b, sizeof name);
    put(&b, name, sizeof name);
    put(&b, c->s[i].body.data + 2 + 8, c->s[i].body.size - 2 - 8);
    free(c->s[i].body.data);
    c->s[i].body = b;
}
static void m_name_past_end(content *c)
{
    int i = find_tensor(c, "bn1.bias");
    c->s[i].body.data[0] = 0xff;
    c->s[i].body.data[1] = 0xff;
}
/* conv1.weight [16, 1, 3, 3] rewritten as [16, 1, 9] (ndim 3, same count)
 * and as [16, 9, 1, 1] (same ndim and count) and [1, 16, 3, 3] */
static void rewrite_dims(content *c, const char *name, uint32_t ndim, const uint64_t *dims)
{
    int i = find_tensor(c, name);
    uint8_t *old = c->s[i].body.data;
    size_t len = (size_t)(old[0] | old[1] << 8);
    uint32_t old_ndim = rd32(old + 2 + len);
    size_t values = c->s[i].body.size - (6 + len + 8 * old_ndim);
    buf b = { 0 };
    put(&b, old, 2 + len);
    put_u32(&b, ndim);
    for (uint32_t d = 0; d < ndim; d++)
        put_u64(&b, dims[d]);
    put(&b, old + 6 + len + 8 * old_ndim, values);
    free(old);
    c->s[i].body = b;
}
static void m_dims_ndim(content *c) { const uint64_t d[3] = { 16, 1, 9 }; rewrite_dims(c, "conv1.weight", 3, d); }
static void m_dims_swapped(content *c) { const uint64_t d[4] = { 16, 9, 1, 1 }; rewrite_dims(c, "conv1.weight", 4, d); }
static void m_dims_transposed(content *c) { const uint64_t d[4] = { 1, 16, 3, 3 }; rewrite_dims(c, "conv1.weight", 4, d); }
static void m_dims_fc(content *c) { const uint64_t d[2] = { 64, FX_K }; rewrite_dims(c, "fc.weight", 2, d); }
static void m_dims_zero(content *c) { const uint64_t d[1] = { 0 }; rewrite_dims(c, "fc.bias", 1, d); }
static void m_dims_huge(content *c) { const uint64_t d[4] = { 1ull << 62, 1ull << 62, 16, 16 }; rewrite_dims(c, "conv1.weight", 4, d); }
static void m_ndim_0(content *c) { rewrite_dims(c, "fc.bias", 0, NULL); }
static void m_ndim_5(content *c) { const uint64_t d[5] = { 16, 1, 3, 3, 1 }; rewrite_dims(c, "conv1.weight", 5, d); }
static void m_short_values(content *c)
{
    int i = find_tensor(c, "fc.bias");
    c->s[i].body.size -= 4;
}
static void m_long_values(content *c)
{
    int i = find_tensor(c, "fc.bias");
    put_f32(&c->s[i].body, 0.5f);
}
static void m_nan(content *c) { set_tensor_value(c, "layer2.0.conv1.weight", 17, NAN); }
static void m_inf(content *c) { set_tensor_value(c, "bn1.running_var", 3, INFINITY); }
static void m_negative_variance(content *c) { set_tensor_value(c, "layer1.0.bn2.running_var", 5, -0.25f); }
static void m_nan_scale(content *c) { set_tensor_value(c, "learned_norm", FX_K - 1, -NAN); }
static void m_unknown_tag(content *c) { content_insert(c, 5, tag("XTRA"), "abcd", 4); }
static void m_unknown_tag_end(content *c) { content_insert(c, c->count, tag("modl"), "", 0); }
static void m_modl_not_first(content *c)
{
    section first = c->s[0];
    memmove(&c->s[0], &c->s[1], sizeof c->s[0]);
    c->s[1] = first;
}
static void m_modl_last(content *c)
{
    section first = c->s[0];
    memmove(&c->s[0], &c->s[1], (size_t)(c->count - 1) * sizeof c->s[0]);
    c->s[c->count - 1] = first;
}
static void m_modl_twice(content *c) { content_insert(c, 2, tag("MODL"), c->s[0].body.data, c->s[0].body.size); }
static void m_modl_only(content *c)
{
    while (c->count > 1)
        content_remove(c, 1);
}
static void m_empty(content *c)
{
    while (c->count > 0)
        content_remove(c, 0);
}
static void m_modl_short(content *c) { c->s[0].body.size = 36; }
static void m_modl_long(content *c) { put_u32(&c->s[0].body, 0); }
static void modl_field(content *c, size_t offset, uint32_t v) { wr32(c->s[0].body.data + offset, v); }
static void m_modl_arch(content *c) { modl_field(c, 0, 9); }
static void m_modl_arch_other(content *c) { modl_field(c, 0, MISLAS_RESNET32); }   /* tensors don't fit */
static void m_modl_channels(content *c) { modl_field(c, 4, 0); }
static void m_modl_channels_other(content *c) { modl_field(c, 4, 3); }            /* conv1.weight's dims */
static void m_modl_height(content *c) { modl_field(c, 8, 0); }
static void m_modl_height_neg(content *c) { modl_field(c, 8, 0xffffffffu); }
static void m_modl_width_huge(content *c) { modl_field(c, 12, 0x7fffffffu); }
static void m_modl_classes(content *c) { modl_field(c, 16, 0); }
static void m_modl_classes_other(content *c) { modl_field(c, 16, FX_K + 1); }
static void m_modl_head(content *c) { modl_field(c, 20, 4); }
static void m_modl_mode(content *c) { modl_field(c, 24, 3); }
static void m_modl_frozen(content *c) { modl_field(c, 28, 2); }
static void m_cnts_twice(content *c)
{
    int i = find_tag(c, "CNTS");
    content_insert(c, i + 1, tag("CNTS"), c->s[i].body.data, c->s[i].body.size);
}
static void m_cnts_k(content *c) { wr32(c->s[find_tag(c, "CNTS")].body.data, FX_K + 1); }
static void m_cnts_short(content *c) { c->s[find_tag(c, "CNTS")].body.size -= 8; }
static void m_cnts_negative(content *c) { wr64(c->s[find_tag(c, "CNTS")].body.data + 4 + 8, (uint64_t)-3); }
static void m_optm_twice(content *c)
{
    int i = find_tag(c, "OPTM");
    content_insert(c, i + 1, tag("OPTM"), c->s[i].body.data, c->s[i].body.size);
}
static uint8_t *optm(content *c) { return c->s[find_tag(c, "OPTM")].body.data; }
static void m_optm_groups_more(content *c) { wr32(optm(c) + 40, 3); }
static void m_optm_groups_fewer(content *c)
{
    /* only the classifier group: drop the scales group at the end */
    wr32(optm(c) + 40, 1);
    c->s[find_tag(c, "OPTM")].body.size -= 12 + 4 * FX_K;
}
static void m_optm_group_id(content *c) { wr32(optm(c) + 44, MISLAS_GROUP_BACKBONE); }
static void m_optm_group_bad_id(content *c) { wr32(optm(c) + 44, 7); }
static void m_optm_group_size(content *c)
{
    /* the classifier group one value shorter, the section length adjusted */
    uint8_t *o = optm(c);
    section *s = &c->s[find_tag(c, "OPTM")];
    size_t n = 64 * FX_K + FX_K, at = 56 + 4 * n;
    wr64(o + 48, n - 1);
    memmove(o + at - 4, o + at, s->body.size - at);
    s->body.size -= 4;
}
static void m_optm_order(content *c)
{
    /* the two groups swapped (group ids must ascend) */
    section *s = &c->s[find_tag(c, "OPTM")];
    size_t n = 64 * FX_K + FX_K, first = 12 + 4 * n, second = 12 + 4 * FX_K;
    uint8_t *o = s->body.data, *tmp = malloc(first + second);
    ck_assert_ptr_nonnull(tmp);
    memcpy(tmp, o + 44 + first, second);
    memcpy(tmp + second, o + 44, first);
    memcpy(o + 44, tmp, first + second);
    free(tmp);
}
static void m_optm_trailing(content *c) { put_u32(&c->s[find_tag(c, "OPTM")].body, 0); }
static void m_optm_short(content *c) { c->s[find_tag(c, "OPTM")].body.size = 30; }
static void m_optm_nan_velocity(content *c) { float v = NAN; memcpy(optm(c) + 56 + 8, &v, 4); }
static void m_optm_lr(content *c) { double v = -0.1; memcpy(optm(c), &v, 8); }
static void m_optm_momentum(content *c) { double v = 1.0; memcpy(optm(c) + 8, &v, 8); }
static void m_optm_wd_nan(content *c) { double v = NAN; memcpy(optm(c) + 16, &v, 8); }
/* The frozen flag cleared: an optimiser for this model would have a
 * backbone group, which the OPTM section lacks. */
static void m_optm_for_other_settings(content *c) { modl_field(c, 28, 0); }
static void m_optm_head_lws(content *c) { modl_field(c, 20, MISLAS_HEAD_LWS); }

START_TEST(inconsistent_content)
{
    static content good;
    bytes file = valid_file(&good);
    free(file.data);
    zlib_level = 0;
    const struct { mutation fn; const char *what; } cases[] = {
        { m_missing_tensor, "a tensor missing" },
        { m_missing_fc, "fc.weight missing" },
        { m_no_tensors, "no tensors" },
        { m_duplicate_tensor, "a tensor twice" },
        { m_duplicate_at_end, "a tensor repeated at the end" },
        { m_unknown_name, "an unknown tensor" },
        { m_name_with_nul, "a name with a NUL" },
        { m_name_too_long, "a 300-character name" },
        { m_name_past_end, "a name running past its section" },
        { m_dims_ndim, "conv1.weight with 3 dims" },
        { m_dims_swapped, "conv1.weight [16, 9, 1, 1]" },
        { m_dims_transposed, "conv1.weight [1, 16, 3, 3]" },
        { m_dims_fc, "fc.weight transposed" },
        { m_dims_zero, "fc.bias [0]" },
        { m_dims_huge, "dims whose product overflows" },
        { m_ndim_0, "ndim 0" },
        { m_ndim_5, "ndim 5" },
        { m_short_values, "a value missing" },
        { m_long_values, "a value too many" },
        { m_nan, "a NaN weight" },
        { m_inf, "an infinite running variance" },
        { m_negative_variance, "a negative running variance" },
        { m_nan_scale, "a NaN scale" },
        { m_unknown_tag, "an unknown section" },
        { m_unknown_tag_end, "a lower-case tag" },
        { m_modl_not_first, "MODL second" },
        { m_modl_last, "MODL last" },
        { m_modl_twice, "MODL twice" },
        { m_modl_only, "MODL alone" },
        { m_empty, "no sections" },
        { m_modl_short, "MODL short" },
        { m_modl_long, "MODL long" },
        { m_modl_arch, "arch 9" },
        { m_modl_arch_other, "another arch than the tensors" },
        { m_modl_channels, "in_channels 0" },
        { m_modl_channels_other, "other in_channels than the tensors" },
        { m_modl_height, "height 0" },
        { m_modl_height_neg, "height -1" },
        { m_modl_width_huge, "width 2^31 - 1" },
        { m_modl_classes, "num_classes 0" },
        { m_modl_classes_other, "other num_classes than the tensors" },
        { m_modl_head, "head 4" },
        { m_modl_mode, "mode 3" },
        { m_modl_frozen, "frozen 2" },
        { m_cnts_twice, "CNTS twice" },
        { m_cnts_k, "CNTS for K + 1 classes" },
        { m_cnts_short, "CNTS short" },
        { m_cnts_negative, "a negative class count" },
        { m_optm_twice, "OPTM twice" },
        { m_optm_groups_more, "OPTM with 3 groups" },
        { m_optm_groups_fewer, "OPTM with 1 group" },
        { m_optm_group_id, "OPTM backbone group for a frozen backbone" },
        { m_optm_group_bad_id, "OPTM group 7" },
        { m_optm_group_size, "OPTM group of the wrong size" },
        { m_optm_order, "OPTM groups out of order" },
        { m_optm_trailing, "OPTM with bytes after its groups" },
        { m_optm_short, "OPTM cut short" },
        { m_optm_nan_velocity, "a NaN momentum value" },
        { m_optm_lr, "a negative lr" },
        { m_optm_momentum, "momentum 1" },
        { m_optm_wd_nan, "NaN weight decay" },
        { m_optm_for_other_settings, "OPTM groups of another freezing" },
        { m_optm_head_lws, "OPTM groups of another head" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        check_mutation(&good, cases[i].fn, cases[i].what);

    /* the unmodified sections load (the writer here is right) */
    static content same;
    content_copy(&same, &good);
    m_nothing(&same);
    write_content(in_scratch("same.ckpt"), &same);
    mislas_model *m = NULL;
    mislas_optimizer *o = NULL;
    ck_assert_status(mislas_checkpoint_load(&m, &o, in_scratch("same.ckpt")), MISLAS_OK);
    ck_assert_ptr_nonnull(o);
    mislas_optimizer_free(o);
    mislas_model_free(m);
    /* sections in another order (after MODL) are fine, and CNTS and OPTM
     * may be absent */
    section t = same.s[1];
    same.s[1] = same.s[same.count - 1];
    same.s[same.count - 1] = t;
    write_content(in_scratch("order.ckpt"), &same);
    ck_assert_status(mislas_checkpoint_load(&m, &o, in_scratch("order.ckpt")), MISLAS_OK);
    mislas_optimizer_free(o);
    mislas_model_free(m);
    content_remove(&same, find_tag(&same, "OPTM"));
    content_remove(&same, find_tag(&same, "CNTS"));
    write_content(in_scratch("bare.ckpt"), &same);
    o = (mislas_optimizer *)(uintptr_t)1;
    ck_assert_status(mislas_checkpoint_load(&m, &o, in_scratch("bare.ckpt")), MISLAS_OK);
    ck_assert_ptr_null(o);
    int64_t counts[FX_K];
    ck_assert_status(mislas_model_class_counts(m, counts, FX_K), MISLAS_ERR_STATE);
    mislas_model_free(m);
    content_free(&same);

    /* a section whose length runs past the content, and a content that
     * ends inside a section header: built as raw content */
    for (int variant = 0; variant < 3; variant++) {
        buf raw = { 0 };
        for (int i = 0; i < good.count; i++) {
            put_u32(&raw, good.s[i].tag);
            put_u64(&raw, good.s[i].body.size + (variant == 0 && i == good.count - 1));
            put(&raw, good.s[i].body.data, good.s[i].body.size);
        }
        if (variant == 1)
            put_u32(&raw, tag("TENS"));     /* 4 of a section header's 12 bytes */
        if (variant == 2)
            put(&raw, "\0\0\0", 3);
        uLongf packed = compressBound((uLong)raw.size);
        uint8_t *f = malloc(40 + packed);
        ck_assert_int_eq(compress2(f + 40, &packed, raw.data, (uLong)raw.size, 1), Z_OK);
        memcpy(f, "MISLASCK", 8);
        wr32(f + 8, 1);
        wr32(f + 12, 0);
        wr64(f + 16, raw.size);
        wr64(f + 24, packed);
        wr32(f + 32, crc(raw.data, raw.size));
        wr32(f + 36, crc(f, 36));
        test_write_file(in_scratch("raw.ckpt"), f, 40 + packed);
        expect_load_fails(in_scratch("raw.ckpt"), MISLAS_ERR_FORMAT,
            variant == 0 ? "a section past the end" : variant == 1 ? "a cut section header" : "3 stray bytes");
        free(f);
        free(raw.data);
    }
    content_free(&good);
    zlib_level = 1;
}
END_TEST

/* ---------------------------------------------------------------- saving */

static size_t biggest_block;

static void *measuring_alloc(size_t size, void *user)
{
    (void)user;
    if (size > biggest_block)
        biggest_block = size;
    return malloc(size);
}

static void measuring_release(void *ptr, void *user)
{
    (void)user;
    free(ptr);
}

/* A file of a few dozen bytes whose MODL asks for a huge model (ResNet-152
 * with 2^20 classes is about 2.4 G floats) must be refused as FORMAT before
 * the model's memory is taken: the loader knows the content cannot hold
 * that many values. No block anywhere near that size is asked for. */
START_TEST(tiny_file_cannot_ask_for_a_huge_model)
{
    content c = { .count = 0 };
    buf modl = { 0 };
    put_u32(&modl, 8);           /* MISLAS_RESNET152 */
    put_u32(&modl, 3);
    put_u32(&modl, 224);
    put_u32(&modl, 224);
    put_u32(&modl, 1u << 20);
    put_u32(&modl, 0);
    put_u32(&modl, 0);
    put_u32(&modl, 0);
    put_u64(&modl, 0);
    content_insert(&c, 0, tag("MODL"), modl.data, modl.size);
    free(modl.data);
    const char *path = in_scratch("huge.ckpt");
    write_content(path, &c);
    content_free(&c);
    biggest_block = 0;
    ck_assert_status(mislas_set_allocator(measuring_alloc, measuring_release, NULL), MISLAS_OK);
    expect_load_fails(path, MISLAS_ERR_FORMAT, "a tiny file describing ResNet-152 with 2^20 classes");
    ck_assert_status(mislas_set_allocator(NULL, NULL, NULL), MISLAS_OK);
    ck_assert_msg(biggest_block < ((size_t)64 << 20), "the loader asked for a block of %zu bytes", biggest_block);
}
END_TEST

START_TEST(save_arguments_and_refusals)
{
    fixture f;
    fixture_make(&f, 0);
    const char *path = in_scratch("args.ckpt");
    ck_assert_status(mislas_checkpoint_save(f.m, NULL, NULL), MISLAS_ERR_INVALID_ARGUMENT);
    ck_assert_status(mislas_checkpoint_save(NULL, NULL, path), MISLAS_ERR_INVALID_ARGUMENT);
    mislas_model *other = test_new_model(MISLAS_RESNET20, FX_C, FX_S, FX_S, FX_K, 1234);
    ck_assert_status(mislas_checkpoint_save(other, f.o, path), MISLAS_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(access(path, F_OK), -1);
    mislas_model_free(other);

    /* an optimiser whose groups the model's settings no longer give (the
     * backbone frozen after it was made): its file could not be loaded */
    ck_assert_status(mislas_model_freeze_backbone(f.m, 1), MISLAS_OK);
    int rc = mislas_checkpoint_save(f.m, f.o, path);
    if (rc == MISLAS_OK) {
        mislas_model *m = NULL;
        mislas_optimizer *o = NULL;
        int lrc = mislas_checkpoint_load(&m, &o, path);
        ck_assert_msg(lrc == MISLAS_OK, "a file saved without complaint does not load: %s", mislas_last_error());
        mislas_optimizer_free(o);
        mislas_model_free(m);
    } else {
        ck_assert_int_eq(rc, MISLAS_ERR_STATE);
        ck_assert_int_eq(access(path, F_OK), -1);
    }
    ck_assert_status(mislas_checkpoint_save(f.m, NULL, path), MISLAS_OK);
    ck_assert_status(mislas_model_freeze_backbone(f.m, 0), MISLAS_OK);

    /* weights that diverged to infinity: such a file could not be loaded */
    float z[FX_N * FX_K], g[FX_N * FX_K];
    for (int i = 0; i < FX_N * FX_K; i++)
        g[i] = 1e37f;
    mislas_optimizer *wild = test_new_sgd(f.m, 1e10, 0.0, 0.0, 1.0);
    ck_assert_status(mislas_model_forward(f.m, f.x, FX_N, z), MISLAS_OK);
    ck_assert_status(mislas_model_backward(f.m, g), MISLAS_OK);
    ck_assert_status(mislas_optimizer_step(wild), MISLAS_OK);
    float b[FX_K];
    ck_assert_status(mislas_model_get_tensor(f.m, "fc.bias", b, FX_K), MISLAS_OK);
    ck_assert(!isfinite(b[0]));
    const char *inf_path = in_scratch("inf.ckpt");
    rc = mislas_checkpoint_save(f.m, NULL, inf_path);
    if (rc == MISLAS_OK) {
        mislas_model *m = NULL;
        int lrc = mislas_checkpoint_load(&m, NULL, inf_path);
        ck_assert_msg(lrc == MISLAS_OK, "a file saved without complaint does not load: %s", mislas_last_error());
        mislas_model_free(m);
    } else {
        ck_assert_int_eq(rc, MISLAS_ERR_NUMERIC);
        ck_assert_int_eq(access(inf_path, F_OK), -1);
        /* and the old file is still there and loads */
        mislas_model *m = NULL;
        ck_assert_status(mislas_checkpoint_load(&m, NULL, path), MISLAS_OK);
        mislas_model_free(m);
    }
    mislas_optimizer_free(wild);
    fixture_free(&f);
}
END_TEST

/* The target holds the old or the new checkpoint, never a part of one,
 * and no temporary file is left behind. (Tests run as root in CI, so
 * permissions cannot make a write fail: a missing folder, a folder as the
 * target, a file as a folder and a file-size limit do instead.) */
START_TEST(atomic_replacement)
{
    fixture f;
    fixture_make(&f, 0);
    const char *path = in_scratch("model.ckpt");
    ck_assert_status(mislas_checkpoint_save(f.m, f.o, path), MISLAS_OK);
    bytes old = read_all(path);
    char before[2048], after[2048];
    listing(scratch, before, sizeof before);
    ck_assert_str_eq(before, "model.ckpt/");

    /* a folder that does not exist */
    ck_assert_status(mislas_checkpoint_save(f.m, f.o, in_scratch("missing/model.ckpt")), MISLAS_ERR_IO);
    ck_assert_ptr_nonnull(strstr(mislas_last_error(), "missing"));
    listing(scratch, after, sizeof after);
    ck_assert_str_eq(after, before);
    /* an existing file used as a folder */
    char as_dir[600];
    snprintf(as_dir, sizeof as_dir, "%s/inner.ckpt", path);
    ck_assert_status(mislas_checkpoint_save(f.m, NULL, as_dir), MISLAS_ERR_IO);
    listing(scratch, after, sizeof after);
    ck_assert_str_eq(after, before);
    /* a folder as the target: the rename fails, the temporary file goes */
    ck_assert_int_eq(mkdir(in_scratch("folder"), 0700), 0);
    listing(scratch, before, sizeof before);
    ck_assert_status(mislas_checkpoint_save(f.m, f.o, in_scratch("folder")), MISLAS_ERR_IO);
    listing(scratch, after, sizeof after);
    ck_assert_str_eq(after, before);
    struct stat st;
    ck_assert_int_eq(stat(in_scratch("folder"), &st), 0);
    ck_assert(S_ISDIR(st.st_mode));

    /* a write that fails half way (a file-size limit of 4 KB, in a child
     * process): the old checkpoint stays, whole */
    ck_assert_uint_gt(old.size, 8192);
    train_step(f.m, f.o, f.x, FX_N, f.y);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        signal(SIGXFSZ, SIG_IGN);
        struct rlimit lim = { 4096, 4096 };
        if (setrlimit(RLIMIT_FSIZE, &lim) != 0)
            _exit(3);
        int rc = mislas_checkpoint_save(f.m, f.o, path);
        _exit(rc == MISLAS_ERR_IO ? 0 : rc == MISLAS_OK ? 1 : 2);
    }
    int status = 0;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the limited save: exit %d",
        WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    listing(scratch, after, sizeof after);
    ck_assert_str_eq(after, before);
    bytes now = read_all(path);
    ck_assert_uint_eq(now.size, old.size);
    ck_assert_int_eq(memcmp(now.data, old.data, old.size), 0);
    free(now.data);
    mislas_model *m = NULL;
    ck_assert_status(mislas_checkpoint_load(&m, NULL, path), MISLAS_OK);
    mislas_model_free(m);

    /* a save that succeeds replaces the file, nothing else appears */
    ck_assert_status(mislas_checkpoint_save(f.m, f.o, path), MISLAS_OK);
    listing(scratch, after, sizeof after);
    ck_assert_str_eq(after, before);
    ck_assert_status(mislas_checkpoint_load(&m, NULL, path), MISLAS_OK);
    ck_assert(same_tensors(f.m, m));
    mislas_model_free(m);
    /* a relative path (the folder synced is ".") */
    char cwd[1024];
    ck_assert_ptr_nonnull(getcwd(cwd, sizeof cwd));
    ck_assert_int_eq(chdir(scratch), 0);
    ck_assert_status(mislas_checkpoint_save(f.m, NULL, "relative.ckpt"), MISLAS_OK);
    ck_assert_status(mislas_checkpoint_load(&m, NULL, "relative.ckpt"), MISLAS_OK);
    mislas_model_free(m);
    ck_assert_int_eq(chdir(cwd), 0);
    free(old.data);
    fixture_free(&f);
}
END_TEST

/* ---------------------------------------------------------------- out of memory */

typedef struct sweep_ctx {
    const char *path;
    fixture *f;
    int with_optimizer;
    const bytes *old;
} sweep_ctx;

static int sweep_load(void *p)
{
    sweep_ctx *c = p;
    mislas_model *m = (mislas_model *)(uintptr_t)1;
    mislas_optimizer *o = (mislas_optimizer *)(uintptr_t)1;
    int rc = mislas_checkpoint_load(&m, c->with_optimizer ? &o : NULL, c->path);
    if (rc != MISLAS_OK) {
        ck_assert_ptr_null(m);
        if (c->with_optimizer)
            ck_assert_ptr_null(o);
        return rc;
    }
    mislas_optimizer_free(c->with_optimizer ? o : NULL);
    mislas_model_free(m);
    return rc;
}

static int sweep_save(void *p)
{
    sweep_ctx *c = p;
    int rc = mislas_checkpoint_save(c->f->m, c->with_optimizer ? c->f->o : NULL, c->path);
    if (rc != MISLAS_OK) {
        /* the old file untouched */
        bytes now = read_all(c->path);
        ck_assert(now.size == c->old->size && memcmp(now.data, c->old->data, now.size) == 0);
        free(now.data);
    }
    return rc;
}

START_TEST(allocation_failures_are_clean)
{
    fixture f;
    fixture_make(&f, 1);
    const char *path = in_scratch("oom.ckpt");
    ck_assert_status(mislas_checkpoint_save(f.m, f.o, path), MISLAS_OK);
    sweep_ctx c = { path, &f, 1, NULL };
    ck_assert_int_gt(test_allocation_sweep(sweep_load, &c), 5);
    c.with_optimizer = 0;
    ck_assert_int_gt(test_allocation_sweep(sweep_load, &c), 5);
    bytes old = read_all(path);
    c.old = &old;
    const char *save_path = in_scratch("oom-save.ckpt");
    test_write_file(save_path, old.data, old.size);
    c.path = save_path;
    train_step(f.m, f.o, f.x, FX_N, f.y);   /* the new file differs */
    c.with_optimizer = 1;
    ck_assert_int_gt(test_allocation_sweep(sweep_save, &c), 1);
    test_write_file(save_path, old.data, old.size);     /* the successful save replaced it */
    c.with_optimizer = 0;
    ck_assert_int_gt(test_allocation_sweep(sweep_save, &c), 1);
    char names[256];
    listing(scratch, names, sizeof names);
    ck_assert_str_eq(names, "oom-save.ckpt/oom.ckpt/");
    free(old.data);
    fixture_free(&f);
}
END_TEST

/* Each message names the function the caller called, also when that one
 * reads the checkpoint through another. */
START_TEST(training_record_messages_name_their_call)
{
    int32_t stage, done, epochs;
    ck_assert_status(mislas_checkpoint_training(&stage, &done, &epochs, NULL), MISLAS_ERR_INVALID_ARGUMENT);
    ck_assert_msg(strncmp(mislas_last_error(), "mislas_checkpoint_training: ", 28) == 0, "%s", mislas_last_error());
    ck_assert_status(mislas_checkpoint_training(&stage, &done, &epochs, in_scratch("missing.ck")), MISLAS_ERR_IO);
    ck_assert_msg(strncmp(mislas_last_error(), "mislas_checkpoint_training: ", 28) == 0, "%s", mislas_last_error());
}
END_TEST

int main(void)
{
    mislas_set_num_threads(2);
    Suite *s = suite_create("checkpoint");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_checked_fixture(tc, scratch_setup, scratch_teardown);
    tcase_add_test(tc, round_trip_stage1);
    tcase_add_test(tc, round_trip_stage2);
    tcase_add_test(tc, round_trip_imagenet_and_heads);
    tcase_add_test(tc, resume_is_bit_identical);
    tcase_add_test(tc, file_follows_the_document);
    tcase_add_test(tc, truncated_and_extended_files);
    tcase_add_test(tc, single_bit_flips);
    tcase_add_test(tc, header_fields);
    tcase_add_test(tc, foreign_files);
    tcase_add_test(tc, inconsistent_content);
    tcase_add_test(tc, tiny_file_cannot_ask_for_a_huge_model);
    tcase_add_test(tc, save_arguments_and_refusals);
    tcase_add_test(tc, atomic_replacement);
    tcase_add_test(tc, allocation_failures_are_clean);
    tcase_add_test(tc, training_record_messages_name_their_call);
    suite_add_tcase(s, tc);
    return test_run_suite(s);
}
