/* A C program built against the installed libmislas through its CMake
 * package (tests/cmake_consumer/CMakeLists.txt): the headers and the library
 * agree on the version, and calibration works on a small batch. */
#include <mislas/mislas.h>

#include <stdio.h>
#include <string.h>

int main(void)
{
    if (strcmp(mislas_version(), MISLAS_VERSION_STRING) != 0) {
        fprintf(stderr, "consumer_c: headers %s, library %s\n", MISLAS_VERSION_STRING, mislas_version());
        return 1;
    }
    const float logits[] = { 2, 0, 0,   0, 3, 0,   0, 0, 1,   1, 0, 0 };
    const int32_t targets[] = { 0, 1, 0, 0 };
    mislas_calib *calib = NULL;
    int status = mislas_calib_new(&calib, 3, 10);
    if (status == MISLAS_OK)
        status = mislas_calib_add_logits(calib, logits, targets, 4);
    mislas_calib_summary summary;
    mislas_calib_summary_init(&summary);
    if (status == MISLAS_OK)
        status = mislas_calib_summarize(calib, &summary);
    mislas_calib_free(calib);
    if (status != MISLAS_OK) {
        fprintf(stderr, "consumer_c: %s\n", mislas_status_string(status));
        return 1;
    }
    const double off = summary.accuracy - 0.75;
    if (summary.count != 4 || off < -1e-12 || off > 1e-12 || !(summary.ece >= 0 && summary.ece <= 1)) {
        fprintf(stderr, "consumer_c: count %llu, accuracy %g, ece %g\n",
                (unsigned long long)summary.count, summary.accuracy, summary.ece);
        return 1;
    }
    printf("consumer_c: libmislas %s, %s, accuracy %.2f, ECE %.4f\n", mislas_version(),
           mislas_status_string(MISLAS_OK), summary.accuracy, summary.ece);
    return 0;
}
