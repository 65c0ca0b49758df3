#!/usr/bin/env python
"""weights_auc.py PARAMS.yaml [OVERLAP ...] [--ncm_form FORM] [--tau_teacher TAU|calibrated]: AUC of the stage-2 instance
weights lambda_i for separating the student's seen from unseen classes (Fig. 6a/11), for the paper's Eq. 9 (teacher
NCM, PL) and the official code's weights, with the teacher's stage-2 target entropy (relative to its maximum, over the
batch's classes) and the teacher NCM classifier's test accuracy on the student's task. Needs only the protocol's
trained teacher (no student runs). Uses the parameter file's `base` settings unless --ncm_form / --tau_teacher override
them; `calibrated` fits tau on each overlap's validation split (temperature scaling, as `distill` does). Paths in the
file are relative to its repository, so the script runs from any folder."""
import argparse
from refilled.cli import sweep_params
from refilled.experiments import train_teacher, TEACHER_KEYS
from refilled.data import load_cifar100, gkd_split, make_task, CIFAR100_MEAN as MEAN, CIFAR100_STD as STD
from refilled.distillers import teacher_centers, embed_all, ncm_temperature
from refilled.eval import batch_weights, roc_auc, PAPER_AUC
from refilled.losses import ncm_logits, target_stats
import torch

ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
ap.add_argument('params'); ap.add_argument('overlaps', nargs='*', type=int, default=[20, 40, 60, 80])
ap.add_argument('--ncm_form', default=None); ap.add_argument('--tau_teacher', default=None)
a = ap.parse_args()
p = sweep_params(a.params, copy_teachers=True, verbose=False)   # the committed teacher, not a new training
form = a.ncm_form or p['ncm_form']
tau_arg = a.tau_teacher if a.tau_teacher is not None else p['tau_teacher']
tau_arg = tau_arg if tau_arg == 'calibrated' else float(tau_arg)
T = train_teacher(**{k: p[k] for k in TEACHER_KEYS})
teacher, dev = T['model_obj'], T['model_obj'].classifier.weight.device
arrays = load_cifar100(p['data_dir'])
print(f"teacher {p['teacher']} ({p['teacher_epochs']} epochs), test accuracy on its 50 classes {T['test_acc']:.2f}; "
      f"lambda = 1, weights inside shuffled batches of {p['batch_size']}, seed {p['seed']}; NCM form {form}, tau_teacher {tau_arg}")
print(f"{'overlap':>8}{'tau':>8}{'AUC pl (Eq. 9)':>16}{'AUC official':>14}{'pl mean seen/unseen':>22}{'official mean seen/unseen':>28}"
      f"{'target H/Hmax':>15}{'teacher NCM test acc':>22}")
for ov in a.overlaps:
    split = gkd_split(p['dataset'], overlap=ov/100, order=p['order'], seed=p['teacher_seed'])
    task = make_task(arrays, split.student_classes, val_per_class=p['val_per_class'], val_frac=p['val_frac'],
                     train_per_class=p['train_per_class'], seed=p['seed'])
    C = task.num_classes
    centers = teacher_centers(teacher, task.train_x, task.train_y, C, mean=MEAN, std=STD, device=dev)
    tau = tau_arg if tau_arg != 'calibrated' else ncm_temperature(teacher, centers, task.val_x, task.val_y, form=form, mean=MEAN, std=STD, device=dev)['tau']
    seen = torch.as_tensor(split.seen.copy())[task.train_y]
    W = {k: batch_weights(teacher, centers, task.train_x, task.train_y, mean=MEAN, std=STD, kind=k, lam=1.0, ncm_form=form,
                          tau_teacher=tau, batch_size=p['batch_size'], seed=p['seed'], device=dev) for k in ('pl', 'official')}
    emb = embed_all(teacher, task.test_x, mean=MEAN, std=STD, device=dev)
    z = ncm_logits(emb.float(), centers.to(emb.device), form=form)
    ncm = (z.argmax(1).cpu() == torch.as_tensor(task.test_y)).float().mean()*100
    # the target over a batch's classes: here all C classes of the task, the upper end of |S|
    H = target_stats((z / tau).log_softmax(-1))[0].mean()
    ms = lambda w: f"{w[seen].mean():.3f}/{w[~seen].mean():.3f}"
    print(f"{ov:>7}%{tau:>8.3g}{roc_auc(W['pl'], seen):>16.3f}{roc_auc(W['official'], seen):>14.3f}{ms(W['pl']):>22}{ms(W['official']):>28}"
          f"{H:>15.3f}{ncm:>22.2f}")
print(f"paper (WRN-40-2 teacher, 60 %): AUC {PAPER_AUC}")
