/* The public model handle (model.h): creation, settings and read-outs.
 * The network itself is built in resnet.c and run in network.c. */
#include <mislas/dataset.h>

#include "model_internal.h"

#include "util/util.h"

#include <math.h>
#include <string.h>

/* Limits that keep every size computation far from overflow. */
enum { MAX_CHANNELS = 4096, MAX_SIDE = 4096, MAX_CLASSES = 1 << 20 };

void mislas_model_options_init(mislas_model_options *o)
{
    if (o == NULL)
        return;
    memset(o, 0, sizeof *o);
    o->struct_size = sizeof *o;
    o->arch = MISLAS_RESNET32;
    o->in_channels = 3;
    o->height = 32;
    o->width = 32;
    o->num_classes = 10;
    o->seed = 0;
}

static int check_options(const mislas_model_options *o)
{
    const char *fn = "mislas_model_new";
    if ((unsigned)o->arch > (unsigned)MISLAS_RESNET152)
        return mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT, "%s: arch = %d is not a mislas_arch", fn, (int)o->arch);
    if (o->in_channels < 1 || o->in_channels > MAX_CHANNELS)
        return mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT, "%s: in_channels = %d is not in [1, %d]", fn,
                (int)o->in_channels, MAX_CHANNELS);
    if (o->height < 1 || o->height > MAX_SIDE || o->width < 1 || o->width > MAX_SIDE)
        return mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT, "%s: image size %d x %d is not within [1, %d]", fn,
                (int)o->height, (int)o->width, MAX_SIDE);
    if (o->num_classes < 1 || o->num_classes > MAX_CLASSES)
        return mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT, "%s: num_classes = %d is not in [1, %d]", fn,
                (int)o->num_classes, MAX_CLASSES);
    return MISLAS_OK;
}

void mislas_model_free(mislas_model *m)
{
    if (m == NULL)
        return;
    mislasi_model_drop_activations(m);
    mislasi_free(m->tensors);
    mislasi_free(m->blocks);
    mislasi_free(m->values);
    mislasi_free(m->grads);
    mislasi_free(m->class_counts);
    mislasi_free(m);
}

int mislasi_model_new_limited(mislas_model **out, const mislas_model_options *opts, size_t max_values)
{
    MISLASI_CHECK_NOT_NULL("mislas_model_new", out);
    *out = NULL;
    mislas_model_options o;
    mislas_model_options_init(&o);
    int status = opts == NULL ? MISLAS_OK : mislasi_read_options("mislas_model_new", &o, sizeof o, opts);
    if (status != MISLAS_OK)
        return status;
    if ((status = check_options(&o)) != MISLAS_OK)
        return status;
    mislas_model *m = mislasi_calloc(1, sizeof *m);
    if (m == NULL)
        return mislasi_fail(MISLAS_ERR_OUT_OF_MEMORY, "mislas_model_new: out of memory");
    m->opts = o;
    m->mode = MISLAS_MODE_TRAIN;
    m->head = MISLAS_HEAD_LINEAR;
    m->value_limit = max_values;
    if ((status = mislasi_model_build(m)) != MISLAS_OK) {
        mislas_model_free(m);
        return status;
    }
    *out = m;
    return MISLAS_OK;
}

int mislas_model_new(mislas_model **out, const mislas_model_options *opts)
{
    return mislasi_model_new_limited(out, opts, SIZE_MAX);
}

int mislas_model_get_options(const mislas_model *m, mislas_model_options *opts)
{
    MISLASI_CHECK_NOT_NULL("mislas_model_get_options", m);
    MISLASI_CHECK_NOT_NULL("mislas_model_get_options", opts);
    int status = mislasi_check_output("mislas_model_get_options", "opts", opts->struct_size);
    if (status == MISLAS_OK)
        mislasi_write_output(opts, &m->opts, sizeof m->opts);
    return status;
}

int32_t mislas_model_num_classes(const mislas_model *m)
{
    return m == NULL ? mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT, "mislas_model_num_classes: m is NULL")
                     : m->opts.num_classes;
}

int32_t mislas_model_feature_dim(const mislas_model *m)
{
    return m == NULL ? mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT, "mislas_model_feature_dim: m is NULL")
                     : (int32_t)m->feat_c;
}

size_t mislas_model_num_parameters(const mislas_model *m)
{
    size_t count = 0;
    if (m == NULL)
        return 0;
    for (int32_t t = 0; t < m->num_tensors; t++) {
        mislasi_role r = m->tensors[t].role;
        if (r == MISLASI_ROLE_CONV || r == MISLASI_ROLE_BN_AFFINE || r == MISLASI_ROLE_FC)
            count += m->tensors[t].count;
    }
    return count;
}

/* Anything that changes what a forward computes discards the last one. */
static void forget_pass(mislas_model *m)
{
    m->prepared_current = false;
    m->batch = 0;
    m->have_grads = false;
}

int mislas_model_set_mode(mislas_model *m, mislas_mode mode)
{
    MISLASI_CHECK_NOT_NULL("mislas_model_set_mode", m);
    if ((unsigned)mode > (unsigned)MISLAS_MODE_SHIFTED_BN)
        return mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT, "mislas_model_set_mode: mode = %d is not a mislas_mode",
                (int)mode);
    m->mode = mode;
    forget_pass(m);
    return MISLAS_OK;
}

mislas_mode mislas_model_mode(const mislas_model *m)
{
    return m == NULL ? (mislas_mode)mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT, "mislas_model_mode: m is NULL")
                     : m->mode;
}

int mislas_model_freeze_backbone(mislas_model *m, int32_t frozen)
{
    MISLASI_CHECK_NOT_NULL("mislas_model_freeze_backbone", m);
    m->frozen = frozen != 0;
    forget_pass(m);
    return MISLAS_OK;
}

int32_t mislas_model_backbone_frozen(const mislas_model *m)
{
    return m == NULL ? mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT, "mislas_model_backbone_frozen: m is NULL")
                     : m->frozen;
}

int mislas_model_set_head(mislas_model *m, mislas_head head, uint64_t seed)
{
    MISLASI_CHECK_NOT_NULL("mislas_model_set_head", m);
    if ((unsigned)head > (unsigned)MISLAS_HEAD_MISLAS)
        return mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT, "mislas_model_set_head: head = %d is not a mislas_head",
                (int)head);
    if (head == MISLAS_HEAD_CRT)
        mislasi_init_classifier(m, seed);
    float *s = mislasi_tensor_values(m, m->scales);
    for (size_t j = 0; j < m->tensors[m->scales].count; j++)
        s[j] = 1.0f;
    m->head = head;
    forget_pass(m);
    return MISLAS_OK;
}

mislas_head mislas_model_head(const mislas_model *m)
{
    return m == NULL ? (mislas_head)mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT, "mislas_model_head: m is NULL")
                     : m->head;
}

bool mislasi_tensor_learns(const mislas_model *m, const mislasi_tensor *t)
{
    switch (t->role) {
    case MISLASI_ROLE_CONV:
        return !m->frozen;
    case MISLASI_ROLE_BN_AFFINE:
        return !m->frozen && m->mode != MISLAS_MODE_SHIFTED_BN;
    case MISLASI_ROLE_FC:
        return m->head != MISLAS_HEAD_LWS;
    case MISLASI_ROLE_SCALES:
        return m->head == MISLAS_HEAD_LWS || m->head == MISLAS_HEAD_MISLAS;
    default:
        return false;
    }
}

int mislas_model_classifier_norms(const mislas_model *m, float *norms)
{
    MISLASI_CHECK_NOT_NULL("mislas_model_classifier_norms", m);
    MISLASI_CHECK_NOT_NULL("mislas_model_classifier_norms", norms);
    const float *w = mislasi_tensor_values(m, m->fc_weight);
    for (size_t j = 0; j < (size_t)m->opts.num_classes; j++) {
        double sum = 0.0;
        for (size_t i = 0; i < m->feat_c; i++)
            sum += (double)w[j * m->feat_c + i] * w[j * m->feat_c + i];
        norms[j] = (float)sqrt(sum);
    }
    return MISLAS_OK;
}

int mislas_model_classifier_scales(const mislas_model *m, float *scales)
{
    MISLASI_CHECK_NOT_NULL("mislas_model_classifier_scales", m);
    MISLASI_CHECK_NOT_NULL("mislas_model_classifier_scales", scales);
    memcpy(scales, mislasi_tensor_values(m, m->scales), (size_t)m->opts.num_classes * sizeof(float));
    return MISLAS_OK;
}

/* The BN layers in network order are the tensors named *running_mean. */
static int32_t bn_tensor(const mislas_model *m, int32_t index)
{
    int32_t seen = 0;
    for (int32_t t = 0; t < m->num_tensors; t++)
        if (m->tensors[t].role == MISLASI_ROLE_BN_STAT && strstr(m->tensors[t].name, "running_mean") != NULL)
            if (seen++ == index)
                return t;
    return -1;
}

int32_t mislas_model_num_bn(const mislas_model *m)
{
    if (m == NULL)
        return mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT, "mislas_model_num_bn: m is NULL");
    int32_t count = 0;
    for (int32_t t = 0; t < m->num_tensors; t++)
        count += m->tensors[t].role == MISLASI_ROLE_BN_STAT;
    return count / 2;
}

int32_t mislas_model_bn_channels(const mislas_model *m, int32_t index)
{
    if (m == NULL)
        return mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT, "mislas_model_bn_channels: m is NULL");
    int32_t t = bn_tensor(m, index);
    if (t < 0)
        return mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT, "mislas_model_bn_channels: index %d is not in [0, %d)",
                (int)index, (int)mislas_model_num_bn(m));
    return (int32_t)m->tensors[t].count;
}

int mislas_model_bn_running_stats(const mislas_model *m, int32_t index, float *mean, float *var,
        int32_t channels)
{
    int32_t have = mislas_model_bn_channels(m, index);
    if (have < 0)
        return have;
    if (channels != have)
        return mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT,
                "mislas_model_bn_running_stats: channels = %d but BN layer %d has %d", (int)channels,
                (int)index, (int)have);
    int32_t t = bn_tensor(m, index);
    if (mean != NULL)
        memcpy(mean, mislasi_tensor_values(m, (size_t)t), (size_t)have * sizeof(float));
    if (var != NULL)    /* running_var follows running_mean */
        memcpy(var, mislasi_tensor_values(m, (size_t)t + 1), (size_t)have * sizeof(float));
    return MISLAS_OK;
}

int32_t mislas_model_num_tensors(const mislas_model *m)
{
    return m == NULL ? mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT, "mislas_model_num_tensors: m is NULL")
                     : m->num_tensors;
}

int mislas_model_tensor_info(const mislas_model *m, int32_t index, const char **name, size_t *count)
{
    MISLASI_CHECK_NOT_NULL("mislas_model_tensor_info", m);
    if (index < 0 || index >= m->num_tensors)
        return mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT, "mislas_model_tensor_info: index %d is not in [0, %d)",
                (int)index, (int)m->num_tensors);
    if (name != NULL)
        *name = m->tensors[index].name;
    if (count != NULL)
        *count = m->tensors[index].count;
    return MISLAS_OK;
}

int32_t mislasi_model_find_tensor(const mislas_model *m, const char *name)
{
    for (int32_t t = 0; t < m->num_tensors; t++)
        if (strcmp(m->tensors[t].name, name) == 0)
            return t;
    return -1;
}

static int find_sized(const char *fn, const mislas_model *m, const char *name, size_t count, int32_t *t)
{
    MISLASI_CHECK_NOT_NULL(fn, m);
    MISLASI_CHECK_NOT_NULL(fn, name);
    *t = mislasi_model_find_tensor(m, name);
    if (*t < 0)
        return mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT, "%s: the model has no tensor \"%s\"", fn, name);
    if (m->tensors[*t].count != count)
        return mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT, "%s: \"%s\" has %zu values, not %zu", fn, name,
                m->tensors[*t].count, count);
    return MISLAS_OK;
}

int mislas_model_get_tensor(const mislas_model *m, const char *name, float *values, size_t count)
{
    int32_t t;
    int status = find_sized("mislas_model_get_tensor", m, name, count, &t);
    if (status != MISLAS_OK)
        return status;
    MISLASI_CHECK_NOT_NULL("mislas_model_get_tensor", values);
    memcpy(values, mislasi_tensor_values(m, (size_t)t), count * sizeof(float));
    return MISLAS_OK;
}

int mislas_model_get_gradient(const mislas_model *m, const char *name, float *values, size_t count)
{
    int32_t t;
    int status = find_sized("mislas_model_get_gradient", m, name, count, &t);
    if (status != MISLAS_OK)
        return status;
    MISLASI_CHECK_NOT_NULL("mislas_model_get_gradient", values);
    if (!m->have_grads)
        return mislasi_fail(MISLAS_ERR_STATE, "mislas_model_get_gradient: no gradients (call mislas_model_backward first)");
    if (mislasi_tensor_learns(m, &m->tensors[t]))
        memcpy(values, mislasi_tensor_grads(m, (size_t)t), count * sizeof(float));
    else
        memset(values, 0, count * sizeof(float));
    return MISLAS_OK;
}

size_t mislasi_first_negative_variance(const mislas_model *m, int32_t t, const float *values, size_t count)
{
    static const char suffix[] = ".running_var";
    const char *name = m->tensors[t].name;
    size_t len = strlen(name);
    if (m->tensors[t].role != MISLASI_ROLE_BN_STAT || len < sizeof suffix - 1
            || strcmp(name + len - (sizeof suffix - 1), suffix) != 0)
        return count;
    for (size_t i = 0; i < count; i++)
        if (values[i] < 0)
            return i;
    return count;
}

int mislas_model_set_tensor(mislas_model *m, const char *name, const float *values, size_t count)
{
    int32_t t;
    int status = find_sized("mislas_model_set_tensor", m, name, count, &t);
    if (status != MISLAS_OK)
        return status;
    MISLASI_CHECK_NOT_NULL("mislas_model_set_tensor", values);
    for (size_t i = 0; i < count; i++)
        if (!isfinite(values[i]))
            return mislasi_fail(MISLAS_ERR_NUMERIC, "mislas_model_set_tensor: \"%s\"[%zu] is not finite", name, i);
    size_t negative = mislasi_first_negative_variance(m, t, values, count);
    if (negative < count)
        return mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT,
                "mislas_model_set_tensor: \"%s\"[%zu] = %g is negative, which a variance cannot be", name,
                negative, (double)values[negative]);
    memcpy(mislasi_tensor_values(m, (size_t)t), values, count * sizeof(float));
    forget_pass(m);
    return MISLAS_OK;
}

int mislas_model_set_class_counts(mislas_model *m, const int64_t *counts, int32_t num_classes)
{
    MISLASI_CHECK_NOT_NULL("mislas_model_set_class_counts", m);
    if (counts == NULL) {
        mislasi_free(m->class_counts);
        m->class_counts = NULL;
        m->num_class_counts = 0;
        return MISLAS_OK;
    }
    if (num_classes != m->opts.num_classes)
        return mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT,
                "mislas_model_set_class_counts: num_classes = %d but the model has %d", (int)num_classes,
                (int)m->opts.num_classes);
    for (int32_t i = 0; i < num_classes; i++)
        if (counts[i] < 0)
            return mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT,
                    "mislas_model_set_class_counts: counts[%d] = %lld is negative", (int)i, (long long)counts[i]);
    int64_t *copy = mislasi_alloc((size_t)num_classes * sizeof *copy);
    if (copy == NULL)
        return mislasi_fail(MISLAS_ERR_OUT_OF_MEMORY, "mislas_model_set_class_counts: out of memory");
    memcpy(copy, counts, (size_t)num_classes * sizeof *copy);
    mislasi_free(m->class_counts);
    m->class_counts = copy;
    m->num_class_counts = num_classes;
    return MISLAS_OK;
}

int mislas_model_class_counts(const mislas_model *m, int64_t *counts, int32_t num_classes)
{
    MISLASI_CHECK_NOT_NULL("mislas_model_class_counts", m);
    MISLASI_CHECK_NOT_NULL("mislas_model_class_counts", counts);
    if (m->class_counts == NULL)
        return mislasi_fail(MISLAS_ERR_STATE, "mislas_model_class_counts: the model has no class counts");
    if (num_classes != m->num_class_counts)
        return mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT,
                "mislas_model_class_counts: num_classes = %d but the model has %d", (int)num_classes,
                (int)m->num_class_counts);
    memcpy(counts, m->class_counts, (size_t)num_classes * sizeof *counts);
    return MISLAS_OK;
}

bool mislasi_model_same_kind(const mislas_model *a, const mislas_model *b)
{
    return a->opts.arch == b->opts.arch && a->opts.num_classes == b->opts.num_classes
            && a->opts.in_channels == b->opts.in_channels && a->opts.height == b->opts.height
            && a->opts.width == b->opts.width && a->head == b->head && a->mode == b->mode
            && a->frozen == b->frozen;
}

int mislasi_model_take_state(mislas_model *to, const mislas_model *from)
{
    int status = MISLAS_OK;
    for (int32_t t = 0; status == MISLAS_OK && t < to->num_tensors; t++)
        status = mislas_model_set_tensor(to, to->tensors[t].name, mislasi_tensor_values(from, (size_t)t),
                to->tensors[t].count);
    return status;
}

int mislasi_model_fits_data(const char *fn, const mislas_model *m, const mislas_dataset *d)
{
    int32_t c, h, w;
    mislas_dataset_shape(d, &c, &h, &w);
    int32_t k = mislas_dataset_num_classes(d);
    if (c != m->opts.in_channels || h != m->opts.height || w != m->opts.width || k != m->opts.num_classes)
        return mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT,
                "%s: the data set's images are %dx%dx%d with %d classes, the model takes %dx%dx%d with %d",
                fn, (int)c, (int)h, (int)w, (int)k, (int)m->opts.in_channels, (int)m->opts.height,
                (int)m->opts.width, (int)m->opts.num_classes);
    return MISLAS_OK;
}

uint64_t mislasi_model_digest(const mislas_model *m)
{
    uint64_t h = 0xcbf29ce484222325ull;
    mislasi_digest_bytes(&h, m->values, m->num_values * sizeof *m->values);
    return h;
}
