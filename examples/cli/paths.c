/* The files a program reads and writes, checked before any work (paths.h). */
#define _XOPEN_SOURCE 700     /* realpath */

#include "paths.h"

#include "messages.h"
#include "output.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* folder/name as a new string; NULL when out of memory. */
static char *join(const char *folder, const char *name)
{
    size_t a = strlen(folder), b = strlen(name);
    size_t slash = a > 0 && folder[a - 1] != '/' ? 1 : 0;
    char *s = malloc(a + slash + b + 1);
    if (s == NULL)
        return NULL;
    memcpy(s, folder, a);
    if (slash)
        s[a] = '/';
    memcpy(s + a + slash, name, b + 1);
    return s;
}

/* The folder part of a path, as a new string: "." for a bare name. */
static char *folder_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (slash == NULL)
        return strdup(".");
    size_t n = slash == path ? 1 : (size_t)(slash - path);
    char *s = malloc(n + 1);
    if (s != NULL) {
        memcpy(s, path, n);
        s[n] = '\0';
    }
    return s;
}

static const char *name_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash != NULL ? slash + 1 : path;
}

/* What a symbolic link holds, as a new string; NULL with errno set. */
static char *read_link(const char *path)
{
    for (size_t cap = 256; cap <= ((size_t)1 << 20); cap *= 2) {
        char *target = malloc(cap);
        if (target == NULL)
            return NULL;
        ssize_t n = readlink(path, target, cap);
        if (n < 0) {
            free(target);
            return NULL;
        }
        if ((size_t)n < cap) {
            target[n] = '\0';
            return target;
        }
        free(target);
    }
    errno = ENAMETOOLONG;
    return NULL;
}

char *cli_path_follow(const char *path)
{
    char *current = strdup(path);
    for (int hops = 0; current != NULL; hops++) {
        struct stat st;
        if (lstat(current, &st) != 0 || !S_ISLNK(st.st_mode))
            return current;
        char *target = hops < 40 ? read_link(current) : NULL;
        if (hops >= 40)
            errno = ELOOP;
        char *next = NULL;
        if (target != NULL && target[0] == '/') {
            next = target;
        } else if (target != NULL) {
            /* relative to the link's folder */
            char *folder = folder_of(current);
            next = folder != NULL ? join(folder, target) : NULL;
            free(folder);
            free(target);
        }
        free(current);
        current = next;
    }
    return NULL;
}

/* ------------------------------------------------------------- the outputs */

/* False, after saying why, when the output cannot be written where it is
 * going: a folder, a device or FIFO not open to writing, or a new file (or
 * one replaced: a temporary file is made beside it, beside a symbolic
 * link's target) in a folder that is missing or not writable. */
static bool check_output_place(const cli_named_path *o)
{
    if (strcmp(o->path, "-") == 0) {
        if (o->dash_is_stdout)
            return true;
        cli_report_failure("%s -: this file cannot go to the standard output (./- is a file named -)", o->what);
        return false;
    }
    if (o->path[0] == '\0') {
        cli_report_failure("%s needs a file name", o->what);
        return false;
    }
    struct stat st;
    if (stat(o->path, &st) == 0) {
        if (S_ISDIR(st.st_mode)) {
            cli_report_failure("cannot write %s %s: it is a folder", o->what, o->path);
            return false;
        }
        if (!S_ISREG(st.st_mode)) {     /* a device, a FIFO: written in place */
            if (access(o->path, W_OK) == 0)
                return true;
            cli_report_failure("cannot write %s %s: %s", o->what, o->path, strerror(errno));
            return false;
        }
    } else if (errno != ENOENT && errno != ENOTDIR) {   /* ENOTDIR: the folder, below, says which */
        cli_report_failure("cannot write %s %s: %s", o->what, o->path, strerror(errno));
        return false;
    }
    char *followed = cli_path_follow(o->path);
    char *folder = followed != NULL ? folder_of(followed) : NULL;
    bool ok = folder != NULL;
    if (!ok) {
        cli_report_failure("cannot write %s %s: %s", o->what, o->path, strerror(errno));
    } else if (stat(folder, &st) != 0) {
        if (errno == ENOENT)
            cli_report_failure("cannot write %s %s: the folder %s does not exist", o->what, o->path, folder);
        else
            cli_report_failure("cannot write %s %s: the folder %s: %s", o->what, o->path, folder,
                    strerror(errno));
        ok = false;
    } else if (!S_ISDIR(st.st_mode)) {
        cli_report_failure("cannot write %s %s: %s is not a folder", o->what, o->path, folder);
        ok = false;
    } else if (access(folder, W_OK | X_OK) != 0) {
        cli_report_failure("cannot write %s %s: cannot create files in the folder %s: %s", o->what, o->path,
                folder, strerror(errno));
        ok = false;
    }
    free(folder);
    free(followed);
    return ok;
}

/* --------------------------------------------------------- the comparisons */

/* A file as compared: by identity when it is there, else by name. */
typedef struct file_id {
    const char *what;       /* "--out", "the checkpoint", a data set's name */
    const char *path;       /* as the command line (or the data set's layout) says */
    bool dash;              /* "-": the standard output */
    bool exists;
    dev_t dev;
    ino_t ino;
    mode_t mode;
    char *name;             /* not there: the real path of its folder and its name; NULL if that folder is
                               not there either */
} file_id;

static void identify(file_id *id, const char *what, const char *path, bool dash)
{
    *id = (file_id){.what = what, .path = path, .dash = dash};
    struct stat st;
    if (dash ? fstat(STDOUT_FILENO, &st) == 0 : stat(path, &st) == 0) {
        id->exists = true;
        id->dev = st.st_dev;
        id->ino = st.st_ino;
        id->mode = st.st_mode;
        return;
    }
    if (dash)
        return;
    char *followed = cli_path_follow(path);
    char *folder = followed != NULL ? folder_of(followed) : NULL;
    char *real = folder != NULL ? realpath(folder, NULL) : NULL;
    if (real != NULL)
        id->name = join(real, name_of(followed));
    free(real);
    free(folder);
    free(followed);
}

static bool same_file(const file_id *a, const file_id *b)
{
    if (a->dash && b->dash)
        return true;
    if (a->exists && b->exists)
        return a->dev == b->dev && a->ino == b->ino;
    return !a->exists && !b->exists && a->name != NULL && b->name != NULL && strcmp(a->name, b->name) == 0;
}

/* ------------------------------------------------------- the data set's files */

/* Every file mislas_dataset_open may read, found or not: the data sets are
 * at most a few dozen names. */
enum { MAX_DATA_FILES = 64 };

typedef struct data_files {
    char *paths[MAX_DATA_FILES];
    const char *dataset[MAX_DATA_FILES];
    size_t count;
    bool out_of_memory;
} data_files;

/* Takes path (NULL: out of memory). */
static void add_data_file(data_files *f, const char *dataset, char *path)
{
    if (path == NULL || f->count == MAX_DATA_FILES) {
        free(path);
        f->out_of_memory = true;
        return;
    }
    f->dataset[f->count] = dataset;
    f->paths[f->count++] = path;
}

/* As lib/data/dataset_open.c and cifar.c look for them: IDX files as NAME.gz
 * or NAME in the folder (Debian's for fashion-mnist when none is given);
 * CIFAR's batch files in the folder or in its subfolder, or the folder
 * argument itself as the archive. */
static void find_data_files(data_files *f, const cli_dataset *d, const char *data_dir, bool test)
{
    if (d->list)
        return;     /* the lists: cli_check_files */
    const char *split = test ? "t10k" : "train";
    if (strcmp(d->name, "fashion-mnist") == 0 || strcmp(d->name, "mnist") == 0) {
        const char *dir = data_dir != NULL ? data_dir
                : d->name[0] == 'f' ? "/usr/share/datasets/fashion-mnist" : NULL;
        if (dir == NULL)
            return;
        for (int labels = 0; labels < 2; labels++) {
            char name[64];
            for (int gz = 0; gz < 2; gz++) {
                snprintf(name, sizeof name, "%s-%s%s", split, labels ? "labels-idx1-ubyte" : "images-idx3-ubyte",
                        gz ? ".gz" : "");
                add_data_file(f, d->name, join(dir, name));
            }
        }
        return;
    }
    if (data_dir == NULL)
        return;
    struct stat st;
    if (stat(data_dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        add_data_file(f, d->name, strdup(data_dir));   /* the archive */
        return;
    }
    static const char *const cifar10_train[] = {"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin",
        "data_batch_4.bin", "data_batch_5.bin", NULL};
    static const char *const cifar10_test[] = {"test_batch.bin", NULL};
    static const char *const cifar100_train[] = {"train.bin", NULL};
    static const char *const cifar100_test[] = {"test.bin", NULL};
    bool ten = strcmp(d->name, "cifar10") == 0;
    const char *const *names = ten ? (test ? cifar10_test : cifar10_train) : (test ? cifar100_test : cifar100_train);
    const char *sub = ten ? "cifar-10-batches-bin" : "cifar-100-binary";
    for (size_t i = 0; names[i] != NULL; i++) {
        add_data_file(f, d->name, join(data_dir, names[i]));
        char *inner = join(data_dir, sub);
        add_data_file(f, d->name, inner != NULL ? join(inner, names[i]) : NULL);
        free(inner);
    }
}

/* -------------------------------------------------------------- the check */

void cli_check_files(const cli_files *files)
{
    bool ok = true;
    for (size_t i = 0; i < CLI_PATHS_MAX_OUTPUTS; i++)
        if (files->outputs[i].path != NULL && !check_output_place(&files->outputs[i]))
            ok = false;
    if (!ok)
        exit(CLI_EXIT_USAGE);

    data_files data = {.count = 0};
    for (size_t i = 0; i < CLI_NUM_DATASETS; i++) {
        const cli_dataset *d = &cli_datasets[i];
        if (files->dataset != NULL && files->dataset != d)
            continue;
        if (files->train_split)
            find_data_files(&data, d, files->data_dir, false);
        if (files->test_split)
            find_data_files(&data, d, files->data_dir, true);
    }
    /* a list set (a settled copy, not the table's) reads its lists, whichever split: mislas-eval
     * reads the training list for its class map */
    if (files->train_list != NULL)
        add_data_file(&data, "--train-list", strdup(files->train_list));
    if (files->test_list != NULL)
        add_data_file(&data, "--test-list", strdup(files->test_list));
    file_id outputs[CLI_PATHS_MAX_OUTPUTS], inputs[CLI_PATHS_MAX_INPUTS], *data_ids = NULL;
    size_t num_outputs = 0, num_inputs = 0;
    for (size_t i = 0; i < CLI_PATHS_MAX_OUTPUTS; i++) {
        const cli_named_path *o = &files->outputs[i];
        if (o->path != NULL)
            identify(&outputs[num_outputs++], o->what, o->path, o->dash_is_stdout && strcmp(o->path, "-") == 0);
    }
    for (size_t i = 0; i < CLI_PATHS_MAX_INPUTS; i++)
        if (files->inputs[i].path != NULL)
            identify(&inputs[num_inputs++], files->inputs[i].what, files->inputs[i].path, false);
    if (data.count > 0 && (data_ids = calloc(data.count, sizeof *data_ids)) == NULL)
        data.out_of_memory = true;
    for (size_t i = 0; data_ids != NULL && i < data.count; i++)
        identify(&data_ids[i], data.dataset[i], data.paths[i], false);
    if (data.out_of_memory) {
        cli_report_failure("out of memory");
        ok = false;
    }

    for (size_t i = 0; ok && i < num_outputs; i++) {
        const file_id *o = &outputs[i];
        for (size_t j = 0; ok && j < num_inputs; j++) {
            if (same_file(o, &inputs[j])) {
                cli_report_failure("%s %s is %s %s: the run would overwrite what it reads", o->what, o->path,
                        inputs[j].what, inputs[j].path);
                ok = false;
            }
        }
        for (size_t j = 0; ok && data_ids != NULL && j < data.count; j++) {
            if (same_file(o, &data_ids[j])) {
                if (data_ids[j].what[0] == '-')     /* a list: named by its flag */
                    cli_report_failure("%s %s is %s %s: the run would overwrite what it reads", o->what, o->path,
                            data_ids[j].what, data_ids[j].path);
                else if (strcmp(o->path, data_ids[j].path) == 0)
                    cli_report_failure("%s %s is one of the %s files the run reads", o->what, o->path,
                            data_ids[j].what);
                else
                    cli_report_failure("%s %s is %s, one of the %s files the run reads", o->what, o->path,
                            data_ids[j].path, data_ids[j].what);
                ok = false;
            }
        }
        for (size_t j = 0; ok && j < i; j++) {
            /* one character device twice (/dev/null) takes both; the standard output one document */
            bool device = outputs[j].exists && o->exists && S_ISCHR(outputs[j].mode) && S_ISCHR(o->mode);
            if (o->dash && outputs[j].dash) {
                cli_report_failure("%s - and %s - cannot both go to the standard output", outputs[j].what, o->what);
                ok = false;
            } else if (same_file(o, &outputs[j]) && !device) {
                cli_report_failure("%s %s and %s %s are the same file: one would overwrite the other",
                        outputs[j].what, outputs[j].path, o->what, o->path);
                ok = false;
            }
        }
    }

    for (size_t i = 0; i < num_outputs; i++)
        free(outputs[i].name);
    for (size_t i = 0; i < num_inputs; i++)
        free(inputs[i].name);
    for (size_t i = 0; data_ids != NULL && i < data.count; i++)
        free(data_ids[i].name);
    free(data_ids);
    for (size_t i = 0; i < data.count; i++)
        free(data.paths[i]);
    if (!ok)
        exit(CLI_EXIT_USAGE);
}
