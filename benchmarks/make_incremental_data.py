#!/usr/bin/env python
"""Build the CIFAR-100 file a GPU machine needs for an incremental parameter file: the real images its runs read,
zeros elsewhere (same shapes and labels, so every seeded subset, split and index is the same), xz-compressed.

    python benchmarks/make_incremental_data.py experiments/params/gpu_incremental.yaml [--seeds 0 1 2] [--out .gpu_data]

writes OUT/cifar100.npz.xz, its images delta-coded (`unpack_gpu_data.py`: about 0.56 of their size after xz instead of 0.75);
`benchmarks/gpu_incremental.sh` unpacks it on the GPU machine with `benchmarks/unpack_gpu_data.py`.

The images an incremental run reads (`refilled.incremental.incremental`): its student task of the new classes
(training, validation and test images, by seed) and the teacher's task of the old classes (validation and test images;
the trained teacher travels in the parameter file's `teachers:` folder, so its training images are never read). After
writing, the script rebuilds every seed's two tasks from the new file and checks them equal, array by array, to the
tasks built from the full file; it prints the file's size. It refuses a parameter file without `teachers:`.
"""
import argparse, io, lzma, sys, tempfile
from pathlib import Path
import numpy as np, yaml
sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parent)]
from refilled.data import load_cifar100
from refilled.experiments import student_task, preset_teacher_task
from refilled.incremental import _inc_params
from refilled.core import atomic_write_bytes
from unpack_gpu_data import delta_encode, delta_decode

ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
ap.add_argument('params'); ap.add_argument('--seeds', type=int, nargs='+', default=None, help="default: the file's seeds")
ap.add_argument('--out', default='.gpu_data'); ap.add_argument('--data', default=None, help='source data root (default: data_root())')
a = ap.parse_args()
meta = yaml.safe_load(Path(a.params).read_text())
if not meta.get('teachers'): sys.exit(f"{a.params}: no 'teachers:' folder, so the teacher would be trained on the GPU machine from images this file leaves out")
if meta['run'].get('dataset', 'cifar100') != 'cifar100': sys.exit(f"{a.params}: only CIFAR-100 runs are supported")
seeds = a.seeds if a.seeds is not None else meta['seeds']

def tasks(root, seed):
    "The seed's student task and the teacher's task, built from the CIFAR-100 file under `root` as `incremental` builds them."
    p, _ = _inc_params('student_lwof', 1.0, 1.0, 2.0, '1', {**meta['run'], 'seed': seed, 'data_dir': root, 'work_dir': None})
    t = preset_teacher_task(p, None, val_frac=p['teacher_val_frac'], train_per_class=p['teacher_train_per_class'], seed=p['teacher_seed'])
    return student_task(p, None), t

src = a.data
full = load_cifar100(src)
train, test = set(), set()
for seed in seeds:
    s, t = tasks(src, seed)
    train |= set(s.train_index.tolist()) | set(s.val_index.tolist()) | set(t.val_index.tolist())
    test |= set(s.test_index.tolist()) | set(t.test_index.tolist())
tr, te = np.zeros(len(full.train_y), bool), np.zeros(len(full.test_y), bool)
tr[sorted(train)] = True; te[sorted(test)] = True
_tmpdir = tempfile.TemporaryDirectory()   # the plain file the check rebuilds the tasks from (about 180 MB), removed at exit
tmp = Path(_tmpdir.name)/'cifar100'; tmp.mkdir()
small = dict(train_x=np.where(tr[:, None, None, None], full.train_x, 0), train_y=np.asarray(full.train_y),
             test_x=np.where(te[:, None, None, None], full.test_x, 0), test_y=np.asarray(full.test_y), fine_label_names=np.asarray(full.fine_label_names))
np.savez(tmp/'cifar100.npz', **small)
out = Path(a.out); out.mkdir(parents=True, exist_ok=True)
coded = {k: delta_encode(v) if k.endswith('_x') else v for k, v in small.items()}
for k in ('train_x', 'test_x'): assert np.array_equal(delta_decode(coded[k]), small[k]), k
buf = io.BytesIO(); np.savez(buf, **coded)
atomic_write_bytes(lzma.compress(buf.getvalue(), preset=9 | lzma.PRESET_EXTREME), out/'cifar100.npz.xz')
for seed in seeds:
    for x, y, name in zip(tasks(src, seed), tasks(str(tmp.parent), seed), ('student', 'teacher')):
        keys = ('train_x', 'val_x', 'test_x', 'train_y', 'val_y', 'test_y') if name == 'student' else ('val_x', 'test_x', 'val_y', 'test_y')
        for k in keys:
            if not np.array_equal(np.asarray(getattr(x, k)), np.asarray(getattr(y, k))): sys.exit(f"seed {seed}: the {name} task's {k} differs")
print(f"{out/'cifar100.npz.xz'}: {(out/'cifar100.npz.xz').stat().st_size/2**20:.1f} MiB; {tr.sum()} training and {te.sum()} test images kept "
      f"of {len(tr)} and {len(te)}; seeds {seeds}: every task identical to the full file's")
