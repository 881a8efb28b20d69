/* Batches of a list-file set (docs/data.md, "Transforms"): each image is
 * read, decoded to RGB and transformed as the reference's torchvision
 * pipelines do, then normalised into the float batch.
 *
 *   training (augment): RandomResizedCrop(height x width, scale (scale_min,
 *     1), ratio (3/4, 4/3)), RandomHorizontalFlip, ColorJitter(brightness,
 *     contrast, saturation = jitter, hue 0);
 *   evaluation: Resize(resize) (the shorter side), CenterCrop(height x width).
 *
 * The evaluation transform gives PIL's pixels exactly (image_resize.c). The
 * training transform takes torchvision's steps with draws from our own
 * generator, keyed by (seed, batch, position) as for the other sets, so its
 * distributions are torchvision's and a batch is a pure function of its
 * arguments. The uint8 results are staged and only normalised into the
 * caller's buffer once every image of the batch has decoded. */
#include "data.h"
#include "image.h"
#include "util/util.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

enum { TAG_LIST = 23, CROP_ATTEMPTS = 10, IMAGES_PER_THREAD = 1 };

void mislasi_random_resized_crop(mislasi_rng *r, int32_t ih, int32_t iw, double scale_min, int32_t box[4])
{
    const double area = (double)ih * (double)iw;
    const double log_lo = log(3.0 / 4.0), log_hi = log(4.0 / 3.0);
    for (int attempt = 0; attempt < CROP_ATTEMPTS; attempt++) {
        double target = area * (scale_min + (1.0 - scale_min) * mislasi_rng_uniform(r));
        double ratio = exp(log_lo + (log_hi - log_lo) * mislasi_rng_uniform(r));
        double w = nearbyint(sqrt(target * ratio)), h = nearbyint(sqrt(target / ratio));
        if (w > 0 && w <= iw && h > 0 && h <= ih) {
            box[2] = (int32_t)h;
            box[3] = (int32_t)w;
            box[0] = (int32_t)mislasi_rng_below(r, (uint64_t)(ih - box[2] + 1));
            box[1] = (int32_t)mislasi_rng_below(r, (uint64_t)(iw - box[3] + 1));
            return;
        }
    }
    /* no attempt fitted: the centre crop with the ratio clamped into range */
    double in_ratio = (double)iw / (double)ih;
    int32_t w = iw, h = ih;
    if (in_ratio < 3.0 / 4.0)
        h = (int32_t)nearbyint(w / (3.0 / 4.0));
    else if (in_ratio > 4.0 / 3.0)
        w = (int32_t)nearbyint(h * (4.0 / 3.0));
    box[0] = (ih - h) / 2;
    box[1] = (iw - w) / 2;
    box[2] = h;
    box[3] = w;
}

static void flip_rows(uint8_t *rgb, int32_t h, int32_t w)
{
    for (int32_t y = 0; y < h; y++) {
        uint8_t *row = rgb + (size_t)y * (size_t)w * 3;
        for (int32_t a = 0, b = w - 1; a < b; a++, b--) {
            for (int c = 0; c < 3; c++) {
                uint8_t t = row[3 * a + c];
                row[3 * a + c] = row[3 * b + c];
                row[3 * b + c] = t;
            }
        }
    }
}

void mislasi_color_jitter_draw(mislasi_rng *r, double j, float factor[3], uint32_t order[3])
{
    for (int k = 0; k < 3; k++)
        factor[k] = (float)(1.0 - j + 2.0 * j * mislasi_rng_uniform(r));
    for (uint32_t k = 0; k < 3; k++)
        order[k] = k;
    mislasi_rng_shuffle_u32(r, order, 3);
}

static void color_jitter(mislasi_rng *r, uint8_t *rgb, size_t pixels, double j)
{
    float factor[3];
    uint32_t order[3];
    mislasi_color_jitter_draw(r, j, factor, order);
    for (int k = 0; k < 3; k++) {
        if (order[k] == 0)
            mislasi_image_brightness(rgb, pixels, factor[0]);
        else if (order[k] == 1)
            mislasi_image_contrast(rgb, pixels, factor[1]);
        else
            mislasi_image_saturation(rgb, pixels, factor[2]);
    }
}

/* The evaluation transform: Resize(resize) then CenterCrop(oh x ow), as
 * torchvision sizes and places them. */
static int resize_center_crop(const mislasi_image *img, const mislas_dataset_list_options *o, uint8_t *out)
{
    const int32_t ih = img->height, iw = img->width;
    int32_t short_side = ih < iw ? ih : iw, long_side = ih < iw ? iw : ih;
    int32_t new_long = (int32_t)((double)o->resize * (double)long_side / (double)short_side);
    int32_t rh = ih <= iw ? o->resize : new_long, rw = ih <= iw ? new_long : o->resize;
    uint8_t *resized = mislasi_alloc((size_t)rh * (size_t)rw * 3);
    if (resized == NULL)
        return mislasi_fail(MISLAS_ERR_OUT_OF_MEMORY, "out of memory for a %d x %d image", (int)rh, (int)rw);
    const double box[4] = { 0, 0, iw, ih };
    int rc = mislasi_image_resize(img->rgb, ih, iw, (size_t)iw * 3, box, resized, rh, rw);
    if (rc == MISLAS_OK) {
        int32_t top = (int32_t)nearbyint((rh - o->height) / 2.0), left = (int32_t)nearbyint((rw - o->width) / 2.0);
        for (int32_t y = 0; y < o->height; y++)
            memcpy(out + (size_t)y * (size_t)o->width * 3, resized + ((size_t)(top + y) * (size_t)rw + (size_t)left) * 3,
                    (size_t)o->width * 3);
    }
    mislasi_free(resized);
    return rc;
}

/* The training transform's crop, drawn once decoding has read the size. */
typedef struct crop_draw {
    mislasi_rng *r;
    double scale_min;
    int32_t box[4];             /* the crop drawn: top, left, height, width */
} crop_draw;

static void draw_crop(void *ctx, int32_t height, int32_t width, int32_t box[4])
{
    crop_draw *c = ctx;
    mislasi_random_resized_crop(c->r, height, width, c->scale_min, box);
    memcpy(c->box, box, sizeof c->box);
}

/* One image into out (height x width x 3 bytes). */
static int make_image(const mislas_dataset *d, size_t index, int32_t augment, int32_t flip, mislasi_rng *r,
        uint8_t *out)
{
    const mislas_dataset_list_options *o = &d->list->o;
    const char *path = d->list->paths + d->list->offsets[index];
    mislasi_image img = { 0 };
    int rc;
    if (!augment) {
        rc = mislasi_image_decode(path, &img);
        if (rc == MISLAS_OK)
            rc = resize_center_crop(&img, o, out);
    } else {
        /* only the crop is decoded: about half the image on average */
        crop_draw draw = { r, o->scale_min, { 0, 0, 0, 0 } };
        int32_t at[2];
        rc = mislasi_image_decode_box(path, draw_crop, &draw, &img, at);
        if (rc == MISLAS_OK) {
            const double whole[4] = { 0, 0, draw.box[3], draw.box[2] };
            const uint8_t *corner = img.rgb + ((size_t)at[0] * (size_t)img.width + (size_t)at[1]) * 3;
            rc = mislasi_image_resize(corner, draw.box[2], draw.box[3], (size_t)img.width * 3, whole, out,
                    o->height, o->width);
        }
        if (rc == MISLAS_OK && flip && (mislasi_rng_next(r) >> 63))
            flip_rows(out, o->height, o->width);
        if (rc == MISLAS_OK && o->jitter > 0)
            color_jitter(r, out, (size_t)o->height * (size_t)o->width, o->jitter);
    }
    mislasi_image_release(&img);
    return rc;
}

typedef struct list_job {
    const mislas_dataset *d;
    const size_t *indices;
    const size_t *positions;    /* or NULL: see mislasi_list_batch */
    int32_t augment, flip;
    uint64_t stream;
    uint8_t *staged;            /* n x height x width x 3 */
    int8_t *failed;             /* n: each image's status */
    const float *table;
    float *images;
} list_job;

static void decode_range(void *ctx, size_t begin, size_t end)
{
    const list_job *j = ctx;
    const size_t size = (size_t)j->d->height * (size_t)j->d->width * 3;
    for (size_t i = begin; i < end; i++) {
        mislasi_rng r;
        mislasi_rng_init(&r, j->stream, TAG_LIST, j->positions != NULL ? j->positions[i] : i);
        j->failed[i] = (int8_t)make_image(j->d, j->indices[i], j->augment, j->flip, &r, j->staged + i * size);
    }
}

/* Interleaved bytes to normalised planes. */
static void normalise_range(void *ctx, size_t begin, size_t end)
{
    const list_job *j = ctx;
    const size_t plane = (size_t)j->d->height * (size_t)j->d->width;
    for (size_t i = begin; i < end; i++) {
        const uint8_t *src = j->staged + i * plane * 3;
        float *dst = j->images + i * plane * 3;
        for (size_t p = 0; p < plane; p++) {
            dst[p] = j->table[src[3 * p]];
            dst[plane + p] = j->table[256 + src[3 * p + 1]];
            dst[2 * plane + p] = j->table[512 + src[3 * p + 2]];
        }
    }
}

int mislasi_list_batch(const mislas_dataset *d, const size_t *indices, const size_t *positions, size_t n,
        int32_t augment,
        int32_t flip, uint64_t stream, const float *table, bool parallel, float *images, int32_t *labels)
{
    const size_t size = (size_t)d->height * (size_t)d->width * 3;
    list_job job = { d, indices, positions, augment, flip, stream, mislasi_alloc(n * size), mislasi_calloc(n, 1), table, images };
    if (job.staged == NULL || job.failed == NULL) {
        mislasi_free(job.staged);
        mislasi_free(job.failed);
        return mislasi_fail(MISLAS_ERR_OUT_OF_MEMORY, "mislas_dataset_batch: out of memory for %zu images", n);
    }
    if (parallel)
        mislasi_parallel_for(n, IMAGES_PER_THREAD, decode_range, &job);
    else
        decode_range(&job, 0, n);
    int rc = MISLAS_OK;
    for (size_t i = 0; i < n && rc == MISLAS_OK; i++) {
        if (!job.failed[i])
            continue;
        /* the worker's message stayed on its thread: make it again here */
        const char *path = d->list->paths + d->list->offsets[indices[i]];
        mislasi_rng r;
        mislasi_rng_init(&r, stream, TAG_LIST, positions != NULL ? positions[i] : i);
        if (job.failed[i] == MISLAS_ERR_OUT_OF_MEMORY)
            rc = mislasi_fail(MISLAS_ERR_OUT_OF_MEMORY, "out of memory making %s", path);
        else if ((rc = make_image(d, indices[i], augment, flip, &r, job.staged + i * size)) == MISLAS_OK)
            rc = mislasi_fail(job.failed[i], "%s changed while the batch was being made", path);
        char prefix[64];
        snprintf(prefix, sizeof prefix, "mislas_dataset_batch: image %zu of the batch", i);
        rc = mislasi_fail_within(rc, prefix);
    }
    if (rc == MISLAS_OK) {
        if (parallel)
            mislasi_parallel_for(n, 8, normalise_range, &job);
        else
            normalise_range(&job, 0, n);
        if (labels != NULL)
            for (size_t i = 0; i < n; i++)
                labels[i] = d->labels[indices[i]];
    }
    mislasi_free(job.staged);
    mislasi_free(job.failed);
    return rc;
}
