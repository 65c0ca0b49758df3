"Tests of refilled.tuples: the miner against its definition (a brute-force triple loop) and against pytorch-metric-learning."
import math
import pytest
import torch
import torch.nn.functional as F
from hypothesis import assume, given, settings, strategies as st, HealthCheck

from refilled.tuples import Tuples, mine_tuples, pairwise_distances
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

MODES = [dict(), dict(margin=0.3), dict(margin=0.0), dict(margin=math.inf), dict(max_impostors=1),
         dict(max_impostors=2, margin=0.5), dict(mode="official"), dict(mode="official", margin=0.4),
         dict(mode="official", max_impostors=1)]


def brute_tuples(emb, labels, margin=None, max_impostors=None, mode="masked"):
    "The definition, three nested loops over the same distance matrix: [(a, p, [impostors in batch order])]."
    D, y, B = pairwise_distances(emb), labels.tolist(), len(labels)
    rows = []
    for a in range(B):
        for p in range(B):
            if a == p or y[a] != y[p]: continue
            imp = [n for n in range(B)
                   if y[n] != y[a] and D[a, n] > D[a, p] and (margin is None or D[a, n] <= D[a, p] + margin)]
            if imp: rows.append((a, p, imp))
    if not rows: return rows, 0
    if mode == "masked":
        cap = max_impostors or B
        rows = [(a, p, sorted(sorted(imp, key=lambda n: (D[a, n].item(), n))[:cap])) for a, p, imp in rows]
        return rows, max(len(imp) for _, _, imp in rows)
    K = min(len(imp) for _, _, imp in rows)
    K = K if max_impostors is None else min(K, max_impostors)
    return [(a, p, sorted(imp)[:K]) for a, p, imp in rows], K


def as_rows(t):
    return [(a, p, n[m].tolist()) for a, p, n, m in zip(t.anchor.tolist(), t.positive.tolist(), t.negatives, t.mask)]


def check_against_brute(emb, labels, kw):
    t = mine_tuples(emb, labels, **kw)
    ref, K = brute_tuples(emb, labels, **kw)
    assert as_rows(t) == ref
    assert t.K == K and t.negatives.shape == (len(ref), K) and t.mask.shape == (len(ref), K)
    assert t.negatives.dtype == torch.long and t.mask.dtype == torch.bool
    if len(t):  # padding points at the anchor
        assert (t.negatives[~t.mask] == t.anchor[:, None].expand_as(t.negatives)[~t.mask]).all()


# ---- the miner = its definition ---------------------------------------------------------------------------------

@st.composite
def grid_batches(draw):
    "Small batches on an integer grid: many exact ties, duplicates and all-zero embeddings."
    B = draw(st.integers(0, 11)); d = draw(st.integers(1, 3)); c = draw(st.integers(1, 4))
    emb = torch.tensor(draw(st.lists(st.lists(st.integers(-2, 2), min_size=d, max_size=d), min_size=B, max_size=B)),
                       dtype=torch.float32).reshape(B, d)
    labels = torch.tensor(draw(st.lists(st.integers(0, c - 1), min_size=B, max_size=B)), dtype=torch.long)
    return emb, labels


@st.composite
def random_batches(draw):
    B = draw(st.integers(2, 16)); d = draw(st.integers(1, 6)); c = draw(st.integers(1, 5))
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    return torch.randn(B, d, generator=g), torch.randint(0, c, (B,), generator=g)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batch=grid_batches(), kw=st.sampled_from(MODES))
def test_matches_brute_force_with_ties(batch, kw):
    check_against_brute(*batch, kw)


@settings(max_examples=150, deadline=None)
@given(batch=random_batches(), kw=st.sampled_from(MODES))
def test_matches_brute_force_random(batch, kw):
    check_against_brute(*batch, kw)


def test_pairwise_distances_are_euclidean_on_normalised_rows():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(30, 7, generator=g, dtype=torch.float64)
    z = F.normalize(x, dim=1)
    explicit = torch.stack([torch.stack([(z[i] - z[j]).norm() for j in range(30)]) for i in range(30)])
    assert torch.allclose(pairwise_distances(x), explicit, atol=1e-10)
    raw = torch.stack([torch.stack([(x[i] - x[j]).norm() for j in range(30)]) for i in range(30)])
    assert torch.allclose(pairwise_distances(x, normalize=False), raw, atol=1e-9)
    # float32: the Gram form is exact to ~1e-3 at tiny distances, better elsewhere
    assert torch.allclose(pairwise_distances(x.float()), explicit.float(), atol=1e-3)
    xd = torch.cat([x[:3], x[:1]]).requires_grad_()
    D = pairwise_distances(xd)
    assert D[0, 3] == 0 and (D.diagonal() == 0).all()
    D.sum().backward()
    assert torch.isfinite(xd.grad).all()


# ---- an independent oracle: pytorch-metric-learning ---------------------------------------------------------------

from pytorch_metric_learning import miners as pml_miners   # test-only dependency (dev requirements)


def pml_triplets(emb, labels, margin):
    a, p, n = pml_miners.TripletMarginMiner(margin=margin, type_of_triplets="semihard")(emb, labels)
    return sorted(zip(a.tolist(), p.tolist(), n.tolist()))


def no_near_ties(emb, labels, margin, tol=1e-9):
    "True when no (a,p,n) sits within tol of a decision boundary (the two implementations round differently)."
    z = F.normalize(emb.double(), dim=1); D = torch.cdist(z, z)
    same = labels[:, None] == labels[None, :]
    gap = D[:, None, :] - D[:, :, None]                      # [a, p, n] = D(a,n) - D(a,p)
    valid = same[:, :, None] & ~same[:, None, :]
    valid &= ~torch.eye(len(labels), dtype=torch.bool)[:, :, None]
    g = gap[valid]
    return bool((g.abs() > tol).all() and ((g - margin).abs() > tol).all()) if g.numel() else True


@settings(max_examples=80, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), B=st.integers(2, 24), c=st.integers(1, 6),
       margin=st.sampled_from([0.05, 0.2, 0.5, 1.0, math.inf]))
def test_triplet_set_equals_pml_semihard(seed, B, c, margin):
    g = torch.Generator().manual_seed(seed)
    emb, labels = torch.randn(B, 5, generator=g, dtype=torch.float64), torch.randint(0, c, (B,), generator=g)
    assume(no_near_ties(emb, labels, margin))
    ref = pml_triplets(emb, labels, margin)
    ours = mine_tuples(emb, labels, margin=None if math.isinf(margin) else margin)
    assert [tuple(r) for r in ours.triplets().tolist()] == ref
    # official mode: K = the smallest per-pair count of PML's set, the K lowest batch indices of each pair
    off = mine_tuples(emb, labels, margin=None if math.isinf(margin) else margin, mode="official")
    groups = {}
    for a, p, n in ref: groups.setdefault((a, p), []).append(n)
    if not groups:
        assert len(off) == 0; return
    K = min(len(v) for v in groups.values())
    assert off.K == K
    assert as_rows(off) == [(a, p, sorted(v)[:K]) for (a, p), v in sorted(groups.items())]


def test_pml_oracle_at_training_size():
    "One realistic batch: B=256, 50 classes, d=64, the official margin."
    g = torch.Generator().manual_seed(1)
    emb, labels = torch.randn(256, 64, generator=g, dtype=torch.float64), torch.randint(0, 50, (256,), generator=g)
    ours = mine_tuples(emb, labels, margin=0.2).triplets()
    ref = torch.tensor(pml_triplets(emb, labels, 0.2))
    assert ours.shape == ref.shape and torch.equal(ours, ref)


# ---- options, shapes, edge batches ----------------------------------------------------------------------------------

def test_masked_mode_pads_to_the_largest_count_and_caps_to_the_closest():
    g = torch.Generator().manual_seed(2)
    emb, labels = torch.randn(64, 8, generator=g), torch.randint(0, 6, (64,), generator=g)
    t = mine_tuples(emb, labels)
    assert t.K == int(t.counts.max()) and int(t.counts.min()) >= 1 and not t.mask.all()
    D = pairwise_distances(emb)
    t3 = mine_tuples(emb, labels, max_impostors=3)
    assert t3.K == 3 and torch.equal(t3.counts, t.counts.clamp_max(3))
    for i in range(len(t)):   # the kept ones are the closest of the full set
        full = t.negatives[i][t.mask[i]]; kept = t3.negatives[i][t3.mask[i]]
        a = int(t.anchor[i])
        assert set(kept.tolist()) <= set(full.tolist())
        assert D[a, kept].max() <= D[a, full].sort().values[len(kept) - 1]


def test_official_mode_uses_the_batch_minimum():
    g = torch.Generator().manual_seed(3)
    emb, labels = torch.randn(128, 16, generator=g), torch.randint(0, 20, (128,), generator=g)
    full, off = mine_tuples(emb, labels, margin=0.2), mine_tuples(emb, labels, margin=0.2, mode="official")
    assert off.K == int(full.counts.min()) and off.mask.all()
    assert torch.equal(off.anchor, full.anchor) and torch.equal(off.positive, full.positive)


@pytest.mark.parametrize("mode", ["masked", "official"])
@pytest.mark.parametrize("case", ["one_class", "singletons", "single", "empty", "far_apart"])
def test_edge_batches_give_empty_tuples(case, mode):
    g = torch.Generator().manual_seed(4)
    if case == "one_class": emb, y = torch.randn(8, 4, generator=g), torch.zeros(8, dtype=torch.long)
    elif case == "singletons": emb, y = torch.randn(8, 4, generator=g), torch.arange(8)
    elif case == "single": emb, y = torch.randn(1, 4, generator=g), torch.zeros(1, dtype=torch.long)
    elif case == "empty": emb, y = torch.zeros(0, 4), torch.zeros(0, dtype=torch.long)
    else:  # two tight classes, far apart: every neighbour is closer than every other-class point, margin excludes all
        emb = torch.cat([torch.tensor([[1., 0.]]).repeat(4, 1), torch.tensor([[-1., 0.]]).repeat(4, 1)]) + 1e-3*torch.randn(8, 2, generator=g)
        y = torch.tensor([0]*4 + [1]*4)
    t = mine_tuples(emb, y, mode=mode, **({"margin": 0.2} if case == "far_apart" else {}))
    assert len(t) == 0 and t.K == 0
    assert t.anchor.shape == (0,) and t.negatives.shape == (0, 0) and t.mask.shape == (0, 0)
    assert t.triplets().shape == (0, 3)


def test_duplicates_and_zero_embeddings():
    g = torch.Generator().manual_seed(5)
    e = torch.randn(3, 4, generator=g)
    t = mine_tuples(torch.cat([e, e]), torch.tensor([0, 1, 2, 0, 1, 2]))
    assert len(t) == 6 and t.counts.tolist() == [4] * 6
    z = torch.zeros(6, 4)     # all-zero embeddings: every distance 0, so nothing is farther than a neighbour
    assert len(mine_tuples(z, torch.tensor([0, 0, 1, 1, 2, 2]))) == 0


def test_does_not_touch_the_graph():
    g = torch.Generator().manual_seed(6)
    emb = torch.randn(32, 8, generator=g).requires_grad_()
    t = mine_tuples(emb, torch.randint(0, 4, (32,), generator=g))
    assert not t.negatives.requires_grad and emb.grad is None


def test_no_cubic_intermediate():
    "The largest tensor any op creates while mining stays at one distance row per same-class pair."
    class Largest(TorchDispatchMode):
        def __init__(self): super().__init__(); self.n = 0
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            for o in tree_flatten(out)[0]:
                if isinstance(o, torch.Tensor): self.n = max(self.n, o.numel())
            return out
    g = torch.Generator().manual_seed(7)
    B = 256
    emb, y = torch.randn(B, 64, generator=g), torch.randint(0, 50, (B,), generator=g)
    pairs = int(((y[:, None] == y[None, :]).sum() - B))
    for kw in [dict(), dict(margin=0.2, mode="official"), dict(max_impostors=5)]:
        m = Largest()
        with m: t = mine_tuples(emb, y, **kw)
        assert m.n <= max(B * B, pairs * B), (kw, m.n)
        assert m.n < B**3 // 20


def test_tuples_container():
    t = Tuples(torch.tensor([0, 1]), torch.tensor([1, 0]), torch.tensor([[2, 3], [3, 1]]), torch.tensor([[True, True], [True, False]]))
    assert len(t) == 2 and t.K == 2 and t.counts.tolist() == [2, 1]
    r = t.rows(4)
    assert r.tolist() == [[False, False, True, True], [False, False, False, True]]
    back = Tuples.from_rows(t.anchor, t.positive, r)
    assert torch.equal(back.negatives, t.negatives) and torch.equal(back.mask, t.mask)
    assert back.triplets().tolist() == [[0, 1, 2], [0, 1, 3], [1, 0, 3]]
    with pytest.raises(ValueError, match="mined on a batch of 4"): back.rows(5)
    with pytest.raises(TypeError, match="mask must be bool"): Tuples(t.anchor, t.positive, t.negatives, t.mask.int())
    with pytest.raises(TypeError, match="negatives must be long"): Tuples(t.anchor, t.positive, t.negatives.int(), t.mask)
    with pytest.raises(ValueError, match="equal shape"): Tuples(t.anchor, t.positive, t.negatives, t.mask[:, :1])
    assert "T=2, K=2" in repr(t)


@pytest.mark.parametrize("kw,msg", [(dict(mode="tuple"), "mode must be one of"), (dict(margin=-0.1), "margin must be"),
                                    (dict(margin=float("nan")), "margin must be"), (dict(max_impostors=0), "max_impostors must be"),
                                    (dict(max_impostors=2.5), "max_impostors must be")])
def test_bad_options(kw, msg):
    with pytest.raises(ValueError, match=msg): mine_tuples(torch.randn(4, 3), torch.tensor([0, 0, 1, 1]), **kw)


def test_bad_inputs():
    with pytest.raises(ValueError, match="one label per row"): mine_tuples(torch.randn(4, 3), torch.tensor([0, 1]))
    with pytest.raises(TypeError, match="integer tensor"): mine_tuples(torch.randn(4, 3), torch.zeros(4))
    with pytest.raises(ValueError, match="2-D"): mine_tuples(torch.randn(4), torch.zeros(4, dtype=torch.long))
    with pytest.raises(TypeError, match="floating"): mine_tuples(torch.ones(4, 3, dtype=torch.long), torch.zeros(4, dtype=torch.long))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("kw", [dict(), dict(margin=0.2, mode="official"), dict(max_impostors=4), dict(margin=0.5)])
def test_cuda_matches_cpu(kw):
    g = torch.Generator().manual_seed(8)
    emb, y = torch.randn(256, 64, generator=g, dtype=torch.float64), torch.randint(0, 50, (256,), generator=g)
    tc, tg = mine_tuples(emb, y, **kw), mine_tuples(emb.cuda(), y.cuda(), **kw)
    assert tg.anchor.is_cuda and tg.negatives.is_cuda and tg.K == tc.K
    assert torch.equal(tg.triplets().cpu(), tc.triplets())
