"""Retrieval and abstention metrics over JSONL questions with the articles that answer them."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.models import Question, Turn
from retrieval.sources import json_error

if TYPE_CHECKING:
    from bot.core import AnswerCore


class EvalFileError(ValueError):
    """The eval file is missing or has a line that is not an eval item; the message names the place."""


@dataclass(frozen=True)
class EvalItem:
    question: str
    history: tuple[Turn, ...]
    relevant: frozenset[str]
    kind: str


def load_eval(path: Path) -> list[EvalItem]:
    """`{"q", "relevant", "kind"?}` lines, or conversations `{"turns": [...], "relevant", "kind"?}` whose
    last turn is asked after the others (kind "followup" unless the row says, e.g. "topic_change")."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise EvalFileError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise EvalFileError(f"{path} is a folder; give a JSONL file of questions") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise EvalFileError(f"{path}: cannot read it ({exc})") from None
    items = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            if not isinstance(row, dict):
                raise TypeError("not a JSON object")
            if not isinstance(row.get("relevant"), list):
                raise KeyError("relevant")
            if "turns" in row:
                turns = [str(t) for t in row["turns"]]
                if not turns:
                    raise ValueError('"turns" is empty')
                history = tuple(Turn("user", t) for t in turns[:-1])
                kind = str(row.get("kind") or "followup")  # "topic_change": a new topic asked in a thread
                items.append(EvalItem(turns[-1], history, frozenset(row["relevant"]), kind))
            else:
                kind = row.get("kind") or ("offtopic" if not row["relevant"] else "")
                items.append(EvalItem(str(row["q"]), (), frozenset(row["relevant"]), kind))
        except json.JSONDecodeError as exc:
            raise EvalFileError(f"{path}:{number}: not valid JSON ({json_error(exc)})") from None
        except KeyError as exc:
            raise EvalFileError(
                f'{path}:{number}: missing {exc} (each line needs "q" or "turns", and "relevant": a list of ids)'
            ) from None
        except (ValueError, TypeError) as exc:
            raise EvalFileError(f"{path}:{number}: not an eval item ({exc})") from None
    if not items:
        raise EvalFileError(f"{path} holds no questions")
    return items


@dataclass
class _Tally:
    answerable: int = 0
    hits: int = 0
    hits_at_1: int = 0
    rr: float = 0.0
    offtopic: int = 0
    abstained_offtopic: int = 0
    false_abstain: int = 0
    close_answerable: int = 0
    close_offtopic: int = 0
    total: int = 0

    def result(self) -> dict[str, Any]:
        a = self.answerable or 1
        o = self.offtopic or 1
        return {
            "questions": self.total,
            "hit_rate": round(self.hits / a, 4) if self.answerable else None,
            "hit_at_1": round(self.hits_at_1 / a, 4) if self.answerable else None,
            "mrr": round(self.rr / a, 4) if self.answerable else None,
            "offtopic": self.offtopic,
            "abstained_offtopic": round(self.abstained_offtopic / o, 4) if self.offtopic else None,
            "false_abstain": round(self.false_abstain / a, 4) if self.answerable else None,
            "close_answerable": round(self.close_answerable / a, 4) if self.answerable else None,
            "close_offtopic": round(self.close_offtopic / o, 4) if self.offtopic else None,
        }


async def evaluate(core: AnswerCore, items: list[EvalItem], *, k: int = 5) -> dict[str, Any]:
    """Hit rate@k and MRR over distinct articles, and how the core judges each question's coverage
    (`AnswerCore.understand`, `search` and `judge`, as the bot reads, searches and judges it):
    `false_abstain` (answerable) and `abstained_offtopic` count the not_covered ones, `close_answerable`
    and `close_offtopic` the close calls."""
    overall = _Tally()
    by_kind: dict[str, _Tally] = defaultdict(_Tally)
    for item in items:
        understood = await core.understand(Question(item.question, item.history))
        if understood.reply is not None:  # declined, small talk, empty or too long: nothing searched
            ranked, coverage = [], understood.reply.coverage
        else:
            fresh = not understood.history
            found = await core.search(understood.text, understood.query, fresh=fresh, k=max(k, core.top_k))
            ranked = [p.article_id for p in found[:k]]
            coverage = core.judge(understood.text, found[: core.top_k], fresh=fresh).coverage
        abstains, close = coverage == "not_covered", coverage == "close"
        for tally in (overall, by_kind[item.kind or "all"]):
            tally.total += 1
            if item.relevant:
                tally.answerable += 1
                rank = next((i for i, a in enumerate(ranked, start=1) if a in item.relevant), None)
                if rank is not None:
                    tally.hits += 1
                    tally.rr += 1.0 / rank
                    tally.hits_at_1 += rank == 1
                tally.false_abstain += abstains
                tally.close_answerable += close
            else:
                tally.offtopic += 1
                tally.abstained_offtopic += abstains
                tally.close_offtopic += close
    result = {"k": k, **overall.result()}
    result["by_kind"] = {kind: t.result() for kind, t in sorted(by_kind.items())}
    return result


def format_table(result: dict[str, Any]) -> str:
    def cell(value: Any) -> str:
        return "-" if value is None else (f"{value:.3f}" if isinstance(value, float) else str(value))

    cols = ["questions", "hit_rate", "hit_at_1", "mrr", "offtopic", "abstained_offtopic", "false_abstain"]
    cols += ["close_answerable", "close_offtopic"]
    header = ["kind"] + [c if c != "hit_rate" else f"hit@{result['k']}" for c in cols]
    rows = [["all"] + [cell(result[c]) for c in cols]]
    for kind, r in result.get("by_kind", {}).items():
        rows.append([kind] + [cell(r[c]) for c in cols])
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=False)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    for row in rows:
        lines.append("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)))
    return "\n".join(lines)
