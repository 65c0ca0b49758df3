#!/usr/bin/env python
"""record.py NOTEBOOK OUT [-p NAME VALUE ...]: execute NOTEBOOK with papermill into OUT (a run record), then drop
papermill's timing metadata while keeping outputs and execution counts, which nbval needs to re-check the record."""
import ast, sys
from pathlib import Path
import papermill as pm
from refilled.cli import clean_run_record

nb, out, rest = sys.argv[1], Path(sys.argv[2]), sys.argv[3:]
if len(rest) % 3: sys.exit(__doc__)
params = {rest[i+1]: ast.literal_eval(rest[i+2]) for i in range(0, len(rest), 3) if rest[i] == '-p'}
out.parent.mkdir(parents=True, exist_ok=True)
pm.execute_notebook(nb, str(out), parameters=params, kernel_name='python3', cwd=str(Path(nb).parent), progress_bar=False)
clean_run_record(out)
print(f'recorded {out}')
