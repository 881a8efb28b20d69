/* What surrounds mislas_eval_run in the programs (evaluation.h). */
#include "evaluation.h"

#include "figures_json.h"
#include "flags.h"
#include "messages.h"
#include "parallel.h"
#include "progress.h"
#include "reliability_svg.h"

#include <inttypes.h>
#include <math.h>
#include <stdlib.h>

/* The training counts that split Many / Medium / Few, and what they are. */
static bool choose_train_counts(mislas_model *model, const cli_eval_request *rq, cli_evaluation *e)
{
    if (rq->imb_factor <= 0) {
        int status = mislas_model_class_counts(model, e->train_counts, e->num_classes);
        if (status == MISLAS_OK) {
            snprintf(e->counts_source, sizeof e->counts_source, "the model's training counts");
            return true;
        }
        /* MISLAS_ERR_STATE: the checkpoint carries none (an imported one) */
        if (status != MISLAS_ERR_STATE) {
            cli_report_library_failure("cannot read the model's training counts");
            return false;
        }
    }
    if (e->dataset->list) {
        if (rq->train == NULL || mislas_dataset_class_counts(rq->train, e->train_counts) != MISLAS_OK) {
            cli_report_library_failure("cannot count the training list's classes");
            return false;
        }
        snprintf(e->counts_source, sizeof e->counts_source, "the training list's counts");
        return true;
    }
    double factor = rq->imb_factor > 0 ? rq->imb_factor : 0.01;
    if (mislas_long_tail_counts(e->train_counts, e->num_classes, e->dataset->n_max, factor, rq->imb_type)
            != MISLAS_OK) {
        cli_report_library_failure("cannot compute the long-tailed training counts");
        return false;
    }
    snprintf(e->counts_source, sizeof e->counts_source, "the %s profile of %s at IF %g (n_max %" PRId64 ")",
            cli_choice_name(cli_imbalance_choices, (int)rq->imb_type), e->dataset->name, 1 / factor,
            e->dataset->n_max);
    return true;
}

int cli_evaluation_prepare(mislas_model *model, const cli_eval_request *rq, cli_evaluation *e)
{
    *e = (cli_evaluation){.dataset = rq->dataset, .num_classes = mislas_model_num_classes(model)};
    mislas_eval_report_init(&e->report);
    if (e->num_classes != rq->dataset->classes) {
        cli_report_failure("the model has %d classes but %s has %d", (int)e->num_classes, rq->dataset->name,
                (int)rq->dataset->classes);
        return CLI_EXIT_FAILURE;
    }
    e->class_accuracy = calloc((size_t)e->num_classes, sizeof *e->class_accuracy);
    e->train_counts = calloc((size_t)e->num_classes, sizeof *e->train_counts);
    if (e->class_accuracy == NULL || e->train_counts == NULL) {
        cli_report_failure("out of memory");
        return CLI_EXIT_FAILURE;
    }
    if (!choose_train_counts(model, rq, e))
        return CLI_EXIT_FAILURE;
    if (rq->dataset->list && rq->train != NULL) {
        e->list_labels = calloc((size_t)e->num_classes, sizeof *e->list_labels);
        if (e->list_labels == NULL || mislas_dataset_num_classes(rq->train) != e->num_classes
                || !cli_list_labels(rq->train, e->list_labels)) {
            cli_report_failure("cannot read the training list's class map");
            return CLI_EXIT_FAILURE;
        }
    }
    e->medium_from = rq->dataset->medium_from;
    e->few_from = rq->dataset->few_from;
    if (e->medium_from > 0)
        snprintf(e->splits, sizeof e->splits, "class index: many [0, %d), medium [%d, %d), few [%d, %d) (%s)",
                (int)e->medium_from, (int)e->medium_from, (int)e->few_from, (int)e->few_from,
                (int)e->num_classes, rq->dataset->name);
    else
        snprintf(e->splits, sizeof e->splits, "%s", e->counts_source);
    if (mislas_calib_new(&e->calib, e->num_classes, rq->bins) != MISLAS_OK) {
        cli_report_library_failure("cannot make the calibration state");
        return CLI_EXIT_FAILURE;
    }
    return 0;
}

int cli_evaluation_outcome(int status)
{
    if (status == MISLAS_ERR_CANCELLED) {
        int signal_number = cli_progress_signal();
        if (cli_parallel_leader())
            cli_report_failure("interrupted%s during the evaluation", signal_number != 0 ? "" : " on another rank");
        return signal_number != 0 ? 128 + signal_number : CLI_EXIT_FAILURE;
    }
    if (status != MISLAS_OK) {
        cli_report_library_failure("evaluation failed");
        return CLI_EXIT_FAILURE;
    }
    return 0;
}

void cli_evaluation_options(const cli_evaluation *e, mislas_eval_options *options)
{
    options->comm = cli_parallel_comm();
    options->mean = e->dataset->mean;
    options->std = e->dataset->std;
    options->train_counts = e->train_counts;
    options->medium_from = e->medium_from;
    options->few_from = e->few_from;
}

void cli_evaluation_free(cli_evaluation *e)
{
    mislas_calib_free(e->calib);
    free(e->class_accuracy);
    free(e->train_counts);
    free(e->list_labels);
    *e = (cli_evaluation){0};
}

static void print_split(FILE *out, const char *name, double accuracy, int32_t classes)
{
    if (isnan(accuracy))
        fprintf(out, "%-10s  %-8s  (no class)\n", name, "-");
    else
        fprintf(out, "%-10s  %7.2f%%  (%d %s)\n", name, 100 * accuracy, (int)classes,
                classes == 1 ? "class" : "classes");
}

void cli_print_evaluation(FILE *out, const char *checkpoint, const cli_evaluation *e)
{
    const mislas_eval_report *r = &e->report;
    fprintf(out, "%-10s  %s\n", "checkpoint", checkpoint);
    fprintf(out, "%-10s  %s, %" PRIu64 " images\n", "test set", e->dataset->name, r->count);
    fprintf(out, "%-10s  %7.2f%%\n", "top-1", 100 * r->top1);
    print_split(out, "many", r->many, r->many_classes);
    print_split(out, "medium", r->medium, r->medium_classes);
    print_split(out, "few", r->few, r->few_classes);
    fprintf(out, "%-10s  %7.2f%%  (%d bins)\n", "ECE", 100 * r->ece, (int)mislas_calib_num_bins(e->calib));
    fprintf(out, "%-10s  %7.2f%%\n", "MCE", 100 * r->mce);
    fprintf(out, "%-10s  %8.4f\n", "NLL", r->nll);
    fprintf(out, "%-10s  %s\n", "splits by", e->splits);
    if (e->list_labels != NULL)
        fprintf(out, "%-10s  numbered by training count: class 0 is the training list's label %d, class %d its "
                "label %d\n", "classes", (int)e->list_labels[0], (int)(e->num_classes - 1),
                (int)e->list_labels[e->num_classes - 1]);
}

int cli_write_evaluation_files(const cli_evaluation *e, const char *checkpoint, const char *svg,
        const char *json)
{
    if (svg == NULL && json == NULL)
        return 0;
    int32_t num_bins = mislas_calib_num_bins(e->calib);
    mislas_calib_bin *bins = calloc((size_t)num_bins, sizeof *bins);
    if (bins == NULL) {
        cli_report_failure("out of memory");
        return CLI_EXIT_FAILURE;
    }
    bool written = true;
    if (mislas_calib_bins(e->calib, bins, num_bins) != MISLAS_OK) {
        cli_report_library_failure("cannot read the calibration bins");
        written = false;
    }
    if (written && svg != NULL)
        written = cli_write_reliability_svg(svg, checkpoint, e, bins, num_bins);
    if (written && json != NULL)
        written = cli_write_figures_json(json, checkpoint, e, bins, num_bins);
    free(bins);
    return written ? 0 : CLI_EXIT_FAILURE;
}

/* The test split opened and mislas_eval_run run on it, as mislas-eval does. */
static int evaluate(mislas_model *model, const cli_eval_request *request, const cli_lists *lists,
        const char *data_dir, bool quiet, cli_evaluation *e)
{
    int code = cli_evaluation_prepare(model, request, e);
    mislas_dataset *test = NULL;
    if (code == 0 && !cli_open_test_set(request->dataset, lists, data_dir, request->train, quiet, &test))
        code = CLI_EXIT_FAILURE;
    /* the ranks of a job evaluate together, or none does */
    if (!cli_parallel_agree(code == 0)) {
        mislas_dataset_free(test);
        return code != 0 ? code : CLI_EXIT_FAILURE;
    }
    mislas_eval_options options;
    mislas_eval_options_init(&options);
    cli_evaluation_options(e, &options);
    cli_progress progress;
    options.progress = cli_progress_callback;
    options.progress_data = &progress;
    cli_progress_start(&progress, quiet);
    int status = mislas_eval_run(model, test, &options, e->calib, e->class_accuracy, &e->report);
    cli_progress_stop(&progress);
    mislas_dataset_free(test);
    return cli_evaluation_outcome(status);
}

int cli_evaluate_and_print(mislas_model *model, const cli_dataset *dataset, const cli_lists *lists,
        const char *data_dir, const mislas_dataset *train, bool quiet, const char *checkpoint)
{
    cli_eval_request request = {.dataset = dataset, .bins = 15, .train = dataset->list ? train : NULL};
    cli_evaluation evaluation;
    int code = evaluate(model, &request, lists, data_dir, quiet, &evaluation);
    if (code == 0)
        cli_print_evaluation(stdout, checkpoint, &evaluation);
    cli_evaluation_free(&evaluation);
    return code;
}
