#!/usr/bin/env python
"""record.py NOTEBOOK OUT [-f PARAMS.yaml] [-p NAME VALUE ...]: execute NOTEBOOK with papermill into OUT (a verification
record), with the notebook's folder as working directory and `recorded = {}`, so that its check cells capture their
numbers; then `clean_run_record` drops papermill's timing metadata (keeping outputs and execution counts, which nbval
needs) and moves those numbers into the record's `recorded` parameter. Values after -p are Python literals."""
import ast, sys
from pathlib import Path
import papermill as pm
import yaml
from refilled.cli import clean_run_record

nb, out, rest = sys.argv[1], Path(sys.argv[2]), sys.argv[3:]
params, i = {}, 0
while i < len(rest):
    if rest[i] == '-f' and i + 1 < len(rest): params.update(yaml.safe_load(Path(rest[i+1]).read_text()) or {}); i += 2
    elif rest[i] == '-p' and i + 2 < len(rest): params[rest[i+1]] = ast.literal_eval(rest[i+2]); i += 3
    else: sys.exit(__doc__)
if 'recorded' in pm.inspect_notebook(nb): params.setdefault('recorded', {})   # a template with check cells
out.parent.mkdir(parents=True, exist_ok=True)
pm.execute_notebook(nb, str(out), parameters=params, kernel_name='python3', cwd=str(Path(nb).parent), progress_bar=False)
clean_run_record(out)
print(f'recorded {out}')
