"""The training loop: data, model, optimizer, schedule, EMA, early stopping, checkpoints, resume, DDP."""
from __future__ import annotations

import importlib
import json
import math
import os
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch

from fusionlang.diagnostics import FusionError
from fusionlang.data import atomic_reference_energies, average_num_neighbors, collate, load_split
from fusionlang.models import build_model

from .config import Config
from .evaluate import EnergyAndForces, error_sums, evaluate, loss_from_sums, merge, metrics_from_sums
from .state import LearningRate, ProcessGroup, WeightAverage, epoch_batches

CHECKPOINT = "checkpoint.pt"     # the latest state, for --resume
BEST = "best.pt"                 # the weights with the best validation loss at the end of an epoch
FINAL = "model.pt"               # the weights evaluated on the test set (for the Calculator)
METRICS = "metrics.json"         # written when the run is finished
CHECKPOINT_FORMAT = 1


class TrainingError(FusionError):
    """A run that cannot start or continue (a message for the user, not a bug)."""

    def __init__(self, message: str):
        Exception.__init__(self, message)
        self.diagnostics, self.source = [], None


# --- data -------------------------------------------------------------------------------------------

def _with_labels(atoms):
    """Energies and forces in atoms.info / atoms.arrays, wherever a reader put them."""
    calc = atoms.calc
    if calc is not None:
        results = getattr(calc, "results", {})
        if "energy" in results and "energy" not in atoms.info:
            atoms.info["energy"] = float(results["energy"])
        if "forces" in results and "forces" not in atoms.arrays:
            atoms.arrays["forces"] = np.asarray(results["forces"], dtype=float)
        atoms.calc = None
    return atoms


def load_structures(config: Config) -> dict[str, list]:
    """The train/valid/test structures (lists of ase.Atoms), cut to the configured sizes."""
    data = config.data
    splits = {}
    for split in ("train", "valid", "test"):
        size = getattr(data, f"{split}_size")
        if data.dataset:
            try:
                structures = load_split(data.dataset, split, root=data.root)
            except FileNotFoundError as exc:
                raise TrainingError(str(exc)) from None
        else:
            path = getattr(data, f"{split}_file")
            if not path:
                structures = []
            else:
                import ase.io

                try:
                    structures = [_with_labels(a) for a in ase.io.read(path, index=":")]
                except FileNotFoundError:
                    raise TrainingError(f"`data.{split}_file`: no such file: {path}") from None
        splits[split] = list(structures[:size] if size else structures)
    if not splits["train"]:
        raise TrainingError("the training set is empty")
    return splits


def _one_structure_batches(structures, cutoff, dtype):
    return [collate([atoms], cutoff, dtype=dtype) for atoms in structures]


# --- model ------------------------------------------------------------------------------------------

def build(name: str, **kwargs) -> torch.nn.Module:
    """A model by name: one of fusionlang.models' names, or "package.module:function" for your own builder
    (called with the same keywords as fusionlang.models.build_model)."""
    if ":" in name:
        module_name, function_name = name.split(":", 1)
        try:
            builder = getattr(importlib.import_module(module_name), function_name)
        except (ImportError, AttributeError) as exc:
            raise TrainingError(f"model `{name}`: cannot import it ({exc})") from None
        return builder(**kwargs)
    return build_model(name, **kwargs)


def count_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _model_keywords(config: Config, train_structures) -> dict:
    """build_model's keywords from the training set: the species, the least-squares atomic energies E0,
    the mean number of neighbours, and the scale/shift of the learned per-atom energies (the RMS of the
    force components, or without forces the spread of the per-atom energies left after E0; the mean
    of the latter as the shift).  Keys of [model] override any of them."""
    species = sorted({int(z) for atoms in train_structures for z in atoms.numbers})
    keywords = {"species": species, "cutoff": config.data.cutoff,
                "avg_num_neighbors": float(average_num_neighbors(train_structures, config.data.cutoff))}
    if "energy" in train_structures[0].info:
        reference = {int(z): float(e) for z, e in atomic_reference_energies(train_structures).items()}
        keywords["atomic_energies"] = reference
        left = np.array([(atoms.info["energy"] - sum(reference[int(z)] for z in atoms.numbers)) / len(atoms)
                         for atoms in train_structures])
        forces = [atoms.arrays["forces"] for atoms in train_structures if "forces" in atoms.arrays]
        if forces:
            scale = float(np.sqrt(np.mean(np.concatenate(forces) ** 2)))
        else:
            scale = float(np.std(left))
        keywords["scale"] = scale if scale > 0 else 1.0
        keywords["shift"] = float(np.mean(left))
    keywords.update(config.model_options)
    return keywords


# --- checkpoints ------------------------------------------------------------------------------------

def _rng_states() -> dict:
    states = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def _set_rng_states(states: dict) -> None:
    torch.set_rng_state(states["torch"])
    np.random.set_state(states["numpy"])
    random.setstate(states["python"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def _save(payload: dict, path: Path) -> None:
    """Written to a temporary name and renamed, so an interruption never leaves half a checkpoint."""
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


# --- training -------------------------------------------------------------------------------------

def _resolve_device(kind: str, group_local_rank: int = 0) -> torch.device:
    if kind == "auto":
        kind = "cuda" if torch.cuda.is_available() else "cpu"
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise TrainingError("`train.device = \"cuda\"` but torch sees no CUDA device")
        return torch.device("cuda", group_local_rank)
    return torch.device("cpu")


def _progress(iterable, total, enabled, description):
    if not enabled:
        return iterable
    try:
        from tqdm import tqdm
    except ImportError:   # tqdm comes with the science extra; without it, only the per-epoch lines
        return iterable
    return tqdm(iterable, total=total, desc=description, leave=False, dynamic_ncols=True, file=sys.stderr)


class Trainer:
    """One training run (one process of it under torchrun).  `run()` trains until a limit, early stopping
    or the budget stops it, then evaluates the final weights and writes metrics.json."""

    def __init__(self, config: Config, out_dir: str | Path | None = None, resume: bool = False,
                 callbacks=(), log=print):
        self.config = config
        self.settings = config.train
        self.out = Path(out_dir or config.output.dir)
        self.resume = resume
        self.callbacks = list(callbacks)
        self.log = log
        self.dtype = torch.float64 if self.settings.dtype == "float64" else torch.float32
        wanted = self.settings.device
        if wanted == "auto":
            wanted = "cuda" if torch.cuda.is_available() else "cpu"
        self.group = ProcessGroup.from_environment(wanted)
        self.device = _resolve_device(wanted, self.group.local_rank)
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
        if self.settings.batch_size < self.group.world_size:
            raise TrainingError(f"`train.batch_size` ({self.settings.batch_size}) is smaller than the number of "
                                f"processes ({self.group.world_size}): every process needs a share of each batch")
        if self.settings.threads:
            torch.set_num_threads(self.settings.threads)

    def say(self, text: str) -> None:
        if self.group.is_main:
            self.log(text)

    # -- set-up --
    def _prepare(self) -> None:
        checkpoint_path = self.out / CHECKPOINT
        if checkpoint_path.exists() and not self.resume:
            raise TrainingError(f"{checkpoint_path} exists: continue it with --resume, or choose another --out")
        seed_everything(self.settings.seed)
        structures = load_structures(self.config)
        self.items = {split: _one_structure_batches(s, self.config.data.cutoff, self.dtype)
                      for split, s in structures.items()}
        self.train_atoms = [item.graph.num_nodes for item in self.items["train"]]
        self.with_forces = self.items["train"][0].forces is not None
        self.forces_weight = self.settings.forces_weight if self.with_forces else 0.0
        self.model_keywords = _model_keywords(self.config, structures["train"])
        self.model = build(self.config.model_name, **self.model_keywords).to(device=self.device, dtype=self.dtype)
        self.model_config = dict(getattr(self.model, "config", self.model_keywords))
        self.parameters = count_parameters(self.model)
        self.steps_per_epoch = len(epoch_batches(len(self.items["train"]), self.settings.batch_size,
                                                 self.settings.seed, 0, self.group.world_size))
        s = self.settings
        trainable = [p for p in self.model.parameters() if p.requires_grad]
        if s.optimizer == "adamw":
            self.optimizer = torch.optim.AdamW(trainable, lr=s.lr, weight_decay=s.weight_decay)
        elif s.optimizer == "sgd":
            self.optimizer = torch.optim.SGD(trainable, lr=s.lr, momentum=0.9, weight_decay=s.weight_decay)
        else:
            self.optimizer = torch.optim.Adam(trainable, lr=s.lr, weight_decay=s.weight_decay,
                                              amsgrad=s.optimizer == "amsgrad")
        self.schedule = LearningRate(s, self.steps_per_epoch)
        self.average = WeightAverage(self.model, s.ema_decay) if s.ema_decay > 0 else None
        self.epoch = 0                 # epochs completed
        self.step_in_epoch = 0         # global batches of the current epoch already trained on
        self.global_step = 0
        self.epoch_sums = None
        self.best_valid_loss = math.inf
        self.epochs_without_improvement = 0
        self.history: list[dict] = []
        self.elapsed = 0.0             # seconds of training, over every resume
        self.stopped = None
        if checkpoint_path.exists():
            self._load(checkpoint_path)
            self.say(f"resuming {checkpoint_path}: epoch {self.epoch}, step {self.global_step}")
        self.out.mkdir(parents=True, exist_ok=True)
        self.wrapped = EnergyAndForces(self.model)
        if self.group.distributed:
            from torch.nn.parallel import DistributedDataParallel

            # static_graph: the reducer learns after the first step which parameters a (force) loss reaches,
            # including through the double backward, and which it never reaches.
            self.wrapped = DistributedDataParallel(
                self.wrapped, device_ids=[self.device.index] if self.device.type == "cuda" else None,
                static_graph=True)

    def _payload(self, model_state) -> dict:
        return {"format": CHECKPOINT_FORMAT, "model_name": self.config.model_name, "model_config": self.model_config,
                "model_state": model_state, "dtype": self.settings.dtype, "parameters": self.parameters,
                "config": self.config.to_dict(), "epoch": self.epoch}

    def _averaged_state(self) -> dict:
        return self.average.shadow if self.average is not None else self.model.state_dict()

    def _save_checkpoint(self) -> None:
        if not self.group.is_main:
            return
        payload = self._payload(self._averaged_state())
        payload.update({
            "train_model_state": self.model.state_dict(), "optimizer_state": self.optimizer.state_dict(),
            "schedule_state": self.schedule.state_dict(),
            "ema_state": self.average.state_dict() if self.average is not None else None,
            "step_in_epoch": self.step_in_epoch, "global_step": self.global_step, "epoch_sums": self.epoch_sums,
            "best_valid_loss": self.best_valid_loss, "epochs_without_improvement": self.epochs_without_improvement,
            "history": self.history, "elapsed_seconds": self._seconds(), "stopped": self.stopped,
            "rng_states": _rng_states(), "world_size": self.group.world_size,
        })
        _save(payload, self.out / CHECKPOINT)

    def _load(self, path: Path) -> None:
        state = torch.load(path, map_location="cpu", weights_only=False)   # RNG states must stay on the CPU
        if state.get("format") != CHECKPOINT_FORMAT:
            raise TrainingError(f"{path} is not a checkpoint of this trainer (format {state.get('format')})")
        if state["model_name"] != self.config.model_name:
            raise TrainingError(f"{path} holds model `{state['model_name']}`, the config asks for "
                                f"`{self.config.model_name}`")
        self.model.load_state_dict(state["train_model_state"])
        self.optimizer.load_state_dict(state["optimizer_state"])
        self.schedule.load_state_dict(state["schedule_state"])
        if self.average is not None and state["ema_state"] is not None:
            self.average.load_state_dict(state["ema_state"])
        self.epoch, self.step_in_epoch = state["epoch"], state["step_in_epoch"]
        self.global_step, self.epoch_sums = state["global_step"], state["epoch_sums"]
        if self.epoch_sums is not None:
            self.epoch_sums = self.epoch_sums.to(self.device)
        self.best_valid_loss = state["best_valid_loss"]
        self.epochs_without_improvement = state["epochs_without_improvement"]
        self.history, self.elapsed = state["history"], state["elapsed_seconds"]
        _set_rng_states(state["rng_states"])

    # -- the loop --
    def _seconds(self) -> float:
        """Training time so far, over every resume."""
        return self.elapsed + time.perf_counter() - self.started

    def _limit_reached(self) -> str | None:
        s = self.settings
        if s.max_steps and self.global_step >= s.max_steps:
            return "max_steps"
        if s.max_minutes and self._seconds() >= 60 * s.max_minutes:
            return "max_minutes"
        return None

    def _validate(self) -> dict:
        valid = self.items["valid"] or self.items["train"]
        kwargs = dict(batch_size=self.settings.eval_batch_size, energy_weight=self.settings.energy_weight,
                      forces_weight=self.forces_weight, device=self.device, group=self.group)
        if self.average is not None:
            with self.average.applied(self.model):
                return evaluate(self.model, valid, **kwargs)
        return evaluate(self.model, valid, **kwargs)

    def _train_step(self, indices: list[int]) -> torch.Tensor:
        s, group = self.settings, self.group
        shard = merge([self.items["train"][i] for i in indices[group.rank::group.world_size]]).to(self.device)
        for group_ in self.optimizer.param_groups:
            group_["lr"] = self.schedule.at(self.global_step)
        self.optimizer.zero_grad(set_to_none=True)
        energy, forces = self.wrapped(shard.graph, forces=self.with_forces and self.forces_weight > 0,
                                      create_graph=True)
        sums = error_sums(energy, forces, shard)
        # The loss of the global batch, as this process's share: its sums divided by the global counts
        # (every process knows them), times world_size because DDP averages the gradients.
        loss = group.world_size * loss_from_sums(sums, s.energy_weight, self.forces_weight, len(indices),
                                                 3 * sum(self.train_atoms[i] for i in indices))
        loss.backward()
        if s.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), s.grad_clip)
        self.optimizer.step()
        if self.average is not None:
            self.average.update(self.model)
        self.global_step += 1
        return sums.detach()

    def run(self) -> dict:
        self._prepare()
        s = self.settings
        self.started = time.perf_counter()
        reason = self._limit_reached()
        if self.epochs_without_improvement and s.early_stopping_patience and \
                self.epochs_without_improvement >= s.early_stopping_patience:
            reason = "early_stopping"
        while reason is None and self.epoch < s.max_epochs:
            batches = epoch_batches(len(self.items["train"]), s.batch_size, s.seed, self.epoch, self.group.world_size)
            bar = _progress(range(self.step_in_epoch, len(batches)), len(batches) - self.step_in_epoch,
                            s.progress and self.group.is_main, f"epoch {self.epoch + 1}/{s.max_epochs}")
            for position in bar:
                part = self._train_step(batches[position])
                self.epoch_sums = part if self.epoch_sums is None else self.epoch_sums + part
                self.step_in_epoch = position + 1
                if hasattr(bar, "set_postfix"):
                    running = self._metrics(self.epoch_sums, local=True)
                    bar.set_postfix({k: f"{v:.4g}" for k, v in running.items()}, refresh=False)
                if self.group.any(self._limit_reached() is not None, self.device):
                    reason = self._limit_reached() or "max_minutes"
                    break
            if hasattr(bar, "close"):
                bar.close()
            if reason is not None and self.step_in_epoch < len(batches):
                break            # stopped inside the epoch: the checkpoint below lets a resume finish it
            reason = self._end_epoch() or reason
        self.stopped = reason or "max_epochs"
        self._save_checkpoint()
        self.elapsed, self.started = self._seconds(), time.perf_counter()
        return self._finish()

    def _metrics(self, sums: torch.Tensor, local: bool = False) -> dict:
        totals = sums if local else self.group.sum(sums)
        metrics = metrics_from_sums(totals, self.settings.energy_weight, self.forces_weight)
        keep = {"loss": metrics["loss"]}
        if "energy_mae_meV" in metrics:
            keep["E_meV"] = metrics["energy_mae_meV"]
        if "forces_mae_meV_per_A" in metrics:
            keep["F_meV/A"] = metrics["forces_mae_meV_per_A"]
        return keep

    def _end_epoch(self) -> str | None:
        s = self.settings
        train_metrics = self._metrics(self.epoch_sums)
        valid = self._validate()
        self.schedule.epoch_end(valid["loss"])
        self.epoch += 1
        self.step_in_epoch = 0
        self.epoch_sums = None
        improved = valid["loss"] < self.best_valid_loss
        if improved:
            self.best_valid_loss = valid["loss"]
            self.epochs_without_improvement = 0
        else:
            self.epochs_without_improvement += 1
        record = {"epoch": self.epoch, "step": self.global_step, "lr": self.schedule.at(self.global_step),
                  "seconds": self._seconds(),
                  "train_loss": train_metrics["loss"],
                  **{f"valid_{k}": v for k, v in valid.items() if k != "structures"}}
        self.history.append(record)
        shown = f"epoch {self.epoch:4d}  train loss {record['train_loss']:.4g}  valid loss {valid['loss']:.4g}"
        if "energy_mae_meV" in valid:
            shown += f"  E {valid['energy_mae_meV']:.2f} meV"
        if "forces_mae_meV_per_A" in valid:
            shown += f"  F {valid['forces_mae_meV_per_A']:.2f} meV/A"
        self.say(shown + f"  lr {record['lr']:.3g}  {record['seconds']:.0f} s" + ("  *" if improved else ""))
        if improved and self.group.is_main:
            _save(self._payload(self._averaged_state()) | {"valid": valid}, self.out / BEST)
        reason = None
        if s.early_stopping_patience and self.epochs_without_improvement >= s.early_stopping_patience:
            reason = "early_stopping"
        reason = reason or self._limit_reached()
        self._save_checkpoint()
        for callback in self.callbacks:
            callback(self, record)
        return reason

    # -- the end --
    def _finish(self) -> dict:
        """The final weights (the best by validation loss among the best epoch's and the current averaged
        ones), evaluated on valid and test; model.pt and metrics.json written."""
        s = self.settings
        candidates = []
        best_path = self.out / BEST
        self.group.barrier()
        if best_path.exists():
            candidates.append(("best epoch", torch.load(best_path, map_location=self.device,
                                                        weights_only=False)["model_state"]))
        if not candidates or self.step_in_epoch:
            candidates.append(("end of training", {k: v.clone() for k, v in self._averaged_state().items()}))
        trained = {k: v.clone() for k, v in self.model.state_dict().items()}
        kwargs = dict(batch_size=s.eval_batch_size, energy_weight=s.energy_weight,
                      forces_weight=self.forces_weight, device=self.device, group=self.group)
        chosen = None
        for label, weights in candidates:
            self.model.load_state_dict(weights)
            valid = evaluate(self.model, self.items["valid"] or self.items["train"], **kwargs)
            if chosen is None or valid["loss"] < chosen[2]["loss"]:
                chosen = (label, weights, valid)
        label, weights, valid = chosen
        self.model.load_state_dict(weights)
        test = evaluate(self.model, self.items["test"], **kwargs) if self.items["test"] else None
        self.model.load_state_dict(trained)
        results = {
            "model_name": self.config.model_name, "model_config": self.model_config, "parameters": self.parameters,
            "dataset": self.config.data.dataset or self.config.data.train_file,
            "sizes": {split: len(items) for split, items in self.items.items()},
            "seed": s.seed, "dtype": s.dtype, "device": str(self.device), "world_size": self.group.world_size,
            "stopped": self.stopped, "epochs": self.epoch, "steps": self.global_step,
            "train_seconds": self.elapsed, "final_weights": label,
            "valid": valid, "test": test, "history": self.history, "config": self.config.to_dict(),
        }
        if self.group.is_main:
            _save(self._payload(weights) | {"valid": valid, "test": test}, self.out / FINAL)
            tmp = self.out / (METRICS + ".tmp")
            tmp.write_text(json.dumps(results, indent=1, default=float) + "\n", encoding="utf-8")
            os.replace(tmp, self.out / METRICS)
            summary = f"done ({self.stopped}, {self.epoch} epochs, {self.elapsed:.0f} s, {self.parameters} parameters)"
            if test and "energy_mae_meV" in test:
                summary += f": test E MAE {test['energy_mae_meV']:.2f} meV"
            if test and "forces_mae_meV_per_A" in test:
                summary += f", F MAE {test['forces_mae_meV_per_A']:.2f} meV/A"
            self.say(summary)
        self.group.barrier()
        return results


def train(config: Config, out_dir=None, resume: bool = False, callbacks=(), log=print) -> dict:
    """Train as configured; returns what metrics.json holds."""
    return Trainer(config, out_dir, resume, callbacks, log).run()
