"""alignsphere: representation learning on the unit hypersphere.

Alignment and uniformity (Wang & Isola, ICML 2020, arXiv:2005.10242) as
differentiable losses and exact metrics, the contrastive losses they explain,
and the tools to train, evaluate and study encoders with them. Importing this
package needs torch alone; training, the study and text models import their
dependencies when used.
"""

from alignsphere.distributed import gather_with_grad
from alignsphere.losses import (
    Objective,
    align_loss,
    contrastive_loss,
    contrastive_queue_loss,
    nt_xent_loss,
    parse_objective,
    uniform_loss,
    uniform_queue_loss,
)
from alignsphere.metrics import (
    UniformityEstimate,
    alignment,
    uniformity,
    uniformity_optimum,
    uniformity_sampled,
)

__version__ = "0.1.0"

__all__ = [
    "Objective",
    "UniformityEstimate",
    "__version__",
    "align_loss",
    "alignment",
    "contrastive_loss",
    "contrastive_queue_loss",
    "gather_with_grad",
    "nt_xent_loss",
    "parse_objective",
    "uniform_loss",
    "uniform_queue_loss",
    "uniformity",
    "uniformity_optimum",
    "uniformity_sampled",
]
