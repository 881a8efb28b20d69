/* mislas-eval --svg: the reliability diagram (reliability_svg.h). */
#include "reliability_svg.h"

#include "output.h"

#include <inttypes.h>
#include <math.h>

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

bool cli_write_reliability_svg(const char *path, const char *checkpoint, const cli_evaluation *e,
        const mislas_calib_bin *bins, int32_t num_bins)
{
    cli_output o;
    if (!cli_output_open(&o, path))
        return false;
    cli_output_printf(&o, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
            "font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\">\n<title>Reliability diagram: ",
            FIGURE_WIDTH, FIGURE_HEIGHT, FIGURE_WIDTH, FIGURE_HEIGHT);
    cli_output_xml_text(&o, checkpoint);
    cli_output_printf(&o, "</title>\n<defs><pattern id=\"gap-hatch\" patternUnits=\"userSpaceOnUse\" width=\"6\" "
            "height=\"6\" patternTransform=\"rotate(45)\"><rect width=\"6\" height=\"6\" fill=\"#ff4d4d\" "
            "fill-opacity=\"0.3\"/><line x1=\"0\" y1=\"0\" x2=\"0\" y2=\"6\" stroke=\"#d62728\" "
            "stroke-width=\"1.5\"/></pattern></defs>\n<rect width=\"%d\" height=\"%d\" fill=\"white\"/>\n",
            FIGURE_WIDTH, FIGURE_HEIGHT);
    cli_output_printf(&o, "<text x=\"%.2f\" y=\"32\" text-anchor=\"middle\" font-size=\"18\">", plot_x(0.5));
    cli_output_xml_text(&o, checkpoint);
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
