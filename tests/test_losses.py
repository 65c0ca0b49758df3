"Tests of refilled.losses against the paper's equations (Eq. 2, 4-11, 17-18) and the baselines' definitions."
import math
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from hypothesis import given, settings, strategies as st

from refilled.tuples import Tuples, mine_tuples, pairwise_distances
from refilled.losses import (kl_rows, tuple_log_probs, comparison_matching_loss, CM_PRESETS, class_centers, ncm_logits,
                             batch_classes, restrict_to_batch_classes, local_kd_loss, kd_loss, pl_weights, gap_weights,
                             official_weights, STAGE2_PRESETS, rkd_loss, aml_loss, fitnet_loss, HintRegressor,
                             attention_map, at_loss, nst_loss)


def batch(seed, B=48, d_s=8, d_t=12, c=5, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(B, d_s, generator=g, dtype=dtype), torch.randn(B, d_t, generator=g, dtype=dtype),
            torch.randint(0, c, (B,), generator=g))


def padded(t):
    "The same tuples in the padded form (forces the gather evaluation of the loss)."
    return Tuples(t.anchor, t.positive, t.negatives, t.mask)


def reference_cm(s, t, tuples, tau_s, tau_t):
    "Eq. 4-5 tuple by tuple with explicit distances (no shared code with the implementation)."
    zs, zt = F.normalize(s, dim=1), F.normalize(t, dim=1)
    kls = []
    for a, p, neg, m in zip(tuples.anchor.tolist(), tuples.positive.tolist(), tuples.negatives, tuples.mask):
        idx = [p] + neg[m].tolist()
        ls = torch.log_softmax(torch.stack([-(zs[a] - zs[j]).norm() for j in idx]) / tau_s, 0)
        lt = torch.log_softmax(torch.stack([-(zt[a] - zt[j]).norm() for j in idx]) / tau_t, 0)
        kls.append((lt.exp() * (lt - ls)).sum())
    return torch.stack(kls).mean()


# ---- KL helper and Eq. 4 --------------------------------------------------------------------------------------------

def test_kl_rows_convention_zero_log_zero():
    lp = torch.tensor([[0.5, 0.5, 0.], [1., 0., 0.]]).log()
    lq = torch.tensor([[0.25, 0.25, 0.5], [0.5, 0.5, 0.]]).log().requires_grad_()
    kl = kl_rows(lp, lq)
    assert torch.allclose(kl, torch.tensor([math.log(2)] * 2))
    kl.sum().backward()
    assert torch.isfinite(lq.grad).all()
    assert torch.isinf(kl_rows(torch.tensor([[0., -math.inf]]), torch.tensor([[-math.inf, 0.]]))).all()  # q=0 where p>0


def test_tuple_log_probs_is_eq4():
    s, _, y = batch(0)
    tp = mine_tuples(s, y)
    lp = tuple_log_probs(s, tp, 2.)
    assert lp.shape == (len(tp), tp.K + 1)
    assert torch.equal(torch.isinf(lp[:, 1:]), ~tp.mask) and torch.isfinite(lp[:, 0]).all()
    z = F.normalize(s, dim=1)
    for i in range(0, len(tp), max(1, len(tp) // 20)):
        a, idx = int(tp.anchor[i]), [int(tp.positive[i])] + tp.negatives[i][tp.mask[i]].tolist()
        ref = torch.log_softmax(torch.stack([-(z[a] - z[j]).norm() for j in idx]) / 2., 0)
        assert torch.allclose(lp[i][torch.isfinite(lp[i])], ref, atol=1e-10)


# ---- comparison matching (Eq. 5) ------------------------------------------------------------------------------------

@pytest.mark.parametrize("kw", [dict(), dict(margin=0.3), dict(max_impostors=2), dict(mode="official"),
                                dict(mode="official", margin=0.5)])
@pytest.mark.parametrize("taus", [(1., 2.), (4., 4.), (0.5, 1.)])
def test_cm_loss_equals_eq5_tuple_by_tuple(kw, taus):
    s, t, y = batch(1)
    loss, tp = comparison_matching_loss(s, t, y, tau_student=taus[0], tau_teacher=taus[1], return_tuples=True, **kw)
    assert len(tp) > 0
    assert torch.allclose(loss, reference_cm(s, t, tp, *taus), atol=1e-10)
    assert torch.allclose(comparison_matching_loss(s, t, y, tuples=tp, tau_student=taus[0], tau_teacher=taus[1], scale=1000.),
                          1000 * loss, atol=1e-8)


def test_row_and_gather_evaluations_agree_value_and_gradient():
    s, t, y = batch(2, B=96, c=8, dtype=torch.float32)
    tp = mine_tuples(s, y)
    assert tp._rows is not None and 4 * (tp.K + 1) > 96          # the row evaluation is used for these
    sa, sb = s.clone().requires_grad_(), s.clone().requires_grad_()
    la = comparison_matching_loss(sa, t, y, tuples=tp, tau_student=1., tau_teacher=2.)
    lb = comparison_matching_loss(sb, t, y, tuples=padded(tp), tau_student=1., tau_teacher=2.)
    la.backward(); lb.backward()
    assert torch.allclose(la, lb, atol=1e-6) and torch.allclose(sa.grad, sb.grad, atol=1e-6)


@pytest.mark.parametrize("form", ["rows", "padded"])
def test_gradcheck_float64(form):
    s, t, y = batch(3, B=16, d_s=4, d_t=6, c=3)
    tp = mine_tuples(s, y)
    tp = tp if form == "rows" else padded(tp)
    f = lambda e: comparison_matching_loss(e, t, y, tuples=tp, tau_student=1., tau_teacher=2.)
    assert torch.autograd.gradcheck(f, (s.clone().requires_grad_(),))
    off = mine_tuples(s, y, mode="official", margin=0.5)
    assert len(off) > 0
    g = lambda e: comparison_matching_loss(e, t, y, tuples=off, tau_student=4., tau_teacher=4.)
    assert torch.autograd.gradcheck(g, (s.clone().requires_grad_(),))


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), tau=st.floats(0.25, 8.), preset=st.sampled_from(["paper", "official"]))
def test_cm_loss_zero_when_teacher_is_student(seed, tau, preset):
    s, _, y = batch(seed, B=32, c=4, dtype=torch.float32)
    kw = {**CM_PRESETS[preset], "tau_student": tau, "tau_teacher": tau}
    assert abs(comparison_matching_loss(s, s.clone(), y, **kw).item()) < 1e-5
    # ... and also when the teacher is a scaled, rotated copy (only normalised distances matter)
    q, _ = torch.linalg.qr(torch.randn(8, 8, generator=torch.Generator().manual_seed(seed)))
    assert abs(comparison_matching_loss(s, 3.7 * s @ q, y, **kw).item()) < 1e-5


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), a=st.floats(0.01, 100.), b=st.floats(0.01, 100.))
def test_cm_loss_scale_invariant(seed, a, b):
    s, t, y = batch(seed, B=32, c=4)
    tp = mine_tuples(s, y)
    l0 = comparison_matching_loss(s, t, y, tuples=tp, tau_student=1., tau_teacher=2.)
    l1 = comparison_matching_loss(a * s, b * t, y, tuples=tp, tau_student=1., tau_teacher=2.)
    assert torch.allclose(l0, l1, atol=1e-10)
    assert torch.equal(mine_tuples(a * s, y).triplets(), tp.triplets())


def test_teacher_gets_no_gradient_and_student_does():
    s, t, y = batch(4, dtype=torch.float32)
    s.requires_grad_(); t.requires_grad_()
    comparison_matching_loss(s, t, y, **CM_PRESETS["paper"]).backward()
    assert t.grad is None and s.grad is not None and s.grad.abs().sum() > 0


@pytest.mark.parametrize("preset", ["paper", "official"])
@pytest.mark.parametrize("case", ["one_class", "singletons", "far_apart"])
def test_no_tuple_gives_zero_on_the_graph(case, preset):
    g = torch.Generator().manual_seed(5)
    if case == "one_class": s, y = torch.randn(16, 8, generator=g), torch.zeros(16, dtype=torch.long)
    elif case == "singletons": s, y = torch.randn(16, 8, generator=g), torch.arange(16)
    else:
        s = torch.cat([torch.tensor([[1., 0.]]).repeat(4, 1), torch.tensor([[-1., 0.]]).repeat(4, 1)]) + 1e-3*torch.randn(8, 2, generator=g)
        y = torch.tensor([0]*4 + [1]*4)
    s.requires_grad_()
    kw = CM_PRESETS[preset] if case != "far_apart" else {**CM_PRESETS[preset], "margin": 0.2}
    loss, tp = comparison_matching_loss(s, torch.randn(len(y), 5, generator=g), y, return_tuples=True, **kw)
    assert len(tp) == 0 and loss.item() == 0 and loss.requires_grad and loss.ndim == 0
    loss.backward()
    assert s.grad is not None and (s.grad == 0).all()


@pytest.mark.parametrize("preset", ["paper", "official"])
def test_duplicates_and_degenerate_embeddings_never_nan(preset):
    g = torch.Generator().manual_seed(6)
    base, y = torch.randn(16, 8, generator=g), torch.randint(0, 3, (16,), generator=g)
    cases = [torch.cat([base, base]),                                          # duplicated images: D(a,p) = 0
             torch.cat([base, torch.zeros(4, 8)]),                             # all-zero embeddings
             torch.cat([base, 1e-20 * base[:4]])]                              # tiny norms
    for e in cases:
        yy = torch.cat([y, y])[:len(e)]
        s = e.clone().requires_grad_()
        loss = comparison_matching_loss(s, torch.cat([base, base])[:len(e)] + 1, yy, **CM_PRESETS[preset])
        loss.backward()
        assert torch.isfinite(loss) and torch.isfinite(s.grad).all()


def test_mining_options_pass_through_and_errors():
    s, t, y = batch(7)
    for kw in [dict(margin=0.2), dict(max_impostors=3), dict(mode="official", margin=0.2)]:
        _, tp = comparison_matching_loss(s, t, y, tau_student=1., tau_teacher=2., return_tuples=True, **kw)
        assert torch.equal(tp.triplets(), mine_tuples(s, y, **kw).triplets())
    with pytest.raises(TypeError, match="no effect"):
        comparison_matching_loss(s, t, y, tau_student=1., tau_teacher=2., tuples=mine_tuples(s, y), margin=0.2)
    with pytest.raises(TypeError, match="unknown mining option"):
        comparison_matching_loss(s, t, y, tau_student=1., tau_teacher=2., k_hat=3)
    with pytest.raises(ValueError, match="tau_teacher must be"):
        comparison_matching_loss(s, t, y, tau_student=1., tau_teacher=0.)
    with pytest.raises(ValueError, match="same B"):
        comparison_matching_loss(s, t[:3], y, tau_student=1., tau_teacher=2.)
    with pytest.raises(ValueError, match="mode must be one of"):
        comparison_matching_loss(s, t, y, tau_student=1., tau_teacher=2., mode="all")


# ---- Eq. 11 and Eq. 17-18 -------------------------------------------------------------------------------------------

@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), tau_s=st.floats(0.5, 4.), tau_t=st.floats(0.5, 4.))
def test_eq11_single_impostor(seed, tau_s, tau_t):
    "KL(p_T||p_S) = iota(Delta/tau) + rho*Delta/tau - H(p_T): equal values and equal gradients."
    g = torch.Generator().manual_seed(seed)
    s, t = torch.randn(3, 5, generator=g, dtype=torch.float64), torch.randn(3, 7, generator=g, dtype=torch.float64)
    trip = Tuples(torch.tensor([0]), torch.tensor([1]), torch.tensor([[2]]), torch.tensor([[True]]))
    y = torch.tensor([0, 0, 1])
    delta = lambda e: (F.normalize(e, dim=1)[0] - F.normalize(e, dim=1)[2]).norm() - (F.normalize(e, dim=1)[0] - F.normalize(e, dim=1)[1]).norm()
    sa, sb = s.clone().requires_grad_(), s.clone().requires_grad_()
    kl = comparison_matching_loss(sa, t, y, tuples=trip, tau_student=tau_s, tau_teacher=tau_t)
    p_t = torch.sigmoid(delta(t) / tau_t); rho = 1 - p_t
    H = -(p_t * p_t.log() + (1 - p_t) * (1 - p_t).log())
    x = delta(sb) / tau_s
    eq11 = F.softplus(-x) + rho * x
    assert torch.allclose(kl + H, eq11, atol=1e-12)
    kl.backward(); eq11.backward()
    assert torch.allclose(sa.grad, sb.grad, atol=1e-12)
    # dKL/dDelta = (sigma(Delta/tau) - p_T)/tau
    d = delta(s).clone().requires_grad_()
    f = F.softplus(-d / tau_s) + rho * d / tau_s
    f.backward()
    assert torch.allclose(d.grad, (torch.sigmoid(d / tau_s) - p_t).detach() / tau_s, atol=1e-12)


@pytest.mark.parametrize("kw", [dict(), dict(max_impostors=3), dict(margin=0.4)])
def test_eq17_18_several_impostors(kw):
    s, t, y = batch(8, B=40, c=4)
    tp = mine_tuples(s, y, **kw)
    assert tp.K > 1 and not tp.mask.all()
    tau_s, tau_t = 1., 2.
    ls, lt = tuple_log_probs(s, tp, tau_s), tuple_log_probs(t, tp, tau_t)
    pt = lt.exp()
    keep = torch.cat([torch.ones(len(tp), 1, dtype=torch.bool), tp.mask], 1)
    e0 = torch.zeros_like(pt); e0[:, 0] = 1
    H = -(pt * lt.masked_fill(~keep, 0)).sum(1)
    rect = -((pt - e0) * ls.masked_fill(~keep, 0)).sum(1)
    D = pairwise_distances(s)
    dP, dN = D[tp.anchor, tp.positive], D[tp.anchor[:, None], tp.negatives]
    eq18 = torch.log1p((((dP[:, None] - dN) / tau_s).exp() * tp.mask).sum(1))
    assert torch.allclose(kl_rows(lt, ls) + H, rect + eq18, atol=1e-10)
    assert torch.allclose(eq18, -ls[:, 0], atol=1e-10)                 # Eq. 18 = KL(e0 || p_S)


# ---- NCM teacher: Eq. 6, 7 ------------------------------------------------------------------------------------------

def test_class_centers_eq6():
    g = torch.Generator().manual_seed(9)
    e, y = torch.randn(100, 6, generator=g, dtype=torch.float64), torch.arange(100) % 7
    P = class_centers(e, y, 7)
    Y = F.one_hot(y, 7).double()
    assert torch.allclose(P, torch.diag(1 / (Y.T @ torch.ones(100, dtype=torch.float64))) @ Y.T @ e)
    for c in range(7): assert torch.allclose(P[c], e[y == c].mean(0))
    with pytest.raises(ValueError, match=r"no sample of class\(es\) \[7, 8\]"): class_centers(e, y, 9)
    with pytest.raises(ValueError, match="labels must lie in"): class_centers(e, y, 5)
    with pytest.raises(ValueError, match="2-D"): class_centers(e[0], y[:1], 7)


def test_ncm_logit_forms():
    g = torch.Generator().manual_seed(10)
    x, P = torch.randn(9, 5, generator=g, dtype=torch.float64).abs(), torch.randn(4, 5, generator=g, dtype=torch.float64).abs()
    cos = torch.stack([torch.stack([torch.dot(x[i], P[c]) / (x[i].norm() * P[c].norm()) for c in range(4)]) for i in range(9)])
    assert torch.allclose(ncm_logits(x, P), cos)
    assert torch.allclose(ncm_logits(x, P, tau=2.), cos / 2)
    assert torch.allclose(ncm_logits(x, P, form="dot"), x @ (P / P.norm(dim=1, keepdim=True)).T)
    assert torch.allclose(ncm_logits(x, P, form="paper"), cos / cos.sum(1, keepdim=True))
    assert torch.allclose(ncm_logits(x, P, form="paper", tau=2.), cos / cos.sum(1, keepdim=True) / 2)
    assert torch.isfinite(ncm_logits(torch.zeros(2, 5, dtype=torch.float64), P, form="paper")).all()
    with pytest.raises(ValueError, match="form must be one of"): ncm_logits(x, P, form="l2")
    with pytest.raises(ValueError, match="share d"): ncm_logits(x, P[:, :3])


def test_batch_classes():
    y = torch.tensor([4, 1, 4, 0])
    assert batch_classes(y).tolist() == [0, 1, 4]
    z = torch.arange(30.).view(3, 10)[:, :6].repeat(2, 1)[:4]
    assert restrict_to_batch_classes(z, y).tolist() == z[:, [0, 1, 4]].tolist()
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 4\)"): restrict_to_batch_classes(torch.zeros(4, 4), y)


# ---- LKD (Eq. 8, 10) and KD (Eq. 2) ---------------------------------------------------------------------------------

def lkd_reference(fs, ft, y, tau_s, tau_t, w=None):
    S = sorted(set(y.tolist()))
    vals = []
    for i in range(len(y)):
        ps = torch.softmax(fs[i, S] / tau_s, 0); pt = torch.softmax(ft[i, S] / tau_t, 0)
        vals.append((1. if w is None else w[i]) * (pt * (pt.log() - ps.log())).sum())
    return torch.stack(vals).mean()


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), tau_s=st.floats(0.5, 4.), tau_t=st.floats(0.5, 4.), weighted=st.booleans())
def test_lkd_is_eq8_eq10(seed, tau_s, tau_t, weighted):
    g = torch.Generator().manual_seed(seed)
    fs, ft = torch.randn(12, 9, generator=g, dtype=torch.float64), torch.randn(12, 9, generator=g, dtype=torch.float64)
    y = torch.randint(0, 9, (12,), generator=g)
    w = torch.rand(12, generator=g, dtype=torch.float64) if weighted else None
    assert torch.allclose(local_kd_loss(fs, ft, y, tau_student=tau_s, tau_teacher=tau_t, weights=w),
                          lkd_reference(fs, ft, y, tau_s, tau_t, w), atol=1e-10)


def test_lkd_only_s_gets_gradient_and_outside_is_ignored():
    g = torch.Generator().manual_seed(11)
    fs, ft = torch.randn(8, 10, generator=g).requires_grad_(), torch.randn(8, 10, generator=g)
    y = torch.tensor([0, 3, 3, 5, 9, 0, 5, 3])
    S = batch_classes(y); out = torch.ones(10, dtype=torch.bool); out[S] = False
    l = local_kd_loss(fs, ft, y, tau_teacher=2.); l.backward()
    assert (fs.grad[:, out] == 0).all() and (fs.grad[:, S].abs().sum(0) > 0).all()
    ft2, fs2 = ft.clone(), fs.detach().clone()
    ft2[:, out] = 50 * torch.randn(8, int(out.sum()), generator=g); fs2[:, out] = -50
    assert torch.allclose(local_kd_loss(fs2, ft2, y, tau_teacher=2.), l)


def test_lkd_zero_when_distributions_agree_over_s():
    g = torch.Generator().manual_seed(12)
    fs = torch.randn(8, 10, generator=g); y = torch.tensor([1, 2, 2, 7, 7, 1, 8, 2])
    ft = 2. * fs + torch.randn(8, 1, generator=g)            # same distribution at tau_teacher = 2 * tau_student
    ft[:, [0, 3, 4, 5, 6, 9]] = torch.randn(8, 6, generator=g)
    assert abs(local_kd_loss(fs, ft, y, tau_student=1., tau_teacher=2.).item()) < 1e-6
    assert kd_loss(fs, ft, tau=1.).item() > 1e-2


@pytest.mark.parametrize("tau", [1., 2., 4.])
def test_lkd_equals_kd_without_tau2_when_all_classes_present(tau):
    g = torch.Generator().manual_seed(13)
    fs, ft = torch.randn(20, 10, generator=g, dtype=torch.float64), torch.randn(20, 10, generator=g, dtype=torch.float64)
    y = torch.arange(20) % 10
    lkd = local_kd_loss(fs, ft, y, tau_student=tau, tau_teacher=tau, weights=torch.ones(20, dtype=torch.float64))
    assert torch.allclose(lkd, kd_loss(fs, ft, tau=tau) / tau**2, atol=1e-12)
    assert torch.allclose(local_kd_loss(fs, ft, y, tau_student=tau, tau_teacher=tau, weights=torch.full((20,), 3., dtype=torch.float64)), 3 * lkd)


def test_kd_loss_is_eq2():
    g = torch.Generator().manual_seed(14)
    fs, ft = torch.randn(6, 5, generator=g, dtype=torch.float64), torch.randn(6, 5, generator=g, dtype=torch.float64)
    ref = 4. * torch.stack([F.kl_div(F.log_softmax(fs[i] / 2, 0), F.softmax(ft[i] / 2, 0), reduction="sum") for i in range(6)]).mean()
    assert torch.allclose(kd_loss(fs, ft, tau=2.), ref, atol=1e-12)


def test_lkd_edge_batches_and_errors():
    g = torch.Generator().manual_seed(15)
    fs, ft = torch.randn(6, 4, generator=g).requires_grad_(), torch.randn(6, 4, generator=g)
    l = local_kd_loss(fs, ft, torch.zeros(6, dtype=torch.long), tau_teacher=2.)   # |S| = 1
    l.backward()
    assert l.item() == 0 and torch.isfinite(fs.grad).all()
    ft_inf = ft.clone(); ft_inf[:, 2] = -math.inf                                   # a teacher that rules a class out
    assert torch.isfinite(local_kd_loss(fs, ft_inf, torch.tensor([0, 1, 2, 3, 0, 1]), tau_teacher=1.))
    with pytest.raises(ValueError, match="weights must have shape"): local_kd_loss(fs, ft, torch.zeros(6, dtype=torch.long), tau_teacher=1., weights=torch.ones(3))
    with pytest.raises(ValueError, match="same shape"): local_kd_loss(fs, ft[:, :3], torch.zeros(6, dtype=torch.long), tau_teacher=1.)
    with pytest.raises(ValueError, match="labels must lie in"): local_kd_loss(fs, ft, torch.full((6,), 4), tau_teacher=1.)
    with pytest.raises(TypeError): local_kd_loss(fs, ft, torch.zeros(6, dtype=torch.long))   # tau_teacher is required


# ---- weights (Eq. 9, Gap-Weight, official) --------------------------------------------------------------------------

@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n_s=st.integers(1, 12), lam=st.floats(0.1, 10.), scale=st.floats(0., 30.))
def test_pl_weights_range(seed, n_s, lam, scale):
    z = scale * torch.randn(50, n_s, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    w = pl_weights(z, lam)
    lo = 2 * lam * torch.sigmoid(torch.tensor(-math.log(n_s), dtype=torch.float64))
    assert ((w > 0) & (w <= lam * (1 + 1e-12)) & (w >= lo * (1 - 1e-12))).all()
    ref = 2 * lam * torch.sigmoid(torch.log_softmax(z, 1).max(1).values)        # -CE(softmax, argmax) = log p_max
    assert torch.allclose(w, ref, atol=1e-12)


def test_pl_weights_extremes_and_detach():
    z = torch.tensor([[3., -math.inf, -math.inf, -math.inf], [0., 0., 0., 0.]], requires_grad=True)
    w = pl_weights(z, 2.)
    assert w[0].item() == 2. and not w.requires_grad
    assert torch.allclose(w[1], 2 * 2. * torch.sigmoid(torch.tensor(-math.log(4))))
    assert torch.allclose(pl_weights(torch.tensor([[60., 0., 0.]]), 1.), torch.tensor([1.]))
    assert torch.allclose(pl_weights(torch.tensor([[4., 2.]]), 1., tau=2.), pl_weights(torch.tensor([[2., 1.]]), 1.))
    with pytest.raises(ValueError, match="lam must be"): pl_weights(z, -1.)


def test_gap_weights():
    g = torch.Generator().manual_seed(16)
    pt, ps = torch.softmax(torch.randn(30, 6, generator=g), 1), torch.softmax(torch.randn(30, 6, generator=g), 1)
    w = gap_weights(pt, ps, 2.)
    ref = 2 * 2. * torch.sigmoid(-(pt * (pt.log() - ps.log())).sum(1))
    assert torch.allclose(w, ref) and ((w > 0) & (w <= 2.)).all()
    assert torch.allclose(gap_weights(pt, pt, 2.), torch.full((30,), 2.))
    one_hot = F.one_hot(torch.arange(3), 3).float()
    assert torch.isfinite(gap_weights(one_hot, torch.full((3, 3), 1 / 3), 1.)).all()
    assert gap_weights(one_hot, one_hot.roll(1, 1), 1.).eq(0).all()            # disjoint supports: KL = inf, weight 0


def test_official_weights():
    g = torch.Generator().manual_seed(17)
    z = 3 * torch.randn(64, 50, generator=g)
    w = official_weights(z, 1.5)
    ce = z.logsumexp(1) - z.max(1).values
    norm = (ce - ce.min()) / (ce.max() - ce.min())
    assert torch.allclose(w, 2 * 1.5 * torch.sigmoid(-norm))
    assert torch.isclose(w.max(), torch.tensor(1.5)) and torch.isclose(w.min(), 3 * torch.sigmoid(torch.tensor(-1.)))
    for same in (torch.zeros(8, 5), torch.randn(1, 5, generator=g), torch.randn(1, 5, generator=g).repeat(8, 1)):
        assert torch.equal(official_weights(same, 2.), torch.full((len(same),), 2.))   # all equal: lambda, no NaN


def test_presets_are_complete():
    s, t, y = batch(18, dtype=torch.float32)
    for pre in CM_PRESETS.values(): assert torch.isfinite(comparison_matching_loss(s, t, y, **pre))
    assert set(STAGE2_PRESETS) == {"paper", "official"}
    assert CM_PRESETS["official"] == dict(tau_student=4.0, tau_teacher=4.0, scale=1000.0, margin=0.2, max_impostors=None, mode="official")


# ---- baselines ------------------------------------------------------------------------------------------------------

def test_rkd_matches_its_definition():
    g = torch.Generator().manual_seed(19)
    s, t = torch.randn(6, 4, generator=g, dtype=torch.float64), torch.randn(6, 5, generator=g, dtype=torch.float64)
    def psi(e):
        n = len(e); D = torch.stack([torch.stack([(e[i] - e[j]).norm() for j in range(n)]) for i in range(n)])
        A = {(i, j, k): torch.dot((e[i] - e[j]) / (e[i] - e[j]).norm(), (e[k] - e[j]) / (e[k] - e[j]).norm())
             for i in range(n) for j in range(n) for k in range(n) if len({i, j, k}) == 3}
        return D / (D.sum() / (n * (n - 1))), A
    (Ds, As), (Dt, At) = psi(s), psi(t)
    hub = lambda a, b: F.smooth_l1_loss(a, b, reduction="sum")
    dist = torch.stack([hub(Ds[i, j], Dt[i, j]) for i in range(6) for j in range(6) if i != j]).mean()
    ang = torch.stack([hub(As[k], At[k]) for k in As]).mean()
    assert torch.allclose(rkd_loss(s, t), 25 * dist + 50 * ang, atol=1e-12)
    assert torch.allclose(rkd_loss(s, t, w_dist=1., w_angle=0.), dist, atol=1e-12)
    assert rkd_loss(t, t).item() == 0 and abs(rkd_loss(5 * t, t).item()) < 1e-12


def test_rkd_no_nan_and_grad():
    g = torch.Generator().manual_seed(20)
    base = torch.randn(8, 4, generator=g)
    s = torch.cat([base, base[:2]]).requires_grad_()
    rkd_loss(s, torch.randn(10, 6, generator=g)).backward()
    assert torch.isfinite(s.grad).all()
    assert rkd_loss(torch.randn(1, 3), torch.randn(1, 3)).item() == 0


def test_aml_matches_its_definition():
    g = torch.Generator().manual_seed(21)
    s, t, y = torch.randn(12, 6, generator=g, dtype=torch.float64), torch.randn(12, 6, generator=g, dtype=torch.float64), torch.randint(0, 3, (12,), generator=g)
    sn, tn = F.normalize(s, dim=1), F.normalize(t, dim=1)
    pos = [0.5 * (sn[i] - tn[j]).norm()**2 for i in range(12) for j in range(12) if y[i] == y[j]]
    neg = [0.5 * (0.5 - (sn[i] - tn[j]).norm()).clamp_min(0)**2 for i in range(12) for j in range(12) if y[i] != y[j]]
    assert torch.allclose(aml_loss(s, t, y, margin=0.5), torch.stack(pos).mean() + torch.stack(neg).mean(), atol=1e-12)
    assert torch.allclose(aml_loss(s, t, torch.zeros(12, dtype=torch.long)), torch.stack([0.5 * (sn[i] - tn[j]).norm()**2 for i in range(12) for j in range(12)]).mean())
    proj = nn.Linear(4, 6).double()
    aml_loss(proj(s[:, :4]), t, y).backward()
    assert proj.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="same d"): aml_loss(s[:, :4], t, y)


def test_fitnet():
    g = torch.Generator().manual_seed(22)
    fs, ft = torch.randn(2, 4, 5, 5, generator=g), torch.randn(2, 8, 5, 5, generator=g)
    reg = HintRegressor(4, 8, kernel_size=3)
    l = fitnet_loss(fs, ft, reg); l.backward()
    assert torch.allclose(l, ((reg(fs) - ft)**2).mean()) and reg.net[0].weight.grad is not None
    assert torch.allclose(fitnet_loss(ft, ft + 2.), torch.tensor(4.))
    assert fitnet_loss(fs, ft, lambda x: x.repeat(1, 2, 1, 1)).item() > 0          # any callable
    with pytest.raises(ValueError, match="pass a regressor"): fitnet_loss(fs, ft)
    with pytest.raises(ValueError, match="odd"): HintRegressor(4, 8, kernel_size=2)


def test_attention_transfer():
    g = torch.Generator().manual_seed(23)
    fs, ft = torch.randn(3, 4, 6, 6, generator=g, dtype=torch.float64), torch.randn(3, 16, 6, 6, generator=g, dtype=torch.float64)
    q = lambda f: (f**2).mean(1).flatten(1) / (f**2).mean(1).flatten(1).norm(dim=1, keepdim=True)
    assert torch.allclose(attention_map(fs), q(fs))
    ref = ((q(fs) - q(ft))**2).mean()
    assert torch.allclose(at_loss(fs, ft), ref)
    assert torch.allclose(at_loss([fs, fs[..., :3, :3]], [ft, ft[..., :3, :3]]), ref + ((q(fs[..., :3, :3]) - q(ft[..., :3, :3]))**2).mean())
    assert at_loss(ft, ft).item() == 0 and torch.allclose(at_loss(7 * fs, ft), ref)
    with pytest.raises(ValueError, match="same B, H, W"): at_loss(fs, ft[..., :3])
    with pytest.raises(ValueError, match="as many"): at_loss([fs], [ft, ft])


def test_nst_mmd_polynomial():
    g = torch.Generator().manual_seed(24)
    fs, ft = torch.randn(2, 3, 4, 4, generator=g, dtype=torch.float64), torch.randn(2, 5, 4, 4, generator=g, dtype=torch.float64)
    def mmd(s, t):
        a, b = F.normalize(s.flatten(1), dim=1), F.normalize(t.flatten(1), dim=1)
        k = lambda x, y: torch.stack([(x[i] @ y[j])**2 for i in range(len(x)) for j in range(len(y))]).mean()
        return k(b, b) + k(a, a) - 2 * k(b, a)
    assert torch.allclose(nst_loss(fs, ft), torch.stack([mmd(fs[i], ft[i]) for i in range(2)]).mean())
    assert abs(nst_loss(ft, ft[:, torch.randperm(5)]).item()) < 1e-12 and nst_loss(fs, ft).item() > 0
    assert torch.allclose(nst_loss(fs, ft, degree=1, c=1.), torch.stack([
        (lambda a, b: ((b @ b.T + 1).mean() + (a @ a.T + 1).mean() - 2 * (b @ a.T + 1).mean()))(
            F.normalize(fs[i].flatten(1), dim=1), F.normalize(ft[i].flatten(1), dim=1)) for i in range(2)]).mean())


def test_baselines_teacher_side_is_detached():
    g = torch.Generator().manual_seed(25)
    s, t, y = torch.randn(8, 6, generator=g), torch.randn(8, 6, generator=g).requires_grad_(), torch.randint(0, 2, (8,), generator=g)
    fs, ft = torch.randn(8, 4, 3, 3, generator=g), torch.randn(8, 4, 3, 3, generator=g).requires_grad_()
    for l in (rkd_loss(s, t), aml_loss(s, t, y), fitnet_loss(fs, ft), at_loss(fs, ft), nst_loss(fs, ft)):
        assert not l.requires_grad or l.grad_fn is not None
        if l.requires_grad: l.backward()
    assert t.grad is None and ft.grad is None


# ---- CUDA ----------------------------------------------------------------------------------------------------------

@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("preset", ["paper", "official"])
def test_cuda_matches_cpu(preset):
    s, t, y = batch(26, B=256, d_s=64, d_t=128, c=50)
    sc, sg = s.clone().requires_grad_(), s.cuda().requires_grad_()
    lc = comparison_matching_loss(sc, t, y, **CM_PRESETS[preset])
    lg = comparison_matching_loss(sg, t.cuda(), y.cuda(), **CM_PRESETS[preset])
    lc.backward(); lg.backward()
    assert lg.is_cuda and torch.allclose(lg.cpu(), lc, atol=1e-9) and torch.allclose(sg.grad.cpu(), sc.grad, atol=1e-9)
    fs, ft = torch.randn(256, 50, dtype=torch.float64), torch.randn(256, 50, dtype=torch.float64)
    assert torch.allclose(local_kd_loss(fs.cuda(), ft.cuda(), y.cuda(), tau_teacher=2.).cpu(), local_kd_loss(fs, ft, y, tau_teacher=2.))
