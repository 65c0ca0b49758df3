"Tests of refilled.data: loaders, GKD splits, task hold-outs, the batch pipeline (reproducibility, sharding, augmentation)."
import hashlib, pickle
from pathlib import Path
from types import SimpleNamespace
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings, strategies as st
from PIL import Image
from refilled.data import (CIFAR100_MEAN, CIFAR100_STD, IMAGENET_MEAN, IMAGENET_STD, CIFAR_FS_ORDER, MINIIMAGENET_SPLIT,
                           load_cifar100, gkd_split, make_task, BatchLoader, ArrayDataset, load_miniimagenet, load_cub,
                           load_dogs)

from refilled.core import DATASETS, data_root, data_available, missing_data_reason
import refilled.data

CIFAR_OVERLAPS = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
# the real data sets come from tests/conftest.py's `cifar` and `mini` fixtures, which skip when they are missing

def fake_arrays(n_classes=6, per_class=20, test_per_class=4, hw=8, seed=0):
    "A small labelled image set in the same form as CIFAR100Arrays (class-major rows, uint8 HWC)."
    g = np.random.default_rng(seed)
    ty = np.repeat(np.arange(n_classes), per_class); sy = np.repeat(np.arange(n_classes), test_per_class)
    return SimpleNamespace(train_x=g.integers(0, 256, (len(ty), hw, hw, 3), dtype=np.uint8), train_y=ty,
                           test_x=g.integers(0, 256, (len(sy), hw, hw, 3), dtype=np.uint8), test_y=sy)


# ---------------------------------------------------------------- GKD splits
def test_cifar_fs_order_is_a_permutation():
    assert sorted(CIFAR_FS_ORDER) == list(range(100)) and len(CIFAR_FS_ORDER) == 100


# The CIFAR-FS few-shot split (Bertinetto et al.) by class name, as torchmeta distributes it
# (torchmeta/datasets/assets/cifar100/cifar-fs/{train,val,test}.json).
CIFAR_FS_NAMES = {
    'train': 'dolphin seal aquarium_fish ray trout orchid sunflower tulip bottle bowl can cup plate apple mushroom orange pear clock '
             'keyboard chair couch bee caterpillar cockroach bear lion tiger wolf bridge castle house road skyscraper cloud forest '
             'mountain elephant kangaroo porcupine possum raccoon skunk lobster spider boy girl dinosaur lizard snake turtle hamster '
             'mouse rabbit shrew squirrel oak_tree palm_tree pine_tree willow_tree bus train lawn_mower streetcar tank',
    'val': 'beaver otter flatfish shark lamp television beetle butterfly sea camel cattle crab crocodile maple_tree motorcycle tractor',
    'test': 'whale poppy rose sweet_pepper telephone bed table wardrobe leopard plain chimpanzee fox snail worm baby man woman bicycle '
            'pickup_truck rocket'}


def test_cifar_fs_order_is_the_cifar_fs_split_by_name(cifar):
    "CIFAR_FS_ORDER = the ids of the 64 train, 16 val and 20 test classes of CIFAR-FS, each part in ascending id (the official label_q)."
    parts = {k: v.split() for k, v in CIFAR_FS_NAMES.items()}
    assert [len(v) for v in parts.values()] == [64, 16, 20]
    names = list(cifar.fine_label_names)
    assert sorted(sum(parts.values(), [])) == names                              # the dataset's 100 fine labels, alphabetical ids
    assert CIFAR_FS_ORDER == tuple(i for k in ('train', 'val', 'test') for i in sorted(names.index(n) for n in parts[k]))


@pytest.mark.parametrize('overlap', CIFAR_OVERLAPS)
def test_cifar_split_overlap(overlap):
    s = gkd_split('cifar100', overlap=overlap, order='cifar-fs')
    assert len(s.teacher_classes) == len(s.student_classes) == 50
    assert len(np.intersect1d(s.teacher_classes, s.student_classes)) / 50 == pytest.approx(overlap)
    assert s.overlap == pytest.approx(overlap) and s.seen.mean() == pytest.approx(overlap)
    assert set(s.teacher_classes) == set(CIFAR_FS_ORDER[:50])              # teacher = first 50 CIFAR-FS ids
    n_new = round((1 - overlap) * 50)
    assert s.n_new == n_new and set(s.student_classes) == set(CIFAR_FS_ORDER[n_new:n_new + 50])
    assert (np.diff(s.student_classes) > 0).all() and (np.diff(s.teacher_classes) > 0).all()  # label = ascending id
    # label maps, both ways
    for lbl, c in enumerate(s.student_classes):
        assert s.student_index[int(c)] == lbl
        t = s.student_to_teacher[lbl]
        assert (t >= 0) == bool(s.seen[lbl]) == (c in s.teacher_classes)
        if t >= 0: assert s.teacher_classes[t] == c and s.teacher_to_student[t] == lbl
    assert (s.teacher_to_student >= 0).sum() == s.seen.sum()


def test_cifar_split_extremes():
    s0, s1 = gkd_split(overlap=0.0), gkd_split(overlap=1.0)
    assert len(np.intersect1d(s0.teacher_classes, s0.student_classes)) == 0 and not s0.seen.any()
    assert (s1.teacher_classes == s1.student_classes).all() and s1.seen.all()
    # the 0 %-overlap student: the last 14 meta-train classes + meta-val + meta-test of CIFAR-FS
    assert set(s0.student_classes) == set(CIFAR_FS_ORDER[50:])
    assert {76, 78, 79, 80, 81, 82, 85, 88, 90, 91, 92, 93, 96, 97} <= set(s0.student_classes)


def test_split_arrays_are_read_only():
    s = gkd_split()
    with pytest.raises(ValueError, match='read-only'): s.teacher_classes[0] = 5


def test_random_order_is_seeded():
    a, b, c = (gkd_split(overlap=0.4, order='random', seed=k) for k in (3, 3, 4))
    assert (a.class_order == b.class_order).all() and (a.student_classes == b.student_classes).all()
    assert not (a.class_order == c.class_order).all()
    assert sorted(a.class_order) == list(range(100))
    assert a.seen.sum() == 20 and set(a.teacher_classes) == set(a.class_order[:50])


def test_standard_kd_split():
    s = gkd_split('cifar100', overlap=None)
    assert s.standard_kd and (s.teacher_classes == np.arange(100)).all() and (s.student_classes == np.arange(100)).all()
    assert s.seen.all() and s.overlap == 1.0
    c = gkd_split('cub', overlap=None)
    assert (c.student_classes == np.arange(200)).all()


@pytest.mark.parametrize('overlap', (0.0, 0.25, 0.5, 0.75, 1.0))
def test_cub_windows(overlap):
    s = gkd_split('cub', overlap)
    n_new = round((1 - overlap) * 100)
    assert (s.teacher_classes == np.arange(100)).all() and (s.student_classes == np.arange(n_new, n_new + 100)).all()
    assert s.seen.mean() == pytest.approx(overlap)


@pytest.mark.parametrize('dataset,overlap,valid', [('cifar100', 0.5, '0, 0.2, 0.4, 0.6, 0.8, 1'), ('cifar100', 60, '0.6'),
                                                   ('cifar100', 0.25, '0.8'), ('cub', 0.2, '0, 0.25, 0.5, 0.75, 1'),
                                                   ('cifar100', True, '0.2'), ('cifar100', '0.6', '0.4')])
def test_invalid_overlap_lists_valid_ones(dataset, overlap, valid):
    with pytest.raises(ValueError, match='overlap must be one of') as e: gkd_split(dataset, overlap)
    assert valid in str(e.value)


def test_invalid_dataset_and_order():
    with pytest.raises(ValueError, match="dataset must be one of"): gkd_split('imagenet')
    with pytest.raises(ValueError, match="order must be one of"): gkd_split('cifar100', order='alphabetical')
    with pytest.raises(ValueError, match="order must be one of \\['natural', 'random'\\]"): gkd_split('cub', 0.5, order='cifar-fs')
    with pytest.raises(ValueError, match='seed must be'): gkd_split(order='random', seed=-1)


# ---------------------------------------------------------------- CIFAR-100 loading
SHA = {'train_x': 'a678f5ab6ac125c4dfba98c64d1562b510eff50354e165b75e65d808f7be34c5',
       'test_x': '8532fd42ce092c665328a7201998ab7e8768dad37afff89be94e13106523a495'}


def test_real_cifar100_loads(cifar):
    assert cifar.train_x.shape == (50000, 32, 32, 3) and cifar.train_x.dtype == np.uint8
    assert cifar.test_x.shape == (10000, 32, 32, 3) and cifar.train_y.dtype == np.int64
    assert (np.bincount(cifar.train_y) == 500).all() and (np.bincount(cifar.test_y) == 100).all()
    assert len(cifar.fine_label_names) == 100 and cifar.fine_label_names[:3] == ('apple', 'aquarium_fish', 'baby')
    for k, h in SHA.items():   # the documented array contents (SOURCE.md)
        assert hashlib.sha256(np.ascontiguousarray(getattr(cifar, k)).tobytes()).hexdigest() == h
    assert load_cifar100() is cifar                              # cached in-process
    with pytest.raises(ValueError, match='read-only'): cifar.train_y[0] = 3


@pytest.mark.parametrize('overlap', CIFAR_OVERLAPS)
def test_real_cifar_task_sizes(cifar, overlap):
    s = gkd_split('cifar100', overlap)
    for classes in (s.student_classes, s.teacher_classes):
        t = make_task(cifar, classes)
        assert (len(t.train_y), len(t.val_y), len(t.test_y)) == (22500, 2500, 5000)
        assert t.num_classes == 50 and (t.classes == classes).all()
    # labels map back to the original ids of the rows they came from
    assert (cifar.train_y[t.train_index] == classes[t.train_y.numpy()]).all()
    assert (cifar.train_y[t.val_index] == classes[t.val_y.numpy()]).all()
    assert (cifar.test_y[t.test_index] == classes[t.test_y.numpy()]).all()
    assert len(np.intersect1d(t.train_index, t.val_index)) == 0
    assert np.array_equal(t.val_x[11].numpy(), cifar.train_x[t.val_index[11]])


def test_real_cifar_cpu_protocol(cifar):
    s = gkd_split('cifar100', 0.6)
    t = make_task(cifar, s.student_classes, val_per_class=50, train_per_class=100, seed=2)
    assert (len(t.train_y), len(t.val_y), len(t.test_y)) == (5000, 2500, 5000)
    assert torch.bincount(t.train_y).tolist() == [100] * 50 and torch.bincount(t.val_y).tolist() == [50] * 50
    std = make_task(cifar, np.arange(100))
    assert (len(std.train_y), len(std.val_y), len(std.test_y)) == (45000, 5000, 10000)


def write_torchvision_layout(d, arrs, seed=0):
    "Write arrs as torchvision's cifar-100-python pickles, classes randomly interleaved (within-class order kept)."
    d = Path(d)/'cifar-100-python'; d.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for part in ('train', 'test'):
        x, y = getattr(arrs, f'{part}_x'), getattr(arrs, f'{part}_y')
        lab = y[np.argsort(rng.random(len(y)))]            # a random label sequence with the right counts ...
        idx = np.empty(len(y), np.int64)
        for c in np.unique(y): idx[lab == c] = np.flatnonzero(y == c)   # ... filled in within-class order
        with open(d/part, 'wb') as f:
            pickle.dump({'data': x[idx].transpose(0, 3, 1, 2).reshape(len(y), -1), 'fine_labels': y[idx].tolist(),
                         'coarse_labels': [0] * len(y)}, f)
    with open(d/'meta', 'wb') as f: pickle.dump({'fine_label_names': list(arrs.fine_label_names)}, f)


def test_torchvision_layout_gives_the_same_arrays(cifar, tmp_path):
    write_torchvision_layout(tmp_path, cifar)
    tv = load_cifar100(tmp_path)
    for k in ('train_x', 'train_y', 'test_x', 'test_y'):
        assert np.array_equal(getattr(tv, k), getattr(cifar, k)), k
    assert tv.fine_label_names == cifar.fine_label_names


def test_missing_and_corrupt_cifar(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError) as e: load_cifar100(tmp_path)
    msg = str(e.value)
    assert str(tmp_path/'cifar100'/'cifar100.npz') in msg and str(tmp_path/'cifar-100-python') in msg
    assert 'two accepted layouts' in msg and 'download=True' in msg
    monkeypatch.setenv('REFILLED_DATA', str(tmp_path))
    with pytest.raises(FileNotFoundError, match='cifar100.npz'): load_cifar100()
    (tmp_path/'cifar100').mkdir(); f = tmp_path/'cifar100'/'cifar100.npz'
    f.write_bytes(b'garbage')
    with pytest.raises(RuntimeError, match='corrupt') as e: load_cifar100(tmp_path)
    assert str(f) in str(e.value) and 'two accepted layouts' in str(e.value) and 'not an npz' in str(e.value)
    np.savez(f, train_x=np.zeros((2, 32, 32, 3), np.uint8))          # a valid npz with keys missing
    with pytest.raises(RuntimeError, match="missing keys"): load_cifar100(tmp_path)
    np.savez(f, train_x=np.zeros((2, 28, 28, 3), np.uint8), train_y=np.zeros(2), test_x=np.zeros((1, 28, 28, 3), np.uint8),
             test_y=np.zeros(1), fine_label_names=np.array(['a'] * 100))
    with pytest.raises(RuntimeError, match=r'expected uint8 \[N, 32, 32, 3\]'): load_cifar100(tmp_path)


def test_corrupt_pickles(tmp_path):
    d = tmp_path/'cifar-100-python'; d.mkdir()
    for p in ('train', 'test', 'meta'): (d/p).write_bytes(b'\x80\x04not a pickle')
    with pytest.raises(RuntimeError, match='corrupt'): load_cifar100(tmp_path)


# ---------------------------------------------------------------- make_task
def rows_of(t, part, c):
    return getattr(t, f'{part}_index')[t.classes[getattr(t, f'{part}_y').numpy()] == c]


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(0, 5), min_size=1, max_size=6, unique=True), st.integers(0, 3), st.integers(0, 10_000))
def test_task_subset_depends_only_on_seed_and_class(classes, shift, seed):
    arrs = fake_arrays()
    ref = make_task(arrs, [0, 1, 2, 3, 4, 5], val_per_class=4, train_per_class=8, seed=seed)
    t = make_task(arrs, classes, val_per_class=4, train_per_class=8, seed=seed)
    t2 = make_task(arrs, classes, val_per_class=4, train_per_class=8 + shift, seed=seed)   # other train size
    t3 = make_task(arrs, classes, val_per_class=4 + shift, train_per_class=8, seed=seed)   # other val size
    for c in classes:
        assert np.array_equal(rows_of(t, 'train', c), rows_of(ref, 'train', c))
        assert np.array_equal(rows_of(t, 'val', c), rows_of(ref, 'val', c))
        assert np.isin(rows_of(t, 'train', c), rows_of(t2, 'train', c)).all()
        assert np.array_equal(rows_of(t2, 'val', c), rows_of(ref, 'val', c))
        assert np.array_equal(rows_of(t3, 'train', c), rows_of(ref, 'train', c))
        assert len(np.intersect1d(rows_of(t3, 'train', c), rows_of(t3, 'val', c))) == 0
    assert [int(t.classes[i]) for i in range(len(classes))] == classes                  # label i = classes[i]
    assert torch.equal(t.train_x, torch.from_numpy(arrs.train_x[t.train_index]))


def test_task_seed_changes_subset_and_default_fraction():
    arrs = fake_arrays(per_class=30)
    a, b = (make_task(arrs, [2, 4], seed=s) for s in (0, 1))
    assert not np.array_equal(a.val_index, b.val_index)
    assert (len(a.train_y), len(a.val_y), len(a.test_y)) == (54, 6, 8)                  # 10 % of 30 held out per class
    z = make_task(arrs, [2], val_frac=0.0)
    assert len(z.val_y) == 0 and z.val_x.shape == (0, 8, 8, 3) and len(z.train_y) == 30
    assert make_task(arrs, [1], val_per_class=5, val_frac=0.5).val_y.numel() == 5   # val_per_class wins


def test_task_accepts_tensors():
    arrs = fake_arrays()
    ta = SimpleNamespace(**{k: torch.as_tensor(v) for k, v in vars(arrs).items()})
    a, b = make_task(arrs, [3, 1], seed=7), make_task(ta, [3, 1], seed=7)
    for k in ('train_x', 'train_y', 'val_x', 'val_y', 'test_x', 'test_y'): assert torch.equal(getattr(a, k), getattr(b, k))


@pytest.mark.parametrize('kw,match', [(dict(classes=[1, 1]), 'duplicates'), (dict(classes=[]), 'non-empty'),
                                      (dict(classes=[[1, 2]]), '1-D'), (dict(classes=[1.5]), 'integer class ids'),
                                      (dict(classes=[9]), 'class 9 has no training images'),
                                      (dict(classes=[1], val_per_class=15, train_per_class=10), 'cannot hold out 15'),
                                      (dict(classes=[1], val_frac=1.2), 'val_frac must be in'),
                                      (dict(classes=[1], seed=-1), 'seed must be'),
                                      (dict(classes=[1], train_per_class=0), 'train_per_class must be'),
                                      (dict(classes=[1], val_per_class=2.5), 'val_per_class must be')])
def test_task_bad_input(kw, match):
    with pytest.raises(ValueError, match=match): make_task(fake_arrays(), **kw)


# ---------------------------------------------------------------- BatchLoader
def epoch(ld, e):
    ld.set_epoch(e); return [(x.clone(), y.clone()) for x, y in ld]


def same(a, b): return len(a) == len(b) and all(torch.equal(x, u) and torch.equal(y, v) for (x, y), (u, v) in zip(a, b))


@pytest.mark.parametrize('augment', [None, 'cifar', 'rrc'])
def test_loader_reproducible_by_seed_and_epoch(augment):
    arrs = fake_arrays(per_class=30, hw=16)
    mk = lambda seed: BatchLoader(arrs.train_x, arrs.train_y, 32, augment=augment, mean=CIFAR100_MEAN, std=CIFAR100_STD,
                                  device='cpu', seed=seed, size=12 if augment == 'rrc' else None)
    a = mk(0)
    e3 = epoch(a, 3); e4 = epoch(a, 4)
    assert same(e3, epoch(a, 3))                      # same epoch again
    assert same(e3, epoch(mk(0), 3))                  # a fresh loader resumed at epoch 3
    assert not same(e3, e4) and not same(e3, epoch(mk(1), 3))
    assert len(e3) == len(a) == 6                     # ceil(180 / 32)
    ys = torch.cat([y for _, y in e3]).sort().values
    assert torch.equal(ys, torch.from_numpy(arrs.train_y).sort().values)   # every sample exactly once


def test_loader_epoch_does_not_advance_by_itself():
    arrs = fake_arrays()
    ld = BatchLoader(arrs.train_x, arrs.train_y, 50, augment='cifar', device='cpu')
    assert same(list(ld), list(ld))
    with pytest.raises(ValueError, match='epoch must be'): ld.set_epoch(-1)


def test_loader_threads_setting_is_restored_and_does_not_change_values():
    arrs = fake_arrays(hw=16)
    before = torch.get_num_threads()
    kw = dict(augment='cifar', mean=CIFAR100_MEAN, std=CIFAR100_STD, device='cpu', seed=3)
    it = iter(BatchLoader(arrs.train_x, arrs.train_y, 32, threads=1, **kw))
    first = next(it)
    assert torch.get_num_threads() == before                # restored while the caller trains on the batch
    assert same(epoch(BatchLoader(arrs.train_x, arrs.train_y, 32, threads=1, **kw), 0),
                epoch(BatchLoader(arrs.train_x, arrs.train_y, 32, threads=None, **kw), 0))
    assert torch.equal(first[0], epoch(BatchLoader(arrs.train_x, arrs.train_y, 32, **kw), 0)[0][0])
    with pytest.raises(ValueError, match='threads must be'): BatchLoader(arrs.train_x, arrs.train_y, 8, threads=0)


def test_loader_no_shuffle_and_drop_last():
    arrs = fake_arrays()
    ld = BatchLoader(arrs.train_x, arrs.train_y, 50, shuffle=False, device='cpu', drop_last=True)
    assert len(ld) == 2 and torch.equal(torch.cat([y for _, y in ld]), torch.from_numpy(arrs.train_y[:100]))
    assert len(BatchLoader(arrs.train_x, arrs.train_y, 50, device='cpu')) == 3
    assert [len(y) for _, y in BatchLoader(arrs.train_x, arrs.train_y, 50, device='cpu')] == [50, 50, 20]


@pytest.mark.parametrize('n,ws', [(120, 2), (121, 2), (100, 3), (7, 7)])
def test_loader_sharding(n, ws):
    arrs = fake_arrays(per_class=20)
    x, y = arrs.train_x[:n], arrs.train_y[:n]
    single = BatchLoader(x, y, 16, augment='cifar', device='cpu', seed=4)
    shards = [BatchLoader(x, y, 16, augment='cifar', device='cpu', seed=4, rank=r, world_size=ws) for r in range(ws)]
    plans, full = [s.plan(2) for s in shards], single.plan(2)
    sizes = {len(p['order']) for p in plans}
    assert sizes == {n // ws} and len({len(s) for s in shards}) == 1                   # equal size, equal batch count
    allp = np.concatenate([p['order'] for p in plans])
    assert len(np.unique(allp)) == len(allp)                                           # disjoint
    m = n - n % ws
    assert np.array_equal(np.sort(allp), np.sort(full['order'][:m]))                  # union = the single-process epoch
    for r, p in enumerate(plans):                                                      # ... with the same augmentation
        assert np.array_equal(p['offset'], full['offset'][r:m:ws]) and np.array_equal(p['flip'], full['flip'][r:m:ws])
    # the batches themselves: each rank's samples come from its shard
    shards[0].set_epoch(2)
    got = torch.cat([yy for _, yy in shards[0]])
    assert torch.equal(got, torch.from_numpy(y[plans[0]['order']]))


def reference_crop_flip(x_hwc, plan, pad):
    "Crop + flip with torch.nn.functional.pad and slicing, one image at a time."
    out = []
    for i, (dy, dx) in zip(plan['order'], plan['offset']):
        img = torch.from_numpy(x_hwc[i]).permute(2, 0, 1)
        p = F.pad(img, (pad, pad, pad, pad))
        h, w = img.shape[1:]
        out.append(p[:, dy:dy + h, dx:dx + w])
    out = torch.stack(out)
    return torch.where(torch.from_numpy(plan['flip'])[:, None, None, None], out.flip(-1), out)


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 6), st.integers(1, 40), st.integers(0, 99), st.sampled_from([(8, 8), (12, 10)]))
def test_cifar_crop_is_a_window_of_the_padded_image(pad, bs, seed, hw):
    g = np.random.default_rng(seed)
    x = g.integers(1, 256, (37, *hw, 3), dtype=np.uint8)                # no zero pixels: padding is recognisable
    ld = BatchLoader(x, np.zeros(37), bs, augment='cifar', padding=pad, device='cpu', seed=seed)
    ld.set_epoch(seed)
    got = torch.cat([b for b, _ in ld])
    ref = reference_crop_flip(x, ld.plan(), pad).float() / 255
    torch.testing.assert_close(got, ref, atol=1e-6, rtol=0)
    off = ld.plan()['offset']
    assert off.min() >= 0 and off.max() <= 2 * pad


def test_cifar_augmentation_distribution():
    x = np.zeros((4000, 8, 8, 3), np.uint8)
    p = BatchLoader(x, np.zeros(4000), 100, augment='cifar', device='cpu').plan()
    counts = np.bincount(p['offset'].ravel(), minlength=9) / p['offset'].size
    assert np.allclose(counts, 1 / 9, atol=0.015) and abs(p['flip'].mean() - 0.5) < 0.03   # uniform offsets, fair flips


def test_flip_mirrors_columns():
    x = np.tile(np.arange(8, dtype=np.uint8)[None, None, :, None] * 10 + 5, (64, 8, 1, 3))   # value = 10*col + 5
    ld = BatchLoader(x, np.zeros(64), 64, augment='cifar', padding=0, device='cpu', seed=1)
    got = next(iter(ld))[0][:, 0, 0, :] * 255
    p = ld.plan()
    cols = torch.arange(8.) * 10 + 5
    for g, f in zip(got, p['flip']): torch.testing.assert_close(g, cols.flip(0) if f else cols, atol=1e-3, rtol=0)
    assert 0 < p['flip'].sum() < 64


def test_normalisation_and_layout():
    arrs = fake_arrays(hw=8)
    kw = dict(shuffle=False, mean=IMAGENET_MEAN, std=IMAGENET_STD, device='cpu')
    a = next(iter(BatchLoader(arrs.test_x, arrs.test_y, 24, **kw)))[0]
    b = next(iter(BatchLoader(arrs.test_x, arrs.test_y, 24, channels_last=False, **kw)))[0]
    ref = (torch.from_numpy(arrs.test_x).permute(0, 3, 1, 2).float() / 255 - torch.tensor(IMAGENET_MEAN)[:, None, None]) \
        / torch.tensor(IMAGENET_STD)[:, None, None]
    torch.testing.assert_close(a, ref, atol=1e-5, rtol=0)
    assert a.dtype == torch.float32 and a.shape == (24, 3, 8, 8)
    assert a.is_contiguous(memory_format=torch.channels_last) and b.is_contiguous() and torch.equal(a, b)
    c = next(iter(BatchLoader(arrs.test_x, arrs.test_y, 24, shuffle=False, device='cpu')))[0]
    torch.testing.assert_close(c, torch.from_numpy(arrs.test_x).permute(0, 3, 1, 2).float() / 255, atol=1e-6, rtol=0)


def test_chw_input_is_accepted():
    arrs = fake_arrays(hw=8)
    kw = dict(augment='cifar', mean=CIFAR100_MEAN, std=CIFAR100_STD, device='cpu', seed=5)
    a = epoch(BatchLoader(arrs.train_x, arrs.train_y, 16, **kw), 2)
    b = epoch(BatchLoader(torch.from_numpy(arrs.train_x).permute(0, 3, 1, 2).contiguous(), arrs.train_y, 16, **kw), 2)
    assert same(a, b)


def test_labels_follow_images():
    x = np.repeat(np.arange(50, dtype=np.uint8), 4 * 4 * 3).reshape(50, 4, 4, 3)     # image i is constant i
    ld = BatchLoader(x, np.arange(50), 7, augment='cifar', padding=1, device='cpu', seed=3)
    for xb, yb in ld:
        assert torch.equal((xb.amax((1, 2, 3)) * 255).round().long(), yb)


def test_rrc_identity_boxes_and_center():
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (5, 40, 40, 3), dtype=torch.uint8, generator=g)
    ld = BatchLoader(x, torch.arange(5), 5, augment='rrc', scale=(1, 1), ratio=(1, 1), shuffle=False, device='cpu')
    p, got = ld.plan(), next(iter(ld))[0]
    ref = x.permute(0, 3, 1, 2).float() / 255
    ref = torch.where(torch.from_numpy(p['flip'])[:, None, None, None], ref.flip(-1), ref)
    torch.testing.assert_close(got, ref, atol=1e-5, rtol=0)
    # a half-size box resampled 2:1 averages 2x2 blocks (roi_align with 2x2 samples per output pixel)
    ld = BatchLoader(x, torch.arange(5), 5, augment='rrc', size=20, scale=(1, 1), ratio=(1, 1), shuffle=False, device='cpu')
    p, got = ld.plan(), next(iter(ld))[0]
    ref = F.avg_pool2d(x.permute(0, 3, 1, 2).float(), 2) / 255
    ref = torch.where(torch.from_numpy(p['flip'])[:, None, None, None], ref.flip(-1), ref)
    torch.testing.assert_close(got, ref, atol=1e-5, rtol=0)
    # torchvision's box distribution: inside the image, area share in [0.08, 1], aspect ratio in [3/4, 4/3]
    big = BatchLoader(x[:1].expand(5000, -1, -1, -1), torch.zeros(5000), 100, augment='rrc', size=24, device='cpu')
    b = big.plan(7)['box']
    w, h = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
    assert (b[:, :2] >= 0).all() and (b[:, 2] <= 40).all() and (b[:, 3] <= 40).all() and (w >= 1).all()
    assert ((w * h / 1600) >= 0.06).all() and np.quantile(w * h / 1600, 0.9) > 0.7
    assert (w / h >= 0.6).all() and (w / h <= 1.6).all()
    assert next(iter(big))[0].shape == (100, 3, 24, 24)
    cen = next(iter(BatchLoader(x, torch.arange(5), 5, augment='center', size=30, shuffle=False, device='cpu')))[0]
    torch.testing.assert_close(cen * 255, x[:, 5:35, 5:35].permute(0, 3, 1, 2).float(), atol=1e-3, rtol=0)


@pytest.mark.parametrize('args,kw,match', [
    ((np.zeros((4, 8, 8, 3), np.float32), np.zeros(4), 2), {}, 'x must be uint8 images'),
    ((np.zeros((4, 5, 8, 8), np.uint8), np.zeros(4), 2), {}, r'x must be uint8 images \[N, H, W, C\]'),
    ((np.zeros((8, 8, 3), np.uint8), np.zeros(8), 2), {}, r'x must be uint8 images \[N, H, W, C\]'),
    ((np.zeros((4, 8, 8, 3), np.uint8), np.zeros(5), 2), {}, 'y must be 1-D with 4 labels'),
    ((np.zeros((4, 8, 8, 3), np.uint8), np.zeros(4), 0), {}, 'batch_size must be'),
    ((np.zeros((4, 8, 8, 3), np.uint8), np.zeros(4), 2), dict(augment='autoaugment'), 'augment must be one of'),
    ((np.zeros((4, 8, 8, 3), np.uint8), np.zeros(4), 2), dict(rank=1), r'rank must be in \[0, world_size=1\)'),
    ((np.zeros((4, 8, 8, 3), np.uint8), np.zeros(4), 2), dict(world_size=0), 'world_size must be'),
    ((np.zeros((4, 8, 8, 3), np.uint8), np.zeros(4), 2), dict(world_size=5), 'cannot be shared by 5 ranks'),
    ((np.zeros((4, 8, 8, 3), np.uint8), np.zeros(4), 2), dict(std=(1, 0, 1)), 'std must be positive'),
    ((np.zeros((4, 8, 8, 3), np.uint8), np.zeros(4), 2), dict(mean=(0.1, 0.2)), 'mean needs 3 values'),
    ((np.zeros((4, 8, 8, 3), np.uint8), np.zeros(4), 2), dict(size=6), "needs augment='rrc' or 'center'"),
    ((np.zeros((4, 8, 8, 3), np.uint8), np.zeros(4), 2), dict(augment='center', size=9), 'larger than the stored'),
    ((np.zeros((4, 8, 8, 3), np.uint8), np.zeros(4), 2), dict(seed=-2), 'seed must be'),
])
def test_loader_bad_input(args, kw, match):
    with pytest.raises(ValueError, match=match): BatchLoader(*args, device='cpu', **kw)


def test_loader_keeps_one_tensor_and_accepts_read_only_arrays(cifar):
    arr = cifar.train_x[:256]                                    # a read-only view of the cached arrays
    ld = BatchLoader(arr, cifar.train_y[:256], 64, augment='cifar', device='cpu')
    assert ld.x.dtype == torch.uint8 and ld.x.shape == (256, 32, 32, 3) and ld.x.is_contiguous()
    assert len(list(ld)) == 4


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA device')
def test_loader_on_cuda_matches_cpu():
    arrs = fake_arrays(per_class=30, hw=16)
    for aug, size in (('cifar', None), ('rrc', 12)):
        kw = dict(augment=aug, size=size, mean=CIFAR100_MEAN, std=CIFAR100_STD, seed=2)
        a = epoch(BatchLoader(arrs.train_x, arrs.train_y, 32, device='cpu', **kw), 1)
        b = epoch(BatchLoader(arrs.train_x, arrs.train_y, 32, device='cuda', **kw), 1)
        assert b[0][0].device.type == 'cuda'
        for (x1, y1), (x2, y2) in zip(a, b):
            assert torch.equal(y1, y2.cpu()); torch.testing.assert_close(x1, x2.cpu(), atol=1e-4, rtol=0)


def test_array_dataset_with_dataloader():
    import torchvision.transforms as T
    arrs = fake_arrays()
    ds = ArrayDataset(arrs.train_x, arrs.train_y)
    img, lbl = ds[17]
    assert img.dtype == torch.uint8 and img.shape == (3, 8, 8) and lbl == arrs.train_y[17]
    assert torch.equal(img, torch.from_numpy(arrs.train_x[17]).permute(2, 0, 1))
    tds = ArrayDataset(torch.from_numpy(arrs.train_x), torch.from_numpy(arrs.train_y),
                       T.Compose([T.ToTensor(), T.Normalize(CIFAR100_MEAN, CIFAR100_STD)]))
    xs, ys = next(iter(torch.utils.data.DataLoader(tds, batch_size=len(tds), shuffle=False)))
    ref, yref = next(iter(BatchLoader(arrs.train_x, arrs.train_y, len(tds), shuffle=False, mean=CIFAR100_MEAN,
                                      std=CIFAR100_STD, device='cpu')))
    torch.testing.assert_close(xs, ref, atol=1e-5, rtol=0); assert torch.equal(ys, yref)
    with pytest.raises(ValueError, match='x must be images'): ArrayDataset(arrs.train_x, arrs.train_y[:3])


# ---------------------------------------------------------------- MiniImageNet
def test_miniimagenet_subset(mini):
    assert mini.train_x.shape == (5000, 84, 84, 3) and mini.test_x.shape == (1000, 84, 84, 3)
    assert (np.bincount(mini.train_y) == 50).all() and (np.bincount(mini.test_y) == 10).all()
    assert [len(mini.split_classes(p)) for p in ('train', 'val', 'test')] == [64, 16, 20]
    for p in ('train', 'val', 'test'):
        assert [mini.class_names[i] for i in mini.split_classes(p)] == MINIIMAGENET_SPLIT[p]
    z = np.load(data_root()/'miniimagenet_subset'/'miniimagenet_subset.npz')
    i = 1234; off = z['train_offsets']
    import io
    ref = np.asarray(Image.open(io.BytesIO(z['train_jpeg'][off[i]:off[i + 1]].tobytes())).convert('RGB'))
    assert np.array_equal(mini.train_x[i], ref) and mini.train_y[i] == z['train_y'][i]
    with pytest.raises(ValueError, match="part must be"): mini.split_classes('meta-test')


def test_miniimagenet_folder_layouts(mini, tmp_path):
    z = np.load(data_root()/'miniimagenet_subset'/'miniimagenet_subset.npz')
    wn = ['n01532829', 'n03146219']
    rows = []
    for part, sub in (('train', 'train'), ('test', 'val')):
        off, buf = z[f'{part}_offsets'], z[f'{part}_jpeg']
        for i, (fn, y) in enumerate(zip(z[f'{part}_filenames'], z[f'{part}_y'])):
            w = str(z['wnids'][y])
            if w not in wn: continue
            b = buf[off[i]:off[i + 1]].tobytes()
            for p in (tmp_path/'a'/'miniimagenet'/sub/w/fn, tmp_path/'b'/'miniimagenet'/'images'/fn):
                p.parent.mkdir(parents=True, exist_ok=True); p.write_bytes(b)
            rows.append((fn, w, part))
    for part in ('train', 'val', 'test'):   # Ravi CSVs: a class lives in the CSV of its meta split
        lines = [f'{fn},{w}' for fn, w, _ in rows if w in MINIIMAGENET_SPLIT[part]]
        (tmp_path/'b'/'miniimagenet'/f'{part}.csv').write_text('filename,label\n' + '\n'.join(lines) + '\n')
    ids = [mini.class_names.index(w) for w in wn]
    a = load_miniimagenet(tmp_path/'a')
    assert np.array_equal(a.train_x, mini.train_x[np.isin(mini.train_y, ids)])
    assert np.array_equal(a.train_y, mini.train_y[np.isin(mini.train_y, ids)])
    assert np.array_equal(a.test_x, mini.test_x[np.isin(mini.test_y, ids)])
    assert np.array_equal(a.meta_split, mini.meta_split)
    assert [f.split('/')[-1] for f in a.train_files] == [f for f, y in zip(mini.train_files, mini.train_y) if y in ids]
    b = load_miniimagenet(tmp_path/'b', source='folder')   # 60 images per class: all within the first 500 -> train
    assert len(b.train_y) == 120 and len(b.test_y) == 0
    assert np.array_equal(b.train_x[:50], a.train_x[:50])


def test_miniimagenet_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match='MiniImageNet not found') as e: load_miniimagenet(tmp_path)
    assert 'miniimagenet_subset.npz' in str(e.value) and 'train,val' in str(e.value)
    with pytest.raises(ValueError, match="source must be"): load_miniimagenet(tmp_path, source='web')


# ---------------------------------------------------------------- CUB and Stanford Dogs (synthetic folders)
def make_fake_cub(d, n_classes=5, per_class=10, seed=0):
    "The official CUB_200_2011 layout with flat-coloured images (class c: red = 40c) and a white box region."
    rng = np.random.default_rng(seed); d = Path(d)/'CUB_200_2011'; (d/'images').mkdir(parents=True)
    L = {k: [] for k in ('images', 'classes', 'image_class_labels', 'bounding_boxes', 'train_test_split')}
    i = 0
    for c in range(1, n_classes + 1):
        cname = f'{c:03d}.Bird_{c}'; (d/'images'/cname).mkdir(); L['classes'].append(f'{c} {cname}')
        for j in range(per_class):
            i += 1; h, w = (int(v) for v in rng.integers(50, 100, 2))
            im = np.zeros((h, w, 3), np.uint8); im[..., 0] = 40 * c
            x0, y0 = int(rng.integers(0, w // 3)), int(rng.integers(0, h // 3))
            im[y0:y0 + h // 2, x0:x0 + w // 2] = (255, 255, 40 * c)
            Image.fromarray(im).save(d/'images'/cname/f'{i}.png')
            L['images'].append(f'{i} {cname}/{i}.png'); L['image_class_labels'].append(f'{i} {c}')
            L['bounding_boxes'].append(f'{i} {x0}.0 {y0}.0 {w // 2}.0 {h // 2}.0'); L['train_test_split'].append(f'{i} {int(j < 6)}')
    for k, v in L.items(): (d/f'{k}.txt').write_text('\n'.join(v) + '\n')
    return d


def test_cub_layout(tmp_path):
    d = make_fake_cub(tmp_path)
    cub = load_cub(tmp_path, size=16)
    assert cub.train_x.shape == (35, 16, 16, 3) and cub.test_x.shape == (15, 16, 16, 3)
    assert np.bincount(cub.train_y).tolist() == [7] * 5 and np.bincount(cub.test_y).tolist() == [3] * 5   # 70/30 per class
    assert (cub.train_x[..., :2] == 255).all()                                 # the bounding-box crop only
    assert (cub.train_x[..., 2] == 40 * (cub.train_y[:, None, None] + 1)).all()  # labels follow images
    assert cub.class_names[:2] == ('001.Bird_1', '002.Bird_2')
    assert load_cub(d, size=16) is not None                                    # the CUB_200_2011 folder itself
    full = load_cub(tmp_path, size=16, crop_bbox=False)
    assert (full.train_x[..., 1] == 0).any()                                   # the background is back
    off = load_cub(tmp_path, size=16, split='official')
    assert np.bincount(off.train_y).tolist() == [6] * 5
    s0, s0b, s1 = (load_cub(tmp_path, size=16, seed=s) for s in (0, 0, 1))
    assert s0.train_files == s0b.train_files and s0.train_files != s1.train_files   # seeded
    assert len(set(s0.train_files) & set(s0.test_files)) == 0 and len(s0.train_files + s0.test_files) == 50
    assert all(f.startswith(f'{c + 1:03d}.') for f, c in zip(s0.train_files, s0.train_y))
    t = make_task(cub, [4, 2], val_per_class=2)
    assert (len(t.train_y), len(t.val_y), len(t.test_y)) == (10, 4, 6)
    with pytest.raises(ValueError, match="split must be"): load_cub(tmp_path, split='70/30')
    with pytest.raises(ValueError, match="train_frac must be"): load_cub(tmp_path, train_frac=1.0)


def test_cub_resize_matches_torchvision(tmp_path):
    import torchvision.transforms as T
    make_fake_cub(tmp_path, n_classes=1, per_class=4)
    d = tmp_path/'CUB_200_2011'
    cub = load_cub(tmp_path, size=24, crop_bbox=False, split='official')
    files = [l.split()[1] for l in (d/'images.txt').read_text().splitlines()][:4]
    tf = T.Compose([T.Resize(24), T.CenterCrop(24)])
    ref = np.stack([np.asarray(tf(Image.open(d/'images'/f).convert('RGB'))) for f in files])
    assert len(cub.test_y) == 0 and np.array_equal(cub.train_x, ref)   # official split: all 4 are training images


def make_fake_dogs(d, classes=('n02085620-Chihuahua', 'n02085782-Japanese_spaniel', 'n02085936-Maltese_dog')):
    "The official Stanford Dogs layout in folder `d`: Images/<class>/ (flat colour 50(k+1) for class k), train/test lists."
    import scipy.io
    d, tr, te = Path(d), [], []
    for k, c in enumerate(classes):
        (d/'Images'/c).mkdir(parents=True)
        for j in range(4):
            f = f'{c}/{c.split("-")[0]}_{j}.png'
            Image.fromarray(np.full((30 + 5 * j, 40, 3), 50 * (k + 1), np.uint8)).save(d/'Images'/f)
            (tr if j % 2 else te).append(f)
    for part, fl in (('train', tr), ('test', te)):
        scipy.io.savemat(d/f'{part}_list.mat', {'file_list': np.array([[np.array([f])] for f in fl], dtype=object)})
    return d


def test_dogs_layout(tmp_path):
    make_fake_dogs(tmp_path/'stanford_dogs')
    dogs = load_dogs(tmp_path, size=20)
    assert dogs.train_x.shape == (6, 20, 20, 3) and dogs.train_y.tolist() == [0, 0, 1, 1, 2, 2]
    assert (dogs.train_x[..., 0] == 50 * (dogs.train_y[:, None, None] + 1)).all()
    assert dogs.class_names == ('Chihuahua', 'Japanese_spaniel', 'Maltese_dog')
    with pytest.raises(FileNotFoundError, match='Stanford Dogs not found'): load_dogs(tmp_path/'nothing')


def test_cub_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match='CUB-200-2011 not found') as e: load_cub(tmp_path)
    assert 'bounding_boxes.txt' in str(e.value) and 'train_test_split.txt' in str(e.value)


# ---------------------------------------------------------------- data-set detection (refilled.core) agrees with the loaders
def make_layout(name, layout, root):
    "A minimal copy of data set `name` in `layout` (one of `DATASETS[name].layouts`) under `root`, readable by its loader."
    root = Path(root); root.mkdir(parents=True, exist_ok=True)
    if name == 'cifar100':
        a = fake_arrays(n_classes=100, per_class=1, test_per_class=1, hw=32)
        a.fine_label_names = tuple(f'class_{i}' for i in range(100))
        if layout[0].endswith('.npz'):
            (root/'cifar100').mkdir()
            np.savez(root/layout[0], train_x=a.train_x, train_y=a.train_y, test_x=a.test_x, test_y=a.test_y,
                     fine_label_names=np.array(a.fine_label_names))
        else: write_torchvision_layout(root, a)
    elif name == 'miniimagenet':
        import io
        buf = io.BytesIO(); Image.fromarray(np.full((84, 84, 3), 90, np.uint8)).save(buf, 'JPEG'); jpg = buf.getvalue()
        w = MINIIMAGENET_SPLIT['train'][0]
        if layout[0].endswith('.npz'):
            (root/'miniimagenet_subset').mkdir()
            part = lambda p: {f'{p}_jpeg': np.frombuffer(jpg, np.uint8), f'{p}_offsets': np.array([0, len(jpg)]),
                              f'{p}_y': np.zeros(1, np.uint8), f'{p}_filenames': np.array([f'{w}_{p}.jpg'])}
            np.savez(root/layout[0], **part('train'), **part('test'), wnids=np.array([w]), meta_split=np.zeros(1, np.uint8))
        else:
            for sub in ('train', 'val'): (root/'miniimagenet'/sub/w).mkdir(parents=True); (root/'miniimagenet'/sub/w/'a.jpg').write_bytes(jpg)
    elif name == 'cub':
        d = make_fake_cub(root, n_classes=2, per_class=4)
        if layout == ('images.txt',): root = d                          # the CUB_200_2011 folder itself
    elif name == 'dogs':
        make_fake_dogs(root/layout[0].rpartition('train_list.mat')[0], classes=('n02085620-Chihuahua',))
    return root


LOAD_KW = {'cub': dict(size=16), 'dogs': dict(size=16)}
LAYOUTS = [(n, l) for n, ds in DATASETS.items() for l in ds.layouts if '.' not in ds.loader]   # the loaders of refilled.data


@pytest.mark.parametrize('name,layout', LAYOUTS, ids=[f'{n}:{"+".join(l)}' for n, l in LAYOUTS])
def test_detection_agrees_with_the_loader(name, layout, tmp_path):
    "Every layout the registry detects is one its loader reads, and where it detects nothing the loader finds nothing."
    load = getattr(refilled.data, DATASETS[name].loader)
    (tmp_path/'empty').mkdir()
    assert not data_available(name, tmp_path/'empty')
    with pytest.raises(FileNotFoundError): load(tmp_path/'empty', **LOAD_KW.get(name, {}))
    root = make_layout(name, layout, tmp_path/'data')
    assert data_available(name, root)
    assert [n for n in DATASETS if data_available(n, root)] == [name]     # and no other data set
    assert len(load(root, **LOAD_KW.get(name, {})).train_y) > 0


def test_detection_needs_every_path_of_a_layout(tmp_path):
    (tmp_path/'stanford_dogs'/'Images').mkdir(parents=True)
    assert not data_available('dogs', tmp_path)
    with pytest.raises(FileNotFoundError): load_dogs(tmp_path)
    (tmp_path/'cifar-100-python').mkdir()                                  # the folder without its `train` file
    assert not data_available('cifar100', tmp_path)
    with pytest.raises(FileNotFoundError): load_cifar100(tmp_path)


def test_image_folder_and_teacher_entries_of_the_registry(tmp_path):
    "The registry's image folder is found where `refilled.tasks.load_imagefolder` reads it; its teachers under `teachers_root`."
    from refilled.tasks import load_imagefolder
    from refilled.core import MissingDataError
    assert {n for n, ds in DATASETS.items() if '.' in ds.loader} == {'cub100_proxy', 'chenyaofo_cifar', 'feat_convnet4'}
    assert not data_available('cub100_proxy', tmp_path)
    with pytest.raises(MissingDataError): load_imagefolder(tmp_path/'cub100_proxy_128')
    for part in ('train', 'test'):
        (tmp_path/'cub100_proxy_128'/part/'000.Bird').mkdir(parents=True)
        for j in range(2): Image.fromarray(np.full((8, 8, 3), 60 * j + 30 * (part == 'test'), np.uint8)).save(tmp_path/'cub100_proxy_128'/part/'000.Bird'/f'{j}.png')
    assert data_available('cub100_proxy', tmp_path)
    assert len(load_imagefolder(tmp_path/'cub100_proxy_128', size=8).train_y) == 2
    assert not data_available('chenyaofo_cifar', tmp_path) and not data_available('feat_convnet4', tmp_path)   # `root` is the teachers' folder
    (tmp_path/'miniimagenet_feat_convnet4').mkdir(); (tmp_path/'miniimagenet_feat_convnet4'/'con-pre.pth').touch()
    assert data_available('feat_convnet4', tmp_path) and 'REFILLED_TEACHERS' not in missing_data_reason('chenyaofo_cifar', tmp_path)
