"""Experiment assignment does not depend on the process: another interpreter, another hash seed,
the same groups (a subprocess, so not a unit test)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from gateway.domain.promotions.experiments import Experiment, Variant, assign


def test_assignment_is_the_same_in_another_process_with_another_hash_seed() -> None:
    keys = [f"customer-{i}" for i in range(50)] + ["wallet:Ω", ""]
    experiment = Experiment("exp-9", (Variant("A", 3), Variant("B", 2)), holdout_bp=500)
    here = [assign(experiment, k) for k in keys]
    code = (
        "import json, sys\n"
        "from gateway.domain.promotions.experiments import Experiment, Variant, assign\n"
        "e = Experiment('exp-9', (Variant('A', 3), Variant('B', 2)), holdout_bp=500)\n"
        "print(json.dumps([assign(e, k) for k in json.load(sys.stdin)]))\n"
    )
    for hash_seed in ("0", "4242"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        out = subprocess.run(
            [sys.executable, "-c", code],
            input=json.dumps(keys),
            capture_output=True,
            text=True,
            check=True,
            env=env,
            timeout=60,
        )
        assert json.loads(out.stdout) == here
