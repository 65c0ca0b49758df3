"""One-step incremental learning (refilled.incremental): the joint classifier, its criteria, LwoF and EWC, beyond the notebook's examples."""
import math
import pytest
import torch
from refilled.core import InputError
from refilled.backbones import create_model
from refilled.teachers import Teacher
from refilled.distillers import create_distiller
from refilled.fewshot import episode_student
from refilled.incremental import (joint_weights, joint_predict, joint_labels, incremental_scores, lwof_loss, fisher_diagonal,
                                  ewc_penalty, old_rows)

EV = dict(mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))


def test_joint_classifier_drops_the_scale_of_the_weights_by_hand():
    "Old rows (2, 0) and (0, 1), new row (1, 1); for φ = (1, 0.9) the raw scores 2, 0.9, 1.9 pick old class 0, the normalised 1, 0.9, 1.9/√2 = 1.34 the new class."
    old, new, emb = torch.tensor([[2., 0.], [0., 1.]]), torch.tensor([[1., 1.]]), torch.tensor([[1., 0.9]])
    assert (emb @ torch.cat([old, new]).T).argmax(1).item() == 0
    W = joint_weights(old, new)
    assert torch.allclose(emb @ W.T, torch.tensor([[1.0, 0.9, 1.9 / math.sqrt(2)]]))
    assert joint_predict(emb, W).item() == 2


def test_criteria_by_hand_with_unequal_halves():
    "3 old images (2 right), 2 new (1 right, 1 taken by an old class): 66.67, 50, 60 and HM 2·(200/3)·50/(200/3 + 50) = 57.14."
    y = joint_labels(torch.tensor([0, 1, 2]), torch.tensor([0, 1]), n_old=3)
    s = incremental_scores(torch.tensor([0, 1, 0, 3, 1]), y, n_old=3)
    assert s['acc_old'] == pytest.approx(200 / 3) and s['acc_new'] == 50 and s['acc_all'] == 60
    assert s['hm'] == pytest.approx(2 * (200 / 3) * 50 / (200 / 3 + 50))
    with pytest.raises(InputError, match='same length'): incremental_scores(torch.tensor([0]), y, 3)


def test_lwof_loss_hand_case():
    "Uniform teacher, student logits (2, 0) at T = 2: −½ log σ(1) − ½ log σ(−1) = log(1 + e) − ½."
    got = lwof_loss(torch.tensor([[2., 0.]]), torch.tensor([[0., 0.]]), tau=2.0)
    assert got.item() == pytest.approx(math.log(1 + math.e) - 0.5, abs=1e-6)
    with pytest.raises(InputError, match='tau'): lwof_loss(torch.zeros(1, 2), torch.zeros(1, 2), tau=0)


def _teacher(classes=4, seed=0):
    torch.manual_seed(seed)
    return Teacher(create_model('wrn_16_1', classes), size=None, **EV)


def test_lwof_old_head_learns_the_teachers_old_class_predictions():
    "Trained on new-class images only, the old head comes to agree with the teacher's old-class decisions on them."
    T, student = _teacher(), create_model('wrn_16_1', 3)
    d = create_distiller('lwof', student, T, weight=5.0)
    x, y = torch.randn(32, 3, 32, 32), torch.randint(0, 3, (32,))
    with torch.no_grad(): t_pred = T(x).argmax(1)
    opt = torch.optim.SGD([p for p in d.parameters() if p.requires_grad], lr=0.05, momentum=0.9)
    d.train(); first = None
    for _ in range(60):
        loss = d(x, y)[1]['lwof']; first = first if first is not None else loss.item()
        opt.zero_grad(); (loss + d(x, y)[1]['ce']).backward(); opt.step()
    d.eval()
    with torch.no_grad(): agree = (d.old_head(student.embed(x)).argmax(1) == t_pred).float().mean().item()
    assert d(x, y)[1]['lwof'].item() < first and agree > 0.8
    assert 'lwof_entropy_rel' in d.epoch_stats()


def test_lwof_checkpoint_round_trip_without_the_teacher():
    T = _teacher()
    a, b = create_distiller('lwof', create_model('wrn_16_1', 3), T), create_distiller('lwof', create_model('wrn_16_1', 3), T)
    sd = a.trainable_state_dict()
    assert sd and not any('teacher' in k.split('.') or 'lwof_teacher' in k.split('.') for k in sd)
    b.load_trainable_state_dict(sd)
    assert torch.equal(old_rows(a), old_rows(b)) and torch.equal(a.student.classifier.weight, b.student.classifier.weight)
    with pytest.raises(KeyError, match='does not fit'): b.load_trainable_state_dict({'nope': torch.zeros(1)})


def test_ewc_keeps_the_weights_that_matter_closer_than_fine_tuning():
    "Same data, same steps: with a large λ the student ends nearer the teacher (Fisher-weighted distance) than with λ = 0 (FT); measured 0.5-0.7x."
    T = _teacher(classes=4)
    imgs = torch.randint(0, 256, (24, 32, 32, 3), dtype=torch.uint8)
    F_ = fisher_diagonal(T.model, imgs, **EV, batch_size=8)
    assert all((f >= 0).all() for f in F_.values()) and sum(f.sum() for f in F_.values()) > 0
    again = fisher_diagonal(T.model, imgs, **EV, batch_size=8)
    assert all(torch.equal(F_[n], again[n]) for n in F_)                # seeded draws: the same estimate twice
    x, y = ((imgs.permute(0, 3, 1, 2).float() / 255 - 0.5) / 0.25), torch.randint(0, 3, (24,))
    dist = {}
    big = 1.0 / (0.05 * max(f.max().item() for f in F_.values()))   # lr·λ·max F = 1: strong, yet a stable SGD step
    for lam in (0.0, big):
        st = episode_student(T, 3, init='teacher', seed=0)
        d = create_distiller('ewc', st, T, fisher=F_, lam=lam)
        opt = torch.optim.SGD([p for p in d.parameters() if p.requires_grad], lr=0.05)
        d.train()
        for _ in range(20):
            opt.zero_grad(); sum(d(x, y)[1].values()).backward(); opt.step()
        sp, tp = dict(st.named_parameters()), dict(T.model.named_parameters())
        dist[lam] = ewc_penalty([sp[n] for n in F_], [tp[n] for n in F_], list(F_.values())).item()
    assert dist[big] < 0.75 * dist[0.0], dist


@pytest.mark.parametrize('name', ['cpu_incremental', 'gpu_incremental', 'cub_incremental'])
def test_incremental_parameter_files_validate(name):
    "Every (method, student, seed) run of the incremental parameter files passes `incremental`'s checks, as the notebook calls it."
    import yaml
    from pathlib import Path
    from refilled.incremental import _inc_params, INCREMENTAL_METHODS, TEACHER_NETWORK
    f = yaml.safe_load((Path(__file__).resolve().parents[1]/'experiments'/'params'/f'{name}.yaml').read_text())
    assert set(f['methods']) == set(INCREMENTAL_METHODS)
    for m in f['methods']:
        for s in ([f['run']['teacher']] if m in TEACHER_NETWORK else f['students']):
            for seed in f['seeds']:
                p, ip = _inc_params(m, f['ewc_lam'], f['lwof_weight'], f['lwof_tau'], f['lr_Cs'],
                                    dict(f['run'], protocol=f['protocol'], seed=seed, student=s, results_csv=f['results_csv'], work_dir=f['work_dir']))
                assert p['overlap'] == 0 and ip['method'] == m
    if name == 'cub_incremental':
        assert p['dataset'] == 'imagefolder:cub100_proxy_128' and p['order'] == 'natural' and (p['size'], p['resize']) == (112, 128)
        assert f['students'] == ['mobilenet_v1', 'mobilenet_v1_075', 'mobilenet_v1_050', 'mobilenet_v1_025']
    if name == 'gpu_incremental':   # the CPU protocol's runs on another device: every parameter but the names is the same
        cpu = yaml.safe_load((Path(__file__).resolve().parents[1]/'experiments'/'params'/'cpu_incremental.yaml').read_text())
        assert {k: v for k, v in f.items() if k not in ('protocol', 'work_dir', 'seeds')} == {k: v for k, v in cpu.items() if k not in ('protocol', 'work_dir', 'seeds')}

def test_incremental_table_keeps_each_students_rows_apart():
    "A student method run with the teacher's architecture belongs to that student's table only; the teacher-network methods to every table."
    from refilled.incremental import incremental_table
    rows = [dict(method=m, student=s, teacher='wrn_16_2', acc_old=a, acc_new=a, acc_all=a, hm=a) for m, s, a in
            [('ewc', 'wrn_16_2', 30.), ('student_lwof', 'wrn_16_2', 31.), ('student_lwof', 'wrn_16_1', 25.), ('student_lwof', 'wrn_16_1', 27.)]]
    def hm(student, method): return [l for l in incremental_table(rows, student=student).splitlines() if l.split()[0] == method][0].split('(')[-2]
    assert '26.00 ± 1.41 ' in hm('wrn_16_1', 'student_lwof') and '31.00 ' in hm('wrn_16_2', 'student_lwof')
    assert '30.00 ' in hm('wrn_16_1', 'ewc') and '30.00 ' in hm('wrn_16_2', 'ewc')

def test_claim_verdict_from_paired_rows():
    "REFILLED minus Student (+ LwoF) per student and seed, and the rule: all positive holds, all negative fails, mixed signs undecided."
    from refilled.incremental import paired_differences, verdict
    rows = [dict(method=m, student='w', seed=seed, hm=h) for m, seed, h in
            [('refilled_lwof', 0, 28.42), ('student_lwof', 0, 31.26), ('refilled_lwof', 1, 26.74), ('student_lwof', 1, 30.34), ('refilled_lwof', 2, 30.)]]
    d = paired_differences(rows)
    assert d == {('w', '0'): -2.84, ('w', '1'): -3.6}
    assert verdict(list(d.values())) == 'pending' and verdict([*d.values(), -0.01]) == 'fails' and verdict([*d.values(), 0.5]) == 'undecided'
