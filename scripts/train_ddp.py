"""Train chapter 5's LeNet on MNIST with DistributedDataParallel: one script for 1 process, N GPUs or N nodes.

    python scripts/train_ddp.py                                        # one process, no torchrun needed
    torchrun --standalone --nproc_per_node=2 scripts/train_ddp.py --device cpu      # 2 CPU processes, gloo
    torchrun --standalone --nproc_per_node=8 scripts/train_ddp.py                   # 8 GPUs, NCCL
    # 2 machines x 8 GPUs: the same command on each, --node_rank=0 on the first and 1 on the second
    torchrun --nnodes=2 --nproc_per_node=8 --node_rank=0 --rdzv_endpoint=node0:29500 scripts/train_ddp.py

torchrun starts one process per GPU and gives each RANK, LOCAL_RANK and WORLD_SIZE in its
environment. Each process takes its own slice of every global batch (DistributedSampler),
and DDP averages the gradients across processes during backward, so every process applies the same
update. ``--batch-size`` is per process: the global batch is ``batch_size * world_size``, and N
processes x batch B train exactly like one process x batch N*B (up to float rounding) when the
training set divides into global batches (drop_last drops the remainder). The model has no
BatchNorm or dropout on purpose: BatchNorm statistics would be per process (nn.SyncBatchNorm
shares them, on GPUs) and dropout masks differ, which would break that equality.

The per-epoch ``val_*`` metrics are measured on the last ``--val-examples`` training images, which
are never trained on; the test images are scored once, after the last epoch (``test`` in ``--out``):
the test split chooses nothing, not even when to stop looking.

Rank 0 alone prints, checkpoints (``--checkpoint``, resumable) and writes ``--out``: a file with the
final weights (``model.module.state_dict()``), the per-epoch metrics and the test score, loadable with
``torch.load(path, weights_only=True)``. Resuming is decided by rank 0 (does its checkpoint file
exist?) and broadcast, so all processes take the same decision; every process then reads that file,
so on several machines ``--checkpoint`` must be on a filesystem they share (NFS, Lustre...).
With ``--dataset full``, the first process of each machine (``LOCAL_RANK`` 0) downloads MNIST, since
the processes of a machine share its disk; the others wait, then read the files it wrote. If a
download fails, every process stops with an error instead of waiting for files that never come.
(Machines that share one data folder should download it once before the job: two machines writing
the same files at once corrupt them.) The process group is destroyed on the way out, error or not.

On a SLURM cluster, one torchrun per node, each starting that node's processes (a sketch; check
your site's documentation for its partitions and its network interface):

    #SBATCH --nodes=2 --ntasks-per-node=1 --gpus-per-node=8
    head=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
    srun torchrun --nnodes=2 --nproc_per_node=8 --rdzv_backend=c10d --rdzv_endpoint=$head:29500 \
        --rdzv_id=$SLURM_JOB_ID scripts/train_ddp.py --checkpoint /shared/ckpt.pt

With the c10d rendezvous, ``torchrun --max-restarts=3`` restarts every process of the job when
one fails (a crashed or killed process); a restarted run resumes from ``--checkpoint``, so at
most one epoch is lost. Without ``--checkpoint`` a restart trains from the beginning. A lost
*node* is another matter: with ``--nnodes=2`` the restart waits for two nodes again, so it needs
``--nnodes=MIN:MAX`` (an elastic job) or the scheduler's requeue, and the surviving node may
notice the loss only at the process group's timeout.

Not used here, worth knowing: ``nn.SyncBatchNorm.convert_sync_batchnorm(model)`` computes BatchNorm
statistics over the global batch (an all-reduce per BatchNorm layer) instead of per process, and
``with model.no_sync():`` skips DDP's gradient all-reduce for the backward passes of gradient
accumulation, letting the gradients add up locally until the last micro-batch.
"""
from __future__ import annotations

import argparse
import gc
import os
import time
import traceback
from datetime import timedelta
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DataLoader, TensorDataset
from torch.utils.data.distributed import DistributedSampler

import helpers


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="embedded", choices=helpers.DATASETS)
    parser.add_argument("--train-examples", type=int, default=None, help="use the first N training images")
    parser.add_argument("--val-examples", type=int, default=500,
                        help="the last N training images: validation, never trained on")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64, help="per process; global = this x world size")
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default=None, help="cpu, cuda (each process takes cuda:LOCAL_RANK) or None: best")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads per process (torchrun sets 1)")
    parser.add_argument("--checkpoint", type=Path, default=None, help="save every epoch (rank 0); resume if present")
    parser.add_argument("--out", type=Path, default=None, help="rank 0 writes final weights and metrics here")
    return parser.parse_args(argv)


def setup(preferred: str | None) -> tuple[int, int, int, torch.device]:
    """Join torchrun's process group; return (rank, local_rank, world_size, device)."""
    rank = int(os.environ.get("RANK", 0))              # unique across all machines
    local_rank = int(os.environ.get("LOCAL_RANK", 0))  # unique on this machine
    world_size = int(os.environ.get("WORLD_SIZE", 1))
    device = helpers.get_device(preferred)
    if device.type == "mps" and world_size > 1:  # no backend moves MPS tensors
        raise ValueError(f"--device mps with {world_size} processes: a Mac has one MPS "
                         "device and no distributed backend for it; run one process, "
                         "or pass --device cpu")
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)  # one GPU per process
        torch.cuda.set_device(device)
    if world_size > 1:
        # NCCL moves GPU tensors between GPUs directly; gloo works on CPU tensors. The
        # timeout bounds every collective: local rank 0 downloads --dataset full inside
        # the group (the others wait in an all-reduce), so 30 min (NCCL's default: 10).
        # No device_id=: NCCL can hang in collectives with it (pytorch/pytorch#153960).
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend, timeout=timedelta(minutes=30))
    return rank, local_rank, world_size, device


def agree(error: Exception | None, device: torch.device, what: str) -> None:
    """Every process says whether its step failed; if any did, every process stops.

    A process that raises and exits breaks the group: with gloo the others fail in their
    next collective with "Connection closed by peer", which names neither the process
    nor the step; with NCCL they may wait there until the group's timeout. After this
    all-reduce of a "failed" flag every process stops at once, and the message says
    which step failed. All processes must call it at the same point.
    """
    failed = torch.tensor([int(error is not None)], device=device)
    if dist.is_initialized():
        dist.all_reduce(failed, op=dist.ReduceOp.MAX)  # 1 if any process failed
    any_failed = bool(failed.item())  # waits for the all-reduce, on every backend
    if error is not None:
        raise error
    if any_failed:
        raise RuntimeError(f"{what} failed on another process (see its error): "
                           "stopping")


def load_data(dataset: str, local_rank: int, device: torch.device):
    """Return (train_ds, test_ds); on each machine, local rank 0 downloads first.

    Several processes writing one folder corrupt it: local rank 0 downloads while the
    others wait (nodes sharing one data folder: download once, before the job), in
    `agree`, which also tells them whether it worked; then the others read the files.
    """
    if not dist.is_initialized():
        return helpers.mnist_datasets(dataset)
    datasets, error = None, None
    if local_rank == 0:
        try:
            datasets = helpers.mnist_datasets(dataset)  # downloads when needed
        except Exception as err:  # raised in agree, after the others have been told
            error = err
    agree(error, device,
          f"loading the {dataset!r} dataset on local rank 0 of a machine")
    if datasets is None:
        try:
            datasets = helpers.mnist_datasets(dataset)  # the files local rank 0 wrote
        except Exception as err:
            error = err
    agree(error, device, f"reading the {dataset!r} dataset")
    return datasets


def should_resume(checkpoint: Path | None, device: torch.device) -> bool:
    """Rank 0's answer to "does the checkpoint exist?", broadcast to every process.

    If each process asked for itself, they could disagree (a file rank 0 is still
    writing, a node that does not see rank 0's disk): some would resume and others
    start over, giving different weights or a hang in the first collective.
    """
    exists = checkpoint is not None and checkpoint.exists()
    decision = torch.tensor([int(exists)], device=device)
    if dist.is_initialized():
        dist.broadcast(decision, src=0)
    return bool(decision.item())


def all_sum(values: list[float], device: torch.device) -> list[float]:
    """Sum ``values`` over all processes (a no-op in a single process)."""
    t = torch.tensor(values, dtype=torch.float64, device=device)
    if dist.is_initialized():
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.tolist()


def train_epoch(model, loader, loss_fn, optimizer, device) -> dict:
    """One pass over this process's shard; return global loss and accuracy."""
    model.train()
    stats = torch.zeros(3, dtype=torch.float64, device=device)  # loss sum, correct, n
    for x, y in loader:
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        optimizer.zero_grad(set_to_none=True)
        logits = model(x)
        loss = loss_fn(logits, y)     # mean over the local batch
        loss.backward()               # DDP all-reduces (averages) the gradients here
        optimizer.step()              # identical update on every process
        stats[0] += loss.detach() * len(y)  # no .item(): the sums stay on the device
        stats[1] += (logits.argmax(1) == y).sum()
        stats[2] += len(y)
    loss_sum, correct, n = all_sum(stats.tolist(), device)
    return {"loss": loss_sum / n, "acc": correct / n}


@torch.no_grad()
def evaluate(model, x, y, loss_fn, device, rank: int, world_size: int) -> dict:
    """Each process scores every world_size-th image; the sums are combined across processes."""
    model.eval()
    xs, ys = x[rank::world_size].to(device), y[rank::world_size].to(device)
    logits = model(xs)
    loss_sum, correct, n = all_sum([loss_fn(logits, ys).item() * len(ys), (logits.argmax(1) == ys).sum().item(),
                                    len(ys)], device)
    return {"loss": loss_sum / n, "acc": correct / n}


def run(args: argparse.Namespace, rank: int, local_rank: int, world_size: int, device: torch.device) -> None:
    """Train on this process's shard of the data; rank 0 logs, checkpoints and writes ``--out``."""
    helpers.set_seed(args.seed)
    train_ds, test_ds = load_data(args.dataset, local_rank, device)
    x_all, y_all = train_ds.tensors
    if not world_size <= args.val_examples < len(x_all):  # every process scores at least one image
        raise ValueError(f"--val-examples {args.val_examples}: hold out between {world_size} (the number of "
                         f"processes) and {len(x_all) - 1} of the {len(x_all)} training images for validation")
    x_val, y_val = x_all[-args.val_examples:], y_all[-args.val_examples:]      # never trained on
    x_train, y_train = x_all[:-args.val_examples], y_all[:-args.val_examples]
    if args.train_examples is not None:
        if not 0 < args.train_examples <= len(x_train):
            raise ValueError(f"--train-examples {args.train_examples}: between 1 and {len(x_train)} (the training "
                             f"images left after the {args.val_examples} of --val-examples)")
        x_train, y_train = x_train[:args.train_examples], y_train[:args.train_examples]
    # Every process shuffles with the same seed (+ epoch) and keeps its own slice: rank r gets positions
    # r, r + world_size, ... of the permutation, so together the processes see each global batch once.
    sampler = DistributedSampler(TensorDataset(x_train, y_train), num_replicas=world_size, rank=rank,
                                 shuffle=True, seed=args.seed, drop_last=True)
    loader = DataLoader(TensorDataset(x_train, y_train), batch_size=args.batch_size, sampler=sampler,
                        drop_last=True, pin_memory=device.type == "cuda")
    if len(loader) == 0:
        raise ValueError(f"{len(x_train)} training images give no full batch of {args.batch_size} for each of "
                         f"{world_size} processes; use more images (--train-examples) or a smaller --batch-size")

    torch.manual_seed(args.seed)
    net = helpers.lenet().to(device)
    optimizer = torch.optim.SGD(net.parameters(), lr=args.lr, momentum=0.9)
    history, start = helpers.History(), 0
    resume, state, error = should_resume(args.checkpoint, device), None, None
    if resume:  # rank 0 decided; every process then loads rank 0's file
        try:
            if not args.checkpoint.exists():
                raise FileNotFoundError(f"rank {rank}: rank 0 resumes from {args.checkpoint}, which this process "
                                        "cannot see; --checkpoint must be on a filesystem all machines share")
            # helpers.load_checkpoint reads the file with map_location="cpu"; load_state_dict then copies
            # each tensor into the parameters, which already live on this process's device
            state = helpers.load_checkpoint(args.checkpoint, net, optimizer, restore_rng=False)
        except Exception as err:  # raised in agree, after the others have been told
            error = err
    agree(error, device, f"reading the checkpoint {args.checkpoint}")
    if state is not None:
        history, start = helpers.History.from_dict(state["history"]), state["epoch"]
        if rank == 0:
            print(f"resumed from {args.checkpoint} after epoch {start}", flush=True)
    # DDP broadcasts rank 0's weights at construction, then all-reduces gradients in buckets during backward.
    model = DDP(net, device_ids=[device.index] if device.type == "cuda" else None) if world_size > 1 else net
    loss_fn = nn.CrossEntropyLoss()
    if rank == 0:
        backend = dist.get_backend() if dist.is_initialized() else "none"
        print(f"world size {world_size}, backend {backend}, {device.type}, batch {args.batch_size} "
              f"per process = {args.batch_size * world_size} global, {len(loader)} steps/epoch",
              flush=True)
    for epoch in range(start + 1, args.epochs + 1):
        sampler.set_epoch(epoch)  # a new shuffle each epoch, the same on every process
        t0 = time.perf_counter()
        train = train_epoch(model, loader, loss_fn, optimizer, device)
        val = evaluate(net, x_val, y_val, loss_fn, device, rank, world_size)
        for key, value in (("train_loss", train["loss"]), ("train_acc", train["acc"]), ("val_loss", val["loss"]),
                           ("val_acc", val["acc"]), ("lr", args.lr), ("seconds", time.perf_counter() - t0)):
            getattr(history, key).append(value)
        if rank == 0:  # one log line and one checkpoint, not world_size of them
            print(helpers.format_epoch(history, epoch - 1, args.epochs), flush=True)
            if args.checkpoint is not None:
                helpers.save_checkpoint(args.checkpoint, net, optimizer, epoch=epoch, history=history)
        # The checkpoint cannot be read half-written (save_checkpoint writes a temporary file, then renames
        # it), and the next epoch's all-reduce would hold the others anyway: the barrier marks the epoch's
        # end, so that if rank 0 dies while writing, the others stop here (an error, or the timeout), not
        # inside the next epoch's all-reduce.
        if dist.is_initialized():
            dist.barrier(device_ids=[device.index]) if device.type == "cuda" else dist.barrier()
    test = evaluate(net, test_ds.tensors[0], test_ds.tensors[1], loss_fn, device, rank, world_size)  # once
    if rank == 0:
        print(f"test, once after training: loss {test['loss']:.4f}, acc {test['acc']:.4f}", flush=True)
    if rank == 0 and args.out is not None:
        unwrapped = model.module if isinstance(model, DDP) else model  # the same object as net
        args.out.parent.mkdir(parents=True, exist_ok=True)
        torch.save({"model": {k: v.cpu() for k, v in unwrapped.state_dict().items()}, "history": history.to_dict(),
                    "test": test, "world_size": world_size, "global_batch": args.batch_size * world_size},
                   args.out)


def cleanup() -> None:
    """Leave the process group, after success or error (a no-op in a single process)."""
    if dist.is_initialized():
        # Release DDP, which holds the process group, before destroying the group: Gloo's worker
        # threads are then joined here and not during interpreter shutdown (a 2-process run on
        # torch 2.7.0 once aborted at its end with "terminate called without an active exception").
        # run() has returned, so only reference cycles still hold the model: collect them.
        gc.collect()
        dist.destroy_process_group()


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    rank, local_rank, world_size, device = setup(args.device)
    try:
        run(args, rank, local_rank, world_size, device)
    except BaseException as err:
        # The traceback holds the failed calls' frames, and through their variables the DDP model:
        # clear them so that cleanup() can release DDP (the traceback still prints in full).
        traceback.clear_frames(err.__traceback__)
        raise
    finally:
        cleanup()


if __name__ == "__main__":
    main()
