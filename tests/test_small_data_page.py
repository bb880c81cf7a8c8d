"""docs/results/small-data/README.md shows what benchmarks/small_data.py prints from the committed records.

Each table block of the page is the table that its marker's arguments print (`small_data.py --page` rewrites them),
and each pair below is a fragment of the page's prose with the fragment of the printed tables that backs it, so
the test fails when the records or the page change without the other. No training: the script reads the records.
"""

from __future__ import annotations

import importlib.util

import pytest
from conftest import REPO

PAGE = REPO / "docs" / "results" / "small-data" / "README.md"
OUT = PAGE.parent

# (the page's words, what the printed tables must hold: one fragment or several, each within one printed line)
PAIRS = [
    # SST-2, 16 rows under 0.17: ahead by the second confirmation; samples 0-4 where the label names were chosen
    ("the delivered model scored 0.674 ± 0.045 against SetFit's 0.640 (paired +0.034 ± 0.035, p = 0.098",
     ("   16  fit              5  0.674 ± 0.045 ", "   16  setfit           5  0.640 ",
      "   16  5 samples: +0.034 ± 0.035, p = 0.098;")),
    ("On the 15 new samples of the second confirmation it scored 0.677 ± 0.036 against 0.633 ± 0.054 (paired +0.044 "
     "± 0.033, p = 0.00015, tested at 0.025",
     ("   16  fit             15  0.677 ± 0.036       15/15        3/15  contrastive 15 ",
      "   16  setfit          15  0.633 ± 0.054 ", "(the one test, two-sided paired t at 0.025): 15 samples: +0.044 ± "
      "0.033, p = 0.00015;")),
    ("On samples 0-4, where the label names were chosen, 0.674 ± 0.045 against SetFit's 0.640 ± 0.061 (+0.034 ± "
     "0.035, p = 0.098), and above 0.16's records of the same samples (`fit-0.16`: 0.631 ± 0.064; 0.17 − 0.16: +0.042 "
     "± 0.026, p = 0.021). It picked the contrastive model every time and said yes in 1 of 5 (3 of 15 in the "
     "confirmation)",
     ("   16  fit              5  0.674 ± 0.045        5/5          1/5  contrastive 5 ",
      "   16  setfit           5  0.640 ± 0.061 ", "   16  5 samples: +0.034 ± 0.035, p = 0.098;",
      "   16  fit-0.16         5  0.631 ± 0.064 ", "   16  5 samples: +0.042 ± 0.026, p = 0.021;")),
    ("passes the exact test on 16 out-of-fold predictions about 18% of the time",
     "   16  dev accuracy 0.674: power 0.18"),
    # SST-2, 64 rows: fit ties SetFit, contrastive every time, yes 5 of 5; fit 0.9 says no 5 of 5
    ("**At 64 rows `fit` ties SetFit**: 0.745 ± 0.048 against 0.746 ± 0.049 on dev, paired difference −0.000 ± 0.015 "
     "(p = 0.95). It picked the contrastive model in every sample and said yes in 5 of 5",
     ("   64  fit              5  0.745 ± 0.048        5/5          5/5  contrastive 5 ",
      "   64  setfit           5  0.746 ± 0.049 ", "   64  5 samples: -0.000 ± 0.015, p = 0.95;")),
    ("in 143-153 s with one thread beside two other benchmarks. The label names change nothing measurable here: "
     "0.16's records of the same samples (`fit-0.16`) scored 0.744 ± 0.046 (0.17 − 0.16: +0.001 ± 0.012, p = 0.87), "
     "and 0.10's (`fit-0.15`) 0.746 ± 0.036",
     ("contrastive 5                   147 (143-153)", "   64  fit-0.16         5  0.744 ± 0.046 ",
      "   64  5 samples: +0.001 ± 0.012, p = 0.87;", "   64  fit-0.15         5  0.746 ± 0.036 ")),
    ("(cross-validated 0.77-0.83 over 64 rows, p ≤ 1.2e-05 against alpha 0.025)",
     ("   64  fit           s0: contrastive, cross-validated accuracy 0.7656 over 64 rows, p = 1.2e-05 (alpha 0.025)",
      "   64  fit           s2: contrastive, cross-validated accuracy 0.8281 over 64 rows, p = 5e-08 (alpha 0.025)")),
    ("Fit 0.9 (`fit-finetune`) delivered 0.51-0.59 and said no in 5 of 5; the probe alone scores 0.700",
     ("   64  fit-finetune     5  0.548 ± 0.029        4/5          0/5  finetune 5 ",
      "   64  probe            5  0.700 ± 0.033 ")),
    # 0.15's rule at 16 rows: the contrastive model everywhere; where the probe had led, the two picks within noise
    ("0.15, 0.16 and 0.17 pick the contrastive model in all 5 samples. In samples 0 and 3 the earlier rule had picked "
     "the probe, one and two rows ahead on the 2 shared folds (`fit-0.14`: 0.626 and 0.685 on dev), where 0.15's "
     "contrastive model scored 0.610 and 0.713 (`fit-0.15` − `fit-0.14`: +0.006 ± 0.032, p = 0.82)",
     ("   16  fit              5  0.674 ± 0.045        5/5          1/5  contrastive 5 ",
      "   16  fit-0.15         5  0.627 ± 0.067        5/5          0/5  contrastive 5 ",
      "   16  fit-0.14      s0: probe, cross-validated accuracy 0.3750 over 16 rows, p = 0.79 (alpha 0.025): no; "
      "dev 0.626",
      "   16  fit-0.14      s3: probe, cross-validated accuracy 0.5000 over 16 rows, p = 0.37 (alpha 0.025): no; "
      "dev 0.685",
      "   16  fit-0.15      s0: contrastive, cross-validated accuracy 0.4375 over 16 rows, p = 0.77 (alpha 0.025): "
      "no; dev 0.610, 62 s; chosen: contrastive, as the probe's lead over it is within noise: 0.0625 on the same 2 "
      "folds",
      "   16  fit-0.15      s3: contrastive, cross-validated accuracy 0.5000 over 16 rows, p = 0.6 (alpha 0.025): "
      "no; dev 0.713, 53 s; chosen: contrastive, as the probe's lead over it is within noise: 0.1250 on the same 2 "
      "folds", "   16  2 samples: +0.006 ± 0.032, p = 0.82; per sample -0.016 +0.029")),
    ("Fit 0.9 refused these files (exit 2)", ("   16  fit-finetune     5  -                    0/5          0/5 ",)),
    # idle cores
    # train's defaults
    ("0.10's (`adam` at 2e-5) stayed at the majority rate (0.54-0.55); 0.11's scores 0.593 at 16 rows and 0.577 at 64",
     ("   16  train-0.10       5  0.539 ± 0.005 ", "   64  train-0.10       5  0.548 ± 0.006 ",
      "   16  train            5  0.593 ± 0.035 ", "   64  train            5  0.577 ± 0.046 ")),
    # LP-FT against fit and SetFit at 16 and 64 rows
    ("at 16 rows LP-FT scored 0.635 ± 0.064, +0.003 over 0.16's fit (p = 0.53; 0.17's, with the label names, is ahead "
     "of it: −0.039 ± 0.031, p = 0.05) and −0.005 under SetFit (p = 0.46)",
     ("   16  fit-lpft         5  0.635 ± 0.064 ", "   16  5 samples: +0.003 ± 0.011, p = 0.53;",
      "   16  5 samples: -0.039 ± 0.031, p = 0.05;", "   16  5 samples: -0.005 ± 0.014, p = 0.46;")),
    ("at 64 rows 0.733 ± 0.048, −0.012 under 0.16's fit (p = 0.093) and −0.013 under SetFit (p = 0.042, every "
     "sample below it)", ("   64  fit-lpft         5  0.733 ± 0.048 ", "   64  5 samples: -0.012 ± 0.012, p = 0.093;",
             "   64  5 samples: -0.013 ± 0.010, p = 0.042; per sample -0.023 -0.013 -0.024 -0.005 -0.002")),
    ("It says yes as often as 0.16's fit did (0 of 5 at 16 rows, 5 of 5 at 64",
     "   16  fit-lpft         5  0.635 ± 0.064        5/5          0/5 "),
    # SST-2, 256 rows: the registered confirmation on samples 5-9, a tie
    ("**Result (19:35): a tie.** `fit` 0.797 ± 0.007, SetFit 0.797 ± 0.009 on the new samples (paired −0.001 ± "
     "0.007, p = 0.83; ahead in 3, level in 1, behind by 0.013 in 1)",
     ("  256  fit              5  0.797 ± 0.007        5/5          5/5  contrastive 5 ",
      "  256  setfit           5  0.797 ± 0.009 ",
      "(the one test, two-sided paired t at 0.05): 5 samples: -0.001 ± 0.007, p = 0.83; per sample +0.000 +0.003 "
      "+0.005 +0.001 -0.013: no difference detected")),
    ("There it said yes in 5 of 5, picked the contrastive model in each and took 329-358 s to SetFit's 531-564 s",
     ("5/5          5/5  contrastive 5                   344 (329-358)",
      "  -                               552 (531-564)")),
    ("at 256 rows (1b3b163, a later run, the cores idle again) fit took 266 s and SetFit 322 s",
     "  256  fit 266 s (0.813, 1b3b163)   setfit 322 s (0.799, 1b3b163)"),
    # MRPC, 256 rows: LP-FT below SetFit in every sample, one no in three
    ("At 256 rows LP-FT (`fit-lpft`) is below SetFit in every sample (−0.044 ± 0.018, p = 0.05) and its verdict says "
     "no in one of three (p = 0.059 over 256 out-of-fold predictions), where the default `fit` says yes in 3 of 3",
     ("  256  3 samples: -0.044 ± 0.018, p = 0.05; per sample -0.039 -0.029 -0.064",
      "  256  fit-lpft         3  0.601 ± 0.042        0/3          2/3 ",
      "  256  fit-lpft      s2: lp-ft, cross-validated accuracy 0.5508 over 256 rows, p = 0.059 (alpha 0.05): no",
      "  256  fit              3  0.649 ± 0.007        0/3          3/3 ")),
    # STS-B: 0.14's fit picks LP-FT at 256 rows, every sample ahead of 0.13's fit (the probe); 1000 rows held out
    ("`fit` now picks LP-FT in every sample: 0.370 ± 0.003, +0.147 ± 0.004 over `fit-0.13` (p = 0.00029), yes in 3 "
     "of 3 where `fit-0.13` said yes in 2",
     ("  256  fit              3  0.370 ± 0.003        -            3/3  lp-ft 3 ",
      "  256  3 samples: +0.147 ± 0.004, p = 0.00029; per sample +0.152 +0.144 +0.145",
      "  256  fit-0.13         3  0.223 ± 0.002        -            2/3  probe 3 ")),
    ("(p = 0.0021 to 0.0087 against alpha 0.025",
     ("  256  fit           s0: lp-ft, cross-validated spearmanr 0.2515 over 256 rows, p = 0.0021 (alpha 0.025): yes",
      "  256  fit           s1: lp-ft, cross-validated spearmanr 0.2099 over 256 rows, p = 0.0087 (alpha 0.025): yes",
      "  256  fit           s2: lp-ft, cross-validated spearmanr 0.2328 over 256 rows, p = 0.0041 (alpha 0.025):")),
    ("scores 0.763 ± 0.042 and picks a fine-tuning run in 3 of 3, as `fit-finetune` does, against the probe's 0.379 "
     "and `train`'s 0.762. LP-FT held out (`fit-lpft`) scores 0.710 ± 0.016, under `fit` in every sample (−0.053 ± "
     "0.028, p = 0.081)",
     (" 1000  fit              3  0.763 ± 0.042        -            3/3  finetune 3 ",
      " 1000  probe            3  0.379 ± 0.057 ", " 1000  train            3  0.762 ± 0.035 ",
      " 1000  fit-lpft         3  0.710 ± 0.016 ",
      " 1000  3 samples: -0.053 ± 0.028, p = 0.081; per sample -0.030 -0.045 -0.083")),
    # the status: which sizes have every system's 5 samples
    ("n = 16, 64 and 256: every system has its 5 samples",
     tuple(f"{n:>5}  {system:<13}    5  " for n in (16, 64, 256)
           for system in ("probe", "setfit", "train", "fit-finetune", "fit", "fit-lpft"))),
    # SST-2, 64 rows: the ranges quoted, by their extreme samples
    ("Fit 0.9 (`fit-finetune`) delivered 0.51-0.59",
     ("   64  fit-finetune  s0: c02-lr0.0002-seed2, test accuracy 0.4286 over 7 rows, p = 0.87 (alpha 0.05): no; dev "
      "0.509,",
      "   64  fit-finetune  s4: c03-lr5e-05-seed3, test accuracy 0.5714 over 7 rows, p = 0.65 (alpha 0.05): no; dev "
      "0.589,")),
    # SST-2, 1024 rows under 0.12: what the held-out search chose and passed over
    ("scored 0.764 and 0.781 on dev, 0.056 and 0.034 below 0.13's `fit` on the same rows. In sample 0 its pick `c05` "
     "led on validation (0.892, against the contrastive model's 0.853), but scored 0.786 on the 103 test rows "
     "against the contrastive model's 0.883",
     (" 1024  fit-0.12      s0: c05-lr0.0002-seed5, test accuracy 0.7864 over 103 rows, p = 3.6e-09 (alpha 0.05): "
      "yes; dev 0.764, 926 s; the pick's validation 0.8922; probe validation 0.7941, test 0.8350; contrastive "
      "validation 0.8529, test 0.8835", " 1024  fit-0.12      s1: c01-lr0.0001-seed1, test accuracy 0.8058 over 103 "
      "rows, p = 2.5e-10 (alpha 0.05): yes; dev 0.781,", " 1024  2 samples: +0.045 ± 0.015, p = 0.15; per sample "
      "+0.056 +0.034")),
    ("wall time, 2,258-3,018 s beside one or two other benchmarks on the 2 cores, is about SetFit's (2,566-3,286 s, "
     "also shared)", (" 1024  fit              5 ", "(2258-3018)", " 1024  setfit           5 ", "(2566-3286)")),
    ("The probe, SetFit, `train` and `fit` have their 5 samples, and so have `fit-finetune` and `fit-lpft`",
     tuple(f" 1024  {system:<13}    5  "
           for system in ("probe", "setfit", "train", "fit", "fit-finetune", "fit-lpft"))),
    ("Held out under 0.12 it scored 0.808 (sample 0)", " 1024  fit-lpft-0.12    1  0.808 ± 0.000 "),
    ("its records ran in 74-82 s at 64 rows and 103-249 s at 256",
     ("   64  fit-lpft         5  0.733 ± 0.048 ", "lp-ft 5                            78 (74-82)",
      "  256  fit-lpft         5  0.789 ± 0.012 ", "lp-ft 5                         148 (103-249)")),
    # MRPC and STS-B: how many samples
    ("Samples 0-2 of every system at 256 rows; at 1000 rows (a small file under 0.13, so cross-validated) sample "
     "0 of the probe, SetFit, `train` and `fit` so far. There `fit` (0.16) picked the contrastive model, said yes "
     "(677 of 1000 out-of-fold predictions right, p = 7.9e-30) and scored 0.740 on the test half, SetFit 0.745 (one "
     "sample: no test); `fit` took 3,646 s and SetFit 5,743 s, each beside another benchmark on the 2 cores, in CPU "
     "seconds (one thread each) 3,609 against 4,108",
     tuple(f"  256  {system:<13}    3  " for system in ("probe", "setfit", "train", "fit-finetune", "fit", "fit-lpft"))
     + (" 1000  probe            1  ", " 1000  setfit           1  0.745 ± 0.000 ", "(5743-5743)",
        " 1000  train            1  ",
        " 1000  fit              1  0.740 ± 0.000        1/1          1/1  contrastive 1",
        "(3646-3646)", " 1000  fit 3609 (3609-3609, 1 runs)   setfit 4108 (4108-4108, 1 runs)",
        " 1000  fit           s0: contrastive, cross-validated accuracy 0.6770 over 1000 rows, p = 7.9e-30")),
    ("3 samples at each size",
     tuple(f"{n:>5}  {system:<13}    3  " for n in (256, 1000)
           for system in ("probe", "train", "fit-finetune", "fit", "fit-lpft"))),
    # SST-2, 1024 rows: contrastive picked every time, ahead of SetFit in every sample; LP-FT under fit
    ("In each of 5 samples it chose the contrastive model (848 to 873 of 1024 out-of-fold predictions right, "
     "p ≤ 2.6e-106) and scored **0.819 ± 0.010 on dev**, against SetFit's 0.815 ± 0.013: ahead in 4 of 5 samples, so "
     "a tie (paired +0.004 ± 0.006, p = 0.26; in sample 4 fit scored 0.833, 0.006 under SetFit), and ahead of 0.12's "
     "held-out pick in both samples 0.12 ran (+0.045 ± 0.015, p = 0.15)",
     (" 1024  fit              5  0.819 ± 0.010        5/5          5/5  contrastive 5 ",
      " 1024  setfit           5  0.815 ± 0.013 ",
      " 1024  5 samples: +0.004 ± 0.006, p = 0.26; per sample +0.010 +0.006 +0.007 +0.001 -0.006",
      " 1024  fit           s3: contrastive, cross-validated accuracy 0.8281 over 1024 rows, p = 2.6e-106",
      " 1024  fit           s4: contrastive, cross-validated accuracy 0.8477 over 1024 rows, p = 1.4e-120 (alpha "
      "0.025): yes; dev 0.833",
      " 1024  2 samples: +0.045 ± 0.015, p = 0.15; per sample +0.056 +0.034",
      " 1024  fit           s0: contrastive, cross-validated accuracy 0.8398 over 1024 rows, p = 1e-114",
      " 1024  fit           s2: contrastive, cross-validated accuracy 0.8525 over 1024 rows, p = 2.5e-124")),
    ("(`fit-lpft`): 0.814 ± 0.015 on dev in 260-329 s, against `fit` −0.005 ± 0.012 (p = 0.4) and against SetFit "
     "−0.001 ± 0.008 (p = 0.73)",
     (" 1024  fit-lpft         5  0.814 ± 0.015        5/5          5/5  lp-ft 5 ", "  292 (260-329)",
      " 1024  5 samples: -0.005 ± 0.012, p = 0.4; per sample -0.015 -0.017 -0.008 +0.010 +0.005",
      " 1024  5 samples: -0.001 ± 0.008, p = 0.73;")),
    ("In CPU seconds (one thread each) fit used 1,881-2,225 in the 3 samples that recorded them and SetFit "
     "1,968-2,137 in 2", " 1024  fit 2001 (1881-2225, 3 runs)   setfit 2052 (1968-2137, 2 runs)"),
    # SST-2, 256 rows: 0.17 a tie; 0.16's samples 0-4 ahead in each; the earlier records a tie
    ("**At 256 rows** (5 samples) 0.17 scores 0.792 ± 0.012 against SetFit's 0.788 ± 0.008 (paired +0.005 ± 0.004, "
     "p = 0.072: a tie), yes in 5 of 5 with the contrastive model in all 5, 441-658 s with one thread beside two "
     "other benchmarks; the label names change nothing measurable here either (0.17 − 0.16: −0.004 ± 0.007, "
     "p = 0.23). 0.16 (`fit-0.16`) had scored 0.796 ± 0.010, ahead of SetFit in every sample (paired +0.009 ± "
     "0.005, p = 0.02)",
     ("  256  fit              5  0.792 ± 0.012        5/5          5/5  contrastive 5                   583 "
      "(441-658)", "  256  setfit           5  0.788 ± 0.008 ", "  256  5 samples: +0.005 ± 0.004, p = 0.072;",
      "  256  5 samples: -0.004 ± 0.007, p = 0.23;",
      "  256  fit-0.16         5  0.796 ± 0.010        5/5          5/5 ",
      "  256  5 samples: +0.009 ± 0.005, p = 0.02; per sample +0.014 +0.003 +0.014 +0.003 +0.009")),
    ("the same samples under 0.11-0.15 (`fit-0.15`: 0.790 ± 0.015, +0.003 ± 0.008 over SetFit, p = 0.47) were a tie",
     ("  256  fit-0.15         5  0.790 ± 0.015        5/5          5/5  contrastive 5 ",
      "  256  5 samples: +0.003 ± 0.008, p = 0.47;")),
    ("Under 0.14 sample 4 picked the probe, whose score on the 2 shared folds (0.8164) was one row ahead of the "
     "contrastive model's (0.8125), and which scored 0.733 on dev where SetFit scored 0.781 (`fit-0.14`)",
     ("  256  fit-0.14      s4: probe, cross-validated accuracy 0.7969 over 256 rows, p = 0.005 (alpha 0.025): yes; "
      "dev 0.733", "  256  5 samples: +0.003 ± 0.008, p = 0.47; per sample +0.014 -0.001 +0.003 +0.005 -0.007")),
    ("here a lead of 0.0039 with a 95% bootstrap interval of −0.0430 to 0.0528, so it picked the contrastive model, "
     "which scored 0.774 (`fit-0.15`); under 0.16 the contrastive model led on the folds and scored 0.790",
     ("  256  fit-0.15      s4: contrastive, cross-validated accuracy 0.8125 over 256 rows, p = 3.2e-25 (alpha "
      "0.025): yes; dev 0.774, 850 s; chosen: contrastive, as the probe's lead over it is within noise: 0.0039 on the "
      "same 2 folds (95% bootstrap interval -0.0430 to 0.0528)",
      "  256  fit-0.16      s4: contrastive, cross-validated accuracy 0.8242 over 256 rows, p = 3.5e-27 (alpha "
      "0.025): yes; dev 0.790, 531 s")),
    ("at 256 rows 0.789 ± 0.012 over 5 samples, +0.001 over SetFit (p = 0.8) and −0.008 under 0.16's fit (p = 0.23); "
     "at 1024 rows −0.005 under fit (p = 0.4) and −0.001 under SetFit (p = 0.73), 5 samples each",
     ("  256  fit-lpft         5  0.789 ± 0.012 ", "  256  5 samples: +0.001 ± 0.010, p = 0.8;",
      "  256  5 samples: -0.008 ± 0.012, p = 0.23;", " 1024  5 samples: -0.005 ± 0.012, p = 0.4;",
      " 1024  5 samples: -0.001 ± 0.008, p = 0.73;")),
    ("It says yes as often as 0.16's fit did (0 of 5 at 16 rows, 5 of 5 at 64 and at 256",
     ("   64  fit-lpft         5  0.733 ± 0.048        5/5          5/5 ",
      "  256  fit-lpft         5  0.789 ± 0.012        5/5          5/5 ")),
]  # fmt: skip


def flat(text: str) -> str:
    return " ".join(text.split())


@pytest.fixture(scope="module")
def small_data():
    spec = importlib.util.spec_from_file_location("small_data", REPO / "benchmarks" / "small_data.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def tables(small_data) -> list[tuple[str, str]]:
    """(the block as the page has it, the table printed from the records now), per table block."""
    return [(block["body"], printed) for block, printed in small_data.page_tables(PAGE, OUT)]


def test_the_page_tables_are_the_printed_tables(tables) -> None:
    assert len(tables) == 3  # SST-2, MRPC, STS-B
    for shown, printed in tables:
        assert shown == printed, "the page's table is not what `small_data.py --table` prints: run --page"


@pytest.mark.parametrize(("said", "printed"), PAIRS, ids=[p[0][:40] for p in PAIRS])
def test_the_page_says_what_the_tables_print(tables, said: str, printed: str | tuple[str, ...]) -> None:
    assert flat(said) in flat(PAGE.read_text(encoding="utf-8")), f"the page no longer says {said!r}"
    lines = "\n".join(p for _, p in tables).splitlines()
    for fragment in (printed,) if isinstance(printed, str) else printed:
        assert any(fragment in line for line in lines), f"no printed line holds {fragment!r}"


def test_page_refuses_a_page_without_tables(small_data, tmp_path) -> None:
    page = tmp_path / "page.md"
    page.write_text("# no tables\n", encoding="utf-8")
    with pytest.raises(SystemExit, match="no table block"):
        small_data.refresh_page(page, OUT)
    assert page.read_text(encoding="utf-8") == "# no tables\n"


def test_the_page_says_what_the_stored_records_hold_where_no_table_prints_it() -> None:
    """Sentences whose figures the table no longer prints (it shows the newest idle run only) or does not print
    (versions), checked against the records themselves: idle-timings.jsonl and each fit's fit.json."""
    import json

    page = flat(PAGE.read_text(encoding="utf-8"))
    runs = [json.loads(line) for line in (OUT / "idle-timings.jsonl").read_text().splitlines()]

    def wall(commit: str, n: int, system: str) -> tuple[int, float]:
        (r,) = [r for r in runs if r["commit"] == commit and r["n"] == n and r["system"] == system]
        return round(r["wall_s"]), r.get("accuracy")

    assert flat("took 1,014 s on sample 0 (dev 0.817; 0.15: 1,522 s, 0.818) and SetFit 1,228 s") in page
    assert wall("bf12bf9", 1024, "fit")[0] == 1522 and f"{wall('bf12bf9', 1024, 'fit')[1]:.3f}" == "0.818"
    assert flat("(16 and 64 rows, 41 s and 90 s) measured a first try") in page
    # 0.16's one run (5359425) and 0.17's (1a07f4d), which the table no longer prints in full
    for said in (
        "in one run, one after the other, fit took 28 s, 54 s and 1,014 s at 16, 64 and 1024 rows, SetFit "
        "32 s, 69 s and 1,228 s, so fit finished first at each size, 17% sooner at 1024 rows",
        "Under 0.16, in one run: fit 28 s, 54 s and 1,014 s, SetFit 32 s, 69 s and 1,228 s",
        "in one run at 16 and 64 rows: fit 28 s and 54 s again, SetFit 32 s and 69 s (1a07f4d, 22:50",
    ):
        assert flat(said) in page, said
    walls = [wall("5359425", n, s)[0] for n in (16, 64, 1024) for s in ("fit", "setfit")]
    assert walls == [28, 32, 54, 69, 1014, 1228]
    assert [wall("1a07f4d", n, s)[0] for n in (16, 64) for s in ("fit", "setfit")] == [28, 32, 54, 69]
    assert (wall("1d131fe-dirty", 16, "fit")[0], wall("1d131fe-dirty", 64, "fit")[0]) == (41, 90)
    # "The 16-, 64- and 256-row `fit` records ran under 0.17": every sample's fit; `fit-0.16` keeps 0.16's, and
    # none of the kept fit-0.15 ones is 0.16's
    assert flat("The 16-, 64- and 256-row `fit` records ran under 0.17") in page
    cells = [OUT / f"sst2-n{n}" / f"s{i}" for n in (16, 64, 256) for i in range(5)]  # the table's samples
    assert all(json.loads((c / "fit" / "fit.json").read_text())["version"] == "0.17.0" for c in cells)
    assert all(json.loads((c / "fit-0.16" / "fit.json").read_text())["version"] == "0.16.0" for c in cells)
    assert all(json.loads((c / "fit-0.15" / "fit.json").read_text())["version"] < "0.16" for c in cells)
    # "The 1024-row `fit` records are 0.13-0.15's: not rerun under 0.16 or 0.17"
    assert flat("The 1024-row `fit` records are 0.13-0.15's: not rerun under 0.16 or 0.17") in page
    versions = {json.loads((OUT / "sst2-n1024" / f"s{i}" / "fit" / "fit.json").read_text())["version"]
                for i in range(5)}  # fmt: skip
    assert min(versions) >= "0.13" and max(versions) < "0.16"
    # "(`fit-0.15`: 0.10's at 16 and 64 rows, but 0.15's in samples 0 and 3 of 16 rows; 0.11-0.15 at 256)"
    said = "(`fit-0.15`: 0.10's at 16 and 64 rows, but 0.15's in samples 0 and 3 of 16 rows; 0.11-0.15 at 256)"
    assert flat(said) in page
    kept = {(c.parent.name, c.name): json.loads((c / "fit-0.15" / "fit.json").read_text())["version"] for c in cells}
    small = {k: v for k, v in kept.items() if k[0] != "sst2-n256"}
    assert {k for k, v in small.items() if v != "0.10.0"} == {("sst2-n16", "s0"), ("sst2-n16", "s3")}
    assert {small[("sst2-n16", "s0")], small[("sst2-n16", "s3")]} == {"0.15.0"}


def test_the_confirmation_is_tested_once_all_its_samples_ran_and_apart_from_the_table(small_data, tmp_path) -> None:
    """The registered confirmation (samples 5-9 at 256 rows) prints its rows and its one test only when every sample
    has both records; its samples never enter the table's rows or paired tests (samples 0-4)."""
    import json

    def record(sample: int, system: str, accuracy: float) -> None:
        cell = tmp_path / "sst2-n256" / f"s{sample}"
        cell.mkdir(parents=True, exist_ok=True)
        rec = {"system": system, "accuracy": accuracy, "wall_s": 10.0, "p_above_chance": 0.001, "exit": 0}
        (cell / f"{system}.json").write_text(json.dumps(rec))

    def table() -> str:
        return small_data.table_text(tmp_path, "sst-2", [256])

    for sample in range(5):
        record(sample, "fit", 0.80 + sample / 1000)
        record(sample, "setfit", 0.79)
    before = table()
    for sample, lead in zip(range(5, 9), (0.010, 0.012, 0.008, 0.011)):
        record(sample, "fit", 0.70 + lead)
        record(sample, "setfit", 0.70)
    printed = table()
    assert "4 of 5 samples have both records (tested at all of them)" in printed
    assert "the one test" not in printed
    assert printed.split("\nconfirmation")[0] == before.split("\nidle")[0].split("\nCPU")[0].split("\nfit −")[0]
    record(9, "fit", 0.709)
    record(9, "setfit", 0.70)
    printed = table()
    assert "fit − setfit (the one test, two-sided paired t at 0.05): 5 samples: +0.010 ± 0.002" in printed
    assert "+0.010 +0.012 +0.008 +0.011 +0.009: ahead" in printed
    assert "  256  fit              5  0.802 ± 0.002" in printed  # samples 0-4 alone
    assert "  256  fit              5  0.710 ± 0.002" in printed  # the confirmation's row
    record(9, "setfit", 0.75)  # a sample far behind: no longer beyond noise
    assert ": no difference detected" in table()


def test_the_second_confirmation_tests_its_fifteen_samples_at_half_the_alpha(small_data, tmp_path) -> None:
    """The 16-row confirmation (samples 5-19, fit 0.17) is tested at 0.025, the second try at "ahead at one n": a
    lead at p between 0.025 and 0.05 is no difference; its rows print apart from the table's."""
    import json

    from scipy.stats import ttest_1samp

    confirmation = small_data.CONFIRMATIONS[1]
    assert (confirmation["n"], confirmation["samples"], confirmation["alpha"]) == (16, range(5, 20), 0.025)

    def record(sample: int, system: str, accuracy: float) -> None:
        cell = tmp_path / "sst2-n16" / f"s{sample}"
        cell.mkdir(parents=True, exist_ok=True)
        rec = {"system": system, "accuracy": accuracy, "wall_s": 10.0, "p_above_chance": 0.001, "exit": 0}
        (cell / f"{system}.json").write_text(json.dumps(rec))

    leads = [0.04, -0.03] * 7 + [0.02]  # a mean lead of +0.006, p between 0.025 and 0.05 below
    spread = 0.0
    while not 0.025 < ttest_1samp([x + spread for x in leads], 0.0).pvalue < 0.05:
        spread += 0.0005
    for sample, lead in zip(range(5, 20), leads):
        record(sample, "fit", 0.60 + lead + spread)
        record(sample, "setfit", 0.60)
    printed = small_data.table_text(tmp_path, "sst-2", [16])
    assert "confirmation, registered before it ran: n = 16, new samples 5-19, fit 0.17" in printed
    assert "(the one test, two-sided paired t at 0.025): 15 samples: +" in printed
    assert printed.rstrip().endswith("no difference detected") or ": no difference detected\n" in printed
    for sample in range(5, 20):
        record(sample, "fit", 0.65 + sample / 1000)
    assert ": ahead" in small_data.table_text(tmp_path, "sst-2", [16])
    assert "   16  fit" not in small_data.table_text(tmp_path, "sst-2", [16]).split("\nconfirmation")[0]


def test_the_lpft_cpu_seconds_at_1024_rows_are_the_records() -> None:
    """'260-273 CPU s in the 3 samples that recorded it': the table prints no CPU line for LP-FT."""
    import json

    assert flat("(260-273 CPU s in the 3 samples that recorded it, one thread;") in flat(PAGE.read_text("utf-8"))
    records = [json.loads(p.read_text()) for p in sorted((OUT / "sst2-n1024").glob("s[0-4]/fit-lpft.json"))]
    cpu = [r["cpu_s"] for r in records if "cpu_s" in r]
    assert (len(records), len(cpu), round(min(cpu)), round(max(cpu))) == (5, 3, 260, 273)


def test_fit_is_ahead_of_setfit_at_16_rows_by_the_second_confirmation_counted_from_the_records(small_data) -> None:
    """The first confirmation (256 rows, fit 0.16) is no lead; the second (16 rows, fit 0.17, 15 new samples) is
    ahead at 0.025, and the page's per-sample counts are the records': dev rows right, fit's yes count, the versions
    and the seeds."""
    import json

    page = flat(PAGE.read_text(encoding="utf-8"))
    first, second = small_data.CONFIRMATIONS
    # "`fit` before 0.17 was level with SetFit at every size measured, ahead at none": 0.16's records at 16, 64 and
    # 256 rows (`fit-0.16`), 0.13-0.15's at 1024 (`fit`); no size's paired test below 0.05 over the four sizes
    assert flat("`fit` before 0.17 was level with SetFit at every size measured, ahead at none") in page
    for n, system in ((16, "fit-0.16"), (64, "fit-0.16"), (256, "fit-0.16"), (1024, "fit")):
        diffs = small_data._paired(OUT, "sst2", n, system, "setfit", "accuracy")
        assert len(diffs) == 5 and small_data._paired_p(diffs) >= 0.05 / 4
    diffs = small_data._paired(OUT, "sst2", first["n"], "fit", "setfit", "accuracy", first["samples"])
    assert len(diffs) == 5 and small_data._paired_p(diffs) >= 0.05
    assert flat("(5-9, seeds 256005-256009, drawn as the others)") in page
    assert [1000 * first["n"] + i for i in first["samples"]] == list(range(256005, 256010))
    diffs = small_data._paired(OUT, "sst2", second["n"], "fit", "setfit", "accuracy", second["samples"])
    assert len(diffs) == 15 and min(diffs) >= 0 and small_data._paired_p(diffs) < second["alpha"] == 0.025
    rows = sorted(round(d * 872) for d in diffs)
    assert flat("more dev rows right in 14 samples, from 1 to 101 of 872, the same number in 1, fewer in none") in page
    assert (sum(r > 0 for r in rows), rows[1], rows[-1], rows.count(0)) == (14, 1, 101, 1)
    cells = [OUT / "sst2-n16" / f"s{i}" for i in second["samples"]]
    fits = [json.loads((c / "fit" / "fit.json").read_text()) for c in cells]
    assert {f["version"] for f in fits} == {"0.17.0"} and sum(f["success"] for f in fits) == 3
    assert flat("It said yes in 3 of 15 there") in page
    assert flat("(5-19, seeds 16005-16019, drawn as the others)") in page
    assert [1000 * second["n"] + i for i in second["samples"]] == list(range(16005, 16020))


def test_the_1024_row_lpft_figures_the_table_no_longer_prints() -> None:
    """'Its first 3 samples had been under `fit` in each (−0.013 ± 0.005, p = 0.04)', and 'their samples 3 and 4 ran
    under 0.16', from the records."""
    import json
    import statistics

    from scipy.stats import ttest_1samp

    page = flat(PAGE.read_text(encoding="utf-8"))
    assert flat("Its first 3 samples had been under `fit` in each (−0.013 ± 0.005, p = 0.04)") in page
    cells = [OUT / "sst2-n1024" / f"s{i}" for i in range(5)]
    diffs = [json.loads((c / "fit-lpft.json").read_text())["accuracy"] - json.loads((c / "fit.json").read_text())[
        "accuracy"] for c in cells[:3]]  # fmt: skip
    assert max(diffs) < 0
    assert (round(statistics.mean(diffs), 3), round(statistics.stdev(diffs), 3)) == (-0.013, 0.005)
    assert f"{ttest_1samp(diffs, 0.0).pvalue:.2g}" == "0.04"
    assert flat("(their samples 3 and 4 ran under 0.16, 2026-12-07 20:10)") in page
    for c in cells[3:]:
        for system in ("fit-lpft", "fit-finetune"):
            assert json.loads((c / system / "fit.json").read_text())["version"] == "0.16.0"


# The README's and the fit guide's figures from these records: (the file, its words, the printed fragments)
GUIDE = REPO / "docs" / "guide" / "fit.md"
QUOTES = [
    (REPO / "README.md", "On 15 samples of 16 SST-2 rows it scored 0.677 on all 872 dev rows, SetFit 0.633 on the "
     "same rows (ahead, p = 0.00015); on 64 rows they tie (0.745 and 0.746, 5 samples)",
     ("   16  fit             15  0.677 ", "   16  setfit          15  0.633 ", "15 samples: +0.044 ± 0.033, "
      "p = 0.00015;", "   64  fit              5  0.745 ", "   64  setfit           5  0.746 ")),
    (GUIDE, "On 15 samples of 16 SST-2 rows, scored on all 872 dev rows, `fit` (0.17) picked the contrastive model "
     "each time and scored 0.677 ± 0.036, SetFit 1.2.0 0.633 ± 0.054 on the same rows (paired +0.044 ± 0.033, "
     "p = 0.00015: ahead); the label names made the difference (on five other 16-row samples 0.16, without them, "
     "scored 0.631 and SetFit 0.640). On 5 samples of 64 rows they tie: `fit` 0.745 ± 0.048, SetFit 0.746 ± 0.049 "
     "(paired −0.000 ± 0.015, p = 0.95); the probe alone scored 0.700 and the default `train` 0.577 (0.548 under "
     "0.10's default)",
     ("   16  fit             15  0.677 ± 0.036       15/15        3/15  contrastive 15 ",
      "   16  setfit          15  0.633 ± 0.054 ", "   16  fit-0.16         5  0.631 ",
      "   16  setfit           5  0.640 ", "   64  fit              5  0.745 ± 0.048        5/5          5/5  "
      "contrastive 5 ", "   64  setfit           5  0.746 ± 0.049 ", "   64  5 samples: -0.000 ± 0.015, p = 0.95;",
      "   64  probe            5  0.700 ", "   64  train            5  0.577 ", "   64  train-0.10       5  0.548 ")),
    (GUIDE, "A whole `fit` of a 64-row file took 54 s on 2 idle CPU cores (SetFit on the "
     "same rows: 69 s)", ("   64  fit 54 s (0.744, 1a07f4d)   setfit 69 s (0.748, 1a07f4d)",)),
    (GUIDE, "at 1,024 rows it tied it (0.814 against 0.819, p = 0.4, 5 samples)",
     (" 1024  fit-lpft         5  0.814 ", " 1024  fit              5  0.819 ", " 1024  5 samples: -0.005 ± 0.012, "
      "p = 0.4;")),
]  # fmt: skip


@pytest.mark.parametrize(("path", "said", "printed"), QUOTES, ids=[q[1][:40] for q in QUOTES])
def test_the_readme_and_the_fit_guide_quote_the_tables(tables, path, said: str, printed: tuple[str, ...]) -> None:
    assert flat(said) in flat(path.read_text(encoding="utf-8")), f"{path.name} no longer says {said!r}"
    lines = "\n".join(p for _, p in tables).splitlines()
    for fragment in printed:
        assert any(fragment in line for line in lines), f"no printed line holds {fragment!r}"
