#!/usr/bin/python3
"""PyTorch-eager reference for the text MoRec benchmark (bench/text_bench.ts).

SASRec (bench/sasrec_torch.py's user encoder) whose item tower is a BERT trained from scratch:
word + position + token-type[0] embeddings -> LayerNorm -> dropout -> post-LN layers
(nn.TransformerEncoderLayer with GELU, batch_first: exactly a BERT layer) -> [CLS] of the last layer
-> Linear(hidden -> d) -> GELU. Per batch the distinct items are encoded once (torch.unique ->
encode -> index), their tokens trimmed to the batch's longest title with a key-padding mask
(dynamic padding); BCE with logits on one positive and one negative per position; AdamW with an
encoder group and a rest group. With --top n only the top n encoder layers train; the embeddings and
the bottom layers run in eval mode under torch.no_grad() on every batch (no cache).

Inputs come from the folder text_bench.ts writes (raw little-endian int32 + meta.json), so both
implementations train on the same tokens and sequences. Prints one JSON line; progress to stderr.
"""

import argparse
import json
import os
import resource
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sasrec_torch import SASRec, UserEncoder  # noqa: E402


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def read_i32(folder, name):
    return np.fromfile(os.path.join(folder, name), dtype="<i4").astype(np.int64)


class BertEncoder(nn.Module):
    def __init__(self, c):
        super().__init__()
        assert c["hiddenDropout"] == c["attentionDropout"], "nn.TransformerEncoderLayer has one dropout rate"
        H = c["hidden"]
        self.word_embeddings = nn.Embedding(c["vocabSize"], H)
        self.position_embeddings = nn.Embedding(c["maxPositions"], H)
        self.token_type_embeddings = nn.Embedding(c["typeVocabSize"], H)
        self.norm = nn.LayerNorm(H, eps=c["layerNormEps"])
        self.dropout = nn.Dropout(c["hiddenDropout"])
        self.layers = nn.ModuleList(
            nn.TransformerEncoderLayer(H, c["heads"], c["intermediate"], dropout=c["hiddenDropout"], activation="gelu",
                                       layer_norm_eps=c["layerNormEps"], batch_first=True, norm_first=False)
            for _ in range(c["layers"]))
        # Hugging Face's initialisation (as morec's BertEncoder): normal(0, 0.02), zero biases, zero pad row.
        with torch.no_grad():
            for name, p in self.named_parameters():
                if "norm" in name:
                    continue
                if p.dim() > 1:
                    p.normal_(0.0, 0.02)
                else:
                    p.zero_()
            self.word_embeddings.weight[c["padTokenId"]].zero_()

    def embed(self, ids):
        pos = torch.arange(ids.shape[1])
        x = self.word_embeddings(ids) + self.position_embeddings(pos)[None] + self.token_type_embeddings.weight[0]
        return self.dropout(self.norm(x))

    def run(self, x, pad, first, last):
        for layer in self.layers[first:last]:
            x = layer(x, src_key_padding_mask=pad)
        return x


class EncodedItemsSASRec(nn.Module):
    """SASRec over an encoder item tower: subclasses define encode(items) and self.d."""

    def embed_items(self, ids):
        """Any item ids (0 = padding -> zero vector) -> [..., d]; returns the vectors and the distinct count."""
        uniq, inv = torch.unique(ids, return_inverse=True)  # sorted: 0 first if present
        has_pad = bool(uniq[0] == 0)
        real = uniq[1:] if has_pad else uniq
        vec = self.encode(real)
        if has_pad:
            vec = torch.cat([vec.new_zeros(1, self.d), vec])
        return vec[inv], real.numel()

    def bce_loss(self, inputs, targets, negatives):
        B, T = inputs.shape
        embs, distinct = self.embed_items(torch.cat([inputs, targets, negatives]))
        hidden = self.user_encoder(embs[:B], inputs)
        valid = inputs != 0
        pos = (hidden * embs[B:2 * B]).sum(-1)[valid]
        neg = (hidden * embs[2 * B:]).sum(-1)[valid]
        loss = (F.binary_cross_entropy_with_logits(pos, torch.ones_like(pos))
                + F.binary_cross_entropy_with_logits(neg, torch.zeros_like(neg)))
        return loss, distinct


class TextSASRec(EncodedItemsSASRec):
    def __init__(self, tokens, lengths, enc, d, heads, blocks, max_len, dropout, top):
        super().__init__()
        self.tokens, self.lengths = tokens, lengths
        self.user_encoder = UserEncoder(d, heads, blocks, max_len, dropout)
        self.user_encoder.apply(SASRec._init_weights)
        self.encoder = BertEncoder(enc)
        self.projection = nn.Linear(enc["hidden"], d)
        self.d = d
        self.frozen = max(0, enc["layers"] - top) if top > 0 else 0
        for p in self.bottom_parameters():
            p.requires_grad_(False)

    def bottom_modules(self):
        if not self.frozen:
            return []
        e = self.encoder
        return [e.word_embeddings, e.position_embeddings, e.token_type_embeddings, e.norm, e.dropout,
                *e.layers[:self.frozen]]

    def bottom_parameters(self):
        return [p for m in self.bottom_modules() for p in m.parameters()]

    def train(self, mode=True):
        super().train(mode)
        for m in self.bottom_modules():  # the frozen bottom runs without dropout, as morec's cached bottom
            m.train(False)
        return self

    def encode(self, items):
        """Distinct items (int64 [m], all >= 1) -> [m, d]; tokens trimmed to the longest title here."""
        lens = self.lengths[items]
        T = int(lens.max())
        ids = self.tokens[items, :T]
        pad = torch.arange(T)[None, :] >= lens[:, None]
        e = self.encoder
        if self.frozen:
            with torch.no_grad():
                x = e.run(e.embed(ids), pad, 0, self.frozen)
        else:
            x = e.embed(ids)
        x = e.run(x, pad, self.frozen, len(e.layers))
        return F.gelu(self.projection(x[:, 0]))

def make_batches(offsets, items, num_items, L, batch, count, rng):
    """`count` batches of shuffled users with a training prefix of >= 2 items (prefix = all but the last 2):
    input prefix[k-1] predicts prefix[k] for the last min(L, len(prefix) - 1) k, left padded and trimmed to
    the batch's longest; one uniform negative per position, redrawn while in the user's prefix."""
    users = [u for u in range(len(offsets) - 1) if offsets[u + 1] - offsets[u] - 2 >= 2]
    order = rng.permutation(len(users))
    out = []
    for b in range(count):
        rows = [users[i] for i in order[(b * batch) % len(users):][:batch]]
        n = [min(L, offsets[u + 1] - offsets[u] - 3) for u in rows]
        T = max(n)
        x, y, neg = (np.zeros((len(rows), T), dtype=np.int64) for _ in range(3))
        for r, u in enumerate(rows):
            prefix = items[offsets[u]:offsets[u + 1] - 2]
            seen = set(prefix.tolist())
            x[r, T - n[r]:] = prefix[-n[r] - 1:-1]
            y[r, T - n[r]:] = prefix[-n[r]:]
            for c in range(T - n[r], T):
                v = int(rng.integers(1, num_items + 1))
                while v in seen:
                    v = int(rng.integers(1, num_items + 1))
                neg[r, c] = v
        out.append(tuple(torch.from_numpy(a) for a in (x, y, neg)))
    return out


def train(model, batches, warmup, enc_lr, lr, wd):
    enc = [p for p in model.encoder.parameters() if p.requires_grad]
    enc_ids = {id(p) for p in enc}
    rest = [p for p in model.parameters() if p.requires_grad and id(p) not in enc_ids]
    opt = torch.optim.AdamW([{"params": enc, "lr": enc_lr}, {"params": rest, "lr": lr}], weight_decay=wd)
    model.train()
    first = 0.0
    seqs = distinct = 0
    secs = 0.0
    for i, (x, y, n) in enumerate(batches):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss, m = model.bce_loss(x, y, n)
        loss.backward()
        opt.step()
        loss_value = loss.item()
        dt = time.perf_counter() - t0
        if i == 0:
            first = dt
        if i >= warmup:
            secs += dt
            seqs += x.shape[0]
            distinct += m
    measured = len(batches) - warmup
    log(f"  {measured} batches in {secs:.2f}s, last loss {loss_value:.4f}, {distinct / max(1, measured):.0f} distinct items/batch")
    return {"seqPerSec": seqs / secs, "itemsPerSec": distinct / secs, "distinctPerBatch": distinct / measured,
            "firstBatchSeconds": first, "batches": measured, "seconds": secs}


def item_table(model, num_items, batch=256):
    """Every item encoded once, eval mode, no grad, in order of title length (batches of similar length)."""
    t0 = time.perf_counter()
    model.eval()
    with torch.no_grad():
        table = torch.zeros(num_items + 1, model.d)
        order = torch.argsort(model.lengths[1:], stable=True) + 1
        for b in range(0, num_items, batch):
            items = order[b:b + batch]
            table[items] = model.encode(items)
    return time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dir", required=True, help="folder written by text_bench.ts")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--top", type=int, default=2, help="also train with only the top n layers (0 = skip)")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    meta = json.load(open(os.path.join(args.dir, "meta.json")))
    N, maxT, enc = meta["numItems"], meta["maxTokens"], meta["encoder"]
    tokens = torch.from_numpy(read_i32(args.dir, "tokens.i32").reshape(N + 1, maxT))
    lengths = torch.from_numpy(read_i32(args.dir, "lengths.i32"))
    offsets, items = read_i32(args.dir, "offsets.i32"), read_i32(args.dir, "items.i32")
    batches = make_batches(offsets, items, N, meta["maxLen"], args.batch, args.warmup + args.steps, rng)
    hp = dict(enc_lr=meta["encoderLr"], lr=meta["lr"], wd=meta["weightDecay"])
    arch = dict(d=meta["d"], heads=meta["heads"], blocks=meta["blocks"], max_len=meta["maxLen"], dropout=meta["dropout"])
    log(f"reference: torch {torch.__version__}, {torch.get_num_threads()} threads, {N} items, {len(offsets) - 1} users")

    log("reference: full fine-tuning")
    model = TextSASRec(tokens, lengths, enc, top=0, **arch)
    result = {"torch": torch.__version__, "threads": args.threads, "full": train(model, batches, args.warmup, **hp)}
    result["full"]["tableSeconds"] = item_table(model, N)
    result["peakRssMiB"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    del model
    if args.top > 0:
        log(f"reference: top {args.top} layers (bottom under no_grad, recomputed every batch)")
        model = TextSASRec(tokens, lengths, enc, top=args.top, **arch)
        result["top"] = train(model, batches, args.warmup, **hp)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
