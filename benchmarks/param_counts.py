#!/usr/bin/env python
"""Parameter count of every registry model (100-class head), with the published figure beside where one exists.

Usage: .venv/bin/python benchmarks/param_counts.py [--num-classes 100]
"""
import argparse
from refilled.backbones import param_table, format_param_table

if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--num-classes', type=int, default=100)
    print(format_param_table(param_table(ap.parse_args().num_classes)))
