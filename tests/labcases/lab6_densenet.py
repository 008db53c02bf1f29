"""Lab 6 (DenseNet): what grading it must give."""

from labkit import LabCase, Mistake

CASE = LabCase(
    name="lab6_densenet",
    points=13,
    mistakes=(
        Mistake(
            "block_adds",
            "        features = [x]\n"
            "        for layer in self.layers:\n"
            "            features.append(layer(torch.cat(features, dim=1)))",
            "        features = [x]\n"
            "        for layer in self.layers:\n"
            "            features = [features[0] + layer(torch.cat(features, dim=1))]",
            failing=frozenset({"test_dense_block_shape", "test_dense_block_function"}),
            cell="test_dense_block_shape",
            message="returns the concatenation of all of them",
        ),
        Mistake(
            "only_previous_output",
            "            dense_layer(in_channels + i * growth_rate, growth_rate, bn_size)\n"
            "            for i in range(num_layers)\n"
            "        )\n"
            "        ### END SOLUTION\n"
            "\n"
            "    def forward(self, x: torch.Tensor) -> torch.Tensor:\n"
            "        ### BEGIN SOLUTION\n"
            "        features = [x]\n"
            "        for layer in self.layers:\n"
            "            features.append(layer(torch.cat(features, dim=1)))",
            "            dense_layer(in_channels if i == 0 else growth_rate, growth_rate, bn_size)\n"
            "            for i in range(num_layers)\n"
            "        )\n"
            "        ### END SOLUTION\n"
            "\n"
            "    def forward(self, x: torch.Tensor) -> torch.Tensor:\n"
            "        ### BEGIN SOLUTION\n"
            "        features = [x]\n"
            "        for layer in self.layers:\n"
            "            features.append(layer(features[-1]))",
            failing=frozenset({"test_dense_block_shape", "test_dense_block_function"}),
            cell="test_dense_block_shape",
            message="first difference",
        ),
        Mistake(
            "transition_without_pool",
            "        nn.Conv2d(in_channels, out_channels, 1, bias=False),\n"
            "        nn.AvgPool2d(kernel_size=2, stride=2),\n",
            "        nn.Conv2d(in_channels, out_channels, 1, bias=False),\n",
            failing=frozenset({"test_transition"}),
            cell="test_transition",
            message="pooling layer is missing",
        ),
        Mistake(
            "conv_before_bn_relu",
            "        nn.BatchNorm2d(in_channels),\n"
            "        nn.ReLU(),\n"
            "        nn.Conv2d(in_channels, bottleneck, 1, bias=False),\n"
            "        nn.BatchNorm2d(bottleneck),\n"
            "        nn.ReLU(),\n"
            "        nn.Conv2d(bottleneck, growth_rate, 3, padding=1, bias=False),\n",
            "        nn.Conv2d(in_channels, bottleneck, 1, bias=False),\n"
            "        nn.BatchNorm2d(bottleneck),\n"
            "        nn.ReLU(),\n"
            "        nn.Conv2d(bottleneck, growth_rate, 3, padding=1, bias=False),\n"
            "        nn.BatchNorm2d(growth_rate),\n"
            "        nn.ReLU(),\n",
            failing=frozenset({"test_dense_layer_shape", "test_dense_layer_function"}),
            cell="test_dense_layer_shape",
            message="first difference",
        ),
    ),
)
