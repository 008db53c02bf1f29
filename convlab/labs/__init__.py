"""The course's seven labs: their settings, the session a notebook opens, and their thresholds.

A lab notebook starts with ``lab = start("lab1_vgg")`` and imports the constants and reference
pieces its exercises name from here, as ``from convlab.labs import VGG_LAB_STAGES, start``.
The package's parts:

* :mod:`~convlab.labs.settings`: :class:`LabSettings`, and :data:`LABS`, where every lab module
  registers its settings;
* one module per lab (:mod:`~convlab.labs.lab1_vgg` ... :mod:`~convlab.labs.lab7_efficientnet`):
  the lab's constants, its reference network and its training settings in both modes;
* :mod:`~convlab.labs.session`: :func:`start` and the :class:`Lab` it returns (data, training,
  accuracy points);
* :mod:`~convlab.labs.reference_runs`: the accuracy thresholds, read from the recorded reference
  runs in ``convlab/recorded/labs.json``;
* :mod:`~convlab.labs.record`: ``python -m convlab.labs reference <lab>``, which records them.

While nbgrader runs a notebook (``NBGRADER_EXECUTION`` set), importing this package switches
:func:`~convlab.train.fit` to loading the handed-in checkpoint: nothing a graded notebook calls
trains.
"""

from convlab import train as _train
from convlab.check import register_reference as _register_reference
from convlab.labs import (
    lab1_vgg,
    lab2_nin,
    lab3_batchnorm,
    lab4_resnet,
    lab5_resnext,
    lab6_densenet,
    lab7_efficientnet,
)
from convlab.labs.handin import HandInError
from convlab.labs.lab1_vgg import VGG_LAB_HIDDEN, VGG_LAB_STAGES
from convlab.labs.lab2_nin import (
    NIN_LAB_DROPOUT,
    NIN_LAB_INCEPTION,
    NIN_LAB_STEM,
    nin_lab_init,
    reference_inception_nin,
    reference_nin_head,
)
from convlab.labs.lab3_batchnorm import BATCHNORM_LAB_FORBIDDEN, reference_lenet_bn
from convlab.labs.lab4_resnet import RESNET_LAB_STAGES, reference_block
from convlab.labs.lab5_resnext import (
    RESNEXT_LAB_GROUPS,
    RESNEXT_LAB_STAGES,
    RESNEXT_LAB_STEM,
    RESNEXT_LAB_WIDTH_PER_GROUP,
    resnext_lab_form,
    resnext_lab_network,
    resnext_reference_block,
)
from convlab.labs.lab6_densenet import (
    DENSENET_LAB_BLOCKS,
    DENSENET_LAB_GROWTH,
    DENSENET_LAB_STEM,
    densenet_lab_network,
    plain_dense_layer,
)
from convlab.labs.lab7_efficientnet import (
    EFFICIENTNET_LAB_HEAD,
    EFFICIENTNET_LAB_STAGES,
    EFFICIENTNET_LAB_STEM,
    EFFICIENTNET_SEARCH_STAGES,
    efficientnet_flops,
    efficientnet_from_table,
    mbconv_table,
    stage_rows,
)
from convlab.labs.record import (
    fingerprint,
    recipe,
    record_reference,
    reference_start,
    time_full_mode,
)
from convlab.labs.reference_runs import REFERENCE_SEEDS, THRESHOLD_MARGIN, recorded, thresholds
from convlab.labs.session import GRADED_REASON, Lab, cpu_advice, graded, quick_mode, start
from convlab.labs.settings import DATA_ENV, LABS, QUICK_ENV, LabSettings, register

LAB_MODULES = (
    lab1_vgg,
    lab2_nin,
    lab3_batchnorm,
    lab4_resnet,
    lab5_resnext,
    lab6_densenet,
    lab7_efficientnet,
)
# What a lab's answer may not call instead of the student's own code: each lab's reference pieces.
_register_reference(*LAB_MODULES)

if graded():
    _train.only_load_checkpoints(True, GRADED_REASON)

__all__ = [
    "BATCHNORM_LAB_FORBIDDEN",
    "DATA_ENV",
    "DENSENET_LAB_BLOCKS",
    "DENSENET_LAB_GROWTH",
    "DENSENET_LAB_STEM",
    "EFFICIENTNET_LAB_HEAD",
    "EFFICIENTNET_LAB_STAGES",
    "EFFICIENTNET_LAB_STEM",
    "EFFICIENTNET_SEARCH_STAGES",
    "LABS",
    "LAB_MODULES",
    "NIN_LAB_DROPOUT",
    "NIN_LAB_INCEPTION",
    "NIN_LAB_STEM",
    "QUICK_ENV",
    "REFERENCE_SEEDS",
    "RESNET_LAB_STAGES",
    "RESNEXT_LAB_GROUPS",
    "RESNEXT_LAB_STAGES",
    "RESNEXT_LAB_STEM",
    "RESNEXT_LAB_WIDTH_PER_GROUP",
    "THRESHOLD_MARGIN",
    "VGG_LAB_HIDDEN",
    "VGG_LAB_STAGES",
    "HandInError",
    "Lab",
    "LabSettings",
    "cpu_advice",
    "densenet_lab_network",
    "efficientnet_flops",
    "efficientnet_from_table",
    "fingerprint",
    "graded",
    "mbconv_table",
    "nin_lab_init",
    "plain_dense_layer",
    "quick_mode",
    "recipe",
    "record_reference",
    "recorded",
    "reference_block",
    "reference_inception_nin",
    "reference_lenet_bn",
    "reference_nin_head",
    "reference_start",
    "register",
    "resnext_lab_form",
    "resnext_lab_network",
    "resnext_reference_block",
    "stage_rows",
    "start",
    "thresholds",
    "time_full_mode",
]
