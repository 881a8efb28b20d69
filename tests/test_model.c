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

static mislas_model *new_model(mislas_arch arch, int32_t c, int32_t h, int32_t w, int32_t k, uint64_t seed)
{
    mislas_model_options o;
    mislas_model_options_init(&o);
    o.arch = arch;
    o.in_channels = c;
    o.height = h;
    o.width = w;
    o.num_classes = k;
    o.seed = seed;
    mislas_model *m = NULL;
    ck_assert_status(mislas_model_new(&m, &o), MISLAS_OK);
    ck_assert_ptr_nonnull(m);
    return m;
}

static mislas_optimizer *new_sgd(mislas_model *m, double lr, double momentum, double wd, double lr_factor)
{
    mislas_sgd_options o;
    mislas_sgd_options_init(&o);
    o.lr = lr;
    o.momentum = momentum;
    o.weight_decay = wd;
    o.lr_factor = lr_factor;
    mislas_optimizer *opt = NULL;
    ck_assert_status(mislas_optimizer_new_sgd(&opt, m, &o), MISLAS_OK);
    return opt;
}

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

/* Every tensor's values, in the model's order. */
typedef struct snapshot {
    int32_t count;
    const char **names;
    size_t *sizes;
    float **values;
} snapshot;

static void snapshot_take(const mislas_model *m, snapshot *s)
{
    s->count = mislas_model_num_tensors(m);
    ck_assert_int_gt(s->count, 0);
    s->names = calloc((size_t)s->count, sizeof *s->names);
    s->sizes = calloc((size_t)s->count, sizeof *s->sizes);
    s->values = calloc((size_t)s->count, sizeof *s->values);
    for (int32_t t = 0; t < s->count; t++) {
        ck_assert_status(mislas_model_tensor_info(m, t, &s->names[t], &s->sizes[t]), MISLAS_OK);
        s->values[t] = malloc(s->sizes[t] * sizeof(float));
        ck_assert_status(mislas_model_get_tensor(m, s->names[t], s->values[t], s->sizes[t]), MISLAS_OK);
    }
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

static void gradients_by_step(mislas_model *m, const float *x, size_t n, const int32_t *y, snapshot *grads)
{
    snapshot before, after;
    snapshot_take(m, &before);
    int32_t k = mislas_model_num_classes(m);
    float *z = malloc(n * (size_t)k * sizeof *z);
    mislas_optimizer *opt = new_sgd(m, ETA, 0.0, 0.0, 1.0);
    forward_backward(m, x, n, y, z, NULL);
    ck_assert_status(mislas_optimizer_step(opt), MISLAS_OK);
    snapshot_take(m, &after);
    snapshot_take(m, grads);
    for (int32_t t = 0; t < before.count; t++)
        for (size_t i = 0; i < before.sizes[t]; i++)
            grads->values[t][i] = is_running(before.names[t]) ? 0.0f
                : (float)(((double)before.values[t][i] - (double)after.values[t][i]) / ETA);
    snapshot_restore(m, &before);
    mislas_optimizer_free(opt);
    snapshot_free(&before);
    snapshot_free(&after);
    free(z);
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
            mislas_model *m = new_model(archs[a].arch, shapes[s].c, 32, 32, shapes[s].k, 0);
            ck_assert_msg(mislas_model_num_parameters(m) == cifar_params(archs[a].n, shapes[s].c, shapes[s].k),
                "arch %d, c %d, k %d: %zu parameters, expected %zu", (int)archs[a].arch, shapes[s].c,
                shapes[s].k, mislas_model_num_parameters(m), cifar_params(archs[a].n, shapes[s].c, shapes[s].k));
            ck_assert_int_eq(mislas_model_feature_dim(m), 64);
            ck_assert_int_eq(mislas_model_num_classes(m), shapes[s].k);
            /* stem + two per block; the count does not depend on the image size */
            ck_assert_int_eq(mislas_model_num_bn(m), 1 + 6 * archs[a].n);
            mislas_model_free(m);
        }
    mislas_model *m = new_model(MISLAS_RESNET32, 3, 8, 12, 100, 0);
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
    mislas_model *m = new_model(MISLAS_RESNET50, 3, 224, 224, 1000, 0);
    ck_assert_uint_eq(mislas_model_num_parameters(m), 25557032);
    ck_assert_int_eq(mislas_model_feature_dim(m), 2048);
    ck_assert_int_eq(mislas_model_num_bn(m), 1 + 3 * 16 + 4);
    mislas_model_free(m);
    m = new_model(MISLAS_RESNET10, 3, 224, 224, 1000, 0);
    ck_assert_uint_eq(mislas_model_num_parameters(m), imagenet_params(r10, 0, 3, 1000));
    ck_assert_uint_eq(mislas_model_num_parameters(m), 5418792);
    ck_assert_int_eq(mislas_model_feature_dim(m), 512);
    ck_assert_int_eq(mislas_model_num_bn(m), 1 + 2 * 4 + 3);
    mislas_model_free(m);
    /* and the ImageNet models run on small images (no 224 forward here: too slow) */
    m = new_model(MISLAS_RESNET10, 1, 20, 28, 7, 0);
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
    mislas_model *m = new_model(MISLAS_RESNET20, 3, 32, 32, 10, 0);
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
    float v[16];
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

    m = new_model(MISLAS_RESNET50, 3, 32, 32, 5, 0);
    ck_assert_uint_eq(tensor_size(m, "layer1.0.downsample.0.weight"), 256 * 64);
    ck_assert_uint_eq(tensor_size(m, "layer4.2.conv3.weight"), 2048 * 512);
    ck_assert_uint_eq(tensor_size(m, "layer4.0.downsample.1.running_mean"), 2048);
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
    mislas_sgd_options so;
    const double bad_sgd[][4] = {
        { -0.1, 0.9, 0, 1 }, { NAN, 0.9, 0, 1 }, { 0.1, 1.0, 0, 1 }, { 0.1, -0.5, 0, 1 },
        { 0.1, 0.9, -1e-4, 1 }, { 0.1, 0.9, INFINITY, 1 }, { 0.1, 0.9, 0, -1 },
    };
    for (size_t i = 0; i < sizeof bad_sgd / sizeof bad_sgd[0]; i++) {
        mislas_sgd_options_init(&so);
        so.lr = bad_sgd[i][0];
        so.momentum = bad_sgd[i][1];
        so.weight_decay = bad_sgd[i][2];
        so.lr_factor = bad_sgd[i][3];
        opt = (mislas_optimizer *)(uintptr_t)1;
        ck_assert_status(mislas_optimizer_new_sgd(&opt, m, &so), MISLAS_ERR_INVALID_ARGUMENT);
        ck_assert_ptr_null(opt);
    }
    mislas_sgd_options_init(&so);
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
    mislas_model *m = new_model(MISLAS_RESNET20, 3, 32, 32, 10, 7);
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
    mislas_model *wide = new_model(MISLAS_RESNET20, 3, 8, 8, 1000, 3);
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
    mislas_model *a = new_model(MISLAS_RESNET20, 3, 16, 16, 5, 11);
    mislas_model *b = new_model(MISLAS_RESNET20, 3, 16, 16, 5, 11);
    mislas_model *c = new_model(MISLAS_RESNET20, 3, 16, 16, 5, 12);
    /* the image size does not enter the weights */
    mislas_model *d = new_model(MISLAS_RESNET20, 3, 32, 24, 5, 11);
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
 * Error budget. The logits are float: a forward through ~20 layers with
 * sums of up to 576 terms rounds each logit by a few 1e-7 relative, and
 * the rounding is not smooth in the parameter, so the loss jitters by
 * about 1e-6 (measured spread between nearby points: ~3e-7), which the
 * difference quotient turns into an error of jitter / h: 1e-4 for h = 1e-2.
 * Truncation is h^2/6 |L'''|; on this tiny network |L'''| stays below
 * ~10 away from ReLU kinks, another ~2e-4. A ReLU kink crossed inside
 * [w - h, w + h] changes the slope by the contribution of one
 * pre-activation, an error of the same order as the gradient of that
 * pixel's share; a perturbation of a conv weight moves every pixel of its
 * channel, so some kinks are crossed almost always, but each is one of
 * n*H*W = 256 pixels. So each entry must match within 2e-3 + 5 % of the
 * larger of the two values, at h or at h/2 (a kink inside [w - h, w + h]
 * but outside [w - h/2, w + h/2] then does not fail the check), and at
 * most one entry in ten may miss both; a wrong term (a missing 1/m in BN's
 * backward, a transposed weight, a dropped shortcut) is off by far more
 * than 5 % on most entries. The probes are the entries of largest
 * analytic gradient (so that the relative test bites) and random ones. */
typedef struct probe_stats {
    int checked, missed;
    double worst;
} probe_stats;

static void probe_entry(mislas_model *m, const float *x, size_t n, const int32_t *y, const char *name,
        size_t count, float *w, size_t i, double g, probe_stats *st)
{
    double fd[2];
    float keep = w[i];
    for (int r = 0; r < 2; r++) {
        float h = r == 0 ? 1e-2f : 5e-3f;
        w[i] = keep + h;
        ck_assert_status(mislas_model_set_tensor(m, name, w, count), MISLAS_OK);
        double up = loss_of(m, x, n, y);
        w[i] = keep - h;
        ck_assert_status(mislas_model_set_tensor(m, name, w, count), MISLAS_OK);
        double down = loss_of(m, x, n, y);
        /* the step actually taken, (keep + h) - (keep - h) in float */
        fd[r] = (up - down) / ((double)(keep + h) - (double)(keep - h));
    }
    w[i] = keep;
    ck_assert_status(mislas_model_set_tensor(m, name, w, count), MISLAS_OK);
    double err = INFINITY;
    for (int r = 0; r < 2; r++) {
        double e = fabs(fd[r] - g) / (2e-3 + 0.05 * fmax(fabs(g), fabs(fd[r])));
        err = fmin(err, e);
    }
    st->checked++;
    if (err > 1.0)
        st->missed++;
    st->worst = fmax(st->worst, err);
    if (getenv("MISLAS_TEST_VERBOSE") != NULL)
        printf("%-28s [%5zu] analytic %+.6e  fd %+.6e %+.6e  err %.3f\n", name, i, g, fd[0], fd[1], err);
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

/* The model's gradient in `mode` against finite differences, over the stem,
 * blocks with and without the option-A shortcut, BN affine and the head. */
static void check_gradients(mislas_mode mode)
{
    enum { N = 4, C = 3, H = 8, K = 3 };
    mislas_model *m = new_model(MISLAS_RESNET20, C, H, H, K, 5);
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
    suite_add_tcase(s, tc);
    return test_run_suite(s);
}
