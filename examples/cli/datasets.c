/* The data sets the programs know (datasets.h). */
#include "datasets.h"

#include "messages.h"

#include <string.h>

static const float FASHION_MNIST_MEAN[] = MISLAS_FASHION_MNIST_MEAN;
static const float FASHION_MNIST_STD[] = MISLAS_FASHION_MNIST_STD;
static const float MNIST_MEAN[] = MISLAS_MNIST_MEAN;
static const float MNIST_STD[] = MISLAS_MNIST_STD;
static const float CIFAR_MEAN[] = MISLAS_CIFAR_MEAN;
static const float CIFAR_STD[] = MISLAS_CIFAR_STD;

const cli_dataset cli_datasets[CLI_NUM_DATASETS] = {
    [CLI_FASHION_MNIST] = {"fashion-mnist", 1, 28, 10, 6000, FASHION_MNIST_MEAN, FASHION_MNIST_STD},
    [CLI_MNIST] = {"mnist", 1, 28, 10, 6000, MNIST_MEAN, MNIST_STD},
    [CLI_CIFAR10] = {"cifar10", 3, 32, 10, 5000, CIFAR_MEAN, CIFAR_STD},
    [CLI_CIFAR100] = {"cifar100", 3, 32, 100, 500, CIFAR_MEAN, CIFAR_STD},
};

const cli_dataset *cli_dataset_named(const char *name)
{
    for (size_t i = 0; i < CLI_NUM_DATASETS; i++)
        if (strcmp(cli_datasets[i].name, name) == 0)
            return &cli_datasets[i];
    return NULL;
}

/* The first of the table for a shape two share: fashion-mnist before mnist. */
static const cli_dataset *dataset_for_shape(int32_t channels, int32_t height, int32_t width, int32_t classes)
{
    for (size_t i = 0; i < CLI_NUM_DATASETS; i++) {
        const cli_dataset *d = &cli_datasets[i];
        if (d->channels == channels && d->size == height && d->size == width && d->classes == classes)
            return d;
    }
    return NULL;
}

const cli_dataset *cli_dataset_of_model(const mislas_model *model, const char *checkpoint)
{
    mislas_model_options shape;
    mislas_model_options_init(&shape);
    if (mislas_model_get_options(model, &shape) != MISLAS_OK) {
        cli_report_library_failure("cannot read the model of %s", checkpoint);
        return NULL;
    }
    const cli_dataset *d = dataset_for_shape(shape.in_channels, shape.height, shape.width, shape.num_classes);
    if (d == NULL)
        cli_report_failure("%s holds a model of %dx%dx%d images and %d classes, which fits no data set the "
                "programs know; pass --dataset", checkpoint, (int)shape.in_channels, (int)shape.height,
                (int)shape.width, (int)shape.num_classes);
    return d;
}

bool cli_dataset_fits(const cli_dataset *d, const mislas_model *model, const char *checkpoint)
{
    mislas_model_options shape;
    mislas_model_options_init(&shape);
    if (mislas_model_get_options(model, &shape) != MISLAS_OK) {
        cli_report_library_failure("cannot read the model of %s", checkpoint);
        return false;
    }
    if (shape.in_channels == d->channels && shape.height == d->size && shape.width == d->size
            && shape.num_classes == d->classes)
        return true;
    cli_report_failure("%s holds a model of %dx%dx%d images and %d classes; %s has %dx%dx%d and %d", checkpoint,
            (int)shape.in_channels, (int)shape.height, (int)shape.width, (int)shape.num_classes, d->name,
            (int)d->channels, (int)d->size, (int)d->size, (int)d->classes);
    return false;
}
