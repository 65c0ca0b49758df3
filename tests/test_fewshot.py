"""Few-shot episodes, baselines, per-task training and result rows (refilled.fewshot) beyond the notebook's examples."""
import math
import numpy as np
import pytest
import torch
from refilled.core import InputError
from refilled.backbones import create_model
from refilled.teachers import load_teacher
from refilled.experiments import read_results
from refilled.fewshot import (EpisodePool, FewShotContext, sample_episode, mean_ci, nn1, nearest_centroid, simpleshot,
                              refilled_episode, run_fewshot, fewshot_summary, paired_difference, episode_accuracies, load_pools,
                              fewshot_context)


def _pool(n_classes=6, per_class=20, size=84, seed=0):
    rng = np.random.default_rng(seed)
    return EpisodePool(torch.from_numpy(rng.integers(0, 256, (n_classes * per_class, size, size, 3), dtype=np.uint8)),
                       np.repeat(np.arange(10, 10 + n_classes), per_class), 'random')


def test_episodes_are_a_function_of_seed_and_index_only():
    "Episode e of stream s does not depend on which episodes were drawn before it, and every class appears with equal odds."
    y = _pool().y
    late = sample_episode(y, 5, 3, 4, seed=2, index=99)
    for i in range(5): sample_episode(y, 5, 3, 4, seed=2, index=i)
    again = sample_episode(y, 5, 3, 4, seed=2, index=99)
    assert (late.support == again.support).all() and (late.query == again.query).all()
    counts = np.bincount(np.concatenate([sample_episode(y, 2, 1, 1, index=i).classes - 10 for i in range(3000)]), minlength=6)
    assert counts.min() > 0.9 * 1000 and counts.max() < 1.1 * 1000          # 3000 episodes x 2 classes over 6: 1000 each


def test_labels_follow_the_order_of_the_drawn_classes():
    p = _pool()
    ep = sample_episode(p.y, 4, 2, 3, index=5)
    assert (p.y[ep.support] == ep.classes[ep.support_y]).all() and (p.y[ep.query] == ep.classes[ep.query_y]).all()


def test_mean_ci_is_the_normal_interval():
    a = np.random.default_rng(0).normal(60, 10, 400)
    r = mean_ci(a)
    assert math.isclose(r['ci95'], 1.96 * np.std(a, ddof=1) / 20) and math.isclose(r['mean'], a.mean())
    with pytest.raises(InputError, match='at least one'): mean_ci([])


def test_baselines_are_invariant_to_what_they_should_be():
    "1NN and the nearest centroid are Euclidean (a shift of all features changes nothing); SimpleShot is scale-free."
    g = torch.Generator().manual_seed(0)
    S, Q, sy = torch.randn(15, 8, generator=g), torch.randn(20, 8, generator=g), torch.arange(3).repeat_interleave(5)
    shift = torch.randn(8, generator=g)
    assert (nn1(S + shift, sy, Q + shift, 3) == nn1(S, sy, Q, 3)).all()
    assert (nearest_centroid(S + shift, sy, Q + shift, 3) == nearest_centroid(S, sy, Q, 3)).all()
    base = torch.randn(8, generator=g)
    assert (simpleshot(3 * S, sy, 3 * Q, 3, base_mean=3 * base) == simpleshot(S, sy, Q, 3, base_mean=base)).all()


def test_run_fewshot_resumes_and_pairs_methods_on_the_same_episodes(tmp_path):
    p = _pool(per_class=8)
    g = torch.Generator().manual_seed(1)
    feats = torch.randn(6, 16, generator=g)[np.repeat(np.arange(6), 8)] + 0.8 * torch.randn(48, 16, generator=g)
    T = load_teacher(create_model('convnet4', 4), mean=(0.5,) * 3, std=(0.25,) * 3, size=84)
    ctx = FewShotContext(T, p, feats, base_mean=feats.mean(0))
    csv = tmp_path / 'fs.csv'
    run_fewshot(csv, ctx, {'centroid': {}}, protocol='t', shots=(1, 3), ways=3, queries=2, episodes=6, block=4, verbose=False)
    (tmp_path / 'keep').write_text(csv.read_text())
    # a run that stops after its first rows: drop the last row, run again -> only that block is recomputed, identically
    lines = csv.read_text().splitlines(); csv.write_text('\n'.join(lines[:-1]) + '\n')
    new = run_fewshot(csv, ctx, {'centroid': {}}, protocol='t', shots=(1, 3), ways=3, queries=2, episodes=6, block=4, verbose=False)
    assert [(r['shots'], r['first']) for r in new] == [(3, 4)]
    strip = lambda rows: [{k: v for k, v in r.items() if k not in ('secs_per_episode',)} for r in rows]
    assert strip(read_results(csv)) == strip(read_results(tmp_path / 'keep'))
    run_fewshot(csv, ctx, {'simpleshot': {}}, protocol='t', shots=(3,), ways=3, queries=2, episodes=6, block=6, verbose=False)
    rows = read_results(csv)
    d = paired_difference(rows, 'simpleshot', 'centroid', 3)
    a, b = episode_accuracies(rows, 'simpleshot', 3), episode_accuracies(rows, 'centroid', 3)
    assert d['n'] == 6 and math.isclose(d['mean'], np.mean([a[i] - b[i] for i in range(6)]), abs_tol=1e-9)
    assert {(s['method'], s['shots'], s['n']) for s in fewshot_summary(rows, shots=(1, 3))} == {('centroid', 1, 6), ('centroid', 3, 6), ('simpleshot', 3, 6)}
    with pytest.raises(InputError, match='unknown method'): run_fewshot(csv, ctx, {'protonet': {}}, protocol='t')


def test_refilled_episode_trains_only_the_student():
    p = _pool(n_classes=3, per_class=6)
    T = load_teacher(create_model('convnet4', 4), mean=(0.5,) * 3, std=(0.25,) * 3, size=84)
    before = {k: v.clone() for k, v in T.state_dict().items()}
    ep = sample_episode(p.y, 3, 2, 2, index=0)
    acc = refilled_episode(T, p, ep, init='teacher', stage1_epochs=0, stage2_epochs=1, per_class=2, batch_size=6, tau_teacher=0.5)
    assert 0 <= acc <= 100
    assert all(torch.equal(before[k], v) for k, v in T.state_dict().items())   # the teacher is never updated


@pytest.mark.needs_data('miniimagenet', 'feat_convnet4')
def test_the_public_convnet_teacher_embeds_unseen_classes():
    "FEAT's ConvNet-4 through the project's loader: SimpleShot 5-way 5-shot on 200 meta-test episodes far above chance (20 %)."
    pools = load_pools('miniimagenet', parts=('train', 'test'))
    ctx = fewshot_context(load_teacher('feat_convnet4_miniimagenet'), pools['test'], base_pool=pools['train'])
    from refilled.fewshot import FEWSHOT_METHODS
    accs = [FEWSHOT_METHODS['simpleshot'].run(ctx, sample_episode(ctx.pool.y, 5, 5, 15, index=i)) for i in range(200)]
    assert mean_ci(accs)['mean'] > 55            # measured: 61.9 on these 200 episodes (63.1 over 2,000; paper's teacher 69.6)


def test_frozen_batchnorm_reaches_nested_layers_and_survives_training():
    "freeze_bn_ replaces the BatchNorms inside residual blocks and downsample branches; a training step leaves their statistics alone."
    from torch import nn
    from refilled.fewshot import freeze_bn_, FrozenStatsBatchNorm2d
    m = create_model('resnet12', 5)
    n_bn = sum(type(b) is nn.BatchNorm2d for b in m.modules())
    freeze_bn_(m)
    assert n_bn > 4 and sum(isinstance(b, FrozenStatsBatchNorm2d) for b in m.modules()) == n_bn
    assert not any(type(b) is nn.BatchNorm2d for b in m.modules())
    stats = {k: v.clone() for k, v in m.state_dict().items() if 'running' in k or 'num_batches' in k}
    opt = torch.optim.SGD(m.parameters(), lr=0.1)
    m.train(); m(torch.rand(4, 3, 84, 84)).logsumexp(1).mean().backward(); opt.step()
    assert all(torch.equal(stats[k], m.state_dict()[k]) for k in stats)
    assert all(not b.training for b in m.modules() if isinstance(b, FrozenStatsBatchNorm2d))


def test_calibrated_head_temperature_comes_from_meta_val_tasks(monkeypatch):
    "finetune's head_tau='calibrated' is the context's meta-val NCM temperature for the episode's M, in the dot form."
    import refilled.fewshot as fs
    p = _pool(n_classes=5, per_class=8)
    g = torch.Generator().manual_seed(2)
    feats = torch.randn(5, 16, generator=g)[np.repeat(np.arange(5), 8)] + torch.randn(40, 16, generator=g)
    T = load_teacher(create_model('convnet4', 4), mean=(0.5,) * 3, std=(0.25,) * 3, size=84)
    ctx = FewShotContext(T, p, feats, val_pool=p, val_feats=feats)
    seen = {}
    monkeypatch.setattr(fs, 'finetune_episode', lambda teacher, pool, ep, **hp: seen.update(hp) or 50.0)
    ep = sample_episode(p.y, 3, 2, 2, index=0)
    assert fs.FEWSHOT_METHODS['finetune'].run(ctx, ep, steps=5, head='ncm', head_tau='calibrated') == 50.0
    assert seen['head_tau'] == ctx.ncm_tau(2, 'dot', 3, 2) and seen['head_tau'] != 'calibrated' and seen['steps'] == 5
