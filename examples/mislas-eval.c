/* mislas-eval: a checkpoint's accuracy and calibration on a test split:
 * top-1, Many / Medium / Few, ECE, MCE and NLL, and optionally the
 * reliability diagram as SVG and every figure as JSON.
 *
 *   mislas-eval stage2.ckpt --svg reliability.svg --json figures.json
 */
#include "cli.h"

#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

const char cli_program_name[] = "mislas-eval";

typedef struct settings {
    const char *checkpoint;
    const cli_dataset *dataset;     /* NULL: the one whose shape the checkpoint's model has */
    const char *data_dir, *svg, *json;
    double imb_factor;              /* 0: the checkpoint's training counts */
    int imb_type;
    int32_t bins, threads;
    int quiet, help;
} settings;

static void parse_command_line(settings *s, int argc, char **argv)
{
    s->imb_type = MISLAS_IMBALANCE_EXP;
    s->bins = 15;
    const cli_flag flags[] = {
        {.name = "dataset", .kind = CLI_DATASET, .target = &s->dataset, .help = "the data set",
         .default_text = "the one the checkpoint's image shape and classes fit"},
        CLI_DATA_DIR_FLAG(&s->data_dir),
        {.name = "imb-factor", .kind = CLI_DOUBLE, .target = &s->imb_factor, .value_name = "X", .min = 0,
         .max = 1, .above_min = true,
         .help = "split Many / Medium / Few by this long-tailed profile's counts, not the checkpoint's",
         .default_text = "the checkpoint's counts; 0.01 if it has none"},
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
    };
    const size_t num_flags = sizeof flags / sizeof flags[0];
    const char *positionals[1];
    size_t num_positionals;
    cli_parse(flags, num_flags, argc, argv, CLI_PASS_EARLY, NULL, 0, &num_positionals);
    if (s->help) {
        cli_print_help(stdout, "CHECKPOINT [flags]",
                "Evaluates a checkpoint (from mislas-stage1, mislas-stage2 or mislas-import-reference) on a\n"
                "data set's test split: top-1, Many / Medium / Few, ECE, MCE, NLL.",
                flags, num_flags, false);
        exit(cli_exit_status(0));
    }
    cli_parse(flags, num_flags, argc, argv, CLI_PASS_LATE, positionals, 1, &num_positionals);
    if (num_positionals != 1)
        cli_usage_error("a CHECKPOINT to evaluate is required");
    s->checkpoint = positionals[0];
    if ((s->svg != NULL && strcmp(s->svg, s->checkpoint) == 0)
            || (s->json != NULL && strcmp(s->json, s->checkpoint) == 0))
        cli_usage_error("--svg and --json must not name the checkpoint");
}

/* ---------------------------------------------------------------- the SVG */

/* The plot's square and the figure around it, in SVG user units. */
enum { FIGURE_WIDTH = 520, FIGURE_HEIGHT = 540, PLOT_LEFT = 80, PLOT_TOP = 80, PLOT_SIZE = 400 };

static double plot_x(double v) { return PLOT_LEFT + v * PLOT_SIZE; }
static double plot_y(double v) { return PLOT_TOP + (1 - v) * PLOT_SIZE; }

static void svg_frame(cli_output *o)
{
    for (int i = 0; i <= 5; i++) {
        double v = i / 5.0;
        cli_output_printf(o, "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\" stroke=\"#dddddd\"/>\n",
                plot_x(0), plot_y(v), plot_x(1), plot_y(v));
        cli_output_printf(o, "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\" stroke=\"#dddddd\"/>\n",
                plot_x(v), plot_y(0), plot_x(v), plot_y(1));
        cli_output_printf(o, "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\" stroke=\"black\"/>\n",
                plot_x(v), plot_y(0), plot_x(v), plot_y(0) + 6);
        cli_output_printf(o, "<text x=\"%.2f\" y=\"%.2f\" text-anchor=\"middle\" font-size=\"13\">%.1f</text>\n",
                plot_x(v), plot_y(0) + 22, v);
        cli_output_printf(o, "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\" stroke=\"black\"/>\n",
                plot_x(0) - 6, plot_y(v), plot_x(0), plot_y(v));
        cli_output_printf(o, "<text x=\"%.2f\" y=\"%.2f\" text-anchor=\"end\" font-size=\"13\">%.1f</text>\n",
                plot_x(0) - 10, plot_y(v) + 4.5, v);
    }
    cli_output_printf(o, "<text x=\"%.2f\" y=\"%d\" text-anchor=\"middle\" font-size=\"16\">Confidence</text>\n",
            plot_x(0.5), FIGURE_HEIGHT - 16);
    cli_output_printf(o, "<text transform=\"translate(26 %.2f) rotate(-90)\" text-anchor=\"middle\" "
            "font-size=\"16\">Accuracy</text>\n", plot_y(0.5));
}

/* Per non-empty bin the bar of its accuracy, then over the bars the gap to
 * its mean confidence (the paper's Figures 1 and 4). */
static void svg_bins(cli_output *o, const mislas_calib_bin *bins, int32_t num_bins)
{
    for (int32_t b = 0; b < num_bins; b++) {
        if (bins[b].count == 0)
            continue;
        cli_output_printf(o, "<rect class=\"bar\" x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" height=\"%.2f\" "
                "fill=\"#1f5fd6\" stroke=\"#0b2a66\"><title>%.2f-%.2f: accuracy %.4f, confidence %.4f, "
                "%" PRIu64 " images</title></rect>\n", plot_x(bins[b].lower), plot_y(bins[b].accuracy),
                (bins[b].upper - bins[b].lower) * PLOT_SIZE, bins[b].accuracy * PLOT_SIZE, bins[b].lower,
                bins[b].upper, bins[b].accuracy, bins[b].confidence, bins[b].count);
    }
    for (int32_t b = 0; b < num_bins; b++) {
        if (bins[b].count == 0)
            continue;
        double high = fmax(bins[b].accuracy, bins[b].confidence), low = fmin(bins[b].accuracy, bins[b].confidence);
        cli_output_printf(o, "<rect class=\"gap\" x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" height=\"%.2f\" "
                "fill=\"url(#gap-hatch)\" stroke=\"#d62728\" stroke-opacity=\"0.8\"/>\n", plot_x(bins[b].lower),
                plot_y(high), (bins[b].upper - bins[b].lower) * PLOT_SIZE, (high - low) * PLOT_SIZE);
    }
}

static void svg_legend(cli_output *o, double ece)
{
    double x = plot_x(0) + 12, y = plot_y(1) + 12;
    cli_output_printf(o, "<g class=\"legend\" font-size=\"14\">\n"
            "<rect x=\"%.2f\" y=\"%.2f\" width=\"112\" height=\"74\" fill=\"white\" fill-opacity=\"0.9\" "
            "stroke=\"#999999\"/>\n", x, y);
    cli_output_printf(o, "<rect x=\"%.2f\" y=\"%.2f\" width=\"22\" height=\"13\" fill=\"#1f5fd6\" "
            "stroke=\"#0b2a66\"/><text x=\"%.2f\" y=\"%.2f\">Outputs</text>\n", x + 8, y + 8, x + 38, y + 19);
    cli_output_printf(o, "<rect x=\"%.2f\" y=\"%.2f\" width=\"22\" height=\"13\" fill=\"url(#gap-hatch)\" "
            "stroke=\"#d62728\"/><text x=\"%.2f\" y=\"%.2f\">Gap</text>\n", x + 8, y + 30, x + 38, y + 41);
    cli_output_printf(o, "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\" stroke=\"#222222\" "
            "stroke-dasharray=\"5,3\" stroke-width=\"2\"/><text x=\"%.2f\" y=\"%.2f\">Ideal</text>\n</g>\n",
            x + 8, y + 59, x + 30, y + 59, x + 38, y + 63);
    double bx = plot_x(1) - 150, by = plot_y(0) - 50;
    cli_output_printf(o, "<rect x=\"%.2f\" y=\"%.2f\" width=\"138\" height=\"38\" rx=\"5\" fill=\"#f2f2f2\" "
            "stroke=\"#999999\"/>\n<text class=\"ece\" x=\"%.2f\" y=\"%.2f\" text-anchor=\"middle\" "
            "font-size=\"17\">ECE = %.2f%%</text>\n", bx, by, bx + 69, by + 25, 100 * ece);
}

static bool write_svg(const settings *s, const cli_evaluation *e, const mislas_calib_bin *bins, int32_t num_bins)
{
    cli_output o;
    if (!cli_output_open(&o, s->svg))
        return false;
    cli_output_printf(&o, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
            "font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\">\n<title>Reliability diagram: ",
            FIGURE_WIDTH, FIGURE_HEIGHT, FIGURE_WIDTH, FIGURE_HEIGHT);
    cli_output_xml_text(&o, s->checkpoint);
    cli_output_printf(&o, "</title>\n<defs><pattern id=\"gap-hatch\" patternUnits=\"userSpaceOnUse\" width=\"6\" "
            "height=\"6\" patternTransform=\"rotate(45)\"><rect width=\"6\" height=\"6\" fill=\"#ff4d4d\" "
            "fill-opacity=\"0.3\"/><line x1=\"0\" y1=\"0\" x2=\"0\" y2=\"6\" stroke=\"#d62728\" "
            "stroke-width=\"1.5\"/></pattern></defs>\n<rect width=\"%d\" height=\"%d\" fill=\"white\"/>\n",
            FIGURE_WIDTH, FIGURE_HEIGHT);
    cli_output_printf(&o, "<text x=\"%.2f\" y=\"32\" text-anchor=\"middle\" font-size=\"18\">", plot_x(0.5));
    cli_output_xml_text(&o, s->checkpoint);
    cli_output_printf(&o, "</text>\n<text x=\"%.2f\" y=\"56\" text-anchor=\"middle\" font-size=\"13\" "
            "fill=\"#444444\">", plot_x(0.5));
    cli_output_xml_text(&o, e->dataset->name);
    cli_output_printf(&o, " test split, %" PRIu64 " images, top-1 %.2f%%</text>\n", e->report.count,
            100 * e->report.top1);
    svg_frame(&o);
    svg_bins(&o, bins, num_bins);
    cli_output_printf(&o, "<line class=\"ideal\" x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\" stroke=\"#222222\" "
            "stroke-dasharray=\"6,4\" stroke-width=\"2\"/>\n", plot_x(0), plot_y(0), plot_x(1), plot_y(1));
    cli_output_printf(&o, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" stroke=\"black\"/>\n",
            PLOT_LEFT, PLOT_TOP, PLOT_SIZE, PLOT_SIZE);
    svg_legend(&o, e->report.ece);
    cli_output_printf(&o, "</svg>\n");
    return cli_output_commit(&o);
}

/* --------------------------------------------------------------- the JSON */

/* The shortest decimal that reads back as exactly v (87.92, not
 * 87.920000000000002); NaN (an empty split, a class with no test image) is
 * JSON's null. */
static void json_number(cli_output *o, double v)
{
    if (!isfinite(v)) {
        cli_output_printf(o, "null");
        return;
    }
    char text[32];
    for (int digits = 15; digits <= 17; digits++) {
        snprintf(text, sizeof text, "%.*g", digits, v);
        if (strtod(text, NULL) == v)
            break;
    }
    cli_output_printf(o, "%s", text);
}

static void json_percent_field(cli_output *o, const char *key, double fraction)
{
    cli_output_printf(o, "  \"%s\": ", key);
    json_number(o, 100 * fraction);
    cli_output_printf(o, ",\n");
}

static bool write_json(const settings *s, const cli_evaluation *e, const mislas_calib_bin *bins, int32_t num_bins)
{
    const mislas_eval_report *r = &e->report;
    cli_output o;
    if (!cli_output_open(&o, s->json))
        return false;
    cli_output_printf(&o, "{\n  \"checkpoint\": ");
    cli_output_json_string(&o, s->checkpoint);
    cli_output_printf(&o, ",\n  \"dataset\": ");
    cli_output_json_string(&o, e->dataset->name);
    cli_output_printf(&o, ",\n  \"count\": %" PRIu64 ",\n", r->count);
    json_percent_field(&o, "top1", r->top1);
    json_percent_field(&o, "many", r->many);
    json_percent_field(&o, "medium", r->medium);
    json_percent_field(&o, "few", r->few);
    cli_output_printf(&o, "  \"many_classes\": %d,\n  \"medium_classes\": %d,\n  \"few_classes\": %d,\n",
            (int)r->many_classes, (int)r->medium_classes, (int)r->few_classes);
    json_percent_field(&o, "ece", r->ece);
    json_percent_field(&o, "mce", r->mce);
    cli_output_printf(&o, "  \"nll\": ");
    json_number(&o, r->nll);
    cli_output_printf(&o, ",\n  \"brier\": ");
    json_number(&o, r->brier);
    cli_output_printf(&o, ",\n  \"splits_by\": ");
    cli_output_json_string(&o, e->counts_source);
    cli_output_printf(&o, ",\n  \"train_counts\": [");
    for (int32_t c = 0; c < e->num_classes; c++)
        cli_output_printf(&o, "%s%" PRId64, c > 0 ? ", " : "", e->train_counts[c]);
    cli_output_printf(&o, "],\n  \"class_accuracy\": [");
    for (int32_t c = 0; c < e->num_classes; c++) {
        cli_output_printf(&o, "%s", c > 0 ? ", " : "");
        json_number(&o, 100 * e->class_accuracy[c]);
    }
    cli_output_printf(&o, "],\n  \"bins\": [");
    for (int32_t b = 0; b < num_bins; b++) {
        cli_output_printf(&o, "%s\n    {\"lower\": ", b > 0 ? "," : "");
        json_number(&o, bins[b].lower);
        cli_output_printf(&o, ", \"upper\": ");
        json_number(&o, bins[b].upper);
        cli_output_printf(&o, ", \"count\": %" PRIu64, bins[b].count);
        /* an empty bin has no means: null, not the library's placeholder 0 */
        if (bins[b].count == 0) {
            cli_output_printf(&o, ", \"accuracy\": null, \"confidence\": null");
        } else {
            cli_output_printf(&o, ", \"accuracy\": ");
            json_number(&o, bins[b].accuracy);
            cli_output_printf(&o, ", \"confidence\": ");
            json_number(&o, bins[b].confidence);
        }
        cli_output_printf(&o, "}");
    }
    cli_output_printf(&o, "\n  ]\n}\n");
    return cli_output_commit(&o);
}

/* ---------------------------------------------------------------- running */

static int report(const settings *s, const cli_evaluation *e)
{
    cli_print_evaluation(stdout, s->checkpoint, e);
    if (s->svg == NULL && s->json == NULL)
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
    if (written && s->svg != NULL)
        written = write_svg(s, e, bins, num_bins);
    if (written && s->json != NULL)
        written = write_json(s, e, bins, num_bins);
    free(bins);
    return written ? 0 : CLI_EXIT_FAILURE;
}

static int run(const settings *s)
{
    mislas_model *model = cli_load_model(s->checkpoint, s->threads);
    if (model == NULL)
        return CLI_EXIT_FAILURE;
    int code = CLI_EXIT_FAILURE;
    const cli_dataset *dataset = s->dataset != NULL ? s->dataset : cli_dataset_of_model(model, s->checkpoint);
    if (dataset != NULL) {
        cli_eval_request request = {.dataset = dataset, .data_dir = s->data_dir, .imb_factor = s->imb_factor,
                .imb_type = (mislas_imbalance)s->imb_type, .bins = s->bins, .quiet = s->quiet};
        cli_evaluation evaluation;
        code = cli_evaluate(model, &request, &evaluation);
        if (code == 0)
            code = report(s, &evaluation);
        cli_evaluation_free(&evaluation);
    }
    mislas_model_free(model);
    return code;
}

int main(int argc, char **argv)
{
    settings s = {0};
    parse_command_line(&s, argc, argv);
    return cli_exit_status(run(&s));
}
