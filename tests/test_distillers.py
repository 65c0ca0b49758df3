"Distillers: registry, teacher freezing, each method's loss terms against the equations, teacher NCM centres and their cache."
import pytest
import torch
import torch.nn.functional as F
from refilled.backbones import create_model
from refilled.distillers import DISTILLERS, create_distiller, teacher_centers, embed_all, state_dict_hash
from refilled.losses import ncm_logits, local_kd_loss, pl_weights, restrict_to_batch_classes, comparison_matching_loss, official_weights
from refilled.data import CIFAR100_MEAN, CIFAR100_STD


@pytest.fixture(scope='module')
def models():
    torch.manual_seed(0)
    return create_model('wrn_16_2', 8), create_model('wrn_16_1', 6)   # teacher over 8 classes, student over 6: label spaces differ


@pytest.fixture(scope='module')
def batch():
    g = torch.Generator().manual_seed(1)
    return torch.randn(24, 3, 32, 32, generator=g), torch.tensor([0, 1, 2, 3] * 6)   # classes 4, 5 absent: S = {0, 1, 2, 3}


def _kwargs(name, teacher):
    if name in ('refilled_stage2', 'refilled_onestage'): return {'centers': torch.rand(6, teacher.embed_dim)}
    if DISTILLERS[name].matches_logits: return {'teacher_classes': list(range(6)), 'student_classes': list(range(6))}
    return {}


@pytest.mark.parametrize('name', sorted(DISTILLERS))
def test_every_distiller_trains_the_student_and_not_the_teacher(name, models, batch):
    teacher, student = models
    if DISTILLERS[name].matches_logits: teacher = create_model('wrn_16_2', 6)
    d = create_distiller(name, student, None if name == 'vanilla' else teacher, **_kwargs(name, teacher)).train()
    x, y = batch
    logits, losses = d(x, y)
    assert logits.shape == (24, 6) and losses and all(torch.isfinite(v) and v.ndim == 0 for v in losses.values())
    sum(losses.values()).backward()
    if d.teacher is not None:
        assert not d.teacher.training and all(p.grad is None for p in d.teacher.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in student.parameters())
    assert not any(k.startswith('teacher.') for k in d.trainable_state_dict())
    student.zero_grad(set_to_none=True)


def test_registry_errors(models):
    teacher, student = models
    with pytest.raises(ValueError, match="unknown distiller 'refiled'"): create_distiller('refiled', student, teacher)
    with pytest.raises(TypeError, match=r"unknown parameter\(s\) \['lamda'\]"): create_distiller('refilled_stage2', student, teacher, centers=torch.rand(6, 128), lamda=1)
    with pytest.raises(ValueError, match='needs a teacher'): create_distiller('refilled_stage1', student)
    with pytest.raises(ValueError, match="weights must be one of"): create_distiller('refilled_stage2', student, teacher, centers=torch.rand(6, 128), weights='x')
    with pytest.raises(ValueError, match='lam must be'): create_distiller('refilled_stage2', student, teacher, centers=torch.rand(6, 128), lam=-1.0)


def test_kd_needs_equal_class_sets(models):
    teacher, student = models
    with pytest.raises(ValueError, match='class sets must be'):
        create_distiller('kd', student, teacher, teacher_classes=list(range(8)), student_classes=list(range(6)))


def test_stage1_is_eq5_and_leaves_the_classifier_alone(models, batch):
    teacher, student = models; x, y = batch
    d = create_distiller('refilled_stage1', student, teacher, tau_student=1.0, tau_teacher=2.0)
    _, losses = d(x, y)
    losses['cm'].backward()
    assert student.classifier.weight.grad is None and student.classifier.bias.grad is None
    with torch.no_grad():
        ref = comparison_matching_loss(student.embed(x), teacher.eval().embed(x), y, tau_student=1.0, tau_teacher=2.0)
    assert losses['cm'].item() == pytest.approx(ref.item(), rel=1e-5)
    student.zero_grad(set_to_none=True)


@pytest.mark.parametrize('form', ['cosine', 'dot', 'paper'])
def test_stage2_is_eq10(models, batch, form):
    teacher, student = models; x, y = batch
    P = torch.rand(6, teacher.embed_dim)
    d = create_distiller('refilled_stage2', student, teacher, centers=P, lam=1.5, weights='pl', ncm_form=form, tau_teacher=2.0)
    _, losses = d(x, y)
    with torch.no_grad():
        s_logits, t = student(x), ncm_logits(teacher.embed(x), P, form=form)
        lam_i = pl_weights(restrict_to_batch_classes(t, y), 1.5, tau=2.0)
        S = torch.tensor([0, 1, 2, 3])
        kl = (F.softmax(t[:, S]/2, 1) * (F.log_softmax(t[:, S]/2, 1) - F.log_softmax(s_logits[:, S], 1))).sum(1)   # KL over S only
    assert losses['ce'].item() == pytest.approx(F.cross_entropy(s_logits, y).item(), rel=1e-5)
    assert losses['lkd'].item() == pytest.approx((lam_i*kl).mean().item(), rel=1e-4)
    assert torch.all(lam_i > 0) and torch.all(lam_i <= 1.5)


def test_stage2_weight_modes(models, batch):
    teacher, student = models; x, y = batch
    P = torch.rand(6, teacher.embed_dim)
    none = create_distiller('refilled_stage2', student, teacher, centers=P, lam=2.0, weights='none')(x, y)[1]['lkd']
    with torch.no_grad(): ref = 2.0*local_kd_loss(student(x), ncm_logits(teacher.embed(x), P), y, tau_teacher=2.0)
    assert none.item() == pytest.approx(ref.item(), rel=1e-5)
    d = create_distiller('refilled_stage2', student, teacher, centers=P, lam=2.0, weights='official')
    d(x, y)
    with torch.no_grad(): assert torch.allclose(d.last_weights, official_weights(teacher(x), 2.0))
    assert list(create_distiller('refilled_stage2', student, teacher, centers=P, lam=0.0)(x, y)[1]) == ['ce']


def test_teacher_centers_are_eq6_and_cached_by_teacher_and_split(tmp_path, models):
    teacher, _ = models
    g = torch.Generator().manual_seed(0)
    x, y = torch.randint(0, 256, (40, 32, 32, 3), dtype=torch.uint8, generator=g), torch.arange(4).repeat(10)
    kw = dict(mean=CIFAR100_MEAN, std=CIFAR100_STD, device='cpu', cache_dir=tmp_path)
    P = teacher_centers(teacher, x, y, 4, **kw)
    emb = embed_all(teacher, x, mean=CIFAR100_MEAN, std=CIFAR100_STD, device='cpu')
    assert torch.allclose(P, torch.stack([emb[y == c].mean(0) for c in range(4)]), atol=1e-5)
    assert len(list(tmp_path.iterdir())) == 1
    assert torch.equal(teacher_centers(teacher, x, y, 4, **kw), P) and len(list(tmp_path.iterdir())) == 1     # served from the cache
    teacher_centers(teacher, x, y.roll(1), 4, **kw); assert len(list(tmp_path.iterdir())) == 2               # another split
    t2 = create_model('wrn_16_2', 8); assert state_dict_hash(t2) != state_dict_hash(teacher)
    teacher_centers(t2, x, y, 4, **kw); assert len(list(tmp_path.iterdir())) == 3                            # another teacher
    with pytest.raises(ValueError): teacher_centers(teacher, x, torch.zeros(40, dtype=torch.long), 4, mean=CIFAR100_MEAN, std=CIFAR100_STD, device='cpu')


def test_register_refuses_another_class_under_a_taken_name():
    "A second class under a registered name is refused; the same class defined again (a notebook cell re-run) replaces it."
    from refilled.distillers import register, DISTILLERS, Distiller
    with pytest.raises(ValueError, match="already registered \\(by Vanilla\\)"):
        register('vanilla')(type('Other', (Distiller,), {}))
    old = DISTILLERS['vanilla']
    try:
        again = register('vanilla')(type('Vanilla', (old,), {}))
        assert DISTILLERS['vanilla'] is again
    finally: DISTILLERS['vanilla'] = old; old.name = 'vanilla'
