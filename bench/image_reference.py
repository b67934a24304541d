#!/usr/bin/python3
"""PyTorch-eager reference for the image MoRec benchmark (bench/image_bench.ts).

SASRec (bench/sasrec_torch.py's user encoder) whose item tower is torchvision's real ResNet or Swin
Transformer (the architecture morec's preset names, random init, no fc/head) over the items' pixels, read from the same
memory-mapped image store morec trains on: uint8 CHW rows -> float, x / 255 normalized with the
tower's mean and std -> ResNet pooled features -> Linear(features -> d) -> GELU. Per batch the
distinct items are encoded once (torch.unique -> encode -> index); BCE with one positive and one
negative per position; AdamW with an encoder group and a rest group (bench/text_reference.py's loop
and batches). Prints one JSON line; progress to stderr.
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
import torchvision

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sasrec_torch import SASRec, UserEncoder  # noqa: E402
from text_reference import EncodedItemsSASRec, log, make_batches, read_i32, train  # noqa: E402


def resnet(enc):
    """torchvision's ResNet with its own blocks and _make_layer; widths other than 64 (the narrow presets)
    rebuild the stem and stages through the same _make_layer."""
    block = torchvision.models.resnet.BasicBlock if enc["block"] == "basic" else torchvision.models.resnet.Bottleneck
    depths, w = enc["depths"], enc["width"]
    m = torchvision.models.resnet.ResNet(block, (list(depths) + [1, 1, 1, 1])[:4])
    if w != 64 or len(depths) != 4:
        m.inplanes = w
        m.conv1 = nn.Conv2d(3, w, kernel_size=7, stride=2, padding=3, bias=False)
        m.bn1 = nn.BatchNorm2d(w)
        for i in range(4):
            stage = m._make_layer(block, w * 2 ** i, depths[i], stride=1 if i == 0 else 2) if i < len(depths) else nn.Identity()
            setattr(m, f"layer{i + 1}", stage)
    m.fc = nn.Identity()
    return m


def swin(enc):
    """torchvision's SwinTransformer (v1) of the preset's shape, random init, no head."""
    from torchvision.models.swin_transformer import SwinTransformer
    m = SwinTransformer(patch_size=[enc["patchSize"]] * 2, embed_dim=enc["width"], depths=enc["depths"],
                        num_heads=enc["heads"], window_size=[enc["windowSize"]] * 2, mlp_ratio=enc["mlpRatio"],
                        stochastic_depth_prob=enc.get("dropPath", 0.0))
    m.head = nn.Identity()
    m.num_features = enc["width"] * 2 ** (len(enc["depths"]) - 1)
    return m


class ImageSASRec(EncodedItemsSASRec):
    def __init__(self, pixels, enc, d, heads, blocks, max_len, dropout, channels_last):
        super().__init__()
        self.pixels = pixels  # uint8 [N + 1, 3, H, W], memory-mapped
        self.user_encoder = UserEncoder(d, heads, blocks, max_len, dropout)
        self.user_encoder.apply(SASRec._init_weights)
        self.encoder = swin(enc) if enc["arch"] == "swin" else resnet(enc)
        self.projection = nn.Linear(self.encoder.num_features if enc["arch"] == "swin" else self.encoder.inplanes, d)
        self.d = d
        self.channels_last = channels_last
        self.register_buffer("mean", torch.tensor(enc["mean"]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(enc["std"]).view(1, 3, 1, 1))

    def encode(self, items):
        x = torch.from_numpy(self.pixels[items.numpy()]).float().div_(255)
        x = (x - self.mean) / self.std
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return F.gelu(self.projection(self.encoder(x)))


def item_table(model, num_items, batch):
    t0 = time.perf_counter()
    model.eval()
    with torch.no_grad():
        for b in range(1, num_items + 1, batch):
            model.encode(torch.arange(b, min(b + batch, num_items + 1)))
    return time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dir", required=True, help="folder written by image_bench.ts")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    meta = json.load(open(os.path.join(args.dir, "meta.json")))
    N, S, enc = meta["numItems"], meta["imageSize"], meta["encoder"]
    pixels = np.memmap(meta["pixelFile"], dtype=np.uint8, mode="r", shape=(N + 1, 3, S, S))
    offsets, items = read_i32(args.dir, "offsets.i32"), read_i32(args.dir, "items.i32")
    batches = make_batches(offsets, items, N, meta["maxLen"], args.batch, args.warmup + args.steps, rng)
    arch = dict(d=meta["d"], heads=meta["heads"], blocks=meta["blocks"], max_len=meta["maxLen"], dropout=meta["dropout"])
    log(f"reference: torch {torch.__version__}, torchvision {torchvision.__version__}, {torch.get_num_threads()} threads, {N} items")
    model = ImageSASRec(pixels, enc, channels_last=meta.get("channelsLast", False), **arch)
    result = {"torch": torch.__version__, "threads": args.threads,
              "full": train(model, batches, args.warmup, enc_lr=meta["encoderLr"], lr=meta["lr"], wd=meta["weightDecay"])}
    result["full"]["tableSeconds"] = item_table(model, N, meta["encodeBatch"])
    result["peakRssMiB"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))


if __name__ == "__main__":
    main()
