"""PyTorch reference for fedsim's training benchmark (bench/sections/training.ts runs it).

Trains the same architectures as common/models/zoo.ts with plain SGD and cross-entropy on the
examples bench/sections/training.ts writes to --data, and prints one JSON object with examples/s per case.

Run it with Debian's /usr/bin/python3 (the one with torch), OPENBLAS_NUM_THREADS=1 and, when the CPU
is newer than OpenBLAS 0.3.21 knows, OPENBLAS_CORETYPE set (see /work/shared/MEASURED.md).
"""

import argparse
import ctypes
import ctypes.util
import json
import os
import sys
import time


def fail(message):
    print(json.dumps({"available": False, "reason": message}))
    sys.exit(0)


try:
    import numpy as np
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except Exception as exc:  # noqa: BLE001 - any import failure means "no reference"
    fail(f"cannot import torch/numpy with {sys.executable}: {exc}")


def blas_library():
    """The BLAS torch really calls: the libblas.so.3 mapped into this process."""
    try:
        with open("/proc/self/maps") as maps:
            for line in maps:
                path = line.split()[-1] if len(line.split()) >= 6 else ""
                if "blas" in os.path.basename(path) and ".so" in path:
                    return os.path.realpath(path)
    except OSError:
        pass
    found = ctypes.util.find_library("blas")
    return found


def openblas_config(path):
    if not path:
        return None
    try:
        lib = ctypes.CDLL(path)
        get_config = lib.openblas_get_config
    except (OSError, AttributeError):
        return None
    get_config.restype = ctypes.c_char_p
    return get_config().decode()


class TwoNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(784, 200)
        self.fc2 = nn.Linear(200, 200)
        self.out = nn.Linear(200, 10)

    def forward(self, x):
        x = x.reshape(x.shape[0], -1)
        return self.out(F.relu(self.fc2(F.relu(self.fc1(x)))))


class CNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 5, padding=2)
        self.conv2 = nn.Conv2d(32, 64, 5, padding=2)
        self.fc1 = nn.Linear(7 * 7 * 64, 512)
        self.out = nn.Linear(512, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = x.reshape(x.shape[0], -1)
        return self.out(F.relu(self.fc1(x)))


MODELS = {"mnist-2nn": TwoNN, "mnist-cnn": CNN}


def run_case(name, batch, steps, warmup, repeats, images, labels, lr):
    torch.manual_seed(0)
    model = MODELS[name]()
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    n = images.shape[0]
    rng = np.random.default_rng(0)
    order = rng.permutation(n)
    cursor = 0

    def step():
        nonlocal cursor, order
        if cursor + batch > n:
            order = rng.permutation(n)
            cursor = 0
        rows = order[cursor : cursor + batch]
        cursor += batch
        # NHWC examples as fedsim stores them, turned into torch's NCHW per batch like a loader would.
        x = torch.from_numpy(images[rows]).permute(0, 3, 1, 2).contiguous()
        y = torch.from_numpy(labels[rows])
        optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()

    for _ in range(warmup):
        step()
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(steps):
            step()
        rates.append(steps * batch / (time.perf_counter() - start))
    rates.sort()
    return rates[len(rates) // 2]


def best_over_threads(spec, thread_counts, images, labels, lr):
    """Median rate per thread count, keeping the fastest: on a loaded machine torch's intra-op
    threads can collapse (spinning workers fighting other processes), and the reference should be
    the best PyTorch can do here, not its worst."""
    name, batch, steps, warmup, repeats = spec.split(":")
    best = None
    for threads in thread_counts:
        torch.set_num_threads(threads)
        rate = run_case(name, int(batch), int(steps), int(warmup), int(repeats), images, labels, lr)
        if best is None or rate > best["examplesPerSec"]:
            best = {
                "model": name,
                "batch": int(batch),
                "steps": int(steps),
                "repeats": int(repeats),
                "threads": threads,
                "examplesPerSec": rate,
            }
    return best


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", required=True, help="raw float32 NHWC images, n x 28 x 28 x 1")
    parser.add_argument("--labels", required=True, help="raw int32 labels")
    parser.add_argument("--threads", required=True, help="comma-separated torch thread counts to try, e.g. 1,2")
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument(
        "--case",
        action="append",
        required=True,
        help="model:batch:steps:warmup:repeats, e.g. mnist-cnn:10:60:5:3",
    )
    args = parser.parse_args()

    thread_counts = [int(t) for t in args.threads.split(",")]
    images = np.fromfile(args.data, dtype=np.float32).reshape(-1, 28, 28, 1)
    labels = np.fromfile(args.labels, dtype=np.int32).astype(np.int64)
    results = []
    for spec in args.case:
        results.append(best_over_threads(spec, thread_counts, images, labels, args.lr))
    blas = blas_library()
    print(
        json.dumps(
            {
                "available": True,
                "python": sys.version.split()[0],
                "torch": torch.__version__,
                "torchThreadsTried": thread_counts,
                "blas": blas,
                "openblasConfig": openblas_config(blas),
                "coretype": os.environ.get("OPENBLAS_CORETYPE"),
                "openblasNumThreads": os.environ.get("OPENBLAS_NUM_THREADS"),
                "results": results,
            }
        )
    )


if __name__ == "__main__":
    main()
