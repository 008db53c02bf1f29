"""Lab 4 (ResNet): what grading it must give."""

from labkit import LabCase, Mistake

CASE = LabCase(
    name="lab4_resnet",
    points=17,
    mistakes=(
        Mistake(
            "no_skip",
            "return self.relu(out + shortcut)",
            "return self.relu(out)",
            failing=frozenset(
                {"test_block_function", "test_block_projection", "test_resnet_function"}
            ),
            cell="test_block_function",
            message="the shortcut is missing",
        ),
        Mistake(
            "relu_before_addition",
            "out = self.bn2(self.conv2(out))\n        return self.relu(out + shortcut)",
            "out = self.relu(self.bn2(self.conv2(out)))\n        return out + shortcut",
            failing=frozenset(
                {"test_block_function", "test_block_projection", "test_resnet_function"}
            ),
            cell="test_block_function",
            message="the relu after the addition is missing",
        ),
        Mistake(
            "projection_without_stride",
            "nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False)",
            "nn.Conv2d(in_channels, out_channels, 1, bias=False)",
            failing=frozenset(
                {
                    "test_block_shapes",
                    "test_block_projection",
                    "test_resnet18_count",
                    "test_resnet_function",
                }
            ),
            cell="test_block_projection",
            message="the same stride on its 1x1",
        ),
        Mistake(
            "projection_without_batch_norm",
            "self.downsample = nn.Sequential(\n"
            "                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),\n"
            "                nn.BatchNorm2d(out_channels),\n"
            "            )",
            "self.downsample = nn.Conv2d(in_channels, out_channels, 1, stride=stride)",
            failing=frozenset(
                {
                    "test_block_shapes",
                    "test_block_projection",
                    "test_resnet18_count",
                    "test_resnet_function",
                }
            ),
            cell="test_block_projection",
            message="first difference: your layer `downsample`",
        ),
        Mistake(
            "preact_in_post_activation_order",
            "out = self.conv1(self.relu(self.bn1(x)))\n"
            "        out = self.conv2(self.relu(self.bn2(out)))\n"
            "        return out + x",
            "out = self.relu(self.bn1(self.conv1(x)))\n"
            "        out = self.bn2(self.conv2(out))\n"
            "        return self.relu(out + x)",
            failing=frozenset({"test_preact_function"}),
            cell="test_preact_function",
            message="nothing may follow the addition",
        ),
    ),
    skip=("lesion_study(model",),
)
