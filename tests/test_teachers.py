"""Tests of refilled.teachers: checkpoint layouts and errors, strict loading, the Teacher wrapper and its input
conversion, load_teacher, teacher_accuracy, and the public checkpoints against their published accuracy."""
import argparse, hashlib
import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
from refilled.core import InputError, CheckpointError, MissingDataError, teachers_root
from refilled.data import CIFAR100_MEAN, CIFAR100_STD, IMAGENET_MEAN, IMAGENET_STD, MINIIMAGENET_SPLIT
from refilled.backbones import ConvNet4, CifarResNet, create_model
from refilled.distillers import state_dict_hash, create_distiller
from refilled.teachers import (read_state_dict, load_weights, Teacher, PUBLIC_TEACHERS, load_teacher, teacher_accuracy)


@pytest.fixture
def c4():
    "A random ConvNet-4 with 5 classes (84-px ImageNet input by default)."
    torch.manual_seed(0)
    return ConvNet4(5).eval()


def norm(p, mean, std):
    "Normalise pixels in [0, 1] [B, 3, H, W] with per-channel mean and std."
    return (p - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)


def same(a:dict, b:dict)->bool:
    return list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a)


# ---- read_state_dict ---------------------------------------------------------------------------------------------

def _layouts(sd):
    pre = lambda p, d: {f'{p}{k}': v for k, v in d.items()}
    return {'bare': sd, 'state_dict': {'state_dict': sd, 'epoch': 3}, 'model': {'model': sd}, 'params': {'params': sd},
            'net': {'net': sd}, 'student': {'student': sd}, 'nested': {'model': {'state_dict': sd}},
            'dataparallel': {'state_dict': pre('module.', sd)},
            'refilled_best': {'format': 'refilled-checkpoint-v1', 'student': sd, 'model': pre('student.', sd)},
            'refilled_last': {'format': 'refilled-checkpoint-v1', 'model': {**pre('student.', sd), 'projector.weight': torch.ones(2)},
                              'optimizer': {'state': {}, 'param_groups': []}}}


@pytest.mark.parametrize('layout', list(_layouts({})))
def test_every_layout_gives_the_same_state_dict(tmp_path, c4, layout):
    sd = c4.state_dict()
    torch.save(_layouts(sd)[layout], tmp_path/'ck.pth')
    assert same(read_state_dict(tmp_path/'ck.pth'), sd)


def test_key_map_and_module_prefix(tmp_path, c4):
    sd = c4.state_dict()
    torch.save({'params': {k.replace('classifier.', 'FC.'): v for k, v in sd.items()}}, tmp_path/'feat.pth')
    assert same(read_state_dict(tmp_path/'feat.pth', key_map={'FC.': 'classifier.'}), sd)
    keys = list(read_state_dict(tmp_path/'feat.pth', key_map={'encoder.0.': 'a.', 'encoder.': 'b.'}))
    assert (keys[0], keys[7], keys[-1]) == ('a.0.weight', 'b.1.0.weight', 'FC.bias')     # the first match wins
    torch.save({'module.x': torch.ones(1), 'y': torch.ones(1)}, tmp_path/'mixed.pth')   # not every key: kept
    assert list(read_state_dict(tmp_path/'mixed.pth')) == ['module.x', 'y']
    with pytest.raises(InputError, match='key_map must be a dict'): read_state_dict(tmp_path/'feat.pth', key_map=[('FC.', 'c.')])


def _bad_files(d, good):
    (d/'empty.pth').write_bytes(b'')
    (d/'notes.pth').write_text('not weights\n')
    (d/'truncated.pth').write_bytes(good.read_bytes()[:3000])
    (d/'truncated_legacy.pth').write_bytes(b'\x80\x02\x8a\x0alZ\xfc')
    np.savez(d/'arrays.npz', w=np.zeros(3))
    torch.save({'epoch': 3, 'lr': 0.1}, d/'no_tensors.pth')
    torch.save(torch.ones(3), d/'one_tensor.pth')
    torch.save({'args': argparse.Namespace(lr=0.1), 'state_dict': {'w': torch.ones(1)}}, d/'objects.pth')
    (d/'folder.pth').mkdir()


BAD = {'missing.pth': (MissingDataError, 'does not exist'), 'empty.pth': (CheckpointError, 'is empty (0 bytes)'),
       'notes.pth': (CheckpointError, "not a PyTorch checkpoint (it starts with b'not weig"),
       'truncated.pth': (CheckpointError, '(3,000 bytes) is truncated or corrupt'),
       'truncated_legacy.pth': (CheckpointError, 'truncated or corrupt'),
       'arrays.npz': (CheckpointError, 'zip archive but not a PyTorch checkpoint'),
       'no_tensors.pth': (CheckpointError, "holds no named tensors (a dict with keys 'epoch', 'lr')"),
       'one_tensor.pth': (CheckpointError, 'holds no named tensors (a Tensor)'),
       'objects.pth': (CheckpointError, 'weights_only=True refuses to unpickle (argparse.Namespace)'),
       'folder.pth': (CheckpointError, 'is a folder')}


@pytest.mark.parametrize('name', list(BAD))
def test_bad_files_give_one_line_naming_the_file(tmp_path, c4, name):
    torch.save(c4.state_dict(), tmp_path/'good.pth'); _bad_files(tmp_path, tmp_path/'good.pth')
    cls, words = BAD[name]
    with pytest.raises(InputError) as e: read_state_dict(tmp_path/name, what='teacher_ckpt')
    msg = str(e.value)
    assert type(e.value) is cls and words in msg, msg
    assert msg.startswith(f'teacher_ckpt: {tmp_path/name}') and '\n' not in msg
    if cls is MissingDataError: assert isinstance(e.value, FileNotFoundError)


# ---- load_weights ------------------------------------------------------------------------------------------------

def test_load_weights_reports_every_mismatch_at_once_and_loads_nothing():
    src, dst = CifarResNet(20, 100, shortcut='B'), CifarResNet(32, 10, shortcut='A')
    before = {k: v.clone() for k, v in dst.state_dict().items()}
    with pytest.raises(CheckpointError) as e: load_weights(dst, src.state_dict(), what='ckpt r20.pth')
    msg = str(e.value)
    assert msg.startswith('ckpt r20.pth does not fit CifarResNet: 60 missing keys: layer1.3.conv1.weight') and '\n' not in msg
    assert '12 unexpected keys: layer2.0.downsample.0.weight' in msg and '(+9 more)' in msg
    assert '2 shape differences (checkpoint vs model): classifier.weight [100, 64] vs [10, 64], classifier.bias [100] vs [10]' in msg
    assert same(dst.state_dict(), before)


def test_load_weights_tolerates_pre_1_0_files_and_public_head_names(c4):
    old = {k.replace('classifier.', 'fc.'): v for k, v in c4.state_dict().items() if not k.endswith('num_batches_tracked')}
    m = load_weights(ConvNet4(5), old)
    assert all(torch.equal(m.state_dict()[k.replace('fc.', 'classifier.')], v) for k, v in old.items())
    assert int(m.encoder[0][1].num_batches_tracked) == 0


# ---- Teacher -----------------------------------------------------------------------------------------------------

def test_own_input_is_bit_identical(c4):
    t, x = Teacher(c4, size=84), torch.randn(3, 3, 84, 84)
    assert t._convert(x) is x
    assert torch.equal(t.embed(x), c4.embed(x)) and torch.equal(t(x), c4(x))
    assert all(torch.equal(a, b) for a, b in zip(t.forward_features(x)[0], c4.forward_features(x)[0]))
    assert (t.classifier is c4.classifier, t.embed_dim, t.num_classes, t.layer) == (True, 64, 5, 'classifier')


def test_state_dict_is_the_models(c4):
    t = Teacher(c4, size=84)
    assert same(t.state_dict(), c4.state_dict()) and state_dict_hash(t) == state_dict_hash(c4)
    other = ConvNet4(5)
    Teacher(other, size=84).load_state_dict(c4.state_dict())          # the model's names load into the wrapper
    assert same(other.state_dict(), c4.state_dict())
    d = create_distiller('refilled_stage1', ConvNet4(5), t)
    keys = [k for k in d.state_dict() if k.startswith('teacher.')]
    assert keys == ['teacher.' + k for k in c4.state_dict()]          # no 'teacher.model.'
    d.load_state_dict(d.state_dict())
    assert not any(k.startswith('teacher') for k in d.trainable_state_dict())


def test_deepcopy_keeps_the_head_inside_the_copy(c4):
    import copy
    t = copy.deepcopy(Teacher(c4, size=84, input_mean=CIFAR100_MEAN, input_std=CIFAR100_STD))
    assert t.classifier is t.model.classifier and t.classifier is not c4.classifier
    x = torch.randn(2, 3, 32, 32)
    assert torch.equal(t.embed(x), Teacher(c4, size=84, input_mean=CIFAR100_MEAN, input_std=CIFAR100_STD).embed(x))


def test_always_frozen_and_in_eval_mode(c4):
    c4.train()
    t = Teacher(c4, size=84)
    t.train(); d = create_distiller('refilled_stage1', ConvNet4(5), t); d.train()
    assert not t.training and not c4.training and not any(p.requires_grad for p in t.parameters())


def test_adapted_teacher_sees_what_its_own_preprocessing_gives(c4):
    torch.manual_seed(1)
    t = Teacher(c4, size=84, input_mean=CIFAR100_MEAN, input_std=CIFAR100_STD)
    for s, aa in ((32, False), (200, True)):                          # upsampled, and antialiased when shrinking
        pix = torch.rand(4, 3, s, s)
        own = norm(F.interpolate(pix, size=84, mode='bilinear', align_corners=False, antialias=aa), IMAGENET_MEAN, IMAGENET_STD)
        xs = norm(pix, CIFAR100_MEAN, CIFAR100_STD)
        assert torch.allclose(t.embed(xs), c4.embed(own), atol=1e-4) and torch.allclose(t(xs), c4(own), atol=1e-4)
    same_size = Teacher(c4, size=None, input_mean=CIFAR100_MEAN, input_std=CIFAR100_STD)
    pix = torch.rand(2, 3, 50, 50)
    assert torch.allclose(same_size._convert(norm(pix, CIFAR100_MEAN, CIFAR100_STD)), norm(pix, IMAGENET_MEAN, IMAGENET_STD), atol=1e-5)
    x = torch.randn(1, 3, 84, 84)
    assert t.adapt()._convert(x) is x and t.adapt(IMAGENET_MEAN, IMAGENET_STD)._convert(x) is x
    with pytest.raises(InputError, match='give both'): t.adapt(mean=CIFAR100_MEAN)
    with pytest.raises(InputError, match='input_std must be 3 finite numbers'): t.adapt(CIFAR100_MEAN, (0.2, 0.2, 0))


@pytest.mark.skipif(not torch.cuda.is_available(), reason='no CUDA device')
def test_conversion_on_cuda(c4):
    t = Teacher(c4, size=84, input_mean=CIFAR100_MEAN, input_std=CIFAR100_STD).cuda()
    x = torch.randn(2, 3, 32, 32)
    assert torch.allclose(t.embed(x.cuda()).cpu(), Teacher(c4.cpu(), size=84, input_mean=CIFAR100_MEAN,
                                                            input_std=CIFAR100_STD).embed(x), atol=1e-3)


def test_plain_modules_embed_through_a_hook():
    torch.manual_seed(0)
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(48, 16), nn.ReLU(), nn.Linear(16, 4))
    t, x = Teacher(mlp, layer='3', size=4), torch.randn(2, 3, 4, 4)
    assert torch.equal(t.embed(x), mlp[:3](x)) and torch.equal(t(x), mlp(x)) and (t.embed_dim, t.num_classes) == (16, 4)
    mn = torchvision.models.mobilenet_v3_small(num_classes=7)
    tv = Teacher(mn, size=64)
    x = torch.randn(2, 3, 64, 64)
    assert tv.layer == 'classifier.3' and torch.allclose(tv.embed(x), mn.classifier[:3](torch.flatten(mn.avgpool(mn.features(x)), 1)))
    with pytest.raises(InputError, match='needs a refilled.backbones model'): tv.forward_features(x)
    with pytest.raises(InputError, match="layer='9' .*no such module.*its nn.Linear layers: 1, 3"): Teacher(mlp, layer='9')
    with pytest.raises(InputError, match="it is a ReLU"): Teacher(mlp, layer='2')
    with pytest.raises(InputError, match='pass layer='): Teacher(nn.Sequential(nn.Conv2d(3, 4, 3)))
    with pytest.raises(InputError, match='size must be'): Teacher(mlp, layer='3', size=0)


# ---- the catalogue and load_teacher ------------------------------------------------------------------------------

def test_catalogue():
    assert set(PUBLIC_TEACHERS) == {f'chenyaofo_cifar100_resnet{d}' for d in (20, 32, 44, 56)} | {'chenyaofo_cifar10_resnet56', 'feat_convnet4_miniimagenet'}
    for d, top1 in ((20, 68.83), (32, 70.16), (44, 71.63), (56, 72.63)):
        e = PUBLIC_TEACHERS[f'chenyaofo_cifar100_resnet{d}']
        assert (e.model, e.model_kwargs, e.num_classes, e.size, e.source, e.published) == (f'resnet{d}', {'shortcut': 'B'}, 100, 32, 'cifar100', top1)
        assert (e.mean, e.std) == ((0.507, 0.4865, 0.4409), (0.2673, 0.2564, 0.2761))
        assert e.url.startswith('https://github.com/chenyaofo/pytorch-cifar-models/releases/download/resnet/cifar100_resnet')
    c10 = PUBLIC_TEACHERS['chenyaofo_cifar10_resnet56']
    assert (c10.num_classes, c10.published, c10.mean, c10.std) == (10, 94.37, (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010))
    f = PUBLIC_TEACHERS['feat_convnet4_miniimagenet']
    assert (f.model, f.num_classes, f.size, f.key_map, f.mean) == ('convnet4', 64, 84, {'FC.': 'classifier.'}, IMAGENET_MEAN)
    assert f.classes == tuple(sorted(MINIIMAGENET_SPLIT['train'])) and len(f.classes) == 64


def test_registry_names_infer_classes_and_input(tmp_path, c4):
    torch.save({'state_dict': c4.state_dict()}, tmp_path/'c4.pth')
    t = load_teacher('convnet4', tmp_path/'c4.pth')
    assert (t.num_classes, t.size, t.mean, t.std, t.name) == (5, 84, IMAGENET_MEAN, IMAGENET_STD, 'convnet4')
    assert state_dict_hash(t) == state_dict_hash(c4) and t.model is not c4
    torch.save(create_model('resnet8x4', 3).state_dict(), tmp_path/'r8.pth')
    r8 = load_teacher('resnet8x4', tmp_path/'r8.pth', input_mean=IMAGENET_MEAN, input_std=IMAGENET_STD, size=40)
    assert (r8.num_classes, r8.mean, r8.size, r8.embed_dim, r8.input_mean) == (3, CIFAR100_MEAN, 40, 256, IMAGENET_MEAN)
    m = load_teacher(ConvNet4(5), tmp_path/'c4.pth')                    # a Backbone instance: defaults of its class
    assert (m.size, m.mean) == (84, IMAGENET_MEAN) and state_dict_hash(m) == state_dict_hash(c4)


def test_torchvision_and_modules(tmp_path):
    torch.manual_seed(0)
    r18 = torchvision.models.resnet18(num_classes=7)
    torch.save(r18.state_dict(), tmp_path/'r18.pth')
    t = load_teacher('torchvision:resnet18', tmp_path/'r18.pth')
    r18.eval(); x = torch.randn(2, 3, 64, 64)
    feats = torch.flatten(r18.avgpool(r18.layer4(r18.layer3(r18.layer2(r18.layer1(r18.maxpool(r18.relu(r18.bn1(r18.conv1(F.interpolate(x, size=224, mode='bilinear', align_corners=False)))))))))), 1)
    assert (t.num_classes, t.embed_dim, t.layer, t.size, t.mean) == (7, 512, 'fc', 224, IMAGENET_MEAN)
    assert torch.allclose(t.embed(x), feats, atol=1e-5)
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(48, 16), nn.ReLU(), nn.Linear(16, 4))
    torch.save({'model': {f'module.{k}': v for k, v in mlp.state_dict().items()}}, tmp_path/'mlp.pth')
    target = nn.Sequential(nn.Flatten(), nn.Linear(48, 16), nn.ReLU(), nn.Linear(16, 4))
    tm = load_teacher(target, tmp_path/'mlp.pth', layer='3', size=4)
    assert tm.model is target and same(target.state_dict(), mlp.state_dict())
    untouched = {k: v.clone() for k, v in target.state_dict().items()}
    with pytest.raises(InputError, match='no such module'): load_teacher(target, tmp_path/'r18.pth', layer='7')
    assert same(target.state_dict(), untouched)                          # a bad layer fails before loading


def test_load_teacher_errors(tmp_path, c4, monkeypatch):
    torch.save(c4.state_dict(), tmp_path/'c4.pth')
    cases = [(lambda: load_teacher('resnet57', tmp_path/'c4.pth'), InputError, "model 'resnet57' is unknown; accepted: a public teacher (chenyaofo_cifar100_resnet20"),
             (lambda: load_teacher('torchvision:resnet19', tmp_path/'c4.pth'), InputError, "torchvision has no classification model 'resnet19'"),
             (lambda: load_teacher('convnet4'), InputError, 'needs ckpt='),
             (lambda: load_teacher(3), InputError, 'a name (str) or an nn.Module'),
             (lambda: load_teacher('convnet4', tmp_path/'c4.pth', model_kwargs=['hidden']), InputError, 'model_kwargs must be a dict'),
             (lambda: load_teacher('convnet4', tmp_path/'c4.pth', model_kwargs={'depth': 3}), InputError, "does not take ['depth']"),
             (lambda: load_teacher(ConvNet4(5), tmp_path/'c4.pth', model_kwargs={'hidden': 3}), InputError, 'not to an nn.Module'),
             (lambda: load_teacher(ConvNet4(5), num_classes=7), InputError, 'num_classes=7 but the final layer of ConvNet4 has 5'),
             (lambda: load_teacher('convnet4', tmp_path/'c4.pth', num_classes=64), CheckpointError, 'classifier.weight [5, 64] vs [64, 64]'),
             (lambda: load_teacher('resnet20', tmp_path/'c4.pth'), CheckpointError, 'does not fit CifarResNet: 95 missing keys'),
             (lambda: load_teacher('torchvision:resnet18', tmp_path/'c4.pth'), CheckpointError, 'cannot infer num_classes, none of fc.weight'),
             (lambda: load_teacher('convnet4', tmp_path/'nothing.pth'), MissingDataError, 'nothing.pth does not exist')]
    for f, cls, words in cases:
        with pytest.raises(InputError) as e: f()
        assert type(e.value) is cls and words in str(e.value) and '\n' not in str(e.value), str(e.value)
    monkeypatch.setenv('REFILLED_TEACHERS', str(tmp_path/'empty'))
    with pytest.raises(MissingDataError, match=r'no checkpoint at .*empty/chenyaofo_cifar/cifar100_resnet56.pth.*releases/download'):
        load_teacher('chenyaofo_cifar100_resnet56')


def test_teacher_accuracy_uses_the_teachers_own_input(tmp_path, c4):
    imgs = torch.randint(0, 256, (6, 84, 84, 3), dtype=torch.uint8)
    with torch.no_grad(): y = c4(norm(imgs.permute(0, 3, 1, 2).float() / 255, IMAGENET_MEAN, IMAGENET_STD)).argmax(1)
    t = Teacher(c4, size=84, input_mean=CIFAR100_MEAN, input_std=CIFAR100_STD)   # adapted: irrelevant here
    assert teacher_accuracy(t, imgs, y) == 100.0 and teacher_accuracy(t, imgs.permute(0, 3, 1, 2), y.numpy(), batch_size=4) == 100.0
    assert teacher_accuracy(t, imgs.numpy(), (y + 1) % 5) == 0.0
    for x, yy, words in ((imgs.float(), y, 'must be uint8'), (imgs, y + 5, "teacher's classes 0..4"), (imgs, y[:3], '6 integer labels'),
                         (imgs[:0], y[:0], 'no images')):
        with pytest.raises(InputError, match=words): teacher_accuracy(t, x, yy)
    with pytest.raises(InputError, match='must be a Teacher'): teacher_accuracy(c4, imgs, y)


# ---- the public checkpoints --------------------------------------------------------------------------------------

@pytest.mark.needs_data('chenyaofo_cifar', 'feat_convnet4')
def test_public_files_are_the_catalogued_bytes():
    for name, e in PUBLIC_TEACHERS.items():
        assert hashlib.sha256((teachers_root()/e.file).read_bytes()).hexdigest() == e.sha256, name


# The published top-1 of chenyaofo's ResNet-20 on the full 10,000-image test split (within 0.05) is asserted by
# nbs/02b_teachers.ipynb, which `make test` runs; the other three by its `#| slow` cell.


@pytest.mark.needs_data('chenyaofo_cifar')
def test_catalogue_class_count_is_checked_against_the_checkpoint(tmp_path):
    "A public teacher is built with its catalogued class count: a checkpoint with another head is refused, not adopted."
    torch.save(create_model('convnet4', 7).state_dict(), tmp_path/'seven.pt')
    with pytest.raises(CheckpointError, match=r'classifier.weight.*\[7, 64\].*\[64, 64\]|classifier.weight.*\(7, 64\).*\(64, 64\)'):
        load_teacher('feat_convnet4_miniimagenet', tmp_path/'seven.pt')


@pytest.mark.needs_data('chenyaofo_cifar')
def test_chenyaofo_cifar10_resnet56_loads():
    t = load_teacher('chenyaofo_cifar10_resnet56')
    assert (t.num_classes, t.embed_dim, t.size, t.classes[9]) == (10, 64, 32, 'truck')
    assert t.embed(torch.randn(2, 3, 32, 32)).shape == (2, 64)
    with pytest.raises(CheckpointError, match='12 unexpected keys: layer2.0.downsample'):   # option-A registry model
        load_teacher('resnet56', teachers_root()/PUBLIC_TEACHERS['chenyaofo_cifar10_resnet56'].file)


@pytest.mark.needs_data('feat_convnet4')
def test_feat_convnet4_loads_from_its_pre_1_0_file():
    t = load_teacher('feat_convnet4_miniimagenet')
    raw = torch.load(teachers_root()/PUBLIC_TEACHERS['feat_convnet4_miniimagenet'].file, weights_only=True)['params']
    assert not any(k.endswith('num_batches_tracked') for k in raw)
    sd, live, tiny = t.state_dict(), t.model.state_dict(), torch.finfo(torch.float32).tiny
    assert (t.embed_dim, t.num_classes, t.size) == (64, 64, 84)
    for k, v in raw.items():                     # reported: the file's bytes; computed with: those, subnormals zeroed
        k = k.replace('FC.', 'classifier.')
        assert torch.equal(sd[k], v), k
        assert torch.equal(live[k], torch.where(v.abs() < tiny, torch.zeros_like(v), v)), k
    assert (live['encoder.3.1.running_var'] != raw['encoder.3.1.running_var']).any()   # this file does hold some


@pytest.mark.needs_data('feat_convnet4', 'miniimagenet')
def test_feat_convnet4_on_the_seen_classes(mini):
    t = load_teacher('feat_convnet4_miniimagenet')
    seen = mini.split_classes('train')
    assert [mini.class_names[c] for c in seen] == list(t.classes)
    keep = np.isin(mini.test_y, seen)
    acc = teacher_accuracy(t, mini.test_x[keep], np.searchsorted(seen, mini.test_y[keep]))
    assert keep.sum() == 640 and 38 <= acc <= 46, acc                    # measured 42.0 % (chance 1.6 %)


@pytest.mark.needs_data('cifar100', 'feat_convnet4')
def test_feat_convnet4_adapted_to_cifar_student_batches(cifar):
    feat = load_teacher('feat_convnet4_miniimagenet')
    adapted = load_teacher('feat_convnet4_miniimagenet', input_mean=CIFAR100_MEAN, input_std=CIFAR100_STD)
    pix = torch.from_numpy(np.array(cifar.test_x[::1000])).permute(0, 3, 1, 2).float() / 255
    own = norm(F.interpolate(pix, size=84, mode='bilinear', align_corners=False), IMAGENET_MEAN, IMAGENET_STD)
    with torch.no_grad():
        assert torch.allclose(adapted.embed(norm(pix, CIFAR100_MEAN, CIFAR100_STD)), feat.embed(own), atol=1e-4)
