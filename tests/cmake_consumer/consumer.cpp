// A C++ program built against the installed libmislas through its CMake
// package (tests/cmake_consumer/CMakeLists.txt): the headers compile as C++
// and a handle lives in a std::unique_ptr.
#include <mislas/mislas.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <vector>

namespace {

struct calib_deleter { void operator()(mislas_calib *c) const { mislas_calib_free(c); } };

int fail(const char *what, int status)
{
    std::fprintf(stderr, "consumer_cxx: %s: %s\n", what, mislas_status_string(status));
    return 1;
}

}  // namespace

int main()
{
    if (std::strcmp(mislas_version(), MISLAS_VERSION_STRING) != 0) {
        std::fprintf(stderr, "consumer_cxx: headers %s, library %s\n", MISLAS_VERSION_STRING, mislas_version());
        return 1;
    }
    mislas_calib *raw = nullptr;
    int status = mislas_calib_new(&raw, 2, 5);
    if (status != MISLAS_OK)
        return fail("calib_new", status);
    std::unique_ptr<mislas_calib, calib_deleter> calib(raw);

    const std::vector<float> logits = { 4, 0,   0, 4,   4, 0 };
    const std::vector<int32_t> targets = { 0, 1, 1 };
    status = mislas_calib_add_logits(calib.get(), logits.data(), targets.data(), targets.size());
    if (status != MISLAS_OK)
        return fail("calib_add_logits", status);
    mislas_calib_summary summary;
    mislas_calib_summary_init(&summary);
    status = mislas_calib_summarize(calib.get(), &summary);
    if (status != MISLAS_OK)
        return fail("calib_summarize", status);
    if (summary.count != 3 || std::fabs(summary.accuracy - 2.0 / 3.0) > 1e-12) {
        std::fprintf(stderr, "consumer_cxx: count %llu, accuracy %g\n",
                     static_cast<unsigned long long>(summary.count), summary.accuracy);
        return 1;
    }
    std::printf("consumer_cxx: libmislas %s, accuracy %.3f, ECE %.4f\n", mislas_version(),
                summary.accuracy, summary.ece);
    return 0;
}
