"""A Lightning callback that logs the measure diagnostics on a held-out set.

It generalises the held-out logging of ``alignsphere train``
(:class:`alignsphere.training.callbacks.HeldOutMetricsCallback`) to any
LightningModule: give it a DataLoader of held-out batches and, if the batches
are not plain inputs of the module, a function that turns a batch into
embeddings. At the end of every ``every_n_epochs``-th training epoch, global
rank zero embeds the held-out set in eval mode without gradients. It logs to
every logger of the trainer: alignment (when the batches give positive pairs),
uniformity and its optimum, effective rank, alpha-ReQ, the standard deviation
of the unit rows, the mean cosine and the mean raw norm.

Only rank zero measures, so under DDP the callback's DataLoader should not be
sharded (do not give it a DistributedSampler), and the values go to the
loggers directly rather than through ``self.log``, which would expect every
rank to log them.

Example:
    >>> from torch.utils.data import DataLoader, TensorDataset
    >>> views = TensorDataset(torch.randn(512, 32), torch.randn(512, 32))
    >>> callback = EmbeddingMetricsCallback(DataLoader(views, batch_size=128))
    >>> # lightning.Trainer(callbacks=[callback]).fit(model)
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

import lightning as L
import torch

from alignsphere.measure.core import MeasureOptions, measure_embeddings
from alignsphere.measure.report import MeasureReport

logger = logging.getLogger(__name__)

EmbedFunction = Callable[
    [L.LightningModule, Any], "torch.Tensor | tuple[torch.Tensor, torch.Tensor]"
]


def embed_batch(
    module: L.LightningModule, batch: Any
) -> torch.Tensor | tuple[torch.Tensor, ...]:
    """Embed a batch with ``module(...)``: a tensor, or the first two tensors of a sequence.

    A batch ``(view1, view2, ...)`` whose first two tensors have the same
    shape and dtype gives a positive pair per row. Any other sequence, such as
    ``(inputs, labels)``, gives only ``module(inputs)``.
    """
    device = module.device
    if isinstance(batch, torch.Tensor):
        return module(batch.to(device))
    if (
        isinstance(batch, (list, tuple))
        and batch
        and isinstance(batch[0], torch.Tensor)
    ):
        first = batch[0]
        if (
            len(batch) > 1
            and isinstance(batch[1], torch.Tensor)
            and batch[1].shape == first.shape
            and batch[1].dtype == first.dtype
        ):
            return module(first.to(device)), module(batch[1].to(device))
        return module(first.to(device))
    raise TypeError(
        f"cannot embed a batch of type {type(batch).__name__}; pass embed=fn(module, "
        "batch) returning embeddings or a pair of them"
    )


class EmbeddingMetricsCallback(L.Callback):
    """Log alignment, uniformity and the spectrum diagnostics of held-out embeddings.

    Args:
        dataloader: Held-out batches, iterated in full at each measurement.
        embed: Maps ``(module, batch)`` to a ``(B, d)`` tensor of embeddings,
            or to a pair of them whose rows are positive pairs. Defaults to
            :func:`embed_batch`.
        every_n_epochs: Measure after every n-th training epoch. Defaults to 1.
        prefix: Prefix of the logged names. Defaults to ``"heldout/"``.
        options: How to compute (alpha, t, exact or sampled uniformity, seed).
            Defaults to :class:`~alignsphere.measure.MeasureOptions`, which is
            exact up to 20,000 rows.
        uniformity_over: As in :func:`~alignsphere.measure.measure_embeddings`,
            for pairs; defaults to ``"mean"``, the form the training objective
            uses.

    Attributes:
        last_report: The report of the latest measurement, or None.
    """

    def __init__(
        self,
        dataloader: Iterable,
        *,
        embed: EmbedFunction | None = None,
        every_n_epochs: int = 1,
        prefix: str = "heldout/",
        options: MeasureOptions | None = None,
        uniformity_over: str = "mean",
    ) -> None:
        super().__init__()
        if int(every_n_epochs) < 1:
            raise ValueError(f"every_n_epochs must be >= 1, got {every_n_epochs!r}")
        self.dataloader = dataloader
        self.embed = embed or embed_batch
        self.every_n_epochs = int(every_n_epochs)
        self.prefix = prefix
        self.options = options or MeasureOptions()
        self.uniformity_over = uniformity_over
        self.last_report: MeasureReport | None = None

    def measure(self, module: L.LightningModule) -> MeasureReport:
        """Embed the held-out set with ``module`` in eval mode and measure it."""
        first: list[torch.Tensor] = []
        second: list[torch.Tensor] = []
        was_training = module.training
        module.eval()
        try:
            with torch.no_grad():
                for batch in self.dataloader:
                    output = self.embed(module, batch)
                    if isinstance(output, (tuple, list)):
                        first.append(output[0].detach().float().cpu())
                        second.append(output[1].detach().float().cpu())
                    else:
                        first.append(output.detach().float().cpu())
        finally:
            module.train(was_training)
        if not first:
            raise ValueError("the held-out dataloader gave no batches")
        if second and len(second) != len(first):
            raise ValueError("embed returned pairs for some batches but not for others")
        return measure_embeddings(
            torch.cat(first),
            torch.cat(second) if second else None,
            uniformity_over=self.uniformity_over if second else "all",
            options=self.options,
        )

    def metrics(self, report: MeasureReport) -> dict[str, float]:
        """Return the logged values of a report, named with :attr:`prefix`."""
        stats = report.statistics
        values = {
            "uniform": report.uniformity.value,
            "uniform_optimum": report.uniformity.optimum,
            "uniform_gap": report.uniformity.gap,
            "effective_rank": stats.spectrum.effective_rank,
            "norm_mean": stats.norms.mean,
        }
        if report.alignment is not None:
            values["align"] = report.alignment.value
        if stats.spectrum.alpha_req is not None:
            values["alpha_req"] = stats.spectrum.alpha_req.alpha
        if stats.normalized_std is not None:
            values["normalized_std"] = stats.normalized_std
        if stats.mean_cosine is not None:
            values["mean_cosine"] = stats.mean_cosine
        return {f"{self.prefix}{name}": float(value) for name, value in values.items()}

    def on_train_epoch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule
    ) -> None:
        if (trainer.current_epoch + 1) % self.every_n_epochs:
            return
        if not trainer.is_global_zero:
            return
        report = self.measure(pl_module)
        self.last_report = report
        values = self.metrics(report)
        values["epoch"] = trainer.current_epoch
        for experiment_logger in trainer.loggers:
            experiment_logger.log_metrics(values, step=trainer.global_step)
        logger.info(
            "epoch %d: held-out %s",
            trainer.current_epoch,
            ", ".join(
                f"{name} {value:.4f}"
                for name, value in values.items()
                if name != "epoch"
            ),
        )
