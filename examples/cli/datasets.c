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

/* The reference's datasets/imagenet.py and places.py, and ina2018.py. */
const float cli_imagenet_mean[3] = {0.485f, 0.456f, 0.406f}, cli_imagenet_std[3] = {0.229f, 0.224f, 0.225f};
const float cli_inat2018_mean[3] = {0.466f, 0.471f, 0.380f}, cli_inat2018_std[3] = {0.195f, 0.194f, 0.192f};

const cli_dataset cli_datasets[CLI_NUM_DATASETS] = {
    [CLI_FASHION_MNIST] = {"fashion-mnist", 1, 28, 10, 6000, FASHION_MNIST_MEAN, FASHION_MNIST_STD},
    [CLI_MNIST] = {"mnist", 1, 28, 10, 6000, MNIST_MEAN, MNIST_STD},
    [CLI_CIFAR10] = {"cifar10", 3, 32, 10, 5000, CIFAR_MEAN, CIFAR_STD},
    [CLI_CIFAR100] = {"cifar100", 3, 32, 100, 500, CIFAR_MEAN, CIFAR_STD},
    [CLI_LIST_FILES] = {"list", 3, 224, 0, 0, cli_imagenet_mean, cli_imagenet_std, .list = true, .resize = 256},
};

/* K and the head / med / tail_class_idx of the reference's config/imagenet,
 * ina2018 and places files. */
const cli_dataset cli_large_sets[CLI_NUM_LARGE_SETS] = {
    [CLI_IMAGENET_LT] = {"imagenet-lt", 3, 224, 1000, 0, cli_imagenet_mean, cli_imagenet_std, .list = true,
                         .resize = 256, .medium_from = 390, .few_from = 835},
    [CLI_INAT2018] = {"inat2018", 3, 224, 8142, 0, cli_inat2018_mean, cli_inat2018_std, .list = true,
                      .resize = 256, .medium_from = 842, .few_from = 4543},
    [CLI_PLACES_LT] = {"places-lt", 3, 224, 365, 0, cli_imagenet_mean, cli_imagenet_std, .list = true,
                       .resize = 256, .medium_from = 131, .few_from = 288},
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
        if (!d->list && d->channels == channels && d->size == height && d->size == width && d->classes == classes)
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
                "programs know; pass --dataset%s", checkpoint, (int)shape.in_channels, (int)shape.height,
                (int)shape.width, (int)shape.num_classes,
                shape.in_channels == 3 ? " (--dataset list --train-list FILE for a list-file set)" : "");
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
    cli_report_failure("%s holds a model of %dx%dx%d images and %d classes; %s has %dx%dx%d and %d%s", checkpoint,
            (int)shape.in_channels, (int)shape.height, (int)shape.width, (int)shape.num_classes, d->name,
            (int)d->channels, (int)d->size, (int)d->size, (int)d->classes,
            d->list ? " (--size sets the images' side, --num-classes K, as stage 1 was given them)" : "");
    return false;
}
