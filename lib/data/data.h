/* The data set object, shared by the core (dataset.c), the readers and batch
 * assembly. Not installed. */
#ifndef MISLAS_DATASET_INTERNAL_H
#define MISLAS_DATASET_INTERNAL_H

#include <mislas/dataset.h>

#include <stdbool.h>

#include "util/util.h"

/* What a list-file set holds instead of pixels (listfile.c). */
typedef struct mislasi_list {
    char *paths;                    /* n NUL-terminated paths (root joined), one after another */
    size_t *offsets;                /* n: where each path starts in `paths` */
    int32_t *old_to_new;            /* num_classes: the class map */
    size_t skipped;                 /* files the opening left out */
    mislas_dataset_list_options o;          /* the transforms' settings */
} mislasi_list;

struct mislas_dataset {
    size_t n;
    int32_t channels, height, width, num_classes;
    size_t image_size;              /* channels * height * width */
    const uint8_t *pixels;          /* n * image_size; NULL for a list-file set */
    const int32_t *labels;          /* n */
    uint8_t *owned_pixels;          /* what mislas_dataset_free releases */
    int32_t *owned_labels;
    mislasi_list *list;             /* owned; NULL unless a list-file set */
};

/* Releases a list and what it holds (NULL is fine). */
void mislasi_list_free(mislasi_list *l);

/* The list-file set of d's images at indices[0..n-1] (d->list set); `fn`
 * names the public call. */
int mislasi_list_subset(mislas_dataset **out, const char *fn, const mislas_dataset *d,
        const size_t *indices, size_t n);

/* Batch assembly for a list-file set (list_batch.c): decodes and transforms
 * the images at indices into images (n x 3 x H x W floats, normalised through
 * table, 3 x 256 values) and labels; writes nothing on failure. Image i's
 * draws are those of place positions[i] in the batch (positions NULL: i).
 * With `parallel` the images are shared out over the library's threads, else
 * all made on the calling thread. Arguments already checked. */
int mislasi_list_batch(const mislas_dataset *d, const size_t *indices, const size_t *positions, size_t n,
        int32_t augment, int32_t flip, uint64_t stream, const float *table, bool parallel, float *images, int32_t *labels);

/* The training transform's draws, as torchvision makes them (list_batch.c):
 * RandomResizedCrop.get_params (scale (scale_min, 1), ratio (3/4, 4/3)) as
 * box = {top, left, height, width} in an ih x iw image; ColorJitter's
 * brightness, contrast and saturation factors, each uniform in [1 - j,
 * 1 + j], and the order the three are applied in (0, 1, 2 for those). */
void mislasi_random_resized_crop(mislasi_rng *r, int32_t ih, int32_t iw, double scale_min, int32_t box[4]);
void mislasi_color_jitter_draw(mislasi_rng *r, double j, float factor[3], uint32_t order[3]);

/* mislas_dataset_batch on the calling thread alone (train's prefetching
 * runs it beside the model, whose calls keep the worker threads), image i
 * drawn as place positions[i] of the batch (NULL: i), so that a rank can
 * make its share of a batch and its mixup partners exactly as the whole
 * batch makes them. */
int mislasi_dataset_batch_serial(const mislas_dataset *d, const size_t *indices, const size_t *positions,
        size_t n, const mislas_dataset_batch_options *opts, uint64_t batch_id, float *images, int32_t *labels);

/* mixup's draws for a batch of n images (mislas_mixup): lambda (as the
 * float the images are mixed with) and the permutation, perm[i] the
 * partner of image i. */
void mislasi_mixup_draw(size_t n, float alpha, uint64_t seed, uint64_t batch_id, uint32_t *perm, float *lambda);
/* x = lambda x + (1 - lambda) other, over size floats: one mixed image. */
void mislasi_mixup_pair(float *x, const float *other, size_t size, float lambda);

/* Folds d's content (shape, labels, and pixels, or a list-file set's paths
 * and transform settings) into the FNV-1a hash *h: part of the digest a
 * resumed training run must find unchanged. */
void mislasi_dataset_digest(uint64_t *h, const mislas_dataset *d);

/* Makes a data set that owns `pixels` and `labels` (both from mislasi_alloc).
 * Checks the shape and that every label is in [0, num_classes) (num_classes
 * 0: the largest label + 1). On failure it releases both arrays, reports
 * through mislasi_fail with `fn` and `source` (a file name, or NULL) in the
 * message, and leaves *out NULL. */
int mislasi_dataset_adopt(mislas_dataset **out, const char *fn, const char *source,
        uint8_t *pixels, int32_t *labels, size_t n,
        int32_t channels, int32_t height, int32_t width, int32_t num_classes);

#endif
