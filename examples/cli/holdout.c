/* The validation split (holdout.h). */
#include "holdout.h"

#include "messages.h"

#include <inttypes.h>
#include <stdlib.h>

/* A long-tailed subset with a class of no image: the message and exit 2. */
static void refuse_empty_class(mislas_dataset *subset)
{
    const int32_t k = mislas_dataset_num_classes(subset);
    int64_t *counts = calloc((size_t)k, sizeof *counts);
    if (counts == NULL || mislas_dataset_class_counts(subset, counts) != MISLAS_OK) {
        free(counts);
        return;     /* cli_hold_out counts again, and says why it cannot */
    }
    int32_t empty = -1;
    int64_t largest = 0;
    for (int32_t c = 0; c < k; c++) {
        if (counts[c] == 0 && empty < 0)
            empty = c;
        largest = counts[c] > largest ? counts[c] : largest;
    }
    free(counts);
    if (empty < 0)
        return;
    mislas_dataset_free(subset);
    cli_usage_error("--imb-factor leaves class %d with 0 training images (the largest class has %" PRId64 "): "
            "the long-tailed subset must keep an image of every class; raise --imb-factor", (int)empty, largest);
}

void cli_report_count_mismatch(const char *checkpoint, const int64_t *recorded, const int64_t *rebuilt, int32_t k,
        const char *train_list, double imb_factor, mislas_imbalance imb_type, int32_t holdout)
{
    /* rebuilt = n - holdout and recorded = n - h in every class: h = holdout + rebuilt - recorded */
    int64_t implied = (int64_t)holdout + rebuilt[0] - recorded[0];
    for (int32_t c = 1; c < k && implied >= 0; c++)
        if ((int64_t)holdout + rebuilt[c] - recorded[c] != implied)
            implied = -1;
    if (train_list != NULL) {
        if (implied >= 0 && implied != holdout)
            cli_report_failure("%s was trained with --holdout %" PRId64 ", not %d: of --train-list %s, --holdout %"
                    PRId64 " leaves its class counts (%" PRId64 "..%" PRId64 ") and --holdout %d leaves %" PRId64
                    "..%" PRId64 "; pass stage 1's --holdout", checkpoint, implied, (int)holdout, train_list,
                    implied, recorded[0], recorded[k - 1], (int)holdout, rebuilt[0], rebuilt[k - 1]);
        else
            cli_report_failure("%s was trained on other class counts (%" PRId64 "..%" PRId64 ") than --train-list %s "
                    "--holdout %d gives (%" PRId64 "..%" PRId64 "); pass stage 1's list, --holdout and --skip-bad",
                    checkpoint, recorded[0], recorded[k - 1], train_list, (int)holdout, rebuilt[0], rebuilt[k - 1]);
        return;
    }
    const char *type = imb_type == MISLAS_IMBALANCE_EXP ? "exp" : "step";
    if (implied >= 0 && implied != holdout)
        cli_report_failure("%s was trained with --holdout %" PRId64 ", not %d: of the subset --imb-factor %g "
                "--imb-type %s give, --holdout %" PRId64 " leaves its class counts (%" PRId64 "..%" PRId64 ") and "
                "--holdout %d leaves %" PRId64 "..%" PRId64 "; pass stage 1's --holdout", checkpoint, implied,
                (int)holdout, imb_factor, type, implied, recorded[0], recorded[k - 1], (int)holdout, rebuilt[0],
                rebuilt[k - 1]);
    else
        cli_report_failure("%s was trained on other class counts (%" PRId64 "..%" PRId64 ") than --imb-factor %g "
                "--imb-type %s --holdout %d give (%" PRId64 "..%" PRId64 "); pass stage 1's values (--holdout "
                "must match stage 1's too)", checkpoint, recorded[0], recorded[k - 1], imb_factor, type,
                (int)holdout, rebuilt[0], rebuilt[k - 1]);
}

bool cli_hold_out(mislas_dataset **train, mislas_dataset **held_out, int32_t holdout)
{
    if (held_out != NULL)
        *held_out = NULL;
    mislas_dataset *subset = *train;
    refuse_empty_class(subset);
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
