#!/usr/bin/env python
"""weights_auc.py PARAMS.yaml [OVERLAP ...]: AUC of the stage-2 instance weights lambda_i for separating the student's
seen from unseen classes (Fig. 6a/11), for the paper's Eq. 9 (teacher NCM, PL) and the official code's weights, and the
teacher NCM classifier's test accuracy on the student's task. Needs only the protocol's trained teacher (no student runs),
so it can be read as soon as the teacher exists. Uses the parameter file's `base` settings (paths in it are relative to
its repository, so the script runs from any folder)."""
import sys
from refilled.cli import sweep_params
from refilled.experiments import train_teacher, TEACHER_KEYS
from refilled.data import load_cifar100, gkd_split, make_task, CIFAR100_MEAN as MEAN, CIFAR100_STD as STD
from refilled.distillers import teacher_centers, embed_all
from refilled.eval import batch_weights, roc_auc, PAPER_AUC
from refilled.losses import ncm_logits
import torch

if len(sys.argv) < 2: sys.exit(__doc__)
overlaps = [int(o) for o in sys.argv[2:]] or [20, 40, 60, 80]
p = sweep_params(sys.argv[1], verbose=False)
T = train_teacher(**{k: p[k] for k in TEACHER_KEYS})
teacher, dev = T['model_obj'], T['model_obj'].classifier.weight.device
arrays = load_cifar100(p['data_dir'])
print(f"teacher {p['teacher']} ({p['teacher_epochs']} epochs), test accuracy on its 50 classes {T['test_acc']:.2f}; "
      f"lambda = 1, weights inside shuffled batches of {p['batch_size']}, seed {p['seed']}")
print(f"{'overlap':>8}{'AUC pl (Eq. 9)':>16}{'AUC official':>14}{'pl mean seen/unseen':>22}{'official mean seen/unseen':>28}{'teacher NCM test acc':>22}")
for ov in overlaps:
    split = gkd_split(p['dataset'], overlap=ov/100, order=p['order'], seed=p['teacher_seed'])
    task = make_task(arrays, split.student_classes, val_per_class=p['val_per_class'], val_frac=p['val_frac'],
                     train_per_class=p['train_per_class'], seed=p['seed'])
    C = task.num_classes
    centers = teacher_centers(teacher, task.train_x, task.train_y, C, mean=MEAN, std=STD, device=dev)
    seen = torch.as_tensor(split.seen.copy())[task.train_y]
    W = {k: batch_weights(teacher, centers, task.train_x, task.train_y, mean=MEAN, std=STD, kind=k, lam=1.0, ncm_form=p['ncm_form'],
                          tau_teacher=p['tau_teacher'], batch_size=p['batch_size'], seed=p['seed'], device=dev) for k in ('pl', 'official')}
    emb = embed_all(teacher, task.test_x, mean=MEAN, std=STD, device=dev)
    ncm = (ncm_logits(emb.float(), centers.to(emb.device), form=p['ncm_form']).argmax(1).cpu() == torch.as_tensor(task.test_y)).float().mean()*100
    ms = lambda w: f"{w[seen].mean():.3f}/{w[~seen].mean():.3f}"
    print(f"{ov:>7}%{roc_auc(W['pl'], seen):>16.3f}{roc_auc(W['official'], seen):>14.3f}{ms(W['pl']):>22}{ms(W['official']):>28}{ncm:>22.2f}")
print(f"paper (WRN-40-2 teacher, 60 %): AUC {PAPER_AUC}")
