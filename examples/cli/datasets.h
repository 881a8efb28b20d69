/* The data sets the programs know: what --dataset names, and which one a
 * checkpoint's model fits. Besides the sets the library reads by name, a
 * list-file set (--dataset list: the reference's ImageNet-LT, iNaturalist
 * 2018 and Places-LT lists of "relative/path label" lines, below) whose
 * shape, class count and normalisation the flags or a preset settle. */
#ifndef MISLAS_EXAMPLES_CLI_DATASETS_H
#define MISLAS_EXAMPLES_CLI_DATASETS_H

#include "flags.h"

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

/* ------------------------------------------------------ list-file sets
 * --dataset list, and the presets imagenet-lt, inat2018 and places-lt: the
 * reference's lists of "relative/path label" lines under a root folder
 * (--data-dir), decoded batch by batch. The flags that say where the lists
 * are and what the transforms make, settled into a cli_dataset; and the
 * training and test sets of any data set opened as the programs need them
 * (the long-tailed subset of a set the library reads by name, or the lists). */

typedef struct cli_lists {
    /* the flags */
    const char *train_list, *test_list, *normalize;
    int32_t size, resize, num_classes;     /* 0: not given */
    int skip_bad;
    /* settled by cli_lists_settle: the data set a list run uses */
    cli_dataset dataset;
    float mean[3], std[3];
} cli_lists;

/* The list flags. The two lists' help differs by program. */
#define CLI_TRAIN_LIST_FLAG(lists, text) \
    {.name = "train-list", .kind = CLI_TEXT, .target = &(lists)->train_list, .value_name = "FILE", .help = (text)}
#define CLI_TEST_LIST_FLAG(lists, text) \
    {.name = "test-list", .kind = CLI_TEXT, .target = &(lists)->test_list, .value_name = "FILE", .help = (text)}
#define CLI_LIST_SHAPE_FLAGS(lists) \
    {.name = "size", .kind = CLI_INT32, .target = &(lists)->size, .value_name = "N", .min = 1, .max = 4096, \
     .help = "--dataset list: the images' height and width after the transforms", .default_text = "224"}, \
    {.name = "resize", .kind = CLI_INT32, .target = &(lists)->resize, .value_name = "N", .min = 1, .max = 32768, \
     .help = "--dataset list: the test transform's shorter side before the centre crop, at least --size", \
     .default_text = "256 for 224, else round(size * 256 / 224)"}, \
    {.name = "normalize", .kind = CLI_TEXT, .target = &(lists)->normalize, .value_name = "NAME|M1,M2,M3,S1,S2,S3", \
     .help = "--dataset list: imagenet (mean .485 .456 .406, std .229 .224 .225), inat2018 (mean .466 .471 " \
     ".380, std .195 .194 .192), or three means and three stds", \
     .default_text = "the preset's, else imagenet"}, \
    {.name = "num-classes", .kind = CLI_INT32, .target = &(lists)->num_classes, .value_name = "K", .min = 1, \
     .max = 1 << 20, .help = "--dataset list: the number of classes", \
     .default_text = "the preset's, else the training list's largest label + 1"}
#define CLI_SKIP_BAD_FLAG(lists, text) \
    {.name = "skip-bad", .kind = CLI_SWITCH, .target = &(lists)->skip_bad, .switch_value = 1, .help = (text)}

/* What cli_lists_settle is told about the run. */
typedef struct cli_lists_context {
    const cli_flag *flags;
    size_t num_flags;
    int argc;
    char **argv;
    const char *preset;         /* --preset's name, or NULL */
    const char *data_dir;
    bool needs_paths;           /* false: the run reads no data (--print-schedule) */
    bool reads_test_list;       /* --test-list is required (--eval, mislas-eval) */
    bool offers_test_list;      /* the program has --test-list (its training programs read it with --eval) */
} cli_lists_context;

/* After the flags are parsed: when *dataset is a list set (or NULL, the
 * checkpoint's, and --train-list or --test-list was given: then --dataset
 * list), settles l->dataset from it (the preset's or --dataset list's) and
 * the flags (--size, --resize, --normalize, --num-classes; a preset's
 * class-index splits kept only for its own K) and points *dataset to it.
 * A bad command line exits with CLI_EXIT_USAGE, naming the flags: a list
 * flag for another data set, --imb-factor or --imb-type for a list set
 * (its long tail is the list's), a missing --data-dir, --train-list or
 * needed --test-list, a --test-list the run would not read, a --resize
 * below --size, a malformed --normalize. */
void cli_lists_settle(cli_lists *l, const cli_dataset **dataset, const cli_lists_context *c);

/* The training set a run uses, before and after its --holdout. */
typedef struct cli_training_request {
    const cli_dataset *dataset;     /* a list set: lists->dataset */
    cli_lists *lists;               /* a list set's classes are filled in once its list is read */
    const char *data_dir;
    double imb_factor;              /* the library's sets: the long-tailed subset */
    mislas_imbalance imb_type;
    uint64_t subset_seed;           /* which images the subset keeps, and which --holdout takes */
    int32_t holdout;
    bool quiet;
} cli_training_request;

/* The training set: the long-tailed subset of a library set's training
 * split, or the training list (its files checked, the check's progress on
 * stderr unless quiet; the files --skip-bad left out counted on stderr even
 * then); less rq->holdout images of every class, which go to *held_out (may
 * be NULL; as cli_hold_out). False, after saying why, on failure (a class
 * of no image is a bad command line: exit CLI_EXIT_USAGE). */
bool cli_open_training_set(const cli_training_request *rq, mislas_dataset **train, mislas_dataset **held_out);

/* A list set's training list only (mislas-eval: its class map and counts),
 * its files not checked; fills in l->dataset's classes. False after saying
 * why. */
bool cli_open_training_list_labels(cli_lists *l, const char *data_dir, mislas_dataset **train);

/* The test split of `dataset`; for a list set the test list, its labels in
 * the class map of `train` (a set opened from the training list, or a
 * subset of one), its files checked (progress unless quiet, --skip-bad).
 * False after saying why. */
bool cli_open_test_set(const cli_dataset *dataset, const cli_lists *l, const char *data_dir,
        const mislas_dataset *train, bool quiet, mislas_dataset **test);

/* For a list set: the training list's label of class c (the inverse of its
 * class map), into labels[K]; false when d is no list set. */
bool cli_list_labels(const mislas_dataset *d, int32_t *labels);

#endif
