/* The files a program reads and writes, checked before any work starts:
 * no output may be one of its inputs (the checkpoints it reads, the data
 * set's files) or another output, and every output must be writable where
 * it is going.
 *
 * Files are compared by identity: device and inode, symbolic links
 * followed. A file not there yet is compared by name: the real path of its
 * folder plus its own name, so that "a.ck", "./a.ck" and "dir/../a.ck"
 * are one file. */
#ifndef MISLAS_EXAMPLES_CLI_PATHS_H
#define MISLAS_EXAMPLES_CLI_PATHS_H

#include "datasets.h"

#include <stdbool.h>

/* A path from the command line and what gave it, for messages. */
typedef struct cli_named_path {
    const char *what;       /* "--out", "the checkpoint" */
    const char *path;       /* NULL: not given */
    bool dash_is_stdout;    /* an output: "-" is the standard output (--svg, --json), else refused */
} cli_named_path;

enum { CLI_PATHS_MAX_INPUTS = 2, CLI_PATHS_MAX_OUTPUTS = 3 };

/* What one run of a program reads and writes. */
typedef struct cli_files {
    cli_named_path inputs[CLI_PATHS_MAX_INPUTS];    /* the checkpoints it reads */
    cli_named_path outputs[CLI_PATHS_MAX_OUTPUTS];  /* the files it writes */
    /* The data set whose files it reads (as mislas_dataset_open finds them
     * in data_dir), and which splits. NULL: the one the checkpoint's model
     * fits, not known yet, so the files of every data set the programs
     * know. */
    const cli_dataset *dataset;
    const char *data_dir;
    bool train_split, test_split;
    /* A list set's lists (--train-list, --test-list), read when given; the
     * images they name are not compared. */
    const char *train_list, *test_list;
} cli_files;

/* Exits with CLI_EXIT_USAGE, naming both paths, when an output is an input
 * or another output; and, naming the folder, when an output's folder does
 * not exist or cannot be written (or the output is a folder, or an
 * existing device or FIFO that cannot be opened for writing). */
void cli_check_files(const cli_files *files);

/* `path` with the symbolic links of its last component followed, even to
 * a target that does not exist yet (the file an output then creates), as a
 * new string; NULL, with errno set, on failure (ELOOP, ENOMEM). */
char *cli_path_follow(const char *path);

#endif
