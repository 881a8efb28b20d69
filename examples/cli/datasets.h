/* The data sets the programs know: what --dataset names, and which one a
 * checkpoint's model fits. */
#ifndef MISLAS_EXAMPLES_CLI_DATASETS_H
#define MISLAS_EXAMPLES_CLI_DATASETS_H

#include <mislas/mislas.h>

#include <stdbool.h>

typedef struct cli_dataset {
    const char *name;           /* as mislas_dataset_open knows it */
    int32_t channels, size, classes;
    int64_t n_max;              /* training images per class of the balanced set */
    const float *mean, *std;    /* per channel */
} cli_dataset;

/* The table, in the order --help lists it. */
enum { CLI_FASHION_MNIST, CLI_MNIST, CLI_CIFAR10, CLI_CIFAR100, CLI_NUM_DATASETS };
extern const cli_dataset cli_datasets[CLI_NUM_DATASETS];

/* The data set of that name, or NULL. */
const cli_dataset *cli_dataset_named(const char *name);
/* The data set a checkpoint's model fits, when no --dataset says; NULL,
 * after printing why (naming `checkpoint`), when none does. */
const cli_dataset *cli_dataset_of_model(const mislas_model *model, const char *checkpoint);

/* False, after printing why, when d's images and classes are not the model's. */
bool cli_dataset_fits(const cli_dataset *d, const mislas_model *model, const char *checkpoint);

#endif
