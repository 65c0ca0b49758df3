#!/usr/bin/env python
"""Build the CIFAR-100 subset that benchmarks/gpu_check.sh carries to a GPU machine (no network there).

    python benchmarks/make_gpu_subset.py [--per-class 120 --test-per-class 30 --out .gpu_data]

Writes OUT/cifar100/cifar100.npz (uncompressed; same keys as the full file, so refilled.data.load_cifar100 reads it
with REFILLED_DATA=OUT): the first --per-class training and --test-per-class test images of every class.
120 + 30 per class is 15,000 images, about 44 MiB (the GPU check may bring at most 60 MiB of data).
"""
import argparse, sys
from pathlib import Path
import numpy as np
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from refilled.data import load_cifar100

ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
ap.add_argument('--per-class', type=int, default=120); ap.add_argument('--test-per-class', type=int, default=30)
ap.add_argument('--out', default='.gpu_data'); ap.add_argument('--data', default=None, help='source data root (default: data_root())')
a = ap.parse_args()
arr = load_cifar100(a.data)
def take(y, n): return np.concatenate([np.nonzero(np.asarray(y) == c)[0][:n] for c in range(100)])
tr, te = take(arr.train_y, a.per_class), take(arr.test_y, a.test_per_class)
out = Path(a.out)/'cifar100'; out.mkdir(parents=True, exist_ok=True)
np.savez(out/'cifar100.npz', train_x=np.asarray(arr.train_x)[tr], train_y=np.asarray(arr.train_y)[tr],
         test_x=np.asarray(arr.test_x)[te], test_y=np.asarray(arr.test_y)[te], fine_label_names=np.asarray(arr.fine_label_names))
print(f"wrote {out/'cifar100.npz'}: {len(tr)} train + {len(te)} test images, {(out/'cifar100.npz').stat().st_size/2**20:.1f} MiB")
