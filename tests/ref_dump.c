/* Helper of tests/reference_check.py: reads a batch of logits, runs the
 * library's LAS loss (plain and mixup) and calibration on it, and writes the
 * results, so the script can compare them with PyTorch and NumPy.
 *
 * Input (native endianness): int32 n, k, bins, shape; float smooth_head,
 * smooth_tail, power, lambda; int64 counts[k]; float logits[n*k];
 * int32 targets[n], targets_b[n].
 * Output: float eps[k]; float loss; float grad[n*k]; float mix_loss;
 * float mix_grad[n*k]; double accuracy, avg_confidence, ece, mce, nll, brier;
 * uint64 bin_counts[bins]. */
#include <mislas/mislas.h>

#include <stdio.h>
#include <stdlib.h>

static void die(const char *what)
{
    fprintf(stderr, "ref_dump: %s: %s\n", what, mislas_last_error());
    exit(1);
}

static void read_exact(FILE *f, void *p, size_t size, size_t count)
{
    if (fread(p, size, count, f) != count)
        die("short input");
}

static void write_all(FILE *f, const void *p, size_t size, size_t count)
{
    if (fwrite(p, size, count, f) != count)
        die("short write");
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: ref_dump INPUT OUTPUT\n");
        return 2;
    }
    FILE *in = fopen(argv[1], "rb");
    if (in == NULL)
        die("cannot open the input");
    int32_t head[4];
    float params[4];
    read_exact(in, head, sizeof head[0], 4);
    read_exact(in, params, sizeof params[0], 4);
    size_t n = (size_t)head[0], k = (size_t)head[1];
    int32_t bins = head[2];
    int64_t *counts = malloc(k * sizeof *counts);
    float *logits = malloc(n * k * sizeof *logits), *grad = malloc(n * k * sizeof *grad);
    float *mix_grad = malloc(n * k * sizeof *mix_grad), *eps = malloc(k * sizeof *eps);
    int32_t *ta = malloc(n * sizeof *ta), *tb = malloc(n * sizeof *tb);
    mislas_calib_bin *bin = malloc((size_t)bins * sizeof *bin);
    if (!counts || !logits || !grad || !mix_grad || !eps || !ta || !tb || !bin)
        die("out of memory");
    read_exact(in, counts, sizeof *counts, k);
    read_exact(in, logits, sizeof *logits, n * k);
    read_exact(in, ta, sizeof *ta, n);
    read_exact(in, tb, sizeof *tb, n);
    fclose(in);

    mislas_las_options o;
    mislas_las_options_init(&o);
    o.shape = (mislas_las_shape)head[3];
    o.smooth_head = params[0];
    o.smooth_tail = params[1];
    o.power = params[2];
    mislas_loss *las = NULL;
    mislas_calib *calib = NULL;
    float loss, mix_loss;
    mislas_calib_summary s;
    mislas_calib_summary_init(&s);
    if (mislas_loss_new_label_aware_smoothing(&las, counts, (int32_t)k, &o) != MISLAS_OK ||
        mislas_loss_class_smoothing(las, eps) != MISLAS_OK ||
        mislas_loss_compute(las, logits, ta, n, &loss, grad) != MISLAS_OK ||
        mislas_loss_compute_mixup(las, logits, ta, tb, params[3], n, &mix_loss, mix_grad) != MISLAS_OK ||
        mislas_calib_new(&calib, (int32_t)k, bins) != MISLAS_OK ||
        mislas_calib_add_logits(calib, logits, ta, n) != MISLAS_OK ||
        mislas_calib_summarize(calib, &s) != MISLAS_OK ||
        mislas_calib_bins(calib, bin, bins) != MISLAS_OK)
        die("library call failed");

    FILE *out = fopen(argv[2], "wb");
    if (out == NULL)
        die("cannot open the output");
    write_all(out, eps, sizeof *eps, k);
    write_all(out, &loss, sizeof loss, 1);
    write_all(out, grad, sizeof *grad, n * k);
    write_all(out, &mix_loss, sizeof mix_loss, 1);
    write_all(out, mix_grad, sizeof *mix_grad, n * k);
    const double figures[6] = { s.accuracy, s.avg_confidence, s.ece, s.mce, s.nll, s.brier };
    write_all(out, figures, sizeof figures[0], 6);
    for (int32_t b = 0; b < bins; b++)
        write_all(out, &bin[b].count, sizeof bin[b].count, 1);
    if (fclose(out) != 0)
        die("cannot close the output");
    mislas_loss_free(las);
    mislas_calib_free(calib);
    free(counts); free(logits); free(grad); free(mix_grad); free(eps); free(ta); free(tb); free(bin);
    return 0;
}
