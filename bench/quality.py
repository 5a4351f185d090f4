"""How good the rewrites are: the built-in engine over the 1,529 real prompts and, when a language model
is configured, a sample through the LLM engine judged blind against the original (`make quality`, issue 12
section D).

Prints a report and writes it as JSON to data/quality-report.json (``--out PATH`` for another file).
Each figure is a pure function of the original, the output and the run's data, tested on hand-made
inputs in tests/test_quality_report.py; the targets are the issue's.

    make quality                        the whole CSV (about two minutes on 2 cores)
    make quality ARGS="--sample 50"     50 prompts (default 20) through the language model, when one is
                                        configured (--llm: fail without one; --no-llm: never)
    make quality ARGS="--first 50"      only the first 50 prompts, for a quick look
"""

import argparse
import csv
import json
import logging
import math
import os
import re
import statistics
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))

from optimizer.builtin_engine import builtin  # noqa: E402 - needs the project on the path (run as a script)
from optimizer.builtin_engine.language import detect_language  # noqa: E402
from tests.optimizer.builtin_engine.rubric_cases import GAMING_CASES, PAIRS  # noqa: E402

PROMPTS_CSV = PROJECT_ROOT.parent / "shared" / "data" / "awesome-chatgpt-prompts.csv"
REPORT_PATH = PROJECT_ROOT / "data" / "quality-report.json"
TOP_ADDED = 15
TOP_QUESTIONS = 10
SAMPLES = 5
GAMING_TARGET = 50
NEAR_LENGTH = 1.25  # a prompt with no serious finding stays within this multiple of its length

TAG_ONLY = re.compile(r"</?[A-Za-z][\w.:-]*(?:\s[^<>]*)?/?>")
OPENING_TAG = re.compile(r"<([A-Za-z][\w.:-]*)(?:\s[^<>]*)?>")
CLOSING_TAG = re.compile(r"</([A-Za-z][\w.:-]*)\s*>")
TAG_NAME = re.compile(r"<(/?)[A-Za-z][\w.:-]*>")
NUMBER = re.compile(r"\d+")
QUOTED = re.compile(r"“[^”]*”|\"[^\"]*\"")
HEADING = re.compile(r"(#{1,6})\s+(\S.*)")
HEADING_MARKUP_ONLY = re.compile(r"#{1,6}")
CODE_FENCE = re.compile(r"(```|~~~)")
PERSONA = re.compile(r"\b(?:act|acting) (?:as|like)\b|\bpretend\b|\brole[- ]?play\b|\byou are\b", re.I)
FIRST_REQUEST = re.compile(r"\bmy first [\w\- ]{0,40}?\b(?:is|will be)\b[^\n]*", re.I)
FIRST_REQUEST_KEY = 60  # characters of the sentence looked for in the output (it may be split after)
LANGUAGE_NAMES = (
    "Arabic", "Bengali", "Chinese", "Czech", "Danish", "Dutch", "Finnish", "French", "German", "Greek",
    "Hebrew", "Hindi", "Hungarian", "Indonesian", "Italian", "Japanese", "Korean", "Norwegian", "Persian",
    "Polish", "Portuguese", "Romanian", "Russian", "Spanish", "Swedish", "Thai", "Turkish", "Ukrainian",
    "Urdu", "Vietnamese",
)  # fmt: skip
ANSWER_IN_LANGUAGE = re.compile(
    r"\b(?:answer|reply|respond|write|response|responses|replies|output)\b[^.\n]*?\bin ("
    + "|".join(LANGUAGE_NAMES)
    + r")\b",
    re.I,
)


# --- the figures: pure functions of one original and its output ---------------------------------
def normalised(line: str) -> str:
    return " ".join(line.split())


def normalised_lines(text: str) -> list[str]:
    """The text's non-empty lines with their whitespace collapsed."""
    return [line for line in map(normalised, text.splitlines()) if line]


def first_line_out_of_order(original: str, output: str) -> str | None:
    """The first line of the original that the output lacks or has out of order; None when every
    non-empty line of the original is a line of the output, in the original's order."""
    lines = normalised_lines(output)
    position = 0
    for line in normalised_lines(original):
        try:
            position = lines.index(line, position) + 1
        except ValueError:
            return line
    return None


def headings(text: str) -> list[str]:
    """The Markdown (ATX) heading lines of the text, normalised, outside code fences."""
    found, fenced = [], False
    for line in normalised_lines(text):
        if CODE_FENCE.match(line):
            fenced = not fenced
        elif not fenced and HEADING.fullmatch(line):
            found.append(line)
    return found


def added_lines(original: str, output: str) -> list[str]:
    """The output's lines that are not lines of the original, each once, in output order; a line that
    is only an XML-like tag, only heading markup, or one of the original's own headings at another
    level is markup around the author's text, not added text."""
    present = set(normalised_lines(original))
    own_headings = {HEADING.fullmatch(line).group(2) for line in headings(original)}
    added = []
    for line in dict.fromkeys(normalised_lines(output)):
        heading = HEADING.fullmatch(line)
        if (
            line in present
            or TAG_ONLY.fullmatch(line)
            or HEADING_MARKUP_ONLY.fullmatch(line)
            or (heading and heading.group(2) in own_headings)
        ):
            continue
        added.append(line)
    return added


def line_template(line: str) -> str:
    """The line with what varies between outputs masked (tag names, numbers, quoted text), so one
    fixed sentence with a different tag or count in each output is counted as the one it is."""
    line = QUOTED.sub("“…”", line)
    return NUMBER.sub("N", TAG_NAME.sub(r"<\1…>", line))


def is_json_prompt(text: str) -> bool:
    """The prompt is a JSON object or array and nothing else (168 of the CSV's prompts)."""
    try:
        return isinstance(json.loads(text), dict | list)
    except ValueError:
        return False


def json_kept_whole(original: str, output: str) -> bool:
    return original.strip() in output


def reads_as_english(text: str) -> bool:
    """English by the detector, or written in unaccented Latin letters only: keyword and JSON image
    prompts, which a detector can take for Portuguese, are English whatever it says."""
    return detect_language(text) == "English" or all(char.isascii() for char in text if char.isalpha())


def english_lines_added(original: str, output: str) -> list[str]:
    """Added lines of four words or more that read as English, in an output of a prompt that does not."""
    if reads_as_english(original):
        return []
    return [
        line
        for line in added_lines(original, output)
        if len(line.split()) >= 4 and detect_language(line) == "English"
    ]


def other_language_requests(original: str, output: str) -> list[str]:
    """Added lines of an English prompt's output that ask for the answer in another language."""
    if not reads_as_english(original):
        return []
    return [line for line in added_lines(original, output) if ANSWER_IN_LANGUAGE.search(line)]


def first_request(text: str) -> str | None:
    """The start of a role-play prompt's "My first request is ..." sentence, or None."""
    if not PERSONA.search(text):
        return None
    found = FIRST_REQUEST.search(text)
    return normalised(found.group(0))[:FIRST_REQUEST_KEY] if found else None


def first_request_fenced(text: str, sentence: str) -> bool:
    """Whether the sentence sits inside a tag block of the text: after an opening ``<tag>`` line and
    before its closing ``</tag>`` line, or between a tag and its closing tag on its own line."""
    opened: list[str] = []
    lines = normalised_lines(text)
    for index, line in enumerate(lines):
        if sentence in line:
            before, _, after = line.partition(sentence)
            if OPENING_TAG.search(before) and CLOSING_TAG.search(after):
                return True
            closings = {f"</{tag}>" for tag in opened}
            return any(later in closings for later in lines[index + 1 :])
        closing, opening = CLOSING_TAG.fullmatch(line), OPENING_TAG.fullmatch(line)
        if closing and closing.group(1) in opened:
            del opened[len(opened) - 1 - opened[::-1].index(closing.group(1)) :]
        elif opening and not line.endswith("/>"):
            opened.append(opening.group(1))
    return False


def headings_kept(original: str, output: str) -> bool:
    """Every heading of the original is a line of the output, unchanged."""
    lines = set(normalised_lines(output))
    return all(heading in lines for heading in headings(original))


def length_ratio(original: str, output: str) -> float:
    return len(output) / len(original)


def has_serious_issue(diagnosis: dict) -> bool:
    return any(issue.get("severity") in ("high", "medium") for issue in diagnosis.get("issues", []))


def percentile(values: list[float], share: float) -> float:
    """The nearest-rank percentile (``share`` 0.5 for the median); 0 for no values."""
    if not values:
        return 0.0
    return sorted(values)[max(0, math.ceil(share * len(values)) - 1)]


def fraction(count: int, total: int) -> float:
    return round(count / total, 4) if total else 0.0


# --- the prompts ----------------------------------------------------------------------------------
def prompt_type_for(row: dict) -> str:
    """Our prompt type for a CSV row: image prompts are creative, developers' prompts coding, the rest
    general (the CSV's STRUCTURED marks a JSON/YAML body, not a kind of task)."""
    if row.get("type") == "IMAGE":
        return "creative"
    if row.get("for_devs", "").upper() == "TRUE":
        return "coding"
    return "general"


def csv_rows(path: Path = PROMPTS_CSV) -> list[dict]:
    csv.field_size_limit(sys.maxsize)  # one prompt is 144,260 characters long
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


# --- the built-in engine over the prompts ---------------------------------------------------------
def _check(value: float, target: float, *, at_most: bool = False) -> dict:
    """A figure and its target: a share (0-1) to reach, or a count not to exceed (``at_most``)."""
    met = value <= target if at_most else value >= target
    return {"value": value, "target": target, "at_most": at_most, "met": met}


def _sample(items: list, count: int = SAMPLES) -> list:
    return items[:count]


def builtin_report(rows: list[dict], *, limit: int, progress=None) -> dict:
    """Every figure of the built-in engine over ``rows`` (CSV rows); prompts longer than ``limit``
    characters are skipped and counted, as the app refuses them."""
    runs, skipped = [], 0
    started = time.perf_counter()
    for row in rows:
        text = row["prompt"]
        if len(text) > limit or not text.strip():
            skipped += 1
            continue
        prompt_type = prompt_type_for(row)
        result = builtin.optimize(text, prompt_type)
        runs.append({"name": row["act"], "text": text, "type": prompt_type, "result": result})
        if progress:
            progress(len(runs))
    optimize_s = time.perf_counter() - started

    started = time.perf_counter()
    for run in runs:
        output = run["result"]["design"]["optimized_prompt"]
        again = builtin.optimize(output, run["type"])["design"]["optimized_prompt"]
        run["stable"] = again == output
    stability_s = time.perf_counter() - started

    report = {
        "engine": builtin.VERSION,
        "prompts": len(rows),
        "runs": len(runs),
        "skipped_over_limit": skipped,
        "limit_chars": limit,
        "types": dict(Counter(run["type"] for run in runs).most_common()),
        "seconds": {"optimize": round(optimize_s, 1), "second_pass": round(stability_s, 1)},
    }
    report.update(_order(runs))
    report.update(_added(runs))
    report.update(_json_bodies(runs))
    report.update(_languages(runs))
    report.update(_role_play(runs))
    report.update(_headings(runs))
    report.update(_lengths(runs))
    report.update(_gains(runs))
    report["stability"] = _check(fraction(sum(run["stable"] for run in runs), len(runs)), 1.0)
    report["stability"]["changed"] = _sample([run["name"] for run in runs if not run["stable"]])
    report.update(_questions(runs))
    return report


def _output(run: dict) -> str:
    return run["result"]["design"]["optimized_prompt"]


def _order(runs: list[dict]) -> dict:
    failing = []
    for run in runs:
        line = first_line_out_of_order(run["text"], _output(run))
        if line is not None:
            failing.append({"name": run["name"], "line": line[:120]})
    figure = _check(fraction(len(runs) - len(failing), len(runs)), 0.95)
    return {"kept_in_order": figure | {"failing": len(failing), "samples": _sample(failing)}}


def _added(runs: list[dict]) -> dict:
    counts, templates = Counter(), Counter()
    with_additions = 0
    for run in runs:
        lines = added_lines(run["text"], _output(run))
        counts.update(lines)
        templates.update({line_template(line) for line in lines})
        with_additions += bool(lines)
    top, top_templates = (
        [
            {"line": line, "outputs": count, "share": fraction(count, len(runs))}
            for line, count in found.most_common(TOP_ADDED)
        ]
        for found in (counts, templates)
    )
    figure = _check(top[0]["share"] if top else 0.0, 0.10, at_most=True)
    return {
        "most_frequent_added_line": figure
        | {
            "outputs_with_additions": fraction(with_additions, len(runs)),
            "top": top,
            "top_templates": top_templates[:SAMPLES],
        }
    }


def _json_bodies(runs: list[dict]) -> dict:
    bodies = [run for run in runs if is_json_prompt(run["text"])]
    cut = [run["name"] for run in bodies if not json_kept_whole(run["text"], _output(run))]
    figure = _check(fraction(len(bodies) - len(cut), len(bodies)) if bodies else 1.0, 1.0)
    return {
        "json_kept_whole": figure | {"json_prompts": len(bodies), "cut": len(cut), "samples": _sample(cut)}
    }


def _languages(runs: list[dict]) -> dict:
    foreign, given_english, told = Counter(), [], []
    for run in runs:
        if not reads_as_english(run["text"]):
            language = detect_language(run["text"])
            foreign[language] += 1
            english = english_lines_added(run["text"], _output(run))
            if english:
                given_english.append({"name": run["name"], "language": language, "line": english[0][:120]})
        else:
            asks = other_language_requests(run["text"], _output(run))
            if asks:
                told.append({"name": run["name"], "line": asks[0][:120]})
    english = _check(len(given_english), 0, at_most=True)
    other = _check(len(told), 0, at_most=True)
    return {
        "non_english_given_english": english
        | {"non_english_prompts": dict(foreign.most_common()), "samples": _sample(given_english)},
        "english_told_other_language": other | {"samples": _sample(told)},
    }


def _role_play(runs: list[dict]) -> dict:
    with_request, fenced = 0, []
    for run in runs:
        sentence = first_request(run["text"])
        if sentence is None:
            continue
        with_request += 1
        if first_request_fenced(_output(run), sentence) and not first_request_fenced(run["text"], sentence):
            fenced.append(run["name"])
    figure = _check(len(fenced), 0, at_most=True)
    return {
        "first_request_fenced": figure
        | {"role_play_with_first_request": with_request, "samples": _sample(fenced)}
    }


def _headings(runs: list[dict]) -> dict:
    with_headings = [run for run in runs if headings(run["text"])]
    rewritten = [run["name"] for run in with_headings if not headings_kept(run["text"], _output(run))]
    share = fraction(len(with_headings) - len(rewritten), len(with_headings)) if with_headings else 1.0
    figure = _check(share, 1.0)
    return {
        "headings_kept": figure
        | {
            "prompts_with_headings": len(with_headings),
            "rewritten": len(rewritten),
            "samples": _sample(rewritten),
        }
    }


def _lengths(runs: list[dict]) -> dict:
    ratios = [length_ratio(run["text"], _output(run)) for run in runs]
    calm = [
        length_ratio(run["text"], _output(run))
        for run in runs
        if not has_serious_issue(run["result"]["diagnosis"])
    ]
    near = _check(fraction(sum(ratio <= NEAR_LENGTH for ratio in calm), len(calm)) if calm else 1.0, 1.0)
    unchanged = sum(_output(run).strip() == run["text"].strip() for run in runs)
    return {
        "length_ratio": {
            "p50": round(percentile(ratios, 0.5), 2),
            "p90": round(percentile(ratios, 0.9), 2),
            "unchanged": fraction(unchanged, len(runs)),
        },
        "no_serious_issue_within_1_25x": near | {"prompts": len(calm)},
    }


def _gains(runs: list[dict]) -> dict:
    gains = [run["result"]["after"]["overall"] - run["result"]["before"]["overall"] for run in runs]
    return {
        "checklist_gain": {
            "share_with_gain": fraction(sum(gain > 0 for gain in gains), len(gains)),
            "median_gain": statistics.median(gains) if gains else 0,
        }
    }


def _questions(runs: list[dict]) -> dict:
    per_run = [run["result"]["design"].get("questions") or [] for run in runs]
    texts = Counter(question["question"] for questions in per_run for question in questions)
    keys = Counter(question["key"] for questions in per_run for question in questions)
    return {
        "questions": {
            "share_with_questions": fraction(sum(bool(questions) for questions in per_run), len(runs)),
            "mean_count": round(statistics.fmean(len(q) for q in per_run), 2) if per_run else 0.0,
            "keys": dict(keys.most_common()),
            "commonest": [
                {"question": text, "runs": count, "share": fraction(count, len(runs))}
                for text, count in texts.most_common(TOP_QUESTIONS)
            ],
        }
    }


def gaming_report() -> dict:
    """The checklist score of each gaming case (target under 50) and of each better/worse pair."""
    cases = [
        {
            "name": name,
            "score": builtin.score(text)["overall"],
            "met": builtin.score(text)["overall"] < GAMING_TARGET,
        }
        for name, text in GAMING_CASES
    ]
    pairs = []
    for name, better, worse in PAIRS:
        better_score, worse_score = builtin.score(better)["overall"], builtin.score(worse)["overall"]
        pairs.append(
            {"name": name, "better": better_score, "worse": worse_score, "met": better_score > worse_score}
        )
    return {"cases": cases, "pairs": pairs}


# --- the language-model engine on a sample --------------------------------------------------------
def llm_configured() -> bool:
    """Whether the database has a usable language model (False when it has no tables yet)."""
    from django.db import DatabaseError

    from optimizer.pipeline import llm_models_available

    try:
        return llm_models_available()
    except DatabaseError:
        return False


def evenly_spaced(items: list, count: int) -> list:
    """``count`` items spread over the list, the same ones on every run."""
    if count >= len(items):
        return list(items)
    return [items[index * len(items) // count] for index in range(count)]


def llm_report(rows: list[dict], *, sample: int, limit: int) -> dict:
    """A sample of the prompts through the LLM engine (deconstruct, diagnose, design), each rewrite
    judged blind against its original by ``compare``: wins, ties and losses, and what it cost."""
    from optimizer.engines import LLMEngine
    from optimizer.pipeline import chosen_techniques

    eligible = [row for row in rows if row["prompt"].strip() and len(row["prompt"]) <= limit]
    verdicts: Counter = Counter()
    cost, unpriced, cached, degraded, losses = Decimal(0), 0, 0, [], []
    models: Counter = Counter()
    started = time.perf_counter()
    for row in evenly_spaced(eligible, sample):
        text, prompt_type = row["prompt"], prompt_type_for(row)
        engine = LLMEngine(model=None, user_id=None, run_id=None)
        deconstruction = engine.deconstruct(text, prompt_type)
        diagnosis = engine.diagnose(text, prompt_type, deconstruction.data)
        techniques = [item["slug"] for item in chosen_techniques({}, prompt_type, diagnosis.data, text)]
        design = engine.design(
            text, prompt_type, deconstruction.data, diagnosis.data, techniques, keep_spans=True
        )
        verdict = engine.compare(text, design.data["optimized_prompt"], prompt_type)
        outcomes = [deconstruction, diagnosis, design] + ([verdict] if verdict else [])
        for outcome in outcomes:
            if outcome.cost is None:
                unpriced += 1
            else:
                cost += outcome.cost
            cached += outcome.cached
            if outcome.model:
                models[f"{outcome.provider} · {outcome.model}"] += 1
        if engine.degraded:
            degraded.append({"name": row["act"], "reason": engine.degraded[:200]})
        winner = verdict.data["winner"] if verdict else "no verdict"
        verdicts[winner] += 1
        if winner == "original":
            losses.append({"name": row["act"], "summary": verdict.data.get("summary", "")[:200]})
    judged = verdicts["rewrite"] + verdicts["tie"] + verdicts["original"]
    return {
        "sample": sum(verdicts.values()),
        "wins": verdicts["rewrite"],
        "ties": verdicts["tie"],
        "losses": verdicts["original"],
        "no_verdict": verdicts["no verdict"],
        "win_share_of_judged": fraction(verdicts["rewrite"], judged),
        "cost_usd": str(cost),
        "unpriced_calls": unpriced,
        "cached_answers": cached,
        "models": dict(models.most_common()),
        "degraded": _sample(degraded),
        "losses_samples": _sample(losses),
        "seconds": round(time.perf_counter() - started, 1),
    }


LLM_HOWTO = (
    "No language model is configured, so the LLM part was skipped. Configure one: put a key in the "
    "environment (OPENAI_API_KEY, ANTHROPIC_API_KEY, XAI_API_KEY or GEMINI_API_KEY; OPENAI_BASE_URL for a "
    "local server) and run `make setup` (it calls manage.py seed_providers), or add a provider and a model "
    'in the admin; then `make quality ARGS="--llm --sample 20"`.'
)


# --- the printed report ---------------------------------------------------------------------------
def _mark(figure: dict) -> str:
    return "met" if figure["met"] else "MISSED"


def _percent(value: float) -> str:
    return f"{value * 100:.1f}%"


def _figure_line(name: str, figure: dict, note: str = "") -> str:
    """Shares print as percentages; counts (whose target is a most, 0) as they are."""
    shown = _percent if isinstance(figure["value"], float) else str
    target = f"{'<=' if figure['at_most'] else '>='} {shown(figure['target'])}"
    return f"{name:<42} {shown(figure['value']):>14}  {target:<10} {_mark(figure):<6}  {note}".rstrip()


def _plain_line(name: str, value: str) -> str:
    return f"{name:<42} {value:>14}"


def report_lines(report: dict) -> list[str]:
    """The report as a person reads it: each figure with its target, then the diagnostics."""
    out = [
        f"Built-in engine {report['engine']}: {report['runs']:,} of {report['prompts']:,} prompts "
        f"({report['skipped_over_limit']} over the {report['limit_chars']:,}-character limit skipped); "
        f"types {report['types']}; {report['seconds']['optimize']} s, second pass "
        f"{report['seconds']['second_pass']} s",
        "",
    ]
    order, added = report["kept_in_order"], report["most_frequent_added_line"]
    bodies, heads = report["json_kept_whole"], report["headings_kept"]
    english, other = report["non_english_given_english"], report["english_told_other_language"]
    fenced, near, stable = (
        report["first_request_fenced"],
        report["no_serious_issue_within_1_25x"],
        report["stability"],
    )
    lengths, gain, questions = report["length_ratio"], report["checklist_gain"], report["questions"]
    out.append(f"{'figure':<42} {'value':>14}  {'target':<10} {'':<6}  note")
    out += [
        _figure_line("1 text kept in order", order, f"{order['failing']} not"),
        _figure_line("2 most frequent added line", added),
        _figure_line("3 JSON prompts kept whole", bodies, f"{bodies['cut']} of {bodies['json_prompts']} cut"),
        _figure_line(
            "4 non-English prompts given English",
            english,
            f"of {sum(english['non_english_prompts'].values())} non-English",
        ),
        _figure_line("4 English prompts told another language", other),
        _figure_line(
            "5 first requests fenced as data",
            fenced,
            f"of {fenced['role_play_with_first_request']} role-play prompts with one",
        ),
        _figure_line(
            "6 own headings kept",
            heads,
            f"{heads['rewritten']} of {heads['prompts_with_headings']} rewritten",
        ),
        _plain_line("7 length ratio p50 / p90", f"{lengths['p50']} / {lengths['p90']}")
        + f"{'':<21}{_percent(lengths['unchanged'])} of outputs are the original unchanged",
        _figure_line("7 no serious issue: within 1.25x", near, f"of {near['prompts']} prompts"),
        _plain_line(
            "8 checklist gain: share / median",
            f"{_percent(gain['share_with_gain'])} / {gain['median_gain']:+g}",
        ),
        _figure_line("9 second pass changes nothing", stable),
        _plain_line(
            "10 runs with questions / mean",
            f"{_percent(questions['share_with_questions'])} / {questions['mean_count']}",
        ),
    ]

    out += ["", f"Top {TOP_ADDED} added lines (share of outputs; {_percent(added['outputs_with_additions'])} "
            "of outputs add any line):"]  # fmt: skip
    out += [f"  {_percent(item['share']):>6}  {item['line'][:110]}" for item in added["top"]]
    out += ["", "The same with tag names, numbers and quoted text masked:"]
    out += [f"  {_percent(item['share']):>6}  {item['line'][:110]}" for item in added["top_templates"]]
    for title, items in (
        ("Text not kept in order (first line missing or moved)", order["samples"]),
        ("JSON prompts cut", bodies["samples"]),
        ("Non-English prompts given English lines", english["samples"]),
        ("English prompts told to answer in another language", other["samples"]),
        ("First requests fenced as data", fenced["samples"]),
        ("Headings rewritten", heads["samples"]),
        ("Changed by a second pass", stable["changed"]),
    ):
        if items:
            out += ["", f"{title}:"] + [f"  {_sample_text(item)}" for item in items]
    out += ["", f"Non-English prompts by language: {english['non_english_prompts']}"]
    questions = report["questions"]
    out += ["", f"Question keys: {questions['keys']}", f"Top {TOP_QUESTIONS} questions:"]
    out += [f"  {_percent(item['share']):>6}  {item['question'][:110]}" for item in questions["commonest"]]
    return out


def _sample_text(item) -> str:
    if isinstance(item, str):
        return item
    return " · ".join(str(value) for value in item.values())


def gaming_lines(gaming: dict) -> list[str]:
    out = ["", f"11 gaming cases (checklist score, target < {GAMING_TARGET}):"]
    out += [f"  {case['score']:>3}  {_mark(case):<6}  {case['name']}" for case in gaming["cases"]]
    out.append("11 better/worse pairs (target better > worse):")
    out += [
        f"  {pair['better']:>3} > {pair['worse']:>3}  {_mark(pair):<6}  {pair['name']}"
        for pair in gaming["pairs"]
    ]
    return out


def llm_lines(llm: dict) -> list[str]:
    if "skipped" in llm:
        return ["", f"12 LLM engine: {llm['skipped']}"]
    return [
        "",
        f"12 LLM engine on {llm['sample']} prompts ({llm['seconds']} s): rewrite won {llm['wins']}, tied "
        f"{llm['ties']}, lost {llm['losses']}, no verdict {llm['no_verdict']}; cost ${llm['cost_usd']} "
        f"({llm['unpriced_calls']} unpriced calls, {llm['cached_answers']} cached answers)",
        f"  models: {llm['models']}",
        *[f"  lost: {item['name']} · {item['summary']}" for item in llm["losses_samples"]],
        *[f"  degraded: {item['name']} · {item['reason']}" for item in llm["degraded"]],
    ]


# --- the command ----------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPORT_PATH, help=f"JSON report (default {REPORT_PATH})")
    choice = parser.add_mutually_exclusive_group()
    choice.add_argument(
        "--llm", action="store_true", help="the LLM part is required: fail when no model is configured"
    )
    choice.add_argument(
        "--no-llm", action="store_true", help="skip the LLM part even with a model configured"
    )
    parser.add_argument("--sample", type=int, default=20, help="prompts for the LLM part (default 20)")
    parser.add_argument("--first", type=int, help="only the first N prompts of the CSV")
    parser.add_argument("--csv", type=Path, default=PROMPTS_CSV, help=f"the prompts (default {PROMPTS_CSV})")
    args = parser.parse_args(argv)
    if not args.csv.exists():
        print(f"The prompts are not there: {args.csv} (the shared data folder beside the project).")
        return 1
    if args.sample < 1:
        print("--sample needs a positive number of prompts.")
        return 2

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from django.conf import settings

    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per model call would bury the report

    rows = csv_rows(args.csv)[: args.first]
    limit = settings.PROMPT_MAX_CHARS
    report = builtin_report(rows, limit=limit)
    report["generated_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    report["gaming"] = gaming_report()
    configured = not args.no_llm and llm_configured()
    if configured:
        report["llm"] = llm_report(rows, sample=args.sample, limit=limit)
    else:
        report["llm"] = {"skipped": "--no-llm" if args.no_llm else LLM_HOWTO}

    print("\n".join(report_lines(report) + gaming_lines(report["gaming"]) + llm_lines(report["llm"])))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"\nWritten to {args.out}")
    return 2 if args.llm and not configured else 0


if __name__ == "__main__":
    sys.exit(main())
