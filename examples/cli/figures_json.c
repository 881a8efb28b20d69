/* mislas-eval --json: the figures (figures_json.h). */
#include "figures_json.h"

#include "output.h"

#include <inttypes.h>
#include <math.h>
#include <stdlib.h>

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

bool cli_write_figures_json(const char *path, const char *checkpoint, const cli_evaluation *e,
        const mislas_calib_bin *bins, int32_t num_bins)
{
    const mislas_eval_report *r = &e->report;
    cli_output o;
    if (!cli_output_open(&o, path))
        return false;
    cli_output_printf(&o, "{\n  \"checkpoint\": ");
    cli_output_json_string(&o, checkpoint);
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
    cli_output_json_string(&o, e->splits);
    cli_output_printf(&o, ",\n  \"train_counts_from\": ");
    cli_output_json_string(&o, e->counts_source);
    cli_output_printf(&o, ",\n  \"train_counts\": [");
    for (int32_t c = 0; c < e->num_classes; c++)
        cli_output_printf(&o, "%s%" PRId64, c > 0 ? ", " : "", e->train_counts[c]);
    if (e->list_labels != NULL) {
        /* a list set's classes are numbered by training count: each one's label in the lists */
        cli_output_printf(&o, "],\n  \"list_labels\": [");
        for (int32_t c = 0; c < e->num_classes; c++)
            cli_output_printf(&o, "%s%d", c > 0 ? ", " : "", (int)e->list_labels[c]);
    }
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
