"""One PyTorch training process of the parallelism section's reference (bench/parallel-torch.ts
starts two of them, as bench/sections/parallel.ts forks two fedsim processes).

Trains torch_reference.py's CNN (the same architecture as fedsim's "mnist-cnn") with plain SGD and
cross-entropy on the examples in --data, one torch thread, one OpenBLAS thread (the parent sets
OPENBLAS_NUM_THREADS and OPENBLAS_CORETYPE, see /work/shared/MEASURED.md). It warms up, prints a
"ready" JSON line with its per-step time, then serves lines from stdin:

    run STEPS SEED   train STEPS steps, print {"type": "done", "examples", "start", "end",
                     "cpuSeconds"}: start/end from time.time() (seconds since the epoch), CPU
                     seconds from time.process_time() (all threads of this process)
    exit             (or end of input) quit

Without torch, importing torch_reference prints {"available": false, "reason": ...} and exits.
"""

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from torch_reference import CNN  # noqa: E402 - prints "available": false and exits when torch is missing

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402


def send(message):
    print(json.dumps(message), flush=True)


def make_step(model, optimizer, images, labels, batch):
    """One SGD step on the next shuffled batch; the order is reshuffled by reseed(seed)."""
    n = images.shape[0]
    state = {"order": np.arange(n), "cursor": n, "rng": np.random.default_rng(0)}

    def reseed(seed):
        state["rng"] = np.random.default_rng(seed)
        state["cursor"] = n

    def step():
        if state["cursor"] + batch > n:
            state["order"] = state["rng"].permutation(n)
            state["cursor"] = 0
        rows = state["order"][state["cursor"] : state["cursor"] + batch]
        state["cursor"] += batch
        # NHWC examples as fedsim stores them, turned into torch's NCHW per batch like a loader would.
        x = torch.from_numpy(images[rows]).permute(0, 3, 1, 2).contiguous()
        y = torch.from_numpy(labels[rows])
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        optimizer.step()

    return step, reseed


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", required=True, help="raw float32 NHWC images, n x 28 x 28 x 1")
    parser.add_argument("--labels", required=True, help="raw int32 labels")
    parser.add_argument("--batch", type=int, default=10)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.set_num_threads(1)
    torch.set_num_interop_threads(1)
    images = np.fromfile(args.data, dtype=np.float32).reshape(-1, 28, 28, 1)
    labels = np.fromfile(args.labels, dtype=np.int32).astype(np.int64)
    torch.manual_seed(args.seed)
    model = CNN()
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr)
    step, reseed = make_step(model, optimizer, images, labels, args.batch)

    # The first step carries one-off costs; the per-step time is judged from the ones after it.
    ends = []
    for _ in range(max(2, args.warmup)):
        step()
        ends.append(time.perf_counter())
    send(
        {
            "type": "ready",
            "available": True,
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "secondsPerStep": (ends[-1] - ends[0]) / (len(ends) - 1),
        }
    )

    for line in sys.stdin:
        parts = line.split()
        if not parts:
            continue
        if parts[0] == "exit":
            break
        try:
            if parts[0] != "run" or len(parts) != 3:
                raise ValueError(f"unknown command {line.strip()!r}")
            steps, seed = int(parts[1]), int(parts[2])
            reseed(seed)
            cpu = time.process_time()
            start = time.time()
            for _ in range(steps):
                step()
            end = time.time()
            cpu_seconds = time.process_time() - cpu
            send(
                {
                    "type": "done",
                    "examples": steps * args.batch,
                    "start": start,
                    "end": end,
                    "cpuSeconds": cpu_seconds,
                }
            )
        except Exception as exc:  # noqa: BLE001 - reported to the parent, which gives up the reference
            send({"type": "error", "message": f"{type(exc).__name__}: {exc}"})


if __name__ == "__main__":
    main()
