"""Issue 17's measurements: discriminator-guided sampling against the plain generator.

    # MNIST: FID / precision / recall of n images, guide none vs drs vs is (and mh on request)
    python scripts/guided_sampling.py mnist RUN_DIR [--n 10000] [--guides none,drs,is]
    # COCO: BLEU-2..5 (all 10k test captions) and Self-BLEU-5 of n samples per temperature,
    # unguided vs guided, over several sampling seeds
    python scripts/guided_sampling.py coco RUN_DIR [--n 2000] [--seeds 0,1,2]
           [--temperatures 0.6,0.7,0.8,0.9,1.0,1.1,1.2,1.3] [--guides is] [--candidates 10]
    # Oracle: NLL-oracle of the samples vs NLL-gen of the test sequences per temperature
    python scripts/guided_sampling.py oracle RUN_DIR [same options as coco]

RUN_DIR is a finished `ganrun train` run. Unless `--no-calibrate` (and a calibrated/ exists),
the script first runs `ganrun calibrate` on it (default options, timed). Results go to
`--out` (default RUN_DIR/guided_sampling/): `<mode>.json` (every number with its definition),
`<mode>.md` (the tables) and, for text, `<mode>_curves.png` (BLEU-5 vs Self-BLEU-5 or
NLL-oracle vs NLL-gen, seed means, guided next to unguided). Every metric is ganrun's own
(ganrun.evaluate.scores, ganrun.evaluate.text, ganrun.evaluate.bleu); nothing is re-implemented.
Run it on a quiet machine: samples/s is wall-clock.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402

from ganrun import build  # noqa: E402
from ganrun.calibrate import CALIBRATED_DIR, CalibrateOptions, calibrate_run  # noqa: E402
from ganrun.guide import COST_DEFINITIONS, GuideOptions  # noqa: E402
from ganrun.guide_sources import draw_guided, run_source  # noqa: E402


def guide_options(name: str, args) -> GuideOptions:
    return GuideOptions(name, accept=args.accept, steps=args.steps, candidates=args.candidates)


def calibrated(run: Path, args) -> dict:
    """calibration.json of the run (calibrating first unless told not to)."""
    path = run / CALIBRATED_DIR / "calibration.json"
    if not args.no_calibrate or not path.is_file():
        calibrate_run(run, CalibrateOptions())
    return json.loads(path.read_text())


def mnist(run: Path, args) -> tuple[dict, str]:
    from ganrun.evaluate import scores  # noqa: PLC0415
    from ganrun.evaluate.feature_net import EvaluatorOptions, load_or_train  # noqa: PLC0415
    from ganrun.sample import generate  # noqa: PLC0415

    calibration = calibrated(run, args)
    source = run_source(run)
    data = build.data(OmegaConf.load(run / "experiment.yaml"))
    scorer = scores.Scorer(load_or_train(data, EvaluatorOptions()), data, args.n)
    source.proposer(source.critic, source.scaling)(16, 0)  # trace once, outside the timing
    generate(source.generator, source.pixel_range, 16, 0)
    rows = {}
    for name in args.guides:
        for seed in args.seeds:
            if name == "none":  # the plain generator (ganrun.sample.generate), no classifier
                started = time.perf_counter()
                images = generate(source.generator, source.pixel_range, args.n, seed,
                                  frequencies=data.spec.class_frequencies)
                seconds = time.perf_counter() - started
                cost = {"guide": "none", "samples_per_second": args.n / seconds,
                        "acceptance": 1.0, "seconds": seconds}
            else:
                arrays, cost = draw_guided(run, "latest", guide_options(name, args), args.n,
                                           seed, source=source)
                images = arrays[0]
            section = scorer.score(images, f"{name}, seed {seed}")
            rows[f"{name} seed {seed}"] = {
                "guide": name, "seed": seed, "cost": cost,
                **{k: section[k]["value"] for k in ("fid", "precision", "recall", "kid")},
                "definitions": {k: section[k]["definition"] for k in ("fid", "precision",
                                                                      "recall", "kid")}}
    lines = ["| guide | seed | FID | precision | recall | samples/s | acceptance |",
             "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['guide']} | {r['seed']} | {r['fid']:.2f} | {r['precision']:.3f} | "
              f"{r['recall']:.3f} | {r['cost']['samples_per_second']:.0f} | "
              f"{r['cost']['acceptance']:.3f} |" for r in rows.values()]
    lines.append(f"\nCalibration: {calibration['seconds']:.1f} s, held-out accuracy "
                 f"{calibration['accuracy']['value']:.3f}, ECE {calibration['ece']['value']:.3f}"
                 f" (raw {calibration['ece_raw']['value']:.3f}); {args.n} images per row "
                 "against the test split.")
    return {"rows": rows, "calibration": calibration}, "\n".join(lines)


def text_rows(run: Path, args, oracle: bool) -> dict:
    """{guide: {seed: {temperature: numbers}}} for guide none and each of args.guides."""
    from ganrun.evaluate.guided import guided_draw  # noqa: PLC0415
    from ganrun.evaluate.text import generator_section, nll_gen  # noqa: PLC0415

    source = run_source(run)
    data = build.data(OmegaConf.load(run / "experiment.yaml"))
    source.proposer(source.critic, source.scaling)(16, 0)  # trace once, outside the timing
    result = {}
    for name in ["none", *[g for g in args.guides if g != "none"]]:
        options = guide_options(name, args)
        for seed in args.seeds:
            for t in args.temperatures:
                costs, drawn = [], []
                draw = (plain_draw if name == "none" else guided_draw)(source, options, costs,
                                                                        drawn)
                started = time.perf_counter()
                section = generator_section(source.generator, data, args.n, t, seed, args.n,
                                            with_nll=False, draw=draw)
                row = {k: section[k]["value"] for k in section if k.startswith(("bleu",
                                                                                 "self_bleu"))}
                row["cost"] = costs[0]
                if oracle:
                    row["nll_oracle"] = data.oracle.nll(drawn[0])[0]
                    tempered = lambda ids, training=False, t=t: (  # noqa: E731
                        source.generator(ids, training=training) / t)
                    row["nll_gen_tempered"] = nll_gen(tempered, data.x_test, data.pad_id)
                    if name != "none":
                        row["nll_gen"] = row["nll_gen_tempered"] + residual_nll_shift(
                            source, data, t, seed)
                    else:
                        row["nll_gen"] = row["nll_gen_tempered"]
                row["seconds_with_metrics"] = time.perf_counter() - started
                result.setdefault(name, {}).setdefault(str(seed), {})[f"{t:g}"] = row
                print(name, seed, t, {k: round(v, 4) for k, v in row.items()
                                      if isinstance(v, float)}, flush=True)
    return result


def plain_draw(source, options, costs: list, drawn: list):
    """ganrun.evaluate.text.draw_ids, timed like a guide (acceptance 1), no classifier."""
    from ganrun.evaluate.text import draw_ids  # noqa: PLC0415

    def draw(generator, n: int, seed: int, temperature: float = 1.0):
        started = time.perf_counter()
        ids, description = draw_ids(generator, n, seed, temperature)
        seconds = time.perf_counter() - started
        costs.append({"guide": "none", "samples_per_second": n / seconds, "acceptance": 1.0,
                      "seconds": seconds})
        drawn.append(ids)
        return ids, description
    return draw


def residual_nll_shift(source, data, temperature: float, seed: int, count: int = 10000) -> float:
    """Per-token NLL change of the residual model p_T(x) exp(l(x)) / Z on the test sequences:
    mean(log Z - l(x_test)) / L, Z estimated by the mean of exp(l) over `count` proposals at
    temperature T (the residual-EBM estimate, Deng et al. 2020; an estimate of the guided
    target, which importance resampling with N candidates only approaches as N grows)."""
    from ganrun.calibrate import score  # noqa: PLC0415

    _, logits = source.proposer(source.critic, source.scaling, temperature)(count, 10**6 + seed)
    log_z = float(np.log(np.mean(np.exp(logits - logits.max()))) + logits.max())
    test_logits = score(source.critic, [data.x_test], source.scaling)
    return float(np.mean(log_z - test_logits)) / data.x_test.shape[1]


def summarize(result: dict, x: str, y: str, higher_is_better: bool,
              max_temperature: float = float("inf")) -> dict:
    """Seed means and spreads (std over seeds, ddof 0 for 1 seed) per guide and temperature,
    and for each guided point the margin over the unguided curve interpolated at its x (the
    curve through the unguided points with T <= max_temperature)."""
    summary = {}
    for name, seeds in result.items():
        temps = next(iter(seeds.values())).keys()
        summary[name] = {t: {k: {"mean": float(np.mean([seeds[s][t][k] for s in seeds])),
                                 "spread": float(np.std([seeds[s][t][k] for s in seeds]))}
                             for k in seeds[next(iter(seeds))][t] if k != "cost"}
                         for t in temps}
        for t in temps:
            summary[name][t]["samples_per_second"] = float(np.mean(
                [seeds[s][t]["cost"]["samples_per_second"] for s in seeds]))
            summary[name][t]["acceptance"] = seeds[next(iter(seeds))][t]["cost"]["acceptance"]
    base = {t: row for t, row in summary["none"].items() if float(t) <= max_temperature}
    xs = np.array([base[t][x]["mean"] for t in base])
    order = np.argsort(xs)
    for name in summary:
        for row in summary[name].values():
            curve = np.interp(row[x]["mean"], xs[order],
                              np.array([base[u][y]["mean"] for u in base])[order],
                              left=np.nan, right=np.nan)
            sign = 1.0 if higher_is_better else -1.0
            row["margin_over_unguided"] = float(sign * (row[y]["mean"] - curve))
    return summary


def plot(summary: dict, x: str, y: str, path: Path, xlabel: str, ylabel: str) -> None:
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    figure, axes = plt.subplots(figsize=(6, 4.5))
    for name, rows in summary.items():
        ts = list(rows)
        axes.errorbar([rows[t][x]["mean"] for t in ts], [rows[t][y]["mean"] for t in ts],
                      xerr=[rows[t][x]["spread"] for t in ts],
                      yerr=[rows[t][y]["spread"] for t in ts], fmt="o-" if name == "none"
                      else "s--", label="unguided" if name == "none" else f"guide={name}")
        for t in ts:
            axes.annotate(t, (rows[t][x]["mean"], rows[t][y]["mean"]), fontsize=7,
                          textcoords="offset points", xytext=(3, 3))
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def text_table(summary: dict, keys: list[str]) -> str:
    lines = ["| guide | T | " + " | ".join(keys) + " | margin | samples/s | acceptance |",
             "|---" * (len(keys) + 5) + "|"]
    for name, rows in summary.items():
        for t, row in rows.items():
            cells = " | ".join(f"{row[k]['mean']:.4f} ± {row[k]['spread']:.4f}" for k in keys)
            lines.append(f"| {name} | {t} | {cells} | {row['margin_over_unguided']:+.4f} | "
                         f"{row['samples_per_second']:.0f} | {row['acceptance']:.3f} |")
    return "\n".join(lines)


def text(run: Path, args, oracle: bool, out: Path) -> tuple[dict, str]:
    calibration = calibrated(run, args)
    result = text_rows(run, args, oracle)
    if oracle:
        x, y, higher = "nll_gen", "nll_oracle", False
        labels = ("NLL-gen (nats/token, test sequences)", "NLL-oracle (nats/token, samples)")
        keys = ["nll_gen", "nll_oracle"]
    else:
        x, y, higher = "self_bleu5", "bleu5", True
        labels = (f"Self-BLEU-5 ({args.n} samples)", "BLEU-5 vs all test captions")
        keys = ["bleu2", "bleu3", "bleu4", "bleu5", "self_bleu5"]
    # NLL-gen is lowest near T = 1 and rises on both sides; the quality-diversity frontier is
    # the T <= 1 branch (lower NLL-oracle for higher NLL-gen), so the oracle margin uses it.
    summary = summarize(result, x, y, higher, 1.0 if oracle else float("inf"))
    plot(summary, x, y, out / f"{args.mode}_curves.png", *labels)
    notes = (f"\n\n{args.n} samples per point; mean ± spread (std) over seeds {args.seeds}; "
             f"margin = the point's {y} minus the unguided curve's (linear interpolation of "
             f"the seed means at the point's {x}; nan outside the curve; positive = better"
             + ("; the unguided curve is its T <= 1 branch" if oracle else "") + "). "
             f"Calibration: {calibration['seconds']:.1f} s, held-out accuracy "
             f"{calibration['accuracy']['value']:.3f}, ECE {calibration['ece']['value']:.3f}.")
    if oracle:
        notes += (" Guided NLL-gen is the residual-EBM estimate (residual_nll_shift in this "
                  "script); unguided NLL-gen is the tempered model's exact NLL.")
    return ({"runs": result, "summary": summary, "calibration": calibration,
             "definitions": COST_DEFINITIONS}, text_table(summary, keys) + notes)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", choices=("mnist", "coco", "oracle"))
    parser.add_argument("run", type=Path)
    parser.add_argument("--n", type=int, default=None, help="samples (mnist 10000, text 2000)")
    parser.add_argument("--guides", default=None, help="mnist: none,drs,is; text: is")
    parser.add_argument("--seeds", default=None, help="mnist: 0; text: 0,1,2")
    parser.add_argument("--temperatures", default="0.6,0.7,0.8,0.9,1.0,1.1,1.2,1.3")
    parser.add_argument("--accept", type=float, default=0.1)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--candidates", type=int, default=10)
    parser.add_argument("--no-calibrate", action="store_true",
                        help="reuse RUN/calibrated/ when it exists")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    image = args.mode == "mnist"
    args.n = args.n or (10000 if image else 2000)
    args.guides = (args.guides or ("none,drs,is" if image else "is")).split(",")
    args.seeds = [int(s) for s in (args.seeds or ("0" if image else "0,1,2")).split(",")]
    args.temperatures = [float(t) for t in args.temperatures.split(",")]
    out = args.out or args.run / "guided_sampling"
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    if image:
        result, table = mnist(args.run, args)
    else:
        result, table = text(args.run, args, args.mode == "oracle", out)
    result["seconds"] = time.perf_counter() - started
    result["load_average"] = os.getloadavg()
    (out / f"{args.mode}.json").write_text(json.dumps(result, indent=1, default=str) + "\n")
    (out / f"{args.mode}.md").write_text(table + "\n")
    print(table)
    print(f"Written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
