#!/usr/bin/env python3
"""Training throughput with PyTorch on the CPU: the Python counterpart of `emotion-train bench`.

    python bench/torch_training.py --arch mini-xception --batch 64 --steps 30 --size 48
    python bench/torch_training.py --arch vggface2-resnet50 --size 224 --batch 8 --steps 5 \
        --unfreeze-from conv5_3

The networks are written in torch.nn to match host-trainer/src/model/ layer for layer, so the
parameter counts equal the ones emotion-train prints:

  mini-xception (mini_xception.rs, head "linear"): stem of two 3x3 convolutions to 8 channels
    without padding, each with batch norm (eps 1e-3) and ReLU; four modules of 16/32/64/128
    channels, each the sum of a 1x1 stride-2 projection (+ batch norm) and two depthwise-
    separable 3x3 convolutions (depthwise, pad 1; pointwise 1x1; batch norm; ReLU after the
    first only) followed by a 3x3 stride-2 max pool with padding 1; global average pooling;
    one linear layer to the classes. Convolutions have no bias, the linear layer has one.
  vggface2-resnet50 (vggface2_resnet50.rs, head "256"): keras-vggface's ResNet50: 7x7 stride-2
    convolution with TensorFlow "same" padding (asymmetric), batch norm, ReLU, 3x3 stride-2 max
    pool without padding; bottleneck stages of 3/4/6/3 blocks with the stride in the first 1x1
    convolution and a 1x1 projection in each stage's first block; every convolution bias-free
    with batch norm (eps 1e-3); global average pooling; Dense 256, ReLU, Dense 7.

--unfreeze-from takes a block name as emotion-train does (conv1, conv2_1 ... conv5_3, features,
head), Keras' activation_N (activation_46 = conv5_3, the seed's fine-tuning), or a stage
(conv5 = conv5_1). Blocks before it are frozen: no gradients, batch norm in evaluation mode.

One step is what emotion-train's training loop does per batch: forward in training mode,
cross-entropy, backward, gradient clipping by global norm (5.0, emotion-train's default),
AdamW (decoupled weight decay 1e-4, lr 3e-3, betas 0.9/0.999, eps 1e-8) and zeroing the
gradients. Data are seeded random tensors made before timing. Prints one JSON object on stdout
and a table on stderr; images/s is the batch size over the median step time.
"""

import argparse
import json
import math
import platform
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

EPS = 1e-3


def conv_bn(cin, cout, k, stride=1, pad=0):
    return [nn.Conv2d(cin, cout, k, stride=stride, padding=pad, bias=False),
            nn.BatchNorm2d(cout, eps=EPS, momentum=0.1)]


class Block(nn.Module):
    """A named unit of freezing, as the Rust graph's blocks."""

    def __init__(self, name):
        super().__init__()
        self.block_name = name


# ----------------------------------------------------------------------------- mini-Xception

class XceptionModule(Block):
    def __init__(self, name, cin, filters):
        super().__init__(name)
        self.proj = nn.Sequential(*conv_bn(cin, filters, 1, stride=2))
        self.sep1 = nn.Sequential(
            nn.Conv2d(cin, cin, 3, padding=1, groups=cin, bias=False),
            nn.Conv2d(cin, filters, 1, bias=False),
            nn.BatchNorm2d(filters, eps=EPS, momentum=0.1),
            nn.ReLU(inplace=True))
        self.sep2 = nn.Sequential(
            nn.Conv2d(filters, filters, 3, padding=1, groups=filters, bias=False),
            nn.Conv2d(filters, filters, 1, bias=False),
            nn.BatchNorm2d(filters, eps=EPS, momentum=0.1))
        self.pool = nn.MaxPool2d(3, stride=2, padding=1)

    def forward(self, x):
        return self.pool(self.sep2(self.sep1(x))) + self.proj(x)


class Stem(Block):
    def __init__(self, cin):
        super().__init__("stem")
        self.body = nn.Sequential(*conv_bn(cin, 8, 3), nn.ReLU(inplace=True),
                                  *conv_bn(8, 8, 3), nn.ReLU(inplace=True))

    def forward(self, x):
        return self.body(x)


class GlobalAvgPool(Block):
    def __init__(self):
        super().__init__("features")

    def forward(self, x):
        return x.mean(dim=(2, 3))


class Head(Block):
    """emotion-train's HeadSpec without dropout: hidden Linear+ReLU layers, then the logits."""

    def __init__(self, cin, hidden, classes):
        super().__init__("head")
        layers = []
        for w in hidden:
            layers += [nn.Linear(cin, w), nn.ReLU(inplace=True)]
            cin = w
        layers.append(nn.Linear(cin, classes))
        self.body = nn.Sequential(*layers)

    def forward(self, x):
        return self.body(x)


def mini_xception(channels, classes, hidden):
    blocks = [Stem(channels)]
    cin = 8
    for m, filters in enumerate([16, 32, 64, 128]):
        blocks.append(XceptionModule(f"module{m + 1}", cin, filters))
        cin = filters
    blocks += [GlobalAvgPool(), Head(cin, hidden, classes)]
    return blocks


# ------------------------------------------------------------------ ResNet50 (keras-vggface)

def same_pad(length, k, stride):
    """TensorFlow "same" padding (before, after), as vggface2_resnet50.rs computes it."""
    out = (length + stride - 1) // stride
    total = max((out - 1) * stride + k - length, 0)
    return total // 2, total - total // 2


class ResNetStem(Block):
    def __init__(self, channels, size):
        super().__init__("conv1")
        top, bottom = same_pad(size, 7, 2)
        self.body = nn.Sequential(nn.ZeroPad2d((top, bottom, top, bottom)),
                                  *conv_bn(channels, 64, 7, stride=2),
                                  nn.ReLU(inplace=True), nn.MaxPool2d(3, stride=2))

    def forward(self, x):
        return self.body(x)


class Bottleneck(Block):
    def __init__(self, name, cin, width, stride, project):
        super().__init__(name)
        self.body = nn.Sequential(
            *conv_bn(cin, width, 1, stride=stride), nn.ReLU(inplace=True),
            *conv_bn(width, width, 3, pad=1), nn.ReLU(inplace=True),
            *conv_bn(width, width * 4, 1))
        self.proj = nn.Sequential(*conv_bn(cin, width * 4, 1, stride=stride)) if project else None

    def forward(self, x):
        shortcut = self.proj(x) if self.proj is not None else x
        return F.relu(self.body(x) + shortcut)


def vggface2_resnet50(channels, size, classes, hidden):
    blocks = [ResNetStem(channels, size)]
    cin = 64
    for s, (n, width) in enumerate(zip([3, 4, 6, 3], [64, 128, 256, 512])):
        stage = s + 2
        for b in range(1, n + 1):
            stride = 2 if b == 1 and stage > 2 else 1
            blocks.append(Bottleneck(f"conv{stage}_{b}", cin, width, stride, b == 1))
            cin = width * 4
    blocks += [GlobalAvgPool(), Head(cin, hidden, classes)]
    return blocks


def block_after_activation(name, block_names):
    """vggface2_resnet50.rs's mapping of Keras' activation_N to the block that starts after it."""
    n = int(name[len("activation_"):])
    last = 1 + 3 * len(block_names)
    if not 1 <= n <= last:
        raise SystemExit(f"{name} does not exist in ResNet50 (activation_1 .. activation_{last})")
    if n == 1:
        return block_names[0]
    k = (n - 2) // 3
    if (n - 2) % 3 != 2:
        raise SystemExit(f"{name} is inside block {block_names[k]}: unfreezing works per block")
    return block_names[k + 1] if k + 1 < len(block_names) else "head"


# ------------------------------------------------------------------------------ the model

class Network(nn.Module):
    def __init__(self, blocks):
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.first_trainable = 0
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                # libtorch's Kaiming normal, fan in, ReLU gain: what graph.rs initialises with.
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
            elif isinstance(m, nn.Linear):
                bound = 1.0 / math.sqrt(m.in_features)
                nn.init.uniform_(m.weight, -bound, bound)
                nn.init.uniform_(m.bias, -bound, bound)

    @property
    def block_names(self):
        return [b.block_name for b in self.blocks]

    def freeze_before(self, first):
        self.first_trainable = first
        for i, b in enumerate(self.blocks):
            for p in b.parameters():
                p.requires_grad_(i >= first)

    def train(self, mode=True):
        super().train(mode)
        if mode:
            for b in self.blocks[:self.first_trainable]:
                b.eval()  # frozen blocks: batch norm uses its running statistics
        return self

    def forward(self, x):
        for b in self.blocks:
            x = b(x)
        return x


def resolve_block(arch, names, name):
    if name in names:
        return name
    if arch == "vggface2-resnet50" and name.startswith("activation_"):
        return block_after_activation(name, [n for n in names if n.startswith("conv") and "_" in n])
    stage = [n for n in names if n.startswith(name + "_")]
    if stage:
        return stage[0]
    raise SystemExit(f"no block named {name!r} in {arch}; blocks are: {', '.join(names)}")


def summary_ms(samples_ns):
    """(min, median, p99) in milliseconds, nearest rank, as emotion-edge's `summary`."""
    d = sorted(samples_ns)
    n = len(d)
    p99 = min(max(math.ceil(n * 0.99), 1), n) - 1
    return d[0] / 1e6, d[n // 2] / 1e6, d[p99] / 1e6


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--arch", choices=["mini-xception", "vggface2-resnet50"],
                    default="mini-xception")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=30, help="timed steps (30)")
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps first (3)")
    ap.add_argument("--size", type=int, default=None,
                    help="input height and width (48 for mini-xception, 224 for ResNet50)")
    ap.add_argument("--channels", type=int, default=None,
                    help="input channels (1 for mini-xception, 3 for ResNet50)")
    ap.add_argument("--classes", type=int, default=7)
    ap.add_argument("--head", default=None,
                    help="hidden head widths, comma-separated, or 'linear' "
                         "(default: linear for mini-xception, 256 for ResNet50)")
    ap.add_argument("--unfreeze-from", default=None,
                    help="first trainable block (default: everything trains)")
    ap.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (2)")
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--weight-decay", type=float, default=1e-4)
    ap.add_argument("--clip-norm", type=float, default=5.0, help="0 turns clipping off (5.0)")
    ap.add_argument("--seed", type=int, default=42)
    args = ap.parse_args()
    if args.batch < 1 or args.steps < 1 or args.warmup < 0 or args.threads < 1:
        ap.error("--batch, --steps and --threads must be positive, --warmup not negative")

    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    torch.manual_seed(args.seed)

    resnet = args.arch == "vggface2-resnet50"
    size = args.size or (224 if resnet else 48)
    channels = args.channels or (3 if resnet else 1)
    head = args.head or ("256" if resnet else "linear")
    hidden = [] if head == "linear" else [int(w) for w in head.split(",")]
    if resnet:
        net = Network(vggface2_resnet50(channels, size, args.classes, hidden))
    else:
        net = Network(mini_xception(channels, args.classes, hidden))
    unfreeze = None
    if args.unfreeze_from:
        unfreeze = resolve_block(args.arch, net.block_names, args.unfreeze_from)
        net.freeze_before(net.block_names.index(unfreeze))
    params = sum(p.numel() for p in net.parameters())
    trainable = [p for p in net.parameters() if p.requires_grad]
    n_trainable = sum(p.numel() for p in trainable)
    bn_stats = sum(b.numel() for n, b in net.named_buffers() if n.endswith(("running_mean", "running_var")))

    net.train()
    opt = torch.optim.AdamW(trainable, lr=args.lr, betas=(0.9, 0.999), eps=1e-8,
                            weight_decay=args.weight_decay)
    g = torch.Generator().manual_seed(args.seed)
    x = torch.rand(args.batch, channels, size, size, generator=g)
    y = torch.randint(0, args.classes, (args.batch,), generator=g)

    def step():
        logits = net(x)
        loss = F.cross_entropy(logits, y)
        loss.backward()
        if args.clip_norm > 0:
            torch.nn.utils.clip_grad_norm_(trainable, args.clip_norm)
        opt.step()
        opt.zero_grad(set_to_none=False)
        return loss

    for _ in range(args.warmup):
        step()
    samples = []
    wall = time.perf_counter()
    for _ in range(args.steps):
        t = time.perf_counter_ns()
        loss = step()
        samples.append(time.perf_counter_ns() - t)
    wall = time.perf_counter() - wall
    mn, med, p99 = summary_ms(samples)
    out = {
        "framework": "pytorch",
        "version": torch.__version__,
        "arch": args.arch,
        "input": [channels, size, size],
        "head": head,
        "batch": args.batch,
        "steps": args.steps,
        "warmup": args.warmup,
        "threads": torch.get_num_threads(),
        "interop_threads": torch.get_num_interop_threads(),
        "unfreeze_from": args.unfreeze_from,
        "unfreeze_from_block": unfreeze,
        "params": params,
        "trainable_params": n_trainable,
        "bn_running_stats": bn_stats,
        "optimizer": {"kind": "adamw", "lr": args.lr, "weight_decay": args.weight_decay,
                      "clip_norm": args.clip_norm},
        "step_min_ms": round(mn, 3),
        "step_median_ms": round(med, 3),
        "step_p99_ms": round(p99, 3),
        "images_per_s": round(args.batch / (med / 1000.0), 2),
        "images_per_s_wall": round(args.batch * args.steps / wall, 2),
        "final_loss": round(float(loss.detach()), 4),
        "python": platform.python_version(),
        "mkldnn": torch.backends.mkldnn.is_available(),
    }
    print(f"pytorch {torch.__version__} | {args.arch} {channels}x{size}x{size} head {head} | "
          f"{params:,} parameters, {n_trainable:,} trainable"
          + (f" (from {unfreeze})" if unfreeze else "")
          + f" | batch {args.batch}, {torch.get_num_threads()} threads", file=sys.stderr)
    print(f"{'step (ms)':<11} {'min':>9} {'median':>9} {'p99':>9}", file=sys.stderr)
    print(f"{'train step':<11} {mn:>9.1f} {med:>9.1f} {p99:>9.1f}", file=sys.stderr)
    print(f"throughput {out['images_per_s']:.1f} images/s (median step), "
          f"{out['images_per_s_wall']:.1f} images/s (wall clock, {args.steps} steps)",
          file=sys.stderr)
    json.dump(out, sys.stdout)
    print()


if __name__ == "__main__":
    main()
