// libmislas from C++11: RAII handles and exceptions over the C API.
//
// Each library object is held by a std::unique_ptr whose deleter calls the
// matching mislas_*_free, and every status is checked by a helper that throws
// mislas::error carrying mislas_last_error(). The program builds a
// label-aware smoothing loss from long-tailed class counts and a calibration
// object, runs both on one tiny batch of logits, then shows a failing call
// turning into an exception (with nothing leaked on the way out).
//
// Build against the installed library:
//   c++ -std=c++11 cxx_raii.cpp $(pkg-config --cflags --libs mislas) -o cxx_raii
#include <mislas/mislas.h>

#include <cmath>
#include <cstdio>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace mislas {

// A failed call: the library's message plus the status code.
class error : public std::runtime_error {
public:
    error(int status, const std::string &what) : std::runtime_error(what), status_(status) {}
    int status() const { return status_; }
private:
    int status_;
};

// The library's message already names the function and the argument at fault.
inline void check(int rc)
{
    if (rc != MISLAS_OK)
        throw error(rc, std::string(mislas_last_error()) + " (" + mislas_status_string(rc) + ")");
}

// unique_ptr with the library's own free function as its deleter.
template <typename T, void (*Free)(T *)> struct deleter {
    void operator()(T *p) const { Free(p); }
};
template <typename T, void (*Free)(T *)> using handle = std::unique_ptr<T, deleter<T, Free>>;
typedef handle<mislas_loss, mislas_loss_free> loss;
typedef handle<mislas_calib, mislas_calib_free> calib;

// Runs a mislas_*_new-style call and owns what it made.
template <typename Handle, typename Create> Handle make(Create create)
{
    typename Handle::pointer p = nullptr;
    check(create(&p));
    return Handle(p);
}

} // namespace mislas

int main()
{
    try {
        const int32_t K = 4;
        const std::vector<int64_t> counts = {400, 120, 30, 6};   // head ... tail

        mislas_las_options opts;
        mislas_las_options_init(&opts);            // concave, 0.4 at the head, 0.1 at the tail
        mislas::loss las = mislas::make<mislas::loss>([&](mislas_loss **out) {
            return mislas_loss_new_label_aware_smoothing(out, counts.data(), K, &opts);
        });
        mislas::calib cal = mislas::make<mislas::calib>([&](mislas_calib **out) {
            return mislas_calib_new(out, K, 5);
        });

        std::vector<float> eps(K);
        mislas::check(mislas_loss_class_smoothing(las.get(), eps.data()));
        std::printf("libmislas %s\nLAS smoothing per class (training samples -> epsilon):", mislas_version());
        for (int32_t c = 0; c < K; c++)
            std::printf("%s %lld -> %.3f", c ? "," : "", (long long)counts[c], eps[c]);
        std::printf("\n");

        // A tiny batch from "your model": 8 rows of K logits and their labels.
        const std::vector<float> logits = {
            4.0f, 0.5f, 0.0f, -1.0f,   3.0f, 1.0f, 0.0f, 0.0f,   0.2f, 2.5f, 0.1f, -0.5f,
            2.0f, 2.2f, 0.0f, -1.0f,   0.0f, 0.5f, 3.0f, 0.0f,   1.5f, 0.0f, 1.0f, 0.5f,
            0.0f, 0.0f, 0.5f, 2.0f,    2.5f, 0.0f, 0.0f, 1.8f};
        const std::vector<int32_t> labels = {0, 0, 1, 0, 2, 2, 3, 3};
        const size_t n = labels.size();

        float value = 0.0f;
        std::vector<float> grad(n * K);
        mislas::check(mislas_loss_compute(las.get(), logits.data(), labels.data(), n, &value, grad.data()));
        std::printf("LAS loss on %zu samples: %.4f\n", n, value);
        for (size_t r = 0; r < 2; r++) {
            float sum = 0.0f;
            std::printf("  d loss / d logits, row %zu:", r);
            for (int32_t c = 0; c < K; c++) {
                std::printf(" %+.4f", grad[r * K + c]);
                sum += grad[r * K + c];
            }
            std::printf("  (row sum %.4f)\n", std::fabs(sum) < 5e-5f ? 0.0f : sum);
        }

        mislas::check(mislas_calib_add_logits(cal.get(), logits.data(), labels.data(), n));
        mislas_calib_summary s;
        mislas_calib_summary_init(&s);
        mislas::check(mislas_calib_summarize(cal.get(), &s));
        std::printf("calibration: top-1 %.1f%%  mean confidence %.1f%%  ECE %.1f%%  NLL %.4f\n",
                    100 * s.accuracy, 100 * s.avg_confidence, 100 * s.ece, s.nll);

        // A label outside [0, K): the library refuses, the wrapper throws, and
        // the handle made inside the try block is freed during unwinding.
        try {
            mislas::calib scratch = mislas::make<mislas::calib>([&](mislas_calib **out) {
                return mislas_calib_new(out, K, 15);
            });
            const std::vector<int32_t> bad = {0, 0, 1, 7, 2, 2, 3, 3};
            mislas::check(mislas_calib_add_logits(scratch.get(), logits.data(), bad.data(), n));
            std::fprintf(stderr, "expected an exception\n");
            return 1;
        } catch (const mislas::error &e) {
            std::printf("caught as expected (status %d): %s\n", e.status(), e.what());
        }
        return 0;   // las and cal are freed here
    } catch (const std::exception &e) {
        std::fprintf(stderr, "error: %s\n", e.what());
        return 1;
    }
}
