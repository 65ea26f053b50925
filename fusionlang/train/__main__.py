"""`python -m fusionlang.train --config FILE [--resume] [--out DIR]` (also under torchrun)."""
from __future__ import annotations

import argparse
import sys

import torch.distributed as dist

from .config import ConfigError, load_config
from .trainer import TrainingError, train


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fusionlang.train",
                                     description="Train an energy/force model as a TOML config file says "
                                                 "(docs/training.md). Runs unchanged under torchrun.")
    parser.add_argument("--config", required=True, help="the TOML config file")
    parser.add_argument("--resume", action="store_true",
                        help="continue from OUT/checkpoint.pt when there is one (a finished run is only re-evaluated)")
    parser.add_argument("--out", help="the output folder (default: [output] dir of the config)")
    args = parser.parse_args(argv)

    try:
        config = load_config(args.config)
        train(config, out_dir=args.out, resume=args.resume)
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return exc.exit_code
    except TrainingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: the last epoch's checkpoint is kept; --resume continues from it", file=sys.stderr)
        return 130
    finally:
        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
