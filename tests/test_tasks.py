"Tests of refilled.tasks: image folders (layouts, decoding, conversions, every error, caches), sources, student tasks, GKD presets."
import os, re, shutil, warnings
from pathlib import Path
import numpy as np
import pytest
import torch
from PIL import Image
import torchvision.transforms as T
from torchvision.datasets import ImageFolder
from torchvision.datasets.folder import IMG_EXTENSIONS as TV_IMG_EXTENSIONS

import refilled.tasks as tasks
from refilled.core import InputError, DataError, MissingDataError, data_root
from refilled.data import (CIFAR100_MEAN, CIFAR100_STD, IMAGENET_MEAN, IMAGENET_STD, TaskData, BatchLoader, load_cifar100,
                           gkd_split, make_task, _decode)
from refilled.tasks import (IMG_EXTENSIONS, SOURCES, Source, FolderArrays, Task, load_imagefolder, load_source,
                            make_student_task, gkd_task)

def make_folder(d:Path, files:dict, seed=0)->Path:
    "Write images {relative path: (w, h, mode)} of random pixels under `d` (no two files alike); returns `d`."
    g = np.random.default_rng(seed)
    for rel, (w, h, mode) in files.items():
        (d/rel).parent.mkdir(parents=True, exist_ok=True)
        im = Image.fromarray(g.integers(0, 256, (h, w, 3), dtype=np.uint8))
        (im.quantize(16) if mode == 'P' else im.convert(mode)).save(d/rel)
    return d


def layout(classes=('a', 'b'), n=3, parts=('',), ext='png', size=(20, 20)):
    return {f'{p}/{c}/{i}.{ext}'.lstrip('/'): (*size, 'RGB') for p in parts for c in classes for i in range(n)}


def tv(s, r): return T.Compose([T.Resize(r), T.CenterCrop(s)])


@pytest.fixture(autouse=True)
def fresh_cache():
    "Each test starts with an empty in-process cache (tests reuse tmp paths' names)."
    tasks._CACHE.clear(); yield; tasks._CACHE.clear()


# ---------------------------------------------------------------- layouts and decoding
def test_split_layout_labels_files_and_pixels_match_torchvision(tmp_path):
    "train/test layout: sorted class names, labels and file order as ImageFolder's; pixels as Resize + CenterCrop."
    d = make_folder(tmp_path/'f', {**layout(('cat', 'dog', 'emu'), 4, ('train',), 'JPG', (40, 30)),
                                   **layout(('cat', 'dog', 'emu'), 2, ('test',), 'png', (25, 50))})
    (d/'train'/'cat'/'.DS_Store').write_text('x'); (d/'train'/'cat'/'._0.png').write_bytes(b'\0\5\26\7')  # hidden: skipped
    (d/'train'/'dog'/'notes.txt').write_text('x')                                                          # not an image
    (d/'train'/'emu'/'.ipynb_checkpoints').mkdir(); (d/'train'/'emu'/'.ipynb_checkpoints'/'x.png').write_text('x')
    (d/'train'/'emu'/'sub').mkdir(); make_folder(d/'train'/'emu'/'sub', {'z.jpeg': (30, 30, 'RGB')}, seed=9)  # nested: found
    fa = load_imagefolder(d, size=16, resize=18)
    assert isinstance(fa, FolderArrays) and fa.class_names == ('cat', 'dog', 'emu') and fa.val_x is None
    assert fa.train_x.shape == (13, 16, 16, 3) and fa.test_x.shape == (6, 16, 16, 3) and fa.train_x.dtype == np.uint8
    assert fa.train_y.dtype == np.int64 and fa.train_y.tolist() == [0]*4 + [1]*4 + [2]*5 and fa.test_y.tolist() == [0, 0, 1, 1, 2, 2]
    visible = lambda p: not any(s.startswith('.') for s in Path(p).relative_to(d).parts) and p.lower().endswith(IMG_EXTENSIONS)
    ref = ImageFolder(d/'train', is_valid_file=visible)
    assert ref.classes == list(fa.class_names)
    assert [(Path(p).relative_to(d).as_posix(), t) for p, t in ref.samples] == list(zip(fa.train_files, fa.train_y.tolist()))
    for i in (0, 7, 12):
        with Image.open(d/fa.train_files[i]) as im: assert np.array_equal(fa.train_x[i], np.asarray(tv(16, 18)(im.convert('RGB'))))
    with Image.open(d/fa.test_files[3]) as im: assert np.array_equal(fa.test_x[3], np.asarray(tv(16, 18)(im.convert('RGB'))))
    assert not fa.train_x.flags.writeable and not fa.test_y.flags.writeable
    assert IMG_EXTENSIONS == TV_IMG_EXTENSIONS


@pytest.mark.parametrize('wh,size,resize', [((50, 30), 24, 27), ((30, 50), 24, 27), ((37, 37), 20, 23), ((20, 20), 20, 20),
                                            ((300, 200), 64, 73), ((17, 90), 16, 16), ((52, 30), 24, 28), ((300, 400), 224, 256),
                                            ((130, 97), 84, 92)])
def test_decode_is_resize_then_center_crop(tmp_path, wh, size, resize):
    "Any shape and size: exactly torchvision's Resize(resize) + CenterCrop(size)."
    f = make_folder(tmp_path, {'x.png': (*wh, 'RGB')})/'x.png'
    x = tasks._decode_image(f, size, resize)[0]
    with Image.open(f) as im: assert np.array_equal(x, np.asarray(tv(size, resize)(im)))
    # the paper's loaders (load_cub, load_dogs) store Resize(resize) + CenterCrop(resize); load_source cuts the centre
    # size x size out of that: Resize + CenterCrop(resize) + CenterCrop(size), the same pixels when 4 divides resize - size
    sq = _decode(f, size=resize)
    crop = tasks._center_crop(FolderArrays(sq[None], None, sq[None], None, ()), size).train_x[0]
    with Image.open(f) as im: assert np.array_equal(crop, np.asarray(T.Compose([T.Resize(resize), T.CenterCrop(resize), T.CenterCrop(size)])(im)))
    if (resize - size) % 4 == 0: assert np.array_equal(crop, x)


def test_flat_layout_split_is_seeded_per_class_and_disjoint(tmp_path):
    d = make_folder(tmp_path/'f', {**layout(('ant', 'bee'), 10), **layout(('cow',), 2)})
    a = load_imagefolder(d, size=8, test_frac=0.3)
    assert np.bincount(a.test_y).tolist() == [3, 3, 1] and np.bincount(a.train_y).tolist() == [7, 7, 1]
    assert not set(a.train_files) & set(a.test_files) and len(set(a.train_files) | set(a.test_files)) == 22
    assert all(f.startswith(a.class_names[y]) for f, y in zip(a.train_files + a.test_files, np.r_[a.train_y, a.test_y]))
    tasks._CACHE.clear()
    assert load_imagefolder(d, size=8, test_frac=0.3).test_files == a.test_files          # same seed, same split
    assert load_imagefolder(d, size=8, test_frac=0.3, seed=1).test_files != a.test_files
    # one class's split does not depend on the others: adding a class leaves 'ant' and 'bee' as they were
    make_folder(d, layout(('dog',), 4), seed=5)
    b = load_imagefolder(d, size=8, test_frac=0.3)
    assert [f for f in b.test_files if not f.startswith('dog')] == list(a.test_files)


def test_own_val_split(tmp_path):
    d = make_folder(tmp_path/'f', layout(('a', 'b'), 3, ('train', 'val', 'test')))
    a = load_imagefolder(d, size=8)
    assert a.val_y.tolist() == [0, 0, 0, 1, 1, 1] and a.val_files[3] == 'val/b/0.png' and a.val_x.shape == (6, 8, 8, 3)
    assert a.train_files[0] == 'train/a/0.png' and a.test_files[-1] == 'test/b/2.png'


def test_conversions_are_said_once_with_counts(tmp_path):
    "Grayscale, CMYK, RGBA and palette images become RGB; one warning for the folder, with the count per mode."
    d = make_folder(tmp_path/'f', {'a/rgb.png': (20, 20, 'RGB'), 'a/g1.png': (20, 20, 'L'), 'a/g2.png': (20, 20, 'L'),
                                   'b/c.jpg': (20, 20, 'CMYK'), 'b/rgba.png': (20, 20, 'RGBA'), 'b/p.png': (20, 20, 'P')})
    with pytest.warns(UserWarning) as rec: a = load_imagefolder(d, size=16, test_frac=0.5)
    msgs = [str(w.message) for w in rec if 'converted to RGB' in str(w.message)]
    assert msgs == [f"{d}: 5 of 6 images converted to RGB from mode CMYK (1), L (2), P (1), RGBA (1)"]
    assert a.train_x.shape[-1] == 3
    g = tasks._decode_image(d/'a'/'g1.png', 16, 16)[0]
    assert np.array_equal(g[..., 0], g[..., 1]) and np.array_equal(g[..., 0], g[..., 2])
    with Image.open(d/'b'/'rgba.png') as im: assert np.array_equal(tasks._decode_image(d/'b'/'rgba.png', 20, 20)[0], np.asarray(im)[..., :3])
    with Image.open(d/'b'/'p.png') as im: assert np.array_equal(tasks._decode_image(d/'b'/'p.png', 20, 20)[0], np.asarray(im.convert('RGB')))
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        load_imagefolder(d, size=16, test_frac=0.5)                                     # cached: nothing said again
        load_imagefolder(make_folder(tmp_path/'rgb', layout()), size=16)                # all RGB: nothing said


# ---------------------------------------------------------------- errors
GOOD = layout()

def _missing(t): return t/'nowhere'
def _file(t): (t/'file.png').write_bytes(b'x'); return t/'file.png'
def _no_classes(t): return make_folder(t/'f', {'x.png': (20, 20, 'RGB')})
def _no_test(t): return make_folder(t/'f', layout(parts=('train',)))
def _no_train(t): return make_folder(t/'f', layout(parts=('test', 'val')))
def _differ(t): return make_folder(t/'f', {**layout(parts=('train',)), **layout(('a', 'c'), parts=('test',))})
def _val_differ(t): return make_folder(t/'f', {**layout(parts=('train', 'test')), **layout(('a',), parts=('val',))})
def _empty_class(t): d = make_folder(t/'f', GOOD); (d/'c').mkdir(); (d/'c'/'x.txt').write_text('x'); return d
def _empty_test_class(t): d = make_folder(t/'f', layout(parts=('train', 'test'))); [p.unlink() for p in (d/'test'/'b').iterdir()]; return d
def _one_image(t): return make_folder(t/'f', {**GOOD, 'c/0.png': (20, 20, 'RGB')})
def _not_image(t): d = make_folder(t/'f', GOOD); (d/'b'/'1.png').write_bytes(b'not an image'); return d
def _empty_file(t): d = make_folder(t/'f', GOOD); (d/'b'/'1.png').write_bytes(b''); return d
def _truncated(t):
    d = make_folder(t/'f', layout(ext='jpg', size=(64, 64)))
    b = (d/'b'/'1.jpg').read_bytes(); (d/'b'/'1.jpg').write_bytes(b[:len(b)//2]); return d
def _truncated_png(t):
    d = make_folder(t/'f', GOOD); b = (d/'b'/'1.png').read_bytes(); (d/'b'/'1.png').write_bytes(b[:len(b)//2]); return d
def _leak(t):
    d = make_folder(t/'f', layout(parts=('train', 'test'))); shutil.copy(d/'train'/'b'/'2.png', d/'test'/'a'/'9.png'); return d
def _leak_val(t):
    d = make_folder(t/'f', layout(parts=('train', 'val', 'test'))); shutil.copy(d/'val'/'a'/'0.png', d/'test'/'b'/'5.png'); return d

FOLDER_ERRORS = [  # (make the folder, error type, what the one-line message must hold; {d} = the folder)
    (_missing, MissingDataError, 'image folder not found: {d}'),
    (_file, DataError, 'image folder {d} is a file, not a folder'),
    (_no_classes, DataError, '{d}: no class sub-folders'),
    (_no_test, MissingDataError, '{d}/test not found: an image folder with train/<class>/ needs test/<class>/ too'),
    (_no_train, MissingDataError, '{d}/train not found'),
    (_differ, DataError, "{d}/test: its class folders differ from {d}/train's: missing b; extra c"),
    (_val_differ, DataError, "{d}/val: its class folders differ from {d}/train's: missing b; extra none"),
    (_empty_class, DataError, '{d}/c: class folder has no images'),
    (_empty_test_class, DataError, '{d}/test/b: class folder has no images'),
    (_one_image, DataError, '{d}/c: 1 image; a class needs 2 or more'),
    (_not_image, DataError, '{d}/b/1.png: not an image PIL can read'),
    (_empty_file, DataError, '{d}/b/1.png: not an image PIL can read'),
    (_truncated, DataError, '{d}/b/1.jpg: corrupt or truncated image ('),
    (_truncated_png, DataError, '{d}/b/1.png: corrupt or truncated image ('),
    (_leak, DataError, '{d}: train/b/2.png (train) and test/a/9.png (test) are identical files'),
    (_leak_val, DataError, '{d}: val/a/0.png (val) and test/b/5.png (test) are identical files'),
]

@pytest.mark.parametrize('make,err,want', FOLDER_ERRORS, ids=[m.__name__.strip('_') for m, _, _ in FOLDER_ERRORS])
def test_folder_errors_name_the_path(tmp_path, make, err, want):
    d = make(tmp_path)
    with pytest.raises(err) as e: load_imagefolder(d, size=16, workers=1)
    assert type(e.value) is err and want.format(d=d) in str(e.value) and '\n' not in str(e.value)
    if err is MissingDataError: assert isinstance(e.value, FileNotFoundError)


@pytest.mark.parametrize('kw,want', [(dict(size=0), 'size must be an integer >= 1'), (dict(size=16.0), 'size must be an integer'),
                                     (dict(size=16, resize=15), 'resize must be an integer >= 16'),
                                     (dict(test_frac=0), 'test_frac must be a number in (0, 1)'),
                                     (dict(test_frac=1.5), 'test_frac must be a number in (0, 1)'),
                                     (dict(workers=0), 'workers must be an integer >= 1'), (dict(seed=-1), 'seed must be')])
def test_bad_parameters(tmp_path, kw, want):
    d = make_folder(tmp_path/'f', GOOD)
    with pytest.raises(InputError, match=None) as e: load_imagefolder(d, **kw)
    assert want in str(e.value)


def test_cache_dir_that_is_a_file(tmp_path):
    d = make_folder(tmp_path/'f', GOOD); (tmp_path/'c').write_text('x')
    with pytest.raises(InputError, match='cache_dir .* is a file, not a folder'): load_imagefolder(d, size=8, cache_dir=tmp_path/'c')


# ---------------------------------------------------------------- caches
def test_in_process_cache_returns_the_same_arrays_until_a_file_changes(tmp_path):
    d = make_folder(tmp_path/'f', GOOD)
    a = load_imagefolder(d, size=8)
    assert load_imagefolder(d, size=8) is a and load_imagefolder(str(d), size=8, resize=9) is a     # 9 = round(8/0.875)
    assert load_imagefolder(d, size=8, resize=10) is not a
    make_folder(d, {'a/0.png': (20, 20, 'RGB')}, seed=7)                                             # rewritten file
    b = load_imagefolder(d, size=8)
    assert b is not a and not np.array_equal(b.train_x, a.train_x)


def test_disk_cache_is_reused_and_invalidated(tmp_path, monkeypatch):
    "With cache_dir, a process that has not decoded the folder (here: in-process cache emptied, decoder disabled) reads it."
    d, cache = make_folder(tmp_path/'f', layout(n=10)), tmp_path/'cache'
    a = load_imagefolder(d, size=8, cache_dir=cache)
    files = list(cache.glob('*.npz')); assert len(files) == 1 and not list(cache.glob('*.tmp'))
    def no_decoding(*a): raise AssertionError('decoded again')
    monkeypatch.setattr(tasks, '_decode_image', no_decoding); tasks._CACHE.clear()
    b = load_imagefolder(d, size=8, cache_dir=cache)                                    # read back, nothing decoded
    assert np.array_equal(b.train_x, a.train_x) and b.test_files == a.test_files
    assert load_imagefolder(d, size=8, cache_dir=cache, seed=3).test_files != a.test_files   # split redone from the cache
    monkeypatch.undo()
    files[0].write_bytes(b'garbage'); tasks._CACHE.clear()                                # unreadable: decoded again
    assert np.array_equal(load_imagefolder(d, size=8, cache_dir=cache).train_x, a.train_x)
    monkeypatch.setattr(tasks, '_decode_image', no_decoding); tasks._CACHE.clear()
    assert np.array_equal(load_imagefolder(d, size=8, cache_dir=cache).train_x, a.train_x)   # ... and rewritten
    os.utime(d/'a'/'0.png', ns=(1, 1)); tasks._CACHE.clear()                              # a file changed: stale
    with pytest.raises(AssertionError, match='decoded again'): load_imagefolder(d, size=8, cache_dir=cache)
    assert len(list(cache.glob('*.npz'))) == 1


# ---------------------------------------------------------------- sources
def test_registry():
    assert {k: (s.name, s.size, s.resize, s.augment) for k, s in SOURCES.items()} == {
        'cifar100': ('cifar100', 32, None, 'cifar'), 'cub': ('cub', 224, 256, 'rrc'),
        'miniimagenet': ('miniimagenet', 84, 92, 'rrc'), 'dogs': ('dogs', 224, 256, 'rrc'),
        'imagefolder': ('imagefolder', 224, 256, 'rrc')}
    assert SOURCES['cifar100'].mean == CIFAR100_MEAN and SOURCES['cifar100'].std == CIFAR100_STD
    assert all(s.mean == IMAGENET_MEAN and s.std == IMAGENET_STD for k, s in SOURCES.items() if k != 'cifar100')
    with pytest.raises(Exception): SOURCES['cub'].size = 1                               # frozen


def test_load_source_specs(tmp_path, monkeypatch):
    d = make_folder(tmp_path/'birds', GOOD)
    src, a = load_source(f'imagefolder:{d}', size=16)
    assert (src.name, src.size, src.resize, src.augment) == ('imagefolder', 16, 18, 'rrc') and a.train_x.shape[1:] == (16, 16, 3)
    assert load_source(d, size=16)[1] is a and load_source(f'ImageFolder:{d}', size=16)[1] is a
    assert load_source('imagefolder:birds', root=tmp_path, size=16)[1] is a              # relative: under the data root
    monkeypatch.chdir(tmp_path); assert load_source('imagefolder:birds', root='/nonexistent', size=16)[1] is a  # ... or cwd
    assert load_source(f'imagefolder:{d}')[0].resize == 256
    assert load_source(f'imagefolder:{d}', size=64, test_frac=0.5)[1].train_x.shape[1:3] == (64, 64)


@pytest.mark.parametrize('spec,kw,err,want', [
    ('cifar10', {}, DataError, "unknown source 'cifar10'; known: 'cifar100', 'cub', 'miniimagenet', 'dogs' or 'imagefolder:PATH'"),
    ('imagefolder', {}, InputError, "'imagefolder:PATH'"), ('imagefolder: ', {}, InputError, "'imagefolder:PATH'"),
    ('cub:x', {}, DataError, 'unknown source'), (3, {}, InputError, 'spec must be one of'),
    ('imagefolder:no/such/dir', {}, MissingDataError, 'image folder not found: no/such/dir'),
    ('cifar100', dict(size=64), InputError, 'CIFAR-100 is stored at 32x32 only'),
    ('cifar100', dict(resize=36), InputError, 'CIFAR-100 is stored at 32x32 only'),
    ('cub', dict(size=224, resize=200), InputError, 'resize=200 must be >= size=224'),
    ('cub', dict(size=-3), InputError, 'size must be an integer >= 1'),
    ('dogs', dict(test_frac=0.3), InputError, "test_frac: not a parameter of Stanford Dogs's loader load_dogs"),
])
def test_load_source_errors(tmp_path, spec, kw, err, want):
    with pytest.raises(err) as e: load_source(spec, root=tmp_path, **kw)
    assert want in str(e.value) and '\n' not in str(e.value)


@pytest.mark.parametrize('spec', ['cifar100', 'cub', 'miniimagenet', 'dogs'])
def test_missing_data_sets_raise_missing_data_error(tmp_path, spec):
    with pytest.raises(MissingDataError) as e: load_source(spec, root=tmp_path/'empty')
    assert 'not found' in str(e.value) and '\n' not in str(e.value)


# ---------------------------------------------------------------- tasks
def test_task_is_a_taskdata_and_batchloader_reads_it(tmp_path):
    d = make_folder(tmp_path/'f', layout(n=6, size=(30, 20)))
    t = make_student_task(d, size=16)
    assert isinstance(t, Task) and isinstance(t, TaskData) and 'Task(imagefolder:' in repr(t)
    bl = BatchLoader(t.train_x, t.train_y, 4, augment=t.augment, mean=t.mean, std=t.std, size=t.size, device='cpu')
    xb, yb = next(iter(bl))
    assert xb.shape == (4, 3, 16, 16) and xb.dtype == torch.float32
    td = make_task(load_imagefolder(d, size=16), [1, 0])
    t2 = Task.from_taskdata(td, source='x')
    assert t2.train_x is td.train_x and t2.size == 16 and t2.teacher_classes is None and t2.seen is None


def test_make_student_task_classes_by_id_or_name(tmp_path):
    d = make_folder(tmp_path/'f', layout(('ant', 'bee', 'cow', 'dog'), 10))
    a = load_imagefolder(d, size=16)
    t = make_student_task(f'imagefolder:{d}', ['cow', 0], size=16, val_per_class=2, seed=4)
    ref = make_task(a, [2, 0], val_per_class=2, seed=4)
    for f in ('train_x', 'train_y', 'val_x', 'val_y', 'test_x', 'test_y'): assert torch.equal(getattr(t, f), getattr(ref, f)), f
    for f in ('classes', 'train_index', 'val_index', 'test_index'): assert np.array_equal(getattr(t, f), getattr(ref, f)), f
    assert t.class_names == ('cow', 'ant') and t.num_classes == 2 and t.train_y.tolist()[:6] == [0]*6
    assert (t.mean, t.std, t.augment, t.size, t.source) == (IMAGENET_MEAN, IMAGENET_STD, 'rrc', 16, f'imagefolder:{d.resolve()}')
    assert make_student_task(d, size=16).class_names == ('ant', 'bee', 'cow', 'dog')          # None: all
    assert make_student_task(d, np.array([3, 1]), size=16).class_names == ('dog', 'bee')
    assert len(make_student_task(d, size=16, train_per_class=3, val_per_class=1).train_y) == 12
    n = make_student_task(d, size=16, test=False)
    assert len(n.test_y) == 0 and tuple(n.test_x.shape) == (0, 16, 16, 3) and len(n.test_index) == 0
    s1 = make_student_task(d, size=16, split_seed=1)                                          # the folder's own split seed
    assert not torch.equal(s1.test_x, make_student_task(d, size=16).test_x)


def test_make_student_task_with_own_val(tmp_path):
    d = make_folder(tmp_path/'f', layout(('a', 'b', 'c'), 3, ('train', 'val', 'test')))
    a = load_imagefolder(d, size=8)
    t = make_student_task(d, ['c', 'a'], size=8)
    assert t.val_y.tolist() == [0, 0, 0, 1, 1, 1] and t.val_index.tolist() == [6, 7, 8, 0, 1, 2]
    assert np.array_equal(t.val_x.numpy(), a.val_x[[6, 7, 8, 0, 1, 2]]) and len(t.train_y) == 6   # no hold-out from train
    with pytest.raises(InputError, match='has its own val/ split; leave val_per_class None'): make_student_task(d, val_per_class=1, size=8)


@pytest.mark.parametrize('classes,err,want', [
    (['a'], DataError, 'classes: a student task needs 2 or more classes'), ([1], DataError, 'needs 2 or more classes'),
    (['a', 'z'], DataError, "has no class 'z'"), ([0, 5], DataError, 'class id 5 is outside 0..2'),
    ([0, 'a'], InputError, 'classes: a listed twice'), ('ab', InputError, 'classes must be a list'),
    ([0, 1.5], InputError, 'neither a class id nor a class name'), ([True, 0], InputError, 'neither a class id'),
])
def test_make_student_task_class_errors(tmp_path, classes, err, want):
    d = make_folder(tmp_path/'f', layout(('a', 'b', 'c')))
    with pytest.raises(err) as e: make_student_task(d, classes, size=8)
    assert want in str(e.value) and type(e.value) is err


def test_one_class_folder_is_no_student_task(tmp_path):
    d = make_folder(tmp_path/'f', layout(('only',), 4))
    assert len(load_imagefolder(d, size=8).class_names) == 1                                 # loads ...
    with pytest.raises(DataError, match=re.escape(f'a student task needs 2 or more classes; {d} gives 1')): make_student_task(d, size=8)


def test_hold_out_errors_are_data_errors(tmp_path):
    d = make_folder(tmp_path/'f', layout(n=3))
    with pytest.raises(DataError, match=r'f: class 0 has 2 training images: cannot hold out 2'): make_student_task(d, size=8, val_per_class=2)


# ---------------------------------------------------------------- real data
@pytest.mark.needs_data('cifar100')
@pytest.mark.parametrize('overlap,order', [(0.6, None), (0.0, 'natural'), (None, None)])
def test_cifar_gkd_preset_equals_the_old_path(overlap, order):
    kw = dict(val_per_class=10, train_per_class=100, seed=2)
    t = gkd_task('cifar100', overlap, order, **kw)
    split = gkd_split('cifar100', overlap, order)
    old = make_task(load_cifar100(), split.student_classes, **kw)
    for f in ('train_x', 'train_y', 'val_x', 'val_y', 'test_x', 'test_y'): assert torch.equal(getattr(t, f), getattr(old, f)), f
    for f in ('classes', 'train_index', 'val_index', 'test_index'): assert np.array_equal(getattr(t, f), getattr(old, f)), f
    assert t.num_classes == old.num_classes and np.array_equal(t.teacher_classes, split.teacher_classes)
    assert np.array_equal(t.seen, split.seen) and (t.mean, t.std, t.augment, t.size, t.source) == (CIFAR100_MEAN, CIFAR100_STD, 'cifar', 32, 'cifar100')
    assert t.class_names == tuple(load_cifar100().fine_label_names[c] for c in split.student_classes)


@pytest.mark.needs_data('cifar100')
def test_gkd_task_options():
    r = gkd_task('cifar100', 0.2, 'random', order_seed=5, train_per_class=20, val_per_class=5, test=False)
    assert np.array_equal(r.classes, gkd_split('cifar100', 0.2, 'random', seed=5).student_classes)
    assert len(r.test_y) == 0 and int(r.seen.sum()) == 10
    with pytest.raises(InputError, match='overlap must be one of'): gkd_task('cifar100', 0.5)
    with pytest.raises(InputError, match="unknown source 'cifar10'; known: 'cifar100', 'cub'"): gkd_task('cifar10')


@pytest.mark.needs_data('cub100_proxy')
def test_cub100_proxy_loads_at_size_64():
    d = data_root()/'cub100_proxy_128'
    a = load_imagefolder(d, size=64)
    assert (len(a.class_names), len(a.train_y), len(a.test_y)) == (100, 2999, 2903)
    assert a.train_x.shape == (2999, 64, 64, 3) and a.test_x.shape == (2903, 64, 64, 3) and a.val_x is None
    assert np.array_equal(np.unique(a.train_y), np.arange(100)) and np.array_equal(np.unique(a.test_y), np.arange(100))
    ref = ImageFolder(d/'test')
    assert ref.classes == list(a.class_names) and [t for _, t in ref.samples] == a.test_y.tolist()
    with Image.open(d/a.test_files[1234]) as im: assert np.array_equal(a.test_x[1234], np.asarray(tv(64, 73)(im.convert('RGB'))))
    t = make_student_task('imagefolder:cub100_proxy_128', ['000.Black_footed_Albatross', 99], size=64, val_per_class=3)
    assert t.num_classes == 2 and len(t.val_y) == 6 and t.class_names[1] == a.class_names[99]
