"""Lab 7 (EfficientNet and MnasNet): what grading it must give."""

from labkit import LabCase, Mistake

CASE = LabCase(
    name="lab7_efficientnet",
    points=19,
    mistakes=(
        Mistake(
            "se_without_sigmoid",
            "gate = torch.sigmoid(self.fc2(nn.functional.silu(self.fc1(squeezed))))",
            "gate = self.fc2(nn.functional.silu(self.fc1(squeezed)))",
            failing=frozenset({"test_squeeze_excite", "test_mbconv_function"}),
            cell="test_squeeze_excite",
            message="gate strictly between 0 and 1",
        ),
        Mistake(
            "skip_always",
            "self.use_residual = stride == 1 and in_channels == out_channels",
            "self.use_residual = True",
            failing=frozenset({"test_mbconv_shape", "test_mbconv_function"}),
            cell="test_mbconv_shape",
            message="only when stride is 1 and in_channels == out_channels",
        ),
        Mistake(
            "skip_never",
            "self.use_residual = stride == 1 and in_channels == out_channels",
            "self.use_residual = False",
            failing=frozenset({"test_mbconv_function"}),
            cell="test_mbconv_function",
            message="should return its input unchanged",
        ),
        Mistake(
            "activation_after_projection",
            "            nn.BatchNorm2d(out_channels),\n        ]",
            "            nn.BatchNorm2d(out_channels),\n            nn.SiLU(),\n        ]",
            failing=frozenset({"test_mbconv_function", "test_build_efficientnet"}),
            cell="test_mbconv_function",
            message="has no activation after it",
        ),
        Mistake(
            "depth_rounded_down",
            "return math.ceil(num_layers * depth_mult)",
            "return int(num_layers * depth_mult)",
            failing=frozenset({"test_rounding", "test_compound_scaling", "test_compound_flops"}),
            cell="test_rounding",
            message="rounded up (math.ceil)",
        ),
        Mistake(
            "reward_exponent_sign",
            "return accuracy * (latency / target) ** w",
            "return accuracy * (latency / target) ** -w",
            failing=frozenset({"test_mnas_reward", "test_mnas_search"}),
            cell="test_mnas_reward",
            message="slower than the target must earn less",
        ),
        Mistake(
            "dropout_argument_ignored",
            "nn.Dropout(dropout),",
            "nn.Dropout(0.2),",
            failing=frozenset({"test_build_efficientnet"}),
            cell="test_build_efficientnet",
            message="dropout whose rate differs",
        ),
    ),
    skip=("measure_latency(",),
)
