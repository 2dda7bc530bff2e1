"""The MTS trainer: a TrainingSet in, one checked ONNX model (bytes) and its metrics out.

It writes nothing shared: a killed run publishes nothing, and the caller stores the bytes.
An optional private checkpoint file (written atomically after each epoch) lets a restarted
run continue where it stopped.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from sightscan.errors import TrainingError
from sightscan.inference import Detector
from sightscan.progress import show_progress
from sightscan.training.augment import make_batch
from sightscan.training.dataset import TrainingSet
from sightscan.training.evaluation import (
    Metrics,
    choose_threshold,
    collect_predictions,
    metrics_from_predictions,
)
from sightscan.training.export import base_metadata, export_onnx, set_metadata
from sightscan.training.loss import detection_loss
from sightscan.training.model import SightNet
from sightscan.training.rejection import Embedder, GateModule, build_gate, embed_batches
from sightscan.training.report import render_report

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TrainConfig:
    """Everything that decides a training run (saved in the model metadata)."""

    epochs: int = 55
    image_size: int = 256
    batch_size: int = 16
    lr: float = 2e-3
    seed: int = 0
    device: str = "cpu"
    threads: int = 2
    frozen_blocks: int = 16  # the whole ImageNet backbone: its features also feed the gate
    low_res_fraction: float = 0.5
    backbone_lr_factor: float = 0.25
    weight_decay: float = 5e-4
    ema_decay: float = 0.98  # ~50-step horizon: the last ~5 epochs of 10 steps
    augment: bool = True
    pretrained: bool = True
    checkpoint_path: Path | None = None

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.threads < 1:
            raise TrainingError("expected epochs, batch_size and threads >= 1")
        if self.image_size < 64 or self.image_size % 32:
            raise TrainingError(
                f"expected an image size >= 64 divisible by 32, got {self.image_size}")
        if not 0 <= self.frozen_blocks <= 16:
            raise TrainingError(
                f"expected 0 <= frozen_blocks <= 16 (16: the whole backbone), "
                f"got {self.frozen_blocks}")
        if not 0.0 <= self.low_res_fraction < 1.0:
            raise TrainingError(
                f"expected 0 <= low_res_fraction < 1, got {self.low_res_fraction}")
        if self.device not in {"cpu", "cuda"}:
            raise TrainingError(f"expected device cpu or cuda, got {self.device!r}")


@dataclass(frozen=True, slots=True)
class TrainProgress:
    """One progress event: position in the run, the running loss and an ETA."""

    epoch: int
    epochs: int
    step: int
    steps: int
    loss: float
    elapsed_s: float
    eta_s: float


@dataclass(slots=True)
class TrainedModel:
    """The result: ONNX bytes with embedded metadata, metrics, loss history and a PNG report."""

    onnx: bytes
    metadata: dict[str, Any]
    metrics: Metrics
    history: list[dict[str, float]] = field(default_factory=list)
    report_png: bytes = b""


ProgressCallback = Callable[[TrainProgress], None]


@contextmanager
def console_progress(description: str = "training") -> Iterator[ProgressCallback]:
    """A rich progress bar (loss and ETA) as a progress callback, for interactive use."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (TextColumn("{task.description}"), BarColumn(),
               TextColumn("epoch {task.fields[epoch]} loss {task.fields[loss]:.3f}"),
               TimeRemainingColumn())
    with Progress(*columns, transient=False) as bar:
        task = bar.add_task(description, total=None, epoch="-", loss=0.0)

        def update(event: TrainProgress) -> None:
            bar.update(task, total=event.steps * event.epochs,
                       completed=(event.epoch - 1) * event.steps + event.step,
                       epoch=f"{event.epoch}/{event.epochs}", loss=event.loss)

        yield update


def _resolve_device(requested: str) -> torch.device:
    if requested == "cuda":
        if torch.cuda.is_available():
            return torch.device("cuda")
        logger.warning("CUDA was requested but is not available; training on the CPU")
    return torch.device("cpu")


class _Ema:
    """Exponential moving average of the weights (steadier results from short runs)."""

    def __init__(self, net: torch.nn.Module, decay: float) -> None:
        self.decay = decay
        self.updates = 0
        self.state = {k: v.detach().clone() for k, v in net.state_dict().items()}

    def update(self, net: torch.nn.Module) -> None:
        self.updates += 1
        d = self.decay * (1 - math.exp(-self.updates / 50))
        with torch.no_grad():
            for k, v in net.state_dict().items():
                if v.dtype.is_floating_point:
                    self.state[k].mul_(d).add_(v.detach(), alpha=1 - d)
                else:
                    self.state[k].copy_(v)


def _low_res_size(image_size: int) -> int:
    """The cheaper size of the early epochs: 3/4 of the final size (a multiple of 32), but not
    under 160 px (a coarser stride-16 grid teaches little); small models keep one size."""
    return min(image_size, max(160, int(image_size * 0.75) // 32 * 32))


class _FrozenPart:
    """Runs the frozen stem and blocks, which need no gradient.

    On the CPU they go through onnxruntime (exported once per run): several times less CPU
    than torch's eager kernels for these memory-bound high-resolution layers, which are
    most of the forward cost. On CUDA torch runs them under no_grad.
    """

    def __init__(self, net: SightNet, device: torch.device, threads: int) -> None:
        self.net = net
        self.session: Any = None
        if device.type == "cpu":
            self.session = _onnx_session(net, net.frozen_features, threads)

    def __call__(self, pixels: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if self.session is None:
            with torch.no_grad():
                return self.net.frozen_features(pixels)
        array = pixels.detach().contiguous().numpy()
        outputs = self.session.run(None, {"pixels": array})
        return tuple(torch.from_numpy(out).contiguous(memory_format=torch.channels_last)
                     for out in outputs)


class _Part(torch.nn.Module):
    """One part of the network (`part`, a method of `net`) as a module of its own, to export."""

    def __init__(self, net: SightNet, part: Callable[[torch.Tensor], Any]) -> None:
        super().__init__()
        self.net = net
        self.part = part

    def forward(self, pixels: torch.Tensor) -> Any:
        return self.part(pixels)


def _onnx_session(net: SightNet, part: Callable[[torch.Tensor], Any], threads: int) -> Any:
    """An onnxruntime session of `part` (exported in memory) on float NCHW "pixels" of any
    batch and size; its outputs in order."""
    import io
    import warnings

    import onnxruntime as ort

    graph = _Part(net, part).eval()
    example = torch.zeros(1, 3, net.image_size, net.image_size)
    with torch.no_grad():
        results = graph(example)
    results = results if isinstance(results, tuple) else (results,)
    outputs = [f"output{i}" for i in range(len(results))]
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            graph, (example,), buffer,  # type: ignore[arg-type]
            input_names=["pixels"], output_names=outputs,
            dynamic_axes={"pixels": {0: "batch", 2: "height", 3: "width"},
                          **{name: {d: f"{name}_{d}" for d in range(result.dim()) if d != 1}
                             for name, result in zip(outputs, results, strict=True)}},
            opset_version=17, dynamo=False,
        )
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(buffer.getvalue(), options, providers=["CPUExecutionProvider"])


def _embedder(net: SightNet, threads: int) -> Embedder:
    """The trained network's photo embedding through onnxruntime, for the gate: several
    times less CPU than torch's eager kernels, and the runtime the shipped gate runs in."""
    session = _onnx_session(net, net.embed, threads)
    return partial(embed_batches, lambda batch: session.run(None, {"pixels": batch})[0],
                   net.image_size)


def _lr_factor(step: int, total: int, warmup: int) -> float:
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * progress))


def train_detector(training_set: TrainingSet, config: TrainConfig,
                   progress: ProgressCallback | None = None, *, city: str | None = None
                   ) -> TrainedModel:
    """Train, export to ONNX, calibrate the score threshold and evaluate on the validation split."""
    if progress is None and show_progress():
        with console_progress() as bar:
            return train_detector(training_set, config, bar, city=city)
    if not training_set.train:
        raise TrainingError("the training split is empty")
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(config.threads)
    try:
        net, history = _fit(training_set, config, progress)
        return _finish(net, history, training_set, config, city)
    finally:
        torch.set_num_threads(previous_threads)


def _fit(training_set: TrainingSet, config: TrainConfig, progress: ProgressCallback | None
         ) -> tuple[SightNet, list[dict[str, float]]]:
    torch.manual_seed(config.seed)
    device = _resolve_device(config.device)
    net = SightNet(len(training_set.class_names), config.image_size,
                   pretrained=config.pretrained, frozen_blocks=config.frozen_blocks).to(device)
    # channels-last: markedly faster convolutions on CPU
    net = net.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    groups: list[dict[str, Any]] = [{"params": net.head_parameters(), "lr": config.lr}]
    if net.backbone_parameters():  # none when the whole backbone is frozen
        groups.append({"params": net.backbone_parameters(),
                       "lr": config.lr * config.backbone_lr_factor})
    optimizer = torch.optim.AdamW(groups, weight_decay=config.weight_decay)
    base_lrs = [g["lr"] for g in optimizer.param_groups]
    ema = _Ema(net, config.ema_decay)
    samples = training_set.train
    steps = max(1, len(samples) // config.batch_size)
    total, warmup = steps * config.epochs, min(steps * config.epochs // 5 + 1, 60)
    history: list[dict[str, float]] = []
    frozen = _FrozenPart(net, device, config.threads)
    low_res_epochs = int(config.epochs * config.low_res_fraction)
    start_epoch = 1
    if config.checkpoint_path is not None and config.checkpoint_path.is_file():
        start_epoch, history = _resume(config.checkpoint_path, net, optimizer, ema)
    started = time.monotonic()
    for epoch in range(start_epoch, config.epochs + 1):
        rng = np.random.default_rng([config.seed, epoch])
        order = rng.permutation(len(samples))
        net.train()
        size = _low_res_size(config.image_size) if epoch <= low_res_epochs else config.image_size
        sums: dict[str, float] = {}
        for step in range(steps):
            global_step = (epoch - 1) * steps + step
            for group, base in zip(optimizer.param_groups, base_lrs, strict=True):
                group["lr"] = base * _lr_factor(global_step, total, warmup)
            picked = order[step * config.batch_size:(step + 1) * config.batch_size]
            chosen = [samples[i] for i in picked]
            batch = make_batch(chosen, size, rng, augment=config.augment)
            batch.pixels = batch.pixels.to(device)
            batch.boxes = [b.to(device) for b in batch.boxes]
            batch.labels = [lab.to(device) for lab in batch.labels]
            logits, box_bins = net.forward_from_frozen(frozen(batch.pixels))
            loss, parts = detection_loss(logits, box_bins, batch)
            if not torch.isfinite(loss):
                raise TrainingError(f"the training loss diverged at epoch {epoch}, step {step + 1}")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 10.0)
            optimizer.step()
            ema.update(net)
            for key, value in {"loss": float(loss.detach()), **parts}.items():
                sums[key] = sums.get(key, 0.0) + value
            if progress is not None:
                done = (epoch - start_epoch) * steps + step + 1
                elapsed = time.monotonic() - started
                remaining = (config.epochs - start_epoch + 1) * steps - done
                progress(TrainProgress(epoch, config.epochs, step + 1, steps, float(loss.detach()),
                                       elapsed, elapsed / done * remaining))
        history.append({"epoch": float(epoch), **{k: v / steps for k, v in sums.items()}})
        logger.info("epoch %d/%d loss %.4f", epoch, config.epochs, history[-1]["loss"])
        if config.checkpoint_path is not None:
            _save_checkpoint(config.checkpoint_path, epoch, net, optimizer, ema, history)
    net.load_state_dict(ema.state)
    net = net.cpu().to(memory_format=torch.contiguous_format)
    return net.eval(), history


def _save_checkpoint(path: Path, epoch: int, net: SightNet, optimizer: torch.optim.Optimizer,
                     ema: _Ema, history: list[dict[str, float]]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save({"epoch": epoch, "net": net.state_dict(), "optimizer": optimizer.state_dict(),
                "ema": ema.state, "ema_updates": ema.updates, "history": history}, tmp)
    os.replace(tmp, path)  # atomic: a kill leaves the previous checkpoint intact


def _resume(path: Path, net: SightNet, optimizer: torch.optim.Optimizer, ema: _Ema
            ) -> tuple[int, list[dict[str, float]]]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        net.load_state_dict(state["net"])
        optimizer.load_state_dict(state["optimizer"])
        ema.state, ema.updates = state["ema"], int(state["ema_updates"])
    except (OSError, RuntimeError, KeyError, ValueError) as exc:
        raise TrainingError(f"cannot resume from the checkpoint {path}: {exc}") from exc
    logger.info("resuming after epoch %d from %s", state["epoch"], path)
    return int(state["epoch"]) + 1, list(state["history"])


def _finish(net: SightNet, history: list[dict[str, float]], training_set: TrainingSet,
            config: TrainConfig, city: str | None) -> TrainedModel:
    metadata = base_metadata(training_set.class_names, config.image_size)
    metadata["city"] = city
    gate, calibration = build_gate(_embedder(net, config.threads), training_set.train,
                                   training_set.val, len(training_set.class_names),
                                   training_set.landmarks)
    metadata["rejection"] = gate.metadata(calibration)
    model_bytes = export_onnx(net, metadata, gate=GateModule(gate))
    return finish_model(model_bytes, metadata, training_set, config, history,
                        title=f"SightScan detector {city or ''}")


def finish_model(model_bytes: bytes, metadata: dict[str, Any], training_set: TrainingSet,
                 config: TrainConfig, history: list[dict[str, float]], *, title: str,
                 default_threshold: float = 0.5, training_extra: dict[str, Any] | None = None,
                 config_extra: dict[str, Any] | None = None) -> TrainedModel:
    """Calibrate the threshold and evaluate on the validation split; embed it all; report."""
    detector = Detector.from_bytes(model_bytes, threads=config.threads)
    val_images, metrics_split = training_set.val_images(), "val"
    if not val_images:  # too few photos to hold any out: say so rather than hide it
        val_images, metrics_split = [s.source for s in training_set.train], "train"
    preds = collect_predictions(detector, val_images)
    choice = choose_threshold(preds, default=default_threshold)
    threshold = choice.threshold
    metrics = metrics_from_predictions(preds, training_set.class_names, threshold)
    config_dict = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()}
    config_dict.pop("checkpoint_path", None)
    metadata.update({
        "score_threshold": threshold,
        "score_threshold_choice": choice.as_dict(),
        "metrics": metrics.as_dict(),
        "metrics_split": metrics_split,
        "training": {**training_set.counts(), **(training_extra or {})},
        "train_config": {**config_dict, **(config_extra or {})},
        "loss_history": [{k: round(v, 5) for k, v in h.items()} for h in history],
    })
    model_bytes = set_metadata(model_bytes, metadata)
    detector.score_threshold = threshold
    examples = []
    for image in val_images[:: max(1, len(val_images) // 4)][:4]:  # spread over classes
        pil = Image.fromarray(detector.preprocess(image.load()))
        examples.append((pil, detector.detect(pil)))
    report = render_report(history, metrics, examples, title=title)
    return TrainedModel(model_bytes, metadata, metrics, history, report)
