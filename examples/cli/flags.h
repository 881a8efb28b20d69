/* Strict flag parsing and --help: each program lists its flags in a table
 * of cli_flag, which says where each value goes and what --help shows. */
#ifndef MISLAS_EXAMPLES_CLI_FLAGS_H
#define MISLAS_EXAMPLES_CLI_FLAGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

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
    bool early;                 /* parsed in the first pass (--preset, --help, --version) */
    char short_name;            /* a one-letter spelling, "-h" for --help; 0: none */
} cli_flag;

typedef enum cli_pass {
    CLI_PASS_EARLY,     /* only flags marked early are stored */
    CLI_PASS_LATE       /* every other flag is stored, and positionals collected */
} cli_pass;

/* Parses argv ("--name value" or "--name=value"; "-h" for a flag whose
 * short_name is 'h') in two passes, so that a preset found in the first can
 * be applied before the second stores the flags that override it. "--" ends
 * the flags: every argument after it is positional, even one starting with
 * "-". A malformed value, an unknown flag or a surplus argument prints a
 * message naming it and exits with CLI_EXIT_USAGE. positionals
 * (max_positionals entries) receives the non-flag arguments in the late
 * pass; *num_positionals their count. */
void cli_parse(const cli_flag *flags, size_t num_flags, int argc, char **argv, cli_pass pass,
        const char **positionals, size_t max_positionals, size_t *num_positionals);

/* Whether the flag `name` (without "--") was given on the command line, as
 * opposed to holding a preset's value or the default; argv as cli_parse
 * accepted it. A preset's values never conflict with each other or with a
 * flag; the programs refuse only a flag given on the command line that the
 * other settings would ignore. */
bool cli_given(const cli_flag *flags, size_t num_flags, int argc, char **argv, const char *name);
/* For a conflict's message about a setting the flags did not give: " (the
 * default)" when not given, "" when given. */
const char *cli_default_note(bool given);

/* --version: the program's name, the library's version (mislas_version())
 * and BLIS's kernel set (mislas_blas_kernels()) on stdout; exits 0. */
_Noreturn void cli_print_version(void);

/* --help: usage, description, every flag with its current value as the
 * default, what "--" does, and the presets when `with_presets`. */
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
     .help = "worker threads (of each rank under mpirun); 0: MISLAS_NUM_THREADS if it is 1 to 256, else one " \
     "per CPU"}
#define CLI_DATA_DIR_FLAG(variable) \
    {.name = "data-dir", .kind = CLI_TEXT, .target = (variable), .value_name = "DIR", \
     .help = "folder of the data set's files; --dataset list: the root the lists' paths start from", \
     .default_text = "the library's: /usr/share/datasets/fashion-mnist for fashion-mnist; none for list"}
#define CLI_QUIET_FLAG(variable) \
    {.name = "quiet", .kind = CLI_SWITCH, .target = (variable), .switch_value = 1, .help = "no progress line"}
/* The two training programs' own. */
#define CLI_EVAL_FLAG(variable) \
    {.name = "eval", .kind = CLI_SWITCH, .target = (variable), .switch_value = 1, \
     .help = "evaluate on the test split afterwards"}
#define CLI_BN_PER_RANK_FLAG(variable) \
    {.name = "bn-per-rank", .kind = CLI_SWITCH, .target = (variable), .switch_value = 1, \
     .help = "under mpirun: batch norm normalises each rank's share of a batch with that share's own " \
     "statistics (PyTorch DataParallel's way; rank 0's running statistics are kept), not the whole batch's; " \
     "the result then depends on the number of ranks (alone: no effect)"}
#define CLI_PRINT_SCHEDULE_FLAG(variable) \
    {.name = "print-schedule", .kind = CLI_SWITCH, .target = (variable), .switch_value = 1, \
     .help = "print the schedule these flags give, in words, and exit"}
#define CLI_HELP_FLAG(variable) \
    {.name = "help", .kind = CLI_SWITCH, .target = (variable), .switch_value = 1, .early = true, \
     .short_name = 'h', .help = "print this help and exit"}
#define CLI_VERSION_FLAG(variable) \
    {.name = "version", .kind = CLI_SWITCH, .target = (variable), .switch_value = 1, .early = true, \
     .help = "print the program, library and BLIS kernel versions and exit"}
/* The --holdout flag of the programs that read the training split. */
#define CLI_HOLDOUT_FLAG(variable) \
    {.name = "holdout", .kind = CLI_INT32, .target = (variable), .value_name = "N", .min = 0, .max = 1 << 30, \
     .help = "images of every class kept out of training as the validation split"}

#endif
