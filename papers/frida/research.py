"""The acceptance grid at research scale: full MNIST and Fashion-MNIST (70,000 images each), 100
clients of which a fraction is sampled each round, 10-30% free-riders, IID and Dirichlet 0.1/0.5,
3 seeds; ROC-AUC, F1 and rounds-to-detect of every detector (FRIDA's and the baselines').

    python -m papers.frida.research [workers=2] [seeds=[0]] ...

The same task as `python -m papers.frida.grid` with conf/frida/research.yaml (resumable: finished
cells are skipped). None of FRIDA's settings were chosen on these data: it is the held-out setting.
On 2 CPU cores it takes hours (README); it is not part of `make reproduce-frida`.
"""

from __future__ import annotations

from common.app import entrypoint
from papers.frida.config import GridConfig
from papers.frida.grid import run_grid


@entrypoint("frida/research", schema=GridConfig, x_axis="num_free_riders")
def main(cfg, run):
    return run_grid(cfg, run)


if __name__ == "__main__":
    main()
