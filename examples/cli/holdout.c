/* The validation split (holdout.h). */
#include "holdout.h"

#include "messages.h"

#include <inttypes.h>
#include <stdlib.h>

bool cli_hold_out(mislas_dataset **train, mislas_dataset **held_out, int32_t holdout)
{
    if (held_out != NULL)
        *held_out = NULL;
    mislas_dataset *subset = *train;
    if (holdout == 0)
        return true;
    /* The subset lists each class's kept images as a seeded shuffle, class
     * after class, so the last `holdout` of each class's run are a random
     * draw of that class: they become the validation images. */
    const int32_t k = mislas_dataset_num_classes(subset);
    const size_t n = mislas_dataset_size(subset);
    int64_t *counts = calloc((size_t)k, sizeof *counts);
    size_t *train_idx = calloc(n, sizeof *train_idx), *val_idx = calloc(n, sizeof *val_idx);
    mislas_dataset *rest = NULL, *val = NULL;
    size_t num_train = 0, num_val = 0;
    bool ok = counts != NULL && train_idx != NULL && val_idx != NULL;
    if (!ok)
        cli_report_failure("out of memory");
    if (ok && mislas_dataset_class_counts(subset, counts) != MISLAS_OK) {
        cli_report_library_failure("cannot count the training images");
        ok = false;
    }
    for (int32_t c = 0; ok && c < k; c++) {
        if (counts[c] <= holdout) {
            cli_report_failure("--holdout %d: class %d has only %" PRId64 " training images; hold out fewer",
                    (int)holdout, (int)c, counts[c]);
            ok = false;
        }
    }
    for (size_t i = 0, first = 0; ok && i < n; i++) {
        int32_t c = mislas_dataset_labels(subset)[i];
        if (i == 0 || mislas_dataset_labels(subset)[i - 1] != c)
            first = i;
        if ((int64_t)(i - first) < counts[c] - holdout)
            train_idx[num_train++] = i;
        else
            val_idx[num_val++] = i;
    }
    if (ok && (mislas_dataset_subset(&rest, subset, train_idx, num_train) != MISLAS_OK
            || mislas_dataset_subset(&val, subset, val_idx, num_val) != MISLAS_OK)) {
        cli_report_library_failure("cannot split off the held-out images");
        ok = false;
    }
    free(counts);
    free(train_idx);
    free(val_idx);
    mislas_dataset_free(subset);
    if (!ok || held_out == NULL) {
        mislas_dataset_free(val);
        val = NULL;
    }
    if (!ok) {
        mislas_dataset_free(rest);
        rest = NULL;
    }
    *train = rest;
    if (held_out != NULL)
        *held_out = val;
    return ok;
}
