"""Synthetic participants — `tracekd humanstudy simulate` fills a study's database with them (seeded,
with a chosen effect) so the whole analysis runs before anyone is paid; `power` estimates by
simulation how many participants detect a given difference.

The model (stated, not fitted): a page's latent interpretability is 3 + effect[type] + u_participant
+ v_item (u ~ N(0, 0.5²), v ~ N(0, 0.3²)); each interpretability item is it plus N(0, 0.7²) noise,
rounded and clipped to 1..5; each load item is 3 − 0.6·effect[type] + u′ + noise (clipped). A wrong
step is spotted ("no") with probability Φ(0.3 + 0.8·effect[type]), and then named right with
probability 0.8; a correct trace draws "no" (a false alarm) with probability 0.15; 5 % of answers
are "unsure". Seconds on a page are log-normal around 20 s + 3 s per step. Of the participants,
4 % answer at random and fail attention checks, 3 % click through (about 1.5 s a page): the
analysis's exclusions should remove both.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from tracekd.errors import InputError
from tracekd.humanstudy.app import shown_steps
from tracekd.humanstudy.db import Answers, StudyFull
from tracekd.humanstudy.spec import (
    ATTENTION_PASS,
    ATTENTION_QUESTION,
    DEMOGRAPHICS,
    INTERPRETABILITY,
    LOAD,
    VERIFY,
    WRONG_STEP,
    Study,
)


@dataclass(frozen=True)
class Params:
    sd_participant: float = 0.5
    sd_item: float = 0.3
    sd_noise: float = 0.7
    load_per_effect: float = -0.6
    detect_base: float = 0.3  # probit of spotting a wrong step at effect 0
    detect_per_effect: float = 0.8
    name_right: float = 0.8
    false_alarm: float = 0.15
    unsure: float = 0.05
    inattentive: float = 0.04
    speeders: float = 0.03


def parse_effects(items: list[str], types: list[str]) -> dict[str, float]:
    """`TYPE=SHIFT` strings (Likert points of interpretability); unnamed types shift 0."""
    out = dict.fromkeys(types, 0.0)
    for it in items:
        name, sep, value = it.partition("=")
        if not sep or name not in out:
            raise InputError(f"{it!r}: give TYPE=SHIFT with TYPE one of {', '.join(types)}", key="--effect")
        try:
            out[name] = float(value)
        except ValueError:
            raise InputError(f"{it!r}: SHIFT must be a number", key="--effect") from None
    return out


def _likert(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x), 1, 5).astype(int)


def draw_pages(study: Study, slots: list[int], effects: dict[str, float], rng: np.random.Generator, p: Params):
    """Every page answer of the participants in `slots`: a dict of arrays, one entry per page."""
    items = sorted(study.items)
    kind = rng.choice(3, size=len(slots), p=[1 - p.inattentive - p.speeders, p.inattentive, p.speeders])
    u = rng.normal(0, p.sd_participant, len(slots))
    u_load = rng.normal(0, p.sd_participant, len(slots))
    v = dict(zip(items, rng.normal(0, p.sd_item, len(items))))
    rows = [(i, j, page) for i, s in enumerate(slots) for j, page in enumerate(study.plans[s])]
    n = len(rows)
    who = np.array([i for i, _, _ in rows], dtype=int)
    attention = np.array([page.attention is not None for _, _, page in rows])
    eff = np.array([0.0 if page.type is None else effects[page.type] for _, _, page in rows])
    vi = np.array([0.0 if page.item is None else v[page.item] for _, _, page in rows])
    wrong = np.array([page.wrong for _, _, page in rows])
    nsteps = np.array([len(shown_steps(study, page)) for _, _, page in rows])
    out = {"who": who, "page": np.array([j for _, j, _ in rows]), "attention": attention}
    base = 3 + eff + u[who] + vi
    for q in INTERPRETABILITY:
        out[q] = _likert(base + rng.normal(0, p.sd_noise, n))
    for q in LOAD:
        out[q] = _likert(3 + p.load_per_effect * eff + u_load[who] + rng.normal(0, p.sd_noise, n))
    says_no = np.where(
        wrong, rng.random(n) < stats.norm.cdf(p.detect_base + p.detect_per_effect * eff), rng.random(n) < p.false_alarm
    )
    verify = np.where(says_no, "no", "yes").astype(object)
    verify[rng.random(n) < p.unsure] = "unsure"
    true_step = np.array(
        [study.trace(page.item, page.type).wrong.step if page.wrong else 1 for _, _, page in rows], dtype=int
    )
    guess = rng.integers(1, nsteps + 1)
    out[WRONG_STEP] = np.where(wrong & (rng.random(n) < p.name_right), true_step, guess)
    seconds = rng.lognormal(np.log(20 + 3 * nsteps), 0.4)
    random_answers = kind[who] > 0
    for q in (*INTERPRETABILITY, *LOAD):
        out[q] = np.where(random_answers, rng.integers(1, 6, n), out[q])
        out[q] = np.where(attention & ~random_answers & (q == ATTENTION_QUESTION), ATTENTION_PASS, out[q])
    verify = np.where(random_answers, rng.choice(np.array(["yes", "no", "unsure"], dtype=object), n), verify)
    out[VERIFY] = verify
    out["seconds"] = np.where(kind[who] == 2, rng.uniform(0.8, 2.2, n), seconds)
    out["kind"] = kind
    return out


def simulate(
    study: Study, store: Answers, participants: int | None, effects: dict[str, float], seed: int, p: Params = Params()
) -> int:
    """Add synthetic participants (each through the same saving path as the web app); returns how many."""
    free = len(study.plans) - len(store.all_participants())
    n = free if participants is None else participants
    if n > free:
        raise InputError(f"only {free} participant slot(s) are free in this study", key="--participants")
    rng = np.random.default_rng(seed)
    t0 = 1.0e9
    people = []
    for k in range(n):
        try:
            me, _ = store.join(f"sim-{seed}-{k}", len(study.plans), "simulated", None, now=t0)
        except StudyFull:
            break
        people.append(me)
    pages = draw_pages(study, [me.slot for me in people], effects, rng, p)
    rows_of: dict[int, list[int]] = {}
    for r, who in enumerate(pages["who"]):
        rows_of.setdefault(int(who), []).append(r)
    for i, me in enumerate(people):
        now = t0
        for index in (0, 1):
            me = _save(store, me, index, {}, now, now + 5)
            now += 5
        for r in rows_of.get(i, []):
            values = {q: str(pages[q][r]) for q in (*INTERPRETABILITY, *LOAD)}
            values[VERIFY] = str(pages[VERIFY][r])
            if values[VERIFY] == "no":
                values[WRONG_STEP] = str(pages[WRONG_STEP][r])
            me = _save(store, me, 2 + int(pages["page"][r]), values, now, now + float(pages["seconds"][r]))
            now += float(pages["seconds"][r])
        demo = {q: str(rng.choice(opts[:-1])) for q, opts in DEMOGRAPHICS.items()}
        _save(store, me, 2 + len(study.plans[me.slot]), demo, now, now + 10, last=True)
    return len(people)


def _save(store: Answers, me, index: int, values: dict[str, str], shown: float, saved: float, last: bool = False):
    store.shown(me, now=shown)
    if not store.save(me, index, values, last=last, now=saved):
        raise RuntimeError(f"page {index} of {me.pid} was not saved")
    return store.by_token(me.token)


def power(
    study: Study,
    sizes: list[int],
    effects: dict[str, float],
    compare: tuple[str, str],
    reps: int,
    seed: int,
    alpha: float = 0.05,
) -> list[dict]:
    """For each number of participants kept: the share of simulated studies in which the planned
    comparison of two types' interpretability (Wilcoxon signed-rank on participants' means,
    within-participant; Mann-Whitney U, between) has p < alpha, with a Wilson 95 % interval.
    Plans come from the study's design rules (`assign`), participants drawn attentive (n is the
    number kept after exclusions)."""
    from statsmodels.stats.proportion import proportion_confint

    from tracekd.humanstudy.design import assign

    a, b = compare
    types = list(study.spec.types)
    spec = study.spec
    clean = Params(inattentive=0.0, speeders=0.0)
    out = []
    for n in sizes:
        plans, _ = assign(
            sorted(study.items),
            types,
            spec.items_per_participant,
            n,
            spec.design,
            spec.verification_share,
            0,
            spec.seed,
        )
        sim = study.model_copy(update={"plans": plans})
        rng = np.random.default_rng([seed, n])
        hits = 0
        for _ in range(reps):
            d = draw_pages(sim, list(range(n)), effects, rng, clean)
            score = np.mean([d[q] for q in INTERPRETABILITY], axis=0)
            ptype = np.array([page.type for plan in plans for page in plan], dtype=object)
            means = {t: _means(d["who"], score, ptype == t, n) for t in (a, b)}
            if spec.design == "within":
                pv = stats.wilcoxon(means[a], means[b]).pvalue
            else:
                pv = stats.mannwhitneyu(means[a][~np.isnan(means[a])], means[b][~np.isnan(means[b])]).pvalue
            hits += bool(pv < alpha)
        lo, hi = proportion_confint(hits, reps, method="wilson")
        out.append({"participants": n, "power": hits / reps, "ci": [lo, hi], "reps": reps})
    return out


def _means(who: np.ndarray, score: np.ndarray, mask: np.ndarray, n: int) -> np.ndarray:
    total = np.bincount(who[mask], weights=score[mask], minlength=n)
    count = np.bincount(who[mask], minlength=n)
    with np.errstate(invalid="ignore", divide="ignore"):
        return total / count
