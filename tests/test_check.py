"""The answer checkers: right answers pass, wrong ones fail with a message that says what differs.

Each "student" below is a realistic answer written from torch.nn layers, right or with one of the
mistakes students make; the references are convlab's. The last sections try to cheat: patched
comparison functions, look-alike outputs, aliases, subclasses and wrappers of the reference.
"""

from __future__ import annotations

import builtins
import contextlib
import copy
import importlib
import math
import sys
import types
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode

import convlab
import convlab.check
from convlab.check import (
    FLOAT32_RTOL,
    FLOAT64_RTOL,
    TF32_RTOL_MAX,
    TF32_RTOL_MIN,
    CheckError,
    check_gradients,
    check_output_shape,
    check_own_implementation,
    check_parameter_count,
    check_same_function,
    count_parameters,
    register_reference,
    transfer_weights,
)

# Private: whether TF32 applies, and the tolerance it gets, decide on a CUDA device only, which a
# CPU-only test run cannot reach through the public checks.
from convlab.check._compare import _tf32_enabled, _tf32_tolerance
from convlab.layers import BatchNorm, ConvBNAct, batch_norm
from convlab.models.densenet import DenseBlock, Transition
from convlab.models.efficientnet import MBConv
from convlab.models.googlenet import Inception
from convlab.models.nin import nin_block
from convlab.models.resnet import BasicBlock, Bottleneck, resnet18
from convlab.models.resnet_cifar import PreActBlock
from convlab.models.vgg import vgg_block


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> object:
    """Tensors here are tiny: a second thread only adds synchronization (30x slower when busy)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# ----------------------------------------------------------------------------------------------
# Students' answers, written here from torch.nn layers.


class OwnBasicBlock(nn.Module):
    """A residual block as a student writes it; ``mistake`` plants one error."""

    def __init__(
        self, in_channels: int, out_channels: int, stride: int = 1, mistake: str = ""
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )
        self.mistake = mistake

    def forward(self, x: Tensor) -> Tensor:
        if self.mistake == "relu_before_bn":
            out = self.bn1(F.relu(self.conv1(x)))
        else:
            out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.mistake != "no_skip":
            out = out + self.shortcut(x)
        return F.relu(out)


def reference_block(in_channels: int, out_channels: int, stride: int = 1) -> BasicBlock:
    downsample = None
    if stride != 1 or in_channels != out_channels:
        downsample = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
            nn.BatchNorm2d(out_channels),
        )
    return BasicBlock(in_channels, out_channels, stride, downsample)


def own_vgg_block(
    num_convs: int, in_channels: int, out_channels: int, padding: int = 1
) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(num_convs):
        channels = in_channels if i == 0 else out_channels
        layers += [nn.Conv2d(channels, out_channels, 3, padding=padding), nn.ReLU()]
    return nn.Sequential(*layers, nn.MaxPool2d(2))


class OwnBatchNorm2d(nn.Module):
    """Batch norm from scratch; ``mistake`` plants one error."""

    def __init__(self, num_features: int, mistake: str = "") -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))
        self.mistake = mistake

    def forward(self, x: Tensor) -> Tensor:
        if self.training and self.mistake != "running_stats_in_training":
            mean = x.mean(dim=(0, 2, 3))
            var = x.var(dim=(0, 2, 3), unbiased=False)
            n = x.numel() // x.shape[1]
            unbiased = var if self.mistake == "biased_running_var" else var * n / (n - 1)
            with torch.no_grad():
                self.running_mean.lerp_(mean, 0.1)
                self.running_var.lerp_(unbiased, 0.1)
            if self.mistake == "constant_statistics":
                mean, var = mean.detach(), var.detach()
        else:
            mean, var = self.running_mean, self.running_var
        x_hat = (x - mean[None, :, None, None]) / torch.sqrt(var[None, :, None, None] + 1e-5)
        return x_hat * self.weight[None, :, None, None] + self.bias[None, :, None, None]


class OwnDenseBlock(nn.Module):
    """A dense block; with ``add=True`` the student adds features instead of concatenating."""

    def __init__(self, num_layers: int, in_channels: int, growth_rate: int, add: bool = False):
        super().__init__()
        self.add = add
        self.layers = nn.ModuleList()
        for i in range(num_layers):
            channels = in_channels if add else in_channels + i * growth_rate
            self.layers.append(
                nn.Sequential(
                    nn.BatchNorm2d(channels),
                    nn.ReLU(),
                    nn.Conv2d(channels, 4 * growth_rate, 1, bias=False),
                    nn.BatchNorm2d(4 * growth_rate),
                    nn.ReLU(),
                    nn.Conv2d(4 * growth_rate, growth_rate, 3, padding=1, bias=False),
                )
            )

    def forward(self, x: Tensor) -> Tensor:
        for layer in self.layers:
            x = x + layer(x) if self.add else torch.cat([x, layer(x)], dim=1)
        return x


class OwnBottleneck(nn.Module):
    """A ResNeXt bottleneck: 1x1, grouped 3x3, 1x1, identity shortcut."""

    def __init__(self, channels: int, width: int, groups: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1, groups=groups, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(channels)

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        return F.relu(self.bn3(self.conv3(out)) + x)


class OwnResNet18(nn.Module):
    """ResNet-18 for 32x32 images (3x3 stem, no max pool), from the student's own blocks."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        blocks, channels = [], 64
        for out_channels, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            blocks += [OwnBasicBlock(channels, out_channels, stride)]
            blocks += [OwnBasicBlock(out_channels, out_channels)]
            channels = out_channels
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(512, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.blocks(F.relu(self.bn1(self.conv1(x))))
        return self.fc(x.mean(dim=(2, 3)))


def own_batch_norm(
    x: Tensor,
    running_mean: Tensor,
    running_var: Tensor,
    weight: Tensor,
    bias: Tensor,
    training: bool,
    biased_update: bool = False,
) -> Tensor:
    """The functional form, updating the running statistics in place."""
    if training:
        mean, var = x.mean(dim=(0, 2, 3)), x.var(dim=(0, 2, 3), unbiased=False)
        n = x.numel() // x.shape[1]
        with torch.no_grad():
            running_mean.mul_(0.9).add_(0.1 * mean)
            running_var.mul_(0.9).add_(0.1 * (var if biased_update else var * n / (n - 1)))
    else:
        mean, var = running_mean, running_var
    shape = (1, -1, 1, 1)
    x_hat = (x - mean.view(shape)) / torch.sqrt(var.view(shape) + 1e-5)
    return x_hat * weight.view(shape) + bias.view(shape)


def message(error: pytest.ExceptionInfo[CheckError]) -> str:
    return str(error.value)


# ----------------------------------------------------------------------------------------------
# Right answers pass every check.


def test_an_own_residual_block_passes_every_check() -> None:
    student, reference = OwnBasicBlock(8, 16, stride=2), reference_block(8, 16, stride=2)
    check_own_implementation(student, inputs=(2, 8, 8, 8))
    check_output_shape(student, (2, 8, 8, 8), (2, 16, 4, 4))
    check_parameter_count(student, reference, "BasicBlock(8, 16, stride=2)")
    check_parameter_count(student, 3_680)
    check_same_function(student, reference, (2, 8, 8, 8))
    check_same_function(student, reference, (2, 8, 8, 8), train=True)
    check_gradients(student, reference, (2, 8, 8, 8))


def test_an_own_vgg_block_passes_every_check() -> None:
    student, reference = own_vgg_block(2, 3, 8), vgg_block(2, 3, 8)
    check_own_implementation(own_vgg_block, probe=lambda: own_vgg_block(2, 3, 8))
    check_output_shape(student, (2, 3, 16, 16), (2, 8, 8, 8))
    check_parameter_count(student, reference)
    check_same_function(student, reference, (2, 3, 16, 16))
    check_gradients(student, reference, (2, 3, 16, 16))


@pytest.mark.parametrize(
    ("student", "reference", "shape"),
    [
        (OwnBatchNorm2d(4), nn.BatchNorm2d(4), (8, 4, 3, 3)),
        (OwnBatchNorm2d(4), BatchNorm(4), (8, 4, 3, 3)),
        (OwnDenseBlock(3, 4, 2), DenseBlock(3, 4, 2), (2, 4, 6, 6)),
        (
            OwnBottleneck(32, 8, groups=4),
            Bottleneck(32, 32, groups=4, width_per_group=16),
            (2, 32, 5, 5),
        ),
    ],
    ids=["batchnorm-vs-torch", "batchnorm-vs-convlab", "denseblock", "resnext-bottleneck"],
)
def test_own_implementations_match_their_references(
    student: nn.Module, reference: nn.Module, shape: tuple[int, ...]
) -> None:
    check_parameter_count(student, reference)
    for train in (False, True):
        check_same_function(student, reference, shape, train=train)
    check_gradients(student, reference, shape)


@pytest.mark.parametrize(
    ("make", "shape"),
    [
        (lambda: reference_block(4, 8, stride=2), (2, 4, 6, 6)),
        (lambda: Bottleneck(16, 16, groups=4, width_per_group=16), (2, 16, 4, 4)),
        (lambda: PreActBlock(4, 4), (2, 4, 5, 5)),
        (lambda: DenseBlock(2, 4, 3), (2, 4, 4, 4)),
        (lambda: Transition(6, 3), (2, 6, 4, 4)),
        (lambda: Inception(6, 2, 2, 3, 1, 2, 2), (2, 6, 5, 5)),
        (lambda: MBConv(8, 8, expand_ratio=2), (2, 8, 5, 5)),
        (lambda: ConvBNAct(3, 4), (2, 3, 5, 5)),
        (lambda: vgg_block(2, 3, 4, batch_norm=True), (2, 3, 6, 6)),
        (lambda: nin_block(3, 4, 3, padding=1), (2, 3, 5, 5)),
        (lambda: BatchNorm(3), (4, 3, 2, 2)),
    ],
    ids=[
        "basic",
        "resnext",
        "preact",
        "dense",
        "transition",
        "inception",
        "mbconv",
        "convbnact",
        "vgg-bn",
        "nin",
        "batchnorm",
    ],
)
def test_every_reference_passes_against_itself(make: object, shape: tuple[int, ...]) -> None:
    student, reference = make(), make()  # type: ignore[operator]
    for train in (False, True):
        check_same_function(student, reference, shape, train=train)
    check_gradients(student, reference, shape)


def test_a_whole_resnet18_passes_in_both_modes() -> None:
    """Twenty layers deep, float32 on the CPU stays well inside FLOAT32_RTOL."""
    student, reference = OwnResNet18(), resnet18(small_input=True, num_classes=10)
    check_parameter_count(student, 11_173_962)
    check_parameter_count(student, reference, "resnet18(small_input=True, num_classes=10)")
    check_same_function(student, reference, (2, 3, 16, 16))
    check_same_function(student, reference, (2, 3, 16, 16), train=True)


def test_a_function_answer_is_checked_with_its_in_place_updates() -> None:
    inputs = [(8, 4, 3, 3), torch.zeros(4), torch.ones(4), (4,), (4,), True]
    check_same_function(own_batch_norm, batch_norm, inputs)
    check_gradients(own_batch_norm, batch_norm, inputs)
    check_same_function(own_batch_norm, batch_norm, [*inputs[:5], False])
    wrong = lambda *args: own_batch_norm(*args, biased_update=True)  # noqa: E731
    with pytest.raises(CheckError) as error:
        check_same_function(wrong, batch_norm, inputs)
    assert "After the call, argument 3" in message(error)
    assert "updated in place" in message(error)


def test_checks_leave_the_callers_modules_untouched() -> None:
    student, reference = OwnBasicBlock(4, 4), reference_block(4, 4)
    before = [p.clone() for p in student.parameters()], copy.deepcopy(reference.state_dict())
    student.train()
    check_same_function(student, reference, (2, 4, 4, 4), train=True)
    check_gradients(student, reference, (2, 4, 4, 4))
    assert all(torch.equal(a, b) for a, b in zip(before[0], student.parameters(), strict=True))
    assert all(torch.equal(before[1][k], v) for k, v in reference.state_dict().items())
    assert student.training and all(p.grad is None for p in student.parameters())


# ----------------------------------------------------------------------------------------------
# Wrong answers fail, saying what differs.


def test_missing_skip_connection_is_located_after_the_last_layer() -> None:
    with pytest.raises(CheckError) as error:
        check_same_function(
            OwnBasicBlock(4, 4, mistake="no_skip"), reference_block(4, 4), (2, 4, 5, 5)
        )
    text = message(error)
    assert "differs from the reference" in text
    assert "largest difference" in text and "relative error" in text
    assert "elements out of tolerance" in text
    assert "up to your last one, your layer `bn2`" in text
    assert "skip connection" in text


def test_relu_in_the_wrong_place_is_located_between_two_layers() -> None:
    student = OwnBasicBlock(4, 4, mistake="relu_before_bn")
    with pytest.raises(CheckError) as error:
        check_same_function(student, reference_block(4, 4), (2, 4, 5, 5))
    assert "between your layer `conv1` and your layer `bn1`" in message(error)
    assert "activation (ReLU)" in message(error)


def test_batch_norm_using_running_statistics_while_training() -> None:
    student = nn.Sequential(nn.Conv2d(3, 4, 3), OwnBatchNorm2d(4, "running_stats_in_training"))
    reference = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    check_same_function(student, reference, (4, 3, 5, 5))  # evaluation mode is right
    with pytest.raises(CheckError) as error:
        check_same_function(student, reference, (4, 3, 5, 5), train=True)
    text = message(error)
    assert "training mode" in text
    assert "your layer `1`" in text and "BatchNorm2d" in text
    assert "receives the same input but computes a different output" in text
    assert "current batch's mean" in text


def test_running_variance_updated_with_the_biased_estimate() -> None:
    with pytest.raises(CheckError) as error:
        check_same_function(
            OwnBatchNorm2d(4, "biased_running_var"), nn.BatchNorm2d(4), (4, 4, 3, 3), train=True
        )
    text = message(error)
    assert "your buffer `running_var`" in text and "`running_var`" in text
    assert "unbiased variance" in text


def test_wrong_padding_gives_a_shape_message_with_every_layer() -> None:
    with pytest.raises(CheckError) as error:
        check_output_shape(own_vgg_block(2, 3, 8, padding=0), (2, 3, 16, 16), (2, 8, 8, 8))
    text = message(error)
    assert "has shape (2, 8, 6, 6); expected (2, 8, 8, 8)" in text
    assert "Dimension 2 (height) is 6 instead of 8" in text
    assert "padding=1 for 3x3" in text
    assert "0 (Conv2d) -> (2, 8, 14, 14)" in text
    assert "2 (Conv2d) -> (2, 8, 12, 12)" in text


def test_dense_block_that_adds_instead_of_concatenating() -> None:
    student, reference = OwnDenseBlock(3, 4, 4, add=True), DenseBlock(3, 4, 4)
    with pytest.raises(CheckError) as error:
        check_output_shape(student, (2, 4, 6, 6), (2, 16, 6, 6))
    assert "Dimension 1 (channels) is 4 instead of 16" in message(error)
    assert "torch.cat(..., dim=1)" in message(error)
    with pytest.raises(CheckError) as error:
        check_same_function(student, reference, (2, 4, 6, 6))
    text = message(error)
    assert "`layers.1.0.weight` (4,)" in text
    assert "`denselayer2.norm1.weight` (8,)" in text


def test_wrong_parameter_count_shows_the_layers() -> None:
    student = OwnBottleneck(32, 8, groups=1)  # forgot the groups of ResNeXt
    reference = Bottleneck(32, 32, groups=4, width_per_group=16)
    with pytest.raises(CheckError) as error:
        check_parameter_count(student, reference, "Bottleneck(groups=4)")
    text = message(error)
    assert "Your module has 1,184 parameters; Bottleneck(groups=4) has 752 (+432)" in text
    assert "conv2 (Conv2d): weight (8, 8, 3, 3) = 576" in text
    assert "your layer `conv2` has 576, the reference's layer `conv2` has 144" in text
    assert "groups" in text
    with pytest.raises(CheckError) as error:
        check_same_function(student, reference, (2, 32, 4, 4))
    assert (
        "Yours is `conv2.weight` (8, 8, 3, 3), the reference's is `conv2.weight` (8, 2, 3, 3)"
        in message(error)
    )


def test_biases_before_batch_norm_are_pointed_out() -> None:
    student = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    with pytest.raises(CheckError) as error:
        check_parameter_count(student, 116, "ConvBNAct(3, 4)")
    assert "+4" in message(error) and "bias=False" in message(error)


@pytest.mark.filterwarnings("ignore:Lazy modules")
def test_lazy_layers_are_explained() -> None:
    student = nn.Sequential(nn.LazyConv2d(8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
    for run in (
        lambda: check_parameter_count(student, vgg_block(1, 3, 8)),
        lambda: check_same_function(student, vgg_block(1, 3, 8), (2, 3, 8, 8)),
    ):
        with pytest.raises(CheckError, match="Your layer `0` \\(LazyConv2d\\) is a lazy layer"):
            run()


def test_errors_raised_by_the_students_code_are_reported() -> None:
    class Broken(nn.Module):
        def forward(self, x: Tensor) -> Tensor:
            return x @ x

    with pytest.raises(CheckError) as error:
        check_same_function(Broken(), nn.Identity(), (2, 3, 4, 5))
    assert (
        "Calling your module on input (2, 3, 4, 5) in evaluation mode raised RuntimeError"
        in message(error)
    )


# ----------------------------------------------------------------------------------------------
# Weights.


def test_transfer_weights_by_order_and_by_name() -> None:
    student, reference = OwnBasicBlock(4, 8, 2), reference_block(4, 8, 2)
    pairs = transfer_weights(reference, student)
    assert pairs[0] == ("conv1.weight", "conv1.weight")
    assert ("shortcut.0.weight", "downsample.0.weight") in pairs
    assert ("bn1.running_var", "bn1.running_var") in pairs
    for mine, theirs in zip(
        student.state_dict().values(), reference.state_dict().values(), strict=True
    ):
        assert torch.equal(mine, theirs)
    twin = reference_block(4, 8, 2)
    assert len(transfer_weights(reference, twin, match="name")) == len(reference.state_dict())
    with pytest.raises(CheckError) as error:
        transfer_weights(reference, student, match="name")
    assert "downsample.0.weight" in message(error) and "shortcut.0.weight" in message(error)


def test_transfer_weights_explains_a_count_mismatch() -> None:
    student = nn.Sequential(nn.Conv2d(8, 8, 3, bias=False), nn.BatchNorm2d(8))
    with pytest.raises(CheckError) as error:
        transfer_weights(reference_block(8, 8), student)
    text = message(error)
    assert "your module has 3 parameters, the reference has 6" in text
    assert "the reference's `conv2.weight` (8, 8, 3, 3)" in text


# ----------------------------------------------------------------------------------------------
# Tolerances.


def _precision_settings() -> dict[str, object]:
    """Every float32-precision setting PyTorch reports (or the error that reading one raises)."""
    backends = torch.backends
    readers = {
        "fp32_precision": lambda: backends.fp32_precision,
        "cudnn.fp32_precision": lambda: backends.cudnn.fp32_precision,
        "cudnn.conv.fp32_precision": lambda: backends.cudnn.conv.fp32_precision,
        "cudnn.rnn.fp32_precision": lambda: backends.cudnn.rnn.fp32_precision,
        "cuda.matmul.fp32_precision": lambda: backends.cuda.matmul.fp32_precision,
        "cudnn.allow_tf32": lambda: backends.cudnn.allow_tf32,
        "cuda.matmul.allow_tf32": lambda: backends.cuda.matmul.allow_tf32,
        "float32_matmul_precision": torch.get_float32_matmul_precision,
    }
    settings: dict[str, object] = {}
    for name, read in readers.items():
        try:
            settings[name] = read()
        except Exception as error:  # mixed legacy and new settings cannot be read back
            settings[name] = type(error).__name__
    return settings


@contextlib.contextmanager
def _tf32_off() -> Iterator[None]:
    """Every TF32 setting off, which PyTorch's defaults are not (cuDNN convolutions may use
    TF32); the settings as they were afterwards."""
    conv = getattr(torch.backends.cudnn, "conv", None)
    if not hasattr(conv, "fp32_precision"):
        pytest.skip("torch before 2.9 has no fp32_precision settings")
    matmul = torch.backends.cuda.matmul
    saved = conv.fp32_precision, matmul.fp32_precision, torch.get_float32_matmul_precision()
    try:
        torch.set_float32_matmul_precision("highest")
        conv.fp32_precision = matmul.fp32_precision = "ieee"
        yield
    finally:  # in this order: the matmul precision also sets matmul.fp32_precision
        torch.set_float32_matmul_precision(saved[2])
        conv.fp32_precision, matmul.fp32_precision = saved[:2]


# One setting each, the new API and the legacy flags, turned from off to TF32.
TF32_SWITCHES = {
    "cudnn.conv.fp32_precision": lambda: setattr(
        torch.backends.cudnn.conv, "fp32_precision", "tf32"
    ),
    "cuda.matmul.fp32_precision": lambda: setattr(
        torch.backends.cuda.matmul, "fp32_precision", "tf32"
    ),
    "cudnn.allow_tf32": lambda: setattr(torch.backends.cudnn, "allow_tf32", True),
    "cuda.matmul.allow_tf32": lambda: setattr(torch.backends.cuda.matmul, "allow_tf32", True),
    "float32_matmul_precision high": lambda: torch.set_float32_matmul_precision("high"),
    "float32_matmul_precision medium": lambda: torch.set_float32_matmul_precision("medium"),
}


@pytest.mark.parametrize("switch", list(TF32_SWITCHES))
def test_each_tf32_setting_is_seen_on_cuda_devices_only(switch: str) -> None:
    before = _precision_settings()
    with _tf32_off():
        assert not _tf32_enabled(torch.device("cuda")), "TF32 seen with every setting off"
        TF32_SWITCHES[switch]()
        assert _tf32_enabled(torch.device("cuda")), f"{switch} turned TF32 on, unseen"
        assert not _tf32_enabled(torch.device("cpu"))
    assert _precision_settings() == before, "the test left PyTorch's settings changed"


def test_the_tf32_tolerance_is_four_times_the_references_own_error_within_bounds() -> None:
    exact = torch.full((3, 4), 2.0, dtype=torch.float64)  # |b| = 2 and rms(b) = 2
    for error, rtol in [(0.02, 0.02), (0.001, TF32_RTOL_MIN), (1.0, TF32_RTOL_MAX)]:
        rounded = (exact + error).float()  # relative error e / (|b| + rms) = e / 4
        assert _tf32_tolerance([rounded, None], [exact, None]) == pytest.approx(rtol, rel=1e-5)
    # the largest error of several outputs counts
    outputs = [(exact + 0.004).float(), (exact + 0.03).float()]
    assert _tf32_tolerance(outputs, [exact, exact]) == pytest.approx(0.03, rel=1e-5)


def _tf32(t: Tensor) -> Tensor:
    """Round float32 to TF32 (10 mantissa bits, round to nearest even), as Ampere+ GPUs do."""
    bits = t.contiguous().view(torch.int32)
    bits = (bits + 0xFFF + ((bits >> 13) & 1)) & ~0x1FFF
    return bits.view(torch.float32)


class TF32Conv2d(nn.Conv2d):
    def forward(self, x: Tensor) -> Tensor:
        return self._conv_forward(_tf32(x), _tf32(self.weight), self.bias)


def test_tf32_rounding_needs_and_gets_the_tf32_tolerance() -> None:
    """A TF32-rounded answer fails the float32 tolerance and passes the TF32 one."""
    student = nn.Sequential(
        TF32Conv2d(16, 16, 3, padding=1), nn.ReLU(), TF32Conv2d(16, 16, 3, padding=1)
    )
    reference = nn.Sequential(
        nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1)
    )
    with pytest.raises(CheckError) as error:
        check_same_function(student, reference, (2, 16, 6, 6))
    assert f"<= {FLOAT32_RTOL:g} * (|reference|" in message(error)
    reference64 = copy.deepcopy(reference).double()
    x = torch.randn(2, 16, 6, 6, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        theirs, exact = [reference(x)], [reference64(x.double())]
    rtol = _tf32_tolerance(theirs, exact)
    assert rtol == TF32_RTOL_MIN  # the reference itself runs in float32 here: the floor applies
    check_same_function(student, reference, (2, 16, 6, 6), rtol=rtol)


class TenPercentOff(nn.Sequential):
    """A network whose output is 10% too large: beyond every tolerance, TF32 or not."""

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(x) * 1.1


def test_where_tf32_applies_the_check_measures_the_references_own_error(monkeypatch) -> None:
    """The TF32 branch of check_same_function, on the CPU: the check is told that TF32 applies to
    its device (on CUDA the settings tested above say so), and the tamper guard's record of the
    checkers' own names is told the same, or it would refuse to grade."""
    function = importlib.import_module("convlab.check.function")
    guard = importlib.import_module("convlab.check._guard")
    tf32_here = lambda device: True  # noqa: E731
    monkeypatch.setattr(function, "_tf32_enabled", tf32_here)
    monkeypatch.setitem(guard._OWN_NAMES["convlab.check.function"], "_tf32_enabled", tf32_here)
    student = nn.Sequential(
        TF32Conv2d(16, 16, 3, padding=1), nn.ReLU(), TF32Conv2d(16, 16, 3, padding=1)
    )
    reference = nn.Sequential(
        nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1)
    )
    check_same_function(student, reference, (2, 16, 6, 6))  # float32's tolerance refuses it
    wrong = TenPercentOff(*(copy.deepcopy(layer) for layer in reference))
    with pytest.raises(CheckError) as error:
        check_same_function(wrong, reference, (2, 16, 6, 6))
    # the reference's own error (float32 against float64) is far below TF32's: the floor applies
    assert f"<= {TF32_RTOL_MIN:g} * (|reference|" in message(error)
    assert "float32 on cpu with TF32, 4x the reference's own TF32 error)" in message(error)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="TF32 applies on CUDA devices only")
def test_on_cuda_the_tolerance_follows_the_tf32_setting() -> None:
    def net(cls: type[nn.Sequential]) -> nn.Sequential:
        layers = nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1)
        return cls(*layers).cuda()

    reference, wrong = net(nn.Sequential), net(TenPercentOff)
    texts = {}
    with _tf32_off():
        for state in ("off", "on"):
            if state == "on":
                TF32_SWITCHES["cudnn.conv.fp32_precision"]()
            with pytest.raises(CheckError) as error:
                check_same_function(wrong, reference, (2, 16, 6, 6))
            texts[state] = message(error)
    assert f"<= {FLOAT32_RTOL:g} * (|reference|" in texts["off"] and "TF32" not in texts["off"]
    assert "with TF32, 4x the reference's own TF32 error)" in texts["on"]
    assert f"<= {FLOAT32_RTOL:g} * (|reference|" not in texts["on"]


def test_gradient_checks_run_in_float64_on_the_cpu() -> None:
    seen: list[tuple[torch.dtype, ...]] = []

    class Recording(OwnBasicBlock):
        def forward(self, x: Tensor) -> Tensor:
            seen.append((x.dtype, self.conv1.weight.dtype, self.bn1.running_mean.dtype))
            return super().forward(x)

    check_gradients(Recording(4, 4), reference_block(4, 4), (2, 4, 4, 4))
    assert seen == [(torch.float64,) * 3]


class SlightlyOff(OwnBasicBlock):
    """A residual block whose output is 1e-5 too large, relative: below float32's tolerance."""

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(x) * (1 + 1e-5)


def test_gradient_checks_see_what_float32_could_not() -> None:
    check_gradients(SlightlyOff(4, 4), reference_block(4, 4), (2, 4, 4, 4), rtol=FLOAT32_RTOL)
    with pytest.raises(CheckError) as error:  # float64's tolerance, the default
        check_gradients(SlightlyOff(4, 4), reference_block(4, 4), (2, 4, 4, 4))
    assert f"<= {FLOAT64_RTOL:g} * (|reference|" in message(error)
    check_gradients(OwnBasicBlock(4, 4), reference_block(4, 4), (2, 4, 4, 4))  # exact: passes


def test_gradient_check_finds_statistics_treated_as_constants() -> None:
    student = OwnBatchNorm2d(4, "constant_statistics")
    check_same_function(student, nn.BatchNorm2d(4), (4, 4, 3, 3), train=True)  # same outputs
    with pytest.raises(CheckError) as error:
        check_gradients(student, nn.BatchNorm2d(4), (4, 4, 3, 3))
    text = message(error)
    assert "The gradient of input 1 (float64, training mode" in text
    assert "backward pass differs" in text


def test_gradient_check_names_a_parameter_without_gradient() -> None:
    class Frozen(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.weight = nn.Parameter(torch.ones(3, 2))

        def forward(self, x: Tensor) -> Tensor:
            return x @ self.weight.detach().t()

    with pytest.raises(CheckError) as error:
        check_gradients(Frozen(), nn.Linear(2, 3, bias=False), (4, 2))
    assert "gradient of your parameter `weight` (the reference's `weight`)" in message(error)
    assert "is missing in yours" in message(error)


# ----------------------------------------------------------------------------------------------
# Attempts to cheat.


def test_patched_comparisons_neither_rescue_a_wrong_answer_nor_fail_a_right_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(torch, "allclose", lambda *args, **kwargs: True)
    monkeypatch.setattr(torch, "equal", lambda *args, **kwargs: True)
    monkeypatch.setattr(torch.Tensor, "__eq__", lambda self, other: torch.tensor(True))
    monkeypatch.setattr(torch.testing, "assert_close", lambda *args, **kwargs: None)
    monkeypatch.setattr(builtins, "abs", lambda value: 0.0)
    monkeypatch.setattr(math, "isclose", lambda *args, **kwargs: True)
    with pytest.raises(CheckError) as error:
        check_same_function(
            OwnBasicBlock(4, 4, mistake="no_skip"), reference_block(4, 4), (2, 4, 5, 5)
        )
    assert "differs from the reference" in message(error)
    with pytest.raises(CheckError):
        check_gradients(OwnBatchNorm2d(4, "constant_statistics"), nn.BatchNorm2d(4), (4, 4, 3, 3))
    check_same_function(OwnBasicBlock(4, 4), reference_block(4, 4), (2, 4, 5, 5))


def test_patching_what_the_reference_computes_with_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_skip(self: BasicBlock, x: Tensor) -> Tensor:
        return self.relu(self.residual(x))

    monkeypatch.setattr(BasicBlock, "forward", no_skip)
    with pytest.raises(CheckError) as error:
        check_same_function(
            OwnBasicBlock(4, 4, mistake="no_skip"), reference_block(4, 4), (2, 4, 5, 5)
        )
    assert "The checks cannot run" in message(error)
    assert "convlab.models.resnet.BasicBlock.forward was replaced" in message(error)
    monkeypatch.undo()
    monkeypatch.setattr(torch, "cat", lambda tensors, dim=0: sum(tensors))
    with pytest.raises(CheckError) as error:
        check_same_function(OwnDenseBlock(2, 4, 4, add=True), DenseBlock(2, 4, 4), (2, 4, 4, 4))
    assert "torch.cat was replaced" in message(error)


@pytest.mark.parametrize(
    ("module", "name"),
    [
        ("convlab.check.function", "_compare"),  # where check_same_function compares
        ("convlab.check._compare", "_compare"),  # where the comparison is defined
        ("convlab.check._guard", "_tampered_names"),  # the guard itself
        ("convlab.check.own_work", "_origin"),  # what counts as reference code
        ("convlab.check", "check_same_function"),  # the package's public names
    ],
)
def test_patching_any_module_of_the_checkers_is_refused(
    monkeypatch: pytest.MonkeyPatch, module: str, name: str
) -> None:
    monkeypatch.setattr(sys.modules[module], name, lambda *args, **kwargs: [])
    with pytest.raises(CheckError) as error:
        check_same_function(
            OwnBasicBlock(4, 4, mistake="no_skip"), reference_block(4, 4), (2, 4, 5, 5)
        )
    assert "The checks cannot run" in message(error)
    assert f"{module}.{name} was replaced" in message(error)


def test_rebinding_by_the_librarys_own_code_is_not_tampering(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """torch.compile rewraps nn.Module.__init__; importlib.reload rebinds equal tables."""
    import convlab.models.vgg as vgg

    monkeypatch.setattr(nn.ReLU, "extra_repr", nn.Module.extra_repr)  # torch's own code
    monkeypatch.setattr(vgg, "VGG16", tuple(list(vgg.VGG16)))  # equal, as after a reload
    check_output_shape(OwnBasicBlock(4, 4), (2, 4, 5, 5), (2, 4, 5, 5))
    monkeypatch.setattr(vgg, "VGG16", ((2, 64), (2, 128)))
    monkeypatch.setattr(nn.ReLU, "extra_repr", lambda self: "")
    with pytest.raises(CheckError) as error:
        check_output_shape(OwnBasicBlock(4, 4), (2, 4, 5, 5), (2, 4, 5, 5))
    assert "convlab.models.vgg.VGG16 was replaced" in message(error)
    assert "torch.nn.modules.activation.ReLU.extra_repr was replaced" in message(error)


class AlwaysEqual:
    def __eq__(self, other: object) -> bool:
        return True

    def __hash__(self) -> int:
        return 0


class Sneaky(Tensor):
    def __eq__(self, other: object) -> bool:  # type: ignore[override]
        return True

    __hash__ = Tensor.__hash__


class LooksLikeATensor:
    shape = (2, 4, 5, 5)

    @classmethod
    def __torch_function__(
        cls, func: object, types: object, args: tuple = (), kwargs: object = None
    ) -> object:
        return torch.tensor(True)


@pytest.mark.parametrize(
    ("result", "said"),
    [
        (lambda x: AlwaysEqual(), "AlwaysEqual, not a torch.Tensor"),
        (lambda x: x.as_subclass(Sneaky), "a subclass of torch.Tensor"),
        (lambda x: LooksLikeATensor(), "LooksLikeATensor, not a torch.Tensor"),
        (lambda x: (x.as_subclass(Sneaky),), "output[0] is a test_check.Sneaky"),
        (lambda x: x.to(torch.int64), "dtype torch.int64"),
    ],
    ids=["always-equal", "tensor-subclass", "torch-function", "in-a-tuple", "integer"],
)
def test_look_alike_outputs_are_refused(result: object, said: str) -> None:
    class Cheat(nn.Module):
        def forward(self, x: Tensor) -> object:
            return result(x)  # type: ignore[operator]

    with pytest.raises(CheckError) as error:
        check_same_function(Cheat(), nn.Identity(), (2, 4, 5, 5))
    assert said in message(error)
    with pytest.raises(CheckError) as error:
        check_output_shape(Cheat(), (2, 4, 5, 5), (2, 4, 5, 5))
    assert "not a torch.Tensor" in message(error) or said in message(error)


def test_calling_the_reference_given_to_the_checker_is_caught() -> None:
    class FindsTheReference(OwnBasicBlock):
        def forward(self, x: Tensor) -> Tensor:
            frame = sys._getframe()
            while frame is not None:
                for value in frame.f_locals.values():
                    if isinstance(value, BasicBlock):
                        return value(x)
                frame = frame.f_back
            raise AssertionError("no reference found")

    with pytest.raises(CheckError) as error:
        check_same_function(FindsTheReference(4, 4), BasicBlock(4, 4), (2, 4, 5, 5))
    assert "the reference module passed to the checker" in message(error)


def _blocks_on_the_stack() -> list[BasicBlock]:
    found, frame = [], sys._getframe()
    while frame is not None:
        found += [v for v in list(frame.f_locals.values()) if isinstance(v, BasicBlock)]
        frame = frame.f_back
    return found


def test_a_copy_of_the_reference_found_on_the_stack_is_caught() -> None:
    class CopiesTheReference(OwnBasicBlock):
        def forward(self, x: Tensor) -> Tensor:
            return copy.deepcopy(_blocks_on_the_stack()[0])(x)

    for run in (check_same_function, check_gradients):
        with pytest.raises(CheckError) as error:
            run(CopiesTheReference(4, 4), BasicBlock(4, 4), (2, 4, 5, 5))
        assert "BasicBlock.forward), the reference this check compares against" in message(error)


def test_changing_the_reference_on_the_stack_is_caught() -> None:
    class ZeroesTheReference(OwnBasicBlock):
        def forward(self, x: Tensor) -> Tensor:
            with torch.no_grad():
                for block in _blocks_on_the_stack():
                    block.bn2.weight.zero_()  # the reference's output becomes relu(x)
            return F.relu(x)

    with pytest.raises(CheckError) as error:
        check_same_function(ZeroesTheReference(4, 4), BasicBlock(4, 4), (2, 4, 5, 5))
    assert "changed the reference module the checker compares against" in message(error)


def test_modes_and_global_hooks_are_refused() -> None:
    class Lenient(TorchFunctionMode):
        def __torch_function__(
            self, func: object, types: object, args: tuple = (), kwargs: object = None
        ) -> object:
            return func(*args, **(kwargs or {}))  # type: ignore[operator]

    with Lenient(), pytest.raises(CheckError) as error:
        check_same_function(OwnBasicBlock(4, 4), reference_block(4, 4), (2, 4, 5, 5))
    assert "torch function or dispatch mode" in message(error)
    handle = nn.modules.module.register_module_forward_hook(lambda module, args, output: output)
    try:
        with pytest.raises(CheckError) as error:
            check_output_shape(OwnBasicBlock(4, 4), (2, 4, 5, 5), (2, 4, 5, 5))
        assert "global module hook" in message(error)
    finally:
        handle.remove()


# ----------------------------------------------------------------------------------------------
# Whose work it is.

MyBlock = BasicBlock  # an alias


class SubclassedBlock(BasicBlock):
    pass


class WrappedBlock(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.inner = BasicBlock(4, 4)

    def forward(self, x: Tensor) -> Tensor:
        return self.inner(x)


class HiddenBlock(nn.Module):
    """Keeps a module it is given in a plain list, so it is not a registered submodule."""

    def __init__(self, block: nn.Module) -> None:
        super().__init__()
        self.hidden = [block]

    def forward(self, x: Tensor) -> Tensor:
        return self.hidden[0](x)


class BorrowedForward(OwnBasicBlock):
    """Own layers, but the reference's forward (named conv1, bn1, ... like the reference's)."""

    def __init__(self) -> None:
        super().__init__(4, 4)
        self.relu = nn.ReLU()
        self.downsample = None

    def forward(self, x: Tensor) -> Tensor:
        return BasicBlock.forward(self, x)  # type: ignore[arg-type]


class DynamicBorrow(OwnBasicBlock):
    """Finds the reference by strings at run time, which only running the code reveals."""

    def forward(self, x: Tensor) -> Tensor:
        module = importlib.import_module("convlab.models." + "resnet")
        block = getattr(module, "Basic" + "Block")
        self.relu, self.downsample = nn.ReLU(), None
        return block.residual(self, x) + x


def delegating_vgg_block(num_convs: int, in_channels: int, out_channels: int) -> nn.Sequential:
    return vgg_block(num_convs, in_channels, out_channels)


@pytest.mark.parametrize(
    ("answer", "found"),
    [
        (MyBlock, "the class convlab.models.resnet.BasicBlock itself, under another name"),
        (BasicBlock(4, 4), "your module (BasicBlock) is convlab.models.resnet.BasicBlock"),
        (SubclassedBlock, "derives from convlab.models.resnet.BasicBlock"),
        (SubclassedBlock(4, 4), "derives from convlab.models.resnet.BasicBlock"),
        (WrappedBlock(), "your module's `inner` (BasicBlock) is convlab.models.resnet.BasicBlock"),
        (
            HiddenBlock(BasicBlock(4, 4)),
            "your module's `hidden[0]` (BasicBlock) is convlab.models.resnet.BasicBlock",
        ),
        (BorrowedForward(), "BorrowedForward.forward uses convlab.models.resnet.BasicBlock"),
        (vgg_block, "the function convlab.models.vgg.vgg_block itself"),
        (delegating_vgg_block, "uses convlab.models.vgg.vgg_block (through the name `vgg_block`)"),
        (MBConv(4, 4), "is convlab.models.efficientnet.MBConv"),
    ],
    ids=[
        "alias",
        "instance",
        "subclass",
        "subclass-instance",
        "wrapper",
        "hidden",
        "borrowed-forward",
        "function-alias",
        "function-wrapper",
        "mbconv",
    ],
)
def test_reference_code_gets_no_credit(answer: object, found: str) -> None:
    with pytest.raises(CheckError) as error:
        check_own_implementation(answer)
    assert message(error).startswith("No credit")
    assert found in message(error)


def test_running_the_answer_reveals_reference_code_called_by_name_strings() -> None:
    check_own_implementation(DynamicBorrow(4, 4))  # nothing to see without running it
    with pytest.raises(CheckError) as error:
        check_own_implementation(DynamicBorrow(4, 4), inputs=(2, 4, 5, 5))
    assert "No credit" in message(error)
    assert "running it called convlab.models.resnet.BasicBlock (BasicBlock.residual)" in message(
        error
    )


def test_allowed_library_blocks_are_allowed() -> None:
    class OwnMBConv(nn.Module):
        def __init__(self, channels: int) -> None:
            super().__init__()
            self.expand = ConvBNAct(channels, 4 * channels, 1, activation=nn.SiLU)
            self.depthwise = ConvBNAct(4 * channels, 4 * channels, 3, groups=4 * channels)
            self.project = ConvBNAct(4 * channels, channels, 1, activation=None)

        def forward(self, x: Tensor) -> Tensor:
            return x + self.project(self.depthwise(self.expand(x)))

    with pytest.raises(CheckError) as error:
        check_own_implementation(OwnMBConv(4))
    assert "convlab.layers.ConvBNAct" in message(error)
    check_own_implementation(
        OwnMBConv(4), allowed=["convlab.layers.ConvBNAct"], inputs=(2, 4, 5, 5)
    )
    check_own_implementation(OwnMBConv(4), allowed=[ConvBNAct], probe=lambda: OwnMBConv(4))
    with pytest.raises(ValueError, match="names no class, function or convlab module"):
        check_own_implementation(OwnMBConv(4), allowed=["convlab.layers.NoSuchThing"])


class TorchBatchNorm(nn.Module):
    """Batch norm "from scratch" that hands the work to torch."""

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))

    def forward(self, x: Tensor) -> Tensor:
        return F.batch_norm(x, None, None, self.weight, self.bias, training=True)


class HiddenTorchBatchNorm(TorchBatchNorm):
    def forward(self, x: Tensor) -> Tensor:
        function = vars(torch)["batch_" + "norm"]
        return function(x, self.weight, self.bias, None, None, True, 0.1, 1e-5, False)


NO_TORCH_BATCH_NORM = [nn.BatchNorm2d, F.batch_norm, torch.batch_norm]


def test_a_from_scratch_lab_can_forbid_torchs_own_layer() -> None:
    check_own_implementation(OwnBatchNorm2d(4), forbidden=NO_TORCH_BATCH_NORM, inputs=(4, 4, 3, 3))
    cases = [
        (nn.BatchNorm2d(4), "your module (BatchNorm2d) is torch.nn.modules.batchnorm.BatchNorm2d"),
        (nn.Sequential(nn.BatchNorm2d(4)), "your module's `0` (BatchNorm2d) is torch.nn"),
        (TorchBatchNorm(4), "forward uses torch.nn.functional.batch_norm (through the name `F."),
    ]
    for answer, found in cases:
        with pytest.raises(CheckError) as error:
            check_own_implementation(answer, forbidden=NO_TORCH_BATCH_NORM)
        assert found in message(error)
        assert "except what it names above" in message(error)
    check_own_implementation(HiddenTorchBatchNorm(4), forbidden=NO_TORCH_BATCH_NORM)
    with pytest.raises(CheckError) as error:
        check_own_implementation(
            HiddenTorchBatchNorm(4), forbidden=["torch.batch_norm"], inputs=(4, 4, 3, 3)
        )
    assert "running it called torch.batch_norm" in message(error)
    check_own_implementation(TorchBatchNorm(4))  # torch is allowed unless forbidden


def test_count_parameters_counts_shared_tensors_once() -> None:
    conv = nn.Conv2d(3, 4, 3)
    assert count_parameters(nn.Sequential(conv, nn.ReLU(), conv)) == 4 * 3 * 9 + 4
    assert count_parameters(reference_block(64, 64)) == 73_984


# ----------------------------------------------------------------------------------------------
# What counts as reference code: the modules registered, whatever file their code lies in.

HELPER_SOURCE = """
import torch.nn.functional as F


def scaled_relu(x):
    return 2 * F.relu(x)
"""


def module_from_source(name: str, filename: str, source: str = HELPER_SOURCE) -> types.ModuleType:
    """A module made at run time, its code compiled as if from ``filename`` (which need not exist)."""
    module = types.ModuleType(name)
    exec(compile(source, filename, "exec"), vars(module))
    return module


def answers_using(module: types.ModuleType) -> tuple[object, object]:
    """An answer that names the module's function, and one that finds it only while it runs."""

    def by_name(x: Tensor) -> Tensor:
        return module.scaled_relu(x)

    def by_string(x: Tensor) -> Tensor:
        return getattr(module, "scaled_" + "relu")(x)

    return by_name, by_string


def test_reference_code_is_what_a_registered_module_defines_wherever_its_file() -> None:
    """Registration decides, not the path: the old rule read convlab's folder as the reference."""
    inside_convlab = str(Path(convlab.__file__).parent / "helpers.py")
    registered = module_from_source("tests_registry.reference", "/elsewhere/reference.py")
    register_reference(registered)
    unregistered = module_from_source("tests_registry.own", inside_convlab)  # the same code
    by_name, by_string = answers_using(registered)
    with pytest.raises(CheckError) as error:
        check_own_implementation(by_name)
    assert "uses tests_registry.reference.scaled_relu" in message(error)
    check_own_implementation(by_string)  # nothing to see without running it
    with pytest.raises(CheckError) as error:
        check_own_implementation(by_string, probe=lambda: by_string(torch.ones(2)))
    assert "running it called tests_registry.reference.scaled_relu (scaled_relu)" in message(error)
    for answer in answers_using(unregistered):
        check_own_implementation(answer, probe=lambda answer=answer: answer(torch.ones(2)))
    # code added to the registered module later, from yet another file, is its code too
    later = "def halved_relu(x):\n    return scaled_relu(x) / 4\n"
    exec(compile(later, inside_convlab, "exec"), vars(registered))
    with pytest.raises(CheckError) as error:
        check_own_implementation(registered.halved_relu)
    assert "the function tests_registry.reference.halved_relu itself" in message(error)

    def calls_later(x: Tensor) -> Tensor:
        return getattr(registered, "halved_" + "relu")(x)

    with pytest.raises(CheckError) as error:
        check_own_implementation(calls_later, probe=lambda: calls_later(torch.ones(2)))
    assert "running it called halved_relu (convlab/helpers.py:1)" in message(error)


def test_library_modules_are_reference_code_and_device_placement_is_not() -> None:
    """convlab.viz may be imported after convlab.check: it is registered as soon as it is."""
    import convlab.device
    import convlab.viz

    def borrows_the_library() -> object:
        return getattr(convlab.viz, "feature_" + "maps")(torch.rand(1, 4, 5, 5), channels=4)

    with pytest.raises(CheckError) as error:
        check_own_implementation(borrows_the_library, probe=borrows_the_library)
    assert "running it called convlab.viz.feature_maps (feature_maps)" in message(error)
    import matplotlib.pyplot as plt

    plt.close("all")

    def places_itself() -> Tensor:
        return torch.ones(2, device=convlab.device.default_device()).cpu()

    check_own_implementation(places_itself, probe=places_itself)


def test_registering_only_adds() -> None:
    """No registration removes or renames an entry, nor makes someone else's code a reference."""
    impostor = types.ModuleType("convlab.models.resnet")  # the name of a registered module
    impostor.BasicBlock = OwnBasicBlock  # type: ignore[attr-defined]
    alias = types.ModuleType("tests_registry.alias")
    alias.Block = BasicBlock  # type: ignore[attr-defined]
    register_reference(impostor, alias, "tests_registry.not_imported", convlab.models.resnet)
    with pytest.raises(CheckError) as error:
        check_own_implementation(MyBlock)
    assert "the class convlab.models.resnet.BasicBlock itself" in message(error)
    with pytest.raises(CheckError) as error:
        check_own_implementation(DynamicBorrow(4, 4), inputs=(2, 4, 5, 5))
    assert "running it called convlab.models.resnet.BasicBlock (BasicBlock.residual)" in message(
        error
    )
    check_own_implementation(OwnBasicBlock(4, 4), inputs=(2, 4, 5, 5))  # defined elsewhere
    with pytest.raises(TypeError, match="modules or module names"):
        register_reference(BasicBlock)  # type: ignore[arg-type]
    assert [name for name in convlab.check.__all__ if "register" in name] == ["register_reference"]


def test_removing_registry_entries_is_refused() -> None:
    """The registry only grows: a check refuses to run once entries have gone missing."""
    from convlab.check._registry import _REGISTRY

    saved = dict(_REGISTRY.codes)
    _REGISTRY.codes.clear()
    try:
        with pytest.raises(CheckError) as error:
            check_own_implementation(DynamicBorrow(4, 4), inputs=(2, 4, 5, 5))
        assert "entries of convlab.check's reference registry were removed" in message(error)
    finally:
        _REGISTRY.codes.update(saved)
    with pytest.raises(CheckError) as error:  # with the entries back, the check runs again
        check_own_implementation(DynamicBorrow(4, 4), inputs=(2, 4, 5, 5))
    assert "running it called convlab.models.resnet.BasicBlock" in message(error)


# ----------------------------------------------------------------------------------------------
# Reading students' code the same way on every Python, and refusing clearly on an unknown torch.

block = vgg_block  # a notebook's global that happens to name a reference function
vgg_models = convlab.models.vgg


class ReadsItsOwnAttribute(nn.Module):
    """Its local variable `block` shares the global's name: a local, not the reference."""

    def __init__(self) -> None:
        super().__init__()
        self.block = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU())

    def forward(self, x: Tensor) -> Tensor:
        block = self.block
        return block(x)


class CallsTheGlobal(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = block(1, 3, 4)


def test_names_are_classified_by_the_source_not_by_opcodes() -> None:
    """Python's symbol table tells a local from a global: bytecode opcodes differ per Python."""
    check_own_implementation(ReadsItsOwnAttribute(), inputs=(1, 3, 4, 4))
    with pytest.raises(CheckError) as error:
        check_own_implementation(CallsTheGlobal)
    assert "uses convlab.models.vgg.vgg_block (through the name `block`)" in message(error)


def test_code_without_source_is_read_strictly() -> None:
    """Without its source (made by exec), every name the code looks up counts as a global."""
    namespace = {"nn": nn, "block": vgg_block}
    source = (
        "class NoSource(nn.Module):\n"
        "    def forward(self, x):\n"
        "        block = self.block\n"
        "        return block(x)\n"
    )
    exec(compile(source, "<no file>", "exec"), namespace)
    with pytest.raises(CheckError) as error:
        check_own_implementation(namespace["NoSource"])
    assert "through the name `block`" in message(error)


class Base(nn.Module):
    def make(self) -> nn.Module:
        return nn.Identity()


class BorrowsAfterSuper(Base):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(super().make(), vgg_models.vgg_block(1, 3, 4))


def test_names_loaded_through_super_and_modules_are_seen() -> None:
    """`super().make` loads by LOAD_SUPER_ATTR from Python 3.12 on; the names are read alike."""
    with pytest.raises(CheckError) as error:
        check_own_implementation(BorrowsAfterSuper)
    assert "vgg_block (through the name `vgg_models.vgg_block`)" in message(error)


MISSING_INTERNAL = """
import torch
del torch._C.{name}
from convlab.check import CheckError, check_output_shape
from torch import nn
try:
    check_output_shape(nn.Conv2d(1, 2, 3), (1, 1, 5, 5), (1, 2, 3, 3))
except CheckError as error:
    print(error._render_traceback_())
"""


@pytest.mark.parametrize("name", ["_len_torch_function_stack", "DisableTorchFunctionSubclass"])
def test_a_torch_without_an_internal_gets_a_one_line_reason(name: str) -> None:
    """A torch that renamed an internal: importing works, and each check names what is missing."""
    import subprocess

    run = subprocess.run(
        [sys.executable, "-c", MISSING_INTERNAL.format(name=name)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    (line,) = eval(run.stdout)  # one line, no traceback through convlab's internals
    assert f"this torch lacks torch._C.{name}" in line
    assert f"torch {torch.__version__}, Python {sys.version.split()[0]}" in line
    assert line.startswith("CheckError: The checks cannot run with")
