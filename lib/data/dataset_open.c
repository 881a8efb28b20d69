/* Data sets by name: where their files are and which reader takes them. */
#include "data.h"
#include "util/util.h"

#include <stdio.h>
#include <string.h>

static const char FN[] = "mislas_dataset_open";

/* Debian's dataset-fashion-mnist installs the four .gz files here. */
static const char FASHION_MNIST_DIR[] = "/usr/share/datasets/fashion-mnist";

static const char NAMES[] = "\"fashion-mnist\", \"mnist\", \"cifar10\" or \"cifar100\"";

/* dir/file.gz if it is a file, else dir/file; what is there in *kind
 * (a folder, say, where the file should be). */
static bool find_idx(char *path, size_t cap, const char *dir, const char *file, bool *too_long,
        mislasi_path_kind *kind)
{
    char gz[128];
    snprintf(gz, sizeof gz, "%s.gz", file);
    *too_long = !mislasi_path_join(path, cap, dir, gz);
    if (*too_long)
        return false;
    *kind = mislasi_path_kind_of(path);
    if (*kind == MISLASI_PATH_FILE)
        return true;
    mislasi_path_kind gz_kind = *kind;
    mislasi_path_join(path, cap, dir, file);    /* shorter than the .gz name, so it fits */
    *kind = mislasi_path_kind_of(path);
    if (*kind == MISLASI_PATH_MISSING && gz_kind == MISLASI_PATH_DIR) {
        mislasi_path_join(path, cap, dir, gz);
        *kind = MISLASI_PATH_DIR;
    }
    return *kind == MISLASI_PATH_FILE;
}

/* The reader's message under this call's name. */
static int rename_failure(int rc, const char *name)
{
    char prefix[128];
    snprintf(prefix, sizeof prefix, "%s: %s", FN, name);
    return mislasi_fail_within(rc, prefix);
}

static int open_idx(mislas_dataset **out, const char *name, bool fashion, const char *data_dir, mislas_split split)
{
    const char *dir = data_dir != NULL ? data_dir : fashion ? FASHION_MNIST_DIR : NULL;
    if (dir == NULL)
        return mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT,
                "%s: %s has no default folder: pass data_dir, the folder with its four IDX files "
                "(train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, "
                "t10k-labels-idx1-ubyte.gz, or the same without .gz)", FN, name);
    const char *prefix = split == MISLAS_SPLIT_TRAIN ? "train" : "t10k";
    char files[2][64];
    snprintf(files[0], sizeof files[0], "%s-images-idx3-ubyte", prefix);
    snprintf(files[1], sizeof files[1], "%s-labels-idx1-ubyte", prefix);
    char paths[2][MISLASI_PATH_MAX];
    for (int i = 0; i < 2; i++) {
        bool too_long;
        mislasi_path_kind kind;
        if (find_idx(paths[i], sizeof paths[i], dir, files[i], &too_long, &kind))
            continue;
        if (too_long)
            return mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT, "%s: data_dir is too long: %s", FN, dir);
        if (kind == MISLASI_PATH_DIR)
            return mislasi_fail(MISLAS_ERR_IO, "%s: %s: %s is a folder, not an IDX file", FN, name, paths[i]);
        const char *advice = !fashion ? "pass the folder holding MNIST's four IDX files as data_dir"
                : data_dir == NULL ? "install Debian's dataset-fashion-mnist (apt install dataset-fashion-mnist) "
                                     "or pass data_dir, a folder holding Fashion-MNIST's four IDX files"
                : "pass the folder holding Fashion-MNIST's four IDX files as data_dir, or NULL for "
                  "Debian's dataset-fashion-mnist";
        return mislasi_fail(MISLAS_ERR_IO, "%s: %s: neither %s.gz nor %s is in %s: %s",
                FN, name, files[i], files[i], dir, advice);
    }
    int rc = mislas_dataset_load_idx(out, paths[0], paths[1], 10);
    return rc == MISLAS_OK ? rc : rename_failure(rc, name);
}

int mislas_dataset_open(mislas_dataset **out, const char *name, const char *data_dir, mislas_split split)
{
    MISLASI_CHECK_NOT_NULL(FN, out);
    *out = NULL;
    MISLASI_CHECK_NOT_NULL(FN, name);
    if (split != MISLAS_SPLIT_TRAIN && split != MISLAS_SPLIT_TEST)
        return mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT, "%s: split = %d is not a mislas_split", FN, (int)split);
    if (strcmp(name, "fashion-mnist") == 0 || strcmp(name, "mnist") == 0)
        return open_idx(out, name, name[0] == 'f', data_dir, split);
    if (strcmp(name, "cifar10") == 0 || strcmp(name, "cifar100") == 0) {
        if (data_dir == NULL)
            return mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT,
                    "%s: %s has no default folder: pass data_dir, the folder of the binary version, its "
                    "parent or the .tar.gz archive (https://www.cs.toronto.edu/~kriz/cifar.html)", FN, name);
        int rc = mislas_dataset_load_cifar(out, data_dir, strcmp(name, "cifar10") == 0 ? 10 : 100, split);
        return rc == MISLAS_OK ? rc : rename_failure(rc, name);
    }
    return mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT, "%s: name \"%s\" is not a known data set; the names are %s",
            FN, name, NAMES);
}
