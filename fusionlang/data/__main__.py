"""``python -m fusionlang.data``: generate the science study's datasets (docs/science.md, "Data").

    python -m fusionlang.data md --molecule ethanol --out data/md     # GFN2-xTB Langevin MD, resumable
    python -m fusionlang.data md --molecule all                       # ethanol, malonaldehyde, aspirin
    python -m fusionlang.data qm9 --out data/qm9                      # the QM9 subset
    python -m fusionlang.data cost                                    # CPU time per MD step of each molecule
"""
from __future__ import annotations

import argparse
import os
import sys

from .md import MDSettings, default_settings, generate_md, measure_step_cost
from .molecules import MOLECULES
from .qm9 import write_qm9_subset


def _parser() -> argparse.ArgumentParser:
    defaults = MDSettings()
    parser = argparse.ArgumentParser(prog="python -m fusionlang.data", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    md = commands.add_parser("md", help="molecular dynamics with GFN2-xTB (tblite), sampled into train/valid/test")
    md.add_argument("--molecule", default="all",
                    help="ethanol, aspirin, malonaldehyde, a name of ase's G2 set, or 'all' (default)")
    md.add_argument("--out", default="data/md", help="output root; the data go to OUT/MOLECULE (default data/md)")
    # every setting defaults to None: the molecule's default (fusionlang.data.md.MOLECULE_DEFAULTS) applies
    md.add_argument("--temperature", type=float, help=f"kelvin (default {defaults.temperature_K:g})")
    md.add_argument("--timestep", type=float, help=f"femtoseconds (default {defaults.timestep_fs:g})")
    md.add_argument("--friction", type=float,
                    help=f"Langevin friction per femtosecond (default {defaults.friction_per_fs:g})")
    md.add_argument("--equilibration-steps", type=int,
                    help=f"discarded steps before sampling (default {defaults.equilibration_steps}; aspirin 1000)")
    md.add_argument("--stride", type=int, help=f"MD steps between two samples (default {defaults.stride}; aspirin 10)")
    md.add_argument("--train", type=int, help=f"default {defaults.train}")
    md.add_argument("--valid", type=int, help=f"default {defaults.valid}")
    md.add_argument("--test", type=int, help=f"default {defaults.test}")
    md.add_argument("--seed", type=int, help=f"default {defaults.seed}")
    md.add_argument("--checkpoint-every", type=int, default=50, help="samples between two saved states")
    md.add_argument("--max-new-samples", type=int, default=None,
                    help="stop after this many new samples; a rerun continues")
    md.add_argument("--no-progress", action="store_true", help="no progress bar")

    cost = commands.add_parser("cost", help="measure the cost of one MD step per molecule (sizes the datasets)")
    cost.add_argument("--molecule", default="all", help="as for md (default: all)")
    cost.add_argument("--steps", type=int, default=200)

    qm9 = commands.add_parser("qm9", help="a fixed seeded subset of QM9 (from the qm9pack package)")
    qm9.add_argument("--out", default="data/qm9", help="output directory (default data/qm9)")
    qm9.add_argument("--train", type=int, default=2000)
    qm9.add_argument("--valid", type=int, default=200)
    qm9.add_argument("--test", type=int, default=2000)
    qm9.add_argument("--seed", type=int, default=0)
    return parser


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "md":
            # one OpenMP thread: tblite's threads only fight each other (and everyone else) on a small machine
            os.environ.setdefault("OMP_NUM_THREADS", "1")
            given = {"temperature_K": args.temperature, "timestep_fs": args.timestep, "friction_per_fs": args.friction,
                     "equilibration_steps": args.equilibration_steps, "stride": args.stride, "train": args.train,
                     "valid": args.valid, "test": args.test, "seed": args.seed}
            overrides = {key: value for key, value in given.items() if value is not None}
            for key in ("train", "valid", "test", "equilibration_steps", "seed"):
                if overrides.get(key, 0) < 0:
                    raise ValueError(f"--{key.replace('_', '-')} must be >= 0, got {overrides[key]}")
            if overrides.get("stride", 1) < 1 or args.checkpoint_every < 1:
                raise ValueError("--stride and --checkpoint-every must be >= 1")
            for key in ("temperature_K", "timestep_fs"):
                if overrides.get(key, 1.0) <= 0:
                    raise ValueError("--temperature and --timestep must be > 0")
            if overrides.get("friction_per_fs", 0.0) < 0:
                raise ValueError("--friction must be >= 0")
            molecules = MOLECULES if args.molecule == "all" else [args.molecule]
            for molecule in molecules:
                settings = default_settings(molecule, **overrides)
                generate_md(molecule, args.out, settings, checkpoint_every=args.checkpoint_every,
                            max_new_samples=args.max_new_samples, progress=not args.no_progress)
        elif args.command == "cost":
            os.environ.setdefault("OMP_NUM_THREADS", "1")
            if args.steps < 1:
                raise ValueError(f"--steps must be >= 1, got {args.steps}")
            for molecule in MOLECULES if args.molecule == "all" else [args.molecule]:
                cost = measure_step_cost(molecule, args.steps)
                total = default_settings(molecule).total_steps
                print(f"{molecule:14s} {cost['atoms']:3d} atoms  {cost['cpu_ms_per_step']:7.2f} ms CPU "
                      f"({cost['wall_ms_per_step']:7.2f} ms wall) per step; the default dataset's {total} steps: "
                      f"{total * cost['cpu_ms_per_step'] / 60000:.1f} CPU minutes", flush=True)
        else:
            write_qm9_subset(args.out, train=args.train, valid=args.valid, test=args.test, seed=args.seed)
    except (ValueError, RuntimeError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: the last saved state is kept; rerun the same command to continue", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
