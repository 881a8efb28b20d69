/* mislas-eval: a checkpoint's accuracy and calibration on a test split:
 * top-1, Many / Medium / Few, ECE, MCE and NLL, and optionally the
 * reliability diagram as SVG and every figure as JSON.
 *
 *   mislas-eval stage2.ckpt --svg reliability.svg --json figures.json
 *
 * run_eval is the stage: the library calls, in order. The command line that
 * fills its settings follows it; the plumbing (the SVG and JSON included)
 * is in cli/.
 */
#include "cli/cli.h"

#include <stdlib.h>
#include <string.h>

const char cli_program_name[] = "mislas-eval";

/* What the flags ask for. */
typedef struct eval_settings {
    const char *checkpoint;
    const cli_dataset *dataset;     /* NULL: the one whose shape the checkpoint's model has */
    const char *data_dir, *svg, *json;
    double imb_factor;              /* 0: the checkpoint's training counts */
    int imb_type;
    int32_t bins, threads;
    cli_lists lists;                /* --dataset list */
    const cli_preset *preset;
    int quiet, help, version;
} eval_settings;

/* The evaluation: the checkpoint's model run on the test split, its figures
 * printed and written to --svg and --json. 0, or the exit code after saying
 * why. Under mpirun every rank runs it: each predicts its share of every
 * batch (MPI starts once the test set is open), and rank 0 prints and
 * writes. */
static int run_eval(eval_settings *s)
{
    mislas_model *model = NULL;
    if (!cli_succeeded(mislas_set_num_threads(s->threads), "cannot use %d threads", (int)s->threads)
            || !cli_succeeded(mislas_checkpoint_load(&model, NULL, s->checkpoint), "cannot load %s", s->checkpoint))
        return CLI_EXIT_FAILURE;
    const cli_dataset *dataset = s->dataset != NULL ? s->dataset : cli_dataset_of_model(model, s->checkpoint);
    /* a list set: the training list's class map and K (and its counts if the checkpoint has none) */
    mislas_dataset *train = NULL;
    int code = dataset == NULL ? CLI_EXIT_FAILURE : 0;
    if (code == 0 && dataset->list && (!cli_open_training_list_labels(&s->lists, s->data_dir, &train)
            || !cli_dataset_fits(dataset, model, s->checkpoint)))
        code = CLI_EXIT_FAILURE;
    /* the training counts that split Many / Medium / Few, and the calibration bins */
    cli_eval_request request = {.dataset = dataset, .imb_factor = s->imb_factor,
            .imb_type = (mislas_imbalance)s->imb_type, .bins = s->bins, .train = train};
    cli_evaluation e = {0};
    mislas_dataset *test = NULL;
    if (code == 0)
        code = cli_evaluation_prepare(model, &request, &e);
    if (code == 0 && !cli_open_test_set(dataset, &s->lists, s->data_dir, train, s->quiet, &test))
        code = CLI_EXIT_FAILURE;
    if (code == 0 && !cli_parallel_start())
        code = CLI_EXIT_FAILURE;
    if (code == 0) {
        mislas_eval_options options;
        mislas_eval_options_init(&options);
        cli_evaluation_options(&e, &options);
        cli_progress progress;
        options.progress = cli_progress_callback;
        options.progress_data = &progress;
        cli_progress_start(&progress, s->quiet);
        int status = mislas_eval_run(model, test, &options, e.calib, e.class_accuracy, &e.report);
        cli_progress_stop(&progress);
        mislas_dataset_free(test);
        code = cli_evaluation_outcome(status);
    }
    if (code == 0 && cli_parallel_leader()) {
        /* --svg or --json on the standard output keeps it to itself: the figures go to stderr */
        bool taken = (s->svg != NULL && cli_output_is_stdout(s->svg))
                || (s->json != NULL && cli_output_is_stdout(s->json));
        cli_print_evaluation(taken ? stderr : stdout, s->checkpoint, &e);
        code = cli_write_evaluation_files(&e, s->checkpoint, s->svg, s->json);
    }
    cli_evaluation_free(&e);
    mislas_dataset_free(train);
    mislas_model_free(model);
    return code;
}

/* ------------------------------------------------------------ the command line */

static void parse_command_line(eval_settings *s, int argc, char **argv)
{
    s->imb_type = MISLAS_IMBALANCE_EXP;
    s->bins = 15;
    const cli_flag flags[] = {
        {.name = "preset", .kind = CLI_PRESET, .target = &s->preset, .value_name = "NAME", .early = true,
         .help = "take the data set of a preset (for the large sets: K, the normalisation and the reference's "
         "Many / Medium / Few class-index ranges), before the other flags (mislas-stage1 --help lists them)"},
        {.name = "dataset", .kind = CLI_DATASET, .target = &s->dataset, .help = "the data set",
         .default_text = "list with --train-list, else the one the checkpoint's image shape and classes fit"},
        CLI_DATA_DIR_FLAG(&s->data_dir),
        CLI_TRAIN_LIST_FLAG(&s->lists, "--dataset list: the training list, read for its class map (and its counts "
                "when the checkpoint has none); its files are not opened"),
        CLI_TEST_LIST_FLAG(&s->lists, "--dataset list: the test list to evaluate on"),
        CLI_LIST_SHAPE_FLAGS(&s->lists),
        CLI_SKIP_BAD_FLAG(&s->lists, "--dataset list: leave out the test list's files that cannot be read as "
                "images (and say how many) instead of stopping"),
        {.name = "imb-factor", .kind = CLI_DOUBLE, .target = &s->imb_factor, .value_name = "X", .min = 0,
         .max = 1, .above_min = true,
         .help = "split Many / Medium / Few by this long-tailed profile's counts, not the checkpoint's (not for "
         "--dataset list)",
         .default_text = "the checkpoint's counts; 0.01 if it has none (a list set: its training list's)"},
        {.name = "imb-type", .kind = CLI_CHOICE, .target = &s->imb_type, .choices = cli_imbalance_choices,
         .help = "the profile's shape"},
        {.name = "bins", .kind = CLI_INT32, .target = &s->bins, .value_name = "N", .min = 1, .max = 1000,
         .help = "calibration bins"},
        {.name = "svg", .kind = CLI_TEXT, .target = &s->svg, .value_name = "FILE",
         .help = "write the reliability diagram here", .default_text = "none"},
        {.name = "json", .kind = CLI_TEXT, .target = &s->json, .value_name = "FILE",
         .help = "write the figures here (accuracies, ECE and MCE in percent; bins in fractions)",
         .default_text = "none"},
        CLI_THREADS_FLAG(&s->threads),
        CLI_QUIET_FLAG(&s->quiet),
        CLI_HELP_FLAG(&s->help),
        CLI_VERSION_FLAG(&s->version),
    };
    const size_t num_flags = sizeof flags / sizeof flags[0];
    const char *positionals[1];
    size_t num_positionals;
    cli_parse(flags, num_flags, argc, argv, CLI_PASS_EARLY, NULL, 0, &num_positionals);
    if (s->help) {
        cli_print_help(stdout, "CHECKPOINT [flags]",
                "Evaluates a checkpoint (from mislas-stage1, mislas-stage2 or mislas-import-reference) on a\n"
                "data set's test split, or a test list (--dataset list --data-dir ROOT --train-list FILE\n"
                "--test-list FILE): top-1, Many / Medium / Few, ECE, MCE, NLL.",
                flags, num_flags, false);
        exit(cli_exit_status(0));
    }
    if (s->version)
        cli_print_version();
    if (s->preset != NULL && s->preset->dataset != NULL)
        s->dataset = s->preset->dataset;
    cli_parse(flags, num_flags, argc, argv, CLI_PASS_LATE, positionals, 1, &num_positionals);
    if (num_positionals != 1)
        cli_usage_error("a CHECKPOINT to evaluate is required");
    s->checkpoint = positionals[0];
    if ((s->svg != NULL && strcmp(s->svg, s->checkpoint) == 0)
            || (s->json != NULL && strcmp(s->json, s->checkpoint) == 0))
        cli_usage_error("--svg and --json must not name the checkpoint");
    cli_lists_settle(&s->lists, &s->dataset, &(cli_lists_context){.flags = flags, .num_flags = num_flags,
            .argc = argc, .argv = argv, .preset = s->preset != NULL ? s->preset->name : NULL, .data_dir = s->data_dir,
            .needs_paths = true, .reads_test_list = true});
}

int main(int argc, char **argv)
{
    cli_parallel_detect();      /* under mpirun: rank 0 prints and writes */
    eval_settings s = {0};
    parse_command_line(&s, argc, argv);
    s.quiet |= !cli_parallel_leader();
    cli_check_thread_environment(s.threads);
    cli_check_files(&(cli_files){.inputs = {{.what = "the checkpoint", .path = s.checkpoint}},
            .outputs = {{.what = "--svg", .path = s.svg, .dash_is_stdout = true},
                        {.what = "--json", .path = s.json, .dash_is_stdout = true}},
            .dataset = s.dataset, .data_dir = s.data_dir, .test_split = true, .train_list = s.lists.train_list,
            .test_list = s.lists.test_list});
    return cli_exit_status(run_eval(&s));
}
