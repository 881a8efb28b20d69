/* mislas-stage2: MiSLAS's second stage, the classifier learned on the frozen
 * backbone of a stage-1 checkpoint with class-balanced sampling: cRT, LWS or
 * MiSLAS, with label-aware smoothing or cross-entropy, shifted batch norm on
 * or off (every row of the paper's ablation).
 *
 *   mislas-stage2 --preset fmnist --in stage1.ckpt --out stage2.ckpt --eval
 *
 * run_stage2 is the stage: the library calls, in order. Its two checks, the
 * command line that fills its settings and main follow it; the plumbing is
 * in cli/.
 */
#include "cli/cli.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char cli_program_name[] = "mislas-stage2";

/* What the flags ask for. */
typedef struct stage2_settings {
    mislas_train_stage2_options train;
    const cli_dataset *dataset;     /* NULL: the one whose shape the checkpoint's model has */
    const char *data_dir, *in, *out;
    double imb_factor;
    int imb_type;
    uint64_t subset_seed;
    int32_t holdout, threads;
    int resume, eval, quiet, bn_per_rank;
    cli_lists lists;                /* --dataset list */
    /* the flags' own, read by parse_command_line */
    const cli_preset *preset;
    int method, loss, las_shape, shift_bn;
    int32_t mislas_shift_bn;        /* --shift-bn's default for MiSLAS (a preset's) */
    uint64_t epoch_steps;
    int no_augment, print_schedule, help, version;
} stage2_settings;

static bool check_stage1_checkpoint(const char *path);
static bool same_training_set(const stage2_settings *s, const cli_dataset *dataset, const mislas_model *model,
        const mislas_dataset *train);

/* Stage 2: the classifier of a stage-1 checkpoint trained again on the same
 * long-tailed training set (or training list); with --eval, its figures on
 * the test split. 0, or the exit code after saying why. Under mpirun every
 * rank runs it: the ranks start MPI once the data and the model are ready,
 * and train one model together. */
static int run_stage2(stage2_settings *s)
{
    mislas_model *model = NULL;
    mislas_dataset *train = NULL;
    const cli_dataset *dataset = s->dataset;    /* NULL: the one the model fits */
    bool ok = cli_succeeded(mislas_set_num_threads(s->threads), "cannot use %d threads", (int)s->threads)
            && cli_succeeded(mislas_checkpoint_load(&model, NULL, s->in), "cannot load %s", s->in)
            && check_stage1_checkpoint(s->in)
            && (dataset != NULL || (dataset = cli_dataset_of_model(model, s->in)) != NULL);
    cli_training_request request = {.dataset = dataset, .lists = &s->lists, .data_dir = s->data_dir,
            .imb_factor = s->imb_factor, .imb_type = (mislas_imbalance)s->imb_type, .subset_seed = s->subset_seed,
            .holdout = s->holdout, .quiet = s->quiet};
    /* a list set's K is known once its list is read */
    ok = ok && cli_open_training_set(&request, &train, NULL) && cli_dataset_fits(dataset, model, s->in)
            && same_training_set(s, dataset, model, train)
            && cli_announce_checkpoint(s->out, s->resume, s->quiet)
            && cli_parallel_start();
    int code = CLI_EXIT_FAILURE;
    if (ok) {
        mislas_train_stage2_options options = s->train;
        options.mean = dataset->mean;
        options.std = dataset->std;
        options.checkpoint_path = s->out;   /* written after every epoch (by rank 0) */
        options.resume = s->resume;
        options.comm = cli_parallel_comm();
        options.bn_per_rank = s->bn_per_rank;
        cli_training run;
        cli_training_start(&run, 2, s->out, options.epochs, s->quiet);
        options.progress = cli_progress_callback;
        options.progress_data = &run.progress;
        code = cli_training_finish(&run, mislas_train_stage2(model, train, &options));
    }
    if (code == 0 && s->eval)
        code = cli_evaluate_and_print(model, dataset, &s->lists, s->data_dir, train, s->quiet, s->out);
    mislas_dataset_free(train);
    mislas_model_free(model);
    return code;
}

/* ----------------------------------------------------------------- the checks */

/* Warns when the checkpoint is not a finished stage-1 run; false, after
 * saying why, when its training record cannot be read. */
static bool check_stage1_checkpoint(const char *path)
{
    int32_t stage, done, epochs;
    if (!cli_succeeded(mislas_checkpoint_training(&stage, &done, &epochs, path), "cannot load %s", path))
        return false;
    if (!cli_parallel_leader())
        return true;    /* rank 0 warns for every rank */
    if (stage == 2)
        cli_report_failure("warning: %s is a stage-2 checkpoint; its classifier is trained again", path);
    else if (stage == 1 && done < epochs)
        cli_report_failure("warning: %s holds an unfinished stage-1 run (%d of %d epochs)", path, (int)done,
                (int)epochs);
    return true;
}

/* Stage 2 must see stage 1's training set: the checkpoint recorded its
 * class counts, so a different --imb-factor or --imb-type shows. */
static bool same_training_set(const stage2_settings *s, const cli_dataset *dataset, const mislas_model *model,
        const mislas_dataset *train)
{
    int32_t k = mislas_dataset_num_classes(train);
    int64_t *recorded = calloc((size_t)k, sizeof *recorded), *rebuilt = calloc((size_t)k, sizeof *rebuilt);
    bool same = false;
    if (recorded == NULL || rebuilt == NULL) {
        cli_report_failure("out of memory");
    } else if (mislas_model_num_classes(model) != k) {
        cli_report_failure("%s has %d classes but %s has %d", s->in, (int)mislas_model_num_classes(model),
                dataset->name, (int)k);
    } else if (mislas_dataset_class_counts(train, rebuilt) != MISLAS_OK) {
        cli_report_library_failure("cannot count the training set's classes");
    } else {
        int status = mislas_model_class_counts(model, recorded, k);
        /* MISLAS_ERR_STATE: no counts recorded (an imported checkpoint) */
        same = status == MISLAS_ERR_STATE
                || (status == MISLAS_OK && memcmp(recorded, rebuilt, (size_t)k * sizeof *recorded) == 0);
        if (status != MISLAS_OK && status != MISLAS_ERR_STATE)
            cli_report_library_failure("cannot read the training counts of %s", s->in);
        else if (!same)
            cli_report_count_mismatch(s->in, recorded, rebuilt, k, dataset->list ? s->lists.train_list : NULL,
                    s->imb_factor, (mislas_imbalance)s->imb_type, s->holdout);
    }
    free(recorded);
    free(rebuilt);
    return same;
}

/* ------------------------------------------------------------ the command line */

/* Flags whose default depends on --method. */
enum { BY_METHOD = -1 };

static void apply_preset(stage2_settings *s, const cli_preset *p)
{
    if (p->dataset != NULL)
        s->dataset = p->dataset;
    if (p->imb_factor > 0)
        s->imb_factor = p->imb_factor;
    s->train.epochs = p->stage2.epochs;
    s->train.batch_size = p->stage2.batch_size;
    s->train.lr = p->stage2.lr;
    s->train.weight_decay = p->stage2.weight_decay;
    s->train.lr_factor = p->stage2.lr_factor;
    s->train.smooth_head = p->stage2.smooth_head;
    s->train.smooth_tail = p->stage2.smooth_tail;
    s->mislas_shift_bn = p->stage2.shift_bn;
    if (p->recipe != NULL) {
        s->holdout = p->recipe->holdout;
        s->method = (int)p->recipe->method;
        s->loss = p->recipe->label_aware_smoothing;
        s->shift_bn = p->recipe->shift_bn;
    }
}

/* A flag given on the command line that the other settings would ignore
 * is refused; a preset's values never conflict (s->train is settled). */
static void refuse_conflicts(const stage2_settings *s, const cli_flag *flags, size_t num_flags, int argc,
        char **argv)
{
    const char *method = cli_choice_name(cli_stage2_method_choices, s->method);
    /* the default is mislas: another method came from the flag or a preset */
    bool method_given = cli_given(flags, num_flags, argc, argv, "method");
    if (s->method != MISLAS_STAGE2_MISLAS && method_given && cli_given(flags, num_flags, argc, argv, "lr-factor"))
        cli_usage_error("--lr-factor and --method %s conflict: the lr factor is --method mislas's (the "
                "classifier's lr as a fraction of --lr)", method);
    static const char *const las_flags[] = {"smooth-head", "smooth-tail", "las-shape", "las-power"};
    if (!s->train.label_aware_smoothing) {
        /* cross-entropy: from --loss ce, from --method's default loss, or from a preset */
        char why[96] = "";
        if (cli_given(flags, num_flags, argc, argv, "loss"))
            snprintf(why, sizeof why, "--loss ce");
        else if (s->loss == BY_METHOD && method_given)
            snprintf(why, sizeof why, "--method %s (whose loss is ce unless --loss las)", method);
        for (size_t i = 0; why[0] != '\0' && i < sizeof las_flags / sizeof las_flags[0]; i++)
            if (cli_given(flags, num_flags, argc, argv, las_flags[i]))
                cli_usage_error("--%s and %s conflict: --%s is label-aware smoothing's (--loss las)", las_flags[i],
                        why, las_flags[i]);
    }
    if (s->train.las_shape != MISLAS_LAS_POWER && cli_given(flags, num_flags, argc, argv, "las-power"))
        cli_usage_error("--las-power and --las-shape %s%s conflict: the exponent is --las-shape power's",
                cli_choice_name(cli_las_shape_choices, s->las_shape),
                cli_default_note(cli_given(flags, num_flags, argc, argv, "las-shape")));
}

static void parse_command_line(stage2_settings *s, int argc, char **argv)
{
    mislas_train_stage2_options_init(&s->train);
    s->imb_factor = 0.01;
    s->imb_type = MISLAS_IMBALANCE_EXP;
    s->method = (int)s->train.method;
    s->loss = BY_METHOD;
    s->las_shape = (int)s->train.las_shape;
    s->shift_bn = BY_METHOD;
    s->mislas_shift_bn = s->train.shift_bn;
    const cli_flag flags[] = {
        {.name = "in", .kind = CLI_TEXT, .target = &s->in, .value_name = "FILE",
         .help = "the stage-1 checkpoint (required)"},
        {.name = "out", .kind = CLI_TEXT, .target = &s->out, .value_name = "FILE",
         .help = "the stage-2 checkpoint, written after every epoch (required)"},
        {.name = "resume", .kind = CLI_SWITCH, .target = &s->resume, .switch_value = 1,
         .help = "continue the run --out holds, exactly as if never interrupted"},
        {.name = "preset", .kind = CLI_PRESET, .target = &s->preset, .value_name = "NAME", .early = true,
         .help = "a row of the paper's Table 5 or one of the project's recipes (below), applied before the "
                 "other flags"},
        {.name = "method", .kind = CLI_CHOICE, .target = &s->method, .choices = cli_stage2_method_choices,
         .help = "crt: new classifier; lws: learned scales only; mislas: classifier at lr * lr-factor and scales"},
        {.name = "loss", .kind = CLI_CHOICE, .target = &s->loss, .choices = cli_stage2_loss_choices,
         .help = "label-aware smoothing or cross-entropy", .default_text = "las for mislas, ce for crt and lws"},
        {.name = "smooth-head", .kind = CLI_FLOAT, .target = &s->train.smooth_head, .value_name = "X", .min = 0,
         .max = 1, .help = "LAS: smoothing of the largest class"},
        {.name = "smooth-tail", .kind = CLI_FLOAT, .target = &s->train.smooth_tail, .value_name = "X", .min = 0,
         .max = 1, .help = "LAS: smoothing of the smallest class"},
        {.name = "las-shape", .kind = CLI_CHOICE, .target = &s->las_shape, .choices = cli_las_shape_choices,
         .help = "LAS: how smoothing falls from head to tail"},
        {.name = "las-power", .kind = CLI_FLOAT, .target = &s->train.las_power, .value_name = "X", .min = 0,
         .max = INFINITY, .above_min = true, .help = "LAS: the exponent of --las-shape power"},
        {.name = "lr-factor", .kind = CLI_DOUBLE, .target = &s->train.lr_factor, .value_name = "X", .min = 0,
         .max = INFINITY, .help = "mislas: the classifier's lr as a fraction of --lr"},
        {.name = "shift-bn", .kind = CLI_CHOICE, .target = &s->shift_bn, .choices = cli_on_off_choices,
         .help = "shifted batch norm (off: the backbone runs in eval mode)",
         .default_text = "on for mislas unless the preset says off; off for crt and lws"},
        {.name = "epochs", .kind = CLI_INT32, .target = &s->train.epochs, .value_name = "N", .min = 1,
         .max = 100000, .help = "epochs (cosine schedule)"},
        {.name = "epoch-steps", .kind = CLI_UINT64, .target = &s->epoch_steps, .value_name = "N",
         .help = "steps per epoch; 0: the reference's ceil(N / batch) + 1"},
        {.name = "batch-size", .kind = CLI_INT32, .target = &s->train.batch_size, .value_name = "N", .min = 2,
         .max = 1 << 20, .help = "images per step"},
        {.name = "lr", .kind = CLI_DOUBLE, .target = &s->train.lr, .value_name = "X", .min = 0, .max = INFINITY,
         .above_min = true, .help = "base learning rate"},
        {.name = "momentum", .kind = CLI_DOUBLE, .target = &s->train.momentum, .value_name = "X", .min = 0,
         .max = 1, .help = "SGD momentum"},
        {.name = "weight-decay", .kind = CLI_DOUBLE, .target = &s->train.weight_decay, .value_name = "X",
         .min = 0, .max = INFINITY, .help = "L2 weight decay on what learns"},
        {.name = "no-augment", .kind = CLI_SWITCH, .target = &s->no_augment, .switch_value = 1,
         .help = "no pad-4 random crop and flip (--dataset list: no random resized crop, flip and colour jitter)"},
        {.name = "seed", .kind = CLI_UINT64, .target = &s->train.seed, .value_name = "N",
         .help = "data order, augmentation and crt's new classifier"},
        {.name = "dataset", .kind = CLI_DATASET, .target = &s->dataset, .help = "the data set, as in stage 1",
         .default_text = "list with --train-list, else the one the checkpoint's image shape and classes fit"},
        CLI_DATA_DIR_FLAG(&s->data_dir),
        CLI_TRAIN_LIST_FLAG(&s->lists, "--dataset list: the training list, as in stage 1"),
        CLI_TEST_LIST_FLAG(&s->lists, "--dataset list: the test list, for --eval (its labels take the training "
                "list's class map)"),
        CLI_LIST_SHAPE_FLAGS(&s->lists),
        CLI_SKIP_BAD_FLAG(&s->lists, "--dataset list: leave out the files that cannot be read as images (as in "
                "stage 1, or the class counts differ), and those of the test list"),
        {.name = "imb-factor", .kind = CLI_DOUBLE, .target = &s->imb_factor, .value_name = "X", .min = 0,
         .max = 1, .above_min = true, .help = "the long-tailed subset, as in stage 1 (not for --dataset list)"},
        {.name = "imb-type", .kind = CLI_CHOICE, .target = &s->imb_type, .choices = cli_imbalance_choices,
         .help = "the subset's profile, as in stage 1"},
        {.name = "subset-seed", .kind = CLI_UINT64, .target = &s->subset_seed, .value_name = "N",
         .help = "the subset's images and the --holdout ones, as in stage 1"},
        CLI_HOLDOUT_FLAG(&s->holdout),
        CLI_BN_PER_RANK_FLAG(&s->bn_per_rank),
        CLI_THREADS_FLAG(&s->threads),
        CLI_EVAL_FLAG(&s->eval),
        CLI_QUIET_FLAG(&s->quiet),
        CLI_PRINT_SCHEDULE_FLAG(&s->print_schedule),
        CLI_HELP_FLAG(&s->help),
        CLI_VERSION_FLAG(&s->version),
    };
    const size_t num_flags = sizeof flags / sizeof flags[0];
    size_t num_positionals;
    cli_parse(flags, num_flags, argc, argv, CLI_PASS_EARLY, NULL, 0, &num_positionals);
    if (s->help) {
        cli_print_help(stdout, "--in FILE --out FILE [flags]",
                "Trains the classifier of a stage-1 checkpoint on the same long-tailed training set (or\n"
                "training list: --dataset list) with class-balanced sampling: MiSLAS's stage 2 (label-aware\n"
                "smoothing, shifted batch norm), or the cRT and LWS baselines. The checkpoint is written\n"
                "after every epoch.",
                flags, num_flags, true);
        exit(cli_exit_status(0));
    }
    if (s->version)
        cli_print_version();
    if (s->preset != NULL)
        apply_preset(s, s->preset);
    cli_parse(flags, num_flags, argc, argv, CLI_PASS_LATE, NULL, 0, &num_positionals);
    if ((s->in == NULL || s->out == NULL) && !s->print_schedule)
        cli_usage_error("--in FILE and --out FILE are required");
    bool mislas = s->method == MISLAS_STAGE2_MISLAS;
    s->train.method = (mislas_stage2_method)s->method;
    s->train.label_aware_smoothing = s->loss != BY_METHOD ? s->loss : mislas;
    s->train.las_shape = (mislas_las_shape)s->las_shape;
    s->train.shift_bn = s->shift_bn != BY_METHOD ? s->shift_bn : mislas ? s->mislas_shift_bn : 0;
    s->train.epoch_steps = (size_t)s->epoch_steps;
    s->train.augment = !s->no_augment;
    refuse_conflicts(s, flags, num_flags, argc, argv);
    cli_lists_settle(&s->lists, &s->dataset, &(cli_lists_context){.flags = flags, .num_flags = num_flags,
            .argc = argc, .argv = argv, .preset = s->preset != NULL ? s->preset->name : NULL, .data_dir = s->data_dir,
            .needs_paths = !s->print_schedule, .reads_test_list = s->eval, .offers_test_list = true});
}

/* What the run will do, as a phrase ("10 epochs of cosine decay ..."), for
 * reports such as scripts/demo's. */
static void print_schedule(const stage2_settings *s)
{
    const mislas_train_stage2_options *t = &s->train;
    printf("%d epoch%s of cosine decay from lr %g, batch %d, weight decay %g, ", (int)t->epochs,
            t->epochs == 1 ? "" : "s", t->lr, (int)t->batch_size, t->weight_decay);
    if (t->epoch_steps > 0)
        printf("%zu steps per epoch", t->epoch_steps);
    else
        printf("ceil(N / %d) + 1 steps per epoch", (int)t->batch_size);
    printf(" of class-balanced batches\n");
}

int main(int argc, char **argv)
{
    cli_parallel_detect();      /* under mpirun: rank 0 prints */
    stage2_settings s = {0};
    parse_command_line(&s, argc, argv);
    s.quiet |= !cli_parallel_leader();
    if (s.print_schedule) {
        print_schedule(&s);
        return cli_exit_status(0);
    }
    cli_check_thread_environment(s.threads);
    cli_check_files(&(cli_files){.inputs = {{.what = "--in", .path = s.in}},
            .outputs = {{.what = "--out", .path = s.out}}, .dataset = s.dataset, .data_dir = s.data_dir,
            .train_split = true, .test_split = s.eval, .train_list = s.lists.train_list,
            .test_list = s.lists.test_list});
    return cli_exit_status(run_stage2(&s));
}
