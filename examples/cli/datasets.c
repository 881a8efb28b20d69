/* The data sets the programs know, list-file sets settled from the flags,
 * and the training and test sets opened (datasets.h). */
#include "datasets.h"

#include "holdout.h"
#include "messages.h"
#include "parallel.h"
#include "progress.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
    [CLI_FASHION_MNIST] = {"fashion-mnist", 1, 28, 10, 6000, FASHION_MNIST_MEAN, FASHION_MNIST_STD, .list = false},
    [CLI_MNIST] = {"mnist", 1, 28, 10, 6000, MNIST_MEAN, MNIST_STD, .list = false},
    [CLI_CIFAR10] = {"cifar10", 3, 32, 10, 5000, CIFAR_MEAN, CIFAR_STD, .list = false},
    [CLI_CIFAR100] = {"cifar100", 3, 32, 100, 500, CIFAR_MEAN, CIFAR_STD, .list = false},
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

/* ======================================================== list-file sets */

static const char *const LIST_FLAGS[] = {"train-list", "test-list", "size", "resize", "normalize",
    "num-classes", "skip-bad"};
enum { NUM_LIST_FLAGS = sizeof LIST_FLAGS / sizeof LIST_FLAGS[0] };

static bool given(const cli_lists_context *c, const char *name)
{
    for (size_t i = 0; i < c->num_flags; i++)
        if (strcmp(c->flags[i].name, name) == 0)
            return cli_given(c->flags, c->num_flags, c->argc, c->argv, name);
    return false;   /* not one of this program's flags */
}

/* --normalize: a name or six numbers, into mean and std. */
static void parse_normalize(const char *text, float mean[3], float std[3])
{
    if (strcmp(text, "imagenet") == 0 || strcmp(text, "inat2018") == 0) {
        bool inat = text[1] == 'n';
        memcpy(mean, inat ? cli_inat2018_mean : cli_imagenet_mean, 3 * sizeof *mean);
        memcpy(std, inat ? cli_inat2018_std : cli_imagenet_std, 3 * sizeof *std);
        return;
    }
    const char *p = text;
    for (int i = 0; i < 6; i++) {
        char *end;
        double v = strtod(p, &end);
        bool last = i == 5;
        if (end == p || *p == ' ' || *p == '\t' || !isfinite(v) || (last ? *end != '\0' : *end != ',')
                || (i >= 3 && !(v > 0)) || fabs(v) > 1e6)
            cli_usage_error("--normalize: \"%s\" is not imagenet, inat2018 or six numbers M1,M2,M3,S1,S2,S3 "
                    "(three means and three standard deviations above 0, of pixels scaled to [0, 1])", text);
        (i < 3 ? mean : std)[i % 3] = (float)v;
        p = end + 1;
    }
}

void cli_lists_settle(cli_lists *l, const cli_dataset **dataset, const cli_lists_context *c)
{
    bool named[NUM_LIST_FLAGS];
    for (size_t i = 0; i < NUM_LIST_FLAGS; i++)
        named[i] = given(c, LIST_FLAGS[i]);
    /* a list given where the data set would come from the checkpoint: --dataset list */
    if (*dataset == NULL && (named[0] || named[1]))
        *dataset = &cli_datasets[CLI_LIST_FILES];
    if (*dataset == NULL || !(*dataset)->list) {
        for (size_t i = 0; i < NUM_LIST_FLAGS; i++)
            if (named[i]) {
                if (*dataset == NULL)
                    cli_usage_error("--%s is --dataset list's (the data set here is the one the checkpoint's "
                            "model fits)", LIST_FLAGS[i]);
                cli_usage_error("--%s and --dataset %s conflict: --%s is --dataset list's", LIST_FLAGS[i],
                        (*dataset)->name, LIST_FLAGS[i]);
            }
        return;
    }
    const cli_dataset *base = *dataset;
    char origin[96];
    if (c->preset != NULL && !given(c, "dataset"))
        snprintf(origin, sizeof origin, "--preset %s", c->preset);
    else
        snprintf(origin, sizeof origin, "--dataset list");
    static const char *const subset_flags[] = {"imb-factor", "imb-type"};
    for (size_t i = 0; i < 2; i++)
        if (given(c, subset_flags[i]))
            cli_usage_error("--%s and %s conflict: a list-file set is long-tailed as its training list is "
                    "(--%s makes the long-tailed subsets of the other data sets)", subset_flags[i], origin,
                    subset_flags[i]);
    if (c->needs_paths) {
        if (c->data_dir == NULL)
            cli_usage_error("%s needs --data-dir DIR, the folder the lists' paths start from", origin);
        if (l->train_list == NULL)
            cli_usage_error("%s needs --train-list FILE%s", origin,
                    c->offers_test_list || c->reads_test_list ? "" : " (the --holdout images come from it)");
        if (c->reads_test_list && l->test_list == NULL)
            cli_usage_error("%s needs --test-list FILE to evaluate on", origin);
    }
    if (named[1] && c->offers_test_list && !c->reads_test_list)
        cli_usage_error("--test-list without --eval: the test list is read only by --eval");
    l->dataset = *base;
    if (l->size > 0)
        l->dataset.size = l->size;
    const int32_t size = l->dataset.size;
    if (l->resize > 0 && l->resize < size)
        cli_usage_error("--resize %d and --size %d%s conflict: the centre crop of %d x %d must fit in the resized "
                "image", (int)l->resize, (int)size, l->size > 0 ? "" : " (the default)", (int)size, (int)size);
    l->dataset.resize = l->resize > 0 ? l->resize : size == 224 ? 256 : (int32_t)lround(size * 256.0 / 224.0);
    memcpy(l->mean, base->mean, sizeof l->mean);
    memcpy(l->std, base->std, sizeof l->std);
    if (l->normalize != NULL)
        parse_normalize(l->normalize, l->mean, l->std);
    l->dataset.mean = l->mean;
    l->dataset.std = l->std;
    if (l->num_classes > 0)
        l->dataset.classes = l->num_classes;
    /* the reference's class-index splits are for its K */
    if (l->dataset.classes != base->classes || l->dataset.few_from > l->dataset.classes)
        l->dataset.medium_from = l->dataset.few_from = 0;
    *dataset = &l->dataset;
}

/* ===================================================== opening the lists */

/* The file check's progress: redrawn on a terminal, otherwise a line every
 * 30 s and one at the end. */
typedef struct check_progress {
    const char *list;
    bool terminal, open;
    double start, last;
} check_progress;

static void on_check(size_t done, size_t total, void *user)
{
    check_progress *p = user;
    double now = cli_seconds();
    if (p->terminal) {
        fprintf(stderr, "\r%s: checking the files of %s: %zu of %zu (%.0f%%)\033[K", cli_program_name, p->list,
                done, total, 100.0 * (double)done / (double)total);
        p->open = true;
    } else if (done < total && now - p->last >= 30) {
        fprintf(stderr, "%s: checking the files of %s: %zu of %zu\n", cli_program_name, p->list, done, total);
        p->last = now;
    }
    if (done == total) {
        char took[32];
        cli_format_duration(took, sizeof took, now - p->start);
        fprintf(stderr, "%s%s: checked the %zu file%s of %s in %s%s\n", p->terminal ? "\r" : "", cli_program_name,
                total, total == 1 ? "" : "s", p->list, took, p->terminal ? "\033[K" : "");
        p->open = false;
    }
}

/* One list opened: class_map_of NULL for the training list. */
static bool open_list(mislas_dataset **out, const cli_lists *l, const char *data_dir, const char *which,
        const char *path, const mislas_dataset *class_map_of, bool check_files, bool quiet)
{
    mislas_dataset_list_options o;
    mislas_dataset_list_options_init(&o);
    o.num_classes = l->dataset.classes;
    o.height = o.width = l->dataset.size;
    o.resize = l->dataset.resize;
    o.check_files = check_files;
    o.skip_bad = check_files && l->skip_bad;
    check_progress progress = {.list = path, .terminal = isatty(STDERR_FILENO) == 1};
    progress.start = progress.last = cli_seconds();
    if (check_files && !quiet) {
        o.progress = on_check;
        o.progress_data = &progress;
    }
    int status = mislas_dataset_open_list(out, data_dir, path, class_map_of, &o);
    if (progress.open)
        fputc('\n', stderr);
    if (status != MISLAS_OK) {
        const char *why = mislas_last_error();
        cli_report_failure("cannot open %s %s: %s%s", which, path, why,
                strstr(why, "skip_bad") != NULL ? " (--skip-bad leaves such files out of the set)" : "");
        return false;
    }
    size_t skipped = mislas_dataset_files_skipped(*out);
    if (skipped > 0 && cli_parallel_leader())    /* every rank of a job leaves out the same */
        fprintf(stderr, "%s: --skip-bad: %zu file%s of %s left out (missing, unreadable or not an image); %zu "
                "images kept\n", cli_program_name, skipped, skipped == 1 ? "" : "s", path,
                mislas_dataset_size(*out));
    return true;
}

bool cli_list_labels(const mislas_dataset *d, int32_t *labels)
{
    const int32_t *old_to_new = mislas_dataset_class_map(d);
    if (old_to_new == NULL)
        return false;
    int32_t k = mislas_dataset_num_classes(d);
    for (int32_t old = 0; old < k; old++)
        labels[old_to_new[old]] = old;
    return true;
}

/* A list set's training list read: a class of no image is refused (the
 * reference's sets have none; a --num-classes too large makes them), and
 * the set is described unless quiet. */
static bool check_training_list(const mislas_dataset *train, const cli_lists *l, bool quiet)
{
    const int32_t k = mislas_dataset_num_classes(train);
    int64_t *counts = calloc((size_t)k, sizeof *counts);
    int32_t *labels = calloc((size_t)k, sizeof *labels);
    bool ok = counts != NULL && labels != NULL && mislas_dataset_class_counts(train, counts) == MISLAS_OK
            && cli_list_labels(train, labels);
    if (!ok) {
        cli_report_failure("out of memory");
    } else if (counts[k - 1] == 0) {    /* classes go by count: an empty one is last */
        int32_t empty = 0, label = labels[k - 1];
        while (counts[k - 1 - empty] == 0)
            empty++;
        free(counts);
        free(labels);
        cli_usage_error("--train-list %s has no image of %d of its %d classes (label %d among them): every class "
                "needs a training image; %s", l->train_list, (int)empty, (int)k, (int)label,
                l->num_classes > 0 ? "is --num-classes right?"
                : l->dataset.classes > 0 ? "the preset's K does not fit this list (--num-classes sets K)"
                : "labels must be 0 to K - 1 with none missing");
    } else if (!quiet) {
        fprintf(stderr, "%s: %s: %zu images in %d classes, %" PRId64 " to %" PRId64 " per class; classes numbered "
                "by training count (class 0 is the list's label %d, class %d its label %d)\n", cli_program_name,
                l->train_list, mislas_dataset_size(train), (int)k, counts[0], counts[k - 1], (int)labels[0],
                (int)(k - 1), (int)labels[k - 1]);
    }
    free(counts);
    free(labels);
    return ok;
}

/* The images of each class together, each class's a seeded shuffle, as
 * mislas_dataset_long_tail leaves a subset: cli_hold_out then takes the
 * last of each class's. */
static bool group_by_class(mislas_dataset **train, uint64_t seed)
{
    const int32_t k = mislas_dataset_num_classes(*train);
    int64_t *counts = calloc((size_t)k, sizeof *counts);
    mislas_dataset *grouped = NULL;
    bool ok = counts != NULL && mislas_dataset_class_counts(*train, counts) == MISLAS_OK
            && mislas_dataset_subset_by_counts(&grouped, *train, counts, seed) == MISLAS_OK;
    free(counts);
    if (!ok) {
        cli_report_library_failure("cannot group the training list by class");
        return false;
    }
    mislas_dataset_free(*train);
    *train = grouped;
    return true;
}

bool cli_open_training_set(const cli_training_request *rq, mislas_dataset **train, mislas_dataset **held_out)
{
    *train = NULL;
    if (held_out != NULL)
        *held_out = NULL;
    mislas_dataset *set = NULL;
    if (rq->dataset->list) {
        cli_lists *l = rq->lists;
        if (!open_list(&set, l, rq->data_dir, "--train-list", l->train_list, NULL, true, rq->quiet))
            return false;
        l->dataset.classes = mislas_dataset_num_classes(set);
        if (!check_training_list(set, l, rq->quiet) || (rq->holdout > 0 && !group_by_class(&set, rq->subset_seed))) {
            mislas_dataset_free(set);
            return false;
        }
    } else {
        mislas_dataset *full = NULL;
        if (!cli_succeeded(mislas_dataset_open(&full, rq->dataset->name, rq->data_dir, MISLAS_SPLIT_TRAIN),
                "cannot open the training split"))
            return false;
        bool ok = cli_succeeded(mislas_dataset_long_tail(&set, full, rq->imb_factor, rq->imb_type, rq->subset_seed),
                "cannot take the long-tailed subset");
        mislas_dataset_free(full);
        if (!ok)
            return false;
    }
    if (!cli_hold_out(&set, held_out, rq->holdout))
        return false;
    *train = set;
    return true;
}

bool cli_open_training_list_labels(cli_lists *l, const char *data_dir, mislas_dataset **train)
{
    if (!open_list(train, l, data_dir, "--train-list", l->train_list, NULL, false, true))
        return false;
    l->dataset.classes = mislas_dataset_num_classes(*train);
    return true;
}

bool cli_open_test_set(const cli_dataset *dataset, const cli_lists *l, const char *data_dir,
        const mislas_dataset *train, bool quiet, mislas_dataset **test)
{
    *test = NULL;
    if (!dataset->list)
        return cli_succeeded(mislas_dataset_open(test, dataset->name, data_dir, MISLAS_SPLIT_TEST),
                "cannot open the test split");
    return open_list(test, l, data_dir, "--test-list", l->test_list, train, true, quiet);
}
