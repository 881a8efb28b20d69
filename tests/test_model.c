/* Models and the optimiser through the public API only: parameter counts
 * worked out from the architectures, initialisation statistics, the whole
 * backward pass against central finite differences (gradients read back
 * through an SGD step), batch-norm modes, freezing, the four heads, SGD
 * against PyTorch's recurrence, the schedules, a short training run,
 * determinism, errors and allocation failures. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const double PI = 3.14159265358979323846;

/* ---------------------------------------------------------------- helpers */

/* An approximately standard normal value (Box-Muller on the tests' own
 * generator). */
static double test_normal(void)
{
    double u = test_uniform(), v = test_uniform();
    return sqrt(-2.0 * log(1.0 - u)) * cos(2.0 * PI * v);
}

static float *random_images(size_t count, double offset)
{
    float *x = malloc(count * sizeof *x);
    for (size_t i = 0; i < count; i++)
        x[i] = (float)(offset + test_normal());
    return x;
}

static size_t tensor_size(const mislas_model *m, const char *name)
{
    int32_t n = mislas_model_num_tensors(m);
    for (int32_t t = 0; t < n; t++) {
        const char *tn;
        size_t count;
        ck_assert_status(mislas_model_tensor_info(m, t, &tn, &count), MISLAS_OK);
        if (strcmp(tn, name) == 0)
            return count;
    }
    ck_abort_msg("the model has no tensor %s", name);
    return 0;
}

static float *get_tensor(const mislas_model *m, const char *name)
{
    size_t count = tensor_size(m, name);
    float *v = malloc(count * sizeof *v);
    ck_assert_status(mislas_model_get_tensor(m, name, v, count), MISLAS_OK);
    return v;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

/* Which tensors are which, by the reference's names. */
static int is_fc(const char *name) { return strncmp(name, "fc.", 3) == 0; }
static int is_scales(const char *name) { return strcmp(name, "learned_norm") == 0; }
static int is_running(const char *name) { return ends_with(name, "running_mean") || ends_with(name, "running_var"); }
static int is_conv(const char *name) { return strstr(name, "conv") != NULL || ends_with(name, "downsample.0.weight"); }
static int is_bn_affine(const char *name)
{
    return !is_fc(name) && !is_conv(name) && !is_scales(name) && !is_running(name);
}

/* Every tensor's values, in the model's order; the names are copies, so a
 * snapshot outlives its model. */
enum { NAME_CAP = 64 };
typedef struct snapshot {
    int32_t count;
    const char **names;
    char *name_store;
    size_t *sizes;
    float **values;
} snapshot;

/* The tensors named in names[0..count-1] (names NULL: every tensor). */
static void snapshot_take_some(const mislas_model *m, const char *const *names, int32_t count, snapshot *s)
{
    s->count = names == NULL ? mislas_model_num_tensors(m) : count;
    ck_assert_int_gt(s->count, 0);
    s->names = calloc((size_t)s->count, sizeof *s->names);
    s->name_store = calloc((size_t)s->count, NAME_CAP);
    s->sizes = calloc((size_t)s->count, sizeof *s->sizes);
    s->values = calloc((size_t)s->count, sizeof *s->values);
    for (int32_t t = 0; t < s->count; t++) {
        const char *name = NULL;
        if (names == NULL) {
            ck_assert_status(mislas_model_tensor_info(m, t, &name, &s->sizes[t]), MISLAS_OK);
        } else {
            name = names[t];
            s->sizes[t] = tensor_size(m, names[t]);
        }
        ck_assert_uint_lt(strlen(name), NAME_CAP);
        s->names[t] = strcpy(s->name_store + (size_t)t * NAME_CAP, name);
        s->values[t] = malloc(s->sizes[t] * sizeof(float));
        ck_assert_status(mislas_model_get_tensor(m, s->names[t], s->values[t], s->sizes[t]), MISLAS_OK);
    }
}

static void snapshot_take(const mislas_model *m, snapshot *s)
{
    snapshot_take_some(m, NULL, 0, s);
}

static void snapshot_restore(mislas_model *m, const snapshot *s)
{
    for (int32_t t = 0; t < s->count; t++)
        ck_assert_status(mislas_model_set_tensor(m, s->names[t], s->values[t], s->sizes[t]), MISLAS_OK);
}

static void snapshot_free(snapshot *s)
{
    for (int32_t t = 0; t < s->count; t++)
        free(s->values[t]);
    free(s->values);
    free(s->sizes);
    free(s->names);
    free(s->name_store);
    memset(s, 0, sizeof *s);
}

static int32_t snapshot_find(const snapshot *s, const char *name)
{
    for (int32_t t = 0; t < s->count; t++)
        if (strcmp(s->names[t], name) == 0)
            return t;
    ck_abort_msg("no tensor %s", name);
    return -1;
}

/* Whether two snapshots hold bit-identical values in tensor t. */
static int tensor_same(const snapshot *a, const snapshot *b, int32_t t)
{
    return memcmp(a->values[t], b->values[t], a->sizes[t] * sizeof(float)) == 0;
}

static int snapshots_identical(const snapshot *a, const snapshot *b)
{
    if (a->count != b->count)
        return 0;
    for (int32_t t = 0; t < a->count; t++)
        if (strcmp(a->names[t], b->names[t]) != 0 || a->sizes[t] != b->sizes[t] || !tensor_same(a, b, t))
            return 0;
    return 1;
}

/* Mean cross-entropy of float logits, in double (the finite differences'
 * objective: no float rounding after the logits). */
static double ce_double(const float *z, const int32_t *y, size_t n, size_t k)
{
    double total = 0.0;
    for (size_t i = 0; i < n; i++) {
        double mx = z[i * k];
        for (size_t j = 1; j < k; j++)
            if (z[i * k + j] > mx)
                mx = z[i * k + j];
        double sum = 0.0;
        for (size_t j = 0; j < k; j++)
            sum += exp((double)z[i * k + j] - mx);
        total += mx + log(sum) - z[i * k + (size_t)y[i]];
    }
    return total / (double)n;
}

/* The library's cross-entropy gradient of a forward's logits, then backward. */
static void forward_backward(mislas_model *m, const float *x, size_t n, const int32_t *y, float *logits,
        float *loss_out)
{
    int32_t k = mislas_model_num_classes(m);
    mislas_loss *ce = NULL;
    float *grad = malloc(n * (size_t)k * sizeof *grad), loss;
    ck_assert_status(mislas_loss_new_cross_entropy(&ce, k), MISLAS_OK);
    ck_assert_status(mislas_model_forward(m, x, n, logits), MISLAS_OK);
    ck_assert_status(mislas_loss_compute(ce, logits, y, n, &loss, grad), MISLAS_OK);
    ck_assert_status(mislas_model_backward(m, grad), MISLAS_OK);
    if (loss_out != NULL)
        *loss_out = loss;
    mislas_loss_free(ce);
    free(grad);
}

static double loss_of(mislas_model *m, const float *x, size_t n, const int32_t *y)
{
    int32_t k = mislas_model_num_classes(m);
    float *z = malloc(n * (size_t)k * sizeof *z);
    ck_assert_status(mislas_model_forward(m, x, n, z), MISLAS_OK);
    double l = ce_double(z, y, n, (size_t)k);
    free(z);
    return l;
}

/* The gradients of the mean cross-entropy, read back through one SGD step:
 * with momentum 0 and weight decay 0 a step sets w' = w - eta g, so
 * g = (w - w') / eta. eta = 2^20 is a power of two (eta g is exact) large
 * enough that eta |g| dominates |w|: w' is then eta g rounded to float, and
 * w - w' (exact in double) gives g with a relative error <= 2^-24, or an
 * absolute one <= ulp(|w|) / eta ~ 1e-13 for tiny g. The model is put back
 * as it was (running statistics included). grads receives one array per
 * tensor (zeros for tensors that did not move). */
static const double ETA = 1048576.0;

static void gradients_by_step_some(mislas_model *m, const float *x, size_t n, const int32_t *y,
        const char *const *names, int32_t count, snapshot *grads)
{
    snapshot before, after;
    snapshot_take(m, &before);
    int32_t k = mislas_model_num_classes(m);
    float *z = malloc(n * (size_t)k * sizeof *z);
    mislas_optimizer *opt = test_new_sgd(m, ETA, 0.0, 0.0, 1.0);
    forward_backward(m, x, n, y, z, NULL);
    ck_assert_status(mislas_optimizer_step(opt), MISLAS_OK);
    snapshot_take_some(m, names, count, &after);
    snapshot_take_some(m, names, count, grads);
    for (int32_t t = 0; t < after.count; t++) {
        const float *old = before.values[snapshot_find(&before, after.names[t])];
        for (size_t i = 0; i < after.sizes[t]; i++)
            grads->values[t][i] = is_running(after.names[t]) ? 0.0f
                : (float)(((double)old[i] - (double)after.values[t][i]) / ETA);
    }
    snapshot_restore(m, &before);
    mislas_optimizer_free(opt);
    snapshot_free(&before);
    snapshot_free(&after);
    free(z);
}

static void gradients_by_step(mislas_model *m, const float *x, size_t n, const int32_t *y, snapshot *grads)
{
    gradients_by_step_some(m, x, n, y, NULL, 0, grads);
}

/* ---------------------------------------------------------------- parameter counts */

/* CIFAR ResNet-(6n+2), c input channels, k classes, counted by hand:
 *   stem     conv 3x3 c->16: 144 c, BN 2*16 = 32
 *   stage 1  n blocks of two 3x3 16->16 convs and two BNs: n (2*2304 + 64) = 4672 n
 *   stage 2  first block 3x3 16->32 (4608) + 32->32 (9216) + BNs 128 = 13952
 *            (option A shortcut: no parameters), n - 1 blocks of 2*9216 + 128 = 18560
 *   stage 3  first block 32->64 (18432) + 64->64 (36864) + 256 = 55552,
 *            n - 1 blocks of 2*36864 + 256 = 73984
 *   fc       64 k + k
 * = 144 c + 32 + 4672 n + 13952 + 18560 (n - 1) + 55552 + 73984 (n - 1) + 65 k
 * = 144 c + 97216 n - 23008 + 65 k.
 * ResNet-32, c = 3, k = 100: 432 + 486080 - 23008 + 6500 = 470004. */
static size_t cifar_params(int n, int c, int k)
{
    return (size_t)(144 * c + 97216 * n - 23008 + 65 * k);
}

/* ImageNet ResNets as torchvision builds them: 7x7 stem 3->64 + BN, four
 * stages (64, 128, 256, 512 planes) of basic blocks (two 3x3) or
 * bottlenecks (1x1, 3x3, 1x1 to 4x planes), the first block of each stage
 * with a 1x1 projection + BN when the shape changes, fc D -> k. */
static size_t imagenet_params(const int blocks[4], int bottleneck, int c, int k)
{
    size_t total = (size_t)c * 64 * 49 + 2 * 64;
    size_t in = 64, expansion = bottleneck ? 4 : 1;
    for (int s = 0; s < 4; s++) {
        size_t planes = (size_t)64 << s, out = planes * expansion;
        for (int b = 0; b < blocks[s]; b++) {
            if (bottleneck)
                total += in * planes + 2 * planes + planes * planes * 9 + 2 * planes + planes * out + 2 * out;
            else
                total += in * planes * 9 + 2 * planes + planes * planes * 9 + 2 * planes;
            if (in != out || (b == 0 && s > 0))
                total += in * out + 2 * out;
            in = out;
        }
    }
    return total + in * (size_t)k + (size_t)k;
}

START_TEST(parameter_counts_cifar)
{
    /* the well-known figures for CIFAR-10 (He et al.'s 0.27M, 0.46M, 0.66M,
     * 0.85M, 1.7M) and the reference's ResNet-32 on CIFAR-100 */
    ck_assert_uint_eq(cifar_params(3, 3, 10), 269722);
    ck_assert_uint_eq(cifar_params(5, 3, 100), 470004);
    ck_assert_uint_eq(cifar_params(9, 3, 10), 853018);
    ck_assert_uint_eq(cifar_params(18, 3, 10), 1727962);
    const struct { mislas_arch arch; int n; } archs[] = {
        { MISLAS_RESNET20, 3 }, { MISLAS_RESNET32, 5 }, { MISLAS_RESNET44, 7 },
        { MISLAS_RESNET56, 9 }, { MISLAS_RESNET110, 18 },
    };
    const struct { int c, k; } shapes[] = { { 3, 10 }, { 3, 100 }, { 1, 10 }, { 5, 1 } };
    for (size_t a = 0; a < sizeof archs / sizeof archs[0]; a++)
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
            mislas_model *m = test_new_model(archs[a].arch, shapes[s].c, 32, 32, shapes[s].k, 0);
            ck_assert_msg(mislas_model_num_parameters(m) == cifar_params(archs[a].n, shapes[s].c, shapes[s].k),
                "arch %d, c %d, k %d: %zu parameters, expected %zu", (int)archs[a].arch, shapes[s].c,
                shapes[s].k, mislas_model_num_parameters(m), cifar_params(archs[a].n, shapes[s].c, shapes[s].k));
            ck_assert_int_eq(mislas_model_feature_dim(m), 64);
            ck_assert_int_eq(mislas_model_num_classes(m), shapes[s].k);
            /* stem + two per block; the count does not depend on the image size */
            ck_assert_int_eq(mislas_model_num_bn(m), 1 + 6 * archs[a].n);
            mislas_model_free(m);
        }
    mislas_model *m = test_new_model(MISLAS_RESNET32, 3, 8, 12, 100, 0);
    ck_assert_uint_eq(mislas_model_num_parameters(m), 470004);
    /* the sum of the learnable tensors' sizes, learned_norm excluded */
    size_t sum = 0;
    for (int32_t t = 0; t < mislas_model_num_tensors(m); t++) {
        const char *name;
        size_t count;
        ck_assert_status(mislas_model_tensor_info(m, t, &name, &count), MISLAS_OK);
        if (!is_running(name) && !is_scales(name))
            sum += count;
    }
    ck_assert_uint_eq(sum, 470004);
    mislas_model_free(m);
}
END_TEST

START_TEST(parameter_counts_imagenet)
{
    const int r10[4] = { 1, 1, 1, 1 }, r50[4] = { 3, 4, 6, 3 };
    /* torchvision's resnet50().parameters() */
    ck_assert_uint_eq(imagenet_params(r50, 1, 3, 1000), 25557032);
    mislas_model *m = test_new_model(MISLAS_RESNET50, 3, 224, 224, 1000, 0);
    ck_assert_uint_eq(mislas_model_num_parameters(m), 25557032);
    ck_assert_int_eq(mislas_model_feature_dim(m), 2048);
    ck_assert_int_eq(mislas_model_num_bn(m), 1 + 3 * 16 + 4);
    /* torchvision's names */
    ck_assert_uint_eq(tensor_size(m, "layer1.0.downsample.0.weight"), 256 * 64);
    ck_assert_uint_eq(tensor_size(m, "layer4.2.conv3.weight"), 2048 * 512);
    ck_assert_uint_eq(tensor_size(m, "layer4.0.downsample.1.running_mean"), 2048);
    ck_assert_uint_eq(tensor_size(m, "fc.weight"), 2048 * 1000);
    mislas_model_free(m);
    m = test_new_model(MISLAS_RESNET10, 3, 224, 224, 1000, 0);
    ck_assert_uint_eq(mislas_model_num_parameters(m), imagenet_params(r10, 0, 3, 1000));
    ck_assert_uint_eq(mislas_model_num_parameters(m), 5418792);
    ck_assert_int_eq(mislas_model_feature_dim(m), 512);
    ck_assert_int_eq(mislas_model_num_bn(m), 1 + 2 * 4 + 3);
    mislas_model_free(m);
    /* and the ImageNet models run on small images (no 224 forward here: too slow) */
    m = test_new_model(MISLAS_RESNET10, 1, 20, 28, 7, 0);
    ck_assert_uint_eq(mislas_model_num_parameters(m), imagenet_params(r10, 0, 1, 7));
    float *x = random_images(2 * 20 * 28, 0.0), z[14], f[2 * 512];
    ck_assert_status(mislas_model_forward(m, x, 2, z), MISLAS_OK);
    ck_assert_status(mislas_model_features(m, f, 2), MISLAS_OK);
    for (int i = 0; i < 14; i++)
        ck_assert(isfinite(z[i]));
    /* after a ReLU and an average pool, features are >= 0 */
    for (int i = 0; i < 2 * 512; i++)
        ck_assert(f[i] >= 0.0f);
    free(x);
    mislas_model_free(m);
}
END_TEST

START_TEST(tensor_names_follow_the_reference)
{
    mislas_model *m = test_new_model(MISLAS_RESNET20, 3, 32, 32, 10, 0);
    /* conv1, bn1 (4), 9 blocks x (conv, bn x 4) x 2, fc.weight, fc.bias, learned_norm */
    ck_assert_int_eq(mislas_model_num_tensors(m), 5 + 9 * 10 + 3);
    const char *name;
    size_t count;
    ck_assert_status(mislas_model_tensor_info(m, 0, &name, &count), MISLAS_OK);
    ck_assert_str_eq(name, "conv1.weight");
    ck_assert_uint_eq(count, 16 * 3 * 9);
    ck_assert_uint_eq(tensor_size(m, "bn1.running_var"), 16);
    ck_assert_uint_eq(tensor_size(m, "layer2.0.conv1.weight"), 32 * 16 * 9);
    ck_assert_uint_eq(tensor_size(m, "layer3.2.bn2.bias"), 64);
    ck_assert_uint_eq(tensor_size(m, "fc.weight"), 640);
    ck_assert_uint_eq(tensor_size(m, "fc.bias"), 10);
    ck_assert_uint_eq(tensor_size(m, "learned_norm"), 10);
    ck_assert_status(mislas_model_tensor_info(m, 98, &name, &count), MISLAS_ERR_INVALID_ARGUMENT);
    ck_assert_status(mislas_model_tensor_info(m, -1, &name, &count), MISLAS_ERR_INVALID_ARGUMENT);
    float v[16] = { 0 };
    ck_assert_status(mislas_model_get_tensor(m, "bn1.running_var", v, 15), MISLAS_ERR_INVALID_ARGUMENT);
    ck_assert_status(mislas_model_get_tensor(m, "bn9.running_var", v, 16), MISLAS_ERR_INVALID_ARGUMENT);
    v[3] = NAN;
    ck_assert_status(mislas_model_set_tensor(m, "bn1.weight", v, 16), MISLAS_ERR_NUMERIC);
    /* BN layers in network order: the stem's, then the blocks' */
    ck_assert_int_eq(mislas_model_num_bn(m), 19);
    ck_assert_int_eq(mislas_model_bn_channels(m, 0), 16);
    ck_assert_int_eq(mislas_model_bn_channels(m, 7), 32);
    ck_assert_int_eq(mislas_model_bn_channels(m, 18), 64);
    ck_assert_int_lt(mislas_model_bn_channels(m, 19), 0);
    ck_assert_status(mislas_model_bn_running_stats(m, 0, v, NULL, 8), MISLAS_ERR_INVALID_ARGUMENT);
    mislas_model_free(m);

}
END_TEST

/* ---------------------------------------------------------------- options */

static void expect_invalid(const mislas_model_options *o, const char *what)
{
    mislas_model *m = (mislas_model *)(uintptr_t)1;
    int rc = mislas_model_new(&m, o);
    ck_assert_msg(rc == MISLAS_ERR_INVALID_ARGUMENT, "%s: status %d", what, rc);
    ck_assert_msg(m == NULL, "%s: *out not NULL", what);
    ck_assert_msg(strlen(mislas_last_error()) > 0, "%s: no message", what);
}

START_TEST(options_are_validated)
{
    mislas_model_options o;
    mislas_model_options_init(&o);
    ck_assert_uint_eq(o.struct_size, sizeof o);
    ck_assert_int_eq(o.arch, MISLAS_RESNET32);
    ck_assert_int_eq(o.in_channels, 3);
    ck_assert_int_eq(o.height, 32);
    ck_assert_int_eq(o.width, 32);
    ck_assert_int_eq(o.num_classes, 10);

    /* NULL options = the defaults */
    mislas_model *m = NULL;
    ck_assert_status(mislas_model_new(&m, NULL), MISLAS_OK);
    mislas_model_options got;
    memset(&got, 0xab, sizeof got);
    got.struct_size = sizeof got;
    ck_assert_status(mislas_model_get_options(m, &got), MISLAS_OK);
    ck_assert_int_eq(got.arch, MISLAS_RESNET32);
    ck_assert_int_eq(got.num_classes, 10);
    ck_assert_uint_eq(got.seed, 0);
    ck_assert_uint_eq(mislas_model_num_parameters(m), cifar_params(5, 3, 10));
    mislas_model_free(m);
    mislas_model_free(NULL);

    ck_assert_status(mislas_model_new(NULL, &o), MISLAS_ERR_INVALID_ARGUMENT);

    const struct { int field; int32_t value; } bad[] = {
        { 0, -1 }, { 0, 9 }, { 0, 1000 },
        { 1, 0 }, { 1, -3 }, { 1, INT32_MAX },
        { 2, 0 }, { 2, -32 }, { 2, INT32_MAX },
        { 3, 0 }, { 3, -1 }, { 3, INT32_MAX },
        { 4, 0 }, { 4, -10 }, { 4, INT32_MAX },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        mislas_model_options b;
        mislas_model_options_init(&b);
        switch (bad[i].field) {
        case 0: b.arch = (mislas_arch)bad[i].value; break;
        case 1: b.in_channels = bad[i].value; break;
        case 2: b.height = bad[i].value; break;
        case 3: b.width = bad[i].value; break;
        default: b.num_classes = bad[i].value; break;
        }
        char what[64];
        snprintf(what, sizeof what, "field %d = %d", bad[i].field, (int)bad[i].value);
        expect_invalid(&b, what);
    }
    /* struct_size garbage: 0, too small to hold itself, implausibly large */
    const size_t sizes[] = { 0, 3, (size_t)1 << 40, SIZE_MAX };
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        mislas_model_options b;
        mislas_model_options_init(&b);
        b.struct_size = sizes[i];
        expect_invalid(&b, "struct_size");
    }
    /* a caller with a larger struct whose extra bytes are zero is fine;
     * a short struct_size reads only what it covers (the rest defaults) */
    struct { mislas_model_options o; char extra[16]; } big;
    memset(&big, 0, sizeof big);
    mislas_model_options_init(&big.o);
    big.o.struct_size = sizeof big;
    big.o.arch = MISLAS_RESNET20;
    ck_assert_status(mislas_model_new(&m, &big.o), MISLAS_OK);
    ck_assert_uint_eq(mislas_model_num_parameters(m), cifar_params(3, 3, 10));
    mislas_model_free(m);
    big.extra[5] = 1;
    m = (mislas_model *)(uintptr_t)1;
    ck_assert_int_ne(mislas_model_new(&m, &big.o), MISLAS_OK);
    ck_assert_ptr_null(m);
    mislas_model_options shorter;
    mislas_model_options_init(&shorter);
    shorter.arch = MISLAS_RESNET20;
    shorter.num_classes = 0;    /* beyond struct_size: not read */
    shorter.struct_size = offsetof(mislas_model_options, arch) + sizeof shorter.arch;
    ck_assert_status(mislas_model_new(&m, &shorter), MISLAS_OK);
    ck_assert_int_eq(mislas_model_num_classes(m), 10);
    ck_assert_uint_eq(mislas_model_num_parameters(m), cifar_params(3, 3, 10));

    /* the other setters' arguments */
    ck_assert_status(mislas_model_set_mode(m, (mislas_mode)3), MISLAS_ERR_INVALID_ARGUMENT);
    ck_assert_status(mislas_model_set_mode(m, (mislas_mode)-1), MISLAS_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(mislas_model_mode(m), MISLAS_MODE_TRAIN);
    ck_assert_status(mislas_model_set_head(m, (mislas_head)4, 0), MISLAS_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(mislas_model_head(m), MISLAS_HEAD_LINEAR);
    ck_assert_status(mislas_model_set_mode(NULL, MISLAS_MODE_EVAL), MISLAS_ERR_INVALID_ARGUMENT);
    ck_assert_int_lt(mislas_model_num_classes(NULL), 0);
    ck_assert_uint_eq(mislas_model_num_parameters(NULL), 0);
    got.struct_size = 0;
    ck_assert_status(mislas_model_get_options(m, &got), MISLAS_ERR_INVALID_ARGUMENT);

    mislas_optimizer *opt = (mislas_optimizer *)(uintptr_t)1;
    mislas_optimizer_sgd_options so;
    const double bad_sgd[][4] = {
        { -0.1, 0.9, 0, 1 }, { NAN, 0.9, 0, 1 }, { 0.1, 1.0, 0, 1 }, { 0.1, -0.5, 0, 1 },
        { 0.1, 0.9, -1e-4, 1 }, { 0.1, 0.9, INFINITY, 1 }, { 0.1, 0.9, 0, -1 },
    };
    for (size_t i = 0; i < sizeof bad_sgd / sizeof bad_sgd[0]; i++) {
        mislas_optimizer_sgd_options_init(&so);
        so.lr = bad_sgd[i][0];
        so.momentum = bad_sgd[i][1];
        so.weight_decay = bad_sgd[i][2];
        so.lr_factor = bad_sgd[i][3];
        opt = (mislas_optimizer *)(uintptr_t)1;
        ck_assert_status(mislas_optimizer_new_sgd(&opt, m, &so), MISLAS_ERR_INVALID_ARGUMENT);
        ck_assert_ptr_null(opt);
    }
    mislas_optimizer_sgd_options_init(&so);
    so.struct_size = 1;
    ck_assert_status(mislas_optimizer_new_sgd(&opt, m, &so), MISLAS_ERR_INVALID_ARGUMENT);
    ck_assert_status(mislas_optimizer_new_sgd(&opt, NULL, NULL), MISLAS_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_null(opt);
    ck_assert_status(mislas_optimizer_new_sgd(&opt, m, NULL), MISLAS_OK);
    ck_assert(mislas_optimizer_lr(opt) == 0.1);
    ck_assert_status(mislas_optimizer_set_lr(opt, -1.0), MISLAS_ERR_INVALID_ARGUMENT);
    ck_assert_status(mislas_optimizer_set_lr(opt, NAN), MISLAS_ERR_INVALID_ARGUMENT);
    ck_assert(mislas_optimizer_lr(opt) == 0.1);
    ck_assert_status(mislas_optimizer_set_lr(opt, 0.025), MISLAS_OK);
    ck_assert(mislas_optimizer_lr(opt) == 0.025);
    ck_assert_uint_eq(mislas_optimizer_steps(opt), 0);
    ck_assert_uint_eq(mislas_optimizer_group_size(opt, (mislas_param_group)7), 0);
    mislas_optimizer_free(opt);
    mislas_optimizer_free(NULL);
    mislas_model_free(m);
}
END_TEST

/* ---------------------------------------------------------------- initialisation */

/* The sample standard deviation of N draws from N(0, s^2) has a standard
 * error of s / sqrt(2N); 5 standard errors (or, for tiny tensors, 40 %)
 * bound it with a false-alarm rate far below 1e-6, while a wrong fan
 * (fan-out, or a missing gain of sqrt 2 = 41 %) is off by much more on
 * every tensor with N >= 432. */
START_TEST(initialisation_statistics)
{
    mislas_model *m = test_new_model(MISLAS_RESNET20, 3, 32, 32, 10, 7);
    int32_t nt = mislas_model_num_tensors(m);
    for (int32_t t = 0; t < nt; t++) {
        const char *name;
        size_t count;
        ck_assert_status(mislas_model_tensor_info(m, t, &name, &count), MISLAS_OK);
        float *v = get_tensor(m, name);
        if (is_conv(name) || strcmp(name, "fc.weight") == 0) {
            /* fan-in = count / out channels (conv: in x 3 x 3; fc: D = 64) */
            size_t out = is_conv(name) ? (size_t)(strstr(name, "layer1") ? 16 : strstr(name, "layer2") ? 32
                                                 : strstr(name, "layer3") ? 64 : 16)
                                       : 10;
            double fan_in = (double)count / (double)out, expect = sqrt(2.0 / fan_in);
            double sum = 0, sq = 0;
            for (size_t i = 0; i < count; i++) {
                sum += v[i];
                sq += (double)v[i] * v[i];
            }
            double mean = sum / (double)count, sd = sqrt(sq / (double)count - mean * mean);
            double se = expect / sqrt(2.0 * (double)count);
            ck_assert_msg(fabs(sd - expect) < 5 * se, "%s: sd %g, expected %g (se %g)", name, sd, expect, se);
            ck_assert_msg(fabs(mean) < 5 * expect / sqrt((double)count), "%s: mean %g", name, mean);
        } else if (strcmp(name, "fc.bias") == 0) {
            for (size_t i = 0; i < count; i++)
                ck_assert_msg(fabs(v[i]) <= 1.0 / sqrt(64.0), "fc.bias[%zu] = %g", i, (double)v[i]);
            /* not all equal, not all zero */
            ck_assert(v[0] != v[1] && v[1] != v[2]);
        } else {
            float want = is_scales(name) || ends_with(name, "running_var") || ends_with(name, ".weight") ? 1.0f : 0.0f;
            for (size_t i = 0; i < count; i++)
                ck_assert_msg(v[i] == want, "%s[%zu] = %g, expected %g", name, i, (double)v[i], (double)want);
        }
        free(v);
    }
    float scales[10], norms[10];
    ck_assert_status(mislas_model_classifier_scales(m, scales), MISLAS_OK);
    ck_assert_status(mislas_model_classifier_norms(m, norms), MISLAS_OK);
    float *w = get_tensor(m, "fc.weight");
    for (int j = 0; j < 10; j++) {
        ck_assert(scales[j] == 1.0f);
        double sq = 0;
        for (int i = 0; i < 64; i++)
            sq += (double)w[j * 64 + i] * w[j * 64 + i];
        ck_assert_close(norms[j], sqrt(sq), 0, 1e-6);
    }
    free(w);
    float mean[16], var[16];
    ck_assert_status(mislas_model_bn_running_stats(m, 0, mean, var, 16), MISLAS_OK);
    for (int c = 0; c < 16; c++)
        ck_assert(mean[c] == 0.0f && var[c] == 1.0f);

    /* the fc bias over many classes fills +-1/sqrt(64) uniformly: its
     * sample mean (se 0.125/sqrt(3*1000)) and range */
    mislas_model *wide = test_new_model(MISLAS_RESNET20, 3, 8, 8, 1000, 3);
    float *b = get_tensor(wide, "fc.bias");
    double sum = 0, lo = 1, hi = -1;
    for (int i = 0; i < 1000; i++) {
        sum += b[i];
        lo = fmin(lo, b[i]);
        hi = fmax(hi, b[i]);
    }
    ck_assert_msg(fabs(sum / 1000) < 5 * 0.125 / sqrt(3000.0), "bias mean %g", sum / 1000);
    ck_assert(lo >= -0.125 && lo < -0.12 && hi <= 0.125 && hi > 0.12);
    free(b);
    mislas_model_free(wide);
    mislas_model_free(m);
}
END_TEST

START_TEST(seeds_decide_the_initialisation)
{
    mislas_model *a = test_new_model(MISLAS_RESNET20, 3, 16, 16, 5, 11);
    mislas_model *b = test_new_model(MISLAS_RESNET20, 3, 16, 16, 5, 11);
    mislas_model *c = test_new_model(MISLAS_RESNET20, 3, 16, 16, 5, 12);
    /* the image size does not enter the weights */
    mislas_model *d = test_new_model(MISLAS_RESNET20, 3, 32, 24, 5, 11);
    snapshot sa, sb, sc, sd;
    snapshot_take(a, &sa);
    snapshot_take(b, &sb);
    snapshot_take(c, &sc);
    snapshot_take(d, &sd);
    ck_assert(snapshots_identical(&sa, &sb));
    ck_assert(snapshots_identical(&sa, &sd));
    for (int32_t t = 0; t < sa.count; t++)
        if (is_conv(sa.names[t]) || is_fc(sa.names[t]))
            ck_assert_msg(!tensor_same(&sa, &sc, t), "%s equal under seeds 11 and 12", sa.names[t]);
        else
            ck_assert(tensor_same(&sa, &sc, t));
    /* and two tensors of one shape are not copies of one another */
    float *w1 = get_tensor(a, "layer1.0.conv1.weight"), *w2 = get_tensor(a, "layer1.0.conv2.weight");
    ck_assert(memcmp(w1, w2, 16 * 16 * 9 * sizeof(float)) != 0);
    free(w1);
    free(w2);
    mislas_model_options o;
    mislas_model_options_init(&o);
    ck_assert_status(mislas_model_get_options(c, &o), MISLAS_OK);
    ck_assert_uint_eq(o.seed, 12);
    ck_assert_int_eq(o.num_classes, 5);
    ck_assert_int_eq(o.height, 16);
    snapshot_free(&sa);
    snapshot_free(&sb);
    snapshot_free(&sc);
    snapshot_free(&sd);
    mislas_model_free(a);
    mislas_model_free(b);
    mislas_model_free(c);
    mislas_model_free(d);
}
END_TEST

/* ---------------------------------------------------------------- gradients */

/* Central differences of the double cross-entropy of the float logits,
 * against the analytic gradient read through an SGD step.
 *
 * Error budget. The logits are float, and their rounding is not smooth in
 * the parameters: moving one weight by one ulp moves the loss by up to
 * J ~ 1e-6 (measured: 1.2e-6 at most for this ResNet-20, with each of the
 * BLIS kernel sets), which the difference quotient turns into an error of
 * up to J / h. What limits h from above is not the smooth curvature but
 * the ReLU kinks: a perturbation of an early weight moves every
 * pre-activation downstream, some cross zero inside [w - h, w + h], and
 * each crossing bends the slope; at h = 1e-2 that made errors of 10-40 %
 * on stem and BN entries, falling steadily with h. So h = 1e-3, 5e-4 and
 * 2.5e-4, divided by |g| where |g| > 1 (the loss then moves by about the
 * same amount), and an entry passes if one of the three is within 2e-3
 * (twice the noise at the largest h) + 5 % of the larger of the two
 * values; at most one entry in ten may miss all three (none did, with any
 * kernel set). A wrong term (a missing 1/m or mean term in BN's backward,
 * a shifted shortcut channel, a dropped ReLU mask) is off by far more than
 * 5 % on most entries, and also fails the directional checks below
 * (verified by breaking the library on purpose). The probes are the
 * entries of largest analytic gradient (so that the relative test bites)
 * and random ones. */
typedef struct probe_stats {
    int checked, missed;
    double worst;
} probe_stats;

static void probe_entry(mislas_model *m, const float *x, size_t n, const int32_t *y, const char *name,
        size_t count, float *w, size_t i, double g, probe_stats *st)
{
    double fd[3] = { NAN, NAN, NAN }, err = INFINITY;
    float keep = w[i];
    for (int r = 0; r < 3 && err > 1.0; r++) {
        float h = (float)(1e-3 / (double)(1 << r) / fmax(1.0, fabs(g)));
        w[i] = keep + h;
        ck_assert_status(mislas_model_set_tensor(m, name, w, count), MISLAS_OK);
        double up = loss_of(m, x, n, y);
        w[i] = keep - h;
        ck_assert_status(mislas_model_set_tensor(m, name, w, count), MISLAS_OK);
        double down = loss_of(m, x, n, y);
        /* the step actually taken, (keep + h) - (keep - h) in float */
        fd[r] = (up - down) / ((double)(keep + h) - (double)(keep - h));
        err = fmin(err, fabs(fd[r] - g) / (2e-3 + 0.05 * fmax(fabs(g), fabs(fd[r]))));
    }
    w[i] = keep;
    ck_assert_status(mislas_model_set_tensor(m, name, w, count), MISLAS_OK);
    st->checked++;
    if (err > 1.0)
        st->missed++;
    st->worst = fmax(st->worst, err);
    if (getenv("MISLAS_TEST_VERBOSE") != NULL)
        fprintf(stderr, "%-28s [%5zu] analytic %+.6e  fd %+.6e %+.6e %+.6e  err %.3f\n", name, i, g, fd[0], fd[1],
            fd[2], err);
}

static void check_tensor(mislas_model *m, const float *x, size_t n, const int32_t *y, const snapshot *grads,
        const char *name, int probes, probe_stats *st)
{
    int32_t t = snapshot_find(grads, name);
    size_t count = grads->sizes[t];
    const float *g = grads->values[t];
    float *w = get_tensor(m, name);
    /* the largest |g| first, then random entries */
    char *used = calloc(count, 1);
    for (int p = 0; p < probes && p < (int)count; p++) {
        size_t pick = 0;
        if (p < probes / 2) {
            double best = -1;
            for (size_t i = 0; i < count; i++)
                if (!used[i] && fabs(g[i]) > best) {
                    best = fabs(g[i]);
                    pick = i;
                }
        } else {
            do
                pick = (size_t)(test_uniform() * (double)count);
            while (used[pick]);
        }
        used[pick] = 1;
        probe_entry(m, x, n, y, name, count, w, pick, g[pick], st);
    }
    free(used);
    free(w);
}

/* The directional derivative along a random direction u (uniform in
 * +-1/2 per value) over the tensors of `grads` that learn: L(w + t u) -
 * L(w - t u) against g . (w+ - w-), w+ and w- the float tensors actually
 * set (so the rounding of w +- t u does not count as an error). t is
 * t_max, or smaller where the derivative is large, so that the loss moves
 * by about 2e-4: well above its float jitter (~5e-7), and few ReLU kinks
 * in between. */
static void check_direction(mislas_model *m, const float *x, size_t n, const int32_t *y, const snapshot *grads,
        double t_max, double tau, unsigned long long seed, double *analytic, double *numeric, double *t_used)
{
    snapshot base;
    snapshot_take_some(m, grads->names, grads->count, &base);
    float **u = calloc((size_t)base.count, sizeof *u);
    double d = 0.0;
    for (int32_t k = 0; k < base.count; k++) {
        u[k] = calloc(base.sizes[k], sizeof(float));
        int moves = 0;
        for (size_t i = 0; i < base.sizes[k]; i++)
            moves |= grads->values[k][i] != 0.0f;
        if (!moves)
            continue;
        for (size_t i = 0; i < base.sizes[k]; i++) {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            u[k][i] = (float)((double)(seed >> 11) / 9007199254740992.0 - 0.5);
            d += (double)grads->values[k][i] * u[k][i];
        }
    }
    double t = fmin(t_max, tau / fabs(d)), l[2], secant = 0.0;
    for (int s = 0; s < 2; s++) {
        for (int32_t k = 0; k < base.count; k++) {
            float *w = malloc(base.sizes[k] * sizeof *w);
            for (size_t i = 0; i < base.sizes[k]; i++) {
                w[i] = (float)(base.values[k][i] + (s == 0 ? t : -t) * u[k][i]);
                secant += (s == 0 ? 1.0 : -1.0) * (double)grads->values[k][i] * ((double)w[i] - base.values[k][i]);
            }
            ck_assert_status(mislas_model_set_tensor(m, base.names[k], w, base.sizes[k]), MISLAS_OK);
            free(w);
        }
        l[s] = loss_of(m, x, n, y);
    }
    snapshot_restore(m, &base);
    *analytic = secant / (2 * t);
    *numeric = (l[0] - l[1]) / (2 * t);
    *t_used = t;
    for (int32_t k = 0; k < base.count; k++)
        free(u[k]);
    free(u);
    snapshot_free(&base);
}

/* check_direction at t and, if that misses, at t / 4 (a ReLU kink inside
 * the larger interval then does not fail it): |analytic - numeric| within
 * jitter / t (the loss's float jitter, measured by moving one weight by
 * one ulp: ~1e-6 for ResNet-20, ~2.5e-6 for ResNet-10 and the damped
 * ResNet-50; the bound is twice that) plus `rel` of the derivative.
 * Returns the error in units of that tolerance. */
static double direction_error(mislas_model *m, const float *x, size_t n, const int32_t *y, const snapshot *grads,
        double t_max, double jitter, double rel, unsigned long long seed, const char *label)
{
    double err = INFINITY;
    for (int r = 0; r < 2 && err > 1.0; r++) {
        double scale = r == 0 ? 1.0 : 0.25, an, num, t;
        check_direction(m, x, n, y, grads, t_max * scale, 2e-4 * scale, seed, &an, &num, &t);
        double e = fabs(an - num) / (jitter / t + rel * fabs(an));
        err = fmin(err, e);
        if (getenv("MISLAS_TEST_VERBOSE") != NULL)
            fprintf(stderr, "%-28s direction: analytic %+.7e numeric %+.7e t %.2e err %.3f\n", label, an, num, t, e);
    }
    return err;
}

/* The model's gradient in `mode` against finite differences, over the stem,
 * blocks with and without the option-A shortcut, BN affine and the head. */
static void check_gradients(mislas_mode mode)
{
    enum { N = 4, C = 3, H = 8, K = 3 };
    mislas_model *m = test_new_model(MISLAS_RESNET20, C, H, H, K, 5);
    float *x = random_images(N * C * H * H, 0.0);
    const int32_t y[N] = { 0, 2, 1, 2 };
    if (mode == MISLAS_MODE_EVAL) {
        /* running statistics of this data, so that eval activations are
         * normalised as in training (fresh ones, mean 0 var 1, would let
         * them grow through the 9 residual blocks) */
        float z[N * K];
        for (int i = 0; i < 40; i++)
            ck_assert_status(mislas_model_forward(m, x, N, z), MISLAS_OK);
    }
    ck_assert_status(mislas_model_set_mode(m, mode), MISLAS_OK);
    snapshot grads;
    gradients_by_step(m, x, N, y, &grads);

    /* what learns in this mode: BN's affine not under SHIFTED_BN */
    for (int32_t t = 0; t < grads.count; t++) {
        int moved = 0;
        for (size_t i = 0; i < grads.sizes[t]; i++)
            moved |= grads.values[t][i] != 0.0f;
        int learns = is_conv(grads.names[t]) || is_fc(grads.names[t])
            || (is_bn_affine(grads.names[t]) && mode != MISLAS_MODE_SHIFTED_BN);
        ck_assert_msg(moved == learns, "mode %d: %s %s", (int)mode, grads.names[t],
            moved ? "moved" : "did not move");
    }

    for (int r = 0; r < 4; r++) {
        double err = direction_error(m, x, N, y, &grads, 1e-5, 2e-6, 0.05, 1234567ULL + (unsigned)r, "all");
        ck_assert_msg(err <= 1.0, "mode %d, direction %d: %.2f x the tolerance", (int)mode, r, err);
    }
    probe_stats st = { 0, 0, 0.0 };
    const char *convs[] = { "conv1.weight", "layer1.0.conv1.weight", "layer1.2.conv2.weight",
                            "layer2.0.conv1.weight", "layer2.1.conv2.weight", "layer3.0.conv2.weight",
                            "layer3.2.conv2.weight" };
    for (size_t i = 0; i < sizeof convs / sizeof convs[0]; i++)
        check_tensor(m, x, N, y, &grads, convs[i], 4, &st);
    if (mode != MISLAS_MODE_SHIFTED_BN) {
        const char *bns[] = { "bn1.weight", "bn1.bias", "layer2.1.bn1.weight", "layer2.1.bn1.bias",
                              "layer2.0.bn2.weight", "layer3.2.bn2.bias" };
        for (size_t i = 0; i < sizeof bns / sizeof bns[0]; i++)
            check_tensor(m, x, N, y, &grads, bns[i], 4, &st);
    }
    check_tensor(m, x, N, y, &grads, "fc.weight", 6, &st);
    check_tensor(m, x, N, y, &grads, "fc.bias", 3, &st);
    ck_assert_msg(st.missed * 10 <= st.checked, "mode %d: %d of %d entries off (worst %.2f x the tolerance)",
        (int)mode, st.missed, st.checked, st.worst);
    snapshot_free(&grads);
    free(x);
    mislas_model_free(m);
}

START_TEST(gradients_train_mode)
{
    check_gradients(MISLAS_MODE_TRAIN);
}
END_TEST

START_TEST(gradients_eval_mode)
{
    check_gradients(MISLAS_MODE_EVAL);
}
END_TEST

START_TEST(gradients_shifted_bn_mode)
{
    check_gradients(MISLAS_MODE_SHIFTED_BN);
}
END_TEST

/* The ImageNet family's own layers (7x7 stride-2 stem, max pool, projection
 * shortcuts, bottlenecks) on 4 images of 3 x side x side (32: layer4 works
 * on 1 x 1 planes, BN over the 4 images), TRAIN mode: for each tensor
 * listed, the directional derivative along a random direction within it. */
static void check_imagenet_gradients(mislas_arch arch, int32_t side, double damp, const char *const *names,
        int32_t count)
{
    enum { N = 4, C = 3, K = 3 };
    mislas_model *m = test_new_model(arch, C, side, side, K, 6);
    /* damp < 1: each bottleneck's last BN gamma set to it (torchvision's
     * zero_init_residual idea, not quite zero so that the branches still
     * get gradients). At the plain initialisation the 16 bottlenecks of
     * ResNet-50 make the loss chaotic on 4 images (one ulp of one stem
     * weight moves it by 3e-3; the stem's gradients reach ~500 and differ
     * by several % from one BLIS kernel set to another); damped branches
     * keep every path but make the loss smooth enough for differences. */
    for (int32_t t = 0; damp < 1.0 && t < mislas_model_num_tensors(m); t++) {
        const char *name;
        size_t count;
        ck_assert_status(mislas_model_tensor_info(m, t, &name, &count), MISLAS_OK);
        if (strncmp(name, "layer", 5) == 0 && ends_with(name, ".bn3.weight")) {
            float *v = malloc(count * sizeof *v);
            for (size_t i = 0; i < count; i++)
                v[i] = (float)damp;
            ck_assert_status(mislas_model_set_tensor(m, name, v, count), MISLAS_OK);
            free(v);
        }
    }
    float *x = random_images((size_t)N * C * (size_t)(side * side), 0.0);
    const int32_t y[N] = { 2, 0, 1, 1 };
    snapshot grads;
    gradients_by_step_some(m, x, N, y, names, count, &grads);
    for (int32_t t = 0; t < grads.count; t++) {
        int moved = 0;
        for (size_t i = 0; i < grads.sizes[t]; i++)
            moved |= grads.values[t][i] != 0.0f;
        ck_assert_msg(moved, "%s got no gradient", grads.names[t]);
        /* a direction within this tensor alone (direction_error); 10 %:
         * with BN over few values (4 images of 1 x 1 or 2 x 2 pixels in
         * layer4) these deeper networks are rougher than ResNet-20 */
        snapshot one = grads;
        one.count = 1;
        one.names = &grads.names[t];
        one.sizes = &grads.sizes[t];
        one.values = &grads.values[t];
        double err = direction_error(m, x, N, y, &one, 1e-3, 5e-6, 0.1, 7654321ULL + (unsigned)t, grads.names[t]);
        ck_assert_msg(err <= 1.0, "arch %d, %s: %.2f x the tolerance", (int)arch, grads.names[t], err);
    }
    snapshot_free(&grads);
    free(x);
    mislas_model_free(m);
}

START_TEST(gradients_imagenet_basic_blocks)
{
    const char *const names[] = { "conv1.weight", "bn1.weight", "layer1.0.conv1.weight", "layer1.0.bn2.bias",
        "layer2.0.conv1.weight", "layer2.0.downsample.0.weight", "layer2.0.downsample.1.weight",
        "layer3.0.bn1.bias", "layer4.0.conv2.weight", "layer4.0.downsample.1.bias", "fc.weight", "fc.bias" };
    check_imagenet_gradients(MISLAS_RESNET10, 32, 1.0, names, (int32_t)(sizeof names / sizeof names[0]));
}
END_TEST

START_TEST(gradients_imagenet_bottlenecks)
{
    /* a bottleneck's three convs and last BN, the projection (stride 1 in
     * layer1), the strided 3x3 of layer2, the last block's conv3 */
    const char *const names[] = { "layer1.0.conv1.weight", "layer1.0.conv3.weight", "layer1.0.bn3.weight",
        "layer1.0.downsample.0.weight", "layer2.0.conv2.weight", "layer4.2.conv3.weight" };
    check_imagenet_gradients(MISLAS_RESNET50, 32, 0.2, names, (int32_t)(sizeof names / sizeof names[0]));
}
END_TEST

/* mislas_model_get_gradient against the gradients an SGD step applies:
 * the same numbers (to the 2^-24 relative rounding of reading them back
 * through w - eta g), zeros for what does not learn in the mode. */
START_TEST(get_gradient_matches_the_step)
{
    enum { N = 4, C = 3, H = 8, K = 3 };
    const mislas_mode modes[2] = { MISLAS_MODE_TRAIN, MISLAS_MODE_SHIFTED_BN };
    for (int md = 0; md < 2; md++)
        for (int frozen = 0; frozen < 2; frozen++) {
            mislas_model *m = test_new_model(MISLAS_RESNET20, C, H, H, K, 8);
            ck_assert_status(mislas_model_set_mode(m, modes[md]), MISLAS_OK);
            ck_assert_status(mislas_model_freeze_backbone(m, frozen), MISLAS_OK);
            float *x = random_images(N * C * H * H, 0.0), z[N * K];
            const int32_t y[N] = { 1, 0, 2, 2 };
            float fb[K];
            ck_assert_status(mislas_model_get_gradient(m, "fc.bias", fb, K), MISLAS_ERR_STATE);
            snapshot stepped;
            gradients_by_step(m, x, N, y, &stepped);
            forward_backward(m, x, N, y, z, NULL);
            for (int32_t t = 0; t < stepped.count; t++) {
                const char *name = stepped.names[t];
                float *g = malloc(stepped.sizes[t] * sizeof *g), *w = get_tensor(m, name);
                ck_assert_status(mislas_model_get_gradient(m, name, g, stepped.sizes[t]), MISLAS_OK);
                int learns = is_fc(name) || (!frozen && (is_conv(name) || (is_bn_affine(name) && md == 0)));
                for (size_t i = 0; i < stepped.sizes[t]; i++) {
                    if (!learns) {
                        ck_assert_msg(g[i] == 0.0f, "mode %d frozen %d: %s[%zu] = %g, not learned", md, frozen,
                            name, i, (double)g[i]);
                        continue;
                    }
                    double tol = 2.4e-7 * fabs(g[i]) + 6e-8 * fabs(w[i]) / ETA;
                    ck_assert_msg(fabs(g[i] - stepped.values[t][i]) <= tol, "mode %d frozen %d: %s[%zu]: %.9g vs %.9g",
                        md, frozen, name, i, (double)g[i], (double)stepped.values[t][i]);
                }
                free(g);
                free(w);
            }
            ck_assert_status(mislas_model_get_gradient(m, "fc.bias", fb, K + 1), MISLAS_ERR_INVALID_ARGUMENT);
            ck_assert_status(mislas_model_get_gradient(m, "fc.bias", NULL, K), MISLAS_ERR_INVALID_ARGUMENT);
            snapshot_free(&stepped);
            free(x);
            mislas_model_free(m);
        }
}
END_TEST

/* ---------------------------------------------------------------- batch norm modes */

/* The stem's convolution (3x3, stride 1, padding 1, no bias) in double. */
static void stem_conv(const float *x, size_t n, size_t cin, size_t h, size_t w, const float *wt, size_t cout,
        double *y)
{
    for (size_t i = 0; i < n; i++)
        for (size_t co = 0; co < cout; co++)
            for (size_t r = 0; r < h; r++)
                for (size_t c = 0; c < w; c++) {
                    double sum = 0;
                    for (size_t ci = 0; ci < cin; ci++)
                        for (size_t a = 0; a < 3; a++)
                            for (size_t b = 0; b < 3; b++) {
                                long rr = (long)r + (long)a - 1, cc = (long)c + (long)b - 1;
                                if (rr < 0 || cc < 0 || rr >= (long)h || cc >= (long)w)
                                    continue;
                                sum += (double)wt[((co * cin + ci) * 3 + a) * 3 + b]
                                     * x[((i * cin + ci) * h + (size_t)rr) * w + (size_t)cc];
                            }
                    y[((i * cout + co) * h + r) * w + c] = sum;
                }
}

/* Per channel mean and unbiased variance of the stem's conv output. */
static void stem_batch_stats(const mislas_model *m, const float *x, size_t n, size_t cin, size_t h, size_t w,
        double *mean, double *var)
{
    float *wt = get_tensor(m, "conv1.weight");
    double *y = malloc(n * 16 * h * w * sizeof *y);
    stem_conv(x, n, cin, h, w, wt, 16, y);
    double cnt = (double)(n * h * w);
    for (size_t c = 0; c < 16; c++) {
        double s = 0, q = 0;
        for (size_t i = 0; i < n; i++)
            for (size_t p = 0; p < h * w; p++)
                s += y[(i * 16 + c) * h * w + p];
        mean[c] = s / cnt;
        for (size_t i = 0; i < n; i++)
            for (size_t p = 0; p < h * w; p++) {
                double d = y[(i * 16 + c) * h * w + p] - mean[c];
                q += d * d;
            }
        var[c] = q / (cnt - 1);
    }
    free(y);
    free(wt);
}

START_TEST(bn_modes_and_running_statistics)
{
    enum { N = 4, C = 3, H = 8, K = 3 };
    mislas_model *m = test_new_model(MISLAS_RESNET20, C, H, H, K, 21);
    float *x = random_images(N * C * H * H, 0.0), z1[N * K], z2[N * K], z3[N * K];
    double mean[16], var[16];
    stem_batch_stats(m, x, N, C, H, H, mean, var);
    snapshot s0, s1, s2;
    snapshot_take(m, &s0);

    /* TRAIN: r = 0.9 r + 0.1 batch, the variance unbiased (PyTorch's
     * momentum 0.1); compared with the conv computed here in double: the
     * float conv (27-term sums) and BN's float mean agree to ~1e-6 */
    ck_assert_int_eq(mislas_model_mode(m), MISLAS_MODE_TRAIN);
    ck_assert_status(mislas_model_forward(m, x, N, z1), MISLAS_OK);
    float rm[16], rv[16];
    ck_assert_status(mislas_model_bn_running_stats(m, 0, rm, rv, 16), MISLAS_OK);
    for (int c = 0; c < 16; c++) {
        ck_assert_close(rm[c], 0.1 * mean[c], 1e-6, 1e-5);
        ck_assert_close(rv[c], 0.9 + 0.1 * var[c], 1e-6, 1e-5);
    }
    snapshot_take(m, &s1);
    for (int32_t t = 0; t < s0.count; t++)
        if (is_running(s0.names[t]))
            ck_assert_msg(!tensor_same(&s0, &s1, t), "%s did not move in TRAIN mode", s0.names[t]);

    /* the TRAIN output uses batch statistics: other running statistics do
     * not change it, and SHIFTED_BN computes the same */
    float junk[16];
    for (int c = 0; c < 16; c++)
        junk[c] = 3.0f + (float)c;
    ck_assert_status(mislas_model_set_tensor(m, "bn1.running_mean", junk, 16), MISLAS_OK);
    ck_assert_status(mislas_model_set_tensor(m, "bn1.running_var", junk, 16), MISLAS_OK);
    ck_assert_status(mislas_model_forward(m, x, N, z2), MISLAS_OK);
    ck_assert_int_eq(memcmp(z1, z2, sizeof z1), 0);
    ck_assert_status(mislas_model_set_mode(m, MISLAS_MODE_SHIFTED_BN), MISLAS_OK);
    ck_assert_int_eq(mislas_model_mode(m), MISLAS_MODE_SHIFTED_BN);
    ck_assert_status(mislas_model_forward(m, x, N, z3), MISLAS_OK);
    ck_assert_int_eq(memcmp(z1, z3, sizeof z1), 0);

    /* EVAL: nothing moves, however often it runs, and n = 1 is fine */
    ck_assert_status(mislas_model_set_mode(m, MISLAS_MODE_EVAL), MISLAS_OK);
    snapshot_free(&s1);
    snapshot_take(m, &s1);
    for (int r = 0; r < 3; r++)
        ck_assert_status(mislas_model_forward(m, x, N, z2), MISLAS_OK);
    ck_assert_status(mislas_model_forward(m, x, 1, z3), MISLAS_OK);
    snapshot_take(m, &s2);
    ck_assert(snapshots_identical(&s1, &s2));
    /* EVAL output uses the running statistics: image 0 alone gives the
     * same row as within the batch */
    for (int j = 0; j < K; j++)
        ck_assert_close(z3[j], z2[j], 1e-6, 1e-6);
    ck_assert_int_ne(memcmp(z1, z2, sizeof z1), 0);
    snapshot_free(&s0);
    snapshot_free(&s1);
    snapshot_free(&s2);
    free(x);
    mislas_model_free(m);
}
END_TEST

/* MiSLAS's shifted BN: under data with another distribution the running
 * statistics move toward it, r_k = 0.9^k r_0 + (1 - 0.9^k) batch, while
 * gamma and beta stay where they are, even through optimiser steps with
 * weight decay. */
START_TEST(shifted_bn_tracks_new_statistics)
{
    enum { N = 4, C = 3, H = 8, K = 3, STEPS = 6 };
    mislas_model *m = test_new_model(MISLAS_RESNET20, C, H, H, K, 22);
    float *x = random_images(N * C * H * H, 5.0), z[N * K], g[N * K];
    const int32_t y[N] = { 0, 1, 2, 0 };
    double mean[16], var[16];
    stem_batch_stats(m, x, N, C, H, H, mean, var);
    float rm0[16], rv0[16], rm[16], rv[16];
    ck_assert_status(mislas_model_bn_running_stats(m, 0, rm0, rv0, 16), MISLAS_OK);
    ck_assert_status(mislas_model_set_mode(m, MISLAS_MODE_SHIFTED_BN), MISLAS_OK);
    ck_assert_status(mislas_model_freeze_backbone(m, 0), MISLAS_OK);
    mislas_optimizer *opt = test_new_sgd(m, 0.05, 0.9, 5e-4, 1.0);
    /* conv weights and W, b learn; BN's gamma and beta do not */
    size_t bn_affine = 0, fc = 64 * K + K;
    for (int32_t t = 0; t < mislas_model_num_tensors(m); t++) {
        const char *name;
        size_t count;
        ck_assert_status(mislas_model_tensor_info(m, t, &name, &count), MISLAS_OK);
        if (is_bn_affine(name))
            bn_affine += count;
    }
    ck_assert_uint_eq(bn_affine, 2 * (16 + 6 * 16 + 6 * 32 + 6 * 64));
    ck_assert_uint_eq(mislas_optimizer_group_size(opt, MISLAS_GROUP_BACKBONE),
        mislas_model_num_parameters(m) - fc - bn_affine);
    ck_assert_uint_eq(mislas_optimizer_group_size(opt, MISLAS_GROUP_CLASSIFIER), fc);
    ck_assert_uint_eq(mislas_optimizer_group_size(opt, MISLAS_GROUP_SCALES), 0);
    snapshot before, after;
    snapshot_take(m, &before);
    /* steps change the conv weights, so only the first forward's batch
     * statistics are known here: forwards first, then steps */
    for (int k = 1; k <= STEPS; k++) {
        ck_assert_status(mislas_model_forward(m, x, N, z), MISLAS_OK);
        ck_assert_status(mislas_model_bn_running_stats(m, 0, rm, rv, 16), MISLAS_OK);
        double keep = pow(0.9, k);
        for (int c = 0; c < 16; c++) {
            ck_assert_close(rm[c], keep * rm0[c] + (1 - keep) * mean[c], 1e-5, 1e-5);
            ck_assert_close(rv[c], keep * rv0[c] + (1 - keep) * var[c], 1e-5, 1e-5);
        }
    }
    /* the mean of data offset by 5 is far from 0: it moved most of the way */
    double moved = 0, total = 0;
    for (int c = 0; c < 16; c++) {
        moved += fabs(rm[c] - rm0[c]);
        total += fabs(mean[c] - rm0[c]);
    }
    ck_assert(total > 1.0 && moved > 0.4 * total);
    mislas_loss *ce = NULL;
    ck_assert_status(mislas_loss_new_cross_entropy(&ce, K), MISLAS_OK);
    for (int k = 0; k < 3; k++) {
        float loss;
        ck_assert_status(mislas_model_forward(m, x, N, z), MISLAS_OK);
        ck_assert_status(mislas_loss_compute(ce, z, y, N, &loss, g), MISLAS_OK);
        ck_assert_status(mislas_model_backward(m, g), MISLAS_OK);
        ck_assert_status(mislas_optimizer_step(opt), MISLAS_OK);
    }
    snapshot_take(m, &after);
    for (int32_t t = 0; t < before.count; t++) {
        if (is_bn_affine(before.names[t]))
            ck_assert_msg(tensor_same(&before, &after, t), "%s changed under SHIFTED_BN", before.names[t]);
        else if (!is_scales(before.names[t]))
            ck_assert_msg(!tensor_same(&before, &after, t), "%s did not change", before.names[t]);
    }
    snapshot_free(&before);
    snapshot_free(&after);
    mislas_loss_free(ce);
    mislas_optimizer_free(opt);
    free(x);
    mislas_model_free(m);
}
END_TEST

/* An EVAL forward worked by hand: all convolutions zero but three taps of
 * the stem (one per input channel, at different offsets, so the padding
 * and the tap order show), then every block's output is
 * relu(bn2 constant + shortcut): the identity, or option A's every second
 * pixel with out_c / 4 zero channels on each side; features are the mean
 * of the last 2 x 2 plane, logits s (W f + b). */
START_TEST(eval_forward_by_hand)
{
    enum { N = 2, C = 3, H = 8, K = 3 };
    const double eps = 1e-5;
    mislas_model *m = test_new_model(MISLAS_RESNET20, C, H, H, K, 23);
    ck_assert_status(mislas_model_set_head(m, MISLAS_HEAD_MISLAS, 0), MISLAS_OK);
    ck_assert_status(mislas_model_set_mode(m, MISLAS_MODE_EVAL), MISLAS_OK);
    float *x = random_images(N * C * H * H, 0.3);
    snapshot s;
    snapshot_take(m, &s);
    for (int32_t t = 0; t < s.count; t++)
        if (is_conv(s.names[t]))
            memset(s.values[t], 0, s.sizes[t] * sizeof(float));
    float *w1 = s.values[snapshot_find(&s, "conv1.weight")];
    w1[((0 * 3 + 0) * 3 + 0) * 3 + 0] = 1.0f;      /* y0[r][c] = x0[r-1][c-1] */
    w1[((1 * 3 + 1) * 3 + 1) * 3 + 1] = 0.5f;      /* y1 = x1 / 2 */
    w1[((2 * 3 + 2) * 3 + 2) * 3 + 2] = -1.0f;     /* y2[r][c] = -x2[r+1][c+1] */
    double stem_gamma[16], stem_beta[16], stem_mean[16], stem_var[16];
    for (int c = 0; c < 16; c++) {
        stem_gamma[c] = 0.5 + 0.1 * c;
        stem_beta[c] = 0.05 * c - 0.3;
        stem_mean[c] = 0.1 * (c % 3) - 0.1;
        stem_var[c] = 0.5 + 0.2 * (c % 4);
    }
    stem_var[1] = 1e-4;     /* eps = 1e-5 is 5 % of the scale here */
    stem_gamma[1] = 0.02;
    for (int c = 0; c < 16; c++) {
        s.values[snapshot_find(&s, "bn1.weight")][c] = (float)stem_gamma[c];
        s.values[snapshot_find(&s, "bn1.bias")][c] = (float)stem_beta[c];
        s.values[snapshot_find(&s, "bn1.running_mean")][c] = (float)stem_mean[c];
        s.values[snapshot_find(&s, "bn1.running_var")][c] = (float)stem_var[c];
        /* float-exact copies for the computation below */
        stem_gamma[c] = (float)stem_gamma[c];
        stem_beta[c] = (float)stem_beta[c];
        stem_mean[c] = (float)stem_mean[c];
        stem_var[c] = (float)stem_var[c];
    }
    /* each block's bn2: a per-channel constant (conv2 gives 0) */
    double konst[9][64];
    for (int b = 0; b < 9; b++) {
        int stage = b / 3 + 1, idx = b % 3, ch = 16 << (stage - 1);
        char name[64];
        float gamma[64], beta[64], rmean[64], rvar[64];
        for (int c = 0; c < ch; c++) {
            gamma[c] = 0.7f + 0.01f * (float)b;
            beta[c] = 0.1f * (float)((c + b) % 5) - 0.2f;
            rmean[c] = 0.2f - 0.05f * (float)(c % 3);
            rvar[c] = 3.0f;
            konst[b][c] = (double)gamma[c] * (0.0 - rmean[c]) / sqrt((double)rvar[c] + eps) + beta[c];
        }
        snprintf(name, sizeof name, "layer%d.%d.bn2.weight", stage, idx);
        memcpy(s.values[snapshot_find(&s, name)], gamma, (size_t)ch * sizeof(float));
        snprintf(name, sizeof name, "layer%d.%d.bn2.bias", stage, idx);
        memcpy(s.values[snapshot_find(&s, name)], beta, (size_t)ch * sizeof(float));
        snprintf(name, sizeof name, "layer%d.%d.bn2.running_mean", stage, idx);
        memcpy(s.values[snapshot_find(&s, name)], rmean, (size_t)ch * sizeof(float));
        snprintf(name, sizeof name, "layer%d.%d.bn2.running_var", stage, idx);
        memcpy(s.values[snapshot_find(&s, name)], rvar, (size_t)ch * sizeof(float));
    }
    const float scales[K] = { 0.5f, 1.5f, -2.0f };
    memcpy(s.values[snapshot_find(&s, "learned_norm")], scales, sizeof scales);
    snapshot_restore(m, &s);

    float z[N * K], feat[N * 64];
    ck_assert_status(mislas_model_forward(m, x, N, z), MISLAS_OK);
    ck_assert_status(mislas_model_features(m, feat, N), MISLAS_OK);
    const float *wfc = s.values[snapshot_find(&s, "fc.weight")], *bfc = s.values[snapshot_find(&s, "fc.bias")];
    for (int i = 0; i < N; i++) {
        /* a[c][r][col] in double, side shrinking 8 -> 4 -> 2 */
        static double a[64][8][8], nb[64][8][8];
        int ch = 16, side = H;
        for (int c = 0; c < 16; c++)
            for (int r = 0; r < H; r++)
                for (int col = 0; col < H; col++) {
                    double y = 0;
                    if (c == 0 && r >= 1 && col >= 1)
                        y = x[((i * C + 0) * H + r - 1) * H + col - 1];
                    else if (c == 1)
                        y = 0.5 * x[((i * C + 1) * H + r) * H + col];
                    else if (c == 2 && r + 1 < H && col + 1 < H)
                        y = -(double)x[((i * C + 2) * H + r + 1) * H + col + 1];
                    double v = stem_gamma[c] * (y - stem_mean[c]) / sqrt(stem_var[c] + eps) + stem_beta[c];
                    a[c][r][col] = v > 0 ? v : 0;
                }
        for (int b = 0; b < 9; b++) {
            int down = b == 3 || b == 6, out_ch = down ? 2 * ch : ch, out_side = down ? side / 2 : side;
            for (int c = 0; c < out_ch; c++)
                for (int r = 0; r < out_side; r++)
                    for (int col = 0; col < out_side; col++) {
                        double sc;
                        if (!down)
                            sc = a[c][r][col];
                        else {
                            int src = c - out_ch / 4;
                            sc = src >= 0 && src < ch ? a[src][2 * r][2 * col] : 0.0;
                        }
                        double v = konst[b][c] + sc;
                        nb[c][r][col] = v > 0 ? v : 0;
                    }
            ch = out_ch;
            side = out_side;
            memcpy(a, nb, sizeof a);
        }
        double f[64];
        for (int c = 0; c < 64; c++) {
            f[c] = (a[c][0][0] + a[c][0][1] + a[c][1][0] + a[c][1][1]) / 4;
            ck_assert_close(feat[i * 64 + c], f[c], 1e-6, 1e-6);
        }
        for (int j = 0; j < K; j++) {
            double lin = bfc[j];
            for (int c = 0; c < 64; c++)
                lin += (double)wfc[j * 64 + c] * f[c];
            ck_assert_close(z[i * K + j], scales[j] * lin, 1e-5, 1e-5);
        }
    }
    snapshot_free(&s);
    free(x);
    mislas_model_free(m);
}
END_TEST

/* ---------------------------------------------------------------- freezing and heads */

/* One forward + CE backward + step. */
static void train_step(mislas_model *m, mislas_optimizer *opt, const float *x, size_t n, const int32_t *y)
{
    int32_t k = mislas_model_num_classes(m);
    float *z = malloc(n * (size_t)k * sizeof *z);
    forward_backward(m, x, n, y, z, NULL);
    ck_assert_status(mislas_optimizer_step(opt), MISLAS_OK);
    free(z);
}

START_TEST(freezing_the_backbone)
{
    enum { N = 4, C = 3, H = 8, K = 5 };
    mislas_model *m = test_new_model(MISLAS_RESNET20, C, H, H, K, 31);
    float *x = random_images(N * C * H * H, 0.0);
    const int32_t y[N] = { 4, 1, 0, 3 };
    size_t fc = 64 * K + K;
    mislas_optimizer *opt = test_new_sgd(m, 0.1, 0.9, 2e-4, 1.0);
    ck_assert_uint_eq(mislas_optimizer_group_size(opt, MISLAS_GROUP_BACKBONE), mislas_model_num_parameters(m) - fc);
    ck_assert_uint_eq(mislas_optimizer_group_size(opt, MISLAS_GROUP_CLASSIFIER), fc);
    ck_assert_uint_eq(mislas_optimizer_group_size(opt, MISLAS_GROUP_SCALES), 0);
    ck_assert(mislas_optimizer_group_lr(opt, MISLAS_GROUP_BACKBONE) == 0.1);
    ck_assert(mislas_optimizer_group_lr(opt, MISLAS_GROUP_SCALES) == 0.0);
    mislas_optimizer_free(opt);

    ck_assert_int_eq(mislas_model_backbone_frozen(m), 0);
    ck_assert_status(mislas_model_freeze_backbone(m, 1), MISLAS_OK);
    ck_assert_int_eq(mislas_model_backbone_frozen(m), 1);
    opt = test_new_sgd(m, 0.1, 0.9, 2e-4, 1.0);
    ck_assert_uint_eq(mislas_optimizer_group_size(opt, MISLAS_GROUP_BACKBONE), 0);
    ck_assert(mislas_optimizer_group_lr(opt, MISLAS_GROUP_BACKBONE) == 0.0);
    ck_assert_uint_eq(mislas_optimizer_group_size(opt, MISLAS_GROUP_CLASSIFIER), fc);
    snapshot before, after;
    snapshot_take(m, &before);
    for (int k = 0; k < 3; k++)
        train_step(m, opt, x, N, y);
    ck_assert_uint_eq(mislas_optimizer_steps(opt), 3);
    snapshot_take(m, &after);
    for (int32_t t = 0; t < before.count; t++) {
        if (is_fc(before.names[t]))
            ck_assert_msg(!tensor_same(&before, &after, t), "%s did not learn", before.names[t]);
        else if (!is_running(before.names[t]))
            ck_assert_msg(tensor_same(&before, &after, t), "%s changed in a frozen backbone", before.names[t]);
    }
    /* the head's gradient does not depend on freezing: a frozen and an
     * unfrozen copy take the same first step on W and b */
    mislas_model *a = test_new_model(MISLAS_RESNET20, C, H, H, K, 31), *b = test_new_model(MISLAS_RESNET20, C, H, H, K, 31);
    ck_assert_status(mislas_model_freeze_backbone(b, 1), MISLAS_OK);
    mislas_optimizer *oa = test_new_sgd(a, 0.1, 0.0, 0.0, 1.0), *ob = test_new_sgd(b, 0.1, 0.0, 0.0, 1.0);
    train_step(a, oa, x, N, y);
    train_step(b, ob, x, N, y);
    float *wa = get_tensor(a, "fc.weight"), *wb = get_tensor(b, "fc.weight");
    ck_assert_int_eq(memcmp(wa, wb, fc - K), 0);
    free(wa);
    free(wb);
    /* unfreezing: the backbone learns again (with a new optimiser) */
    ck_assert_status(mislas_model_freeze_backbone(b, 0), MISLAS_OK);
    mislas_optimizer_free(ob);
    ob = test_new_sgd(b, 0.1, 0.0, 0.0, 1.0);
    ck_assert_uint_eq(mislas_optimizer_group_size(ob, MISLAS_GROUP_BACKBONE), mislas_model_num_parameters(b) - fc);
    float *c0 = get_tensor(b, "conv1.weight");
    train_step(b, ob, x, N, y);
    float *c1 = get_tensor(b, "conv1.weight");
    ck_assert_int_ne(memcmp(c0, c1, 16 * 27 * sizeof(float)), 0);
    free(c0);
    free(c1);
    mislas_optimizer_free(oa);
    mislas_optimizer_free(ob);
    mislas_model_free(a);
    mislas_model_free(b);
    snapshot_free(&before);
    snapshot_free(&after);
    mislas_optimizer_free(opt);
    free(x);
    mislas_model_free(m);
}
END_TEST

/* The head's gradients from its inputs, in double: with features f (n x D,
 * from mislas_model_features), z = s (W f + b), CE gradient
 * g = (softmax(z) - onehot) / n:  db_j = s_j sum_i g_ij,
 * dW_jk = s_j sum_i g_ij f_ik,  ds_j = sum_i g_ij (W f + b)_ij. */
typedef struct head_grads {
    double db[8], dw[8 * 64], ds[8];
} head_grads;

static void head_gradients(const mislas_model *m, const float *z, const int32_t *y, size_t n, head_grads *hg)
{
    size_t k = (size_t)mislas_model_num_classes(m), d = 64;
    ck_assert(k <= 8 && (size_t)mislas_model_feature_dim(m) == d);
    float *f = malloc(n * d * sizeof *f);
    ck_assert_status(mislas_model_features(m, f, n), MISLAS_OK);
    float *w = get_tensor(m, "fc.weight"), *b = get_tensor(m, "fc.bias"), *s = get_tensor(m, "learned_norm");
    memset(hg, 0, sizeof *hg);
    for (size_t i = 0; i < n; i++) {
        double mx = z[i * k], sum = 0, p[8], lin[8];
        for (size_t j = 1; j < k; j++)
            mx = fmax(mx, z[i * k + j]);
        for (size_t j = 0; j < k; j++)
            sum += exp(z[i * k + j] - mx);
        for (size_t j = 0; j < k; j++) {
            p[j] = exp(z[i * k + j] - mx) / sum;
            lin[j] = b[j];
            for (size_t c = 0; c < d; c++)
                lin[j] += (double)w[j * d + c] * f[i * d + c];
            /* the logits are s (W f + b) as the forward computed them */
            ck_assert_close(z[i * k + j], s[j] * lin[j], 1e-5, 1e-5);
        }
        for (size_t j = 0; j < k; j++) {
            double g = (p[j] - (j == (size_t)y[i])) / (double)n;
            hg->db[j] += s[j] * g;
            hg->ds[j] += g * lin[j];
            for (size_t c = 0; c < d; c++)
                hg->dw[j * d + c] += s[j] * g * f[i * d + c];
        }
    }
    free(f);
    free(w);
    free(b);
    free(s);
}

START_TEST(head_lws_learns_only_the_scales)
{
    enum { N = 4, C = 3, H = 8, K = 4 };
    mislas_model *m = test_new_model(MISLAS_RESNET20, C, H, H, K, 41);
    float *x = random_images(N * C * H * H, 0.0), z[N * K];
    const int32_t y[N] = { 0, 3, 1, 3 };
    const float s3[K] = { 0.5f, 2.0f, 1.0f, 3.0f };
    ck_assert_status(mislas_model_set_tensor(m, "learned_norm", s3, K), MISLAS_OK);
    ck_assert_status(mislas_model_set_head(m, MISLAS_HEAD_LWS, 99), MISLAS_OK);
    ck_assert_int_eq(mislas_model_head(m), MISLAS_HEAD_LWS);
    float scales[K];
    ck_assert_status(mislas_model_classifier_scales(m, scales), MISLAS_OK);
    for (int j = 0; j < K; j++)
        ck_assert(scales[j] == 1.0f);     /* reset to 1 */
    ck_assert_status(mislas_model_freeze_backbone(m, 1), MISLAS_OK);
    const double lr = 0.5;
    mislas_optimizer *opt = test_new_sgd(m, lr, 0.0, 0.0, 1.0);
    ck_assert_uint_eq(mislas_optimizer_group_size(opt, MISLAS_GROUP_BACKBONE), 0);
    ck_assert_uint_eq(mislas_optimizer_group_size(opt, MISLAS_GROUP_CLASSIFIER), 0);
    ck_assert_uint_eq(mislas_optimizer_group_size(opt, MISLAS_GROUP_SCALES), K);
    ck_assert(mislas_optimizer_group_lr(opt, MISLAS_GROUP_SCALES) == lr);
    snapshot before, after;
    for (int step = 0; step < 2; step++) {
        snapshot_take(m, &before);
        float sc0[K];
        ck_assert_status(mislas_model_classifier_scales(m, sc0), MISLAS_OK);
        forward_backward(m, x, N, y, z, NULL);
        head_grads hg;
        head_gradients(m, z, y, N, &hg);
        ck_assert_status(mislas_optimizer_step(opt), MISLAS_OK);
        snapshot_take(m, &after);
        for (int32_t t = 0; t < before.count; t++)
            if (is_scales(before.names[t]))
                ck_assert(!tensor_same(&before, &after, t));
            else if (!is_running(before.names[t]))
                ck_assert_msg(tensor_same(&before, &after, t), "%s changed under LWS", before.names[t]);
        ck_assert_status(mislas_model_classifier_scales(m, scales), MISLAS_OK);
        for (int j = 0; j < K; j++)
            ck_assert_close(scales[j], sc0[j] - lr * hg.ds[j], 1e-6, 1e-6);
        snapshot_free(&before);
        snapshot_free(&after);
    }
    mislas_optimizer_free(opt);
    free(x);
    mislas_model_free(m);
}
END_TEST

START_TEST(head_crt_reinitialises_the_classifier)
{
    enum { N = 4, C = 3, H = 8, K = 4 };
    mislas_model *m = test_new_model(MISLAS_RESNET20, C, H, H, K, 51);
    mislas_model *twin = test_new_model(MISLAS_RESNET20, C, H, H, K, 51);
    mislas_model *seeded = test_new_model(MISLAS_RESNET20, C, H, H, K, 777);
    float *w0 = get_tensor(m, "fc.weight"), *b0 = get_tensor(m, "fc.bias"), *c0 = get_tensor(m, "conv1.weight");
    const float s3[K] = { 0.5f, 2.0f, 1.0f, 3.0f };
    ck_assert_status(mislas_model_set_tensor(m, "learned_norm", s3, K), MISLAS_OK);
    ck_assert_status(mislas_model_set_head(m, MISLAS_HEAD_CRT, 777), MISLAS_OK);
    ck_assert_status(mislas_model_set_head(twin, MISLAS_HEAD_CRT, 777), MISLAS_OK);
    float *w1 = get_tensor(m, "fc.weight"), *b1 = get_tensor(m, "fc.bias"), *c1 = get_tensor(m, "conv1.weight");
    float *w2 = get_tensor(twin, "fc.weight"), *b2 = get_tensor(twin, "fc.bias");
    float *w3 = get_tensor(seeded, "fc.weight"), *b3 = get_tensor(seeded, "fc.bias");
    ck_assert_int_ne(memcmp(w0, w1, 64 * K * sizeof(float)), 0);
    ck_assert_int_ne(memcmp(b0, b1, K * sizeof(float)), 0);
    /* deterministic from the seed, and the creation-time initialisation */
    ck_assert_int_eq(memcmp(w1, w2, 64 * K * sizeof(float)), 0);
    ck_assert_int_eq(memcmp(b1, b2, K * sizeof(float)), 0);
    ck_assert_int_eq(memcmp(w1, w3, 64 * K * sizeof(float)), 0);
    ck_assert_int_eq(memcmp(b1, b3, K * sizeof(float)), 0);
    /* the backbone untouched; s back at 1 */
    ck_assert_int_eq(memcmp(c0, c1, 16 * 27 * sizeof(float)), 0);
    float scales[K];
    ck_assert_status(mislas_model_classifier_scales(m, scales), MISLAS_OK);
    for (int j = 0; j < K; j++)
        ck_assert(scales[j] == 1.0f);
    /* another seed, another classifier */
    ck_assert_status(mislas_model_set_head(twin, MISLAS_HEAD_CRT, 778), MISLAS_OK);
    free(w2);
    w2 = get_tensor(twin, "fc.weight");
    ck_assert_int_ne(memcmp(w1, w2, 64 * K * sizeof(float)), 0);

    /* cRT trains W and b at lr (the lr_factor is MiSLAS's only), not s */
    ck_assert_status(mislas_model_freeze_backbone(m, 1), MISLAS_OK);
    ck_assert_status(mislas_model_set_mode(m, MISLAS_MODE_EVAL), MISLAS_OK);
    const double lr = 0.3;
    mislas_optimizer *opt = test_new_sgd(m, lr, 0.0, 0.0, 0.2);
    ck_assert_uint_eq(mislas_optimizer_group_size(opt, MISLAS_GROUP_CLASSIFIER), 64 * K + K);
    ck_assert_uint_eq(mislas_optimizer_group_size(opt, MISLAS_GROUP_SCALES), 0);
    ck_assert(mislas_optimizer_group_lr(opt, MISLAS_GROUP_CLASSIFIER) == lr);
    float *x = random_images(N * C * H * H, 0.0), z[N * K];
    const int32_t y[N] = { 1, 1, 2, 0 };
    forward_backward(m, x, N, y, z, NULL);
    head_grads hg;
    head_gradients(m, z, y, N, &hg);
    ck_assert_status(mislas_optimizer_step(opt), MISLAS_OK);
    float *w4 = get_tensor(m, "fc.weight"), *b4 = get_tensor(m, "fc.bias");
    for (int j = 0; j < K; j++) {
        ck_assert_close(b4[j], b1[j] - lr * hg.db[j], 1e-6, 1e-6);
        for (int c = 0; c < 64; c++)
            ck_assert_close(w4[j * 64 + c], w1[j * 64 + c] - lr * hg.dw[j * 64 + c], 1e-6, 1e-6);
    }
    ck_assert_status(mislas_model_classifier_scales(m, scales), MISLAS_OK);
    for (int j = 0; j < K; j++)
        ck_assert(scales[j] == 1.0f);
    free(w4);
    free(b4);
    free(x);
    mislas_optimizer_free(opt);
    free(w0); free(b0); free(c0); free(w1); free(b1); free(c1); free(w2); free(b2); free(w3); free(b3);
    mislas_model_free(m);
    mislas_model_free(twin);
    mislas_model_free(seeded);
}
END_TEST

START_TEST(head_mislas_scales_the_classifier_rate)
{
    enum { N = 4, C = 3, H = 8, K = 4 };
    mislas_model *m = test_new_model(MISLAS_RESNET20, C, H, H, K, 61);
    ck_assert_status(mislas_model_set_head(m, MISLAS_HEAD_MISLAS, 0), MISLAS_OK);
    ck_assert_int_eq(mislas_model_head(m), MISLAS_HEAD_MISLAS);
    /* s away from 1 so that it shows in W's and b's gradients */
    const float s3[K] = { 0.5f, 2.0f, 1.0f, 3.0f };
    ck_assert_status(mislas_model_set_tensor(m, "learned_norm", s3, K), MISLAS_OK);
    ck_assert_status(mislas_model_freeze_backbone(m, 1), MISLAS_OK);
    const double lr = 0.25, factor = 0.2;
    mislas_optimizer *opt = test_new_sgd(m, lr, 0.0, 0.0, factor);
    ck_assert(mislas_optimizer_group_lr(opt, MISLAS_GROUP_CLASSIFIER) == lr * factor);
    ck_assert(mislas_optimizer_group_lr(opt, MISLAS_GROUP_SCALES) == lr);
    ck_assert(mislas_optimizer_group_lr(opt, MISLAS_GROUP_BACKBONE) == 0.0);
    ck_assert_uint_eq(mislas_optimizer_group_size(opt, MISLAS_GROUP_CLASSIFIER), 64 * K + K);
    ck_assert_uint_eq(mislas_optimizer_group_size(opt, MISLAS_GROUP_SCALES), K);
    ck_assert_status(mislas_optimizer_set_lr(opt, 0.5), MISLAS_OK);
    ck_assert(mislas_optimizer_group_lr(opt, MISLAS_GROUP_CLASSIFIER) == 0.5 * factor);
    ck_assert(mislas_optimizer_group_lr(opt, MISLAS_GROUP_SCALES) == 0.5);

    float *x = random_images(N * C * H * H, 0.0), z[N * K];
    const int32_t y[N] = { 3, 0, 2, 2 };
    float *w0 = get_tensor(m, "fc.weight"), *b0 = get_tensor(m, "fc.bias");
    forward_backward(m, x, N, y, z, NULL);
    head_grads hg;
    head_gradients(m, z, y, N, &hg);
    ck_assert_status(mislas_optimizer_step(opt), MISLAS_OK);
    float *w1 = get_tensor(m, "fc.weight"), *b1 = get_tensor(m, "fc.bias"), s1[K];
    ck_assert_status(mislas_model_classifier_scales(m, s1), MISLAS_OK);
    for (int j = 0; j < K; j++) {
        ck_assert_close(b1[j], b0[j] - 0.5 * factor * hg.db[j], 1e-6, 1e-6);
        ck_assert_close(s1[j], s3[j] - 0.5 * hg.ds[j], 1e-6, 1e-6);
        for (int c = 0; c < 64; c++)
            ck_assert_close(w1[j * 64 + c], w0[j * 64 + c] - 0.5 * factor * hg.dw[j * 64 + c], 1e-6, 1e-6);
    }
    /* the same step at factor 1 moves b 1 / factor times as far */
    mislas_model *m2 = test_new_model(MISLAS_RESNET20, C, H, H, K, 61);
    ck_assert_status(mislas_model_set_head(m2, MISLAS_HEAD_MISLAS, 0), MISLAS_OK);
    ck_assert_status(mislas_model_set_tensor(m2, "learned_norm", s3, K), MISLAS_OK);
    ck_assert_status(mislas_model_freeze_backbone(m2, 1), MISLAS_OK);
    mislas_optimizer *opt2 = test_new_sgd(m2, 0.5, 0.0, 0.0, 1.0);
    train_step(m2, opt2, x, N, y);
    float *b2 = get_tensor(m2, "fc.bias");
    for (int j = 0; j < K; j++)
        ck_assert_close((double)b1[j] - b0[j], factor * ((double)b2[j] - b0[j]), 1e-7, 1e-5);
    /* the lr_factor is ignored by the other heads */
    ck_assert_status(mislas_model_set_head(m2, MISLAS_HEAD_LINEAR, 0), MISLAS_OK);
    mislas_optimizer_free(opt2);
    opt2 = test_new_sgd(m2, 0.5, 0.0, 0.0, 0.2);
    ck_assert(mislas_optimizer_group_lr(opt2, MISLAS_GROUP_CLASSIFIER) == 0.5);
    ck_assert(mislas_optimizer_group_lr(opt2, MISLAS_GROUP_SCALES) == 0.0);
    free(b2);
    mislas_optimizer_free(opt2);
    mislas_model_free(m2);
    free(w0); free(b0); free(w1); free(b1);
    free(x);
    mislas_optimizer_free(opt);
    mislas_model_free(m);
}
END_TEST

/* ---------------------------------------------------------------- SGD */

/* torch.optim.SGD (dampening 0, no Nesterov), step by step on W and b of a
 * model with a frozen backbone in TRAIN mode (its features do not change
 * between steps), the gradients computed here from the logits:
 *   d = g + wd w;  v = mu v + d (v = d at the first step);  w -= lr v.
 * The library computes in float, this in double; 1e-6 covers the
 * difference over three steps of size ~0.1. The lr changes between steps
 * (set_lr takes effect at the next step). */
START_TEST(sgd_follows_pytorch)
{
    enum { N = 4, C = 3, H = 8, K = 4, D = 64 };
    mislas_model *m = test_new_model(MISLAS_RESNET20, C, H, H, K, 71);
    ck_assert_status(mislas_model_freeze_backbone(m, 1), MISLAS_OK);
    const double mu = 0.9, wd = 2e-4, lrs[3] = { 0.1, 0.1, 0.05 };
    mislas_optimizer *opt = test_new_sgd(m, lrs[0], mu, wd, 1.0);
    float *x = random_images(N * C * H * H, 0.0), z[N * K];
    const int32_t y[N] = { 2, 0, 3, 1 };
    float *w0 = get_tensor(m, "fc.weight"), *b0 = get_tensor(m, "fc.bias");
    double w[K * D], b[K], vw[K * D] = { 0 }, vb[K] = { 0 };
    for (int i = 0; i < K * D; i++)
        w[i] = w0[i];
    for (int j = 0; j < K; j++)
        b[j] = b0[j];
    for (int step = 0; step < 3; step++) {
        ck_assert_status(mislas_optimizer_set_lr(opt, lrs[step]), MISLAS_OK);
        forward_backward(m, x, N, y, z, NULL);
        head_grads hg;
        head_gradients(m, z, y, N, &hg);
        ck_assert_status(mislas_optimizer_step(opt), MISLAS_OK);
        for (int j = 0; j < K; j++) {
            vb[j] = mu * vb[j] + hg.db[j] + wd * b[j];
            b[j] -= lrs[step] * vb[j];
        }
        for (int i = 0; i < K * D; i++) {
            vw[i] = mu * vw[i] + hg.dw[i] + wd * w[i];
            w[i] -= lrs[step] * vw[i];
        }
        float *w1 = get_tensor(m, "fc.weight"), *b1 = get_tensor(m, "fc.bias");
        for (int j = 0; j < K; j++)
            ck_assert_close(b1[j], b[j], 1e-6, 1e-6);
        for (int i = 0; i < K * D; i++)
            ck_assert_close(w1[i], w[i], 1e-6, 1e-6);
        free(w1);
        free(b1);
    }
    ck_assert_uint_eq(mislas_optimizer_steps(opt), 3);
    ck_assert(mislas_optimizer_lr(opt) == 0.05);
    free(w0);
    free(b0);
    free(x);
    mislas_optimizer_free(opt);
    mislas_model_free(m);
}
END_TEST

/* Weight decay and momentum on a parameter with a zero gradient: a row of
 * W for a feature that is always 0 is impossible to arrange, so instead a
 * step with grad_logits all zero: every gradient is 0 and each learnable
 * value follows w <- w - lr (mu v + wd w) exactly as in float. */
START_TEST(sgd_weight_decay_alone)
{
    enum { N = 2, C = 1, H = 8, K = 3 };
    mislas_model *m = test_new_model(MISLAS_RESNET20, C, H, H, K, 72);
    mislas_optimizer *opt = test_new_sgd(m, 0.1, 0.9, 0.01, 1.0);
    float *x = random_images(N * C * H * H, 0.0), z[N * K], g[N * K] = { 0 };
    snapshot s0, s1;
    snapshot_take(m, &s0);
    ck_assert_status(mislas_model_forward(m, x, N, z), MISLAS_OK);
    ck_assert_status(mislas_model_backward(m, g), MISLAS_OK);
    ck_assert_status(mislas_optimizer_step(opt), MISLAS_OK);
    snapshot_take(m, &s1);
    for (int32_t t = 0; t < s0.count; t++) {
        if (is_running(s0.names[t]) || is_scales(s0.names[t])) {
            if (is_scales(s0.names[t]))
                ck_assert(tensor_same(&s0, &s1, t));     /* not learned under LINEAR */
            continue;
        }
        for (size_t i = 0; i < s0.sizes[t]; i++) {
            float w = s0.values[t][i];
            float want = w - 0.1f * (0.01f * w);     /* the first step: v = d */
            ck_assert_msg(s1.values[t][i] == want, "%s[%zu]: %.9g, expected %.9g", s0.names[t], i,
                (double)s1.values[t][i], (double)want);
        }
    }
    snapshot_free(&s0);
    snapshot_free(&s1);
    free(x);
    mislas_optimizer_free(opt);
    mislas_model_free(m);
}
END_TEST

/* ---------------------------------------------------------------- schedules */

START_TEST(schedules_follow_method_md)
{
    const int32_t milestones[2] = { 160, 180 };
    for (int32_t epoch = 0; epoch < 200; epoch++) {
        int e = epoch + 1;
        double want = e <= 5 ? 0.1 * e / 5 : e <= 160 ? 0.1 : e <= 180 ? 0.01 : 0.001;
        ck_assert_close(mislas_schedule_multistep(0.1, epoch, 5, milestones, 2, 0.1), want, 0, 1e-12);
    }
    ck_assert(mislas_schedule_multistep(0.1, 4, 5, milestones, 2, 0.1) == 0.1);
    ck_assert(mislas_schedule_multistep(0.1, 159, 5, milestones, 2, 0.1) == 0.1);
    ck_assert_close(mislas_schedule_multistep(0.1, 160, 5, milestones, 2, 0.1), 0.01, 0, 1e-12);
    /* no warm-up, no milestones */
    ck_assert(mislas_schedule_multistep(0.2, 0, 0, NULL, 0, 0.1) == 0.2);
    ck_assert(mislas_schedule_multistep(0.2, 99, 0, milestones, 0, 0.1) == 0.2);
    ck_assert_close(mislas_schedule_multistep(0.2, 0, 1, milestones, 2, 0.5), 0.2, 0, 1e-15);
    ck_assert_close(mislas_schedule_multistep(0.2, 199, 1, milestones, 2, 0.5), 0.05, 0, 1e-15);
    for (int32_t epoch = 0; epoch < 10; epoch++)
        ck_assert_close(mislas_schedule_cosine(0.1, epoch, 10), 0.5 * 0.1 * (1 + cos(PI * epoch / 10.0)), 1e-16, 1e-14);
    ck_assert(mislas_schedule_cosine(0.1, 0, 10) == 0.1);
    ck_assert_close(mislas_schedule_cosine(0.1, 5, 10), 0.05, 1e-16, 1e-14);
    ck_assert_close(mislas_schedule_cosine(0.2, 179, 180), 0.1 * (1 + cos(PI * 179 / 180.0)), 1e-18, 1e-12);
    /* arguments no schedule has: NaN (docs/api.md, rule 4) */
    ck_assert(isnan(mislas_schedule_multistep(0.1, -1, 5, milestones, 2, 0.1)));
    ck_assert(isnan(mislas_schedule_multistep(0.1, 0, -1, milestones, 2, 0.1)));
    ck_assert(isnan(mislas_schedule_multistep(0.1, 0, 5, milestones, -1, 0.1)));
    ck_assert(isnan(mislas_schedule_multistep(0.1, 0, 5, NULL, 2, 0.1)));
    ck_assert(isnan(mislas_schedule_cosine(0.1, -1, 10)));
    ck_assert(isnan(mislas_schedule_cosine(0.1, 0, 0)));
}
END_TEST

/* ---------------------------------------------------------------- training */

/* 64 images of 4 classes, 3 x 16 x 16: noise plus a bright quadrant
 * (class c: quadrant c) in a channel that also depends on the class. */
static void synthetic_set(float *x, int32_t *y, size_t n, size_t c, size_t side, int32_t k)
{
    for (size_t i = 0; i < n; i++) {
        int32_t cls = (int32_t)(i % (size_t)k);
        y[i] = cls;
        for (size_t ch = 0; ch < c; ch++)
            for (size_t r = 0; r < side; r++)
                for (size_t col = 0; col < side; col++) {
                    int quadrant = (int)(r >= side / 2) * 2 + (int)(col >= side / 2);
                    double v = 0.5 * test_normal();
                    if (quadrant == cls % 4 && ch == (size_t)cls % c)
                        v += 1.5;
                    x[((i * c + ch) * side + r) * side + col] = (float)v;
                }
    }
}

START_TEST(training_reduces_the_loss)
{
    enum { N = 64, B = 32, C = 3, S = 16, K = 4, EPOCHS = 15 };
    mislas_model *m = test_new_model(MISLAS_RESNET20, C, S, S, K, 81);
    float *x = malloc((size_t)N * C * S * S * sizeof *x), z[N * K];
    int32_t y[N];
    synthetic_set(x, y, N, C, S, K);
    mislas_optimizer *opt = test_new_sgd(m, 0.05, 0.9, 5e-4, 1.0);
    float first = 0, last = 0;
    for (int epoch = 0; epoch < EPOCHS; epoch++) {
        float sum = 0;
        for (int b = 0; b < N / B; b++) {
            float loss;
            forward_backward(m, x + (size_t)b * B * C * S * S, B, y + b * B, z, &loss);
            ck_assert_status(mislas_optimizer_step(opt), MISLAS_OK);
            sum += loss;
        }
        if (epoch == 0)
            first = sum / (N / B);
        last = sum / (N / B);
    }
    ck_assert_uint_eq(mislas_optimizer_steps(opt), EPOCHS * (N / B));
    if (getenv("MISLAS_TEST_VERBOSE") != NULL)
        fprintf(stderr, "training: loss %.4f -> %.4f\n", first, last);
    /* chance is log 4 = 1.39 */
    ck_assert_msg(first > 0.8 && last < 0.2 * first, "loss %g -> %g", first, last);
    /* and in EVAL mode with the running statistics it learned */
    ck_assert_status(mislas_model_set_mode(m, MISLAS_MODE_EVAL), MISLAS_OK);
    ck_assert_status(mislas_model_forward(m, x, N, z), MISLAS_OK);
    int right = 0;
    for (int i = 0; i < N; i++) {
        int best = 0;
        for (int j = 1; j < K; j++)
            if (z[i * K + j] > z[i * K + best])
                best = j;
        right += best == y[i];
    }
    if (getenv("MISLAS_TEST_VERBOSE") != NULL)
        fprintf(stderr, "training: %d of 64 right in EVAL mode\n", right);
    ck_assert_msg(right >= 58, "%d of 64 right in EVAL mode", right);
    mislas_optimizer_free(opt);
    free(x);
    mislas_model_free(m);
}
END_TEST

/* ---------------------------------------------------------------- determinism */

enum { RUN_N = 16, RUN_C = 3, RUN_S = 16, RUN_K = 4 };

typedef struct run_result {
    snapshot weights;
    float logits[RUN_N * RUN_K];
} run_result;

/* Four training steps (momentum and weight decay on), then a forward. */
static void short_run(int threads, const float *x, const int32_t *y, run_result *r)
{
    ck_assert_status(mislas_set_num_threads(threads), MISLAS_OK);
    ck_assert_int_eq(mislas_num_threads(), threads);
    mislas_model *m = test_new_model(MISLAS_RESNET20, RUN_C, RUN_S, RUN_S, RUN_K, 91);
    mislas_optimizer *opt = test_new_sgd(m, 0.05, 0.9, 5e-4, 1.0);
    for (int step = 0; step < 4; step++)
        train_step(m, opt, x, RUN_N, y);
    ck_assert_status(mislas_model_forward(m, x, RUN_N, r->logits), MISLAS_OK);
    snapshot_take(m, &r->weights);
    mislas_optimizer_free(opt);
    mislas_model_free(m);
}

START_TEST(runs_are_bit_identical)
{
    float *x = malloc((size_t)RUN_N * RUN_C * RUN_S * RUN_S * sizeof *x);
    int32_t y[RUN_N];
    synthetic_set(x, y, RUN_N, RUN_C, RUN_S, RUN_K);
    run_result r[4];
    const int threads[4] = { 2, 2, 1, 3 };
    for (int i = 0; i < 4; i++)
        short_run(threads[i], x, y, &r[i]);
    ck_assert_status(mislas_set_num_threads(2), MISLAS_OK);
    for (int i = 1; i < 4; i++) {
        ck_assert_msg(memcmp(r[0].logits, r[i].logits, sizeof r[0].logits) == 0,
            "logits differ between a run on 2 threads and one on %d", threads[i]);
        ck_assert_msg(snapshots_identical(&r[0].weights, &r[i].weights),
            "weights differ between a run on 2 threads and one on %d", threads[i]);
    }
    /* and the runs did train: the weights moved from the initial ones */
    mislas_model *fresh = test_new_model(MISLAS_RESNET20, RUN_C, RUN_S, RUN_S, RUN_K, 91);
    snapshot f;
    snapshot_take(fresh, &f);
    ck_assert(!snapshots_identical(&f, &r[0].weights));
    snapshot_free(&f);
    mislas_model_free(fresh);
    for (int i = 0; i < 4; i++)
        snapshot_free(&r[i].weights);
    free(x);
}
END_TEST

/* ---------------------------------------------------------------- errors */

START_TEST(calls_in_the_wrong_state_or_with_bad_input)
{
    enum { N = 4, C = 3, H = 8, K = 3 };
    mislas_model *m = test_new_model(MISLAS_RESNET20, C, H, H, K, 101);
    mislas_optimizer *opt = test_new_sgd(m, 0.1, 0.9, 2e-4, 1.0);
    float *x = random_images(N * C * H * H, 0.0), z[N * K], g[N * K], f[N * 64];
    for (int i = 0; i < N * K; i++)
        g[i] = 0.01f * (float)(i % 5) - 0.02f;

    /* nothing to go back through, nothing to step with */
    ck_assert_status(mislas_model_backward(m, g), MISLAS_ERR_STATE);
    ck_assert_ptr_nonnull(strstr(mislas_last_error(), "mislas_model_backward"));
    ck_assert_status(mislas_optimizer_step(opt), MISLAS_ERR_STATE);
    ck_assert_status(mislas_model_features(m, f, N), MISLAS_ERR_STATE);
    ck_assert_status(mislas_model_forward(m, x, N, z), MISLAS_OK);
    ck_assert_status(mislas_optimizer_step(opt), MISLAS_ERR_STATE);     /* forward only */
    ck_assert_status(mislas_model_features(m, f, N - 1), MISLAS_ERR_INVALID_ARGUMENT);
    ck_assert_status(mislas_model_features(m, f, N + 1), MISLAS_ERR_INVALID_ARGUMENT);
    ck_assert_status(mislas_model_features(m, NULL, N), MISLAS_ERR_INVALID_ARGUMENT);
    ck_assert_status(mislas_model_features(m, f, N), MISLAS_OK);
    ck_assert_status(mislas_model_backward(m, g), MISLAS_OK);
    ck_assert_status(mislas_optimizer_step(opt), MISLAS_OK);
    /* a step uses the gradients up: neither a second step nor a second
     * backward without a new forward (the weights changed) */
    ck_assert_status(mislas_optimizer_step(opt), MISLAS_ERR_STATE);
    ck_assert_status(mislas_model_backward(m, g), MISLAS_ERR_STATE);
    ck_assert_uint_eq(mislas_optimizer_steps(opt), 1);

    /* anything that changes what a forward computes discards it */
    for (int change = 0; change < 4; change++) {
        ck_assert_status(mislas_model_forward(m, x, N, z), MISLAS_OK);
        float one[16];
        for (int c = 0; c < 16; c++)
            one[c] = 1.0f;
        switch (change) {
        case 0: ck_assert_status(mislas_model_set_mode(m, MISLAS_MODE_TRAIN), MISLAS_OK); break;
        case 1: ck_assert_status(mislas_model_set_head(m, MISLAS_HEAD_LINEAR, 0), MISLAS_OK); break;
        case 2: ck_assert_status(mislas_model_set_tensor(m, "bn1.weight", one, 16), MISLAS_OK); break;
        default: ck_assert_status(mislas_model_freeze_backbone(m, 0), MISLAS_OK); break;
        }
        ck_assert_status(mislas_model_backward(m, g), MISLAS_ERR_STATE);
    }

    /* batch statistics need two images */
    ck_assert_status(mislas_model_forward(m, x, 1, z), MISLAS_ERR_INVALID_ARGUMENT);
    ck_assert_status(mislas_model_forward(m, x, 0, z), MISLAS_ERR_INVALID_ARGUMENT);
    ck_assert_status(mislas_model_set_mode(m, MISLAS_MODE_SHIFTED_BN), MISLAS_OK);
    ck_assert_status(mislas_model_forward(m, x, 1, z), MISLAS_ERR_INVALID_ARGUMENT);
    ck_assert_status(mislas_model_set_mode(m, MISLAS_MODE_EVAL), MISLAS_OK);
    ck_assert_status(mislas_model_forward(m, x, 1, z), MISLAS_OK);
    ck_assert_status(mislas_model_forward(m, x, 0, z), MISLAS_ERR_INVALID_ARGUMENT);
    ck_assert_status(mislas_model_forward(m, NULL, 1, z), MISLAS_ERR_INVALID_ARGUMENT);
    ck_assert_status(mislas_model_forward(m, x, 1, NULL), MISLAS_ERR_INVALID_ARGUMENT);
    ck_assert_status(mislas_model_forward(NULL, x, 1, z), MISLAS_ERR_INVALID_ARGUMENT);
    ck_assert_status(mislas_model_set_mode(m, MISLAS_MODE_TRAIN), MISLAS_OK);

    /* a non-finite grad_logits: NUMERIC, and no gradients to step with */
    ck_assert_status(mislas_model_forward(m, x, N, z), MISLAS_OK);
    g[7] = NAN;
    ck_assert_status(mislas_model_backward(m, g), MISLAS_ERR_NUMERIC);
    ck_assert_ptr_nonnull(strstr(mislas_last_error(), "grad_logits"));
    ck_assert_status(mislas_optimizer_step(opt), MISLAS_ERR_STATE);
    g[7] = INFINITY;
    ck_assert_status(mislas_model_backward(m, g), MISLAS_ERR_NUMERIC);
    ck_assert_status(mislas_model_backward(m, NULL), MISLAS_ERR_INVALID_ARGUMENT);
    /* gradients that overflow float: the step refuses and changes nothing */
    for (int i = 0; i < N * K; i++)
        g[i] = 3e38f;
    ck_assert_status(mislas_model_backward(m, g), MISLAS_OK);
    snapshot s0, s1;
    snapshot_take(m, &s0);
    ck_assert_status(mislas_optimizer_step(opt), MISLAS_ERR_NUMERIC);
    ck_assert_ptr_nonnull(strstr(mislas_last_error(), "not finite"));
    snapshot_take(m, &s1);
    ck_assert(snapshots_identical(&s0, &s1));
    ck_assert_uint_eq(mislas_optimizer_steps(opt), 1);
    snapshot_free(&s0);
    snapshot_free(&s1);

    /* class counts */
    int64_t counts[K] = { 50, 7, 0 }, back[K];
    ck_assert_status(mislas_model_class_counts(m, back, K), MISLAS_ERR_STATE);
    ck_assert_status(mislas_model_set_class_counts(m, counts, K + 1), MISLAS_ERR_INVALID_ARGUMENT);
    counts[1] = -1;
    ck_assert_status(mislas_model_set_class_counts(m, counts, K), MISLAS_ERR_INVALID_ARGUMENT);
    counts[1] = 7;
    ck_assert_status(mislas_model_set_class_counts(m, counts, K), MISLAS_OK);
    ck_assert_status(mislas_model_class_counts(m, back, K), MISLAS_OK);
    ck_assert_int_eq(memcmp(counts, back, sizeof counts), 0);
    ck_assert_status(mislas_model_class_counts(m, back, K - 1), MISLAS_ERR_INVALID_ARGUMENT);
    ck_assert_status(mislas_model_set_class_counts(m, NULL, 0), MISLAS_OK);
    ck_assert_status(mislas_model_class_counts(m, back, K), MISLAS_ERR_STATE);

    /* NULL handles and outputs */
    float out[K];
    ck_assert_status(mislas_model_classifier_norms(m, NULL), MISLAS_ERR_INVALID_ARGUMENT);
    ck_assert_status(mislas_model_classifier_scales(NULL, out), MISLAS_ERR_INVALID_ARGUMENT);
    ck_assert_status(mislas_model_get_tensor(m, NULL, out, K), MISLAS_ERR_INVALID_ARGUMENT);
    ck_assert_status(mislas_model_get_tensor(m, "fc.bias", NULL, K), MISLAS_ERR_INVALID_ARGUMENT);
    ck_assert_status(mislas_model_set_tensor(m, "fc.bias", NULL, K), MISLAS_ERR_INVALID_ARGUMENT);
    ck_assert_status(mislas_model_freeze_backbone(NULL, 1), MISLAS_ERR_INVALID_ARGUMENT);
    ck_assert_status(mislas_model_set_head(NULL, MISLAS_HEAD_LWS, 0), MISLAS_ERR_INVALID_ARGUMENT);
    ck_assert_status(mislas_optimizer_step(NULL), MISLAS_ERR_INVALID_ARGUMENT);
    ck_assert_status(mislas_optimizer_set_lr(NULL, 0.1), MISLAS_ERR_INVALID_ARGUMENT);
    ck_assert_int_lt(mislas_model_num_bn(NULL), 0);
    ck_assert_int_lt(mislas_model_num_tensors(NULL), 0);
    mislas_optimizer_free(opt);
    free(x);
    mislas_model_free(m);
}
END_TEST

/* mislas_model_predict is an EVAL forward that keeps nothing: the same
 * logits bit for bit (one code path, BN applied in place instead of into a
 * second buffer), in any mode; the running statistics stay where they are;
 * there is nothing to go back through; the features stay readable. Also
 * across slice boundaries (n = 19 is two full 8-image slices and a short one). */
START_TEST(predict_is_an_eval_forward_without_backward)
{
    enum { N = 19, C = 3, H = 12, K = 5 };
    mislas_model *m = test_new_model(MISLAS_RESNET20, C, H, H, K, 31);
    float *x = random_images(N * C * H * H, 0.0), z[N * K], p[N * K], g[N * K] = { 0 };
    /* move the running statistics off their initial values first */
    ck_assert_status(mislas_model_forward(m, x, N, z), MISLAS_OK);
    ck_assert_status(mislas_model_set_mode(m, MISLAS_MODE_EVAL), MISLAS_OK);
    ck_assert_status(mislas_model_forward(m, x, N, z), MISLAS_OK);
    const mislas_mode modes[3] = { MISLAS_MODE_TRAIN, MISLAS_MODE_SHIFTED_BN, MISLAS_MODE_EVAL };
    for (int md = 0; md < 3; md++) {
        ck_assert_status(mislas_model_set_mode(m, modes[md]), MISLAS_OK);
        float before[16], after[16];
        ck_assert_status(mislas_model_bn_running_stats(m, 0, before, NULL, 16), MISLAS_OK);
        ck_assert_status(mislas_model_predict(m, x, N, p), MISLAS_OK);
        ck_assert_status(mislas_model_bn_running_stats(m, 0, after, NULL, 16), MISLAS_OK);
        ck_assert_msg(memcmp(before, after, sizeof before) == 0, "mode %d: predict moved the running mean", md);
        ck_assert_msg(memcmp(z, p, sizeof z) == 0, "mode %d: predict's logits differ from an EVAL forward's", md);
        ck_assert_status(mislas_model_backward(m, g), MISLAS_ERR_STATE);
        float f[N * 64];
        ck_assert_status(mislas_model_features(m, f, N), MISLAS_OK);
    }
    /* one image is fine: no batch statistics */
    ck_assert_status(mislas_model_predict(m, x, 1, p), MISLAS_OK);
    ck_assert_msg(memcmp(z, p, K * sizeof *p) == 0, "predict on one image differs");
    free(x);
    mislas_model_free(m);
}
END_TEST

/* Evaluation runs the early layers of large images a few images at a time
 * (network.c's pieces: about 1M floats of a layer's output each) and the
 * rest on the whole slice: each image's logits must still be the bits it
 * gets alone, and an EVAL forward's. ResNet-10 at 256x256: the stem's
 * output (128x128x64) goes one image at a time, the first stage's (64x64x64)
 * four at a time, the rest whole; n = 5 leaves short pieces. */
START_TEST(predict_in_pieces_is_each_image_alone)
{
    enum { N = 5, C = 3, H = 256, K = 7 };
    mislas_model *m = test_new_model(MISLAS_RESNET10, C, H, H, K, 41);
    float *x = random_images((size_t)N * C * H * H, 0.0), p[N * K], z[N * K], one[K];
    ck_assert_status(mislas_model_predict(m, x, N, p), MISLAS_OK);
    for (int i = 0; i < N; i++) {
        ck_assert_status(mislas_model_predict(m, x + (size_t)i * C * H * H, 1, one), MISLAS_OK);
        ck_assert_msg(memcmp(one, p + i * K, sizeof one) == 0, "image %d: its logits in the batch differ from alone", i);
    }
    ck_assert_status(mislas_model_set_mode(m, MISLAS_MODE_EVAL), MISLAS_OK);
    ck_assert_status(mislas_model_forward(m, x, N, z), MISLAS_OK);
    ck_assert_msg(memcmp(z, p, sizeof z) == 0, "predict's logits differ from an EVAL forward's");
    free(x);
    mislas_model_free(m);
}
END_TEST

/* NaN or infinity in the images is MISLAS_ERR_NUMERIC (model.h: "A
 * non-finite logit is MISLAS_ERR_NUMERIC"; a NaN pixel makes the whole
 * channel's batch statistics NaN, so it must not vanish on the way), and
 * it must not leave NaN behind in the running statistics: they would make
 * every later EVAL forward wrong and the model unsaveable. */
START_TEST(non_finite_images_are_refused)
{
    enum { N = 4, C = 3, H = 8, K = 3 };
    const float bad[3] = { NAN, INFINITY, -INFINITY };
    const mislas_mode modes[3] = { MISLAS_MODE_TRAIN, MISLAS_MODE_SHIFTED_BN, MISLAS_MODE_EVAL };
    for (int b = 0; b < 3; b++)
        for (int md = 0; md < 3; md++) {
            mislas_model *m = test_new_model(MISLAS_RESNET20, C, H, H, K, 102);
            ck_assert_status(mislas_model_set_mode(m, modes[md]), MISLAS_OK);
            float *x = random_images(N * C * H * H, 0.0), z[N * K], g[N * K] = { 0 };
            x[N * C * H * H / 2 + 5] = bad[b];
            int rc = mislas_model_forward(m, x, N, z);
            ck_assert_msg(rc == MISLAS_ERR_NUMERIC, "pixel %g, mode %d: status %d (%s)", (double)bad[b], md, rc,
                mislas_status_string(rc));
            ck_assert_status(mislas_model_backward(m, g), MISLAS_ERR_STATE);
            for (int32_t l = 0; l < mislas_model_num_bn(m); l++) {
                int32_t ch = mislas_model_bn_channels(m, l);
                float mean[64], var[64];
                ck_assert_status(mislas_model_bn_running_stats(m, l, mean, var, ch), MISLAS_OK);
                for (int32_t c = 0; c < ch; c++)
                    ck_assert_msg(isfinite(mean[c]) && isfinite(var[c]), "pixel %g, mode %d: BN %d channel %d: %g %g",
                        (double)bad[b], md, (int)l, (int)c, (double)mean[c], (double)var[c]);
            }
            free(x);
            mislas_model_free(m);
        }
}
END_TEST

/* Changing the freezing (or the head, or shifted BN) after creating the
 * optimiser leaves it with the old groups (optimizer.h: set them first). It
 * must not then update a frozen backbone with the gradients of an earlier
 * backward. */
START_TEST(optimizer_does_not_outlive_its_groups)
{
    enum { N = 4, C = 3, H = 8, K = 3 };
    mislas_model *m = test_new_model(MISLAS_RESNET20, C, H, H, K, 103);
    mislas_optimizer *opt = test_new_sgd(m, 0.1, 0.9, 2e-4, 1.0);
    float *x = random_images(N * C * H * H, 0.0);
    const int32_t y[N] = { 0, 1, 2, 1 };
    train_step(m, opt, x, N, y);
    ck_assert_status(mislas_model_freeze_backbone(m, 1), MISLAS_OK);
    float *c0 = get_tensor(m, "conv1.weight");
    float z[N * K];
    forward_backward(m, x, N, y, z, NULL);
    int rc = mislas_optimizer_step(opt);
    float *c1 = get_tensor(m, "conv1.weight");
    ck_assert_msg(rc != MISLAS_OK || memcmp(c0, c1, 16 * 27 * sizeof(float)) == 0,
        "a step after freezing changed the frozen backbone (stale gradients)");
    if (rc != MISLAS_OK)
        ck_assert_int_eq(rc, MISLAS_ERR_STATE);
    free(c0);
    free(c1);
    mislas_optimizer_free(opt);
    free(x);
    mislas_model_free(m);
}
END_TEST

/* ---------------------------------------------------------------- out of memory */

static int sweep_new(void *ctx)
{
    (void)ctx;
    mislas_model_options o;
    mislas_model_options_init(&o);
    o.arch = MISLAS_RESNET20;
    o.height = o.width = 8;
    mislas_model *m = (mislas_model *)(uintptr_t)1;
    int rc = mislas_model_new(&m, &o);
    if (rc != MISLAS_OK)
        ck_assert_ptr_null(m);
    mislas_model_free(m == (mislas_model *)(uintptr_t)1 ? NULL : m);
    return rc;
}

/* A model's first forward (which allocates its activations), a backward, an
 * optimiser and a step; then a larger batch (the activations grow), and an
 * ImageNet model's forward (max pool, projections). */
static int sweep_pass(void *ctx)
{
    const float *x = ctx;
    mislas_model_options o;
    mislas_model_options_init(&o);
    o.arch = MISLAS_RESNET20;
    o.height = o.width = 8;
    o.num_classes = 3;
    mislas_model *m = NULL, *big = NULL;
    mislas_optimizer *opt = NULL;
    float z[8 * 10], g[8 * 10] = { 0 };
    g[0] = 0.5f;
    int rc = mislas_model_new(&m, &o);
    if (rc == MISLAS_OK)
        rc = mislas_model_forward(m, x, 4, z);
    if (rc == MISLAS_OK)
        rc = mislas_model_backward(m, g);
    if (rc == MISLAS_OK)
        rc = mislas_optimizer_new_sgd(&opt, m, NULL);
    if (rc == MISLAS_OK)
        rc = mislas_optimizer_step(opt);
    if (rc == MISLAS_OK)
        rc = mislas_model_forward(m, x, 8, z);
    if (rc == MISLAS_OK) {
        /* a failed forward leaves a model that still works */
        rc = mislas_model_forward(m, x, 2, z);
    }
    if (rc == MISLAS_OK) {
        int64_t counts[3] = { 5, 3, 1 };
        rc = mislas_model_set_class_counts(m, counts, 3);
    }
    if (rc == MISLAS_OK) {
        o.arch = MISLAS_RESNET10;
        o.height = o.width = 16;
        o.in_channels = 1;
        rc = mislas_model_new(&big, &o);
    }
    if (rc == MISLAS_OK)
        rc = mislas_model_forward(big, x, 2, z);
    mislas_optimizer_free(opt);
    mislas_model_free(m);
    mislas_model_free(big);
    return rc;
}

START_TEST(allocation_failures_are_clean)
{
    ck_assert_int_gt(test_allocation_sweep(sweep_new, NULL), 3);
    float *x = random_images(8 * 3 * 8 * 8, 0.0);
    ck_assert_int_gt(test_allocation_sweep(sweep_pass, x), 6);
    free(x);
}
END_TEST

/* After a forward failed for want of memory, the model is whole: the next
 * forward (with memory) gives the logits a fresh model gives. */
static void *failing_alloc(size_t size, void *user)
{
    (void)user;
    (void)size;
    return NULL;
}

static void plain_release(void *ptr, void *user)
{
    (void)user;
    free(ptr);
}

START_TEST(out_of_memory_forward_then_recovery)
{
    enum { N = 4, C = 3, H = 8, K = 3 };
    mislas_model *m = test_new_model(MISLAS_RESNET20, C, H, H, K, 104), *fresh = test_new_model(MISLAS_RESNET20, C, H, H, K, 104);
    float *x = random_images(2 * N * C * H * H, 0.0), z[2 * N * K], want[2 * N * K];
    ck_assert_status(mislas_model_forward(m, x, N, z), MISLAS_OK);
    ck_assert_status(mislas_set_allocator(failing_alloc, plain_release, NULL), MISLAS_OK);
    int rc = mislas_model_forward(m, x, 2 * N, z);     /* needs larger activations */
    ck_assert_status(mislas_set_allocator(NULL, NULL, NULL), MISLAS_OK);
    ck_assert_int_eq(rc, MISLAS_ERR_OUT_OF_MEMORY);
    ck_assert_status(mislas_model_backward(m, z), MISLAS_ERR_STATE);
    ck_assert_status(mislas_model_set_mode(m, MISLAS_MODE_EVAL), MISLAS_OK);
    ck_assert_status(mislas_model_set_mode(fresh, MISLAS_MODE_EVAL), MISLAS_OK);
    /* m's running statistics moved once (the first forward): copy them */
    snapshot s;
    snapshot_take(m, &s);
    snapshot_restore(fresh, &s);
    snapshot_free(&s);
    ck_assert_status(mislas_model_forward(m, x, 2 * N, z), MISLAS_OK);
    ck_assert_status(mislas_model_forward(fresh, x, 2 * N, want), MISLAS_OK);
    ck_assert_int_eq(memcmp(z, want, sizeof z), 0);
    free(x);
    mislas_model_free(m);
    mislas_model_free(fresh);
}
END_TEST

/* A batch too large to hold names the call that was given it, before any
 * image is read; a negative running variance is refused (evaluation would
 * take its square root). */
START_TEST(oversized_batches_and_negative_variances_are_refused)
{
    mislas_model *m = test_new_model(MISLAS_RESNET20, 1, 8, 8, 4, 0);
    float image[64] = { 0 }, logits[4];
    size_t huge = SIZE_MAX / 8;
    ck_assert_status(mislas_model_predict(m, image, huge, logits), MISLAS_ERR_OUT_OF_MEMORY);
    ck_assert_msg(strstr(mislas_last_error(), "mislas_model_predict: a batch of") != NULL, "%s", mislas_last_error());
    ck_assert_status(mislas_model_forward(m, image, huge, logits), MISLAS_ERR_OUT_OF_MEMORY);
    ck_assert_msg(strstr(mislas_last_error(), "mislas_model_forward: a batch of") != NULL, "%s", mislas_last_error());
    float var[16];
    for (int i = 0; i < 16; i++)
        var[i] = 1.0f;
    var[3] = -0.5f;
    ck_assert_status(mislas_model_set_tensor(m, "bn1.running_var", var, 16), MISLAS_ERR_INVALID_ARGUMENT);
    ck_assert_msg(strstr(mislas_last_error(), "\"bn1.running_var\"[3] = -0.5 is negative") != NULL, "%s",
            mislas_last_error());
    var[3] = 0.0f;      /* zero is a variance (a constant channel) */
    ck_assert_status(mislas_model_set_tensor(m, "bn1.running_var", var, 16), MISLAS_OK);
    mislas_model_free(m);
}
END_TEST

int main(void)
{
    mislas_set_num_threads(2);
    Suite *s = suite_create("model");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, parameter_counts_cifar);
    tcase_add_test(tc, parameter_counts_imagenet);
    tcase_add_test(tc, tensor_names_follow_the_reference);
    tcase_add_test(tc, options_are_validated);
    tcase_add_test(tc, initialisation_statistics);
    tcase_add_test(tc, seeds_decide_the_initialisation);
    tcase_add_test(tc, gradients_train_mode);
    tcase_add_test(tc, gradients_eval_mode);
    tcase_add_test(tc, gradients_shifted_bn_mode);
    tcase_add_test(tc, gradients_imagenet_basic_blocks);
    tcase_add_test(tc, gradients_imagenet_bottlenecks);
    tcase_add_test(tc, get_gradient_matches_the_step);
    tcase_add_test(tc, bn_modes_and_running_statistics);
    tcase_add_test(tc, shifted_bn_tracks_new_statistics);
    tcase_add_test(tc, eval_forward_by_hand);
    tcase_add_test(tc, freezing_the_backbone);
    tcase_add_test(tc, head_lws_learns_only_the_scales);
    tcase_add_test(tc, head_crt_reinitialises_the_classifier);
    tcase_add_test(tc, head_mislas_scales_the_classifier_rate);
    tcase_add_test(tc, sgd_follows_pytorch);
    tcase_add_test(tc, sgd_weight_decay_alone);
    tcase_add_test(tc, schedules_follow_method_md);
    tcase_add_test(tc, training_reduces_the_loss);
    tcase_add_test(tc, runs_are_bit_identical);
    tcase_add_test(tc, calls_in_the_wrong_state_or_with_bad_input);
    tcase_add_test(tc, non_finite_images_are_refused);
    tcase_add_test(tc, predict_is_an_eval_forward_without_backward);
    tcase_add_test(tc, predict_in_pieces_is_each_image_alone);
    tcase_add_test(tc, optimizer_does_not_outlive_its_groups);
    tcase_add_test(tc, allocation_failures_are_clean);
    tcase_add_test(tc, out_of_memory_forward_then_recovery);
    tcase_add_test(tc, oversized_batches_and_negative_variances_are_refused);
    suite_add_tcase(s, tc);
    return test_run_suite(s);
}
