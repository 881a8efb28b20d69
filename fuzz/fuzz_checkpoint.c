/* mislas_checkpoint_load on any bytes: a model (and optimiser) or a clean
 * MISLAS_ERR_FORMAT, never a crash, a leak or a huge allocation. */
#include "fuzz_input.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[64];
    int fd = fuzz_memory_file(data, size, path);
    mislas_model *model = NULL;
    mislas_optimizer *opt = NULL;
    if (mislas_checkpoint_load(path, &model, &opt) == MISLAS_OK && model == NULL)
        abort();
    mislas_optimizer_free(opt);
    mislas_model_free(model);
    int32_t stage;
    mislas_checkpoint_training(path, &stage, NULL, NULL);
    close(fd);
    return 0;
}
