"""Lab 5 (ResNeXt): what grading it must give."""

from labkit import LabCase, Mistake

CASE = LabCase(
    name="lab5_resnext",
    points=19,
    mistakes=(
        Mistake(
            "groups_summed",
            "return torch.cat([conv(part) for conv, part in zip(self.convs, parts, strict=True)], dim=1)",
            "return sum(conv(part) for conv, part in zip(self.convs, parts, strict=True))",
            failing=frozenset({"test_grouped_conv_shape", "test_grouped_conv_function"}),
            cell="test_grouped_conv_shape",
            message="concatenated",
        ),
        Mistake(
            "weights_interleaved",
            "part.weight.copy_(conv.weight[j * per_group : (j + 1) * per_group])",
            "part.weight.copy_(conv.weight[j :: conv.groups])",
            failing=frozenset({"test_grouped_conv_function"}),
            cell="test_grouped_conv_function",
            message="which rows of conv.weight",
        ),
        Mistake(
            "form_b_sums_paths",
            "concatenated = torch.cat([path(x) for path in self.paths], dim=1)",
            "concatenated = sum(path(x) for path in self.paths)",
            failing=frozenset({"test_form_b", "test_form_b_from_c", "test_form_a_from_b"}),
            cell="test_form_b",
            message="expected input",
        ),
        Mistake(
            "width_without_cardinality",
            "width = int(out_channels / 4 * width_per_group / 64) * groups",
            "width = int(out_channels / 4 * width_per_group / 64)",
            failing=frozenset(
                {"test_resnext_block_shape", "test_resnext_block_function", "test_build_resnext"}
            ),
            cell="test_resnext_block_shape",
            message="could not be built: in_channels must be divisible by groups",
        ),
        Mistake(
            "stride_on_first_1x1",
            "self.conv1 = nn.Conv2d(in_channels, width, 1, bias=False)\n"
            "        self.bn1 = nn.BatchNorm2d(width)\n"
            "        self.conv2 = nn.Conv2d(width, width, 3, stride=stride, padding=1, groups=groups, "
            "bias=False)",
            "self.conv1 = nn.Conv2d(in_channels, width, 1, stride=stride, bias=False)\n"
            "        self.bn1 = nn.BatchNorm2d(width)\n"
            "        self.conv2 = nn.Conv2d(width, width, 3, padding=1, groups=groups, bias=False)",
            failing=frozenset({"test_resnext_block_function"}),
            cell="test_resnext_block_function",
            message="your layer `conv1` gets output of shape (2, 64, 3, 3)",
        ),
    ),
)
