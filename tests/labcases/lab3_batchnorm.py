"""Lab 3 (batch normalization from scratch): what grading it must give."""

from labkit import LabCase, Mistake

CASE = LabCase(
    name="lab3_batchnorm",
    points=13,
    mistakes=(
        Mistake(
            "running_stats_in_training",
            "x_hat = (x - mean.reshape(shape)) / torch.sqrt(var.reshape(shape) + eps)",
            "x_hat = (x - running_mean.reshape(shape)) / torch.sqrt(running_var.reshape(shape) + eps)",
            failing=frozenset(
                {"test_batch_norm_fc", "test_batch_norm_conv", "test_batch_norm_module"}
            ),
            cell="test_batch_norm_fc",
            message="normalize with the batch's mean, not running_mean",
        ),
        Mistake(
            "unbiased_variance",
            "var = x.var(dim=dims, unbiased=False)",
            "var = x.var(dim=dims)",
            failing=frozenset(
                {"test_batch_norm_fc", "test_batch_norm_conv", "test_batch_norm_module"}
            ),
            cell="test_batch_norm_fc",
            message="biased variance (unbiased=false",
        ),
        Mistake(
            "momentum_reversed",
            "running_mean.mul_(1 - momentum).add_(momentum * mean)\n"
            "            running_var.mul_(1 - momentum).add_(momentum * var * count / (count - 1))",
            "running_mean.mul_(momentum).add_((1 - momentum) * mean)\n"
            "            running_var.mul_(momentum).add_((1 - momentum) * var * count / (count - 1))",
            failing=frozenset(
                {"test_batch_norm_fc", "test_batch_norm_conv", "test_batch_norm_module"}
            ),
            cell="test_batch_norm_fc",
            message="(1 - momentum) * running_mean + momentum * mean",
        ),
        Mistake(
            "per_pixel_statistics",
            "dims = (0,) if x.dim() == 2 else (0, 2, 3)",
            "dims = (0,)",
            failing=frozenset({"test_batch_norm_conv", "test_batch_norm_module"}),
            cell="test_batch_norm_conv",
            message="one mean and one variance per channel",
        ),
    ),
)
