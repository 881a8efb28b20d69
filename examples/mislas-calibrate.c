/* mislas-calibrate: the post-hoc stage. Fits temperature or vector scaling
 * on a validation split held out of the training set (--holdout, the same
 * value stage 1 and stage 2 were given), optionally after tau-normalising
 * the classifier or adjusting its logits by the class prior, and writes the
 * fixed model. It reports the validation figures before and after, which is
 * also how hyper-parameters are chosen without touching the test split.
 *
 *   mislas-stage1 --preset fmnist-calibrated --out s1.ckpt
 *   mislas-stage2 --preset fmnist-calibrated --in s1.ckpt --out s2.ckpt
 *   mislas-calibrate --preset fmnist-calibrated s2.ckpt --out calibrated.ckpt
 *   mislas-eval calibrated.ckpt
 *
 * run_calibration is the stage: the library calls, in order. The measuring,
 * the fixes and the fit it calls, the command line that fills its settings
 * and main follow it; the plumbing is in cli/.
 */
#include "cli/cli.h"

#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

const char cli_program_name[] = "mislas-calibrate";

enum method { METHOD_NONE = 0, METHOD_TEMPERATURE = 1, METHOD_VECTOR = 2 };
static const cli_choice method_choices[] = {
    {"none", METHOD_NONE}, {"temperature", METHOD_TEMPERATURE}, {"vector", METHOD_VECTOR}, {NULL, 0}};

/* What the flags ask for. */
typedef struct calibrate_settings {
    const char *in, *out, *data_dir;
    const cli_dataset *dataset;     /* NULL: the one the checkpoint's model fits */
    double imb_factor;
    int imb_type, method;
    int32_t holdout, bins, threads;
    uint64_t subset_seed;
    float tau_norm, logit_adjust;
    double l2;
    int quiet;
    cli_lists lists;                /* --dataset list */
    /* the flags' own, read by parse_command_line */
    const cli_preset *preset;
    int help, version;
} calibrate_settings;

static bool same_training_set(const calibrate_settings *s, const cli_dataset *dataset, const mislas_model *model,
        const mislas_dataset *train);
static bool fix_classifier(const calibrate_settings *s, mislas_model *model, const mislas_dataset *train);
static bool fit_scaling(const calibrate_settings *s, mislas_model *model, const mislas_dataset *val,
        const cli_dataset *dataset);
static bool print_figures(const char *when, mislas_model *model, const mislas_dataset *val,
        const cli_dataset *dataset, int32_t bins);

/* The post-hoc stage on the --holdout images of the model's training set:
 * the figures before, the chosen fixes and the fitted scaling applied to
 * the model, the figures after, the model written with --out. 0, or
 * CLI_EXIT_FAILURE after saying why. Under mpirun every rank runs it: the
 * ranks start MPI once the data and the model are ready, share the
 * held-out images' logits (logits_of), fit the same scaling each, and rank
 * 0 prints and writes the model. */
static int run_calibration(calibrate_settings *s)
{
    mislas_model *model = NULL;
    mislas_dataset *train = NULL, *val = NULL;
    const cli_dataset *dataset = s->dataset;    /* NULL: the one the model fits */
    bool ok = cli_succeeded(mislas_set_num_threads(s->threads), "cannot use %d threads", (int)s->threads)
            && cli_succeeded(mislas_checkpoint_load(&model, NULL, s->in), "cannot load %s", s->in)
            && (dataset != NULL || (dataset = cli_dataset_of_model(model, s->in)) != NULL)
            /* a list set's K is known once its list is read */
            && (dataset->list || cli_dataset_fits(dataset, model, s->in));
    cli_training_request request = {.dataset = dataset, .lists = &s->lists, .data_dir = s->data_dir,
            .imb_factor = s->imb_factor, .imb_type = (mislas_imbalance)s->imb_type, .subset_seed = s->subset_seed,
            .holdout = s->holdout, .quiet = s->quiet};
    ok = ok && cli_open_training_set(&request, &train, &val) && (!dataset->list || cli_dataset_fits(dataset, model,
            s->in)) && same_training_set(s, dataset, model, train) && cli_parallel_start();
    if (ok)
        printf("%s: %zu held-out images (%d per class)\n", s->in, mislas_dataset_size(val), (int)s->holdout);
    /* under mpirun the ranks take each step together: one that fails a step stops them all, rather than
     * leave the others waiting for it (every rank holds the same logits, so they fit the same) */
    ok = ok && cli_parallel_agree(print_figures("before", model, val, dataset, s->bins))
            && cli_parallel_agree(fix_classifier(s, model, train))
            && cli_parallel_agree(fit_scaling(s, model, val, dataset))
            /* in-sample when something was fitted: the fit saw these images */
            && cli_parallel_agree(print_figures("after", model, val, dataset, s->bins));
    if (ok && s->out != NULL && cli_parallel_leader()) {
        ok = cli_succeeded(mislas_checkpoint_save(model, NULL, s->out), "cannot write %s", s->out);
        if (ok)
            printf("calibrated model: %s\n", s->out);
    }
    mislas_dataset_free(train);
    mislas_dataset_free(val);
    mislas_model_free(model);
    return ok ? 0 : CLI_EXIT_FAILURE;
}

/* ------------------------------------------------------------- the measuring */

/* The model's logits on every image of d (n x K, malloc'ed), or NULL after
 * saying why: mislas_eval_logits in batches of 256 images; under mpirun
 * each rank predicts its share of every batch and every rank receives all
 * the logits, the same bits as one process. */
static float *logits_of(mislas_model *model, const mislas_dataset *d, const cli_dataset *dataset)
{
    const size_t n = mislas_dataset_size(d), k = (size_t)mislas_model_num_classes(model);
    float *logits = malloc(n * k * sizeof *logits);
    if (logits == NULL)
        cli_report_failure("out of memory");
    if (!cli_parallel_agree(logits != NULL)) {
        free(logits);
        return NULL;
    }
    mislas_eval_options eo;
    mislas_eval_options_init(&eo);
    eo.batch_size = 256;
    eo.mean = dataset->mean;
    eo.std = dataset->std;
    eo.comm = cli_parallel_comm();
    /* a collective call: it fails on every rank together */
    if (!cli_succeeded(mislas_eval_logits(model, d, &eo, logits), "cannot run the model on the held-out images")) {
        free(logits);
        return NULL;
    }
    return logits;
}

/* One line of validation figures; false after saying why if one cannot be computed. */
static bool report(const char *when, const float *logits, const int32_t *labels, size_t n, int32_t k, int32_t bins)
{
    mislas_calib *c = NULL;
    mislas_calib_summary s;
    mislas_calib_summary_init(&s);
    double adaptive = NAN, classwise = NAN;
    bool ok = mislas_calib_new(&c, k, bins) == MISLAS_OK && mislas_calib_add_logits(c, logits, labels, n) == MISLAS_OK
            && mislas_calib_summarize(c, &s) == MISLAS_OK
            && mislas_calib_adaptive_ece(&adaptive, logits, labels, n, k, bins) == MISLAS_OK
            && mislas_calib_classwise_ece(&classwise, logits, labels, n, k, bins) == MISLAS_OK;
    mislas_calib_free(c);
    if (!ok) {
        cli_report_library_failure("cannot measure the calibration");
        return false;
    }
    printf("%-7s top-1 %6.2f%%  ECE %5.2f%%  adaptive ECE %5.2f%%  classwise ECE %5.2f%%  RMS %5.2f%%  NLL %.4f\n",
            when, 100 * s.accuracy, 100 * s.ece, 100 * adaptive, 100 * classwise, 100 * s.rms, s.nll);
    return true;
}

/* The model's figures on the held-out images, one line; false after saying why. */
static bool print_figures(const char *when, mislas_model *model, const mislas_dataset *val,
        const cli_dataset *dataset, int32_t bins)
{
    float *logits = logits_of(model, val, dataset);
    bool ok = logits != NULL && report(when, logits, mislas_dataset_labels(val), mislas_dataset_size(val),
            mislas_model_num_classes(model), bins);
    free(logits);
    return ok;
}

/* ----------------------------------------------------------------- the check */

/* The model's recorded training counts must be the ones this holdout leaves. */
static bool same_training_set(const calibrate_settings *s, const cli_dataset *dataset, const mislas_model *model,
        const mislas_dataset *train)
{
    const int32_t k = mislas_model_num_classes(model);
    int64_t *recorded = calloc((size_t)k, sizeof *recorded), *rebuilt = calloc((size_t)k, sizeof *rebuilt);
    bool same = recorded != NULL && rebuilt != NULL
            && mislas_model_class_counts(model, recorded, k) == MISLAS_OK
            && mislas_dataset_class_counts(train, rebuilt) == MISLAS_OK
            && memcmp(recorded, rebuilt, (size_t)k * sizeof *recorded) == 0;
    if (!same && dataset->list)
        cli_report_failure("%s was not trained on the images --train-list %s --holdout %d leaves (or records no "
                "training counts); pass the --train-list, --holdout, --subset-seed and --skip-bad stage 1 and "
                "stage 2 were given", s->in, s->lists.train_list, (int)s->holdout);
    else if (!same)
        cli_report_failure("%s was not trained on the images --holdout %d --imb-factor %g leave (or records no "
                "training counts); pass the --holdout, --imb-factor, --imb-type and --subset-seed stage 1 and "
                "stage 2 were given", s->in, (int)s->holdout, s->imb_factor);
    free(recorded);
    free(rebuilt);
    return same;
}

/* ------------------------------------------------------- the fixes and the fit */

/* --tau-norm and --logit-adjust, when given: the classifier fixed before the fit. */
static bool fix_classifier(const calibrate_settings *s, mislas_model *model, const mislas_dataset *train)
{
    const int32_t k = mislas_model_num_classes(model);
    int64_t *counts = calloc((size_t)k, sizeof *counts);
    bool ok = counts != NULL && mislas_dataset_class_counts(train, counts) == MISLAS_OK;
    if (ok && s->tau_norm > 0 && mislas_model_tau_normalize(model, s->tau_norm) != MISLAS_OK)
        ok = false;
    if (ok && s->logit_adjust > 0 && mislas_model_adjust_logits_by_prior(model, counts, k, s->logit_adjust) != MISLAS_OK)
        ok = false;
    free(counts);
    if (!ok)
        cli_report_library_failure("cannot fix the classifier");
    return ok;
}

/* --method: temperature or vector scaling fitted on the held-out logits and
 * applied to the model's (none: the model as it is). */
static bool fit_scaling(const calibrate_settings *s, mislas_model *model, const mislas_dataset *val,
        const cli_dataset *dataset)
{
    const int32_t k = mislas_model_num_classes(model);
    const size_t n = mislas_dataset_size(val);
    const int32_t *labels = mislas_dataset_labels(val);
    float *logits = logits_of(model, val, dataset);
    if (logits == NULL)
        return false;
    float *scale = calloc((size_t)k, sizeof *scale), *bias = calloc((size_t)k, sizeof *bias);
    bool ok = scale != NULL && bias != NULL;
    if (ok && s->method == METHOD_TEMPERATURE) {
        double t;
        ok = mislas_calib_fit_temperature(&t, logits, labels, n, k, NULL) == MISLAS_OK;
        for (int32_t j = 0; ok && j < k; j++)
            scale[j] = (float)(1.0 / t);
        if (ok)
            printf("temperature %.4f\n", t);
    } else if (ok && s->method == METHOD_VECTOR) {
        mislas_calib_fit_options fo;
        mislas_calib_fit_options_init(&fo);
        fo.l2 = s->l2;
        ok = mislas_calib_fit_vector_scaling(scale, bias, logits, labels, n, k, &fo) == MISLAS_OK;
        if (ok) {
            printf("vector scaling:");
            for (int32_t j = 0; j < k; j++)
                printf(" %.3f%+.3f", (double)scale[j], (double)bias[j]);
            printf("\n");
        }
    }
    if (ok && s->method != METHOD_NONE)
        ok = mislas_model_scale_logits(model, scale, bias) == MISLAS_OK;
    free(scale);
    free(bias);
    free(logits);
    if (!ok)
        cli_report_library_failure("cannot fit the scaling");
    return ok;
}

/* ------------------------------------------------------------ the command line */

static void apply_preset(calibrate_settings *s, const cli_preset *p)
{
    if (p->dataset != NULL)
        s->dataset = p->dataset;
    if (p->imb_factor > 0)
        s->imb_factor = p->imb_factor;
    if (p->recipe == NULL)
        return;
    s->holdout = p->recipe->holdout;
    for (const cli_choice *c = method_choices; c->name != NULL; c++)
        if (strcmp(c->name, p->recipe->calibration) == 0)
            s->method = c->value;
}

static void parse_command_line(calibrate_settings *s, int argc, char **argv)
{
    s->imb_factor = 0.01;
    s->imb_type = MISLAS_IMBALANCE_EXP;
    s->method = METHOD_TEMPERATURE;
    s->bins = 15;
    const cli_flag flags[] = {
        {.name = "out", .kind = CLI_TEXT, .target = &s->out, .value_name = "FILE",
         .help = "write the calibrated model here", .default_text = "none: only report"},
        {.name = "preset", .kind = CLI_PRESET, .target = &s->preset, .value_name = "NAME", .early = true,
         .help = "take the data set, imbalance, hold-out and method of a preset, before the other flags"},
        {.name = "holdout", .kind = CLI_INT32, .target = &s->holdout, .value_name = "N", .min = 0, .max = 1 << 30,
         .help = "images of every class kept out of training as the validation split: the N stage 1 and 2 "
                 "were given", .default_text = "none, required"},
        {.name = "method", .kind = CLI_CHOICE, .target = &s->method, .choices = method_choices,
         .help = "what to fit on the held-out images"},
        {.name = "l2", .kind = CLI_DOUBLE, .target = &s->l2, .value_name = "X", .min = 0, .max = 1e6,
         .help = "vector scaling: pull the scales toward 1/T and the biases toward 0 with this weight"},
        {.name = "tau-norm", .kind = CLI_FLOAT, .target = &s->tau_norm, .value_name = "TAU", .min = 0, .max = 10,
         .help = "first tau-normalise the classifier's rows (Kang et al.); 0: no"},
        {.name = "logit-adjust", .kind = CLI_FLOAT, .target = &s->logit_adjust, .value_name = "TAU", .min = 0,
         .max = 1000, .help = "first subtract TAU log(prior) from the logits (Menon et al.); 0: no"},
        {.name = "dataset", .kind = CLI_DATASET, .target = &s->dataset, .help = "the data set, as in stage 1",
         .default_text = "list with --train-list, else the one the checkpoint's image shape and classes fit"},
        CLI_DATA_DIR_FLAG(&s->data_dir),
        CLI_TRAIN_LIST_FLAG(&s->lists, "--dataset list: the training list, as in stage 1 (the held-out images "
                "come from it)"),
        CLI_LIST_SHAPE_FLAGS(&s->lists),
        CLI_SKIP_BAD_FLAG(&s->lists, "--dataset list: leave out the files that cannot be read as images, as in "
                "stage 1"),
        {.name = "imb-factor", .kind = CLI_DOUBLE, .target = &s->imb_factor, .value_name = "X", .min = 0,
         .max = 1, .above_min = true, .help = "the training set's imbalance, as in stage 1 (not for --dataset "
         "list)"},
        {.name = "imb-type", .kind = CLI_CHOICE, .target = &s->imb_type, .choices = cli_imbalance_choices,
         .help = "the training set's profile, as in stage 1"},
        {.name = "subset-seed", .kind = CLI_UINT64, .target = &s->subset_seed, .value_name = "N",
         .help = "the training subset's seed (which images --holdout takes), as in stage 1"},
        {.name = "bins", .kind = CLI_INT32, .target = &s->bins, .value_name = "N", .min = 1, .max = 1000,
         .help = "calibration bins of the report"},
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
        cli_print_help(stdout, "CHECKPOINT --holdout N [flags]",
                "Fits temperature or vector scaling on the images held out of the training set (or the\n"
                "training list: --dataset list) by --holdout (never the test split), reports the validation\n"
                "figures before and after, and writes the calibrated model with --out.",
                flags, num_flags, true);
        exit(cli_exit_status(0));
    }
    if (s->version)
        cli_print_version();
    if (s->preset != NULL)
        apply_preset(s, s->preset);
    cli_parse(flags, num_flags, argc, argv, CLI_PASS_LATE, positionals, 1, &num_positionals);
    if (num_positionals != 1)
        cli_usage_error("a CHECKPOINT to calibrate is required");
    s->in = positionals[0];
    if (s->holdout < 1)
        cli_usage_error("--holdout N is required: the validation images are the ones stage 1 and 2 held out");
    /* --l2 is vector scaling's; a preset's method never conflicts */
    bool method_given = cli_given(flags, num_flags, argc, argv, "method");
    bool method_from_preset = !method_given && s->preset != NULL && s->preset->recipe != NULL;
    if (s->method != METHOD_VECTOR && !method_from_preset && cli_given(flags, num_flags, argc, argv, "l2"))
        cli_usage_error("--l2 and --method %s%s conflict: --l2 is vector scaling's (--method vector)",
                cli_choice_name(method_choices, s->method), cli_default_note(method_given));
    cli_lists_settle(&s->lists, &s->dataset, &(cli_lists_context){.flags = flags, .num_flags = num_flags,
            .argc = argc, .argv = argv, .preset = s->preset != NULL ? s->preset->name : NULL, .data_dir = s->data_dir,
            .needs_paths = true});
}

int main(int argc, char **argv)
{
    cli_parallel_detect();      /* under mpirun: rank 0 prints and writes */
    calibrate_settings s = {0};
    parse_command_line(&s, argc, argv);
    s.quiet |= !cli_parallel_leader();
    cli_check_thread_environment(s.threads);
    cli_check_files(&(cli_files){.inputs = {{.what = "the checkpoint", .path = s.in}},
            .outputs = {{.what = "--out", .path = s.out}}, .dataset = s.dataset, .data_dir = s.data_dir,
            .train_split = true, .train_list = s.lists.train_list});
    return cli_exit_status(run_calibration(&s));
}
