"""The pieces of training state that outlive a step: weight averaging, the learning rate, the data order,
and the process group.  Each has a state_dict so that a resumed run continues exactly."""
from __future__ import annotations

import math
import os
from contextlib import contextmanager
from dataclasses import dataclass

import torch


class WeightAverage:
    """Exponential moving average of a model's state (EMA).  Early updates use a smaller decay,
    (1 + n) / (10 + n), so the average is not dominated by the random initial weights."""

    def __init__(self, model: torch.nn.Module, decay: float):
        self.decay = decay
        self.updates = 0
        self.shadow = {name: value.detach().clone() for name, value in model.state_dict().items()}

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        self.updates += 1
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for name, value in model.state_dict().items():
            if value.is_floating_point():
                self.shadow[name].mul_(decay).add_(value.detach(), alpha=1 - decay)
            else:
                self.shadow[name].copy_(value)

    @contextmanager
    def applied(self, model: torch.nn.Module):
        """The averaged weights in `model` for the duration of the block, the trained ones again after it."""
        trained = {name: value.detach().clone() for name, value in model.state_dict().items()}
        model.load_state_dict(self.shadow)
        try:
            yield model
        finally:
            model.load_state_dict(trained)

    def state_dict(self) -> dict:
        return {"decay": self.decay, "updates": self.updates, "shadow": self.shadow}

    def load_state_dict(self, state: dict) -> None:
        self.decay, self.updates = state["decay"], state["updates"]
        for name, value in state["shadow"].items():
            self.shadow[name].copy_(value)


class LearningRate:
    """The learning rate of every optimizer step: a linear warm-up, then constant, cosine decay to
    `min_lr` at `max_epochs`, or reduced by `plateau_factor` when the validation loss has not improved
    for more than `plateau_patience` epochs."""

    def __init__(self, settings, steps_per_epoch: int):
        self.base = settings.lr
        self.kind = settings.scheduler
        self.min_lr = settings.min_lr
        self.warmup_steps = round(settings.warmup_epochs * steps_per_epoch)
        self.total_steps = max(1, settings.max_epochs * steps_per_epoch)
        self.factor = settings.plateau_factor
        self.patience = settings.plateau_patience
        self.scale = 1.0
        self.best = math.inf
        self.bad_epochs = 0

    def at(self, step: int) -> float:
        warm = min(1.0, (step + 1) / self.warmup_steps) if self.warmup_steps else 1.0
        if self.kind == "cosine":
            span = max(1, self.total_steps - self.warmup_steps)
            progress = min(1.0, max(0.0, (step - self.warmup_steps) / span))
            value = self.min_lr + (self.base - self.min_lr) * 0.5 * (1 + math.cos(math.pi * progress))
        elif self.kind == "plateau":
            value = max(self.min_lr, self.base * self.scale)
        else:
            value = self.base
        return value * warm

    def epoch_end(self, valid_loss: float) -> None:
        if self.kind != "plateau":
            return
        if valid_loss < self.best * (1 - 1e-4):
            self.best, self.bad_epochs = valid_loss, 0
        else:
            self.bad_epochs += 1
            if self.bad_epochs > self.patience:
                self.scale *= self.factor
                self.bad_epochs = 0

    def state_dict(self) -> dict:
        return {"scale": self.scale, "best": self.best, "bad_epochs": self.bad_epochs}

    def load_state_dict(self, state: dict) -> None:
        self.scale, self.best, self.bad_epochs = state["scale"], state["best"], state["bad_epochs"]


def epoch_batches(num_items: int, batch_size: int, seed: int, epoch: int, world_size: int = 1) -> list[list[int]]:
    """The global batches of one epoch: a permutation seeded by (seed, epoch), cut into `batch_size` pieces.
    Every process computes the same list and takes its shard (`batch[rank::world_size]`); a last batch
    with fewer structures than processes is dropped so that no process is left without data."""
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    order = torch.randperm(num_items, generator=generator).tolist()
    batches = [order[start:start + batch_size] for start in range(0, num_items, batch_size)]
    if batches and len(batches[-1]) < world_size:
        batches.pop()
    return batches


@dataclass
class ProcessGroup:
    """This process's place among those started by torchrun (one process without it)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_environment(cls, device_kind: str) -> "ProcessGroup":
        """Joins the process group torchrun describes in the environment (gloo on CPU, nccl on CUDA)."""
        import torch.distributed as dist

        world_size = int(os.environ.get("WORLD_SIZE", "1"))
        if world_size <= 1 and not dist.is_initialized():
            return cls()
        if not dist.is_initialized():
            dist.init_process_group(backend="nccl" if device_kind == "cuda" else "gloo")
        return cls(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", dist.get_rank())))

    def sum(self, values: torch.Tensor) -> torch.Tensor:
        """The sum over the processes (the tensor itself in one process)."""
        if self.distributed:
            import torch.distributed as dist

            values = values.clone()
            dist.all_reduce(values, op=dist.ReduceOp.SUM)
        return values

    def any(self, flag: bool, device) -> bool:
        """True on every process when it is true on one (so that all stop at the same step)."""
        return bool(self.sum(torch.tensor([float(flag)], device=device)).item() > 0)

    def barrier(self) -> None:
        if self.distributed:
            import torch.distributed as dist

            dist.barrier()
