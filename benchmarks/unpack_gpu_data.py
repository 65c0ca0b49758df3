#!/usr/bin/env python
"""Decode a GPU data file written by `make_incremental_data.py` into the CIFAR-100 file `refilled.data` reads.

    python benchmarks/unpack_gpu_data.py .gpu_data/cifar100.npz.xz DATA_ROOT      # -> DATA_ROOT/cifar100/cifar100.npz

A lent GPU machine takes at most 64 MiB of working tree. CIFAR images compress to about 0.75 of their size with xz
alone; stored channel-planar as differences from the left and the upper neighbour, red and blue then as differences
from green's (uint8, wrapping), to about 0.56.
The coding is lossless: `delta_decode(delta_encode(x))` is `x` bit for bit (the writer checks it before writing).
"""
import io, lzma, sys
from pathlib import Path
import numpy as np

def delta_encode(x:np.ndarray)->np.ndarray:
    "uint8 images [N, H, W, C] -> [N, C, H, W] differences from the left, then from the upper neighbour, then (RGB) from green's (mod 256)."
    p = np.ascontiguousarray(np.asarray(x, np.uint8).transpose(0, 3, 1, 2))
    d = np.diff(p, axis=3, prepend=np.zeros_like(p[..., :1]))
    d = np.diff(d, axis=2, prepend=np.zeros_like(d[:, :, :1])).astype(np.uint8)
    if d.shape[1] == 3: d[:, 0] -= d[:, 1]; d[:, 2] -= d[:, 1]   # red and blue as differences from green's
    return d

def delta_decode(d:np.ndarray)->np.ndarray:
    "The inverse of `delta_encode`: green added back, running sums (mod 256) down, then across; back to [N, H, W, C]."
    d = d.copy()
    if d.shape[1] == 3: d[:, 0] += d[:, 1]; d[:, 2] += d[:, 1]
    p = np.cumsum(np.cumsum(d, axis=2, dtype=np.uint8), axis=3, dtype=np.uint8)
    return np.ascontiguousarray(p.transpose(0, 2, 3, 1))

if __name__ == '__main__':
    src, root = sys.argv[1], Path(sys.argv[2])
    with np.load(io.BytesIO(lzma.decompress(Path(src).read_bytes()))) as z:
        arrays = {k: delta_decode(z[k]) if k.endswith('_x') else z[k] for k in z.files}
    (root/'cifar100').mkdir(parents=True, exist_ok=True)
    tmp = root/'cifar100'/'cifar100.part.npz'
    np.savez(tmp, **arrays); tmp.replace(root/'cifar100'/'cifar100.npz')
    print(f"{root/'cifar100'/'cifar100.npz'}: " + ', '.join(f'{k} {v.shape}' for k, v in arrays.items()))
