#!/usr/bin/env python
"""Build the CIFAR-100 file a GPU machine needs for some grids of a sweep file: the real images those runs read,
zeros elsewhere (same shapes and labels, so every seeded subset, split and index is the same), xz-compressed.

    python benchmarks/make_sweep_data.py experiments/params/cpu_fidelity.yaml --grid gpu_e338 [--grid ...] [--out .gpu_data]

writes OUT/cifar100.npz.xz; on the GPU machine `benchmarks/gpu_priority.sh` unpacks it to a cifar100/cifar100.npz.

A lent GPU machine cannot reach the network and takes at most 64 MiB of working tree, so the full CIFAR-100 file
(160 MiB) cannot travel. The images a run reads: its student task (training, validation and test images) and the
teacher's validation and test images, and its training images unless the sweep file's `teachers:` (or a
`teacher_ckpt`) provides the trained teacher. After writing, the script rebuilds every run's tasks from the new file and checks them equal, array by
array, to the tasks built from the full file; it prints the file's size.
"""
import argparse, sys
from pathlib import Path
import numpy as np
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from refilled.cli import load_sweep
from refilled.data import load_cifar100, gkd_split, make_task

ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
ap.add_argument('params'); ap.add_argument('--grid', action='append', required=True)
ap.add_argument('--out', default='.gpu_data'); ap.add_argument('--data', default=None, help='source data root (default: data_root())')
a = ap.parse_args()
meta, runs = load_sweep(a.params)
runs = [r['params'] for r in runs if r['grid'] in a.grid]
if not runs: sys.exit(f"no runs in grids {a.grid} of {a.params}")
full = load_cifar100(a.data)

def tasks(arrays, p):
    "The run's student task and its teacher's task, built from `arrays` as `refilled.tasks.gkd_task` and `train_teacher` build them."
    if p['data'] is not None or p['dataset'] != 'cifar100': sys.exit(f"{p['method']}: only runs of the CIFAR-100 GKD preset are supported")
    split = gkd_split('cifar100', overlap=p['overlap']/100, order=p['order'], seed=p['teacher_seed'])
    tsplit = gkd_split('cifar100', overlap=0.0, order=p['order'], seed=p['teacher_seed'])      # as train_teacher
    student = make_task(arrays, [int(c) for c in split.student_classes], val_per_class=p['val_per_class'], val_frac=p['val_frac'],
                        train_per_class=p['train_per_class'], seed=p['seed'])
    teacher = make_task(arrays, [int(c) for c in tsplit.teacher_classes], val_frac=p['teacher_val_frac'],
                        train_per_class=p['teacher_train_per_class'], seed=p['teacher_seed'])
    return student, teacher

train, test = set(), set()
for p in runs:
    s, t = tasks(full, p)
    train |= set(s.train_index.tolist()) | set(s.val_index.tolist()) | set(t.val_index.tolist())
    if meta['teachers'] is None and p['teacher_ckpt'] is None: train |= set(t.train_index.tolist())   # the teacher is trained there
    test |= set(s.test_index.tolist()) | set(t.test_index.tolist())
tr, te = np.zeros(len(full.train_y), bool), np.zeros(len(full.test_y), bool)
tr[sorted(train)] = True; te[sorted(test)] = True
import lzma, shutil, tempfile
tmp = Path(tempfile.mkdtemp())/'cifar100'; tmp.mkdir()
np.savez(tmp/'cifar100.npz', train_x=np.where(tr[:, None, None, None], full.train_x, 0), train_y=np.asarray(full.train_y),
                    test_x=np.where(te[:, None, None, None], full.test_x, 0), test_y=np.asarray(full.test_y),
                    fine_label_names=np.asarray(full.fine_label_names))
out = Path(a.out); out.mkdir(parents=True, exist_ok=True)
with open(tmp/'cifar100.npz', 'rb') as src, lzma.open(out/'cifar100.npz.xz.part', 'wb', preset=6) as dst: shutil.copyfileobj(src, dst)
(out/'cifar100.npz.xz.part').replace(out/'cifar100.npz.xz')
small = load_cifar100(tmp.parent)
for p in runs:
    for (x, y), name, keys in zip(zip(tasks(full, p), tasks(small, p)), ('student', 'teacher'),
                                  (('train_x', 'val_x', 'test_x', 'train_y', 'val_y', 'test_y'),
                                   ('val_x', 'test_x', 'val_y', 'test_y') + (('train_x',) if meta['teachers'] is None else ()))):
        for k in keys: assert np.array_equal(np.asarray(getattr(x, k)), np.asarray(getattr(y, k))), (p['method'], p['seed'], name, k)
shutil.rmtree(tmp.parent)
size = (out/'cifar100.npz.xz').stat().st_size / 2**20
print(f"wrote {out/'cifar100.npz.xz'}: {tr.sum()} training and {te.sum()} test images of {len(runs)} runs ({size:.1f} MiB); "
      f"every run's tasks are identical to the full file's{'' if size < 50 else ' -- TOO LARGE: with the repository (~13 MiB) it exceeds the 64 MiB a GPU machine takes'}")
