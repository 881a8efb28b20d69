/* Image data sets for long-tailed training: readers, long-tailed subsets,
 * augmentation and batch assembly (docs/method.md, "Long-tailed training
 * set" and "Augmentation and normalisation"; mixup is in mislas/mixup.h).
 *
 * A mislas_dataset holds n images of C x H x W uint8 pixels (planar, as
 * CIFAR's binary files store them) and their int32 labels in [0, K). It is
 * immutable once made: any number of threads may read it at once. */
#ifndef MISLAS_DATASET_H
#define MISLAS_DATASET_H

#include <mislas/common.h>
#include <mislas/long_tail.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mislas_dataset mislas_dataset;

/* The largest channel count, height or width a data set may have
 * (MISLAS_ERR_UNSUPPORTED beyond). */
#define MISLAS_DATASET_MAX_SIDE 65536

typedef enum mislas_split {
    MISLAS_SPLIT_TRAIN = 0,
    MISLAS_SPLIT_TEST = 1
} mislas_split;

/* ------------------------------------------------------------------ readers
 * Every reader checks magic numbers, sizes, label ranges and file lengths; a
 * short, corrupt or mismatched file is MISLAS_ERR_FORMAT (a missing or
 * unreadable one MISLAS_ERR_IO) with a message naming the file and the byte
 * offset, and *out stays NULL: a data set is never partly filled. */

/* CIFAR-10 (num_classes 10) or CIFAR-100 (100, fine labels) in the binary
 * version. `path` is the folder holding the batch files (data_batch_1..5.bin
 * and test_batch.bin; train.bin and test.bin for CIFAR-100) or its parent,
 * or the cifar-10-binary.tar.gz / cifar-100-binary.tar.gz archive itself. */
MISLAS_API int mislas_dataset_load_cifar(mislas_dataset **out, const char *path,
        int32_t num_classes, mislas_split split);

/* An IDX image file (n x rows x cols unsigned bytes) and its IDX label file
 * (n unsigned bytes), each plain or gzip-compressed (told apart by content,
 * not by name), as MNIST and Fashion-MNIST ship them. Labels must lie in
 * [0, num_classes); num_classes 0 takes the largest label + 1. */
MISLAS_API int mislas_dataset_load_idx(mislas_dataset **out, const char *images_path,
        const char *labels_path, int32_t num_classes);

/* A data set by name: "fashion-mnist", "mnist", "cifar10" or "cifar100".
 * data_dir NULL means the default folder: for fashion-mnist, Debian's
 * dataset-fashion-mnist package (/usr/share/datasets/fashion-mnist); the
 * others have no default and need data_dir. MISLAS_ERR_IO with advice when
 * the files are not there. */
MISLAS_API int mislas_dataset_open(mislas_dataset **out, const char *name,
        const char *data_dir, mislas_split split);

/* --------------------------------------------------------------- list files
 * A list-file data set (ImageNet-LT, iNaturalist 2018, Places-LT as the
 * MiSLAS reference reads them; docs/data.md): a text file of lines
 * "relative/path label" under a root folder. The set holds the paths and
 * labels, not pixels: each image is decoded (JPEG, or PNG whatever its name,
 * converted to RGB as PIL does) when a batch needs it, and transformed as the
 * reference's torchvision pipeline does. Its shape is 3 x height x width, the
 * transforms' output; mislas_dataset_image gives NULL for it. */

/* Reports how far the check of the files has come (`done` of `total`); called
 * from the opening thread, at most about a hundred times. */
typedef void (*mislas_dataset_list_progress_fn)(size_t done, size_t total, void *user_data);

typedef struct mislas_dataset_list_options {
    size_t struct_size;
    int32_t num_classes;    /* K, at most 2^20 (as a model); 0: the largest label + 1 (the
                               reference fixes 1000 for ImageNet-LT, 8142 for iNaturalist
                               2018, 365 for Places-LT) */
    int32_t height, width;  /* the transforms' output; default 224 x 224 */
    int32_t resize;         /* the test transform's shorter side before the centre crop; default 256 */
    float scale_min;        /* RandomResizedCrop's smallest area fraction; default 0.08 */
    float jitter;           /* ColorJitter's brightness, contrast and saturation; default 0.4 */
    int32_t check_files;    /* nonzero (default): read every file's header when opening */
    int32_t skip_bad;       /* nonzero: leave out files that fail the check, instead of
                               refusing the set; default 0 */
    mislas_dataset_list_progress_fn progress;   /* NULL: none */
    void *progress_data;
} mislas_dataset_list_options;
MISLAS_API void mislas_dataset_list_options_init(mislas_dataset_list_options *o);

/* Opens the list file `list_path`, its paths relative to `root`.
 *
 * With class_map_of NULL it is a training list: classes are renumbered by
 * training count as the reference does (mislas_long_tail_class_map: class 0
 * the most frequent, ties as NumPy orders them), so label l becomes
 * old_to_new[l]. With class_map_of a training set opened this way, it is an
 * evaluation list: its labels take that set's class map and class count.
 *
 * Blank lines are skipped; a line without a path and an integer label, or a
 * label outside [0, K), is MISLAS_ERR_FORMAT naming the line. With
 * check_files every image's header is read (on the library's threads): a
 * missing, unreadable, truncated or undecodable file refuses the set,
 * naming the first such file and the number of them, unless skip_bad is set,
 * which leaves them out (mislas_dataset_files_skipped says how many). */
MISLAS_API int mislas_dataset_open_list(mislas_dataset **out, const char *root, const char *list_path,
        const mislas_dataset *class_map_of, const mislas_dataset_list_options *opts);

/* For a list-file set: the files its opening left out (0 for other sets). */
MISLAS_API size_t mislas_dataset_files_skipped(const mislas_dataset *d);

/* For a list-file set (or a subset of one): its class map, old_to_new[K]
 * (the file's label l is class old_to_new[l] here), valid as long as d;
 * NULL for other sets. */
MISLAS_API const int32_t *mislas_dataset_class_map(const mislas_dataset *d);

/* For a list-file set: image `index`'s path as opened (root joined with the
 * list's entry), or NULL. */
MISLAS_API const char *mislas_dataset_path(const mislas_dataset *d, size_t index);

typedef enum mislas_ownership {
    MISLAS_COPY = 0,    /* the data set keeps its own copy */
    MISLAS_BORROW = 1   /* the caller's arrays must outlive the data set */
} mislas_ownership;

/* n images of channels x height x width bytes each (planar: all of channel 0,
 * then channel 1, ...) with n labels in [0, num_classes). */
MISLAS_API int mislas_dataset_from_memory(mislas_dataset **out, const uint8_t *pixels,
        const int32_t *labels, size_t n, int32_t channels, int32_t height, int32_t width,
        int32_t num_classes, mislas_ownership ownership);

MISLAS_API void mislas_dataset_free(mislas_dataset *d);

/* --------------------------------------------------------------- accessors */
/* Images in the data set (0 for NULL). */
MISLAS_API size_t mislas_dataset_size(const mislas_dataset *d);
/* K (-1 for NULL). */
MISLAS_API int32_t mislas_dataset_num_classes(const mislas_dataset *d);
/* Any of the outputs may be NULL. */
MISLAS_API int mislas_dataset_shape(const mislas_dataset *d, int32_t *channels,
        int32_t *height, int32_t *width);
/* The n labels (valid as long as d), e.g. for mislas_sampler_new. */
MISLAS_API const int32_t *mislas_dataset_labels(const mislas_dataset *d);
/* Image `index`'s channels x height x width bytes, or NULL if out of range. */
MISLAS_API const uint8_t *mislas_dataset_image(const mislas_dataset *d, size_t index);
/* Images per class into counts[num_classes]. */
MISLAS_API int mislas_dataset_class_counts(const mislas_dataset *d, int64_t *counts);

/* ----------------------------------------------------------------- subsets */
/* The images at indices[0..n-1], in that order (repeats allowed). */
MISLAS_API int mislas_dataset_subset(mislas_dataset **out, const mislas_dataset *d,
        const size_t *indices, size_t n);
/* Keeps counts[c] images of each class c: a shuffle of the class's images
 * seeded by `seed` (the library's own generator), the first counts[c] kept;
 * the result lists class 0's kept images, then class 1's, ... A class with
 * fewer images than asked for is MISLAS_ERR_INVALID_ARGUMENT. */
MISLAS_API int mislas_dataset_subset_by_counts(mislas_dataset **out, const mislas_dataset *d,
        const int64_t *counts, uint64_t seed);
/* The long-tailed subset (docs/method.md, "Long-tailed training set"):
 * counts from mislas_long_tail_counts with n_max = the largest class of d (a
 * class with fewer images than its count keeps all it has), then
 * mislas_dataset_subset_by_counts. On a balanced set this gives exactly
 * mislas_long_tail_counts. */
MISLAS_API int mislas_dataset_long_tail(mislas_dataset **out, const mislas_dataset *d,
        double imb_factor, mislas_imbalance type, uint64_t seed);

/* ------------------------------------------------ batches and augmentation */

/* Per-channel normalisation constants (x = (pixel / 255 - mean) / std). */
#define MISLAS_CIFAR_MEAN { 0.4914f, 0.4822f, 0.4465f }
#define MISLAS_CIFAR_STD { 0.2023f, 0.1994f, 0.2010f }
#define MISLAS_FASHION_MNIST_MEAN { 0.2860f }
#define MISLAS_FASHION_MNIST_STD { 0.3530f }
#define MISLAS_MNIST_MEAN { 0.1307f }
#define MISLAS_MNIST_STD { 0.3081f }

typedef struct mislas_dataset_batch_options {
    size_t struct_size;
    int32_t augment;        /* nonzero: random crop after zero padding, and flips; default 0 */
    int32_t pad;            /* crop padding in pixels on each side; default 4 */
    int32_t flip;           /* nonzero: horizontal flip with p = 0.5 when augmenting; default 1 */
    const float *mean;      /* C values; NULL: 0 */
    const float *std;       /* C values, > 0; NULL: 1 */
    uint64_t seed;          /* augmentation seed; default 0 */
} mislas_dataset_batch_options;
MISLAS_API void mislas_dataset_batch_options_init(mislas_dataset_batch_options *o);

/* Fills images (n x C x H x W floats, NCHW) and labels (n, may be NULL)
 * with the data set's images at indices[0..n-1]: each pixel p becomes
 * (p / 255 - mean[c]) / std[c]; with augmentation the raw image is first
 * padded with `pad` zero pixels on every side, a H x W window is cropped at
 * a uniformly random offset, and the result flipped left-right with
 * probability 1/2. A list-file set's images are decoded and transformed
 * first: with augmentation by the reference's training transform
 * (RandomResizedCrop, a flip if `flip`, ColorJitter; `pad` unused), without
 * it by its test transform (Resize + CenterCrop); a file that fails to
 * decode is MISLAS_ERR_IO or MISLAS_ERR_FORMAT naming it. The random
 * choices of image i depend only on (seed, batch_id, i), so a batch is
 * reproduced exactly from its batch_id (use the training step). Nothing is
 * written on failure; n = 0 writes nothing and succeeds. */
MISLAS_API int mislas_dataset_batch(const mislas_dataset *d, const size_t *indices, size_t n,
        const mislas_dataset_batch_options *opts, uint64_t batch_id, float *images, int32_t *labels);

#ifdef __cplusplus
}
#endif

#endif
