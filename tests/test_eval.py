"""Result tables: `summarize` (mean ± std over seeds, numeric order), `paired_gains` and `budget_gains` (the protocol's budget check),
`t_interval`, `paired_interval` and `decide` (issue 22's decision rule), `comparison_report`."""
import math
import pytest
from refilled.eval import summarize, budget_gains, paired_gains, t_interval, paired_interval, decide, comparison_report


def row(method, E, seed, val, test=None, overlap=60, student='wrn_16_1', train_per_class=100):
    return dict(method=method, E=E, seed=seed, overlap=overlap, student=student, train_per_class=train_per_class,
                val_acc_best=val, test_acc_best_val=test)


def test_summarize_orders_numbers_by_value_and_uses_n_minus_1():
    rows = [dict(method='student', overlap=o, test_acc_best_val=a) for o, a in ((100, 1.0), (0, 2.0), (60, 3.0), (60, 5.0))]
    s = summarize(rows)
    assert [r['overlap'] for r in s] == [0, 60, 100]
    assert s[1]['mean'] == 4.0 and s[1]['std'] == pytest.approx(math.sqrt(2.0)) and s[1]['n'] == 2
    assert math.isnan(s[0]['std'])


def test_budget_gains_pairs_only_runs_of_one_seed_E_overlap_and_data_size():
    rows = [row('student', 100, 0, 46.0, 44.0), row('student_long', 100, 0, 48.6, 45.5),
            row('student', 100, 1, 47.0), row('student_long', 100, 2, 50.0),        # seeds differ: no pair
            row('student', 150, 0, 49.0), row('student_long', 150, 0, None),       # no value: no pair
            row('student', 100, 0, 40.0, overlap=0), row('student_long', 100, 0, 41.0, overlap=0),
            row('student', 100, 0, 60.0, train_per_class=450), row('refilled', 100, 0, 70.0)]
    g = budget_gains(rows)
    assert [(x['overlap'], x['E'], x['seed'], x['train_per_class']) for x in g] == [(0, 100, 0, 100), (60, 100, 0, 100)]
    assert g[1]['gain'] == pytest.approx(2.6) and g[1]['baseline_value'] == 46.0 and g[1]['method_value'] == 48.6
    assert g[1]['student'] == 'wrn_16_1'                                           # the pair's student model, kept
    t = budget_gains(rows, value='test_acc_best_val')
    assert [x['gain'] for x in t] == [pytest.approx(1.5)]                          # only seed 0 at 60 % has test values
    s = summarize(budget_gains(rows + [row('student', 100, 1, 47.0, overlap=0), row('student_long', 100, 1, 49.0, overlap=0)]),
                  by=('overlap', 'E'), value='gain')
    assert [(r['overlap'], r['n']) for r in s] == [(0, 2), (60, 1)] and s[0]['mean'] == pytest.approx(1.5)


def test_budget_gains_refuses_two_rows_for_one_run():
    rows = [row('student', 100, 0, 46.0), row('student_long', 100, 0, 48.6), row('student_long', 100, 0, 47.0)]
    with pytest.raises(ValueError, match="two student_long rows with E=100"):
        budget_gains(rows)


def test_paired_gains_is_method_minus_baseline_per_seed_and_setting():
    rows = [row('refilled', 100, 0, 49.0, 47.0), row('student_long', 100, 0, 48.6, 45.5),
            row('refilled', 100, 1, 46.0, 45.0), row('student_long', 100, 1, 47.8, 47.5),
            row('refilled', 100, 2, 46.0, 44.0),                                       # no student_long of seed 2
            row('refilled', 100, 0, 52.0, 51.0, overlap=0), row('student', 100, 0, 50.0, 49.0, overlap=0),
            row('student_long', 150, 0, 51.0, 49.0)]                                   # other E: no partner
    g = paired_gains(rows, 'refilled', 'student_long')
    assert [(x['overlap'], x['E'], x['seed']) for x in g] == [(60, 100, 0), (60, 100, 1)]
    assert [x['gain'] for x in g] == [pytest.approx(1.5), pytest.approx(-2.5)]
    assert (g[0]['method'], g[0]['method_value'], g[0]['baseline'], g[0]['baseline_value']) == ('refilled', 47.0, 'student_long', 45.5)
    s = summarize(g, by=('overlap', 'E'), value='gain')
    assert s[0]['n'] == 2 and s[0]['mean'] == pytest.approx(-0.5) and s[0]['std'] == pytest.approx(math.sqrt(8.0))
    v = paired_gains(rows, 'refilled', 'student', value='val_acc_best')
    assert [(x['overlap'], x['gain']) for x in v] == [(0, pytest.approx(2.0))]
    with pytest.raises(ValueError, match='nothing to compare'):
        paired_gains(rows, 'refilled', 'refilled')
    with pytest.raises(ValueError, match='two refilled rows with E=100, overlap=60, seed=0'):
        paired_gains(rows + rows[:1], 'refilled', 'student_long')


def test_t_interval_matches_a_printed_t_table_and_is_nan_below_two_values():
    ci = t_interval([2.0, 4.0, 6.0])                                              # mean 4, sd 2, t_{0.975, 2} = 4.303
    assert (ci['n'], ci['mean'], ci['sd']) == (3, 4.0, 2.0)
    assert ci['lo'] == pytest.approx(4 - 4.303*2/math.sqrt(3), abs=1e-3) and ci['hi'] == pytest.approx(4 + 4.303*2/math.sqrt(3), abs=1e-3)
    ci = t_interval(range(8))                                                     # t_{0.975, 7} = 2.365
    assert ci['hi'] - ci['mean'] == pytest.approx(2.365*ci['sd']/math.sqrt(8), abs=1e-3)
    one = t_interval([3.0])
    assert one['n'] == 1 and one['mean'] == 3.0 and all(math.isnan(one[k]) for k in ('sd', 'lo', 'hi'))


def test_paired_interval_pairs_by_seed_within_each_group():
    rows = [row('refilled', 100, s, None, t) for s, t in ((0, 47.0), (1, 46.0), (2, 48.0))] + \
           [row('student_long', 100, s, None, t) for s, t in ((0, 45.0), (1, 45.0), (3, 44.0))] + \
           [row('refilled', 150, 0, None, 50.0), row('student_long', 150, 0, None, 49.0)]
    iv = paired_interval(rows, 'refilled', 'student_long', 'test_acc_best_val')
    assert [(x['E'], x['seeds'], x['gains'], x['n']) for x in iv] == [(100, [0, 1], [2.0, 1.0], 2), (150, [0], [1.0], 1)]
    assert iv[0]['mean'] == pytest.approx(1.5) and iv[0]['lo'] == pytest.approx(1.5 - 12.706*math.sqrt(0.5)/math.sqrt(2), abs=1e-3)
    assert paired_interval(rows, 'refilled', 'student', 'test_acc_best_val') == []


@pytest.mark.parametrize('n, mean, lo, hi, expected', [
    (3, 2.0, 0.5, 3.5, 'adds value'), (3, 1.0, 0.1, 1.9, 'adds value'), (3, 2.0, -0.5, 4.5, 'no evidence of value'),
    (8, 0.6, 0.2, 1.0, 'no evidence of value'), (3, -2.0, -3.5, -0.5, 'worse'), (3, -0.5, -3.0, 2.0, 'no evidence of value'),
    (1, 5.0, math.nan, math.nan, 'undecided (n < 2)'), (0, math.nan, math.nan, math.nan, 'undecided (n < 2)')])
def test_decide(n, mean, lo, hi, expected):
    assert decide(dict(n=n, mean=mean, lo=lo, hi=hi)) == expected


def test_comparison_report_says_what_is_pending_and_decides_on_the_first_readout():
    assert comparison_report([], ['a', 'b'], range(3), [('a', 'b')]) == 'no rows yet'
    rows = [dict(method=m, overlap=60, E=100, seed=s, test_acc_last10=a, val_acc_lastq=None)
            for m, s, a in (('b', 0, 45.0), ('b', 1, 46.0), ('b', 2, 44.0), ('a', 0, 47.0), ('a', 1, 47.5), ('a', 2, 46.5))]
    rep = comparison_report(rows + [dict(method='c', seed=0)], ['a', 'b', 'c'], range(2), [('a', 'b')], values=('test_acc_last10', 'val_acc_lastq'))
    assert rep.startswith('pending: 1 of 6 rows (c seed 1)')
    assert rep.count('adds value') == 1 and rep.count('decision') == 1 and 'no pairs yet' in rep   # val_acc_lastq: no values
