/* The learning-rate schedules (schedule.h; docs/method.md, "Learning-rate
 * schedules"). */
#include <mislas/schedule.h>

#include <math.h>

double mislas_schedule_multistep(double base_lr, int32_t epoch, int32_t warmup_epochs,
        const int32_t *milestones, int32_t num_milestones, double gamma)
{
    int64_t e = (int64_t)epoch + 1;
    if (warmup_epochs > 0 && e <= warmup_epochs)
        return base_lr * (double)e / (double)warmup_epochs;
    double lr = base_lr;
    for (int32_t i = 0; milestones != NULL && i < num_milestones; i++)
        if (e > milestones[i])
            lr *= gamma;
    return lr;
}

double mislas_schedule_cosine(double base_lr, int32_t epoch, int32_t total_epochs)
{
    if (total_epochs <= 0)
        return base_lr;
    return 0.5 * base_lr * (1.0 + cos(3.14159265358979323846 * (double)epoch / (double)total_epochs));
}
