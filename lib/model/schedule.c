/* The learning-rate schedules (schedule.h; docs/method.md, "Learning-rate
 * schedules"). */
#include <mislas/schedule.h>

#include <math.h>

double mislas_schedule_multistep(double base_lr, int32_t epoch, int32_t warmup_epochs,
        const int32_t *milestones, int32_t num_milestones, double gamma)
{
    /* a getter's answer to arguments no schedule has (docs/api.md, rule 4) */
    if (epoch < 0 || warmup_epochs < 0 || num_milestones < 0 || (num_milestones > 0 && milestones == NULL))
        return NAN;
    int64_t e = (int64_t)epoch + 1;
    if (warmup_epochs > 0 && e <= warmup_epochs)
        return base_lr * (double)e / (double)warmup_epochs;
    double lr = base_lr;
    for (int32_t i = 0; i < num_milestones; i++)
        if (e > milestones[i])
            lr *= gamma;
    return lr;
}

double mislas_schedule_cosine(double base_lr, int32_t epoch, int32_t total_epochs)
{
    if (epoch < 0 || total_epochs <= 0)
        return NAN;
    return 0.5 * base_lr * (1.0 + cos(3.14159265358979323846 * (double)epoch / (double)total_epochs));
}
