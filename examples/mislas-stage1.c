/* mislas-stage1: MiSLAS's first stage, representation learning with mixup
 * on a long-tailed training set, written to a checkpoint after every epoch.
 *
 *   mislas-stage1 --preset fmnist --out stage1.ckpt
 *   mislas-stage2 --preset fmnist --in stage1.ckpt --out stage2.ckpt --eval
 *
 * run_stage1 is the stage: the library calls, in order. The command line
 * that fills its settings follows it; the plumbing is in cli/.
 */
#include "cli/cli.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char cli_program_name[] = "mislas-stage1";

/* What the flags ask for. */
typedef struct stage1_settings {
    mislas_train_stage1_options train;
    mislas_model_options model;
    const cli_dataset *dataset;
    const char *data_dir, *out;
    double imb_factor;
    int imb_type;
    uint64_t subset_seed;
    int32_t holdout, threads;
    int resume, eval, quiet, bn_per_rank;
    cli_lists lists;                /* --dataset list */
    /* the flags' own, read by parse_command_line */
    cli_int_list milestones;
    const cli_preset *preset;
    int arch, schedule, no_augment, print_schedule, help, version;
} stage1_settings;

/* Stage 1: a new model trained on the training split's long-tailed subset,
 * or on the training list of a list set (less any --holdout images); with
 * --eval, its figures on the test split. 0, or the exit code after saying
 * why. Under mpirun every rank runs it: the ranks start MPI once the data
 * and the model are ready, and train one model together. */
static int run_stage1(stage1_settings *s)
{
    mislas_dataset *train = NULL;
    mislas_model *model = NULL;
    cli_training_request request = {.dataset = s->dataset, .lists = &s->lists, .data_dir = s->data_dir,
            .imb_factor = s->imb_factor, .imb_type = (mislas_imbalance)s->imb_type, .subset_seed = s->subset_seed,
            .holdout = s->holdout, .quiet = s->quiet};
    if (!cli_succeeded(mislas_set_num_threads(s->threads), "cannot use %d threads", (int)s->threads)
            || !cli_open_training_set(&request, &train, NULL))
        return CLI_EXIT_FAILURE;
    s->model.num_classes = mislas_dataset_num_classes(train);     /* a list set's K is its list's */
    bool ok = cli_succeeded(mislas_model_new(&model, &s->model), "cannot make the model")
            && cli_announce_checkpoint(s->out, s->resume, s->quiet)
            && cli_parallel_start();
    int code = CLI_EXIT_FAILURE;
    if (ok) {
        cli_describe_training_set(train, s->dataset, s->imb_factor, (mislas_imbalance)s->imb_type, s->quiet);
        mislas_train_stage1_options options = s->train;
        options.checkpoint_path = s->out;   /* written after every epoch (by rank 0) */
        options.resume = s->resume;
        options.comm = cli_parallel_comm();
        options.bn_per_rank = s->bn_per_rank;
        cli_training run;
        cli_training_start(&run, 1, s->out, options.epochs, s->quiet);
        options.progress = cli_progress_callback;
        options.progress_data = &run.progress;
        code = cli_training_finish(&run, mislas_train_stage1(model, train, &options));
    }
    if (code == 0 && s->eval)
        code = cli_evaluate_and_print(model, s->dataset, &s->lists, s->data_dir, train, s->quiet, s->out);
    mislas_model_free(model);
    mislas_dataset_free(train);
    return code;
}

/* ------------------------------------------------------------ the command line */

static void apply_preset(stage1_settings *s, const cli_preset *p)
{
    if (p->dataset != NULL)
        s->dataset = p->dataset;
    if (p->imb_factor > 0)
        s->imb_factor = p->imb_factor;
    s->arch = (int)p->arch;
    s->train.epochs = p->stage1.epochs;
    s->train.batch_size = p->stage1.batch_size;
    s->train.warmup_epochs = p->stage1.warmup_epochs;
    s->train.lr = p->stage1.lr;
    s->train.weight_decay = p->stage1.weight_decay;
    s->train.mixup_alpha = p->stage1.mixup_alpha;
    s->schedule = (int)p->stage1.schedule;
    if (p->recipe != NULL)
        s->holdout = p->recipe->holdout;
}

/* A flag given on the command line that the other settings would ignore,
 * or cut short, is refused; a preset's values never conflict. */
static void refuse_conflicts(const stage1_settings *s, const cli_flag *flags, size_t num_flags, int argc,
        char **argv)
{
    bool milestones = cli_given(flags, num_flags, argc, argv, "milestones");
    bool warmup = cli_given(flags, num_flags, argc, argv, "warmup-epochs");
    bool epochs_given = cli_given(flags, num_flags, argc, argv, "epochs");
    int32_t epochs = s->train.epochs;
    if (s->schedule == MISLAS_SCHEDULE_COSINE) {
        /* the default is multistep: cosine came from the flag or a preset */
        if (!cli_given(flags, num_flags, argc, argv, "schedule"))
            return;
        if (milestones)
            cli_usage_error("--milestones and --schedule cosine conflict: milestones are the multistep "
                    "schedule's");
        if (warmup)
            cli_usage_error("--warmup-epochs and --schedule cosine conflict: the warm-up is the multistep "
                    "schedule's");
        return;
    }
    if (!epochs_given && s->preset != NULL)
        return;     /* the preset's epochs */
    if (milestones && s->milestones.values[s->milestones.count - 1] >= epochs)
        cli_usage_error("--milestones %d and --epochs %d%s conflict: the run ends before that decay (each "
                "milestone must be below --epochs)", (int)s->milestones.values[s->milestones.count - 1],
                (int)epochs, cli_default_note(epochs_given));
    if (warmup && s->train.warmup_epochs > epochs)
        cli_usage_error("--warmup-epochs %d and --epochs %d%s conflict: the run would end before the warm-up "
                "reaches --lr", (int)s->train.warmup_epochs, (int)epochs, cli_default_note(epochs_given));
}

/* Everything but the flags, which then settle what is left. */
static void parse_command_line(stage1_settings *s, int argc, char **argv)
{
    mislas_train_stage1_options_init(&s->train);
    s->dataset = cli_dataset_named("fashion-mnist");
    s->imb_factor = 0.01;
    s->imb_type = MISLAS_IMBALANCE_EXP;
    s->arch = MISLAS_RESNET32;
    s->schedule = (int)s->train.schedule;
    const cli_flag flags[] = {
        {.name = "out", .kind = CLI_TEXT, .target = &s->out, .value_name = "FILE",
         .help = "the checkpoint, written after every epoch (required, except with --print-schedule)"},
        {.name = "resume", .kind = CLI_SWITCH, .target = &s->resume, .switch_value = 1,
         .help = "continue the run --out holds, exactly as if never interrupted"},
        {.name = "preset", .kind = CLI_PRESET, .target = &s->preset, .value_name = "NAME", .early = true,
         .help = "a row of the paper's Table 5 or one of the project's recipes (below), applied before the "
                 "other flags"},
        {.name = "dataset", .kind = CLI_DATASET, .target = &s->dataset,
         .help = "the data set; list: --train-list's images under --data-dir"},
        CLI_DATA_DIR_FLAG(&s->data_dir),
        CLI_TRAIN_LIST_FLAG(&s->lists, "--dataset list: the training list, lines \"relative/path label\" (the "
                "reference's data_txt files); its classes are numbered by training count"),
        CLI_TEST_LIST_FLAG(&s->lists, "--dataset list: the test list, for --eval"),
        CLI_LIST_SHAPE_FLAGS(&s->lists),
        CLI_SKIP_BAD_FLAG(&s->lists, "--dataset list: leave out the files that cannot be read as images (and say "
                "how many) instead of stopping"),
        {.name = "imb-factor", .kind = CLI_DOUBLE, .target = &s->imb_factor, .value_name = "X", .min = 0,
         .max = 1, .above_min = true, .help = "imbalance N_min / N_max of the long-tailed subset; 0.01 is IF 100 "
         "(not for --dataset list, long-tailed as listed)"},
        {.name = "imb-type", .kind = CLI_CHOICE, .target = &s->imb_type, .choices = cli_imbalance_choices,
         .help = "profile of the class counts"},
        {.name = "subset-seed", .kind = CLI_UINT64, .target = &s->subset_seed, .value_name = "N",
         .help = "which images the subset keeps, and which --holdout takes"},
        CLI_HOLDOUT_FLAG(&s->holdout),
        {.name = "arch", .kind = CLI_CHOICE, .target = &s->arch, .choices = cli_arch_choices,
         .help = "the network"},
        {.name = "epochs", .kind = CLI_INT32, .target = &s->train.epochs, .value_name = "N", .min = 1,
         .max = 100000, .help = "epochs"},
        {.name = "batch-size", .kind = CLI_INT32, .target = &s->train.batch_size, .value_name = "N", .min = 2,
         .max = 1 << 20, .help = "images per step"},
        {.name = "lr", .kind = CLI_DOUBLE, .target = &s->train.lr, .value_name = "X", .min = 0, .max = INFINITY,
         .above_min = true, .help = "base learning rate"},
        {.name = "momentum", .kind = CLI_DOUBLE, .target = &s->train.momentum, .value_name = "X", .min = 0,
         .max = 1, .help = "SGD momentum"},
        {.name = "weight-decay", .kind = CLI_DOUBLE, .target = &s->train.weight_decay, .value_name = "X",
         .min = 0, .max = INFINITY, .help = "L2 weight decay on every parameter"},
        {.name = "schedule", .kind = CLI_CHOICE, .target = &s->schedule, .choices = cli_schedule_choices,
         .help = "learning-rate schedule"},
        {.name = "warmup-epochs", .kind = CLI_INT32, .target = &s->train.warmup_epochs, .value_name = "N",
         .min = 0, .max = 100000, .help = "linear warm-up (multistep), at most --epochs (a preset's or the "
         "default one longer than the run is cut short)"},
        {.name = "milestones", .kind = CLI_LIST, .target = &s->milestones, .value_name = "A,B,..",
         .help = "epochs after which the lr falls tenfold (multistep), each below --epochs",
         .default_text = "epochs*160/200,epochs*180/200"},
        {.name = "mixup-alpha", .kind = CLI_FLOAT, .target = &s->train.mixup_alpha, .value_name = "X", .min = 0,
         .max = INFINITY, .help = "mixup's Beta(alpha, alpha); 0 turns mixup off"},
        {.name = "no-augment", .kind = CLI_SWITCH, .target = &s->no_augment, .switch_value = 1,
         .help = "no pad-4 random crop and flip (--dataset list: no random resized crop, flip and colour jitter)"},
        {.name = "seed", .kind = CLI_UINT64, .target = &s->train.seed, .value_name = "N",
         .help = "the model's initialisation, data order, augmentation and mixup"},
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
        cli_print_help(stdout, "--out FILE [flags]",
                "Trains a model on a long-tailed subset of a data set's training split, or on the images of\n"
                "a training list (--dataset list --data-dir ROOT --train-list FILE: ImageNet-LT, iNaturalist\n"
                "2018, Places-LT): MiSLAS's stage 1 (instance-balanced sampling, mixup, SGD). The checkpoint\n"
                "is written after every epoch; mislas-stage2 trains the classifier from it, mislas-eval\n"
                "evaluates it.",
                flags, num_flags, true);
        exit(cli_exit_status(0));
    }
    if (s->version)
        cli_print_version();
    if (s->preset != NULL)
        apply_preset(s, s->preset);
    cli_parse(flags, num_flags, argc, argv, CLI_PASS_LATE, NULL, 0, &num_positionals);
    if (s->out == NULL && !s->print_schedule)
        cli_usage_error("--out FILE is required");
    refuse_conflicts(s, flags, num_flags, argc, argv);
    cli_lists_settle(&s->lists, &s->dataset, &(cli_lists_context){.flags = flags, .num_flags = num_flags,
            .argc = argc, .argv = argv, .preset = s->preset != NULL ? s->preset->name : NULL, .data_dir = s->data_dir,
            .needs_paths = !s->print_schedule, .reads_test_list = s->eval, .offers_test_list = true});
    s->train.schedule = (mislas_schedule)s->schedule;
    s->train.augment = !s->no_augment;
    s->train.mean = s->dataset->mean;
    s->train.std = s->dataset->std;
    if (s->milestones.count > 0) {
        s->train.milestones = s->milestones.values;
        s->train.num_milestones = s->milestones.count;
    }
    mislas_model_options_init(&s->model);
    s->model.arch = (mislas_arch)s->arch;
    s->model.in_channels = s->dataset->channels;
    s->model.height = s->model.width = s->dataset->size;
    s->model.num_classes = s->dataset->classes;    /* a list set's: once its list is read */
    s->model.seed = s->train.seed;
}

/* The decays after the warm-up, from the rates themselves: ", divided by 10
 * after epochs 8 and 9" (a milestone past the run never shows; one inside
 * the warm-up shows as a decay after it). */
static void print_decays(const stage1_settings *s, const int32_t *milestones, int32_t count, int32_t from)
{
    const mislas_train_stage1_options *t = &s->train;
    int32_t epochs[CLI_LIST_MAX + 1], n = 0;
    char factor[32] = "", last[32] = "";
    for (int32_t e = from; e < t->epochs; e++) {
        double before = mislas_schedule_multistep(t->lr, e - 1, t->warmup_epochs, milestones, count, t->gamma);
        double now = mislas_schedule_multistep(t->lr, e, t->warmup_epochs, milestones, count, t->gamma);
        if (now == before)
            continue;
        snprintf(factor, sizeof factor, "%g", before / now);
        if (n > 0 && strcmp(factor, last) != 0) {
            cli_print_epochs(stdout, epochs, n);
            n = 0;
        }
        if (n == 0)
            printf("%s by %s after ", last[0] == '\0' ? ", divided" : ",", factor);
        snprintf(last, sizeof last, "%s", factor);
        if (n < CLI_LIST_MAX + 1)
            epochs[n++] = e;      /* 0-based e is epoch e + 1: the decay comes after epoch e */
    }
    if (n > 0)
        cli_print_epochs(stdout, epochs, n);
}

/* What the run will do, as a phrase ("10 epochs of lr 0.1 after ..."), for
 * reports such as scripts/demo's: read from the per-epoch rates the library
 * computes (mislas_schedule_multistep, mislas_schedule_cosine), so a warm-up the run
 * ends first or a milestone past the run shows as what really happens. */
static void print_schedule(const stage1_settings *s)
{
    const mislas_train_stage1_options *t = &s->train;
    printf("%d epoch%s of ", (int)t->epochs, t->epochs == 1 ? "" : "s");
    if (t->schedule == MISLAS_SCHEDULE_COSINE) {
        printf("cosine decay from lr %g", t->lr);
    } else {
        /* with no milestones given, the library's for these epochs */
        _Static_assert(CLI_LIST_MAX >= MISLAS_TRAIN_STAGE1_MILESTONES_MAX, "room for the library's milestones");
        cli_int_list decays = s->milestones;
        if (decays.count == 0 && mislas_train_stage1_milestones(decays.values, &decays.count, t->epochs)
                != MISLAS_OK)
            decays.count = 0;
        const int32_t *m = decays.values, count = decays.count, warmup = t->warmup_epochs, last = t->epochs - 1;
        double first = mislas_schedule_multistep(t->lr, 0, warmup, m, count, t->gamma);
        double at_last = mislas_schedule_multistep(t->lr, last, warmup, m, count, t->gamma);
        if (warmup >= 2 && warmup >= t->epochs) {
            /* the whole run is warm-up (a 1-epoch warm-up starts at the full rate) */
            if (t->epochs == 1)
                printf("lr %g", first);
            else
                printf("lr rising linearly from %g to %g", first, at_last);
            if (warmup > t->epochs)
                printf(" (a %d-epoch linear warm-up to lr %g, cut short by the end of the run)", (int)warmup, t->lr);
            else
                printf(" (a %d-epoch linear warm-up)", (int)warmup);
        } else if (warmup >= 2) {
            printf("lr %g after a %d-epoch linear warm-up", mislas_schedule_multistep(t->lr, warmup - 1, warmup, m,
                    count, t->gamma), (int)warmup);
            print_decays(s, m, count, warmup);
        } else {
            printf("lr %g", first);
            print_decays(s, m, count, 1);
        }
    }
    printf(", batch %d, weight decay %g, ", (int)t->batch_size, t->weight_decay);
    if (t->mixup_alpha > 0)
        printf("mixup alpha %g", (double)t->mixup_alpha);
    else
        printf("no mixup");
    if (s->dataset->list)
        printf(", %s on %s at %dx%d\n", cli_choice_name(cli_arch_choices, s->arch),
                strcmp(s->dataset->name, "list") == 0 ? "a list-file set" : s->dataset->name, (int)s->dataset->size,
                (int)s->dataset->size);
    else
        printf(", %s on %s-LT at IF %g\n", cli_choice_name(cli_arch_choices, s->arch), s->dataset->name,
                1 / s->imb_factor);
}

int main(int argc, char **argv)
{
    cli_parallel_detect();      /* under mpirun: rank 0 prints */
    stage1_settings s = {0};
    parse_command_line(&s, argc, argv);
    s.quiet |= !cli_parallel_leader();
    if (s.print_schedule) {
        print_schedule(&s);
        return cli_exit_status(0);
    }
    cli_check_thread_environment(s.threads);
    cli_check_files(&(cli_files){.outputs = {{.what = "--out", .path = s.out}}, .dataset = s.dataset,
            .data_dir = s.data_dir, .train_split = true, .test_split = s.eval, .train_list = s.lists.train_list,
            .test_list = s.lists.test_list});
    return cli_exit_status(run_stage1(&s));
}
