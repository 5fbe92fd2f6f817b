"""Constants the tests share: where the checkout and the public data are, and the shared model's GPUs."""

import re
from pathlib import Path

#: The checkout the tests run from.
REPO_ROOT = Path(__file__).resolve().parent.parent
#: The public data sets CI puts beside the clone (read there, never copied in).
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
#: The dashboard's entry script in the checkout.
DASHBOARD = REPO_ROOT / "fedopt_dashboard" / "streamlit_app.py"
#: The GPUs the shared test model is fitted on (the rest of the benchmark's GPUs it has never seen).
NINE_TRAINING_GPUS = [
    "RTX 3090",
    "A100 SXM4 80GB",
    "V100 SXM2 16GB",
    "RTX A6000",
    "H100 SXM5 80GB",
    "RTX 2080 Ti",
    "A100 PCIe 40GB",
    "Quadro RTX 8000",
    "RTX A4000",
]
#: ResNet-50 training as the benchmark's v0 table measured it (the shared model's usual question).
RESNET50_TASK = {
    "task_type": "training",
    "workload": "resnet50",
    "precision": "fp16_amp",
    "software": "v0_ngc20",
    "batch_size": 256.0,
    "work_units": 1e6,
}


def as_shown(markdown: str) -> str:
    """What a reader sees of a message made with ``ui.plain``: without its escapes and word joiners."""
    return re.sub(r"\\(.)", r"\1", markdown).replace("\u2060", "")
