/* The data set object, shared by the core (dataset.c), the readers and batch
 * assembly. Not installed. */
#ifndef MISLAS_DATASET_INTERNAL_H
#define MISLAS_DATASET_INTERNAL_H

#include <mislas/dataset.h>

struct mislas_dataset {
    size_t n;
    int32_t channels, height, width, num_classes;
    size_t image_size;              /* channels * height * width */
    const uint8_t *pixels;          /* n * image_size */
    const int32_t *labels;          /* n */
    uint8_t *owned_pixels;          /* what mislas_dataset_free releases */
    int32_t *owned_labels;
};

/* Makes a data set that owns `pixels` and `labels` (both from mislasi_alloc).
 * Checks the shape and that every label is in [0, num_classes) (num_classes
 * 0: the largest label + 1). On failure it releases both arrays, reports
 * through mislasi_fail with `fn` and `source` (a file name, or NULL) in the
 * message, and leaves *out NULL. */
int mislasi_dataset_adopt(mislas_dataset **out, const char *fn, const char *source,
        uint8_t *pixels, int32_t *labels, size_t n,
        int32_t channels, int32_t height, int32_t width, int32_t num_classes);

#endif
