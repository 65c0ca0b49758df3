#!/usr/bin/env python
"""A 2-epoch REFILLED run (teacher, stage 1, stage 2) on the CIFAR-100 subset, printing img/s per stage.

    REFILLED_DATA=.gpu_data python benchmarks/gpu_refilled_run.py [--epochs 2 --device cuda]

Teacher WRN-16-2 on the first 50 CIFAR-FS classes, student WRN-16-1 on the 60 %-overlap window; bf16 autocast on
CUDA, channels_last, batch 128; uses refilled.train.fit exactly as the experiments do.
"""
import argparse, sys, time
from pathlib import Path
import torch
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from refilled.core import seed_everything
from refilled.data import load_cifar100, gkd_split, make_task, CIFAR100_MEAN, CIFAR100_STD
from refilled.backbones import create_model
from refilled.distillers import create_distiller, teacher_centers
from refilled.train import fit

ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
ap.add_argument('--epochs', type=int, default=2); ap.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
ap.add_argument('--batch', type=int, default=128)
a = ap.parse_args()
dev = torch.device(a.device)
print(f"device: {torch.cuda.get_device_name(dev) if dev.type == 'cuda' else 'cpu'}; torch {torch.__version__}")
arr = load_cifar100(); split = gkd_split('cifar100', overlap=0.6)
norm = dict(mean=CIFAR100_MEAN, std=CIFAR100_STD)
tt = make_task(arr, split.teacher_classes, val_frac=0.1, seed=0)
st = make_task(arr, split.student_classes, val_frac=0.1, seed=0)
print(f"teacher task {tt}\nstudent task {st}")
kw = dict(epochs=a.epochs, batch_size=a.batch, device=dev, verbose=True, **norm)

def stage(name, d, task, **extra):
    t = time.time(); r = fit(d, task, **kw, **extra)
    ips = [h['img_s'] for h in r.history]
    print(f"== {name}: {max(ips):,.0f} img/s training (best epoch), {time.time()-t:.1f} s wall for {a.epochs} epochs incl. evaluation")
    return r

seed_everything(0); teacher = create_model('wrn_16_2', 50)
stage('teacher (CE)', create_distiller('vanilla', teacher), tt)
P = teacher_centers(teacher, st.train_x, st.train_y, st.num_classes, device=dev, **norm)
seed_everything(0); student = create_model('wrn_16_1', 50)
r1 = stage('REFILLED stage 1 (CM, Eq. 5)', create_distiller('refilled_stage1', student, teacher), st, select='val_ncm')
r2 = stage('REFILLED stage 2 (CE + PL-weighted LKD, Eq. 10)', create_distiller('refilled_stage2', student, teacher, centers=P), st)
print(f"stage-1 NCM test acc {r1.test_acc_best_val:.2f}; stage-2 test acc {r2.test_acc_best_val:.2f} (2 epochs on a subset: a smoke check, not a result)")
