#!/usr/bin/python3
"""PyTorch-eager reference for the SASRec training-throughput / evaluation benchmark.

Same model (bench/sasrec_torch.py) and training loop as the IDvs.MoRec SASRec code:
BCE with one negative per non-pad position, AdamW(lr 1e-3, wd 0.1), dropout 0.1,
shuffled users, batches padded to maxLen; full-ranking validation (HR@10, NDCG@10).

Run with Debian's python (torch 1.13), e.g. from the repo root:
  /usr/bin/python3 bench/sasrec_reference.py --data ../shared/data/amazon-toys/Toys_and_Games.txt \
      --threads 2 --d 64 --blocks 2 --heads 2 --maxlen 50 --batch 128 --steps 0 --eval 1 --seed 1

Prints one JSON line to stdout; progress goes to stderr.
"""

import argparse
import json
import math
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sasrec_torch import SASRec  # noqa: E402


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def load_sequences(path):
    seqs = []
    with open(path) as f:
        for line in f:
            parts = line.split()
            if len(parts) < 2:
                continue
            seqs.append(np.asarray(parts[1:], dtype=np.int64))
    return seqs


def left_pad(rows, L):
    """list of 1-D int arrays (each len <= L) -> [len(rows), L] int64, left-padded with 0."""
    out = np.zeros((len(rows), L), dtype=np.int64)
    for r, s in enumerate(rows):
        if len(s):
            out[r, L - len(s):] = s
    return out


def build_train_arrays(seqs, L):
    """Per training user (>= 3 items): prefix = seq[:-2]; input = prefix[:-1][-L:],
    target = prefix[1:][-L:], left padded to L. Also the flattened prefix items
    (the negative-sampling exclusion sets) as sorted keys user*(N+1)+item."""
    users = [u for u, s in enumerate(seqs) if len(s) >= 3]
    prefixes = [seqs[u][:-2] for u in users]
    inputs = left_pad([p[:-1][-L:] for p in prefixes], L)
    targets = left_pad([p[1:][-L:] for p in prefixes], L)
    return users, prefixes, inputs, targets


def sample_negatives(rng, prefixes, valid, num_items):
    """One negative per non-pad position, uniform in 1..N, redrawn while it is in
    the user's training prefix (vectorised rejection sampling)."""
    U, L = valid.shape
    stride = num_items + 1
    keys = np.concatenate([np.unique(p) + r * stride for r, p in enumerate(prefixes)])
    keys.sort()
    row = np.broadcast_to(np.arange(U, dtype=np.int64)[:, None], (U, L))
    neg = np.zeros((U, L), dtype=np.int64)
    todo_r, todo_c = np.nonzero(valid)
    rounds = 0
    while todo_r.size:
        rounds += 1
        draw = rng.integers(1, num_items + 1, size=todo_r.size, dtype=np.int64)
        k = row[todo_r, todo_c] * stride + draw
        pos = np.searchsorted(keys, k)
        pos[pos == keys.size] = 0
        bad = keys[pos] == k
        ok = ~bad
        neg[todo_r[ok], todo_c[ok]] = draw[ok]
        todo_r, todo_c = todo_r[bad], todo_c[bad]
    return neg, rounds


def train(args, model, seqs, num_items, rng):
    L = args.maxlen
    t0 = time.perf_counter()
    users, prefixes, inputs, targets = build_train_arrays(seqs, L)
    t1 = time.perf_counter()
    valid = inputs != 0
    negatives, rounds = sample_negatives(rng, prefixes, valid, num_items)
    t2 = time.perf_counter()
    # sanity: negatives never in the user's prefix, zero at padding
    assert np.all((negatives != 0) == valid)

    order = rng.permutation(len(users))
    nb = math.ceil(len(users) / args.batch)
    if args.steps > 0:
        nb = min(nb, args.steps)
    batches = []
    for b in range(nb):
        idx = order[b * args.batch:(b + 1) * args.batch]
        batches.append((torch.from_numpy(inputs[idx]), torch.from_numpy(targets[idx]),
                        torch.from_numpy(negatives[idx])))
    t3 = time.perf_counter()
    log(f"data prep: build arrays {t1 - t0:.3f}s, negatives {t2 - t1:.3f}s "
        f"({rounds} rounds), batches {t3 - t2:.3f}s; {len(users)} training users, "
        f"{nb} steps of batch {args.batch}")

    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.1)
    model.train()
    losses = []
    n_seq = 0
    t_train = 0.0
    for step, (x, y, n) in enumerate(batches):
        ts = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = model.bce_loss(x, y, n)
        loss.backward()
        opt.step()
        t_train += time.perf_counter() - ts
        losses.append(loss.item())
        n_seq += x.shape[0]
        if (step + 1) % 20 == 0 or step + 1 == nb:
            log(f"step {step + 1}/{nb} loss {losses[-1]:.4f} "
                f"({n_seq / t_train:.1f} seq/s)")
    return {
        "trainSequences": n_seq,
        "trainSeconds": t_train,
        "seqPerSec": n_seq / t_train if t_train > 0 else 0.0,
        "meanLoss": float(np.mean(losses)) if losses else float("nan"),
        "trainSteps": nb,
        "dataPrepSeconds": t1 - t0 + (t3 - t2),
        "negSampleSeconds": t2 - t1,
    }


def evaluate(args, model, seqs, num_items):
    L = args.maxlen
    eval_bs = 256
    t0 = time.perf_counter()
    users = [u for u, s in enumerate(seqs) if len(s) >= 3]
    model.eval()
    hits = 0.0
    ndcg = 0.0
    target_in_hist = 0
    with torch.no_grad():
        items = model.item_embeddings()[1:]  # rows 1..N; padding row 0 excluded
        for b0 in range(0, len(users), eval_bs):
            bu = users[b0:b0 + eval_bs]
            hist = [seqs[u][:-2] for u in bu]
            x = torch.from_numpy(left_pad([h[-L:] for h in hist], L))
            tgt = torch.from_numpy(np.asarray([seqs[u][-2] for u in bu], dtype=np.int64)) - 1
            user_vec = model(x)[:, -1, :]
            scores = user_vec @ items.t()  # [B, N], column i-1 = item i
            hr = torch.from_numpy(np.repeat(np.arange(len(bu)), [len(h) for h in hist]))
            hc = torch.from_numpy(np.concatenate(hist)) - 1
            scores[hr, hc] = -math.inf
            # target's score after masking (as in the paper: a target that also
            # occurs in the history is masked too and can never be a hit)
            tscore = scores.gather(1, tgt[:, None])
            target_in_hist += int(torch.isneginf(tscore).sum())
            rank = (scores > tscore).sum(1)
            top = rank < 10
            hits += float(top.sum())
            ndcg += float((1.0 / torch.log2(rank[top].double() + 2.0)).sum())
    secs = time.perf_counter() - t0
    if target_in_hist:
        log(f"note: {target_in_hist} validation targets also occur in the history "
            "(masked to -inf like the rest of the history, so never a hit)")
    n = len(users)
    return {"evalUsers": n, "evalSeconds": secs, "HR@10": hits / n, "NDCG@10": ndcg / n}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default="../shared/data/amazon-toys/Toys_and_Games.txt")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--d", type=int, default=64)
    ap.add_argument("--blocks", type=int, default=2)
    ap.add_argument("--heads", type=int, default=2)
    ap.add_argument("--maxlen", type=int, default=50)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--steps", type=int, default=0, help="0 = one full epoch")
    ap.add_argument("--eval", type=int, default=1)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--dropout", type=float, default=0.1)
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)

    t0 = time.perf_counter()
    seqs = load_sequences(args.data)
    num_items = int(max(int(s.max()) for s in seqs))
    log(f"loaded {len(seqs)} users, {num_items} items, "
        f"{sum(len(s) for s in seqs)} interactions in {time.perf_counter() - t0:.2f}s; "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads")

    model = SASRec(num_items, args.d, args.heads, args.blocks, args.maxlen, dropout=args.dropout)
    result = {"impl": "pytorch-eager", "threads": args.threads}
    tr = train(args, model, seqs, num_items, rng)
    result.update({k: tr[k] for k in ("trainSequences", "trainSeconds", "seqPerSec", "meanLoss")})
    if args.eval:
        result.update(evaluate(args, model, seqs, num_items))
    result["torch"] = torch.__version__
    result.update({k: tr[k] for k in ("trainSteps", "dataPrepSeconds", "negSampleSeconds")})
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
