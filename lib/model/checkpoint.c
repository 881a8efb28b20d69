/* Checkpoints (checkpoint.h; the format is docs/checkpoint.md). The content
 * is built in memory, compressed and written in one atomic step; a load
 * checks everything (header, checksums, every section against the model the
 * file describes) before it hands anything back. */
#include <mislas/checkpoint.h>

#include "model.h"
#include "util/util.h"
#include "optim_internal.h"

#include <math.h>
#include <string.h>
#include <zlib.h>

#define MAGIC "MISLASCK"
enum { FORMAT_VERSION = 1, HEADER_SIZE = 40 };

static uint32_t tag_of(const char name[4])
{
    return (uint32_t)(uint8_t)name[0] | (uint32_t)(uint8_t)name[1] << 8
         | (uint32_t)(uint8_t)name[2] << 16 | (uint32_t)(uint8_t)name[3] << 24;
}

/* ---- writing ------------------------------------------------------------ */

typedef struct out_buf {
    uint8_t *data;
    size_t size, cap;
    bool failed;
} out_buf;

static void put(out_buf *b, const void *p, size_t n)
{
    if (b->failed)
        return;
    if (b->size + n > b->cap) {
        size_t cap = b->cap == 0 ? 4096 : b->cap;
        while (cap < b->size + n)
            cap *= 2;
        uint8_t *grown = mislasi_alloc(cap);
        if (grown == NULL) {
            b->failed = true;
            return;
        }
        if (b->size > 0)
            memcpy(grown, b->data, b->size);
        mislasi_free(b->data);
        b->data = grown;
        b->cap = cap;
    }
    memcpy(b->data + b->size, p, n);
    b->size += n;
}

/* Little-endian writers (the library runs on little-endian machines; the
 * byte order is spelled out so that the format does not depend on it). */
static void put_u16(out_buf *b, uint16_t v)
{
    uint8_t x[2] = {(uint8_t)v, (uint8_t)(v >> 8)};
    put(b, x, 2);
}

static void put_u32(out_buf *b, uint32_t v)
{
    uint8_t x[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    put(b, x, 4);
}

static void put_u64(out_buf *b, uint64_t v)
{
    put_u32(b, (uint32_t)v);
    put_u32(b, (uint32_t)(v >> 32));
}

static void put_f64(out_buf *b, double v)
{
    uint64_t u;
    memcpy(&u, &v, sizeof u);
    put_u64(b, u);
}

static void put_floats(out_buf *b, const float *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &v[i], sizeof u);
        put_u32(b, u);
    }
}

static void put_section(out_buf *b, const char tag[4], uint64_t length)
{
    put_u32(b, tag_of(tag));
    put_u64(b, length);
}

static void write_content(out_buf *b, const mislas_model *m, const mislas_optimizer *o,
        const mislasi_run_record *run)
{
    put_section(b, "MODL", 40);
    put_u32(b, (uint32_t)m->opts.arch);
    put_u32(b, (uint32_t)m->opts.in_channels);
    put_u32(b, (uint32_t)m->opts.height);
    put_u32(b, (uint32_t)m->opts.width);
    put_u32(b, (uint32_t)m->opts.num_classes);
    put_u32(b, (uint32_t)m->head);
    put_u32(b, (uint32_t)m->mode);
    put_u32(b, m->frozen ? 1u : 0u);
    put_u64(b, m->opts.seed);
    for (int32_t i = 0; i < m->num_tensors; i++) {
        const mislasi_tensor *t = &m->tensors[i];
        size_t name_len = strlen(t->name);
        put_section(b, "TENS", 2 + name_len + 4 + 8 * (uint64_t)t->ndim + 4 * (uint64_t)t->count);
        put_u16(b, (uint16_t)name_len);
        put(b, t->name, name_len);
        put_u32(b, t->ndim);
        for (uint32_t d = 0; d < t->ndim; d++)
            put_u64(b, t->dims[d]);
        put_floats(b, mislasi_tensor_values(m, (size_t)i), t->count);
    }
    if (m->class_counts != NULL) {
        put_section(b, "CNTS", 4 + 8 * (uint64_t)m->num_class_counts);
        put_u32(b, (uint32_t)m->num_class_counts);
        for (int32_t i = 0; i < m->num_class_counts; i++)
            put_u64(b, (uint64_t)m->class_counts[i]);
    }
    if (o != NULL) {
        uint64_t length = 8 * 4 + 8 + 4;
        for (int g = 0; g < MISLASI_GROUPS; g++)
            if (o->groups[g].num_tensors > 0)
                length += 4 + 8 + 4 * (uint64_t)o->groups[g].size;
        put_section(b, "OPTM", length);
        put_f64(b, o->lr);
        put_f64(b, o->opts.momentum);
        put_f64(b, o->opts.weight_decay);
        put_f64(b, o->opts.lr_factor);
        put_u64(b, o->steps);
        uint32_t groups = 0;
        for (int g = 0; g < MISLASI_GROUPS; g++)
            groups += o->groups[g].num_tensors > 0;
        put_u32(b, groups);
        for (int g = 0; g < MISLASI_GROUPS; g++) {
            if (o->groups[g].num_tensors == 0)
                continue;
            put_u32(b, (uint32_t)g);
            put_u64(b, o->groups[g].size);
            put_floats(b, o->groups[g].velocity, o->groups[g].size);
        }
    }
    if (run != NULL) {
        put_section(b, "PROG", 20);
        put_u32(b, (uint32_t)run->stage);
        put_u32(b, (uint32_t)run->epochs_done);
        put_u32(b, (uint32_t)run->epochs);
        put_u64(b, run->digest);
    }
}

int mislas_checkpoint_save(const mislas_model *m, const mislas_optimizer *o, const char *path)
{
    return mislasi_checkpoint_write("mislas_checkpoint_save", path, m, o, NULL);
}

int mislasi_checkpoint_write(const char *fn, const char *path, const mislas_model *m, const mislas_optimizer *o,
        const mislasi_run_record *run)
{
    MISLASI_CHECK_NOT_NULL(fn, path);
    MISLASI_CHECK_NOT_NULL(fn, m);
    if (o != NULL && o->model != m)
        return mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT, "%s: the optimizer belongs to another model", fn);
    /* What a load would refuse is not written: groups that no longer match
     * the model's head, mode and freezing, and non-finite values (a load
     * could not give them back). */
    if (o != NULL && !mislasi_optimizer_groups_current(o))
        return mislasi_fail(MISLAS_ERR_STATE,
                "%s: the model's head, shifted-BN mode or freezing changed since the optimizer was created", fn);
    for (int32_t i = 0; i < m->num_tensors; i++) {
        const float *v = mislasi_tensor_values(m, (size_t)i);
        for (size_t j = 0; j < m->tensors[i].count; j++)
            if (!isfinite(v[j]))
                return mislasi_fail(MISLAS_ERR_NUMERIC, "%s: tensor \"%s\" value %zu is not finite", fn,
                        m->tensors[i].name, j);
    }
    for (int g = 0; o != NULL && g < MISLASI_GROUPS; g++)
        for (size_t j = 0; j < o->groups[g].size; j++)
            if (!isfinite(o->groups[g].velocity[j]))
                return mislasi_fail(MISLAS_ERR_NUMERIC, "%s: momentum value %zu of group %d is not finite", fn, j, g);
    out_buf content = {0};
    write_content(&content, m, o, run);
    if (content.failed) {
        mislasi_free(content.data);
        return mislasi_fail(MISLAS_ERR_OUT_OF_MEMORY, "%s: out of memory building the checkpoint", fn);
    }
    uLong bound = compressBound((uLong)content.size);
    uint8_t *file = mislasi_alloc(HEADER_SIZE + (size_t)bound);
    if (file == NULL) {
        mislasi_free(content.data);
        return mislasi_fail(MISLAS_ERR_OUT_OF_MEMORY, "%s: out of memory compressing the checkpoint", fn);
    }
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    mislasi_zlib_use_library_memory(&zs);
    int zrc = deflateInit(&zs, 6);
    if (zrc == Z_OK) {
        zs.next_in = content.data;
        zs.avail_in = (uInt)content.size;
        zs.next_out = file + HEADER_SIZE;
        zs.avail_out = (uInt)bound;
        zrc = deflate(&zs, Z_FINISH);
        deflateEnd(&zs);
    }
    if (zrc != Z_STREAM_END) {
        mislasi_free(content.data);
        mislasi_free(file);
        return mislasi_fail(zrc == Z_MEM_ERROR || zrc == Z_OK ? MISLAS_ERR_OUT_OF_MEMORY : MISLAS_ERR_IO,
                "%s: zlib could not compress the checkpoint (%s)", fn, zError(zrc));
    }
    size_t compressed = (size_t)zs.total_out;
    out_buf header = {0};
    put(&header, MAGIC, 8);
    put_u32(&header, FORMAT_VERSION);
    put_u32(&header, 0);
    put_u64(&header, content.size);
    put_u64(&header, compressed);
    put_u32(&header, (uint32_t)crc32(crc32(0L, Z_NULL, 0), content.data, (uInt)content.size));
    mislasi_free(content.data);
    if (!header.failed)
        put_u32(&header, (uint32_t)crc32(crc32(0L, Z_NULL, 0), header.data, 36));
    if (header.failed) {
        mislasi_free(header.data);
        mislasi_free(file);
        return mislasi_fail(MISLAS_ERR_OUT_OF_MEMORY, "%s: out of memory", fn);
    }
    memcpy(file, header.data, HEADER_SIZE);
    mislasi_free(header.data);
    int status = mislasi_write_file_atomic(fn, path, file, HEADER_SIZE + compressed);
    mislasi_free(file);
    return status;
}

/* ---- reading ------------------------------------------------------------ */

typedef struct in_buf {
    const uint8_t *data;
    size_t size, pos;
    const char *path;
    size_t whole;               /* the whole content's size */
} in_buf;

static uint32_t get_u32_at(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get_u64_at(const uint8_t *p)
{
    return (uint64_t)get_u32_at(p) | (uint64_t)get_u32_at(p + 4) << 32;
}

/* Each reader checks that the bytes are there; false = the section is short. */
static bool get_u16(in_buf *b, uint16_t *v)
{
    if (b->size - b->pos < 2)
        return false;
    *v = (uint16_t)(b->data[b->pos] | b->data[b->pos + 1] << 8);
    b->pos += 2;
    return true;
}

static bool get_u32(in_buf *b, uint32_t *v)
{
    if (b->size - b->pos < 4)
        return false;
    *v = get_u32_at(b->data + b->pos);
    b->pos += 4;
    return true;
}

static bool get_u64(in_buf *b, uint64_t *v)
{
    if (b->size - b->pos < 8)
        return false;
    *v = get_u64_at(b->data + b->pos);
    b->pos += 8;
    return true;
}

static bool get_f64(in_buf *b, double *v)
{
    uint64_t u;
    if (!get_u64(b, &u))
        return false;
    memcpy(v, &u, sizeof *v);
    return true;
}

/* count floats into out (finite), false if short; *bad set to the first
 * non-finite index or count. */
static bool get_floats(in_buf *b, float *out, size_t count, size_t *bad)
{
    if ((b->size - b->pos) / 4 < count)
        return false;
    *bad = count;
    for (size_t i = 0; i < count; i++) {
        uint32_t u = get_u32_at(b->data + b->pos + 4 * i);
        memcpy(&out[i], &u, sizeof u);
        if (*bad == count && !isfinite(out[i]))
            *bad = i;
    }
    b->pos += 4 * count;
    return true;
}

#define LOAD_FN "mislas_checkpoint_load"

static int corrupt(const in_buf *b, const char *what)
{
    return mislasi_fail(MISLAS_ERR_FORMAT, LOAD_FN ": %s: %s (content offset %zu)", b->path, what, b->pos);
}

static int read_model_section(in_buf *sec, mislas_model **out)
{
    uint32_t arch, c, h, w, k, head, mode, frozen;
    uint64_t seed;
    if (!get_u32(sec, &arch) || !get_u32(sec, &c) || !get_u32(sec, &h) || !get_u32(sec, &w)
            || !get_u32(sec, &k) || !get_u32(sec, &head) || !get_u32(sec, &mode) || !get_u32(sec, &frozen)
            || !get_u64(sec, &seed) || sec->pos != sec->size)
        return corrupt(sec, "the MODL section has the wrong length");
    if (head > MISLAS_HEAD_MISLAS || mode > MISLAS_MODE_SHIFTED_BN || frozen > 1 || arch > MISLAS_RESNET152
            || c > INT32_MAX || h > INT32_MAX || w > INT32_MAX || k > INT32_MAX)
        return corrupt(sec, "the MODL section holds values out of range");
    mislas_model_options o;
    mislas_model_options_init(&o);
    o.arch = (mislas_arch)arch;
    o.in_channels = (int32_t)c;
    o.height = (int32_t)h;
    o.width = (int32_t)w;
    o.num_classes = (int32_t)k;
    o.seed = seed;
    int status = mislasi_model_new_limited(out, &o, sec->whole / 4);
    if (status == MISLAS_ERR_INVALID_ARGUMENT || status == MISLAS_ERR_FORMAT)
        return mislasi_fail_within(MISLAS_ERR_FORMAT, LOAD_FN ": the MODL section describes no valid model");
    if (status != MISLAS_OK)
        return mislasi_fail_within(status, LOAD_FN);
    (*out)->head = (mislas_head)head;
    (*out)->mode = (mislas_mode)mode;
    (*out)->frozen = frozen != 0;
    return MISLAS_OK;
}

static int read_tensor_section(in_buf *sec, mislas_model *m, bool *seen)
{
    uint16_t len;
    char name[MISLASI_NAME_MAX];
    if (!get_u16(sec, &len) || sec->size - sec->pos < len)
        return corrupt(sec, "a TENS section ends inside its name");
    if (len >= sizeof name)
        return corrupt(sec, "a TENS section names no tensor of this model (name too long)");
    memcpy(name, sec->data + sec->pos, len);
    name[len] = '\0';
    sec->pos += len;
    int32_t t = memchr(name, '\0', len) != NULL ? -1 : mislasi_model_find_tensor(m, name);
    if (t < 0)
        return mislasi_fail(MISLAS_ERR_FORMAT, LOAD_FN ": %s: tensor \"%s\" is not part of this model", sec->path, name);
    if (seen[t])
        return mislasi_fail(MISLAS_ERR_FORMAT, LOAD_FN ": %s: tensor \"%s\" appears twice", sec->path, name);
    seen[t] = true;
    const mislasi_tensor *tensor = &m->tensors[t];
    uint32_t ndim;
    if (!get_u32(sec, &ndim))
        return corrupt(sec, "a TENS section ends early");
    if (ndim != tensor->ndim)
        return mislasi_fail(MISLAS_ERR_FORMAT, LOAD_FN ": %s: tensor \"%s\" has %u dimensions, the model's has %u",
                sec->path, name, ndim, tensor->ndim);
    for (uint32_t d = 0; d < ndim; d++) {
        uint64_t dim;
        if (!get_u64(sec, &dim))
            return corrupt(sec, "a TENS section ends early");
        if (dim != tensor->dims[d])
            return mislasi_fail(MISLAS_ERR_FORMAT,
                    LOAD_FN ": %s: tensor \"%s\" dimension %u is %llu, the model's is %llu", sec->path, name, d,
                    (unsigned long long)dim, (unsigned long long)tensor->dims[d]);
    }
    size_t bad;
    if (!get_floats(sec, mislasi_tensor_values(m, (size_t)t), tensor->count, &bad) || sec->pos != sec->size)
        return mislasi_fail(MISLAS_ERR_FORMAT, LOAD_FN ": %s: tensor \"%s\" does not hold exactly %zu values",
                sec->path, name, tensor->count);
    if (bad != tensor->count)
        return mislasi_fail(MISLAS_ERR_FORMAT, LOAD_FN ": %s: tensor \"%s\" value %zu is not finite", sec->path,
                name, bad);
    const float *values = mislasi_tensor_values(m, (size_t)t);
    bad = mislasi_first_negative_variance(m, t, values, tensor->count);
    if (bad != tensor->count)
        return mislasi_fail(MISLAS_ERR_FORMAT, LOAD_FN ": %s: tensor \"%s\" value %zu is %g, a negative variance",
                sec->path, name, bad, (double)values[bad]);
    return MISLAS_OK;
}

static int read_counts_section(in_buf *sec, mislas_model *m)
{
    uint32_t k;
    if (!get_u32(sec, &k) || k != (uint32_t)m->opts.num_classes || (sec->size - sec->pos) != 8 * (uint64_t)k)
        return corrupt(sec, "the CNTS section does not hold one count per class");
    int64_t *counts = mislasi_alloc((size_t)k * sizeof *counts);
    if (counts == NULL)
        return mislasi_fail(MISLAS_ERR_OUT_OF_MEMORY, LOAD_FN ": out of memory");
    for (uint32_t i = 0; i < k; i++) {
        uint64_t v = 0;
        get_u64(sec, &v);   /* the length was checked above */
        counts[i] = (int64_t)v;
        if (counts[i] < 0) {
            mislasi_free(counts);
            return corrupt(sec, "the CNTS section holds a negative count");
        }
    }
    m->class_counts = counts;
    m->num_class_counts = (int32_t)k;
    return MISLAS_OK;
}

static int read_run_section(in_buf *sec, mislasi_run_record *run)
{
    uint32_t stage, done, epochs;
    if (!get_u32(sec, &stage) || !get_u32(sec, &done) || !get_u32(sec, &epochs) || !get_u64(sec, &run->digest)
            || sec->pos != sec->size)
        return corrupt(sec, "the PROG section has the wrong length");
    if (stage < 1 || stage > 2 || epochs < 1 || epochs > INT32_MAX || done > epochs)
        return corrupt(sec, "the PROG section holds values out of range");
    run->stage = (int32_t)stage;
    run->epochs_done = (int32_t)done;
    run->epochs = (int32_t)epochs;
    return MISLAS_OK;
}

static int read_optimizer_section(in_buf *sec, mislas_model *m, mislas_optimizer **out)
{
    mislas_optimizer_sgd_options o;
    mislas_optimizer_sgd_options_init(&o);
    double lr;
    uint64_t steps;
    uint32_t groups;
    if (!get_f64(sec, &lr) || !get_f64(sec, &o.momentum) || !get_f64(sec, &o.weight_decay)
            || !get_f64(sec, &o.lr_factor) || !get_u64(sec, &steps) || !get_u32(sec, &groups))
        return corrupt(sec, "the OPTM section ends early");
    o.lr = lr;
    int status = mislas_optimizer_new_sgd(out, m, &o);
    if (status == MISLAS_ERR_INVALID_ARGUMENT)
        return mislasi_fail_within(MISLAS_ERR_FORMAT, LOAD_FN ": the OPTM section's settings are invalid");
    if (status != MISLAS_OK)
        return mislasi_fail_within(status, LOAD_FN);
    mislas_optimizer *opt = *out;
    opt->steps = steps;
    uint32_t expected = 0;
    for (int g = 0; g < MISLASI_GROUPS; g++)
        expected += opt->groups[g].num_tensors > 0;
    if (groups != expected)
        return corrupt(sec, "the OPTM section's groups do not match the model's head, mode and freezing");
    int last = -1;
    for (uint32_t i = 0; i < groups; i++) {
        uint32_t g;
        uint64_t size;
        if (!get_u32(sec, &g) || !get_u64(sec, &size))
            return corrupt(sec, "the OPTM section ends early");
        if (g >= MISLASI_GROUPS || (int)g <= last || opt->groups[g].num_tensors == 0 || size != opt->groups[g].size)
            return corrupt(sec, "an OPTM group does not match the model's parameters");
        last = (int)g;
        size_t bad;
        if (!get_floats(sec, opt->groups[g].velocity, (size_t)size, &bad))
            return corrupt(sec, "the OPTM section ends early");
        if (bad != size)
            return corrupt(sec, "the OPTM section holds a non-finite momentum value");
    }
    if (sec->pos != sec->size)
        return corrupt(sec, "the OPTM section is longer than its groups");
    return MISLAS_OK;
}

/* A fuzzing build (the libFuzzer convention's macro, never set in a release)
 * accepts wrong checksums so that mutated files reach the section parsers,
 * which checksums would otherwise shield from nearly every mutation. */
#ifdef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
#define SKIP_CHECKSUMS 1
#else
#define SKIP_CHECKSUMS 0
#endif

/* The decompressed content, after every header check. */
/* The file's 40-byte header, checked before the rest is read (a file that
 * is not a checkpoint costs those bytes only); the file's length is the
 * header's plus the compressed size it states. */
static int check_file_header(void *ctx, const uint8_t *file, size_t got, size_t *total)
{
    const char *path = ctx;
    if (got < HEADER_SIZE || memcmp(file, MAGIC, 8) != 0)
        return mislasi_fail(MISLAS_ERR_FORMAT, LOAD_FN ": %s is not a libmislas checkpoint (no MISLASCK header)", path);
    uint32_t header_crc = (uint32_t)crc32(crc32(0L, Z_NULL, 0), file, 36);
    if (header_crc != get_u32_at(file + 36) && !SKIP_CHECKSUMS)
        return mislasi_fail(MISLAS_ERR_FORMAT, LOAD_FN ": %s: the header's checksum does not match (corrupt file)", path);
    uint32_t version = get_u32_at(file + 8), flags = get_u32_at(file + 12);
    if (version != FORMAT_VERSION)
        return mislasi_fail(MISLAS_ERR_FORMAT, LOAD_FN ": %s: format version %u; this library reads version %d",
                path, version, FORMAT_VERSION);
    if (flags != 0)
        return mislasi_fail(MISLAS_ERR_FORMAT, LOAD_FN ": %s: unknown flags 0x%x", path, flags);
    uint64_t compressed = get_u64_at(file + 24);
    *total = compressed < MISLASI_INPUT_LIMIT ? HEADER_SIZE + (size_t)compressed : MISLASI_INPUT_LIMIT;
    return MISLAS_OK;
}

/* The content of a file whose header check_file_header passed. */
static int inflate_content(const char *path, const uint8_t *file, size_t size, uint8_t **content,
        size_t *content_size)
{
    *content = NULL;
    uint64_t expect = get_u64_at(file + 16), compressed = get_u64_at(file + 24);
    if (compressed != size - HEADER_SIZE)
        return mislasi_fail(MISLAS_ERR_FORMAT, LOAD_FN ": %s: the file has %zu bytes, its header promises %llu "
                "(truncated or extended)", path, size, (unsigned long long)(compressed + HEADER_SIZE));
    if (expect / MISLASI_DEFLATE_MAX_RATIO > compressed + 1 || expect > MISLASI_INPUT_LIMIT || compressed > UINT32_MAX || expect > UINT32_MAX)
        return mislasi_fail(MISLAS_ERR_FORMAT, LOAD_FN ": %s: the header's sizes are implausible", path);
    uint8_t *out = mislasi_alloc(expect == 0 ? 1 : (size_t)expect);
    if (out == NULL)
        return mislasi_fail(MISLAS_ERR_OUT_OF_MEMORY, LOAD_FN ": out of memory for %llu bytes of content",
                (unsigned long long)expect);
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    mislasi_zlib_use_library_memory(&zs);
    int zrc = inflateInit(&zs);
    if (zrc != Z_OK) {
        mislasi_free(out);
        return mislasi_fail(zrc == Z_MEM_ERROR ? MISLAS_ERR_OUT_OF_MEMORY : MISLAS_ERR_UNSUPPORTED,
                LOAD_FN ": zlib cannot start: %s", zError(zrc));
    }
    zs.next_in = (Bytef *)(file + HEADER_SIZE);
    zs.avail_in = (uInt)compressed;
    zs.next_out = out;
    zs.avail_out = (uInt)expect;
    zrc = inflate(&zs, Z_FINISH);
    size_t produced = (size_t)zs.total_out, consumed = (size_t)zs.total_in;
    inflateEnd(&zs);
    if (zrc == Z_MEM_ERROR) {
        mislasi_free(out);
        return mislasi_fail(MISLAS_ERR_OUT_OF_MEMORY, LOAD_FN ": out of memory decompressing %s", path);
    }
    if (zrc != Z_STREAM_END || produced != expect || consumed != compressed) {
        mislasi_free(out);
        return mislasi_fail(MISLAS_ERR_FORMAT, LOAD_FN ": %s: the compressed content is corrupt near byte %zu",
                path, HEADER_SIZE + consumed);
    }
    if ((uint32_t)crc32(crc32(0L, Z_NULL, 0), out, (uInt)expect) != get_u32_at(file + 32) && !SKIP_CHECKSUMS) {
        mislasi_free(out);
        return mislasi_fail(MISLAS_ERR_FORMAT, LOAD_FN ": %s: the content's checksum does not match (corrupt file)", path);
    }
    *content = out;
    *content_size = (size_t)expect;
    return MISLAS_OK;
}

static int parse(const char *path, const uint8_t *content, size_t size, mislas_model **model,
        mislas_optimizer **opt, bool want_opt, mislasi_run_record *run)
{
    in_buf all = {.data = content, .size = size, .path = path};
    bool *seen = NULL;
    bool have_counts = false, have_opt = false, have_run = false;
    int status = MISLAS_OK;
    while (status == MISLAS_OK && all.pos < all.size) {
        uint32_t tag;
        uint64_t length;
        if (!get_u32(&all, &tag) || !get_u64(&all, &length)) {
            status = corrupt(&all, "a section header is cut off");
            break;
        }
        if (length > all.size - all.pos) {
            status = corrupt(&all, "a section runs past the end of the content");
            break;
        }
        in_buf sec = {.data = all.data + all.pos, .size = (size_t)length, .path = path, .whole = size};
        all.pos += (size_t)length;
        if (*model == NULL) {
            if (tag != tag_of("MODL")) {
                status = corrupt(&all, "the first section is not MODL");
                break;
            }
            status = read_model_section(&sec, model);
            if (status == MISLAS_OK) {
                seen = mislasi_calloc((size_t)(*model)->num_tensors, sizeof *seen);
                if (seen == NULL)
                    status = mislasi_fail(MISLAS_ERR_OUT_OF_MEMORY, LOAD_FN ": out of memory");
            }
        } else if (tag == tag_of("TENS")) {
            status = read_tensor_section(&sec, *model, seen);
        } else if (tag == tag_of("CNTS") && !have_counts) {
            have_counts = true;
            status = read_counts_section(&sec, *model);
        } else if (tag == tag_of("OPTM") && !have_opt) {
            /* checked even when the caller does not want it */
            have_opt = true;
            mislas_optimizer *loaded = NULL;
            status = read_optimizer_section(&sec, *model, &loaded);
            if (status == MISLAS_OK && want_opt)
                *opt = loaded;
            else
                mislas_optimizer_free(loaded);
        } else if (tag == tag_of("PROG") && !have_run) {
            have_run = true;
            status = read_run_section(&sec, run);
        } else {
            status = corrupt(&all, "an unknown or repeated section");
        }
    }
    if (status == MISLAS_OK && *model == NULL)
        status = mislasi_fail(MISLAS_ERR_FORMAT, LOAD_FN ": %s: the checkpoint holds no model", path);
    for (int32_t t = 0; status == MISLAS_OK && t < (*model)->num_tensors; t++)
        if (!seen[t])
            status = mislasi_fail(MISLAS_ERR_FORMAT, LOAD_FN ": %s: tensor \"%s\" is missing", path,
                    (*model)->tensors[t].name);
    mislasi_free(seen);
    return status;
}

int mislas_checkpoint_load(mislas_model **model, mislas_optimizer **optimizer, const char *path)
{
    MISLASI_CHECK_NOT_NULL(LOAD_FN, model);
    *model = NULL;
    if (optimizer != NULL)
        *optimizer = NULL;
    mislasi_run_record run;
    return mislasi_checkpoint_read(path, model, optimizer, &run);
}

int mislas_checkpoint_training(int32_t *stage, int32_t *epochs_done, int32_t *epochs, const char *path)
{
    static const char fn[] = "mislas_checkpoint_training";
    MISLASI_CHECK_NOT_NULL(fn, path);
    mislas_model *m = NULL;
    mislasi_run_record run;
    int status = mislasi_checkpoint_read(path, &m, NULL, &run);
    mislas_model_free(m);
    if (status != MISLAS_OK)
        return mislasi_fail_within(status, fn);
    if (stage != NULL)
        *stage = run.stage;
    if (epochs_done != NULL)
        *epochs_done = run.epochs_done;
    if (epochs != NULL)
        *epochs = run.epochs;
    return MISLAS_OK;
}

int mislasi_checkpoint_read(const char *path, mislas_model **model, mislas_optimizer **optimizer,
        mislasi_run_record *run)
{
    *model = NULL;
    if (optimizer != NULL)
        *optimizer = NULL;
    memset(run, 0, sizeof *run);
    MISLASI_CHECK_NOT_NULL(LOAD_FN, path);
    uint8_t *file;
    size_t size;
    int status = mislasi_read_expected(LOAD_FN, path, false, HEADER_SIZE, check_file_header, (void *)path, &file,
            &size, NULL);
    if (status != MISLAS_OK)
        return status;
    uint8_t *content;
    size_t content_size = 0;
    status = inflate_content(path, file, size, &content, &content_size);
    mislasi_free(file);
    if (status != MISLAS_OK)
        return status;
    mislas_model *m = NULL;
    mislas_optimizer *o = NULL;
    status = parse(path, content, content_size, &m, &o, optimizer != NULL, run);
    mislasi_free(content);
    if (status != MISLAS_OK) {
        mislas_optimizer_free(o);
        mislas_model_free(m);
        memset(run, 0, sizeof *run);
        return status;
    }
    *model = m;
    if (optimizer != NULL)
        *optimizer = o;
    return MISLAS_OK;
}
