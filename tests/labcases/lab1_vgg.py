"""Lab 1 (VGG): what grading it must give."""

from labkit import LabCase, Mistake

CASE = LabCase(
    name="lab1_vgg",
    points=11,
    mistakes=(
        Mistake(
            "no_relu",
            "        layers.append(nn.ReLU())\n    layers.append(nn.MaxPool2d",
            "    layers.append(nn.MaxPool2d",
            failing=frozenset({"test_vgg_block_function"}),
            cell="test_vgg_block_function",
            message="activation (relu) missing",
        ),
        Mistake(
            "pool_stride_1",
            "nn.MaxPool2d(kernel_size=2, stride=2)",
            "nn.MaxPool2d(kernel_size=2, stride=1)",
            failing=frozenset({"test_vgg_block_shape", "test_vgg_block_function"}),
            cell="test_vgg_block_shape",
            message="pooling layer is missing",
        ),
        Mistake(
            "no_padding",
            "kernel_size=3, padding=1)",
            "kernel_size=3)",
            failing=frozenset({"test_vgg_block_shape", "test_vgg_block_function"}),
            cell="test_vgg_block_shape",
            message="padding=1 for 3x3",
        ),
        Mistake(
            "dropout_rate",
            "nn.Dropout(0.5),\n        nn.Linear(hidden_features, num_classes)",
            "nn.Dropout(0.2),\n        nn.Linear(hidden_features, num_classes)",
            failing=frozenset({"test_build_vgg"}),
            cell="test_build_vgg",
            message="dropout whose rate differs",
        ),
    ),
)
