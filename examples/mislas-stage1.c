/* mislas-stage1: MiSLAS's first stage, representation learning with mixup
 * on a long-tailed training set, written to a checkpoint after every epoch.
 *
 *   mislas-stage1 --preset fmnist --out stage1.ckpt
 *   mislas-stage2 --preset fmnist --in stage1.ckpt --out stage2.ckpt --eval
 */
#include "cli.h"

#include <inttypes.h>
#include <math.h>
#include <stdlib.h>

const char cli_program_name[] = "mislas-stage1";

typedef struct settings {
    mislas_stage1_options train;
    cli_int_list milestones;
    const cli_preset *preset;
    const cli_dataset *dataset;
    const char *data_dir, *out;
    double imb_factor;
    int imb_type, arch, schedule;
    int32_t holdout;
    uint64_t subset_seed;
    int32_t threads;
    int no_augment, resume, eval, quiet, print_schedule, help;
} settings;

static void apply_preset(settings *s, const cli_preset *p)
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

/* Everything but the flags, which then settle what is left. */
static void parse_command_line(settings *s, int argc, char **argv)
{
    mislas_stage1_options_init(&s->train);
    s->dataset = cli_dataset_named("fashion-mnist");
    s->imb_factor = 0.01;
    s->imb_type = MISLAS_IMBALANCE_EXP;
    s->arch = MISLAS_RESNET32;
    s->schedule = (int)s->train.schedule;
    const cli_flag flags[] = {
        {.name = "out", .kind = CLI_TEXT, .target = &s->out, .value_name = "FILE",
         .help = "the checkpoint, written after every epoch (required)"},
        {.name = "resume", .kind = CLI_SWITCH, .target = &s->resume, .switch_value = 1,
         .help = "continue the run --out holds, exactly as if never interrupted"},
        {.name = "preset", .kind = CLI_PRESET, .target = &s->preset, .value_name = "NAME", .early = true,
         .help = "a row of the paper's Table 5 (below), applied before the other flags"},
        {.name = "dataset", .kind = CLI_DATASET, .target = &s->dataset, .help = "the data set"},
        CLI_DATA_DIR_FLAG(&s->data_dir),
        {.name = "imb-factor", .kind = CLI_DOUBLE, .target = &s->imb_factor, .value_name = "X", .min = 0,
         .max = 1, .above_min = true, .help = "imbalance N_min / N_max of the long-tailed subset; 0.01 is IF 100"},
        {.name = "imb-type", .kind = CLI_CHOICE, .target = &s->imb_type, .choices = cli_imbalance_choices,
         .help = "profile of the class counts"},
        {.name = "subset-seed", .kind = CLI_UINT64, .target = &s->subset_seed, .value_name = "N",
         .help = "which images the subset keeps"},
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
         .min = 0, .max = 100000, .help = "linear warm-up (multistep)"},
        {.name = "milestones", .kind = CLI_LIST, .target = &s->milestones, .value_name = "A,B,..",
         .help = "epochs after which the lr falls tenfold (multistep)",
         .default_text = "epochs*160/200,epochs*180/200"},
        {.name = "mixup-alpha", .kind = CLI_FLOAT, .target = &s->train.mixup_alpha, .value_name = "X", .min = 0,
         .max = INFINITY, .help = "mixup's Beta(alpha, alpha); 0 turns mixup off"},
        {.name = "no-augment", .kind = CLI_SWITCH, .target = &s->no_augment, .switch_value = 1,
         .help = "no pad-4 random crop and flip"},
        {.name = "seed", .kind = CLI_UINT64, .target = &s->train.seed, .value_name = "N",
         .help = "the model's initialisation, data order, augmentation and mixup"},
        CLI_THREADS_FLAG(&s->threads),
        CLI_EVAL_FLAG(&s->eval),
        CLI_QUIET_FLAG(&s->quiet),
        CLI_PRINT_SCHEDULE_FLAG(&s->print_schedule),
        CLI_HELP_FLAG(&s->help),
    };
    const size_t num_flags = sizeof flags / sizeof flags[0];
    size_t num_positionals;
    cli_parse(flags, num_flags, argc, argv, CLI_PASS_EARLY, NULL, 0, &num_positionals);
    if (s->help) {
        cli_print_help(stdout, "--out FILE [flags]",
                "Trains a model on a long-tailed subset of a data set's training split: MiSLAS's stage 1\n"
                "(instance-balanced sampling, mixup, SGD). The checkpoint is written after every epoch;\n"
                "mislas-stage2 trains the classifier from it, mislas-eval evaluates it.",
                flags, num_flags, true);
        exit(cli_exit_status(0));
    }
    if (s->preset != NULL)
        apply_preset(s, s->preset);
    cli_parse(flags, num_flags, argc, argv, CLI_PASS_LATE, NULL, 0, &num_positionals);
    if (s->out == NULL && !s->print_schedule)
        cli_usage_error("--out FILE is required");
    s->train.schedule = (mislas_schedule)s->schedule;
    s->train.augment = !s->no_augment;
    s->train.mean = s->dataset->mean;
    s->train.std = s->dataset->std;
    if (s->milestones.count > 0) {
        s->train.milestones = s->milestones.values;
        s->train.num_milestones = s->milestones.count;
    }
}

/* What the run will do, as a phrase ("10 epochs of lr 0.1 after ..."), for
 * reports such as scripts/demo's. */
static void print_schedule(const settings *s)
{
    const mislas_stage1_options *t = &s->train;
    printf("%d epoch%s of ", (int)t->epochs, t->epochs == 1 ? "" : "s");
    if (t->schedule == MISLAS_SCHEDULE_COSINE) {
        printf("cosine decay from lr %g", t->lr);
    } else {
        printf("lr %g", t->lr);
        if (t->warmup_epochs > 0)
            printf(" after a %d-epoch linear warm-up", (int)t->warmup_epochs);
        /* With no milestones given, the library's: epochs * 160/200 and
         * * 180/200, leaving out those a short run rounds to 0 or repeats. */
        cli_int_list decays = s->milestones;
        for (int32_t i = 0; s->milestones.count == 0 && i < 2; i++) {
            int32_t m = (int32_t)((int64_t)t->epochs * (160 + 20 * i) / 200);
            if (m >= 1 && (decays.count == 0 || m > decays.values[decays.count - 1]))
                decays.values[decays.count++] = m;
        }
        for (int32_t i = 0; i < decays.count; i++)
            printf("%s%d", i == 0 ? (decays.count == 1 ? ", divided by 10 after epoch " : ", divided by 10 after epochs ")
                    : i + 1 == decays.count ? " and " : ", ", (int)decays.values[i]);
    }
    printf(", batch %d, weight decay %g, ", (int)t->batch_size, t->weight_decay);
    if (t->mixup_alpha > 0)
        printf("mixup alpha %g", (double)t->mixup_alpha);
    else
        printf("no mixup");
    printf(", %s on %s-LT at IF %g\n", cli_choice_name(cli_arch_choices, s->arch), s->dataset->name,
            1 / s->imb_factor);
}

static void describe_training_set(const mislas_dataset *train, const settings *s)
{
    int32_t k = mislas_dataset_num_classes(train);
    int64_t *counts = malloc((size_t)k * sizeof *counts);
    if (!s->quiet && counts != NULL && mislas_dataset_class_counts(train, counts) == MISLAS_OK) {
        int64_t largest = counts[0], smallest = counts[0];
        for (int32_t c = 1; c < k; c++) {
            largest = counts[c] > largest ? counts[c] : largest;
            smallest = counts[c] < smallest ? counts[c] : smallest;
        }
        fprintf(stderr, "%s: %s-LT (IF %g, %s profile): %zu images, %" PRId64 " to %" PRId64 " per class\n",
                cli_program_name, s->dataset->name, 1 / s->imb_factor,
                s->imb_type == MISLAS_IMBALANCE_EXP ? "exp" : "step", mislas_dataset_size(train), largest,
                smallest);
    }
    free(counts);
}

static int train(const settings *s, mislas_model *model, const mislas_dataset *data)
{
    if (!cli_announce_checkpoint(s->out, s->resume, s->quiet))
        return CLI_EXIT_FAILURE;
    describe_training_set(data, s);
    mislas_stage1_options options = s->train;
    cli_progress progress;
    options.checkpoint_path = s->out;
    options.resume = s->resume;
    options.progress = cli_progress_callback;
    options.progress_data = &progress;
    cli_progress_start(&progress, s->quiet);
    double start = cli_seconds();
    int status = mislas_train_stage1(model, data, &options);
    cli_progress_stop(&progress);
    int code = cli_training_outcome(status, s->out, &progress);
    if (code == 0)
        cli_print_training_summary(1, &progress, s->train.epochs, cli_seconds() - start, s->out);
    return code;
}

static int run(const settings *s)
{
    if (mislas_set_num_threads(s->threads) != MISLAS_OK) {
        cli_report_library_failure("cannot use %d threads", (int)s->threads);
        return CLI_EXIT_FAILURE;
    }
    mislas_dataset *data = cli_open_long_tailed_train(s->dataset, s->data_dir, s->imb_factor,
            (mislas_imbalance)s->imb_type, s->subset_seed, s->holdout, NULL);
    if (data == NULL)
        return CLI_EXIT_FAILURE;
    mislas_model_options shape;
    mislas_model_options_init(&shape);
    shape.arch = (mislas_arch)s->arch;
    shape.in_channels = s->dataset->channels;
    shape.height = shape.width = s->dataset->size;
    shape.num_classes = s->dataset->classes;
    shape.seed = s->train.seed;
    mislas_model *model = NULL;
    int code = CLI_EXIT_FAILURE;
    if (mislas_model_new(&model, &shape) != MISLAS_OK)
        cli_report_library_failure("cannot make the model");
    else
        code = train(s, model, data);
    if (code == 0 && s->eval)
        code = cli_evaluate_and_print(model, s->dataset, s->data_dir, s->quiet, s->out);
    mislas_model_free(model);
    mislas_dataset_free(data);
    return code;
}

int main(int argc, char **argv)
{
    settings s = {0};
    parse_command_line(&s, argc, argv);
    if (s.print_schedule) {
        print_schedule(&s);
        return cli_exit_status(0);
    }
    return cli_exit_status(run(&s));
}
