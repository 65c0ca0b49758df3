#!/usr/bin/env python
"""student_lr.py [--lrs 0.1,0.03,0.01,0.003] [--seeds 0,1] [--work DIR] [--folder DIR]: choose ConvNet-4's initial
learning rate (`ConvNet4.lr`, which `distill` uses unless given `lr`) on validation only. Plain cross-entropy students
(`student`, E = 20, batch 32, 25 training + 5 validation images per class, deterministic) on the tutorial's two ConvNet-4
tasks: (c) 10 of MiniImageNet's UNSEEN classes as an image folder (40 images per class for training and validation, 20
for test, written to --folder as the tutorial writes them) and (d) the first 10 species of the CUB-100 proxy (84 px,
resized to 96). The rule: the highest mean `val_acc_lastq` (validation accuracy averaged over the last quarter of the
epochs) over both tasks and all seeds; test accuracies are printed after the choice, never used for it. Finished runs
are found again in --work (each stage resumes), so a rerun only prints. Needs REFILLED_DATA (miniimagenet_subset,
cub100_proxy_128) and REFILLED_TEACHERS (FEAT's ConvNet-4: `distill` loads a teacher even for `student`)."""
import argparse, tempfile
from pathlib import Path
import numpy as np
from PIL import Image
from refilled.core import data_root
from refilled.data import load_miniimagenet
from refilled.experiments import distill

ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
ap.add_argument('--lrs', default='0.1,0.03,0.01,0.003'); ap.add_argument('--seeds', default='0,1')
ap.add_argument('--work', default=None, help='work folder (default: a fresh temporary one)')
ap.add_argument('--folder', default=None, help='where task (c) is written as an image folder (default: a temporary one)')
a = ap.parse_args()
lrs, seeds = [float(x) for x in a.lrs.split(',')], [int(s) for s in a.seeds.split(',')]
work = a.work or tempfile.mkdtemp(prefix='student-lr-')
folder = Path(a.folder or tempfile.mkdtemp(prefix='unseen-'))
if not (folder/'train').exists():
    mini = load_miniimagenet()
    for c in mini.split_classes('test')[:10]:
        imgs = np.concatenate([mini.train_x[mini.train_y == c], mini.test_x[mini.test_y == c]])
        for part, sl in (('train', slice(0, 40)), ('test', slice(40, 60))):
            (folder/part/mini.class_names[c]).mkdir(parents=True, exist_ok=True)
            for j, im in enumerate(imgs[sl]): Image.fromarray(im).save(folder/part/mini.class_names[c]/f'{j:02d}.png')
tasks = {'c': dict(data=f'imagefolder:{folder}', size=84, resize=84),
         'd': dict(data=f"imagefolder:{data_root()/'cub100_proxy_128'}", classes='0-9', size=84, resize=96)}
rows = []
for lr in lrs:
    for seed in seeds:
        for name, t in tasks.items():
            r = distill(method='student', epochs=20, batch_size=32, train_per_class=25, val_per_class=5, deterministic=True, seed=seed,
                        lr=lr, work_dir=work, verbose=False, protocol='student_lr', teacher='feat_convnet4_miniimagenet',
                        student='convnet4', **t)
            rows.append(dict(task=name, lr=lr, seed=seed, **{k: r[k] for k in ('val_acc_lastq', 'test_acc_last10', 'wall_s')}))
mean = lambda xs: sum(xs)/len(xs)
print(f"{'lr':>7}{'val_acc_lastq (c)':>19}{'val_acc_lastq (d)':>19}{'mean':>8}   then, after the choice: {'test_acc_last10 (c)':>20}{'(d)':>8}")
score = {}
for lr in lrs:
    v = {t: [r['val_acc_lastq'] for r in rows if r['lr'] == lr and r['task'] == t] for t in tasks}
    te = {t: [r['test_acc_last10'] for r in rows if r['lr'] == lr and r['task'] == t] for t in tasks}
    score[lr] = mean(v['c'] + v['d'])
    print(f"{lr:>7g}{mean(v['c']):>19.2f}{mean(v['d']):>19.2f}{score[lr]:>8.2f}   {'':>24}{mean(te['c']):>20.2f}{mean(te['d']):>8.2f}")
print(f"chosen (highest mean val_acc_lastq over both tasks and seeds {a.seeds}): lr = {max(score, key=score.get):g}")
