"""PyTorch FedAvg reference for fedsim's time-to-accuracy benchmark (bench/time-to-accuracy.ts runs it).

Reads the federation fedsim exported (bench/fedavg-export.ts: the same train/test arrays, each
client's partition indices and the initial global weights), then runs FedAvg like a simulation:
every round, each client starts from the global weights and trains E epochs of minibatch SGD
(batch B, learning rate lr) on its own examples; the global model becomes the example-count-weighted
mean of the clients' models; the test set is evaluated. The clients train one after another in this
process on --threads torch threads, or (--workers N) split over N forked processes of one thread each.
Prints one JSON object: when each round ended (the wall clock, so the caller can count from the
moment it launched this process) and the accuracy after it.

Run it with Debian's /usr/bin/python3 and OPENBLAS_NUM_THREADS=1 (bench/references/torch-reference.ts
sets the OpenBLAS configuration for the child).
"""

import argparse
import json
import multiprocessing
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from torch_reference import blas_library, openblas_config  # noqa: E402 (also reports a missing torch)

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

MAGIC = b"FSFEDAV1"


def read_export(path):
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:8] != MAGIC:
        raise ValueError(f"{path} is not a fedsim FedAvg export")
    header_length = int.from_bytes(raw[8:12], "little")
    header = json.loads(raw[12 : 12 + header_length].decode("utf-8"))
    offset = 12 + header_length
    blocks = {}
    for block in header["blocks"]:
        dtype = np.float32 if block["dtype"] == "float32" else np.int32
        # Copied: frombuffer views of bytes are read-only, and torch wants writable arrays.
        blocks[block["name"]] = np.frombuffer(raw, dtype=dtype, count=block["length"], offset=offset).copy()
        offset += block["length"] * 4
    shape = header["exampleShape"]
    clients = []
    start = 0
    for size in header["clientSizes"]:
        clients.append(blocks["clientIndices"][start : start + size].astype(np.int64))
        start += size
    return {
        "header": header,
        "train_x": blocks["trainX"].reshape(header["nTrain"], *shape),
        "train_y": blocks["trainY"].astype(np.int64),
        "test_x": blocks["testX"].reshape(header["nTest"], *shape),
        "test_y": blocks["testY"].astype(np.int64),
        "clients": clients,
        "weights": blocks["initialWeights"],
    }


class TwoNN(nn.Module):
    """fedsim's mnist-2nn: flatten, 200 relu, 200 relu, softmax (logits here, the loss applies it)."""

    def __init__(self, inputs, classes):
        super().__init__()
        self.fc1 = nn.Linear(inputs, 200)
        self.fc2 = nn.Linear(200, 200)
        self.out = nn.Linear(200, classes)

    def forward(self, x):
        x = x.reshape(x.shape[0], -1)
        return self.out(F.relu(self.fc2(F.relu(self.fc1(x)))))


class CNN(nn.Module):
    """fedsim's mnist-cnn on NHWC input; flattened in NHWC order, as tfjs flattens."""

    def __init__(self, channels, classes):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, 32, 5, padding=2)
        self.conv2 = nn.Conv2d(32, 64, 5, padding=2)
        self.fc1 = nn.Linear(7 * 7 * 64, 512)
        self.out = nn.Linear(512, classes)

    def forward(self, x):
        x = x.permute(0, 3, 1, 2)
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = x.permute(0, 2, 3, 1).reshape(x.shape[0], -1)
        return self.out(F.relu(self.fc1(x)))


def build_model(name, shape, classes):
    if name == "mnist-2nn":
        return TwoNN(int(np.prod(shape)), classes)
    if name == "mnist-cnn":
        return CNN(shape[-1], classes)
    raise ValueError(f"model {name} has no PyTorch twin here (mnist-2nn, mnist-cnn)")


def load_tfjs_weights(model, specs, flat):
    """fedsim's tensors, in layer order (kernel, bias), into the torch layers of the same order:
    dense kernels [in, out] become weight [out, in]; conv kernels [h, w, in, out] become [out, in, h, w]."""
    params = [p for _, p in model.named_parameters()]
    if len(params) != len(specs):
        raise ValueError(f"{len(specs)} fedsim tensors for {len(params)} torch parameters")
    offset = 0
    with torch.no_grad():
        for param, spec in zip(params, specs):
            size = int(np.prod(spec["shape"]))
            value = flat[offset : offset + size].reshape(spec["shape"])
            offset += size
            if value.ndim == 2:
                value = value.T
            elif value.ndim == 4:
                value = value.transpose(3, 2, 0, 1)
            if tuple(value.shape) != tuple(param.shape):
                raise ValueError(f"{spec['name']}: shape {value.shape} does not fit {tuple(param.shape)}")
            param.copy_(torch.from_numpy(np.ascontiguousarray(value)))


def evaluate(model, x, y):
    model.eval()
    with torch.no_grad():
        logits = model(x)
        loss = F.cross_entropy(logits, y).item()
        accuracy = (logits.argmax(dim=1) == y).float().mean().item()
    model.train()
    return loss, accuracy


def train_clients(model, global_state, clients, args, rng):
    """FedAvg's client work for `clients` in turn: each starts from the global weights and trains E
    epochs of minibatch SGD; returns the example-weighted sum of their models and the example count."""
    total = 0
    summed = {k: torch.zeros_like(v) for k, v in global_state.items()}
    for x, y in clients:
        model.load_state_dict(global_state)
        optimizer = torch.optim.SGD(model.parameters(), lr=args.lr)
        n = x.shape[0]
        for _ in range(args.epochs):
            order = torch.from_numpy(rng.permutation(n))
            for begin in range(0, n, args.batch):
                rows = order[begin : begin + args.batch]
                optimizer.zero_grad(set_to_none=True)
                F.cross_entropy(model(x[rows]), y[rows]).backward()
                optimizer.step()
        for k, v in model.state_dict().items():
            summed[k] += v * n
        total += n
    return summed, total


# What the worker processes inherit when they fork: the model, the clients' data and the arguments.
WORKER = {}


def worker_init():
    torch.set_num_threads(1)


def worker_round(job):
    """One worker's share of a round: its clients trained from the global weights sent with the job."""
    round_number, worker_index, global_state, client_ids = job
    rng = np.random.default_rng([WORKER["seed"], round_number, worker_index])
    clients = [WORKER["clients"][i] for i in client_ids]
    summed, total = train_clients(WORKER["model"], global_state, clients, WORKER["args"], rng)
    return summed, total


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", required=True, help="the file bench/fedavg-export.ts wrote")
    parser.add_argument("--model", required=True)
    parser.add_argument("--rounds", type=int, required=True)
    parser.add_argument("--epochs", type=int, required=True)
    parser.add_argument("--batch", type=int, required=True)
    parser.add_argument("--lr", type=float, required=True)
    parser.add_argument("--target", type=float, required=True)
    parser.add_argument("--threads", type=int, required=True, help="torch threads (in-process clients)")
    parser.add_argument(
        "--workers",
        type=int,
        default=0,
        help="0: clients one after another in this process; N: split over N forked processes of 1 torch thread",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--stop-at-target", action="store_true", help="end after the first round that reaches it")
    args = parser.parse_args()

    # Workers fork from this process: it must not have started OpenMP threads before (libgomp is not
    # fork-safe), so it keeps one thread itself when there are workers.
    torch.set_num_threads(1 if args.workers > 0 else args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    data = read_export(args.data)
    header = data["header"]
    model = build_model(args.model, header["exampleShape"], header["numClasses"])
    load_tfjs_weights(model, header["weights"], data["weights"])
    model.train()
    # Each client's examples as tensors, as fedsim's clients hold theirs.
    clients = [
        (torch.from_numpy(np.ascontiguousarray(data["train_x"][rows])), torch.from_numpy(data["train_y"][rows]))
        for rows in data["clients"]
    ]
    test_x = torch.from_numpy(np.ascontiguousarray(data["test_x"]))
    test_y = torch.from_numpy(data["test_y"])
    pool = None
    if args.workers > 0:
        WORKER.update(model=model, clients=clients, args=args, seed=args.seed)
        pool = multiprocessing.get_context("fork").Pool(args.workers, initializer=worker_init)
    initial_loss, initial_accuracy = evaluate(model, test_x, test_y)

    global_state = {k: v.clone() for k, v in model.state_dict().items()}
    rounds = []
    start = time.perf_counter()
    for round_number in range(1, args.rounds + 1):
        if pool is None:
            summed, total = train_clients(model, global_state, clients, args, rng)
        else:
            # Clients dealt out round-robin, so each worker trains about as many examples.
            shares = [list(range(w, len(clients), args.workers)) for w in range(args.workers)]
            jobs = [(round_number, w, global_state, share) for w, share in enumerate(shares) if share]
            parts = pool.map(worker_round, jobs)
            total = sum(t for _, t in parts)
            summed = {k: sum(p[k] for p, _ in parts) for k in global_state}
        global_state = {k: v / total for k, v in summed.items()}
        model.load_state_dict(global_state)
        loss, accuracy = evaluate(model, test_x, test_y)
        rounds.append(
            {
                "round": round_number,
                "seconds": time.perf_counter() - start,
                # The wall clock, so the caller can measure from the moment it launched this process.
                "wallTime": time.time(),
                "accuracy": accuracy,
                "loss": loss,
            }
        )
        if args.stop_at_target and accuracy >= args.target:
            break
    if pool is not None:
        pool.terminate()
    blas = blas_library()
    print(
        json.dumps(
            {
                "available": True,
                "torch": torch.__version__,
                "threads": 1 if args.workers > 0 else args.threads,
                "workers": args.workers,
                "blas": blas,
                "openblasConfig": openblas_config(blas),
                "coretype": os.environ.get("OPENBLAS_CORETYPE"),
                "openblasNumThreads": os.environ.get("OPENBLAS_NUM_THREADS"),
                "initial": {"accuracy": initial_accuracy, "loss": initial_loss},
                "target": args.target,
                "rounds": rounds,
            }
        )
    )


if __name__ == "__main__":
    main()
