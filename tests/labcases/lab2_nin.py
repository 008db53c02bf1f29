"""Lab 2 (NiN and Inception): what grading it must give."""

from labkit import LabCase, Mistake

CASE = LabCase(
    name="lab2_nin",
    points=16,
    mistakes=(
        Mistake(
            "no_relu_between_1x1",
            "kernel_size=1),\n        nn.ReLU(),\n        nn.Conv2d(out_channels, out_channels",
            "kernel_size=1),\n        nn.Conv2d(out_channels, out_channels",
            failing=frozenset({"test_mlpconv_function", "test_build_net"}),
            cell="test_mlpconv_function",
            message="activation (relu) missing",
        ),
        Mistake(
            "paths_added",
            "return torch.cat(paths, dim=1)",
            "return paths[0] + paths[1] + paths[2] + paths[3]",
            failing=frozenset({"test_inception_shape", "test_inception_function"}),
            cell="test_inception_shape",
            message="concatenated",
        ),
        Mistake(
            "pool_path_unpadded",
            "nn.MaxPool2d(kernel_size=3, stride=1, padding=1)",
            "nn.MaxPool2d(kernel_size=3, stride=1)",
            failing=frozenset({"test_inception_shape", "test_inception_function"}),
            cell="test_inception_shape",
            message="sizes of tensors must match",
        ),
        Mistake(
            "linear_head",
            "        nn.AdaptiveAvgPool2d(1),\n        nn.Flatten(),\n    )",
            "        nn.AdaptiveAvgPool2d(1),\n        nn.Flatten(),\n"
            "        nn.Linear(num_classes, num_classes),\n    )",
            failing=frozenset({"test_nin_head", "test_build_net"}),
            cell="test_nin_head",
            message="global average pooling",
        ),
    ),
)
