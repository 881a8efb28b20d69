/* Batch assembly (docs/method.md, "Augmentation and
 * normalisation"; list-file sets in list_batch.c): gather images into
 * a float NCHW batch, optionally pad-crop-flip each raw image, and normalise
 * per channel exactly as torchvision's ToTensor + Normalize compute it,
 * ((float)p / 255 - mean) / std, through a 256-entry table per channel. Each
 * image's random choices come from (seed, batch_id, position in the batch),
 * so a batch is a pure function of its arguments. */
#include "data.h"
#include "util/util.h"

#include <math.h>
#include <string.h>

enum { TAG_AUGMENT = 21, MAX_PAD = 1 << 16, IMAGES_PER_THREAD = 16 };

void mislas_dataset_batch_options_init(mislas_dataset_batch_options *o)
{
    if (o == NULL)
        return;
    memset(o, 0, sizeof *o);
    o->struct_size = sizeof *o;
    o->pad = 4;
    o->flip = 1;
}

typedef struct batch_job {
    const mislas_dataset *d;
    const size_t *indices;
    const size_t *positions;    /* each image's place in the batch, or NULL: its index here */
    const mislas_dataset_batch_options *o;
    uint64_t stream;            /* per-batch seed for the augmentation draws */
    const float *table;         /* channels x 256 normalised pixel values */
    float *images;
    int32_t *labels;
} batch_job;

static void assemble(void *ctx, size_t begin, size_t end)
{
    const batch_job *b = ctx;
    const mislas_dataset *d = b->d;
    /* sides and pad are at most 2^16 (MISLAS_DATASET_MAX_SIDE, MAX_PAD), so
     * the offsets below fit in int32_t; a plane may not */
    const int32_t h = d->height, w = d->width, pad = b->o->pad;
    const size_t plane_size = (size_t)h * (size_t)w;
    for (size_t i = begin; i < end; i++) {
        const uint8_t *src = d->pixels + b->indices[i] * d->image_size;
        float *dst = b->images + i * d->image_size;
        if (b->labels != NULL)
            b->labels[i] = d->labels[b->indices[i]];
        int32_t dy = 0, dx = 0, flip = 0;
        if (b->o->augment) {
            mislasi_rng r;
            mislasi_rng_init(&r, b->stream, TAG_AUGMENT, b->positions != NULL ? b->positions[i] : i);
            /* the crop window's corner in the padded image, uniform in [0, 2 pad] */
            dy = (int32_t)mislasi_rng_below(&r, (uint64_t)(2 * pad + 1)) - pad;
            dx = (int32_t)mislasi_rng_below(&r, (uint64_t)(2 * pad + 1)) - pad;
            flip = b->o->flip ? (int32_t)(mislasi_rng_next(&r) >> 63) : 0;
        }
        for (int32_t c = 0; c < d->channels; c++) {
            const float *t = b->table + 256 * c;
            const uint8_t *plane = src + (size_t)c * plane_size;
            float *out = dst + (size_t)c * plane_size;
            for (int32_t y = 0; y < h; y++) {
                int32_t sy = y + dy;
                float *row = out + (size_t)y * (size_t)w;
                if (sy < 0 || sy >= h) {        /* a row of the zero padding */
                    for (int32_t x = 0; x < w; x++)
                        row[x] = t[0];
                    continue;
                }
                const uint8_t *in = plane + (size_t)sy * (size_t)w;
                for (int32_t x = 0; x < w; x++) {
                    int32_t sx = (flip ? w - 1 - x : x) + dx;
                    row[x] = sx >= 0 && sx < w ? t[in[sx]] : t[0];
                }
            }
        }
    }
}

/* mislas_dataset_batch's work; `parallel` shares the images out over the
 * library's threads. */
static int batch(const char *fn, const mislas_dataset *d, const size_t *indices, const size_t *positions, size_t n,
        const mislas_dataset_batch_options *opts, uint64_t batch_id, float *images, int32_t *labels, bool parallel)
{
    MISLASI_CHECK_NOT_NULL(fn, d);
    MISLASI_CHECK_NOT_NULL(fn, indices);
    MISLASI_CHECK_NOT_NULL(fn, images);
    mislas_dataset_batch_options o;
    mislas_dataset_batch_options_init(&o);
    int rc;
    if (opts != NULL && (rc = mislasi_read_options(fn, &o, sizeof o, opts)) != MISLAS_OK)
        return rc;
    if (n == 0)
        return mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT, "%s: n = 0, the batch is empty", fn);
    if (n > SIZE_MAX / sizeof(float) / d->image_size)
        return mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT, "%s: n = %zu images overflow size_t", fn, n);
    if (o.augment && d->list == NULL && (o.pad < 0 || o.pad > MAX_PAD))
        return mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT, "%s: opts->pad = %d is not in [0, %d]", fn, (int)o.pad, MAX_PAD);
    for (size_t i = 0; i < n; i++)
        if (indices[i] >= d->n)
            return mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT, "%s: indices[%zu] = %zu is outside [0, %zu)",
                    fn, i, indices[i], d->n);
    for (int32_t c = 0; c < d->channels; c++) {
        if (o.mean != NULL && !isfinite(o.mean[c]))
            return mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT, "%s: opts->mean[%d] = %g is not finite",
                    fn, (int)c, (double)o.mean[c]);
        if (o.std != NULL && !(o.std[c] > 0.0f && isfinite(o.std[c])))
            return mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT, "%s: opts->std[%d] = %g is not a finite positive number",
                    fn, (int)c, (double)o.std[c]);
    }
    float *table = mislasi_alloc((size_t)d->channels * 256 * sizeof *table);
    if (table == NULL)
        return mislasi_fail(MISLAS_ERR_OUT_OF_MEMORY, "%s: out of memory", fn);
    for (int32_t c = 0; c < d->channels; c++) {
        float mean = o.mean != NULL ? o.mean[c] : 0.0f, std = o.std != NULL ? o.std[c] : 1.0f;
        for (int p = 0; p < 256; p++)
            table[256 * c + p] = ((float)p / 255.0f - mean) / std;
    }
    uint64_t stream = mislasi_hash3(o.seed, TAG_AUGMENT, batch_id);
    rc = MISLAS_OK;
    if (d->list != NULL) {
        rc = mislasi_list_batch(d, indices, positions, n, o.augment, o.flip, stream, table, parallel, images, labels);
    } else {
        batch_job job = { d, indices, positions, &o, stream, table, images, labels };
        if (parallel)
            mislasi_parallel_for(n, IMAGES_PER_THREAD, assemble, &job);
        else
            assemble(&job, 0, n);
    }
    mislasi_free(table);
    return rc;
}

int mislas_dataset_batch(const mislas_dataset *d, const size_t *indices, size_t n,
        const mislas_dataset_batch_options *opts, uint64_t batch_id, float *images, int32_t *labels)
{
    if (n == 0) {    /* an empty batch fills nothing (docs/api.md, "Rules") */
        MISLASI_CHECK_NOT_NULL("mislas_dataset_batch", d);
        return MISLAS_OK;
    }
    return batch("mislas_dataset_batch", d, indices, NULL, n, opts, batch_id, images, labels, true);
}

int mislasi_dataset_batch_serial(const mislas_dataset *d, const size_t *indices, const size_t *positions,
        size_t n, const mislas_dataset_batch_options *opts, uint64_t batch_id, float *images, int32_t *labels)
{
    return batch("mislas_dataset_batch", d, indices, positions, n, opts, batch_id, images, labels, false);
}
