"Tests of refilled.backbones: the registry, the embed/classifier/forward_features interface, counts, layouts, checkpoints."
import copy
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from refilled.backbones import (MODELS, PUBLISHED_PARAMS, INPUT_SIZE, Backbone, WideResNet, CifarResNet, MobileNetV1,
                                MobileNetV2, ConvNet4, ResNet12, create_model, list_models, count_params, param_table,
                                format_param_table)

EXPECTED = ['wrn_40_2', 'wrn_16_2', 'wrn_40_1', 'wrn_16_1', 'wrn_28_4', 'wrn_16_4', 'wrn_28_2', 'resnet14', 'resnet32',
            'resnet50', 'resnet110', 'resnet20', 'resnet56', 'resnet8x4', 'resnet32x4', 'mobilenet_v1', 'mobilenet_v1_075',
            'mobilenet_v1_050', 'mobilenet_v1_025', 'mobilenet_v2',
            'resnet34', 'convnet4', 'resnet12']
# spatial size of each stage output at the model's input size, and the embedding dimension
STAGES = {**{n: ([32, 16, 8], 64 * int(n.split('_')[2])) for n in EXPECTED if n.startswith('wrn')},
          **{f'resnet{d}': ([32, 16, 8], 64) for d in (14, 20, 32, 44, 50, 56, 110)},
          'resnet8x4': ([32, 16, 8], 256), 'resnet32x4': ([32, 16, 8], 256),
          'mobilenet_v1': ([112, 56, 28, 14, 7], 1024), 'mobilenet_v2': ([16, 8, 4, 2], 1280),
          **{f'mobilenet_v1_{w}': ([112, 56, 28, 14, 7], d) for w, d in (('075', 768), ('050', 512), ('025', 256))},
          'resnet34': ([56, 28, 14, 7], 512), 'convnet4': ([42, 21, 10, 5], 64), 'resnet12': ([42, 21, 10, 5], 640)}


def test_registry_names():
    assert set(EXPECTED) <= set(list_models()) and list_models() == list(MODELS)
    with pytest.raises(ValueError, match='unknown model') as e: create_model('wrn_10_10', 100)
    assert all(n in str(e.value) for n in EXPECTED)


@pytest.mark.parametrize('name', list_models())
def test_interface(name):
    torch.manual_seed(0)
    m = create_model(name, 13)
    assert isinstance(m, Backbone) and isinstance(m.classifier, nn.Linear)
    assert m.classifier.out_features == 13 and m.classifier.in_features == m.embed_dim == STAGES[name][1]
    s = INPUT_SIZE.get(name, 32)
    x = torch.randn(3, 3, s, s)
    m.eval()
    with torch.no_grad():
        feats, emb = m.forward_features(x)
        assert [f.shape[-1] for f in feats] == STAGES[name][0] and all(f.shape[-2] == f.shape[-1] for f in feats)
        assert emb.shape == (3, m.embed_dim)
        pooled = feats[-1].amax((2, 3)) if name == 'convnet4' else feats[-1].mean((2, 3))
        torch.testing.assert_close(pooled, emb, atol=1e-5, rtol=1e-5)      # emb pools the last stage map
        torch.testing.assert_close(m.embed(x), emb)
        logits = m(x)
        torch.testing.assert_close(logits, m.classifier(emb))
        assert logits.shape == (3, 13)
        if name != 'resnet12': assert (emb >= 0).all()                     # post-ReLU embedding
        # channels_last: same outputs, and the layout is kept through the stages
        mc = copy.deepcopy(m).to(memory_format=torch.channels_last)
        xc = x.contiguous(memory_format=torch.channels_last)
        fc, ec = mc.forward_features(xc)
        torch.testing.assert_close(mc(xc), logits, atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(ec, emb, atol=1e-4, rtol=1e-4)
        assert all(f.is_contiguous(memory_format=torch.channels_last) for f in fc)


@pytest.mark.parametrize('name', list_models())
def test_channels_last_training_step_reaches_every_parameter(name):
    torch.manual_seed(1)
    m = create_model(name, 5).to(memory_format=torch.channels_last).train()
    s = INPUT_SIZE.get(name, 32)
    x = torch.randn(4, 3, s, s).contiguous(memory_format=torch.channels_last)
    loss = F.cross_entropy(m(x), torch.tensor([0, 1, 2, 3]))
    loss.backward()
    missing = [n for n, p in m.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing, missing


def wrn_count(d, k, c, bias=False):
    "Closed-form parameter count of WRN-d-k (pre-activation blocks, 1x1 shortcut when the width changes)."
    n, ch, b = (d - 4) // 6, [16, 16 * k, 32 * k, 64 * k], int(bias)
    p, cin = 27 * 16 + 16 * b, 16
    for g in (1, 2, 3):
        for i in range(n):
            ci = cin if i == 0 else ch[g]
            p += 2 * ci + 9 * ci * ch[g] + ch[g] * b + 2 * ch[g] + 9 * ch[g] ** 2 + ch[g] * b
            if ci != ch[g]: p += ci * ch[g] + ch[g] * b
        cin = ch[g]
    return p + 2 * ch[3] + ch[3] * c + c


def resnet_count(d, c, widths=(16, 16, 32, 64), option_b=False):
    "Closed-form parameter count of a CIFAR ResNet with basic blocks."
    n, p, cin = (d - 2) // 6, 27 * widths[0] + 2 * widths[0], widths[0]
    for s, w in enumerate(widths[1:], 1):
        for i in range(n):
            ci = cin if i == 0 else w
            p += 9 * ci * w + 2 * w + 9 * w * w + 2 * w
            if option_b and i == 0 and (s > 1 or ci != w): p += ci * w + 2 * w   # 1x1 conv + BN shortcut
        cin = w
    return p + widths[3] * c + c


@pytest.mark.parametrize('name', [n for n in EXPECTED if n.startswith('wrn')])
@pytest.mark.parametrize('classes', [10, 100])
def test_wrn_counts_closed_form(name, classes):
    _, d, k = name.split('_')
    assert count_params(create_model(name, classes)) == wrn_count(int(d), int(k), classes)
    assert count_params(create_model(name, classes, layout='gkd')) == wrn_count(int(d), int(k), classes, bias=True)


@pytest.mark.parametrize('d', [14, 20, 32, 44, 50, 56, 110])
def test_resnet_counts_closed_form(d):
    assert count_params(create_model(f'resnet{d}', 100)) == resnet_count(d, 100)


def test_resnetx4_counts_closed_form():
    assert count_params(create_model('resnet8x4', 100)) == resnet_count(8, 100, (32, 64, 128, 256), True)
    assert count_params(create_model('resnet32x4', 100)) == resnet_count(32, 100, (32, 64, 128, 256), True)


@pytest.mark.parametrize('name', sorted(PUBLISHED_PARAMS))
def test_published_parameter_counts(name):
    nc, kw, pub, _ = PUBLISHED_PARAMS[name]
    m = create_model(name, nc or 1, **kw)
    n = count_params(m) - (count_params(m.classifier) if nc is None else 0)
    unit = 10 ** -len(pub.partition('.')[2])                 # met to the last printed digit
    assert abs(n / 1e6 - float(pub)) < unit, (name, n, pub)


@pytest.mark.parametrize('alpha,pub', [(1, 4.2), (0.75, 2.6), (0.5, 1.3), (0.25, 0.5)])
def test_mobilenet_v1_widths(alpha, pub):
    m = create_model('mobilenet_v1', 1000, width_mult=alpha)
    assert abs(count_params(m) / 1e6 - pub) < 0.05 and m.embed_dim == int(1024 * alpha)
    assert m.conv1.out_channels == int(32 * alpha)


@pytest.mark.parametrize('depth,width,pub', [(40, 4, 8.9), (16, 8, 11.0), (28, 10, 36.5)])
def test_wrn_paper_counts(depth, width, pub):
    assert abs(count_params(WideResNet(depth, width, 10)) / 1e6 - pub) < 0.1


def test_param_table():
    rows = param_table()
    assert [r['model'] for r in rows] == list_models()
    r = {r['model']: r for r in rows}
    assert r['wrn_40_2']['params'] == 2_255_156 and r['wrn_40_2']['published'] == '2.25'
    assert r['resnet14']['published'] is None
    txt = format_param_table(rows)
    assert txt.count('\n') == len(rows) + 1 and '| resnet32x4 | 256 | 7,433,860 | 7.43 | 100 |' in txt and '(100 classes)' in txt


# ---------------------------------------------------------------- public checkpoint layouts
def bn(p): return [f'{p}.{s}' for s in ('weight', 'bias', 'running_mean', 'running_var', 'num_batches_tracked')]


def repdistiller_resnet_keys(depth, widths):
    "State-dict keys of RepDistiller's models/resnet.py ResNet(depth, widths, 'basicblock')."
    n, keys, cin = (depth - 2) // 6, ['conv1.weight'] + bn('bn1'), widths[0]
    for s, w in enumerate(widths[1:], 1):
        for i in range(n):
            p = f'layer{s}.{i}'
            keys += [f'{p}.conv1.weight'] + bn(f'{p}.bn1') + [f'{p}.conv2.weight'] + bn(f'{p}.bn2')
            if i == 0 and (s > 1 or cin != w): keys += [f'{p}.downsample.0.weight'] + bn(f'{p}.downsample.1')
        cin = w
    return keys + ['fc.weight', 'fc.bias']


def repdistiller_wrn_keys(depth, k):
    "State-dict keys of RepDistiller's models/wrn.py WideResNet(depth, widen_factor=k)."
    n, ch, keys = (depth - 4) // 6, [16, 16 * k, 32 * k, 64 * k], ['conv1.weight']
    for g in (1, 2, 3):
        for i in range(n):
            p = f'block{g}.layer.{i}'
            keys += bn(f'{p}.bn1') + [f'{p}.conv1.weight'] + bn(f'{p}.bn2') + [f'{p}.conv2.weight']
            if i == 0 and ch[g - 1] != ch[g]: keys.append(f'{p}.convShortcut.weight')
    return keys + bn('bn1') + ['fc.weight', 'fc.bias']


def repdistiller_mbv2_keys():
    "State-dict keys of RepDistiller's models/mobilenetv2.py MobileNetV2."
    keys = ['conv1.0.weight'] + bn('conv1.1')
    for b, n in enumerate((1, 2, 3, 4, 3, 3, 1)):
        for i in range(n):
            for j in (0, 3, 6): keys += [f'blocks.{b}.{i}.conv.{j}.weight'] + bn(f'blocks.{b}.{i}.conv.{j + 1}')
    return keys + ['conv2.0.weight'] + bn('conv2.1') + ['classifier.0.weight', 'classifier.0.bias']


def to_repdistiller(sd, head):
    return {k.replace('classifier.', head, 1) if k.startswith('classifier.') else k: v for k, v in sd.items()}


@pytest.mark.parametrize('name,keys,head', [('resnet8x4', repdistiller_resnet_keys(8, (32, 64, 128, 256)), 'fc.'),
                                            ('resnet32x4', repdistiller_resnet_keys(32, (32, 64, 128, 256)), 'fc.'),
                                            ('wrn_40_2', repdistiller_wrn_keys(40, 2), 'fc.'),
                                            ('wrn_16_1', repdistiller_wrn_keys(16, 1), 'fc.'),
                                            ('mobilenet_v2', repdistiller_mbv2_keys(), 'classifier.0.')])
def test_repdistiller_checkpoints_load(name, keys, head):
    src = create_model(name, 100)
    sd = to_repdistiller(src.state_dict(), head)
    assert sorted(sd) == sorted(keys)                        # exactly RepDistiller's names
    for v in sd.values():
        if v.is_floating_point(): v.normal_()                # make the weights distinguishable
    dst = create_model(name, 100)
    dst.load_state_dict({k: v.clone() for k, v in sd.items()})        # strict
    for (k, v), w in zip(dst.state_dict().items(), sd.values()): assert torch.equal(v, w), k
    wrapper = nn.Module(); wrapper.student = create_model(name, 100)   # the head rename also works nested
    wrapper.load_state_dict({f'student.{k}': v.clone() for k, v in sd.items()})
    torch.testing.assert_close(wrapper.student.classifier.weight, dst.classifier.weight)


def test_repdistiller_shapes():
    sd = create_model('resnet8x4', 100).state_dict()
    assert sd['conv1.weight'].shape == (32, 3, 3, 3) and sd['layer1.0.downsample.0.weight'].shape == (64, 32, 1, 1)
    assert sd['layer3.0.conv1.weight'].shape == (256, 128, 3, 3) and sd['classifier.weight'].shape == (100, 256)
    sd = create_model('mobilenet_v2', 100).state_dict()   # mobile_half: width 0.5, T = 6
    assert sd['conv1.0.weight'].shape == (16, 3, 3, 3) and sd['blocks.0.0.conv.0.weight'].shape == (16, 16, 1, 1)
    assert sd['blocks.1.0.conv.0.weight'].shape == (48, 8, 1, 1) and sd['conv2.0.weight'].shape == (1280, 160, 1, 1)


def test_torchvision_resnet34_state_dict_loads():
    import torchvision
    tv = torchvision.models.resnet34(weights=None, num_classes=200)
    m = create_model('resnet34', 200)
    m.load_state_dict(tv.state_dict())
    tv.eval(); m.eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad(): torch.testing.assert_close(m(x), tv(x))


# ---------------------------------------------------------------- layouts and options
def test_option_a_shortcut_is_parameter_free_subsample_pad():
    m = create_model('resnet32', 10)
    assert not any('downsample' in k or 'shortcut' in k for k in m.state_dict())
    blk = m.layer3[0].eval()
    nn.init.zeros_(blk.bn2.weight); nn.init.zeros_(blk.bn2.bias)
    x = torch.randn(2, 32, 16, 16)
    with torch.no_grad(): y = blk(x)
    torch.testing.assert_close(y[:, 16:48], F.relu(x[:, :, ::2, ::2]))
    assert (y[:, :16] == 0).all() and (y[:, 48:] == 0).all()


def test_wrn_gkd_layout():
    m = WideResNet(16, 2, 10, layout='gkd')
    b = m.block2.layer[0]
    assert b.conv1.stride == (1, 1) and b.conv2.stride == (2, 2) and b.conv1.bias is not None
    assert m.conv1.bias is not None and b.convShortcut.bias is not None
    s = WideResNet(16, 2, 10)
    assert s.block2.layer[0].conv1.stride == (2, 2) and s.block2.layer[0].conv1.bias is None
    # the gkd shortcut sees the raw input: with zeroed residual branch, the output is the 1x1 conv of x itself
    b.eval(); nn.init.zeros_(b.conv2.weight); nn.init.zeros_(b.conv2.bias)
    x = torch.randn(2, 32, 8, 8)
    with torch.no_grad(): torch.testing.assert_close(b(x), b.convShortcut(x))
    with pytest.raises(ValueError, match='layout must be'): WideResNet(16, 2, layout='meliketoy')


def test_wrn_dropout():
    x = torch.randn(4, 3, 32, 32)
    m = create_model('wrn_16_1', 10, dropout=0.3).train()
    torch.manual_seed(0); a = m(x)
    torch.manual_seed(1); b = m(x)
    assert not torch.allclose(a, b)
    m0 = create_model('wrn_16_1', 10).train()                    # default 0: deterministic in train mode
    assert torch.equal(m0(x), m0(x)) and m0.block1.layer[0].dropout == 0
    m.eval(); assert torch.equal(m(x), m(x))
    with pytest.raises(ValueError, match='dropout must be in'): create_model('wrn_16_1', 10, dropout=1.5)


def test_resnet12_drop_rate():
    m = ResNet12(5, drop_rate=0.1).train()
    x = torch.randn(2, 3, 84, 84)
    torch.manual_seed(0); a = m.embed(x)
    torch.manual_seed(1); b = m.embed(x)
    assert not torch.allclose(a, b)
    m.eval(); assert torch.equal(m.embed(x), m.embed(x))


def test_convnet4_and_resnet12_sizes():
    c = ConvNet4(64)
    assert count_params(c.encoder) == (27 * 64 + 64 + 128) + 3 * (64 * 64 * 9 + 64 + 128)   # conv (with bias) + BN
    assert count_params(c) - count_params(c.classifier) == 113_088 and c.embed_dim == 64
    r = ResNet12(64)
    assert count_params(r) - count_params(r.classifier) == 12_424_320 and r.embed_dim == 640


@pytest.mark.parametrize('call,err,match', [
    (lambda: create_model('resnet32', 100, dropout=0.3), TypeError, "resnet32 does not take \\['dropout'\\]"),
    (lambda: create_model('resnet8x4', 100, shortcut='A'), TypeError, 'does not take'),
    (lambda: create_model('wrn_16_1', 0), ValueError, 'num_classes must be a positive integer'),
    (lambda: create_model('wrn_16_1', 10.0), ValueError, 'num_classes must be a positive integer'),
    (lambda: create_model('mobilenet_v1', 10, width_mult=-1), ValueError, 'width_mult must be'),
    (lambda: WideResNet(18, 1), ValueError, '6n\\+4'),
    (lambda: CifarResNet(18), ValueError, '6n\\+2'),
    (lambda: CifarResNet(20, shortcut='C'), ValueError, "shortcut must be 'A' or 'B'"),
])
def test_bad_arguments(call, err, match):
    with pytest.raises(err, match=match): call()


def test_mobilenet_v1_widths_in_registry():
    for a, d in ((1, 1024), (0.75, 768), (0.5, 512), (0.25, 256)):
        m = create_model('mobilenet_v1', 100, width_mult=a)
        assert m.embed_dim == d and m.embed(torch.randn(1, 3, 64, 64)).shape == (1, d)
    assert MobileNetV2(10, width_mult=0.75).embed_dim == 1280 and MobileNetV2(10, width_mult=1.5).embed_dim == 1920


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA device')
@pytest.mark.parametrize('name', ['wrn_16_1', 'resnet32', 'resnet8x4', 'mobilenet_v2', 'mobilenet_v1', 'convnet4', 'resnet12',
                                  'resnet34'])
def test_cuda_matches_cpu(name, monkeypatch):
    monkeypatch.setattr(torch.backends.cudnn, 'allow_tf32', False)
    torch.manual_seed(0)
    m = create_model(name, 7).eval()
    s = min(INPUT_SIZE.get(name, 32), 96)
    x = torch.randn(3, 3, s, s)
    with torch.no_grad():
        ref = m(x)
        g = copy.deepcopy(m).cuda().to(memory_format=torch.channels_last)
        out = g(x.cuda().contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(out.cpu(), ref, atol=1e-3, rtol=1e-3)
    g.train(); F.cross_entropy(g(x.cuda()), torch.tensor([0, 1, 2], device='cuda')).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in g.parameters())
