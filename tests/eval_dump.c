/* Helper of tests/import_reference_check.py: loads a checkpoint, runs the
 * model in EVAL mode over a batch of images and writes the logits, so the
 * script can compare them with PyTorch.
 *
 * Usage: eval_dump CHECKPOINT INPUT N OUTPUT
 * INPUT:  exactly N x C x H x W float32 (native endianness, NCHW), with C, H
 *         and W those of the checkpoint's model.
 * OUTPUT: N x K float32 logits, row by row.
 * Exit status 0, or 1 with a message on stderr. */
#include <mislas/mislas.h>

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void fail(const char *what, const char *detail)
{
    fprintf(stderr, "eval_dump: %s: %s\n", what, detail);
    exit(1);
}

static void die(const char *what)
{
    fail(what, mislas_last_error());
}

static size_t mul_checked(size_t a, size_t b)
{
    if (b != 0 && a > SIZE_MAX / b)
        fail("sizes", "N x C x H x W overflows");
    return a * b;
}

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: eval_dump CHECKPOINT INPUT N OUTPUT\n");
        return 2;
    }
    char *end = NULL;
    errno = 0;
    unsigned long long nl = strtoull(argv[3], &end, 10);
    if (errno != 0 || end == argv[3] || *end != '\0' || argv[3][0] == '-' || nl == 0
            || nl > SIZE_MAX)
        fail("N", "not a positive count of images");
    size_t n = (size_t)nl;

    mislas_model *model = NULL;
    if (mislas_checkpoint_load(&model, NULL, argv[1]) != MISLAS_OK)
        die(argv[1]);
    if (mislas_model_set_mode(model, MISLAS_MODE_EVAL) != MISLAS_OK)
        die("set_mode");
    mislas_model_options opts;
    memset(&opts, 0, sizeof opts);
    opts.struct_size = sizeof opts;
    if (mislas_model_get_options(model, &opts) != MISLAS_OK)
        die("get_options");
    int32_t k = mislas_model_num_classes(model);
    if (k <= 0 || opts.in_channels <= 0 || opts.height <= 0 || opts.width <= 0)
        fail("model", "non-positive classes or image dimensions");
    size_t per_image = mul_checked(mul_checked((size_t)opts.in_channels, (size_t)opts.height),
            (size_t)opts.width);
    size_t count = mul_checked(n, per_image);
    size_t out_count = mul_checked(n, (size_t)k);
    float *images = malloc(mul_checked(count, sizeof *images));
    float *logits = malloc(mul_checked(out_count, sizeof *logits));
    if (images == NULL || logits == NULL)
        fail("memory", strerror(ENOMEM));

    FILE *in = fopen(argv[2], "rb");
    if (in == NULL)
        fail(argv[2], strerror(errno));
    if (fread(images, sizeof *images, count, in) != count)
        fail(argv[2], ferror(in) ? strerror(errno) : "shorter than N x C x H x W floats");
    if (fgetc(in) != EOF)
        fail(argv[2], "longer than N x C x H x W floats");
    fclose(in);

    if (mislas_model_forward(model, images, n, logits) != MISLAS_OK)
        die("forward");

    FILE *out = fopen(argv[4], "wb");
    if (out == NULL)
        fail(argv[4], strerror(errno));
    if (fwrite(logits, sizeof *logits, out_count, out) != out_count)
        fail(argv[4], strerror(errno));
    if (fclose(out) != 0)
        fail(argv[4], strerror(errno));

    free(images);
    free(logits);
    mislas_model_free(model);
    return 0;
}
