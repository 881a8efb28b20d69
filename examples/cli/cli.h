/* What the three programs (mislas-stage1, mislas-stage2, mislas-eval) share:
 * strict flag parsing, the data set and preset tables, the progress line,
 * atomic output files and the evaluation block. Compiled into each program;
 * not part of the library, which the programs reach only through
 * <mislas/mislas.h>. */
#ifndef MISLAS_EXAMPLES_CLI_H
#define MISLAS_EXAMPLES_CLI_H

#include <mislas/mislas.h>

#include <stdbool.h>
#include <stdio.h>

/* Each program defines its own name, which prefixes every message. */
extern const char cli_program_name[];

/* ------------------------------------------------------------- failures */

/* "<program>: <what>: <mislas_last_error()>" on stderr, what printf-formatted. */
void cli_report_library_failure(const char *what_format, ...)
#if defined(__GNUC__) || defined(__clang__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;
/* "<program>: <message>" on stderr. */
void cli_report_failure(const char *format, ...)
#if defined(__GNUC__) || defined(__clang__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;

/* Exit codes: 1 for a failure while running, 2 for a bad command line, and
 * 128 + the signal's number when SIGINT or SIGTERM stopped a run (the
 * shells' convention). */
enum { CLI_EXIT_FAILURE = 1, CLI_EXIT_USAGE = 2 };

/* The program's exit status once the standard output is flushed: `status`,
 * or CLI_EXIT_FAILURE after saying so if what was printed could not all be
 * written (a full disk under a redirection, a closed pipe). */
int cli_exit_status(int status);

/* --------------------------------------------------------------- data sets */

typedef struct cli_dataset {
    const char *name;           /* as mislas_dataset_open knows it */
    int32_t channels, size, classes;
    int64_t n_max;              /* training images per class of the balanced set */
    const float *mean, *std;    /* per channel */
} cli_dataset;

/* The data set of that name, or NULL. */
const cli_dataset *cli_dataset_named(const char *name);
/* The data set a checkpoint's model fits, when no --dataset says; NULL,
 * after printing why (naming `checkpoint`), when none does. */
const cli_dataset *cli_dataset_of_model(const mislas_model *model, const char *checkpoint);

/* False, after printing why, when d's images and classes are not the model's. */
bool cli_dataset_fits(const cli_dataset *d, const mislas_model *model, const char *checkpoint);

/* The thread count set and the model of a checkpoint loaded, or NULL after
 * printing why. */
mislas_model *cli_load_model(const char *checkpoint, int32_t threads);

/* ----------------------------------------------------------------- presets */

/* Our own recipes add to a preset what the paper's rows leave to the
 * program defaults: a validation split held out of training, the stage-2
 * method and loss, and the post-hoc calibration fitted on that split. */
typedef struct cli_recipe {
    int32_t holdout;                /* images per class kept out of training */
    mislas_stage2_method method;
    int32_t label_aware_smoothing;  /* 1: LAS, 0: cross-entropy */
    int32_t shift_bn;
    const char *calibration;        /* mislas-calibrate --method */
} cli_recipe;

/* A row of the paper's Table 5 with the reference's stage-2 configuration
 * for it (METHOD.md). Milestones are not part of a preset: every multistep
 * row decays at epochs * 160/200 and epochs * 180/200, which is what the
 * library does when given none. */
typedef struct cli_preset {
    const char *name;
    const char *summary;            /* one line for --help */
    const cli_dataset *dataset;     /* NULL: the set is not one the library reads */
    mislas_arch arch;
    double imb_factor;
    struct {
        int32_t epochs, batch_size, warmup_epochs;
        double lr, weight_decay;
        mislas_schedule schedule;
        float mixup_alpha;          /* the reference's: 1 for CIFAR, 0.2 for the large sets */
    } stage1;
    struct {
        int32_t epochs, batch_size;
        double lr, weight_decay, lr_factor;
        float smooth_head, smooth_tail;
        int32_t shift_bn;
    } stage2;
    const cli_recipe *recipe;       /* NULL for the paper's rows */
} cli_preset;

/* ------------------------------------------------------------------- flags */

typedef enum cli_flag_kind {
    CLI_INT32,      /* int32_t, within [min, max] */
    CLI_UINT64,     /* uint64_t */
    CLI_DOUBLE,     /* double, within [min, max] (or (min, max] with above_min) */
    CLI_FLOAT,      /* float, likewise */
    CLI_TEXT,       /* const char *, pointing into argv */
    CLI_SWITCH,     /* takes no value: int target = switch_value */
    CLI_CHOICE,     /* int target = the named choice's value */
    CLI_LIST,       /* cli_int_list: comma-separated increasing int32 values >= 1 */
    CLI_DATASET,    /* const cli_dataset * */
    CLI_PRESET      /* const cli_preset * */
} cli_flag_kind;

typedef struct cli_choice {
    const char *name;
    int value;
} cli_choice;

enum { CLI_LIST_MAX = 16 };
typedef struct cli_int_list {
    int32_t values[CLI_LIST_MAX];
    int32_t count;
} cli_int_list;

typedef struct cli_flag {
    const char *name;           /* without the leading "--" */
    cli_flag_kind kind;
    void *target;
    const char *value_name;     /* in --help: "N", "X", "FILE"; unused by switches */
    const char *help;
    double min, max;            /* numeric kinds */
    bool above_min;             /* the value must exceed min, not merely reach it */
    const cli_choice *choices;  /* CLI_CHOICE: ends with a NULL name */
    int switch_value;           /* CLI_SWITCH */
    const char *default_text;   /* --help's default when the target's value would mislead */
    bool early;                 /* parsed in the first pass (--preset, --help) */
} cli_flag;

typedef enum cli_pass {
    CLI_PASS_EARLY,     /* only flags marked early are stored */
    CLI_PASS_LATE       /* every other flag is stored, and positionals collected */
} cli_pass;

/* Parses argv ("--name value" or "--name=value") in two passes, so that a
 * preset found in the first can be applied before the second stores the
 * flags that override it. A malformed value, an unknown flag or a surplus
 * argument prints a message naming it and exits with CLI_EXIT_USAGE.
 * positionals (max_positionals entries) receives the non-flag arguments in
 * the late pass; *num_positionals their count. */
void cli_parse(const cli_flag *flags, size_t num_flags, int argc, char **argv, cli_pass pass,
        const char **positionals, size_t max_positionals, size_t *num_positionals);

/* A command-line error detected after parsing: message, exit CLI_EXIT_USAGE. */
_Noreturn void cli_usage_error(const char *format, ...)
#if defined(__GNUC__) || defined(__clang__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;

/* --help: usage, description, every flag with its current value as the
 * default, and the presets when `with_presets`. */
void cli_print_help(FILE *out, const char *usage, const char *description,
        const cli_flag *flags, size_t num_flags, bool with_presets);

/* The choice tables the programs' flags use. */
extern const cli_choice cli_arch_choices[];
extern const cli_choice cli_imbalance_choices[];
extern const cli_choice cli_schedule_choices[];
extern const cli_choice cli_stage2_method_choices[];
extern const cli_choice cli_las_shape_choices[];
extern const cli_choice cli_stage2_loss_choices[];   /* las: 1, ce: 0 */
extern const cli_choice cli_on_off_choices[];

/* The name of a choice's value, or NULL. */
const char *cli_choice_name(const cli_choice *choices, int value);

/* Flags every program takes, with the defaults they describe. */
#define CLI_THREADS_FLAG(variable) \
    {.name = "threads", .kind = CLI_INT32, .target = (variable), .value_name = "N", .min = 0, .max = 256, \
     .help = "worker threads; 0: one per CPU, or MISLAS_NUM_THREADS"}
#define CLI_DATA_DIR_FLAG(variable) \
    {.name = "data-dir", .kind = CLI_TEXT, .target = (variable), .value_name = "DIR", \
     .help = "folder of the data set's files", \
     .default_text = "the library's: /usr/share/datasets/fashion-mnist for fashion-mnist"}
#define CLI_QUIET_FLAG(variable) \
    {.name = "quiet", .kind = CLI_SWITCH, .target = (variable), .switch_value = 1, .help = "no progress line"}
/* The two training programs' own. */
#define CLI_EVAL_FLAG(variable) \
    {.name = "eval", .kind = CLI_SWITCH, .target = (variable), .switch_value = 1, \
     .help = "evaluate on the test split afterwards"}
#define CLI_PRINT_SCHEDULE_FLAG(variable) \
    {.name = "print-schedule", .kind = CLI_SWITCH, .target = (variable), .switch_value = 1, \
     .help = "print the schedule these flags give, in words, and exit"}
#define CLI_HELP_FLAG(variable) \
    {.name = "help", .kind = CLI_SWITCH, .target = (variable), .switch_value = 1, .early = true, \
     .help = "print this help and exit"}

/* ---------------------------------------------------------------- progress */

/* The progress line on stderr, fed by the library's progress callback. On a
 * terminal it is redrawn in place (at most ten times a second) and ends
 * with a newline at each epoch's end; otherwise a plain line is printed at
 * each epoch's end and at most every 30 s between. SIGINT or SIGTERM while
 * a reporter is active cancels the running call at its next step. */
typedef struct cli_progress {
    bool quiet;             /* nothing printed; cancelling and the figures still work */
    bool terminal;
    bool line_open;         /* a redrawn line is on the terminal without its newline */
    double start, last_print;
    int32_t first_epoch;    /* the first epoch this process ran (a resume starts later) */
    int32_t epochs;         /* in the run */
    bool started;
    int32_t epochs_done;    /* epochs this process finished */
    double last_loss, last_accuracy;    /* of the last finished epoch */
} cli_progress;

void cli_progress_start(cli_progress *p, bool quiet);
/* For mislas_*_options.progress, with the cli_progress as progress_data. */
int cli_progress_callback(const mislas_progress *progress, void *user);
/* Ends a line left open and restores the default signal handling. */
void cli_progress_stop(cli_progress *p);
/* Seconds on a monotonic clock. */
double cli_seconds(void);
/* "5m12s", "1h02m" or "12s" into buf. */
void cli_format_duration(char *buf, size_t size, double seconds);

/* ---------------------------------------------------------- atomic files */

/* An output file written to a temporary file beside it and renamed over it
 * only once all of it is written and on disk, so that a failure (disk full,
 * a bad folder, an interrupt) leaves any previous file as it was. Every
 * write is checked; the first failure is remembered and reported by commit. */
typedef struct cli_output {
    const char *path;
    char *temp_path;
    int fd;                 /* the temporary file */
    FILE *file;             /* the content, gathered in memory */
    char *content;
    size_t size;
    int error;              /* errno of the first failed write, or 0 */
} cli_output;

/* Creates the temporary file; on failure prints why and returns false. */
bool cli_output_open(cli_output *o, const char *path);
void cli_output_printf(cli_output *o, const char *format, ...)
#if defined(__GNUC__) || defined(__clang__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* Writes s with &, <, > and " escaped as XML entities. */
void cli_output_xml_text(cli_output *o, const char *s);
/* Writes s as a JSON string, quotes included. */
void cli_output_json_string(cli_output *o, const char *s);
/* Writes the content to the temporary file, syncs, closes and renames; on
 * any failure removes the temporary file, prints why and returns false. */
bool cli_output_commit(cli_output *o);
/* Removes the temporary file (a failure elsewhere means it is not wanted). */
void cli_output_discard(cli_output *o);

/* -------------------------------------------------------------- evaluation */

/* The test split's figures and the training counts that split them. */
typedef struct cli_evaluation {
    const cli_dataset *dataset;
    int32_t num_classes;
    mislas_eval_report report;
    mislas_calib *calib;
    double *class_accuracy;     /* num_classes values, NaN for a class with no test image */
    int64_t *train_counts;      /* num_classes values */
    char counts_source[160];    /* where train_counts came from, for the reader */
} cli_evaluation;

/* How Many / Medium / Few are decided: the model's recorded training
 * counts, unless it has none or `imb_factor` > 0 asks for the counts of
 * that long-tailed profile of the data set instead. */
typedef struct cli_eval_request {
    const cli_dataset *dataset;
    const char *data_dir;
    double imb_factor;          /* <= 0: the model's counts when it has them, else 0.01 */
    mislas_imbalance imb_type;
    int32_t bins;
    bool quiet;
} cli_eval_request;

/* Opens the test split and evaluates the model on it: 0, or the exit code
 * after printing why (CLI_EXIT_FAILURE, or 128 + the signal's number
 * when a signal stopped it). *e needs cli_evaluation_free either way. */
int cli_evaluate(mislas_model *model, const cli_eval_request *request, cli_evaluation *e);
void cli_evaluation_free(cli_evaluation *e);
/* The block of figures every program prints after an evaluation. */
void cli_print_evaluation(FILE *out, const char *checkpoint, const cli_evaluation *e);
/* --eval of the training programs: the model's own training counts, the
 * paper's 15 bins, the block on stdout. 0 or an exit code, as cli_evaluate. */
int cli_evaluate_and_print(mislas_model *model, const cli_dataset *dataset, const char *data_dir, bool quiet,
        const char *checkpoint);

/* ---------------------------------------------------------- training data */

/* The training split's long-tailed subset as METHOD.md builds it, less
 * `holdout` images of every class, a seeded random draw kept for validation
 * (choosing hyper-parameters, fitting a temperature: never the test split).
 * *held_out (may be NULL) receives those images, or NULL when holdout is 0.
 * Which images are held out depends on subset_seed too, which the class
 * counts a model records cannot show: every program must be given the same.
 * On failure prints why and returns NULL. */
mislas_dataset *cli_open_long_tailed_train(const cli_dataset *dataset, const char *data_dir,
        double imb_factor, mislas_imbalance imb_type, uint64_t subset_seed, int32_t holdout,
        mislas_dataset **held_out);
/* The --holdout flag of the programs that read the training split. */
#define CLI_HOLDOUT_FLAG(variable) \
    {.name = "holdout", .kind = CLI_INT32, .target = (variable), .value_name = "N", .min = 0, .max = 1 << 30, \
     .help = "images of every class kept out of training as the validation split"}

/* ---------------------------------------------------------------- training */

/* Before a training call: says on stderr (unless quiet) whether the run
 * continues `checkpoint` (--resume) or replaces it. False, after printing
 * why, when an existing checkpoint to resume cannot be read. */
bool cli_announce_checkpoint(const char *checkpoint, bool resume, bool quiet);
/* After a training call reported to p: 0, or the exit code after printing why. */
int cli_training_outcome(int status, const char *checkpoint, const cli_progress *p);
/* The one-line summary of a finished training call on stdout. */
void cli_print_training_summary(int stage, const cli_progress *p, int32_t epochs, double seconds,
        const char *checkpoint);

#endif
