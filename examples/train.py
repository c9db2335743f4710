"""A tiny, dependency-free training script for trying runctl.

Fits y = 3x + 2 with stochastic gradient descent, logs loss and parameters
through the runctl client, writes a checkpoint every epoch into
RUNCTL_CHECKPOINT_DIR and resumes from RUNCTL_RESUME_FROM when given:

    runctl local examples/train.py -- --epochs 5
    runctl local --resume auto examples/train.py -- --epochs 8
"""
import argparse
import json
import os
import random

import runctl

parser = argparse.ArgumentParser()
parser.add_argument("--epochs", type=int, default=5)
parser.add_argument("--lr", type=float, default=0.05)
parser.add_argument("--samples", type=int, default=256)
args = parser.parse_args()

ckpt_dir = os.environ.get("RUNCTL_CHECKPOINT_DIR", "checkpoints")
os.makedirs(ckpt_dir, exist_ok=True)

rng = random.Random(0)
data = [(x, 3.0 * x + 2.0 + rng.gauss(0, 0.1)) for x in (rng.uniform(-1, 1) for _ in range(args.samples))]
w, b, start = 0.0, 0.0, 0

resume = os.environ.get("RUNCTL_RESUME_FROM")
if resume:
    with open(resume) as f:
        state = json.load(f)
    w, b, start = state["w"], state["b"], state["epoch"] + 1
    print(f"resuming from {resume} (epoch {state['epoch']})")

with runctl.init(name="linear-regression", config=vars(args)) as run:
    step = start * len(data)
    for epoch in range(start, args.epochs):
        rng.shuffle(data)
        total = 0.0
        for x, y in data:
            err = (w * x + b) - y
            w -= args.lr * 2 * err * x
            b -= args.lr * 2 * err
            total += err * err
            step += 1
        loss = total / len(data)
        run.log({"loss": loss, "w": w, "b": b, "epoch": epoch}, step=step)
        path = os.path.join(ckpt_dir, f"epoch_{epoch:04d}.ckpt")
        with open(path, "w") as f:
            json.dump({"epoch": epoch, "w": w, "b": b}, f)
        print(f"epoch {epoch}: loss {loss:.5f}  w {w:.3f}  b {b:.3f}  -> {path}")
    run.summary({"final_loss": loss, "w": w, "b": b})
