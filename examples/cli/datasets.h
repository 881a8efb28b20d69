/* The data sets the programs know: what --dataset names, and which one a
 * checkpoint's model fits. Besides the sets the library reads by name, a
 * list-file set (--dataset list: the reference's ImageNet-LT, iNaturalist
 * 2018 and Places-LT lists of "relative/path label" lines, lists.h) whose
 * shape, class count and normalisation the flags or a preset settle. */
#ifndef MISLAS_EXAMPLES_CLI_DATASETS_H
#define MISLAS_EXAMPLES_CLI_DATASETS_H

#include <mislas/mislas.h>

#include <stdbool.h>

typedef struct cli_dataset {
    const char *name;           /* as mislas_dataset_open knows it; "list", or a large set's preset name */
    int32_t channels, size, classes;    /* classes 0: a list set's largest label + 1 */
    int64_t n_max;              /* training images per class of the balanced set (0 for a list set) */
    const float *mean, *std;    /* per channel */
    /* list-file sets only */
    bool list;
    int32_t resize;             /* the test transform's shorter side before the centre crop */
    int32_t medium_from, few_from;  /* Many / Medium / Few by class index (the reference's
                                       head / med / tail_class_idx); 0: by training count */
} cli_dataset;

/* The table, in the order --help lists it; CLI_LIST_FILES is --dataset list
 * before the flags settle it (224 x 224, ImageNet's normalisation). */
enum { CLI_FASHION_MNIST, CLI_MNIST, CLI_CIFAR10, CLI_CIFAR100, CLI_LIST_FILES, CLI_NUM_DATASETS };
extern const cli_dataset cli_datasets[CLI_NUM_DATASETS];

/* The large sets' presets: --dataset list with the reference's K,
 * normalisation and class-index splits. */
enum { CLI_IMAGENET_LT, CLI_INAT2018, CLI_PLACES_LT, CLI_NUM_LARGE_SETS };
extern const cli_dataset cli_large_sets[CLI_NUM_LARGE_SETS];

/* The reference's normalisations of the large sets. */
extern const float cli_imagenet_mean[3], cli_imagenet_std[3];
extern const float cli_inat2018_mean[3], cli_inat2018_std[3];

/* The data set of that name, or NULL. */
const cli_dataset *cli_dataset_named(const char *name);
/* The data set a checkpoint's model fits, when no --dataset says; NULL,
 * after printing why (naming `checkpoint`), when none does. */
const cli_dataset *cli_dataset_of_model(const mislas_model *model, const char *checkpoint);

/* False, after printing why, when d's images and classes are not the model's
 * (a list set's classes must be settled: its training list read). */
bool cli_dataset_fits(const cli_dataset *d, const mislas_model *model, const char *checkpoint);

#endif
