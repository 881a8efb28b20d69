// The public headers compiled as C++ and used from a C++ program: every
// object type, a loss with its gradient, calibration and a sampler. Built in
// the tree by meson and, by scripts/test, against the installed library
// through pkg-config.
#include <mislas/mislas.h>

#include <cmath>
#include <cstdio>
#include <memory>
#include <vector>

namespace {

struct loss_deleter { void operator()(mislas_loss *l) const { mislas_loss_free(l); } };
struct calib_deleter { void operator()(mislas_calib *c) const { mislas_calib_free(c); } };
struct sampler_deleter { void operator()(mislas_sampler *s) const { mislas_sampler_free(s); } };

int fail(const char *what)
{
    std::fprintf(stderr, "cxx_consumer: %s: %s\n", what, mislas_last_error());
    return 1;
}

}  // namespace

int main()
{
    const int32_t k = 4;
    std::vector<int64_t> counts(k);
    if (mislas_long_tail_counts(counts.data(), k, 100, 0.1, MISLAS_IMBALANCE_EXP) != MISLAS_OK)
        return fail("long_tail_counts");

    mislas_las_options opts;
    mislas_las_options_init(&opts);
    mislas_loss *raw_loss = nullptr;
    if (mislas_loss_new_label_aware_smoothing(&raw_loss, counts.data(), k, &opts) != MISLAS_OK)
        return fail("loss");
    std::unique_ptr<mislas_loss, loss_deleter> loss(raw_loss);

    const std::vector<float> logits = { 2, 0, 0, 0,   0, 3, 0, 0 };
    const std::vector<int32_t> targets = { 0, 2 };
    std::vector<float> grad(logits.size());
    float value = 0;
    if (mislas_loss_compute(loss.get(), logits.data(), targets.data(), 2, &value, grad.data()) != MISLAS_OK)
        return fail("loss_compute");

    mislas_calib *raw_calib = nullptr;
    if (mislas_calib_new(&raw_calib, k, 15) != MISLAS_OK)
        return fail("calib");
    std::unique_ptr<mislas_calib, calib_deleter> calib(raw_calib);
    if (mislas_calib_add_logits(calib.get(), logits.data(), targets.data(), 2) != MISLAS_OK)
        return fail("calib_add_logits");
    mislas_calib_summary summary;
    mislas_calib_summary_init(&summary);
    if (mislas_calib_summarize(calib.get(), &summary) != MISLAS_OK)
        return fail("calib_summarize");

    std::vector<int32_t> labels = { 0, 0, 0, 1, 1, 2, 3 };
    mislas_sampler_options so;
    mislas_sampler_options_init(&so);
    so.kind = MISLAS_SAMPLER_CLASS_AWARE;
    mislas_sampler *raw_sampler = nullptr;
    if (mislas_sampler_new(&raw_sampler, labels.data(), labels.size(), k, &so) != MISLAS_OK)
        return fail("sampler");
    std::unique_ptr<mislas_sampler, sampler_deleter> sampler(raw_sampler);
    std::vector<size_t> batch(mislas_sampler_epoch_length(sampler.get()));
    if (mislas_sampler_next(sampler.get(), batch.data(), batch.size()) != MISLAS_OK)
        return fail("sampler_next");

    // The error path works from C++ too.
    mislas_loss *bad = nullptr;
    if (mislas_loss_new_cross_entropy(&bad, 0) != MISLAS_ERR_INVALID_ARGUMENT || bad != nullptr)
        return fail("expected an invalid-argument status");

    std::printf("libmislas %s from C++: loss %.4f, accuracy %.2f, ECE %.4f, %zu samples per epoch\n",
                mislas_version(), value, summary.accuracy, summary.ece, batch.size());
    return std::isfinite(value) && summary.count == 2 && batch.size() == 12 ? 0 : 1;
}
