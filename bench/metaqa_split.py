"""Split MetaQA's development questions into a training part and a held-out part, per hop count.

The official test questions are not used anywhere. Usage:
    python -m bench.metaqa_split OUT_DIR [--holdout 0.2] [--seed 0]
writes OUT_DIR/{1,2,3}-hop/{train,heldout}.txt in MetaQA's own format.
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

from graphfuse.gnn.formats.datasets import shared_data_dir


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("out", type=Path)
    parser.add_argument("--holdout", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    for hops in (1, 2, 3):
        source = shared_data_dir() / "metaqa" / f"{hops}-hop" / "qa_dev.txt"
        lines = [line for line in source.read_text(encoding="utf-8").splitlines() if line.strip()]
        random.Random(args.seed + hops).shuffle(lines)
        cut = int(len(lines) * args.holdout)
        folder = args.out / f"{hops}-hop"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "heldout.txt").write_text("\n".join(lines[:cut]) + "\n", encoding="utf-8")
        (folder / "train.txt").write_text("\n".join(lines[cut:]) + "\n", encoding="utf-8")
        print(f"{hops}-hop: {len(lines) - cut} train, {cut} held out -> {folder}")


if __name__ == "__main__":
    main()
